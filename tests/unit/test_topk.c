/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/test_topk.c — Check suite "topk" for the top-k selection and the
 * scatter-add of kernels/cpu (kernels.h states the contract).
 *
 * Every selection is checked against a reference written out here: sort the
 * indices by (|a| bit pattern descending, index ascending), keep the first k,
 * put them back in index order. The cases: random data of several
 * distributions and lengths (so the threshold falls inside a top bucket, and
 * across buckets), many ties, all zeros, negative zeros, k = n, k = 1, k > n,
 * k = 0, NaN and infinities (always taken, NaN above inf), and the
 * scatter-add in order with repeated indices.
 */
#include "kernels/cpu/kernels.h"

#include "../common/test_check.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t key_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u & 0x7fffffffu;
}

static const float *ref_data;

static int by_key_then_index(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    uint32_t ka = key_of(ref_data[a]), kb = key_of(ref_data[b]);
    if (ka != kb)
        return ka > kb ? -1 : 1;
    return a < b ? -1 : 1;
}

static int by_index(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return a < b ? -1 : a > b;
}

/* The reference selection: sort, keep k, back to index order. */
static size_t reference(const float *a, size_t n, size_t k, uint32_t *idx)
{
    uint32_t *order = malloc((n + 1) * sizeof *order);
    ck_assert_ptr_nonnull(order);
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    ref_data = a;
    qsort(order, n, sizeof *order, by_key_then_index);
    size_t m = k < n ? k : n;
    qsort(order, m, sizeof *order, by_index);
    memcpy(idx, order, m * sizeof *idx);
    free(order);
    return m;
}

/* The kernel against the reference: the same indices, the values a[idx]
 * bit for bit, nothing written past the count. */
static void check_select(const float *a, size_t n, size_t k)
{
    size_t room = (k < n ? k : n) + 1;
    uint32_t *idx = malloc(room * sizeof *idx), *want = malloc(room * sizeof *want);
    float *val = malloc(room * sizeof *val);
    ck_assert(idx && want && val);
    idx[room - 1] = 0xdeadbeefu;
    size_t m = zrt_topk_select_f32(a, n, k, idx, val);
    size_t mw = reference(a, n, k, want);
    ck_assert_uint_eq(m, mw);
    ck_assert_uint_eq(idx[room - 1], 0xdeadbeefu);
    for (size_t i = 0; i < m; i++) {
        if (idx[i] != want[i])
            ck_abort_msg("n %zu k %zu: element %zu is index %u, the reference has %u", n,
                         k, i, idx[i], want[i]);
        ck_assert(memcmp(&val[i], &a[idx[i]], sizeof(float)) == 0);
    }
    free(idx);
    free(want);
    free(val);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t next_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static float uniform(void)
{
    return (float)(next_u32() >> 8) / 16777216.0f * 2.0f - 1.0f;
}

START_TEST(test_random)
{
    static const size_t lengths[] = {1, 2, 7, 100, 1000, 4097, 65537};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        size_t n = lengths[li];
        float *a = malloc(n * sizeof *a);
        ck_assert_ptr_nonnull(a);
        for (int dist = 0; dist < 3; dist++) {
            for (size_t i = 0; i < n; i++)
                a[i] = dist == 0   ? uniform()
                       : dist == 1 ? uniform() * 1e-3f * (float)(next_u32() % 1000)
                                   : ldexpf(uniform(), (int)(next_u32() % 60) - 30);
            size_t ks[] = {1, 2, n / 100 + 1, n / 10 + 1, n / 2 + 1, n - 1, n};
            for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
                check_select(a, n, ks[j]);
        }
        free(a);
    }
}
END_TEST

