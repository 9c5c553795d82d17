/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/fuzz/fuzz_gpt2_model.c — the llm.c model file reader
 * (examples/gpt2/gpt2_io.c: gpt2_model_read_header, gpt2_model_read).
 *
 * The input is a model file: int32 header[256] = {20240326, 3, maxT, V, L,
 * NH, C, Vp, ...}, then the f32 parameters. A header the reader accepts must
 * describe a shape gpt2_config_check accepts and a file exactly the size of
 * its parameters, which are then read in full.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "gpt2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[FUZZ_PATH], err[512] = "";
    gpt2_config cfg;
    fuzz_write("model.bin", data, size, path);
    if (gpt2_model_read_header(path, &cfg, err, sizeof err) != 0)
        return 0;
    size_t sizes[GPT2_NUM_TENSORS];
    size_t total = gpt2_tensor_sizes(&cfg, sizes);
    if (gpt2_config_check(&cfg, err, sizeof err) != 0 ||
        size != GPT2_HEADER_INTS * 4 + total * sizeof(float)) {
        fprintf(stderr, "header accepted, but: %s (%zu parameters, %zu bytes)\n", err,
                total, size);
        abort();
    }
    float *params = malloc(total * sizeof *params + 1);
    if (!params)
        return 0;
    if (gpt2_model_read(path, &cfg, params, err, sizeof err) != 0) {
        fprintf(stderr, "header accepted, parameters refused: %s\n", err);
        abort();
    }
    free(params);
    return 0;
}
