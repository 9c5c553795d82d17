/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/checkpoint.h — the checkpoint format, as zrt_load and zero-ckpt read it.
 *
 * A checkpoint is a step directory (DIR/step-00000020) holding
 *   meta.json        the partition plan (per layer numel / flat / shard
 *                    elements; per tensor name, layer, offset, numel,
 *                    shape), the config that saved it, the step, the
 *                    caller's blob, and per rank file its size and the
 *                    CRC32C of its header; the file ends with its own
 *                    CRC32C ("meta_crc32c", over every byte before that key);
 *   rank-RRRRR.zrtc  rank R's shard of every layer, whatever the stage that
 *                    saved it: flat elements [R * S, (R + 1) * S) of each
 *                    layer with parameters (S = its shard_numel), one
 *                    section per (layer, kind), kinds "param", "exp_avg",
 *                    "exp_avg_sq" and, with 16-bit parameters, "master":
 *                    raw little-endian elements, f32 except "param", which
 *                    holds the parameters' dtype (f32, bf16 or f16).
 * DIR/latest holds the name of the newest complete step directory.
 *
 * Versions: 1 holds f32 parameters (three kinds); 2 adds 16-bit parameters
 * (meta.json "dtype" bf16/f16, the f32 "master" kind, "loss_scaler"). A
 * checkpoint is written as the lowest version that holds it, so f32 ones stay
 * readable by a zrt that knows only version 1 and 16-bit ones are refused by
 * it by version number.
 *
 * Rank file layout (little-endian):
 *   header, 64 bytes:  magic "ZRTCKPT\0", u32 version (1), u32 header bytes
 *                      (64), u32 rank, u32 world, u32 sections, u32 0,
 *                      u64 step, u64 data offset, u64 file bytes,
 *                      u32 CRC32C of the section table, u32 CRC32C of
 *                      header bytes 0..59;
 *   section table:     64 bytes per section: kind (16 bytes, NUL-padded),
 *                      u32 layer, u32 dtype (0 f32, 1 bf16, 2 f16:
 *                      zrt_dtype), u64 first flat
 *                      element, u64 elements, u64 byte offset, u64 bytes,
 *                      u32 CRC32C of the data, u32 0;
 *   data:              the sections back to back, in table order.
 * Checksums chain: meta.json's own CRC covers each file's header CRC, the
 * header CRC covers the table CRC, the table covers each section's CRC, so
 * every byte of a checkpoint is covered by one chain from meta.json.
 *
 * These calls need no context (zero/ckpt_format.c): zrt_save and zrt_load
 * (zero/checkpoint.c) and tools/zero-ckpt share them.
 */
#ifndef ZRT_ZERO_CHECKPOINT_H
#define ZRT_ZERO_CHECKPOINT_H

#include <stdint.h>
#include <string.h>

#include "../runtime/error.h"
#include "loss_scale.h"

enum {
    ZRT__CKPT_VERSION = 2,     /* the newest version this reads and writes */
    ZRT__CKPT_VERSION_F32 = 1, /* what f32 checkpoints are written as */
    ZRT__CKPT_HEADER_BYTES = 64,
    ZRT__CKPT_ENTRY_BYTES = 64,
    ZRT__CKPT_KIND_BYTES = 16,
    ZRT__CKPT_NKINDS = 3,    /* the kinds of an f32 checkpoint */
    ZRT__CKPT_MAX_KINDS = 4, /* ... of a 16-bit one: "master" added */
    ZRT__CKPT_PATH = 4096
};

/* The rank file's integer fields, at byte p (the format is little-endian,
 * as every host zrt builds for). */
static inline uint32_t zrt__ckpt_get_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline uint64_t zrt__ckpt_get_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void zrt__ckpt_put_u32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}
static inline void zrt__ckpt_put_u64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, sizeof v);
}

/* The kinds, by index: the order of sections within a layer. */
enum {
    ZRT__CKPT_PARAM = 0,
    ZRT__CKPT_EXP_AVG = 1,
    ZRT__CKPT_EXP_AVG_SQ = 2,
    ZRT__CKPT_MASTER = 3 /* 16-bit parameters: their f32 master copy */
};

/* "param", "exp_avg", "exp_avg_sq", "master", by index < ZRT__CKPT_MAX_KINDS;
 * a checkpoint holds the first meta.nkinds of them, in this order within
 * each layer. */
const char *zrt__ckpt_kind(int kind);

typedef struct zrt__ckpt_layer {
    int64_t numel, flat_numel, shard_numel;
} zrt__ckpt_layer;

