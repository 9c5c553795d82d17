/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-ckpt/export.c — writing a checkpoint's parameters in other
 * layouts: one consolidated f32 file with a JSON sidecar, safetensors, and
 * llm.c's GPT-2 model file. Each export verifies the whole checkpoint
 * first, then streams one tensor at a time (memory: the largest tensor).
 * Every export is f32: the parameters of an f32 checkpoint, the f32 master
 * copy of a bf16/f16 one (the full-precision state; its 16-bit parameters
 * are that copy rounded to nearest even). The outputs name the source.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zero_ckpt.h"

typedef struct export_job {
    zrt__ckpt c;
    zrt__errbuf err;
    float *buf; /* the largest tensor */
} export_job;

static int open_job(export_job *j, const char *dir)
{
    memset(j, 0, sizeof *j);
    j->err.rank = -1;
    if (ckpt_open_verified(dir, &j->c, &j->err) != ZRT_OK) {
        fprintf(stderr, "zero-ckpt: %s: REFUSED: %s\n", dir, j->err.text);
        return -1;
    }
    int64_t largest = 1;
    for (int t = 0; t < j->c.meta.ntensors; t++)
        if (j->c.meta.tensors[t].numel > largest)
            largest = j->c.meta.tensors[t].numel;
    if (!(j->buf = malloc((size_t)largest * sizeof(float)))) {
        fprintf(stderr, "zero-ckpt: no memory for a tensor of %lld floats\n",
                (long long)largest);
        zrt__ckpt_close(&j->c);
        return -1;
    }
    return 0;
}

static void close_job(export_job *j)
{
    free(j->buf);
    zrt__ckpt_close(&j->c);
}

/* Appends tensor t's values to o. */
static int write_tensor(export_job *j, int t, ckpt_out *o)
{
    if (ckpt_read_tensor(&j->c, t, j->buf, &j->err) != ZRT_OK) {
        fprintf(stderr, "zero-ckpt: %s\n", j->err.text);
        return -1;
    }
    ckpt_out_write(o, j->buf, (size_t)j->c.meta.tensors[t].numel * sizeof(float));
    return 0;
}

static json_t *shape_json(const zrt__ckpt_tensor *t)
{
    json_t *a = json_array();
    for (int d = 0; d < t->ndim; d++)
        json_array_append_new(a, json_integer(t->shape[d]));
    return a;
}

static int finish(ckpt_out *o, int rc)
{
    char err[ZRT__CKPT_PATH + 128];
    if (rc != 0) {
        o->failed = o->failed ? o->failed : 1;
        ckpt_out_close(o, err, sizeof err);
        return 1;
    }
    if (ckpt_out_close(o, err, sizeof err) != 0) {
        fprintf(stderr, "zero-ckpt: %s\n", err);
        return 1;
    }
    return 0;
}

static int open_out(ckpt_out *o, const char *path)
{
    char err[ZRT__CKPT_PATH + 128];
    if (ckpt_out_open(o, path, err, sizeof err) == 0)
        return 0;
    fprintf(stderr, "zero-ckpt: %s\n", err);
    return -1;
}

/* ", from the master copy of bf16 parameters", or nothing for f32. */
static const char *source_note(const zrt__ckpt_meta *m)
{
    return m->dtype == ZRT_BF16  ? ", from the master copy of bf16 parameters"
           : m->dtype == ZRT_F16 ? ", from the master copy of f16 parameters"
                                 : "";
}

static int64_t total_numel(const zrt__ckpt_meta *m)
{
    int64_t sum = 0;
    for (int t = 0; t < m->ntensors; t++)
        sum += m->tensors[t].numel;
    return sum;
}

/* ---- consolidate: OUT (raw f32) + OUT.json --------------------------------- */

static json_t *sidecar_json(const zrt__ckpt_meta *m)
{
    json_t *tensors = json_array();
    int64_t at = 0;
    for (int t = 0; t < m->ntensors; t++) {
        const zrt__ckpt_tensor *ct = &m->tensors[t];
        json_array_append_new(tensors,
                              json_pack("{s:s, s:o, s:I, s:I}", "name", ct->name, "shape",
                                        shape_json(ct), "offset_bytes", (json_int_t)at,
                                        "numel", (json_int_t)ct->numel));
        at += ct->numel * (int64_t)sizeof(float);
    }
    return json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:o}", "format",
                     "zrt-consolidated", "version", 1, "dtype", "f32", "byte_order",
                     "little", "param_dtype", zrt_dtype_str(m->dtype), "source",
                     zrt__ckpt_f32_kind(m), "step", (json_int_t)m->step, "checkpoint",
                     m->dir, "bytes", (json_int_t)at, "tensors", tensors);
}

