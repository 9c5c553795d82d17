/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/fuzz/fuzz_gpt2_shard.c — the llm.c token shard reader
 * (examples/gpt2/gpt2_io.c: gpt2_data_open_shards, gpt2_data_batch), and the
 * same bytes read as a text file (gpt2_data_open_text).
 *
 * The input is one shard: int32 header[256] = {20240520, 1, ntok, ...}, then
 * ntok uint16 tokens. An accepted shard must hold ntok tokens below the
 * vocabulary, and every batch drawn from it (several shapes, ranks and a
 * batch index far past the stream's end) must be tokens of the stream.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gpt2.h"

enum { VOCAB = 50257, MAX_BT = 64 };

static void draw_batches(const gpt2_data *d, size_t ntok, int vocab)
{
    static const int shapes[][2] = {{1, 1}, {2, 3}, {4, 8}, {8, 8}};
    static const long batches[] = {0, 1, 7, 123456789012345L};
    int inputs[MAX_BT], targets[MAX_BT];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1];
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            int world = 1 + (int)(b % 3), rank = world - 1;
            int rc = gpt2_data_batch(d, batches[b], rank, world, B, T, inputs, targets);
            if ((rc == 0) != (ntok >= (size_t)(B * T) + 1))
                abort(); /* refused a batch it holds, or gave one it does not */
            for (int i = 0; rc == 0 && i < B * T; i++)
                if (inputs[i] < 0 || inputs[i] >= vocab || targets[i] < 0 ||
                    targets[i] >= vocab || (i + 1 < B * T && targets[i] != inputs[i + 1]))
                    abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[FUZZ_PATH], err[512];
    gpt2_data *d = NULL;
    fuzz_write("shard.bin", data, size, path);
    if (gpt2_data_open_shards(path, VOCAB, &d, err, sizeof err) == 0) {
        size_t ntok = gpt2_data_num_tokens(d);
        if (size != GPT2_HEADER_INTS * 4 + 2 * ntok)
            abort(); /* accepted a shard whose size disagrees with its count */
        draw_batches(d, ntok, VOCAB);
        gpt2_data_close(d);
    }
    d = NULL;
    if (gpt2_data_open_text(path, &d, err, sizeof err) == 0) {
        if (gpt2_data_num_tokens(d) != size)
            abort();
        draw_batches(d, size, 256);
        gpt2_data_close(d);
    }
    return 0;
}
