/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/test_gpt2_io.c — Check suite "gpt2_io": the GPT-2 example's
 * file and data layer (examples/gpt2/gpt2_io.c). Tensor sizes for the 124M
 * shape, names, config checks; llm.c model files written and read back
 * bit-identically, with the header checked by an independent reader here;
 * one-sentence refusals that name the file and field; atomic writes that
 * leave no temp file; token shards and text as token streams; and the
 * per-rank batch windows (layout, shift, wrap-around, short streams).
 * main() returns 0 only if all pass.
 */
#include "gpt2.h"

#include "../common/test_check.h"
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERRBUF 512

/* ---- fixtures: a root under /tmp per run, a fresh folder per test -------- *
 * The root is removed by an unchecked teardown, which runs in the parent
 * process, so a failed test (whose checked teardown may not run) leaves
 * nothing behind either. */

static char g_root[64];
static char g_dir[96];

static void make_root(void)
{
    snprintf(g_root, sizeof g_root, "/tmp/zrt_test_gpt2_io_XXXXXX");
    if (!mkdtemp(g_root)) {
        perror("test_gpt2_io: mkdtemp under /tmp");
        g_root[0] = '\0';
    }
}

static void make_dir(void)
{
    ck_assert_msg(g_root[0] != '\0', "no temporary root folder");
    snprintf(g_dir, sizeof g_dir, "%s/test_XXXXXX", g_root);
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void drop_dir(void)
{
    test_remove_tree(g_dir);
}

static void drop_root(void)
{
    if (g_root[0])
        test_remove_tree(g_root);
}

/* g_dir/name into buf. */
static const char *in_dir(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", g_dir, name);
    return buf;
}

/* ---- helpers ------------------------------------------------------------- */

/* A small shape whose six fields are all different, so a header written in
 * the wrong order cannot read back as the same numbers. */
static gpt2_config small_config(void)
{
    gpt2_config c = {6, 50, 64, 3, 4, 8}; /* maxT, V, Vp, L, NH, C */
    return c;
}

/* Deterministic pseudo-random floats, with a few special bit patterns. */
static float *random_params(size_t n, uint32_t seed)
{
    float *p = malloc(n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    test_rng r = test_rng_seed(seed);
    test_fill_f32(&r, p, n);
    uint32_t specials[] = {0x80000000u /* -0 */, 0x7fc01234u /* NaN payload */,
                           0x00000001u /* denormal */, 0x7f800000u /* inf */};
    for (size_t i = 0; i < 4 && i < n; i++)
        memcpy(&p[n - 1 - i], &specials[i], sizeof(float));
    return p;
}

static long file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

/* Writes a valid small model to g_dir/model.bin and its path into path
 * (PATH_MAX bytes); returns its parameters (caller frees). */
static float *write_small_model(char *path, size_t *total)
{
    in_dir(path, PATH_MAX, "model.bin");
    gpt2_config c = small_config();
    size_t sizes[GPT2_NUM_TENSORS];
    *total = gpt2_tensor_sizes(&c, sizes);
    float *p = random_params(*total, 42);
    char err[ERRBUF] = "";
    ck_assert_msg(gpt2_model_write(path, &c, p, err, sizeof err) == 0, "%s", err);
    return p;
}

/* Overwrites int32 number `index` of the file's header. */
static void patch_int(const char *path, int index, int32_t value)
{
    FILE *fp = fopen(path, "r+b");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fseek(fp, 4L * index, SEEK_SET), 0);
    ck_assert_int_eq(fwrite(&value, 4, 1, fp), 1);
    ck_assert_int_eq(fclose(fp), 0);
}

/* Asserts msg contains each of the two needles. */
static void assert_has(const char *msg, const char *a, const char *b)
{
    ck_assert_msg(strstr(msg, a) != NULL, "'%s' not in: %s", a, msg);
    ck_assert_msg(strstr(msg, b) != NULL, "'%s' not in: %s", b, msg);
}

/* Expects gpt2_model_read_header to refuse path naming path and field,
 * leaving *cfg untouched; also gpt2_model_read. */
static void expect_model_refused(const char *path, const char *field)
{
    gpt2_config c, sentinel;
    memset(&c, 0x5a, sizeof c);
    sentinel = c;
    char err[ERRBUF] = "";
    ck_assert_int_eq(gpt2_model_read_header(path, &c, err, sizeof err), -1);
    ck_assert_int_eq(memcmp(&c, &sentinel, sizeof c), 0);
    assert_has(err, path, field);
    static float room[1 << 14]; /* more than any model written here */
    err[0] = '\0';
    ck_assert_int_eq(gpt2_model_read(path, NULL, room, err, sizeof err), -1);
    assert_has(err, path, field);
}

/* Writes an llm.c token shard with the given header and tokens. */
static void write_shard(const char *path, int32_t magic, int32_t version,
                        int32_t ntok_header, const uint16_t *tokens, size_t n)
{
    int32_t h[GPT2_HEADER_INTS] = {0};
    h[0] = magic;
    h[1] = version;
    h[2] = ntok_header;
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fwrite(h, 4, GPT2_HEADER_INTS, fp), GPT2_HEADER_INTS);
    ck_assert_int_eq(fwrite(tokens, 2, n, fp), n);
    ck_assert_int_eq(fclose(fp), 0);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fwrite(data, 1, n, fp), n);
    ck_assert_int_eq(fclose(fp), 0);
}