typedef struct zrt__ckpt_tensor {
    char *name;
    int layer;
    int64_t offset; /* first element in the layer's flat buffer */
    int64_t numel;
    int ndim;
    int64_t shape[4];
    int no_weight_decay;
} zrt__ckpt_tensor;

/* One number of the model's shape (zrt_declare_model_dim), meta.json "model". */
typedef struct zrt__model_dim {
    char name[32];
    int64_t value;
} zrt__model_dim;

typedef struct zrt__ckpt_file {
    int64_t bytes;
    uint32_t header_crc;
} zrt__ckpt_file;

typedef struct zrt__ckpt_meta {
    char dir[ZRT__CKPT_PATH]; /* the step directory */
    int64_t step;
    int version;
    zrt_dtype dtype; /* of the "param" sections; the other kinds are f32 */
    int nkinds;      /* ZRT__CKPT_NKINDS, or ZRT__CKPT_MAX_KINDS when 16-bit */
    int has_scaler;  /* 16-bit: meta.json's "loss_scaler" (fp16's; bf16's is 1) */
    zrt__loss_scaler scaler;
    int world, stage, alignment, nlayers, ntensors;
    zrt__ckpt_layer *layers;   /* nlayers */
    zrt__ckpt_tensor *tensors; /* ntensors, registration order */
    zrt__ckpt_file *files;     /* world, by rank */
    unsigned char *user;       /* user_bytes (may be NULL when 0) */
    size_t user_bytes;
    char offload_optimizer[8], offload_param[8];
    zrt__model_dim model[ZRT_MODEL_DIMS_MAX]; /* "model": optional, in file order */
    int nmodel;
} zrt__ckpt_meta;

typedef struct zrt__ckpt_section {
    char kind[ZRT__CKPT_KIND_BYTES + 1];
    int layer;
    int64_t first, numel; /* flat elements of the layer */
    zrt_dtype dtype;      /* of its elements */
    uint64_t offset, bytes;
    uint32_t crc;
    int verified; /* its CRC was checked against the data */
} zrt__ckpt_section;

/* One rank file, opened lazily. */
typedef struct zrt__ckpt_rankfile {
    int fd; /* -1 until opened */
    char path[ZRT__CKPT_PATH];
    int nsections;
    zrt__ckpt_section *sections;
} zrt__ckpt_rankfile;

typedef struct zrt__ckpt {
    zrt__ckpt_meta meta;
    zrt__ckpt_rankfile *files; /* meta.world */
} zrt__ckpt;

/* A pipeline's checkpoint (pipeline_stages P > 1): the step directory holds
 * meta.json {"format": ZRT__CKPT_PIPELINE_FORMAT, "stages": P, "step": N,
 * sealed like any meta.json} and stage-0 .. stage-(P-1), each a complete
 * checkpoint of that stage's parameters (its meta.json and rank files, the
 * world being the stage's data-parallel ranks). *stages: P for such a step
 * directory, 0 for a plain one. */
#define ZRT__CKPT_PIPELINE_FORMAT "zrt-pipeline-checkpoint"
zrt_status zrt__ckpt_pipeline_stages(const char *step_dir, int *stages, zrt__errbuf *err);

/* The step directory `dir` names: dir itself when it holds meta.json, else
 * dir/<the name in dir/latest>. */
zrt_status zrt__ckpt_resolve(const char *dir, char *step_dir, size_t size,
                             zrt__errbuf *err);
/* Resolves dir, reads and checks meta.json (its CRC, every field). The rank
 * files are opened when first needed. */
zrt_status zrt__ckpt_open(const char *dir, zrt__ckpt *out, zrt__errbuf *err);
void zrt__ckpt_close(zrt__ckpt *c);

/* The section (rank, kind, layer), opening and checking the rank file's
 * size, header and table first; *out stays owned by c. */
zrt_status zrt__ckpt_section_of(zrt__ckpt *c, int rank, const char *kind, int layer,
                                zrt__ckpt_section **out, zrt__errbuf *err);
/* Reads the whole section through buf (any size >= 4 bytes) and checks its
 * CRC32C; marks it verified. A failure names the file, the section and its
 * byte range. */
zrt_status zrt__ckpt_verify_section(zrt__ckpt *c, int rank, zrt__ckpt_section *s,
                                    void *buf, size_t buf_bytes, zrt__errbuf *err);
/* Checks everything in rank file `rank`: header, table, the sections that
 * the plan says it must hold, and every section's CRC. */
