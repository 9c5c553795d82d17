/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-ckpt/zero_ckpt.h — what the zero-ckpt commands share: opening
 * and fully verifying a checkpoint, reading a tensor, writing an output file
 * atomically.
 */
#ifndef ZRT_TOOLS_ZERO_CKPT_H
#define ZRT_TOOLS_ZERO_CKPT_H

#include <stddef.h>
#include <stdio.h>

#include "zero/checkpoint.h"

/* Opens dir (a step directory, or a directory with `latest`) and checks
 * every byte of it: meta.json's CRC, each rank file's size, header, table
 * and every section's CRC32C. Prints nothing; err holds the sentence. */
zrt_status ckpt_open_verified(const char *dir, zrt__ckpt *out, zrt__errbuf *err);

/* All elements of tensor t's parameters as f32 (meta.tensors[t].numel
 * floats): a 16-bit checkpoint's master copy. */
zrt_status ckpt_read_tensor(zrt__ckpt *c, int t, float *dst, zrt__errbuf *err);

/* An output file written to "<path>.tmp", fsynced and renamed over path.
 * ckpt_out_close returns 0, or -1 with a message in err (and removes the
 * temporary file). */
typedef struct ckpt_out {
    FILE *f;
    char path[ZRT__CKPT_PATH], tmp[ZRT__CKPT_PATH + 8];
    int failed;
} ckpt_out;
int ckpt_out_open(ckpt_out *o, const char *path, char *err, size_t size);
void ckpt_out_write(ckpt_out *o, const void *data, size_t bytes);
int ckpt_out_close(ckpt_out *o, char *err, size_t size);

/* The commands: 0 on success, 1 on failure (message printed). */
int ckpt_consolidate(const char *dir, const char *out);
int ckpt_safetensors(const char *dir, const char *out);
int ckpt_llmc(const char *dir, const char *out, int vocab_size, int heads);

#endif