/* The whole stream, read through gpt2_data_batch (B=1, T=ntok-1). */
static int *all_tokens(const gpt2_data *d)
{
    size_t n = gpt2_data_num_tokens(d);
    int *in = malloc(n * sizeof *in), *tg = malloc(n * sizeof *tg);
    ck_assert(in && tg);
    ck_assert_int_eq(gpt2_data_batch(d, 0, 0, 1, 1, (int)(n - 1), in, tg), 0);
    in[n - 1] = tg[n - 2];
    free(tg);
    return in;
}

/* Opens pattern as shards expecting refusal naming both needles. */
static void expect_shards_refused(const char *pattern, int vocab, const char *a,
                                  const char *b)
{
    static int sentinel;
    gpt2_data *d = (gpt2_data *)&sentinel, *const before = d; /* stays untouched */
    char err[ERRBUF] = "";
    ck_assert_int_eq(gpt2_data_open_shards(pattern, vocab, &d, err, sizeof err), -1);
    ck_assert_ptr_eq(d, before);
    assert_has(err, a, b);
}

/* ---- tensor table and config --------------------------------------------- */

START_TEST(test_sizes_124m)
{
    gpt2_config c = {.max_seq_len = 1024,
                     .vocab_size = 50257,
                     .padded_vocab_size = 50304,
                     .num_layers = 12,
                     .num_heads = 12,
                     .channels = 768};
    size_t sizes[GPT2_NUM_TENSORS];
    const size_t want[GPT2_NUM_TENSORS] = {
        50304 * 768,     1024 * 768, 12 * 768, 12 * 768, 12 * 2304 * 768, 12 * 2304,
        12 * 768 * 768,  12 * 768,   12 * 768, 12 * 768, 12 * 3072 * 768, 12 * 3072,
        12 * 768 * 3072, 12 * 768,   768,      768};
    ck_assert_uint_eq(gpt2_tensor_sizes(&c, sizes), 124475904u);
    size_t sum = 0;
    for (int i = 0; i < GPT2_NUM_TENSORS; i++) {
        ck_assert_msg(sizes[i] == want[i], "tensor %d: %zu != %zu", i, sizes[i], want[i]);
        sum += sizes[i];
    }
    ck_assert_uint_eq(sum, 124475904u);
    char err[ERRBUF] = "";
    ck_assert_msg(gpt2_config_check(&c, err, sizeof err) == 0, "%s", err);
}
END_TEST

START_TEST(test_names)
{
    static const char *const want[GPT2_NUM_TENSORS] = {
        "wte",  "wpe",  "ln1w", "ln1b", "qkvw",    "qkvb",    "attprojw", "attprojb",
        "ln2w", "ln2b", "fcw",  "fcb",  "fcprojw", "fcprojb", "lnfw",     "lnfb"};
    for (int i = 0; i < GPT2_NUM_TENSORS; i++) {
        ck_assert_str_eq(gpt2_tensor_name(i), want[i]);
        ck_assert_int_eq(gpt2_tensor_is_per_layer(i), i >= 2 && i <= 13);
    }
    ck_assert_ptr_null(gpt2_tensor_name(-1));
    ck_assert_ptr_null(gpt2_tensor_name(GPT2_NUM_TENSORS));
    ck_assert_int_eq(gpt2_tensor_is_per_layer(GPT2_NUM_TENSORS), 0);
}
END_TEST