static int write_sidecar(const zrt__ckpt_meta *m, const char *out)
{
    char path[ZRT__CKPT_PATH + 8];
    snprintf(path, sizeof path, "%s.json", out);
    json_t *root = sidecar_json(m);
    char *text = root ? json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    ckpt_out o;
    if (!text || open_out(&o, path) != 0) {
        free(text);
        return 1;
    }
    ckpt_out_write(&o, text, strlen(text));
    ckpt_out_write(&o, "\n", 1);
    free(text);
    return finish(&o, 0);
}

int ckpt_consolidate(const char *dir, const char *out)
{
    export_job j;
    if (open_job(&j, dir) != 0)
        return 1;
    ckpt_out o;
    int rc = open_out(&o, out) != 0;
    for (int t = 0; rc == 0 && t < j.c.meta.ntensors; t++)
        rc = write_tensor(&j, t, &o) != 0;
    if (rc == 0 || o.f)
        rc = finish(&o, rc);
    if (rc == 0)
        rc = write_sidecar(&j.c.meta, out);
    if (rc == 0)
        printf("wrote %s: %d tensors, %lld parameters (f32%s, registration order) from "
               "step %lld; names and shapes in %s.json\n",
               out, j.c.meta.ntensors, (long long)total_numel(&j.c.meta),
               source_note(&j.c.meta), (long long)j.c.meta.step, out);
    close_job(&j);
    return rc;
}

/* ---- safetensors ---------------------------------------------------------------- */

/* The JSON header: every tensor's dtype, shape and [begin, end) byte range
 * in the data that follows, plus string metadata; padded with spaces to a
 * multiple of 8 bytes. */
static char *safetensors_header(const zrt__ckpt_meta *m, size_t *len)
{
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)m->step);
    json_t *root = json_object();
    json_object_set_new(root, "__metadata__",
                        json_pack("{s:s, s:s, s:s, s:s, s:s}", "format", "pt", "producer",
                                  "zero-ckpt", "zrt_step", step, "zrt_param_dtype",
                                  zrt_dtype_str(m->dtype), "zrt_source",
                                  zrt__ckpt_f32_kind(m)));
    int64_t at = 0;
    for (int t = 0; t < m->ntensors; t++) {
        const zrt__ckpt_tensor *ct = &m->tensors[t];
        int64_t end = at + ct->numel * (int64_t)sizeof(float);
        json_object_set_new(root, ct->name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape",
                                      shape_json(ct), "data_offsets", (json_int_t)at,
                                      (json_int_t)end));
        at = end;
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return NULL;
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    char *out = realloc(text, padded + 1);
    if (!out) {
        free(text);
        return NULL;
    }
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    *len = padded;
    return out;
}

int ckpt_safetensors(const char *dir, const char *out)
{
    export_job j;
    if (open_job(&j, dir) != 0)
        return 1;
    size_t len = 0;
    char *header = safetensors_header(&j.c.meta, &len);
    ckpt_out o;
    int rc = !header || open_out(&o, out) != 0;
    if (rc == 0) {
        uint64_t n = len; /* little-endian on the hosts zrt supports */
        ckpt_out_write(&o, &n, sizeof n);
        ckpt_out_write(&o, header, len);
    }
    for (int t = 0; rc == 0 && t < j.c.meta.ntensors; t++)
        rc = write_tensor(&j, t, &o) != 0;
    if (header && (rc == 0 || o.f))
        rc = finish(&o, rc);
    if (rc == 0)
        printf("wrote %s: %d tensors, %lld parameters (F32%s) from step %lld\n", out,
               j.c.meta.ntensors, (long long)total_numel(&j.c.meta),
               source_note(&j.c.meta), (long long)j.c.meta.step);
    free(header);
    close_job(&j);
    return rc;
}

/* ---- llm.c's GPT-2 model file ----------------------------------------------------- */

/* llm.c's tensor order; the per-layer ones repeat for h0..h{L-1}. */
static const char *const llmc_block[12] = {"ln1w",     "ln1b",     "qkvw",    "qkvb",
                                           "attprojw", "attprojb", "ln2w",    "ln2b",
                                           "fcw",      "fcb",      "fcprojw", "fcprojb"};

typedef struct llmc_shape {
    int maxT, V, L, NH, C, Vp;
} llmc_shape;

static int find(const zrt__ckpt_meta *m, const char *name)
{
    int t = zrt__ckpt_find_tensor(m, name);
    if (t < 0)
        fprintf(stderr,
                "zero-ckpt llmc: the checkpoint has no parameter '%s' (is it the "
                "GPT-2 example's?)\n",
                name);
    return t;
}

/* A dimension the header needs: the flag when given, else what the loop
 * declared in meta.json's "model" (zrt_declare_model_dim), else `guess`
 * (checkpoints saved before the shape was stored). A flag that contradicts
 * the checkpoint is an error: the export would be another model. */
static int header_dim(const zrt__ckpt_meta *m, const char *name, const char *flag,
                      int given, int guess, int *out)
{
    int64_t stored = 0;
    int has = zrt__ckpt_model_dim(m, name, &stored);
    if (given && has && stored != given) {
        fprintf(stderr,
                "zero-ckpt llmc: %s %d contradicts the checkpoint, whose model was "
                "saved with %s %lld (meta.json \"model\"); leave the flag out\n",
                flag, given, name, (long long)stored);
        return -1;
    }
    *out = given ? given : has ? (int)stored : guess;
    return 0;
}

