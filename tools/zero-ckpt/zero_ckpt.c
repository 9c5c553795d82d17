/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-ckpt/zero_ckpt.c — checks and exports zrt checkpoints.
 *
 *   zero-ckpt verify DIR                  every checksum, the plan, the sizes
 *   zero-ckpt consolidate DIR OUT.bin     all parameters as one f32 file
 *                                         (+ OUT.bin.json naming each tensor)
 *                                         (every export takes a 16-bit
 *                                         checkpoint's f32 master copy)
 *   zero-ckpt safetensors DIR OUT.safetensors
 *   zero-ckpt llmc DIR OUT.bin [--vocab-size V] [--heads NH]
 *                                         a GPT-2 checkpoint as llm.c's model file
 *
 * DIR is a step directory (holding meta.json) or a directory whose `latest`
 * names one. Exit status: 0 done, 1 the checkpoint was refused or an output
 * could not be written, 2 bad usage. No MPI: runs anywhere the files are.
 */
#include "zero_ckpt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { CHECK_BUF = 4 << 20 };

zrt_status ckpt_open_verified(const char *dir, zrt__ckpt *out, zrt__errbuf *err)
{
    zrt__ckpt c;
    zrt_status st = zrt__ckpt_open(dir, &c, err);
    if (st != ZRT_OK)
        return st;
    void *buf = malloc(CHECK_BUF);
    if (!buf)
        st = zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "no memory for a %d-byte buffer",
                       CHECK_BUF);
    for (int r = 0; st == ZRT_OK && r < c.meta.world; r++)
        st = zrt__ckpt_verify_file(&c, r, buf, CHECK_BUF, err);
    free(buf);
    if (st != ZRT_OK) {
        zrt__ckpt_close(&c);
        return st;
    }
    *out = c;
    return ZRT_OK;
}

typedef struct read_arg {
    zrt__ckpt *c;
    float *dst;
    zrt__errbuf *err;
} read_arg;

static zrt_status read_piece(void *arg, const zrt__ckpt_piece *p)
{
    read_arg *a = arg;
    return zrt__ckpt_read_piece(a->c, zrt__ckpt_f32_kind(&a->c->meta), p, a->dst, a->err);
}

/* The f32 values: the parameters of an f32 checkpoint, the master copy of a
 * 16-bit one (its 16-bit parameters are that copy rounded). */
zrt_status ckpt_read_tensor(zrt__ckpt *c, int t, float *dst, zrt__errbuf *err)
{
    read_arg a = {c, dst, err};
    return zrt__ckpt_for_pieces(&c->meta, t, 0, c->meta.tensors[t].numel, read_piece, &a);
}

int ckpt_out_open(ckpt_out *o, const char *path, char *err, size_t size)
{
    memset(o, 0, sizeof *o);
    if (snprintf(o->path, sizeof o->path, "%s", path) >= (int)sizeof o->path) {
        snprintf(err, size, "output path too long");
        return -1;
    }
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp", path);
    if (!(o->f = fopen(o->tmp, "wb"))) {
        snprintf(err, size, "cannot create '%s': %s", o->tmp, strerror(errno));
        return -1;
    }
    return 0;
}

void ckpt_out_write(ckpt_out *o, const void *data, size_t bytes)
{
    if (!o->failed && bytes && fwrite(data, 1, bytes, o->f) != bytes)
        o->failed = errno ? errno : EIO;
}

int ckpt_out_close(ckpt_out *o, char *err, size_t size)
{
    if (!o->failed && (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0))
        o->failed = errno;
    if (fclose(o->f) != 0 && !o->failed)
        o->failed = errno;
    if (!o->failed && rename(o->tmp, o->path) != 0)
        o->failed = errno;
    if (!o->failed)
        return 0;
    snprintf(err, size, "cannot write '%s': %s", o->path, strerror(o->failed));
    unlink(o->tmp);
    return -1;
}

