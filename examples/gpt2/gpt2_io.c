/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/gpt2/gpt2_io.c — everything in gpt2.h that is not model math:
 * the tensor table (sizes, names, per-layer flags), config checks, llm.c's
 * model file (read, validate, atomic write) and the token streams (a text
 * file as bytes, or llm.c's uint16 token shards) with the per-rank batch
 * arithmetic.
 *
 * Invariants: every failure returns -1 with one sentence in err that names
 * the file (or pattern) and the field or value at fault; out-parameters are
 * untouched on failure; there is no global mutable state. Files are
 * little-endian and so is the host (checked at compile time).
 */
#include "gpt2.h"

#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gpt2_io.c reads and writes little-endian files on a little-endian host only"
#endif

/* Upper bound on every config field: keeps products of fields far from
 * overflow in int arithmetic done by callers (maxT * C, 4 * C, ...). */
#define GPT2_FIELD_MAX (1 << 20)
#define HEADER_BYTES   ((long long)GPT2_HEADER_INTS * 4)

/* ---- errors and checked arithmetic --------------------------------------- */

static void set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
    if (!err || err_size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

/* *out = a * b; returns -1 (and leaves *out) if the product overflows. */
static int mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

/* *acc += a * b * c; returns -1 on overflow. */
static int add_product(size_t *acc, size_t a, size_t b, size_t c)
{
    size_t ab, abc;
    if (mul_size(a, b, &ab) || mul_size(ab, c, &abc) || abc > SIZE_MAX - *acc)
        return -1;
    *acc += abc;
    return 0;
}

/* ---- the tensor table ---------------------------------------------------- */

static const char *const tensor_names[GPT2_NUM_TENSORS] = {
    "wte",  "wpe",  "ln1w", "ln1b", "qkvw",    "qkvb",    "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw",  "fcb",  "fcprojw", "fcprojb", "lnfw",     "lnfb",
};

/* Each tensor's shape as lead x (c_mult * C) x (times_c ? C : 1), where lead
 * is Vp, maxT, L or 1. */
typedef struct tensor_shape {
    char lead; /* 'V' padded vocab, 'T' max seq len, 'L' layers, '1' */
    unsigned char c_mult;
    unsigned char times_c;
} tensor_shape;

static const tensor_shape tensor_shapes[GPT2_NUM_TENSORS] = {
    {'V', 1, 0}, /* wte (Vp, C) */
    {'T', 1, 0}, /* wpe (maxT, C) */
    {'L', 1, 0}, /* ln1w (L, C) */
    {'L', 1, 0}, /* ln1b (L, C) */
    {'L', 3, 1}, /* qkvw (L, 3C, C) */
    {'L', 3, 0}, /* qkvb (L, 3C) */
    {'L', 1, 1}, /* attprojw (L, C, C) */
    {'L', 1, 0}, /* attprojb (L, C) */
    {'L', 1, 0}, /* ln2w (L, C) */
    {'L', 1, 0}, /* ln2b (L, C) */
    {'L', 4, 1}, /* fcw (L, 4C, C) */
    {'L', 4, 0}, /* fcb (L, 4C) */
    {'L', 4, 1}, /* fcprojw (L, C, 4C) */
    {'L', 1, 0}, /* fcprojb (L, C) */
    {'1', 1, 0}, /* lnfw (C) */
    {'1', 1, 0}, /* lnfb (C) */
};

/* Element count of tensor i as factors: size = f[0] * f[1] * f[2]. */
static void tensor_factors(const gpt2_config *cfg, int i, size_t f[3])
{
    const tensor_shape *s = &tensor_shapes[i];
    size_t C = (size_t)cfg->channels;
    f[0] = s->lead == 'V'   ? (size_t)cfg->padded_vocab_size
           : s->lead == 'T' ? (size_t)cfg->max_seq_len
           : s->lead == 'L' ? (size_t)cfg->num_layers
                            : 1;
    f[1] = s->c_mult * C;
    f[2] = s->times_c ? C : 1;
}

/* Total element count with overflow detection; 0 or -1. */
static int checked_total(const gpt2_config *cfg, size_t sizes[GPT2_NUM_TENSORS],
                         size_t *total)
{
    size_t sum = 0;
    for (int i = 0; i < GPT2_NUM_TENSORS; i++) {
        size_t f[3], before = sum;
        tensor_factors(cfg, i, f);
        if (add_product(&sum, f[0], f[1], f[2]))
            return -1;
        if (sizes)
            sizes[i] = sum - before;
    }
    *total = sum;
    return 0;
}

/* cfg should pass gpt2_config_check; a config with a field <= 0, or whose
 * total overflows size_t, yields all-zero sizes and 0. */
size_t gpt2_tensor_sizes(const gpt2_config *cfg, size_t sizes[GPT2_NUM_TENSORS])
{
    size_t total = 0;
    int bad = cfg->max_seq_len <= 0 || cfg->padded_vocab_size <= 0 ||
              cfg->num_layers <= 0 || cfg->channels <= 0;
    if (bad || checked_total(cfg, sizes, &total)) {
        memset(sizes, 0, GPT2_NUM_TENSORS * sizeof sizes[0]);
        return 0;
    }
    return total;
}

/* NULL for an index outside 0..GPT2_NUM_TENSORS-1. */
const char *gpt2_tensor_name(int index)
{
    if (index < 0 || index >= GPT2_NUM_TENSORS)
        return NULL;
    return tensor_names[index];
}

int gpt2_tensor_is_per_layer(int index)
{
    return index >= 2 && index <= 13;
}

/* ---- config checks ------------------------------------------------------- */

/* The six shape fields in model-file header order (header[2..7]). */
typedef struct field_desc {
    const char *name;
    size_t offset;
} field_desc;

static const field_desc header_fields[6] = {
    {"max_seq_len", offsetof(gpt2_config, max_seq_len)},
    {"vocab_size", offsetof(gpt2_config, vocab_size)},
    {"num_layers", offsetof(gpt2_config, num_layers)},
    {"num_heads", offsetof(gpt2_config, num_heads)},
    {"channels", offsetof(gpt2_config, channels)},
    {"padded_vocab_size", offsetof(gpt2_config, padded_vocab_size)},
};

static int field_value(const gpt2_config *cfg, int i)
{
    int v;
    memcpy(&v, (const char *)cfg + header_fields[i].offset, sizeof v);
    return v;
}

static void set_field(gpt2_config *cfg, int i, int v)
{
    memcpy((char *)cfg + header_fields[i].offset, &v, sizeof v);
}

/* The checks behind gpt2_config_check; `who` starts the sentence (a file
 * name, or "gpt2 config"). */
static int check_config(const gpt2_config *cfg, const char *who, char *err,
                        size_t err_size)
{
    for (int i = 0; i < 6; i++) {
        int v = field_value(cfg, i);
        if (v <= 0 || v > GPT2_FIELD_MAX) {
            set_err(err, err_size, "%s: '%s' is %d, expected 1..%d", who,
                    header_fields[i].name, v, GPT2_FIELD_MAX);
            return -1;
        }
    }
    if (cfg->padded_vocab_size < cfg->vocab_size) {
        set_err(err, err_size,
                "%s: 'padded_vocab_size' %d is smaller than 'vocab_size' %d", who,
                cfg->padded_vocab_size, cfg->vocab_size);
        return -1;
    }
    if (cfg->channels % cfg->num_heads != 0) {
        set_err(err, err_size, "%s: 'channels' %d is not a multiple of 'num_heads' %d",
                who, cfg->channels, cfg->num_heads);
        return -1;
    }
    size_t total;
    if (checked_total(cfg, NULL, &total) || total > (SIZE_MAX - HEADER_BYTES) / 4 ||
        total > (size_t)(INT64_MAX - HEADER_BYTES) / 4) {
        set_err(err, err_size,
                "%s: the shape (num_layers %d, channels %d, padded_vocab_size %d) "
                "has too many parameters to address",
                who, cfg->num_layers, cfg->channels, cfg->padded_vocab_size);
        return -1;
    }
    return 0;
}

int gpt2_config_check(const gpt2_config *cfg, char *err, size_t err_size)
{
    if (!cfg) {
        set_err(err, err_size, "gpt2 config: config is NULL");
        return -1;
    }
    return check_config(cfg, "gpt2 config", err, err_size);
}

/* ---- model files --------------------------------------------------------- */

/* Reads exactly `count` items of `size` bytes; 0 or -1 (errno may be 0 at
 * end of file). */
static int read_exact(FILE *fp, void *buf, size_t size, size_t count)
{
    errno = 0;
    return fread(buf, size, count, fp) == count ? 0 : -1;
}

static const char *errno_text(int errnum, const char *if_zero)
{
    return errnum ? strerror(errnum) : if_zero;
}

/* Opens path and reads its size and 256-int header; 0 or -1 with err. */
static int open_with_header(const char *path, FILE **fp_out, long long *bytes,
                            int32_t header[GPT2_HEADER_INTS], char *err, size_t err_size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        set_err(err, err_size, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    errno = 0;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, err_size, "%s: %s", path,
                errno ? strerror(errno) : "not a regular file");
        fclose(fp);
        return -1;
    }
    if (st.st_size < HEADER_BYTES ||
        read_exact(fp, header, sizeof header[0], GPT2_HEADER_INTS)) {
        set_err(err, err_size,
                "%s: file is %lld bytes, too short for the %lld-byte header", path,
                (long long)st.st_size, HEADER_BYTES);
        fclose(fp);
        return -1;
    }
    *bytes = (long long)st.st_size;
    *fp_out = fp;
    return 0;
}

/* Checks a model header and the file size; fills *cfg and *total. */
static int parse_model_header(const char *path, const int32_t *h, long long bytes,
                              gpt2_config *cfg, size_t *total, char *err, size_t err_size)
{
    if (h[0] != GPT2_MODEL_MAGIC) {
        set_err(err, err_size,
                "%s: header field 'magic' is %d, expected %d (an llm.c GPT-2 model file)",
                path, (int)h[0], GPT2_MODEL_MAGIC);
        return -1;
    }
    if (h[1] != GPT2_MODEL_VERSION_F32) {
        set_err(err, err_size,
                "%s: version %d is not supported (3 = fp32; llm.c's bf16 version 5 "
                "files are not read yet)",
                path, (int)h[1]);
        return -1;
    }
    gpt2_config c;
    for (int i = 0; i < 6; i++)
        set_field(&c, i, h[2 + i]);
    if (check_config(&c, path, err, err_size))
        return -1;
    size_t n;
    checked_total(&c, NULL, &n);
    if (bytes != HEADER_BYTES + 4 * (long long)n) {
        set_err(err, err_size,
                "%s: file is %lld bytes but the header's shape needs %lld + 4 x %zu "
                "= %lld bytes",
                path, bytes, HEADER_BYTES, n, HEADER_BYTES + 4 * (long long)n);
        return -1;
    }
    *cfg = c;
    *total = n;
    return 0;
}

/* Opens a model file positioned at its first parameter. */
static int open_model(const char *path, FILE **fp_out, gpt2_config *cfg, size_t *total,
                      char *err, size_t err_size)
{
    int32_t header[GPT2_HEADER_INTS];
    long long bytes;
    FILE *fp;
    if (!path) {
        set_err(err, err_size, "gpt2 model: path is NULL");
        return -1;
    }
    if (open_with_header(path, &fp, &bytes, header, err, err_size))
        return -1;
    if (parse_model_header(path, header, bytes, cfg, total, err, err_size)) {
        fclose(fp);
        return -1;
    }
    *fp_out = fp;
    return 0;
}

int gpt2_model_read_header(const char *path, gpt2_config *cfg, char *err, size_t err_size)
{
    FILE *fp;
    gpt2_config c;
    size_t total;
    if (open_model(path, &fp, &c, &total, err, err_size))
        return -1;
    fclose(fp);
    *cfg = c;
    return 0;
}

/* 0 if the file's shape equals expect, else -1 naming the first field. */
static int check_expected(const char *path, const gpt2_config *got,
                          const gpt2_config *expect, char *err, size_t err_size)
{
    for (int i = 0; i < 6; i++) {
        int g = field_value(got, i), e = field_value(expect, i);
        if (g != e) {
            set_err(err, err_size, "%s: '%s' is %d but this run expects %d", path,
                    header_fields[i].name, g, e);
            return -1;
        }
    }
    return 0;
}

int gpt2_model_read(const char *path, const gpt2_config *expect, float *params, char *err,
                    size_t err_size)
{
    FILE *fp;
    gpt2_config c;
    size_t total;
    if (open_model(path, &fp, &c, &total, err, err_size))
        return -1;
    int rc = -1;
    if (expect && check_expected(path, &c, expect, err, err_size))
        goto out;
    if (!params) {
        set_err(err, err_size, "%s: params is NULL", path);
        goto out;
    }
    if (read_exact(fp, params, sizeof(float), total)) {
        set_err(err, err_size, "%s: cannot read the %zu parameters: %s", path, total,
                errno_text(errno, "file shrank while reading"));
        goto out;
    }
    rc = 0;
out:
    fclose(fp);
    return rc;
}

/* ---- reading a model file piece by piece ------------------------------- */

struct gpt2_model_file {
    FILE *fp;
    char *path;   /* for messages */
    size_t total; /* parameters in the file */
};

int gpt2_model_open(const char *path, const gpt2_config *expect, gpt2_model_file **out,
                    char *err, size_t err_size)
{
    FILE *fp;
    gpt2_config c;
    size_t total;
    if (open_model(path, &fp, &c, &total, err, err_size))
        return -1;
    if (expect && check_expected(path, &c, expect, err, err_size)) {
        fclose(fp);
        return -1;
    }
    gpt2_model_file *f = malloc(sizeof *f);
    char *copy = strdup(path);
    if (!f || !copy) {
        set_err(err, err_size, "%s: out of memory opening the model file", path);
        free(f);
        free(copy);
        fclose(fp);
        return -1;
    }
    *f = (gpt2_model_file){.fp = fp, .path = copy, .total = total};
    *out = f;
    return 0;
}

int gpt2_model_read_at(gpt2_model_file *f, size_t first, size_t count, float *dst,
                       char *err, size_t err_size)
{
    if (first > f->total || count > f->total - first) {
        set_err(err, err_size, "%s: parameters [%zu, %zu) are past the file's %zu",
                f->path, first, first + count, f->total);
        return -1;
    }
    char *at = (char *)dst;
    size_t left = count * sizeof(float);
    off_t offset = (off_t)HEADER_BYTES + (off_t)first * (off_t)sizeof(float);
    while (left > 0) {
        errno = 0;
        ssize_t got = pread(fileno(f->fp), at, left, offset);
        if (got <= 0) {
            set_err(err, err_size, "%s: cannot read parameters [%zu, %zu): %s", f->path,
                    first, first + count, errno_text(errno, "file shrank while reading"));
            return -1;
        }
        at += got;
        offset += got;
        left -= (size_t)got;
    }
    return 0;
}

void gpt2_model_close(gpt2_model_file *f)
{
    if (!f)
        return;
    fclose(f->fp);
    free(f->path);
    free(f);
}

/* Writes header and params to an open stream and makes them durable;
 * closes fp in every case. 0, or -1 with errno set. */
static int write_and_sync(FILE *fp, const int32_t *header, const float *params,
                          size_t total)
{
    int ok = fwrite(header, sizeof header[0], GPT2_HEADER_INTS, fp) == GPT2_HEADER_INTS &&
             fwrite(params, sizeof(float), total, fp) == total && fflush(fp) == 0 &&
             fsync(fileno(fp)) == 0;
    int saved = ok ? 0 : (errno ? errno : EIO);
    if (fclose(fp) != 0 && ok) {
        ok = 0;
        saved = errno ? errno : EIO;
    }
    errno = saved;
    return ok ? 0 : -1;
}

static void build_model_header(const gpt2_config *cfg, int32_t h[GPT2_HEADER_INTS])
{
    memset(h, 0, GPT2_HEADER_INTS * sizeof h[0]);
    h[0] = GPT2_MODEL_MAGIC;
    h[1] = GPT2_MODEL_VERSION_F32;
    for (int i = 0; i < 6; i++)
        h[2 + i] = field_value(cfg, i);
}

int gpt2_model_write(const char *path, const gpt2_config *cfg, const float *params,
                     char *err, size_t err_size)
{
    if (!path || !cfg || !params) {
        set_err(err, err_size, "gpt2 model write: %s is NULL",
                !path  ? "path"
                : !cfg ? "config"
                       : "params");
        return -1;
    }
    if (check_config(cfg, path, err, err_size))
        return -1;
    size_t total;
    checked_total(cfg, NULL, &total);
    int32_t header[GPT2_HEADER_INTS];
    build_model_header(cfg, header);

    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    if (!tmp) {
        set_err(err, err_size, "%s: out of memory for the temporary name", path);
        return -1;
    }
    snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        set_err(err, err_size, "%s: cannot create '%s': %s", path, tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *stage = "write";
    int rc = write_and_sync(fp, header, params, total);
    if (rc == 0) {
        stage = "rename";
        rc = rename(tmp, path);
    }
    if (rc != 0) {
        int saved = errno;
        remove(tmp);
        set_err(err, err_size, "%s: cannot %s '%s': %s", path, stage, tmp,
                strerror(saved));
    }
    free(tmp);
    return rc == 0 ? 0 : -1;
}

/* ---- token streams ------------------------------------------------------- */

struct gpt2_data {
    uint16_t *tokens; /* (ntok) every token below the vocabulary size */
    size_t ntok;
    size_t nfiles; /* the text file, or the shards the pattern matched */
};

static int make_data(uint16_t *tokens, size_t ntok, size_t nfiles, gpt2_data **out)
{
    gpt2_data *d = malloc(sizeof *d);
    if (!d)
        return -1;
    d->tokens = tokens;
    d->ntok = ntok;
    d->nfiles = nfiles;
    *out = d;
    return 0;
}

/* Reads all of fp into a growing byte buffer; 0 or -1 with errno. */
static int slurp(FILE *fp, unsigned char **buf_out, size_t *len_out)
{
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, fp);
        if (ferror(fp)) {
            free(buf);
            return -1;
        }
        if (len < cap)
            break;
        unsigned char *bigger = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
        if (!bigger)
            free(buf);
        buf = bigger;
        cap *= 2;
    }
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    *buf_out = buf;
    *len_out = len;
    return 0;
}