zrt_status zrt__ckpt_verify_file(zrt__ckpt *c, int rank, void *buf, size_t buf_bytes,
                                 zrt__errbuf *err);

/* A run of elements of one tensor that lives in one rank file's section. */
typedef struct zrt__ckpt_piece {
    int rank, layer;
    int64_t section_elem; /* first element, counted within the section */
    int64_t count;
    int64_t dst_elem; /* first element, counted from the caller's `from` */
} zrt__ckpt_piece;

typedef zrt_status (*zrt__ckpt_piece_fn)(void *arg, const zrt__ckpt_piece *piece);

/* Calls fn for each piece of elements [from, from + count) of tensor t, in
 * element order. */
zrt_status zrt__ckpt_for_pieces(const zrt__ckpt_meta *m, int tensor, int64_t from,
                                int64_t count, zrt__ckpt_piece_fn fn, void *arg);
/* Reads a piece of kind `kind` into element piece->dst_elem of dst
 * (piece->count elements of the kind's dtype: zrt__ckpt_kind_dtype). */
zrt_status zrt__ckpt_read_piece(zrt__ckpt *c, const char *kind,
                                const zrt__ckpt_piece *piece, void *dst,
                                zrt__errbuf *err);
/* The dtype of kind's sections: m->dtype for "param", else f32. */
zrt_dtype zrt__ckpt_kind_dtype(const zrt__ckpt_meta *m, const char *kind);
/* The kind that holds the parameters' f32 values: "param" in an f32
 * checkpoint, "master" in a 16-bit one (the 16-bit "param" is its rounding). */
const char *zrt__ckpt_f32_kind(const zrt__ckpt_meta *m);
/* The tensor named `name`, or -1. */
int zrt__ckpt_find_tensor(const zrt__ckpt_meta *m, const char *name);
/* The model dimension `name` from meta.json's "model" into *value; 0 when the
 * checkpoint does not store it (*value untouched). */
int zrt__ckpt_model_dim(const zrt__ckpt_meta *m, const char *name, int64_t *value);
/* 1 when name is 1 to 31 characters of [a-z0-9_]. */
int zrt__valid_model_dim_name(const char *name);

/* ---- writing ------------------------------------------------------------------ */

/* "checkpoint: cannot <what> '<path>': <strerror> (errno N, ENAME)". */
zrt_status zrt__ckpt_io_fail(zrt__errbuf *err, const char *what, const char *path, int e);
/* out = dir/name, or a sentence when it does not fit in size. */
zrt_status zrt__ckpt_join(char *out, size_t size, const char *dir, const char *name,
                          zrt__errbuf *err);
/* All of buf at byte `at` of fd (retrying short writes and EINTR). */
zrt_status zrt__ckpt_pwrite(int fd, const void *buf, size_t bytes, uint64_t at,
                            const char *path, zrt__errbuf *err);
zrt_status zrt__ckpt_fsync_dir(const char *dir, zrt__errbuf *err);
/* Writes dir/name through dir/name.tmp: the size limit checked, write,
 * fsync, rename, fsync dir. */
zrt_status zrt__ckpt_write_atomic(const char *dir, const char *name, const void *data,
                                  size_t bytes, zrt__errbuf *err);
/* mkdir -p (0755). */
zrt_status zrt__ckpt_make_dirs(const char *dir, zrt__errbuf *err);
/* Removes a step directory that holds only files; a missing one is fine. */
zrt_status zrt__ckpt_remove_step_dir(const char *dir, zrt__errbuf *err);

/* Who wrote a rank file: its header's identity fields. */
typedef struct zrt__ckpt_file_id {
    int version, rank, world;
    int64_t step;
} zrt__ckpt_file_id;

/* Writes the section table (after the header) and then the header of a rank
 * file whose n sections (offset, bytes and CRC set) are already written,
 * and returns the header's CRC and the file's size for meta.json. */
zrt_status zrt__ckpt_write_header_and_table(int fd, const char *path,
                                            const zrt__ckpt_file_id *id,
                                            const zrt__ckpt_section *s, int n,
                                            uint32_t *header_crc, uint64_t *file_bytes,
                                            zrt__errbuf *err);
/* meta.json's text: body (a JSON object as text) with "meta_crc32c", the
 * CRC32C of every byte before that key, added as its last member. *out is
 * the caller's to free. */
zrt_status zrt__ckpt_seal_meta(const char *body, char **out, size_t *len,
                               zrt__errbuf *err);

#endif /* ZRT_ZERO_CHECKPOINT_H */
