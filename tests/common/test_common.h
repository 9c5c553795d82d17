/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/common/test_common.h — what the test programs share instead of
 * copies: the skip code, deterministic random data, one check macro for the
 * plain (non-Check) programs, and a temporary-directory pair. Header-only;
 * each test is one translation unit, so the counters below are its own.
 * liburing's test/helpers.h is the model.
 *
 * Include it as "../common/test_common.h" from any tests/<dir>/ file; it
 * needs nothing but libc (and _GNU_SOURCE or _XOPEN_SOURCE for nftw).
 */
#ifndef ZRT_TEST_COMMON_H
#define ZRT_TEST_COMMON_H

#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A test that cannot run on this machine exits with this; ctest shows it as
 * skipped (SKIP_RETURN_CODE 77). */
#define ZRT_TEST_SKIP 77

/* ---- random data ------------------------------------------------------------
 * splitmix64: any seed (0 too) gives a full-period stream, and the same seed
 * gives the same data on every rank and every run. */

typedef struct test_rng {
    uint64_t s;
} test_rng;

static inline test_rng test_rng_seed(uint64_t seed)
{
    test_rng r = {seed};
    return r;
}

static inline uint64_t test_mix64(uint64_t z) /* the splitmix64 finalizer */
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t test_rng_next(test_rng *r)
{
    return test_mix64(r->s += 0x9e3779b97f4a7c15ull);
}

static inline uint32_t test_rng_u32(test_rng *r)
{
    return (uint32_t)(test_rng_next(r) >> 32);
}

/* In [0, n), n > 0 (bias below 2^-31 for n < 2^32: fine for tests). */
static inline uint64_t test_rng_below(test_rng *r, uint64_t n)
{
    return (test_rng_next(r) >> 1) % n;
}

/* Uniform in [-1, 1) on a 2^-23 grid: every value exact in f32. */
static inline float test_rng_unit(test_rng *r)
{
    return (float)((int32_t)(test_rng_next(r) >> 40) - (1 << 23)) / (float)(1 << 23);
}

static inline void test_fill_f32(test_rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = test_rng_unit(r);
}

static inline void test_fill_bytes(test_rng *r, void *p, size_t n)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(test_rng_next(r) >> 56);
}

/* The bits of a float and back, for patterns (NaN payloads, subnormals). */
static inline uint32_t test_bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float test_f32_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A 16-bit float's class from its bits; bf16 (8 exponent bits) when bf16 is
 * non-zero, else IEEE half (5). */
static inline int test_half_nonfinite(uint16_t x, int bf16)
{
    uint16_t e = bf16 ? 0x7f80u : 0x7c00u;
    return (x & e) == e;
}

static inline int test_half_nan(uint16_t x, int bf16)
{
    return (x & 0x7fffu) > (bf16 ? 0x7f80u : 0x7c00u);
}

/* ---- checks in plain programs -----------------------------------------------
 * TEST_CHECK(cond, fmt, ...) counts a check and, when cond is false, prints
 * "FAIL file:line: message" and counts a failure; the program goes on and
 * main returns test_exit_code(). TEST_FAIL reports unconditionally. A
 * failure that makes what follows meaningless ends the program instead:
 * TEST_FATAL. An MPI program sets test_rank, and the line names it.
 * (The Check suites use ck_assert and test_check.h.) */

static int test_failures __attribute__((unused)), test_checks __attribute__((unused));
static int test_rank __attribute__((unused)) = -1;

#define TEST_FAIL(...)                                                                   \
    do {                                                                                 \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                             \
        if (test_rank >= 0)                                                              \
            fprintf(stderr, "rank %d: ", test_rank);                                     \
        fprintf(stderr, __VA_ARGS__);                                                    \
        fputc('\n', stderr);                                                             \
        test_failures++;                                                                 \
    } while (0)

#define TEST_CHECK(cond, ...)                                                            \
    do {                                                                                 \
        test_checks++;                                                                   \
        if (!(cond))                                                                     \
            TEST_FAIL(__VA_ARGS__);                                                      \
    } while (0)

#define TEST_FATAL(...)                                                                  \
    do {                                                                                 \
        TEST_FAIL(__VA_ARGS__);                                                          \
        exit(1);                                                                         \
    } while (0)

#ifdef CUDART_VERSION /* <cuda_runtime_api.h> was included first */
/* A CUDA call (or a launcher returning its cudaError_t as an int) that must
 * succeed: nothing after a failure would mean anything. */
#define TEST_CUDA(call)                                                                  \
    do {                                                                                 \
        int rc_ = (int)(call);                                                           \
        if (rc_ != 0)                                                                    \
            TEST_FATAL("%s: %s", #call, cudaGetErrorString((cudaError_t)rc_));           \
    } while (0)
#endif

/* 0 when every check passed, else 1 (after a line with the counts). */
static inline int test_exit_code(const char *name)
{
    if (test_failures)
        fprintf(stderr, "%s: %d of %d checks failed\n", name, test_failures, test_checks);
    else
        printf("%s: %d checks passed\n", name, test_checks);
    return test_failures ? 1 : 0;
}

/* malloc that ends the test instead of returning NULL; 0 bytes is 1. */
static inline void *test_xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "FAIL: out of host memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

/* ---- temporary directories --------------------------------------------------
 * test_make_tmpdir writes /tmp/zrt-<name>-XXXXXX into buf (at least 64
 * bytes) and creates it (mode 0700): 0, or -1 with errno. test_remove_tree
 * removes a directory and everything under it, never following a link:
 * 0 (also when there was nothing), or -1 with errno where something could
 * not be removed. */

static inline int test_make_tmpdir(char *buf, size_t size, const char *name)
{
    int n = snprintf(buf, size, "/tmp/zrt-%s-XXXXXX", name);
    if (n < 0 || (size_t)n >= size)
        return -1;
    return mkdtemp(buf) ? 0 : -1;
}

static inline int test__remove_one(const char *path, const struct stat *st, int type,
                                   struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

static inline int test_remove_tree(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) != 0 && errno == ENOENT)
        return 0;
    return nftw(dir, test__remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