int gpt2_data_open_text(const char *path, gpt2_data **out, char *err, size_t err_size)
{
    FILE *fp = path ? fopen(path, "rb") : NULL;
    if (!fp) {
        set_err(err, err_size, "%s: cannot open: %s", path ? path : "(null)",
                path ? strerror(errno) : "path is NULL");
        return -1;
    }
    unsigned char *bytes;
    size_t n;
    int rc = slurp(fp, &bytes, &n);
    int saved = errno;
    fclose(fp);
    if (rc) {
        set_err(err, err_size, "%s: cannot read: %s", path, strerror(saved));
        return -1;
    }
    uint16_t *tokens = n ? malloc(n * sizeof *tokens) : NULL;
    if (n == 0 || !tokens || make_data(tokens, n, 1, out)) {
        set_err(err, err_size, "%s: %s", path,
                n == 0 ? "file is empty; there are no tokens to read"
                       : "out of memory for the tokens");
        free(tokens);
        free(bytes);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        tokens[i] = bytes[i];
    free(bytes);
    return 0;
}

/* Opens one shard, checks its header against its size; *ntok on success.
 * Leaves fp positioned at the first token. */
static int open_shard(const char *path, FILE **fp_out, size_t *ntok, char *err,
                      size_t err_size)
{
    int32_t h[GPT2_HEADER_INTS];
    long long bytes;
    FILE *fp;
    if (open_with_header(path, &fp, &bytes, h, err, err_size))
        return -1;
    if (h[0] != GPT2_SHARD_MAGIC) {
        set_err(err, err_size,
                "%s: header field 'magic' is %d, expected %d (an llm.c token shard)",
                path, (int)h[0], GPT2_SHARD_MAGIC);
    } else if (h[1] != GPT2_SHARD_VERSION) {
        set_err(err, err_size, "%s: header field 'version' is %d, expected %d", path,
                (int)h[1], GPT2_SHARD_VERSION);
    } else if (h[2] < 0 || bytes != HEADER_BYTES + 2 * (long long)h[2]) {
        set_err(err, err_size,
                "%s: header field 'ntok' is %d, which needs a file of %lld + 2 x %d "
                "bytes, but the file is %lld bytes",
                path, (int)h[2], HEADER_BYTES, (int)h[2], bytes);
    } else {
        *ntok = (size_t)h[2];
        *fp_out = fp;
        return 0;
    }
    fclose(fp);
    return -1;
}

/* Reads one shard's tokens into dst, checking each against vocab_size. */
static int read_shard(const char *path, FILE *fp, size_t ntok, int vocab_size,
                      uint16_t *dst, char *err, size_t err_size)
{
    if (read_exact(fp, dst, sizeof *dst, ntok)) {
        set_err(err, err_size, "%s: cannot read the %zu tokens: %s", path, ntok,
                errno_text(errno, "file shrank while reading"));
        return -1;
    }
    for (size_t i = 0; i < ntok; i++) {
        if (dst[i] >= vocab_size) {
            set_err(err, err_size, "%s: token %zu is %u, not below 'vocab_size' %d", path,
                    i, (unsigned)dst[i], vocab_size);
            return -1;
        }
    }
    return 0;
}

/* Sorts in byte order, independent of the locale glob(3) used. */
static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Expands pattern; 0 with at least one path in g, or -1 with err. */
static int expand_pattern(const char *pattern, glob_t *g, char *err, size_t err_size)
{
    int rc = glob(pattern, 0, NULL, g);
    if (rc == 0) {
        qsort(g->gl_pathv, g->gl_pathc, sizeof g->gl_pathv[0], cmp_path);
        return 0;
    }
    set_err(err, err_size, "%s: %s", pattern,
            rc == GLOB_NOMATCH   ? "no file matches this shard pattern"
            : rc == GLOB_NOSPACE ? "out of memory expanding this shard pattern"
                                 : "cannot read a directory in this shard pattern");
    globfree(g);
    return -1;
}

/* Pass 1: checks every header and records its token count; sums them. */
static int count_shards(const glob_t *g, size_t *counts, size_t *total, char *err,
                        size_t err_size)
{
    *total = 0;
    for (size_t i = 0; i < g->gl_pathc; i++) {
        FILE *fp;
        if (open_shard(g->gl_pathv[i], &fp, &counts[i], err, err_size))
            return -1;
        fclose(fp);
        *total += counts[i];
    }
    return 0;
}

/* Pass 2: reads every shard's tokens, in order, into one stream. */
static int load_shards(const glob_t *g, const size_t *counts, int vocab_size,
                       uint16_t *tokens, char *err, size_t err_size)
{
    size_t at = 0;
    for (size_t i = 0; i < g->gl_pathc; i++) {
        const char *path = g->gl_pathv[i];
        FILE *fp;
        size_t n;
        if (open_shard(path, &fp, &n, err, err_size))
            return -1;
        int rc = -1;
        if (n != counts[i])
            set_err(err, err_size,
                    "%s: header field 'ntok' changed from %zu to %zu "
                    "while loading",
                    path, counts[i], n);
        else
            rc = read_shard(path, fp, n, vocab_size, tokens + at, err, err_size);
        fclose(fp);
        if (rc)
            return -1;
        at += n;
    }
    return 0;
}

/* Both passes over the matched files: *tokens_out (caller frees) and
 * *total_out on success. */
static int gather_shards(const glob_t *g, const char *pattern, int vocab_size,
                         uint16_t **tokens_out, size_t *total_out, char *err,
                         size_t err_size)
{
    size_t total, *counts = calloc(g->gl_pathc, sizeof *counts);
    uint16_t *tokens = NULL;
    if (!counts) {
        set_err(err, err_size, "%s: out of memory", pattern);
        return -1;
    }
    if (count_shards(g, counts, &total, err, err_size))
        goto fail;
    if (total == 0) {
        set_err(err, err_size, "%s: the %zu matched shard files hold no tokens", pattern,
                (size_t)g->gl_pathc);
        goto fail;
    }
    tokens = total <= SIZE_MAX / sizeof *tokens ? malloc(total * sizeof *tokens) : NULL;
    if (!tokens) {
        set_err(err, err_size, "%s: out of memory for %zu tokens", pattern, total);
        goto fail;
    }
    if (load_shards(g, counts, vocab_size, tokens, err, err_size))
        goto fail;
    free(counts);
    *tokens_out = tokens;
    *total_out = total;
    return 0;
fail:
    free(tokens);
    free(counts);
    return -1;
}

int gpt2_data_open_shards(const char *pattern, int vocab_size, gpt2_data **out, char *err,
                          size_t err_size)
{
    if (!pattern || vocab_size <= 0 || vocab_size > 65536) {
        set_err(err, err_size,
                "%s: 'vocab_size' is %d, expected 1..65536 (uint16 tokens)",
                pattern ? pattern : "(null pattern)", vocab_size);
        return -1;
    }
    glob_t g;
    if (expand_pattern(pattern, &g, err, err_size))
        return -1;
    uint16_t *tokens;
    size_t total;
    int rc = gather_shards(&g, pattern, vocab_size, &tokens, &total, err, err_size);
    if (rc) {
        globfree(&g);
        return -1;
    }
    if (make_data(tokens, total, g.gl_pathc, out)) {
        set_err(err, err_size, "%s: out of memory", pattern);
        free(tokens);
        globfree(&g);
        return -1;
    }
    globfree(&g);
    return 0;
}

size_t gpt2_data_num_tokens(const gpt2_data *d)
{
    return d ? d->ntok : 0;
}

size_t gpt2_data_num_files(const gpt2_data *d)
{
    return d ? d->nfiles : 0;
}

/* (a + b) mod m for a, b < m, without overflow. */
static uint64_t add_mod(uint64_t a, uint64_t b, uint64_t m)
{
    return a >= m - b ? a - (m - b) : a + b;
}

/* (a * b) mod m without overflow, for any m > 0. */
static uint64_t mul_mod(uint64_t a, uint64_t b, uint64_t m)
{
    a %= m;
    b %= m;
    if (a == 0 || b <= UINT64_MAX / a)
        return (a * b) % m;
    uint64_t r = 0;
    for (; b; b >>= 1) {
        if (b & 1)
            r = add_mod(r, a, m);
        a = add_mod(a, a, m);
    }
    return r;
}

/* Also returns -1, touching nothing, for arguments outside their ranges:
 * world < 1, rank outside 0..world-1, B or T < 1, batch_index < 0. */
int gpt2_data_batch(const gpt2_data *d, long batch_index, int rank, int world, int B,
                    int T, int *inputs, int *targets)
{
    size_t n;
    if (!d || !inputs || !targets || batch_index < 0 || world < 1 || rank < 0 ||
        rank >= world || B < 1 || T < 1 || mul_size((size_t)B, (size_t)T, &n) ||
        n == SIZE_MAX)
        return -1;
    if (d->ntok < n + 1)
        return -1;
    uint64_t m = (uint64_t)(d->ntok - n);
    /* start = ((g * world + rank) * n) mod m, reduced step by step */
    uint64_t k = add_mod(mul_mod((uint64_t)batch_index, (uint64_t)world, m),
                         (uint64_t)rank % m, m);
    size_t start = (size_t)mul_mod(k, (uint64_t)n, m);
    const uint16_t *src = d->tokens + start; /* start + n <= ntok - 1 */
    for (size_t i = 0; i < n; i++) {
        inputs[i] = src[i];
        targets[i] = src[i + 1];
    }
    return 0;
}

void gpt2_data_close(gpt2_data *d)
{
    if (!d)
        return;
    free(d->tokens);
    free(d);
}