START_TEST(test_config_check)
{
    char err[ERRBUF];
    gpt2_config c = small_config();
    c.num_layers = 0;
    ck_assert_int_eq(gpt2_config_check(&c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "num_layers"));
    c = small_config();
    c.max_seq_len = -3;
    ck_assert_int_eq(gpt2_config_check(&c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "max_seq_len"));
    c = small_config();
    c.padded_vocab_size = 49;
    ck_assert_int_eq(gpt2_config_check(&c, err, sizeof err), -1);
    assert_has(err, "padded_vocab_size", "'vocab_size'");
    c = small_config();
    c.num_heads = 3;
    ck_assert_int_eq(gpt2_config_check(&c, err, sizeof err), -1);
    assert_has(err, "channels", "num_heads");
    c = small_config();
    c.channels = 1 << 21;
    ck_assert_int_eq(gpt2_config_check(&c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "channels"));
    /* every field at the bound: 4 x the parameter count overflows size_t */
    gpt2_config big = {1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20};
    ck_assert_int_eq(gpt2_config_check(&big, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "too many parameters"));
    /* unchecked and past the bound: the count itself overflows, sizes say 0 */
    big.num_layers = big.channels = INT_MAX;
    size_t sizes[GPT2_NUM_TENSORS];
    ck_assert_uint_eq(gpt2_tensor_sizes(&big, sizes), 0);
    ck_assert_uint_eq(sizes[0], 0);
}
END_TEST

/* ---- model files ---------------------------------------------------------- */