/* What the tensors fix (wte (Vp, C), wpe (maxT, C), the count of h<l>.ln1w)
 * must agree with what meta.json's "model" says, where it says it. */
static int check_stored(const zrt__ckpt_meta *m, const char *name, int from_tensors)
{
    int64_t stored = 0;
    if (!zrt__ckpt_model_dim(m, name, &stored) || stored == from_tensors)
        return 0;
    fprintf(stderr,
            "zero-ckpt llmc: meta.json's model.%s is %lld but the tensors hold %d\n",
            name, (long long)stored, from_tensors);
    return -1;
}

static int llmc_shape_of(const zrt__ckpt_meta *m, int vocab, int heads, llmc_shape *s)
{
    int wte = find(m, "wte"), wpe = find(m, "wpe");
    if (wte < 0 || wpe < 0)
        return -1;
    s->Vp = (int)m->tensors[wte].shape[0];
    s->C = m->tensors[wte].ndim == 2 ? (int)m->tensors[wte].shape[1] : 0;
    s->maxT = (int)m->tensors[wpe].shape[0];
    s->L = 0;
    for (char name[48];; s->L++) {
        snprintf(name, sizeof name, "h%d.ln1w", s->L);
        if (zrt__ckpt_find_tensor(m, name) < 0)
            break;
    }
    if (check_stored(m, "padded_vocab_size", s->Vp) ||
        check_stored(m, "channels", s->C) || check_stored(m, "max_seq_len", s->maxT) ||
        check_stored(m, "layers", s->L) ||
        header_dim(m, "vocab_size", "--vocab-size", vocab, s->Vp == 50304 ? 50257 : s->Vp,
                   &s->V) ||
        header_dim(m, "heads", "--heads", heads, s->C / 64, &s->NH))
        return -1;
    if (s->C < 1 || s->L < 1 || s->NH < 1 || s->C % s->NH != 0 || s->V < 1 ||
        s->V > s->Vp) {
        fprintf(stderr,
                "zero-ckpt llmc: cannot make an llm.c header from C %d, L %d, "
                "heads %d, vocab %d (padded %d); pass --heads and --vocab-size\n",
                s->C, s->L, s->NH, s->V, s->Vp);
        return -1;
    }
    return 0;
}

/* Tensor indices in llm.c's order: wte, wpe, each block kind over the
 * layers, lnfw, lnfb. */
static int llmc_order(const zrt__ckpt_meta *m, const llmc_shape *s, int *order)
{
    int n = 0;
    order[n++] = find(m, "wte");
    order[n++] = find(m, "wpe");
    for (int k = 0; k < 12; k++) {
        for (int l = 0; l < s->L; l++) {
            char name[48];
            snprintf(name, sizeof name, "h%d.%s", l, llmc_block[k]);
            order[n++] = find(m, name);
        }
    }
    order[n++] = find(m, "lnfw");
    order[n++] = find(m, "lnfb");
    for (int i = 0; i < n; i++)
        if (order[i] < 0)
            return -1;
    if (n != m->ntensors) {
        fprintf(stderr,
                "zero-ckpt llmc: the checkpoint holds %d parameters; GPT-2 with "
                "%d layers has %d\n",
                m->ntensors, s->L, n);
        return -1;
    }
    return n;
}

int ckpt_llmc(const char *dir, const char *out, int vocab, int heads)
{
    export_job j;
    if (open_job(&j, dir) != 0)
        return 1;
    llmc_shape s;
    int *order = calloc((size_t)j.c.meta.ntensors + 16 * 12 + 16, sizeof *order);
    int n = -1, rc = 1;
    if (order && llmc_shape_of(&j.c.meta, vocab, heads, &s) == 0 &&
        (size_t)j.c.meta.ntensors <= 4 + 12 * (size_t)s.L)
        n = llmc_order(&j.c.meta, &s, order);
    ckpt_out o;
    if (n > 0 && open_out(&o, out) == 0) {
        int32_t header[256] = {20240326, 3, s.maxT, s.V, s.L, s.NH, s.C, s.Vp};
        ckpt_out_write(&o, header, sizeof header);
        rc = 0;
        for (int i = 0; rc == 0 && i < n; i++)
            rc = write_tensor(&j, order[i], &o) != 0;
        rc = finish(&o, rc);
    }
    if (rc == 0)
        printf(
            "wrote %s: llm.c GPT-2 model (maxT %d, V %d, L %d, heads %d, C %d, Vp %d%s) "
            "from step %lld\n",
            out, s.maxT, s.V, s.L, s.NH, s.C, s.Vp, source_note(&j.c.meta),
            (long long)j.c.meta.step);
    free(order);
    close_job(&j);
    return rc;
}