/* Values from a small set: most of the selection is decided by the index. */
START_TEST(test_ties)
{
    size_t n = 5000;
    float *a = malloc(n * sizeof *a);
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < n; i++)
        a[i] = (float)((int)(next_u32() % 7) - 3) * 0.5f; /* -1.5 .. 1.5, signs tie */
    for (size_t k = 1; k <= n; k += 97)
        check_select(a, n, k);
    /* equal |a| of opposite signs: the lower index first */
    float pm[] = {-2.0f, 2.0f, -2.0f, 1.0f};
    uint32_t idx[4];
    float val[4];
    ck_assert_uint_eq(zrt_topk_select_f32(pm, 4, 2, idx, val), 2);
    ck_assert_uint_eq(idx[0], 0);
    ck_assert_uint_eq(idx[1], 1);
    ck_assert(val[0] == -2.0f && val[1] == 2.0f);
    free(a);
}
END_TEST

START_TEST(test_zeros)
{
    float a[300];
    for (int i = 0; i < 300; i++)
        a[i] = i % 2 ? -0.0f : 0.0f; /* -0 and +0 tie */
    uint32_t idx[300];
    float val[300];
    ck_assert_uint_eq(zrt_topk_select_f32(a, 300, 10, idx, val), 10);
    for (int i = 0; i < 10; i++)
        ck_assert_uint_eq(idx[i], (uint32_t)i);
    check_select(a, 300, 1);
    check_select(a, 300, 299);
}
END_TEST

START_TEST(test_k_bounds)
{
    float a[5] = {3.0f, -1.0f, 4.0f, -1.0f, 5.0f};
    uint32_t idx[6];
    float val[6];
    ck_assert_uint_eq(zrt_topk_select_f32(a, 5, 0, idx, val), 0);
    ck_assert_uint_eq(zrt_topk_select_f32(a, 0, 3, idx, val), 0);
    ck_assert_uint_eq(zrt_topk_select_f32(a, 5, 9, idx, val), 5); /* k > n: all */
    for (uint32_t i = 0; i < 5; i++)
        ck_assert_uint_eq(idx[i], i);
    ck_assert_uint_eq(zrt_topk_select_f32(a, 5, 1, idx, val), 1);
    ck_assert_uint_eq(idx[0], 4);
    ck_assert(val[0] == 5.0f);
    check_select(a, 5, 5);
    check_select(a, 5, 1);
}
END_TEST

/* NaN and infinities are taken first (NaN above inf), so a NaN gradient is
 * always sent and shows up on every rank. */
START_TEST(test_nonfinite)
{
    size_t n = 1000;
    float *a = malloc(n * sizeof *a);
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < n; i++)
        a[i] = uniform() * 1e30f;
    a[900] = NAN;
    a[10] = -INFINITY;
    a[500] = INFINITY;
    uint32_t idx[3];
    float val[3];
    ck_assert_uint_eq(zrt_topk_select_f32(a, n, 1, idx, val), 1);
    ck_assert_uint_eq(idx[0], 900);
    ck_assert(isnan(val[0]));
    ck_assert_uint_eq(zrt_topk_select_f32(a, n, 3, idx, val), 3);
    ck_assert_uint_eq(idx[0], 10);
    ck_assert_uint_eq(idx[1], 500);
    ck_assert_uint_eq(idx[2], 900);
    for (size_t k = 1; k < 40; k += 3)
        check_select(a, n, k);
    free(a);
}
END_TEST

START_TEST(test_scatter_add)
{
    float out[6] = {0, 0, 0, 0, 0, 1.0f};
    uint32_t idx[] = {1, 3, 1, 5};
    float val[] = {1e8f, 2.0f, 1.0f, 0.5f};
    zrt_scatter_add_f32(out, idx, val, 4);
    /* in order: (0 + 1e8) + 1 rounds back to 1e8 */
    ck_assert(out[1] == 1e8f);
    ck_assert(out[3] == 2.0f && out[5] == 1.5f && out[0] == 0.0f);
    zrt_scatter_add_f32(out, idx, val, 0);
    ck_assert(out[3] == 2.0f);
}
END_TEST

int main(void)
{
    return zrt_check_main(ZRT_CHECK_SUITE("topk", 120, test_random, test_ties, test_zeros,
                                          test_k_bounds, test_nonfinite,
                                          test_scatter_add));
}