START_TEST(test_model_roundtrip)
{
    char path[PATH_MAX];
    size_t total;
    float *p = write_small_model(path, &total);
    gpt2_config c, want = small_config();
    char err[ERRBUF] = "";
    ck_assert_msg(gpt2_model_read_header(path, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(memcmp(&c, &want, sizeof c), 0);
    float *q = malloc(total * sizeof *q);
    ck_assert_ptr_nonnull(q);
    memset(q, 0xee, total * sizeof *q);
    ck_assert_msg(gpt2_model_read(path, &want, q, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(memcmp(p, q, total * sizeof *q), 0);
    memset(q, 0xee, total * sizeof *q);
    ck_assert_msg(gpt2_model_read(path, NULL, q, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(memcmp(p, q, total * sizeof *q), 0);
    free(p);
    free(q);
}
END_TEST

/* Reads the written file with plain fread, against llm.c's layout. */
START_TEST(test_model_header_layout)
{
    char path[PATH_MAX];
    size_t total;
    float *p = write_small_model(path, &total);
    /* wte 64*8 + wpe 6*8 + 3 layers x 872 + lnf 2*8, where a layer is
     * ln1 16 + qkv 24*8+24 + attproj 64+8 + ln2 16 + fc 32*8+32 + fcproj 256+8 */
    ck_assert_uint_eq(total, 512 + 48 + 3 * 872 + 16);
    ck_assert_int_eq(file_size(path), 1024 + 4 * (long)total);
    int32_t h[256];
    float first[2];
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fread(h, sizeof(int32_t), 256, fp), 256);
    ck_assert_int_eq(fread(first, sizeof(float), 2, fp), 2);
    fclose(fp);
    ck_assert_int_eq(h[0], 20240326); /* magic */
    ck_assert_int_eq(h[1], 3);        /* version: fp32 */
    ck_assert_int_eq(h[2], 6);        /* max_seq_len */
    ck_assert_int_eq(h[3], 50);       /* vocab_size */
    ck_assert_int_eq(h[4], 3);        /* num_layers */
    ck_assert_int_eq(h[5], 4);        /* num_heads */
    ck_assert_int_eq(h[6], 8);        /* channels */
    ck_assert_int_eq(h[7], 64);       /* padded_vocab_size */
    for (int i = 8; i < 256; i++)
        ck_assert_msg(h[i] == 0, "header[%d] is %d, expected 0", i, h[i]);
    ck_assert_int_eq(memcmp(first, p, sizeof first), 0); /* wte comes first */
    free(p);
}
END_TEST

START_TEST(test_model_refusals)
{
    char path[PATH_MAX];
    size_t total;
    free(write_small_model(path, &total));
    /* one header int at a time made bad, then put back */
    static const struct {
        int index;
        int32_t bad, good;
        const char *field; /* what the refusal names */
    } patches[] = {
        {0, 12345, 20240326, "'magic'"},
        {1, 5, 3, "version 5"},
        {5, 3, 4, "'channels' 8 is not a multiple of 'num_heads' 3"},
        {7, 40, 64, "'padded_vocab_size' 40"},
        {4, 0, 3, "'num_layers' is 0"},
    };
    for (size_t i = 0; i < sizeof patches / sizeof patches[0]; i++) {
        patch_int(path, patches[i].index, patches[i].bad);
        expect_model_refused(path, patches[i].field);
        patch_int(path, patches[i].index, patches[i].good);
    }

    long size = file_size(path);
    ck_assert_int_eq(truncate(path, size - 4), 0); /* truncated */
    expect_model_refused(path, "bytes");
    ck_assert_int_eq(truncate(path, size + 4), 0); /* trailing bytes */
    expect_model_refused(path, "bytes");
    ck_assert_int_eq(truncate(path, 100), 0); /* shorter than the header */
    expect_model_refused(path, "header");
}
END_TEST

START_TEST(test_model_expect_mismatch)
{
    char path[PATH_MAX];
    size_t total;
    free(write_small_model(path, &total));
    gpt2_config want = small_config();
    want.num_layers = 4;
    float *q = malloc(total * sizeof *q);
    ck_assert_ptr_nonnull(q);
    char err[ERRBUF] = "";
    ck_assert_int_eq(gpt2_model_read(path, &want, q, err, sizeof err), -1);
    assert_has(err, path, "'num_layers' is 3 but this run expects 4");
    free(q);
    in_dir(path, sizeof path, "missing.bin");
    ck_assert_int_eq(gpt2_model_read_header(path, &want, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

/* Asserts g_dir holds exactly the one entry `only`. */
static void assert_dir_holds_only(const char *only)
{
    DIR *d = opendir(g_dir);
    ck_assert_ptr_nonnull(d);
    int seen = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        ck_assert_msg(!strcmp(e->d_name, only), "unexpected file left: %s", e->d_name);
        seen++;
    }
    closedir(d);
    ck_assert_int_eq(seen, 1);
}

START_TEST(test_model_write_leaves_no_temp)
{
    char path[PATH_MAX];
    size_t total;
    float *p = write_small_model(path, &total);
    free(write_small_model(path, &total)); /* overwrite in place */
    assert_dir_holds_only("model.bin");

    /* a failing rename (the target is a directory) removes the temp file */
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    gpt2_config c = small_config();
    char err[ERRBUF] = "";
    ck_assert_int_eq(gpt2_model_write(path, &c, p, err, sizeof err), -1);
    assert_has(err, path, "rename");
    assert_dir_holds_only("model.bin");

    /* a bad shape writes nothing */
    ck_assert_int_eq(rmdir(path), 0);
    c.num_heads = 3;
    ck_assert_int_eq(gpt2_model_write(path, &c, p, err, sizeof err), -1);
    assert_has(err, path, "num_heads");
    ck_assert_int_eq(access(path, F_OK), -1);
    free(p);
}
END_TEST

/* ---- token streams -------------------------------------------------------- */

START_TEST(test_shards_valid)
{
    char a[PATH_MAX], b[PATH_MAX], other[PATH_MAX], pattern[PATH_MAX];
    const uint16_t t0[5] = {1, 2, 3, 4, 5};
    const uint16_t t1[7] = {600, 7, 8, 9, 10, 11, 999};
    /* written out of order: the reader must sort by name */
    write_shard(in_dir(b, sizeof b, "s_001.bin"), 20240520, 1, 7, t1, 7);
    write_shard(in_dir(a, sizeof a, "s_000.bin"), 20240520, 1, 5, t0, 5);
    write_shard(in_dir(other, sizeof other, "x_000.bin"), 1, 1, 5, t0, 5);
    in_dir(pattern, sizeof pattern, "s_*.bin");
    gpt2_data *d = NULL;
    char err[ERRBUF] = "";
    ck_assert_msg(gpt2_data_open_shards(pattern, 1000, &d, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_uint_eq(gpt2_data_num_tokens(d), 12);
    int *all = all_tokens(d);
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(all[i], i < 5 ? t0[i] : t1[i - 5]);
    free(all);
    gpt2_data_close(d);
    gpt2_data_close(NULL);
}
END_TEST

START_TEST(test_shards_refused)
{
    char p[PATH_MAX], pat[PATH_MAX];
    const uint16_t t[10] = {1, 2, 3, 100, 5, 6, 7, 8, 9, 10};
    write_shard(in_dir(p, sizeof p, "magic_0.bin"), 20240326, 1, 10, t, 10);
    expect_shards_refused(in_dir(pat, sizeof pat, "magic_*.bin"), 200, p, "'magic'");
    write_shard(in_dir(p, sizeof p, "version_0.bin"), 20240520, 2, 10, t, 10);
    expect_shards_refused(in_dir(pat, sizeof pat, "version_*.bin"), 200, p, "'version'");
    write_shard(in_dir(p, sizeof p, "count_0.bin"), 20240520, 1, 11, t, 10);
    expect_shards_refused(in_dir(pat, sizeof pat, "count_*.bin"), 200, p, "'ntok'");
    write_shard(in_dir(p, sizeof p, "count_1.bin"), 20240520, 1, 9, t, 10);
    expect_shards_refused(in_dir(pat, sizeof pat, "count_1.bin"), 200, p, "'ntok'");
    /* the second of two shards is bad: refused, naming it */
    write_shard(in_dir(p, sizeof p, "vocab_0.bin"), 20240520, 1, 3, t, 3);
    write_shard(in_dir(p, sizeof p, "vocab_1.bin"), 20240520, 1, 10, t, 10);
    expect_shards_refused(in_dir(pat, sizeof pat, "vocab_*.bin"), 100, p,
                          "token 3 is 100, not below 'vocab_size' 100");
    expect_shards_refused(in_dir(pat, sizeof pat, "none_*.bin"), 100, pat,
                          "no file matches");
    expect_shards_refused(in_dir(pat, sizeof pat, "vocab_0.bin"), 70000, pat,
                          "'vocab_size'");
}
END_TEST

START_TEST(test_text_bytes)
{
    char p[PATH_MAX];
    const unsigned char text[] = {'h', 'i', 0x00, 0xff, 0x80, '\n', 'z'};
    write_bytes(in_dir(p, sizeof p, "t.txt"), text, sizeof text);
    gpt2_data *d = NULL;
    char err[ERRBUF] = "";
    ck_assert_msg(gpt2_data_open_text(p, &d, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(gpt2_data_num_tokens(d), sizeof text);
    int *all = all_tokens(d);
    for (size_t i = 0; i < sizeof text; i++)
        ck_assert_int_eq(all[i], text[i]);
    free(all);
    gpt2_data_close(d);

    write_bytes(in_dir(p, sizeof p, "empty.txt"), "", 0);
    ck_assert_int_eq(gpt2_data_open_text(p, &d, err, sizeof err), -1);
    assert_has(err, p, "empty");
    in_dir(p, sizeof p, "missing.txt");
    ck_assert_int_eq(gpt2_data_open_text(p, &d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, p));
}
END_TEST

/* A stream whose token at index i is i (ntok <= 65536). */
static gpt2_data *index_stream(size_t ntok)
{
    char p[PATH_MAX], err[ERRBUF] = "";
    uint16_t *t = malloc(ntok * sizeof *t);
    ck_assert_ptr_nonnull(t);
    for (size_t i = 0; i < ntok; i++)
        t[i] = (uint16_t)i;
    write_shard(in_dir(p, sizeof p, "index.bin"), 20240520, 1, (int32_t)ntok, t, ntok);
    free(t);
    gpt2_data *d = NULL;
    ck_assert_msg(gpt2_data_open_shards(p, 65536, &d, err, sizeof err) == 0, "%s", err);
    return d;
}

/* Where the window of (g, rank, world) must start, computed in 128 bits. */
static size_t expected_start(long g, int rank, int world, size_t n, size_t ntok)
{
    unsigned __int128 k = (unsigned __int128)g * (unsigned)world + (unsigned)rank;
    return (size_t)((k * n) % (ntok - n));
}

/* Checks one window: in bounds, at the expected start, targets shifted. */
static void check_window(const gpt2_data *d, long g, int rank, int world, int B, int T)
{
    size_t n = (size_t)B * T, ntok = gpt2_data_num_tokens(d);
    int *in = malloc(n * sizeof *in), *tg = malloc(n * sizeof *tg);
    ck_assert(in && tg);
    ck_assert_int_eq(gpt2_data_batch(d, g, rank, world, B, T, in, tg), 0);
    size_t start = expected_start(g, rank, world, n, ntok);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg((size_t)in[i] < ntok && (size_t)tg[i] < ntok,
                      "g %ld rank %d: index out of bounds", g, rank);
        ck_assert_msg((size_t)in[i] == start + i,
                      "g %ld rank %d world %d i %zu: %d != %zu", g, rank, world, i, in[i],
                      start + i);
        ck_assert_int_eq(tg[i], in[i] + 1);
    }
    free(in);
    free(tg);
}

/* Rank r of world w at global batch g reads what a single rank reads at
 * batch g*w + r. */
static void check_union(const gpt2_data *d, long g, int world, int B, int T)
{
    size_t n = (size_t)B * T;
    int *a = malloc(n * sizeof *a), *at = malloc(n * sizeof *at);
    int *b = malloc(n * sizeof *b), *bt = malloc(n * sizeof *bt);
    ck_assert(a && at && b && bt);
    for (int r = 0; r < world; r++) {
        ck_assert_int_eq(gpt2_data_batch(d, g, r, world, B, T, a, at), 0);
        ck_assert_int_eq(gpt2_data_batch(d, g * world + r, 0, 1, B, T, b, bt), 0);
        ck_assert_int_eq(memcmp(a, b, n * sizeof *a), 0);
        ck_assert_int_eq(memcmp(at, bt, n * sizeof *a), 0);
    }
    free(a);
    free(at);
    free(b);
    free(bt);
}

START_TEST(test_batch_layout)
{
    gpt2_data *d = index_stream(1000);
    const int B = 4, T = 8;          /* 32 tokens per rank; 1000 - 32 = 968 positions */
    for (long g = 0; g < 200; g++) { /* wraps around several times */
        check_window(d, g, 0, 1, B, T);
        for (int r = 0; r < 3; r++)
            check_window(d, g, r, 3, B, T);
        check_union(d, g, 3, B, T);
    }
    /* the first global batches tile the stream contiguously */
    int in[32], tg[32];
    for (int r = 0; r < 3; r++) {
        ck_assert_int_eq(gpt2_data_batch(d, 1, r, 3, B, T, in, tg), 0);
        ck_assert_int_eq(in[0], (3 + r) * 32);
    }
    /* batch indices where g * world * B * T overflows 64 bits */
    const long big[] = {LONG_MAX, LONG_MAX - 1, LONG_MAX / 3, (1L << 58) + 12345};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        for (int r = 0; r < 3; r++)
            check_window(d, big[i], r, 3, B, T);
    gpt2_data_close(d);
}
END_TEST

START_TEST(test_batch_short_and_bad_args)
{
    gpt2_data *d = index_stream(33);
    int in[64], tg[64];
    ck_assert_int_eq(gpt2_data_batch(d, 5, 0, 1, 4, 8, in, tg), 0); /* exactly fits */
    ck_assert_int_eq(in[0], 0);
    ck_assert_int_eq(tg[31], 32);
    ck_assert_int_eq(gpt2_data_batch(d, 0, 0, 1, 4, 9, in, tg), -1);  /* 37 > 33 */
    ck_assert_int_eq(gpt2_data_batch(d, 0, 0, 1, 1, 33, in, tg), -1); /* needs 34 */
    ck_assert_int_eq(gpt2_data_batch(d, 0, 3, 3, 1, 4, in, tg), -1);  /* rank */
    ck_assert_int_eq(gpt2_data_batch(d, 0, 0, 0, 1, 4, in, tg), -1);  /* world */
    ck_assert_int_eq(gpt2_data_batch(d, -1, 0, 1, 1, 4, in, tg), -1); /* index */
    ck_assert_int_eq(gpt2_data_batch(d, 0, 0, 1, 0, 4, in, tg), -1);  /* B */
    gpt2_data_close(d);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *gpt2_io_suite(void)
{
    Suite *s = suite_create("gpt2_io");
    TCase *tc = tcase_create("core");
    tcase_add_unchecked_fixture(tc, make_root, drop_root);
    tcase_add_checked_fixture(tc, make_dir, drop_dir);
    tcase_add_test(tc, test_sizes_124m);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_config_check);
    tcase_add_test(tc, test_model_roundtrip);
    tcase_add_test(tc, test_model_header_layout);
    tcase_add_test(tc, test_model_refusals);
    tcase_add_test(tc, test_model_expect_mismatch);
    tcase_add_test(tc, test_model_write_leaves_no_temp);
    tcase_add_test(tc, test_shards_valid);
    tcase_add_test(tc, test_shards_refused);
    tcase_add_test(tc, test_text_bytes);
    tcase_add_test(tc, test_batch_layout);
    tcase_add_test(tc, test_batch_short_and_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return zrt_check_main(gpt2_io_suite());
}
