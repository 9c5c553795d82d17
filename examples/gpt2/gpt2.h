/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/gpt2/gpt2.h — the GPT-2 example's shared definitions: model
 * shape, the parameter tensors in llm.c's order, the model file and the data
 * readers.
 *
 * The model is llm.c's GPT-2: token + position embeddings, L blocks of
 * (layernorm, causal multi-head attention, residual, layernorm, MLP with
 * tanh-GELU, residual), a final layernorm, and an output head tied to the
 * token embedding. Layernorm eps is 1e-5.
 *
 * Parameter tensors in llm.c's checkpoint order (C channels, L layers,
 * Vp padded vocabulary, maxT max sequence length):
 *   0 wte (Vp, C)        1 wpe (maxT, C)
 *   2 ln1w (L, C)        3 ln1b (L, C)
 *   4 qkvw (L, 3C, C)    5 qkvb (L, 3C)
 *   6 attprojw (L, C, C) 7 attprojb (L, C)
 *   8 ln2w (L, C)        9 ln2b (L, C)
 *  10 fcw (L, 4C, C)    11 fcb (L, 4C)
 *  12 fcprojw (L, C, 4C) 13 fcprojb (L, C)
 *  14 lnfw (C)          15 lnfb (C)
 * Weights are stored (out, in): y = x W^T + b.
 */
#ifndef ZRT_EXAMPLES_GPT2_H
#define ZRT_EXAMPLES_GPT2_H

#include <stddef.h>
#include <stdint.h>

#define GPT2_NUM_TENSORS       16
#define GPT2_MODEL_MAGIC       20240326
#define GPT2_MODEL_VERSION_F32 3
#define GPT2_SHARD_MAGIC       20240520
#define GPT2_SHARD_VERSION     1
#define GPT2_HEADER_INTS       256 /* both file kinds start with 256 int32 */

typedef struct gpt2_config {
    int max_seq_len;       /* maxT */
    int vocab_size;        /* V */
    int padded_vocab_size; /* Vp >= V; rows V..Vp-1 of wte are padding */
    int num_layers;        /* L */
    int num_heads;         /* NH; channels % num_heads == 0 */
    int channels;          /* C */
} gpt2_config;

/* Element count of each tensor in llm.c order; returns the total. */
size_t gpt2_tensor_sizes(const gpt2_config *cfg, size_t sizes[GPT2_NUM_TENSORS]);
/* Names in llm.c order ("wte", "wpe", "ln1w", ...). */
const char *gpt2_tensor_name(int index);
/* 1 when tensor `index` holds one slice per layer (indices 2..13). */
int gpt2_tensor_is_per_layer(int index);

/* Checks the fields a config must satisfy; writes a sentence naming the
 * offending field into err. Returns 0 or -1. */
int gpt2_config_check(const gpt2_config *cfg, char *err, size_t err_size);

/* ---- model files: llm.c's layout ---------------------------------------
 * int32 header[256] = {20240326, 3, maxT, V, L, NH, C, Vp, 0...}, then every
 * tensor in the order above as little-endian f32. */

/* Reads the header of `path` into *cfg. Returns 0, or -1 with a sentence
 * naming the file and the field (magic, version, a bad or inconsistent
 * shape, or a file size that does not match the shape) in err. */
int gpt2_model_read_header(const char *path, gpt2_config *cfg, char *err,
                           size_t err_size);
/* Reads all parameters (gpt2_tensor_sizes total floats, llm.c order) into
 * params. If `expect` is not NULL the file's shape must equal it (a
 * mismatch names the field). Returns 0 or -1 with err. */
int gpt2_model_read(const char *path, const gpt2_config *expect, float *params, char *err,
                    size_t err_size);
/* A model file opened for reading in pieces (pread), so that a rank reads
 * only the parameters it keeps. Open checks what gpt2_model_read checks
 * (header, size, and the shape against expect when not NULL). Reads take
 * element positions in the whole parameter array (llm.c order). Each
 * returns 0, or -1 with a sentence naming the file in err. */
typedef struct gpt2_model_file gpt2_model_file;
int gpt2_model_open(const char *path, const gpt2_config *expect, gpt2_model_file **out,
                    char *err, size_t err_size);
/* Reads parameters [first, first + count) into dst. */
int gpt2_model_read_at(gpt2_model_file *f, size_t first, size_t count, float *dst,
                       char *err, size_t err_size);
void gpt2_model_close(gpt2_model_file *f); /* NULL is a no-op */
/* Writes header and parameters to "<path>.tmp.<pid>", fsyncs, renames over
 * path. Returns 0 or -1 with err. */
int gpt2_model_write(const char *path, const gpt2_config *cfg, const float *params,
                     char *err, size_t err_size);

/* ---- data ---------------------------------------------------------------
 * A token stream from either a text file read as bytes (vocabulary 256) or
 * llm.c token shards (int32 header[256] = {20240520, 1, ntok, 0...}, then
 * ntok uint16 tokens). Rank r's part of global batch g is the B*T+1
 * consecutive tokens starting at ((g * world + r) * B*T) mod (ntok - B*T):
 * inputs are the first B*T, targets the same shifted by one. Each rank reads
 * its own stride, and together the ranks read the stream once per pass. */
typedef struct gpt2_data gpt2_data;

/* Opens a text file as bytes. */
int gpt2_data_open_text(const char *path, gpt2_data **out, char *err, size_t err_size);
/* Opens one or more shard files (a glob pattern such as
 * "dir/fineweb_train_*.bin"), in sorted name order, checking each header:
 * magic, version, token count against the file size, and every token below
 * vocab_size. */
int gpt2_data_open_shards(const char *pattern, int vocab_size, gpt2_data **out, char *err,
                          size_t err_size);
size_t gpt2_data_num_tokens(const gpt2_data *d);
/* 1 for a text file; the number of shard files the pattern matched. */
size_t gpt2_data_num_files(const gpt2_data *d);
/* Fills inputs and targets (B*T each) with this rank's part of global batch
 * `batch_index`; wraps around the stream. Returns 0, or -1 if the stream
 * holds fewer than B*T+1 tokens. */
int gpt2_data_batch(const gpt2_data *d, long batch_index, int rank, int world, int B,
                    int T, int *inputs, int *targets);
void gpt2_data_close(gpt2_data *d);

#endif /* ZRT_EXAMPLES_GPT2_H */