static int64_t total_params(const zrt__ckpt_meta *m)
{
    int64_t sum = 0;
    for (int t = 0; t < m->ntensors; t++)
        sum += m->tensors[t].numel;
    return sum;
}

static int verify(const char *dir)
{
    zrt__errbuf err = {.rank = -1};
    zrt__ckpt c;
    if (ckpt_open_verified(dir, &c, &err) != ZRT_OK) {
        fprintf(stderr, "zero-ckpt: %s: REFUSED: %s\n", dir, err.text);
        return 1;
    }
    const zrt__ckpt_meta *m = &c.meta;
    int64_t bytes = 0;
    int sections = 0;
    for (int r = 0; r < m->world; r++) {
        bytes += m->files[r].bytes;
        sections += c.files[r].nsections;
    }
    printf("%s: step %lld, saved by %d ranks at stage %d (optimizer %s, parameters %s)\n",
           m->dir, (long long)m->step, m->world, m->stage, m->offload_optimizer,
           m->offload_param);
    printf("  %d tensors, %lld parameters in %d layers; user blob %zu bytes\n",
           m->ntensors, (long long)total_params(m), m->nlayers, m->user_bytes);
    if (m->nmodel > 0) {
        printf("  model:");
        for (int i = 0; i < m->nmodel; i++)
            printf(" %s %lld", m->model[i].name, (long long)m->model[i].value);
        printf("\n");
    }
    if (m->dtype != ZRT_F32)
        printf("  %s parameters with an f32 master copy (format version %d)\n",
               zrt_dtype_str(m->dtype), m->version);
    if (m->dtype == ZRT_F16)
        printf("  loss scale %g (%s), %ld steps skipped for overflow\n",
               (double)m->scaler.scale, m->scaler.dynamic ? "dynamic" : "fixed",
               m->scaler.skipped);
    printf("  %d rank files, %lld bytes, %d sections: every CRC32C matches\n", m->world,
           (long long)bytes, sections);
    printf("OK\n");
    zrt__ckpt_close(&c);
    return 0;
}

static int usage(FILE *f)
{
    fprintf(f,
            "usage: zero-ckpt verify DIR\n"
            "       zero-ckpt consolidate DIR OUT.bin\n"
            "       zero-ckpt safetensors DIR OUT.safetensors\n"
            "       zero-ckpt llmc DIR OUT.bin [--vocab-size V] [--heads NH]\n"
            "DIR: a checkpoint step directory, or a directory whose 'latest' names one.\n"
            "verify checks every checksum; the exports verify first, then write the\n"
            "parameters (f32, registration order; llmc: llm.c's GPT-2 model file);\n"
            "for bf16/f16 parameters, their f32 master copy. llmc takes the vocabulary\n"
            "and head count from the checkpoint (the loop's zrt_declare_model_dim); the\n"
            "flags are for checkpoints that do not store them.\n");
    return f == stdout ? 0 : 2;
}

static int parse_llmc_flags(int argc, char **argv, int *vocab, int *heads)
{
    for (int i = 4; i < argc; i += 2) {
        int *dst = !strcmp(argv[i], "--vocab-size") ? vocab
                   : !strcmp(argv[i], "--heads")    ? heads
                                                    : NULL;
        char *end = NULL;
        long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
        if (!dst || !end || *end || v < 1 || v > (1L << 30)) {
            fprintf(stderr, "zero-ckpt llmc: bad option '%s'\n", argv[i]);
            return -1;
        }
        *dst = (int)v;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
        return usage(stdout);
    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        printf("zero-ckpt %s\n", ZRT_VERSION_STRING);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "verify"))
        return verify(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "consolidate"))
        return ckpt_consolidate(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "safetensors"))
        return ckpt_safetensors(argv[2], argv[3]);
    if (argc >= 4 && !strcmp(argv[1], "llmc")) {
        int vocab = 0, heads = 0;
        if (parse_llmc_flags(argc, argv, &vocab, &heads))
            return 2;
        return ckpt_llmc(argv[2], argv[3], vocab, heads);
    }
    return usage(stderr);
}
