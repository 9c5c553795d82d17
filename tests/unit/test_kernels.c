/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/test_kernels.c — Check suite "kernels" for kernels/cpu.
 *
 * The dispatching entry points (AVX-512 or AVX2 on this CPU when it has
 * them) and each vector path called directly (zrt__*_avx2, zrt__*_avx512)
 * must equal the scalar references bit for bit for AdamW, fill, scale and
 * sum_ordered, on awkward lengths, misaligned pointers and special values;
 * the scalar references are checked in turn against independent references
 * (a double-precision PyTorch AdamW step, a long double squared norm, a plain
 * sequential sum). Every buffer sits between guard words, at an address that
 * is not 32-byte aligned, so overruns and alignment assumptions show up.
 *
 * The 16-bit (bf16, fp16) kernels of mixed precision: every 16-bit pattern
 * round-trips; narrowing matches independent references (bit manipulation
 * for bf16, the compiler's _Float16 for fp16) on 2^24 f32 patterns spread
 * over the range and on every rounding boundary; add, scale and sum_ordered
 * match formulas written here; the mixed AdamW gives zrt_adamw_f32's bits;
 * and every path gives the scalar references' bits, as above.
 *
 * A vector path the CPU lacks is not run: main prints, for instance,
 * "AVX-512 path not tested: this CPU lacks avx512f", and the suite holds
 * fewer checks.
 */
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/kernels_avx2.h"
#include "kernels/cpu/kernels_avx512.h"

#include "../common/test_check.h"
#if defined(__x86_64__) && defined(__clang__)
#include <cpuid.h>
#endif
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD      9 /* elements each side; odd, so buffers are misaligned */
#define ADAM_STEPS 5

static const size_t sizes[] = {0, 1, 7, 8, 9, 1000, 4099};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

/* ---- helpers ---------------------------------------------------------- */

/* A value of mixed magnitude, sometimes exactly zero, like a gradient. */
static float rng_grad(test_rng *r)
{
    static const float scale[4] = {1.0f, 1e-2f, 1e-4f, 0.0f};
    return test_rng_unit(r) * scale[test_rng_next(r) >> 62];
}

/* What the guard words hold: one value for float buffers, one for 16-bit
 * ones (esize 4 or 2). */
static const float sentinel_f32 = 12345.0f;
static const uint16_t sentinel_half = 0xa5c3u;

static const void *sentinel_of(size_t esize)
{
    return esize == sizeof(float) ? (const void *)&sentinel_f32 : &sentinel_half;
}

/* n elements of esize bytes between GUARD sentinels on each side;
 * guard_free checks that none of them was written. */
static void *guard_alloc(size_t n, size_t esize)
{
    const void *sentinel = sentinel_of(esize);
    unsigned char *base = malloc((n + 2 * GUARD) * esize);

    ck_assert_ptr_nonnull(base);
    for (size_t i = 0; i < n + 2 * GUARD; i++)
        memcpy(base + i * esize, sentinel, esize);
    return base + GUARD * esize;
}

static void guard_free(void *x, size_t n, size_t esize)
{
    const void *sentinel = sentinel_of(esize);
    unsigned char *base = (unsigned char *)x - GUARD * esize;

    for (size_t i = 0; i < GUARD; i++) {
        ck_assert_msg(memcmp(base + i * esize, sentinel, esize) == 0,
                      "write before buffer at -%zu", GUARD - i);
        ck_assert_msg(memcmp(base + (GUARD + n + i) * esize, sentinel, esize) == 0,
                      "write past buffer at n+%zu", i);
    }
    free(base);
}

static void *guard_copy(const void *x, size_t n, size_t esize)
{
    unsigned char *y = guard_alloc(n, esize);
    const unsigned char *from = x;

    for (size_t i = 0; i < n * esize; i++)
        y[i] = from[i];
    return y;
}

/* Index of the first element whose bits differ, or n. */
static size_t first_diff(const void *a, const void *b, size_t n, size_t esize)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp((const char *)a + i * esize, (const char *)b + i * esize, esize) != 0)
            return i;
    return n;
}

/* Guarded buffers of n floats or n 16-bit values; guarded_free and
 * copy_buf take either kind. */
static float *guarded_alloc(size_t n)
{
    return guard_alloc(n, sizeof(float));
}

static uint16_t *hguarded_alloc(size_t n)
{
    return guard_alloc(n, sizeof(uint16_t));
}

#define guarded_free(x, n) guard_free((x), (n), sizeof *(x))
#define copy_buf(x, n)     guard_copy((x), (n), sizeof *(x))

static float *random_buf(test_rng *r, size_t n)
{
    float *x = guarded_alloc(n);

    test_fill_f32(r, x, n);
    return x;
}

static float from_bits(uint32_t u)
{
    float f;

    memcpy(&f, &u, sizeof f);
    return f;
}

/* Values that take other routes through the FPU than the random ones. The
 * only NaN is x86's default NaN, the one invalid operations produce: when two
 * NaNs meet, which one propagates depends on the operand order the compiler
 * picked, and with a single NaN pattern that cannot change the bits. */
static const uint32_t special_bits[] = {
    0x00000000u, /* +0 */
    0x80000000u, /* -0 */
    0x00000001u, /* smallest subnormal */
    0x807fffffu, /* largest subnormal, negative */
    0x00800000u, /* FLT_MIN */
    0x7f7fffffu, /* FLT_MAX */
    0xff7fffffu, /* -FLT_MAX */
    0x7f800000u, /* +inf */
    0xff800000u, /* -inf */
    0xffc00000u, /* default NaN */
    0x4cbebc20u, /* 1e8 */
    0x8da24260u, /* -1e-30 */
};
#define NSPECIAL ((int)(sizeof special_bits / sizeof special_bits[0]))

/* Replaces about one element in eight of x with a special value. */
static void sprinkle_specials(test_rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (test_rng_next(r) >> 61 == 0)
            x[i] = from_bits(special_bits[test_rng_next(r) % NSPECIAL]);
}

/* A gradient with special values in it: rng_grad values times scale, then
 * sprinkle_specials. */
static void random_grads(test_rng *r, float *g, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        g[i] = rng_grad(r) * scale;
    sprinkle_specials(r, g, n);
}

#define ck_assert_bits_eq(a, b, n, what)                                                 \
    do {                                                                                 \
        size_t d_ = first_diff((a), (b), (n), sizeof *(a));                              \
        ck_assert_msg(d_ == (n), "%s: bits differ at %zu of %zu (%a vs %a)", (what), d_, \
                      (size_t)(n), d_ < (n) ? (double)(a)[d_] : 0.0,                     \
                      d_ < (n) ? (double)(b)[d_] : 0.0);                                 \
    } while (0)

/* ---- AdamW -------------------------------------------------------------- */

typedef struct adam_state {
    float *p, *m, *v;
    size_t n;
} adam_state;

typedef struct adam_hp {
    float lr, beta1, beta2, eps, wd;
} adam_hp;

static const adam_hp default_hp = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f};
/* Alternate settings, eps = 0 among them (0 / 0 where g = m = v = 0). */
static const adam_hp other_hp = {1e-2f, 0.8f, 0.99f, 0.0f, 0.1f};

static adam_state adam_alloc(test_rng *r, size_t n)
{
    adam_state st = {random_buf(r, n), guarded_alloc(n), guarded_alloc(n), n};

    for (size_t i = 0; i < n; i++)
        st.m[i] = st.v[i] = 0.0f;
    return st;
}

static adam_state adam_copy(const adam_state *a)
{
    adam_state st = {copy_buf(a->p, a->n), copy_buf(a->m, a->n), copy_buf(a->v, a->n),
                     a->n};
    return st;
}

static void adam_free(adam_state *st)
{
    guarded_free(st->p, st->n);
    guarded_free(st->m, st->n);
    guarded_free(st->v, st->n);
}

/* p, m and v of got have want's bits; what names the update in the messages
 * (in mixed precision p is the f32 master copy). */
static void check_adam_bits(const adam_state *got, const adam_state *want,
                            const char *what)
{
    const float *g[3] = {got->p, got->m, got->v}, *w[3] = {want->p, want->m, want->v};
    static const char *const part[3] = {"p", "m", "v"};
    char label[96];

    for (int k = 0; k < 3; k++) {
        snprintf(label, sizeof label, "%s: %s", what, part[k]);
        ck_assert_bits_eq(g[k], w[k], got->n, label);
    }
}

static zrt_adamw_scalars hp_scalars(const adam_hp *hp, long t)
{
    return zrt_adamw_scalars_make(hp->lr, hp->beta1, hp->beta2, hp->eps, hp->wd, t);
}

/* Step t of the multi-step tests: default_hp and other_hp in turn. */
static zrt_adamw_scalars alternating_scalars(long t)
{
    return hp_scalars(t % 2 ? &default_hp : &other_hp, t);
}

START_TEST(test_adamw_dispatch_bits)
{
    size_t n = sizes[_i];
    test_rng r = test_rng_seed(100 + n);
    adam_state a = adam_alloc(&r, n), b = adam_copy(&a);
    float *g = guarded_alloc(n);

    for (long t = 1; t <= ADAM_STEPS; t++) {
        zrt_adamw_scalars s = hp_scalars(&default_hp, t);

        for (size_t i = 0; i < n; i++)
            g[i] = rng_grad(&r);
        zrt_adamw_f32(a.p, g, a.m, a.v, n, &s);
        zrt_adamw_f32_scalar(b.p, g, b.m, b.v, n, &s);
        check_adam_bits(&a, &b, "dispatch");
    }
    guarded_free(g, n);
    adam_free(&a);
    adam_free(&b);
}
END_TEST

/* One element of PyTorch's AdamW step in double, from the float inputs.
 * Tolerances are relative to the sum of the magnitudes of the terms, so
 * cancellation in m or p does not make a correct result look wrong. */
static void check_adamw_elem(const adam_hp *hp, long t, float p0, float g, float m0,
                             float v0, float p, float m, float v)
{
    double lr = hp->lr, b1 = hp->beta1, b2 = hp->beta2, wd = hp->wd;
    double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
    double pd = p0 * (1.0 - lr * wd);
    double md = b1 * m0 + (1.0 - b1) * g;
    double vd = b2 * v0 + (1.0 - b2) * g * (double)g;
    double denom = sqrt(vd) / sqrt(bc2) + hp->eps;
    double mmag = fabs(b1 * m0) + fabs((1.0 - b1) * g);
    double upd_mag = lr / bc1 * mmag / denom;
    double pref = pd - lr / bc1 * md / denom;

    ck_assert_msg(fabs(m - md) <= 1e-6 * mmag, "m %.9g vs %.9g", m, md);
    ck_assert_msg(fabs(v - vd) <= 1e-6 * vd, "v %.9g vs %.9g", v, vd);
    ck_assert_msg(fabs(p - pref) <= 1e-6 * (fabs(pd) + upd_mag), "p %.9g vs %.9g", p,
                  pref);
}

START_TEST(test_adamw_scalar_vs_double)
{
    size_t n = sizes[_i];
    test_rng r = test_rng_seed(200 + n);
    adam_state st = adam_alloc(&r, n), prev;
    float *g = guarded_alloc(n);

    for (long t = 1; t <= ADAM_STEPS; t++) {
        zrt_adamw_scalars s = hp_scalars(&default_hp, t);

        for (size_t i = 0; i < n; i++)
            g[i] = rng_grad(&r);
        prev = adam_copy(&st);
        zrt_adamw_f32_scalar(st.p, g, st.m, st.v, n, &s);
        for (size_t i = 0; i < n; i++)
            check_adamw_elem(&default_hp, t, prev.p[i], g[i], prev.m[i], prev.v[i],
                             st.p[i], st.m[i], st.v[i]);
        adam_free(&prev);
    }
    guarded_free(g, n);
    adam_free(&st);
}
END_TEST

/* g = 1, p = 1, m = v = 0, lr = 0.1, wd = 0, t = 1: m = 0.1, v = 0.001,
 * m_hat = 1, v_hat = 1, p = 1 - 0.1 * 1 / (1 + eps). */
START_TEST(test_adamw_step1_by_hand)
{
    zrt_adamw_scalars s = zrt_adamw_scalars_make(0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1);
    double want = 1.0 - 0.1 * 1.0 / (1.0 + 1e-8);

    for (int path = 0; path < 2; path++) {
        float p = 1.0f, g = 1.0f, m = 0.0f, v = 0.0f;

        if (path == 0)
            zrt_adamw_f32(&p, &g, &m, &v, 1, &s);
        else
            zrt_adamw_f32_scalar(&p, &g, &m, &v, 1, &s);
        ck_assert_msg(fabs(p - want) <= 1e-6, "path %d: p = %.9g", path, p);
        ck_assert_msg(fabs(p - 0.9) <= 1e-6, "path %d: p = %.9g", path, p);
        ck_assert_msg(fabs(m - 0.1) <= 1e-7, "path %d: m = %.9g", path, m);
        ck_assert_msg(fabs(v - 0.001) <= 1e-7, "path %d: v = %.9g", path, v);
    }
}
END_TEST

/* With g = m = v = 0 the update is 0 / eps = 0: only the decay acts. */
START_TEST(test_adamw_weight_decay_only)
{
    enum { N = 19 };
    zrt_adamw_scalars s = zrt_adamw_scalars_make(0.1f, 0.9f, 0.999f, 1e-8f, 0.5f, 3);
    test_rng r = test_rng_seed(300);

    ck_assert(s.decay_factor == (float)(1.0 - 0.1f * (double)0.5f));
    ck_assert(fabsf(s.decay_factor - 0.95f) <= 1e-7f);
    for (int path = 0; path < 2; path++) {
        float p[N], p0[N], g[N] = {0}, m[N] = {0}, v[N] = {0};

        for (int i = 0; i < N; i++)
            p[i] = p0[i] = test_rng_unit(&r) * 10.0f;
        if (path == 0)
            zrt_adamw_f32(p, g, m, v, N, &s);
        else
            zrt_adamw_f32_scalar(p, g, m, v, N, &s);
        for (int i = 0; i < N; i++) {
            ck_assert_msg(p[i] == p0[i] * s.decay_factor, "path %d i %d", path, i);
            ck_assert(m[i] == 0.0f && v[i] == 0.0f);
        }
    }
}
END_TEST

START_TEST(test_adamw_scalars_make)
{
    static const long steps[] = {1, 2, 10, 1000};

    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        long t = steps[k];
        zrt_adamw_scalars s = hp_scalars(&default_hp, t);
        double bc1 = 1.0 - pow(0.9f, (double)t);
        double bc2 = 1.0 - pow(0.999f, (double)t);

        ck_assert(s.beta1 == 0.9f && s.beta2 == 0.999f && s.eps == 1e-8f);
        ck_assert(s.one_minus_beta1 == 1.0f - 0.9f);
        ck_assert(s.one_minus_beta2 == 1.0f - 0.999f);
        ck_assert(s.step_size == (float)((double)1e-3f / bc1));
        ck_assert(s.inv_sqrt_bc2 == (float)(1.0 / sqrt(bc2)));
        ck_assert(s.decay_factor == (float)(1.0 - 1e-3f * (double)0.01f));
    }
}
END_TEST

/* ---- fill, scale --------------------------------------------------------- */

START_TEST(test_fill)
{
    size_t n = sizes[_i];
    float *a = guarded_alloc(n), *b = guarded_alloc(n);

    zrt_fill_f32(a, n, -3.25f);
    zrt_fill_f32_scalar(b, n, -3.25f);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(a[i] == -3.25f, "a[%zu] = %g", i, a[i]);
    ck_assert_bits_eq(a, b, n, "fill");
    guarded_free(a, n);
    guarded_free(b, n);
}
END_TEST

START_TEST(test_scale)
{
    size_t n = sizes[_i];
    test_rng r = test_rng_seed(400 + n);
    float *x0 = random_buf(&r, n), *a = copy_buf(x0, n), *b = copy_buf(x0, n);
    const float alpha = 0.7f;

    zrt_scale_f32(a, n, alpha);
    zrt_scale_f32_scalar(b, n, alpha);
    for (size_t i = 0; i < n; i++) {
        float want = x0[i] * alpha;
        ck_assert_msg(a[i] == want, "a[%zu] = %a, want %a", i, a[i], want);
    }
    ck_assert_bits_eq(a, b, n, "scale");
    guarded_free(x0, n);
    guarded_free(a, n);
    guarded_free(b, n);
}
END_TEST

/* ---- sqnorm -------------------------------------------------------------- */

static void check_sqnorm(const float *x, size_t n)
{
    long double ref = 0.0L;
    double a = zrt_sqnorm_f32(x, n), b = zrt_sqnorm_f32_scalar(x, n);

    for (size_t i = 0; i < n; i++)
        ref += (long double)x[i] * x[i];
    ck_assert_msg(fabsl(a - ref) <= 1e-12L * ref, "n %zu: %.17g vs %.17Lg", n, a, ref);
    ck_assert_msg(fabsl(b - ref) <= 1e-12L * ref, "n %zu: %.17g vs %.17Lg", n, b, ref);
}

START_TEST(test_sqnorm_random)
{
    size_t n = _i < NSIZES ? sizes[_i] : 100003;
    test_rng r = test_rng_seed(500 + n);
    float *x = guarded_alloc(n);

    for (size_t i = 0; i < n; i++)
        x[i] = rng_grad(&r) * 3.0f;
    check_sqnorm(x, n);
    guarded_free(x, n);
}
END_TEST

START_TEST(test_sqnorm_exact)
{
    float x[11] = {3.0f, 4.0f};

    ck_assert(zrt_sqnorm_f32(x, 0) == 0.0);
    ck_assert(zrt_sqnorm_f32_scalar(x, 0) == 0.0);
    ck_assert(zrt_sqnorm_f32(x, 2) == 25.0);
    for (int i = 0; i < 11; i++)
        x[i] = 2.0f;
    ck_assert(zrt_sqnorm_f32(x, 11) == 44.0);
    ck_assert(zrt_sqnorm_f32_scalar(x, 11) == 44.0);
}
END_TEST

/* ---- sum_ordered --------------------------------------------------------- */

#define MAXSRC 5

/* The definition, written independently of the library. */
static void sum_expected(float *out, float *const *src, int nsrc, size_t n, float divisor)
{
    for (size_t i = 0; i < n; i++) {
        float acc = src[0][i];

        for (int k = 1; k < nsrc; k++)
            acc = acc + src[k][i];
        out[i] = divisor != 1.0f ? acc / divisor : acc;
    }
}

typedef void sum_fn(float *, const float *const *, int, size_t, float);

/* Runs fn on nsrc fresh random sources (seeded), with out either a separate
 * buffer (alias < 0) or src[alias], and checks the bits against
 * sum_expected. */
static void check_sum_specials(sum_fn *fn, int nsrc, size_t n, float divisor, int alias,
                               uint64_t seed, int specials)
{
    test_rng r = test_rng_seed(seed);
    float *src[MAXSRC], *want = guarded_alloc(n), *out;

    for (int k = 0; k < nsrc; k++) {
        src[k] = guarded_alloc(n);
        for (size_t i = 0; i < n; i++) {
            float mag = (float)(1 << (test_rng_next(&r) >> 60));
            src[k][i] = test_rng_unit(&r) * mag;
        }
        if (specials)
            sprinkle_specials(&r, src[k], n);
    }
    sum_expected(want, src, nsrc, n, divisor);
    out = alias >= 0 ? src[alias] : guarded_alloc(n);
    fn(out, (const float *const *)src, nsrc, n, divisor);
    ck_assert_bits_eq(out, want, n, "sum_ordered");
    if (alias < 0)
        guarded_free(out, n);
    for (int k = 0; k < nsrc; k++)
        guarded_free(src[k], n);
    guarded_free(want, n);
}

static void check_sum(sum_fn *fn, int nsrc, size_t n, float divisor, int alias,
                      uint64_t seed)
{
    check_sum_specials(fn, nsrc, n, divisor, alias, seed, 0);
}

static sum_fn *const sum_paths[2] = {zrt_sum_ordered_f32, zrt_sum_ordered_f32_scalar};

START_TEST(test_sum_ordered_random)
{
    size_t n = sizes[_i];

    for (int path = 0; path < 2; path++) {
        check_sum(sum_paths[path], 4, n, 1.0f, -1, 600 + n);
        check_sum(sum_paths[path], 4, n, 0.37f, -1, 700 + n);
    }
}
END_TEST

START_TEST(test_sum_ordered_alias)
{
    for (int path = 0; path < 2; path++) {
        check_sum(sum_paths[path], 3, 1003, 1.0f, 2, 800);
        check_sum(sum_paths[path], 3, 1003, 2.5f, 0, 801);
        check_sum(sum_paths[path], MAXSRC, 4099, 4.0f, 4, 802);
    }
}
END_TEST

START_TEST(test_sum_ordered_single_source)
{
    enum { N = 1001 };
    test_rng r = test_rng_seed(900);
    float *x = random_buf(&r, N), *out = guarded_alloc(N);
    const float *src[1] = {x};

    for (int path = 0; path < 2; path++) {
        sum_paths[path](out, src, 1, N, 1.0f);
        ck_assert_bits_eq(out, x, (size_t)N, "copy");
    }
    guarded_free(x, N);
    guarded_free(out, N);
}
END_TEST

START_TEST(test_sum_ordered_mean_of_three)
{
    enum { N = 1003 };
    test_rng r = test_rng_seed(1000);
    float *a = random_buf(&r, N), *b = random_buf(&r, N);
    float *c = random_buf(&r, N), *out = guarded_alloc(N);
    const float *src[3] = {a, b, c};

    for (int path = 0; path < 2; path++) {
        sum_paths[path](out, src, 3, N, 3.0f);
        for (int i = 0; i < N; i++) {
            float want = (a[i] + b[i] + c[i]) / 3.0f;
            ck_assert_msg(out[i] == want, "path %d i %d", path, i);
        }
    }
    guarded_free(a, N);
    guarded_free(b, N);
    guarded_free(c, N);
    guarded_free(out, N);
}
END_TEST

/* (1e8 + 1) - 1e8 is 0 in float, 1e8 - 1e8 + 1 is 1: the order shows. */
START_TEST(test_sum_ordered_order_matters)
{
    enum { N = 11 };
    float big[N], one[N], neg[N], out[N];
    const float *src[3] = {big, one, neg};

    for (int i = 0; i < N; i++) {
        big[i] = 1e8f;
        one[i] = 1.0f;
        neg[i] = -1e8f;
    }
    for (int path = 0; path < 2; path++) {
        sum_paths[path](out, src, 3, N, 1.0f);
        for (int i = 0; i < N; i++)
            ck_assert_msg(out[i] == 0.0f, "path %d i %d: %g", path, i, out[i]);
    }
}
END_TEST

/* ---- each vector path against the scalar reference ----------------------- */

typedef void adamw_fn(float *, const float *, float *, float *, size_t,
                      const zrt_adamw_scalars *);
typedef void adamw_out_fn(const float *, float *, const float *, float *, float *, size_t,
                          const zrt_adamw_scalars *);
typedef void fill_fn(float *, size_t, float);
typedef void scale_fn(float *, size_t, float);
typedef double sqnorm_fn(const float *, size_t);

/* Whether the CPU reports a feature ("avx2"); never, off x86-64. */
#if defined(__x86_64__)
#define CPU_HAS(feature) __builtin_cpu_supports(feature)
#else
#define CPU_HAS(feature) 0
#endif

static int cpu_has_avx2(void)
{
    return CPU_HAS("avx2");
}

static int cpu_has_avx512f(void)
{
    return CPU_HAS("avx512f");
}

typedef struct kpath {
    const char *name;    /* as the skip line says it */
    const char *feature; /* what the CPU must report */
    int (*present)(void);
    adamw_fn *adamw;
    adamw_out_fn *adamw_out;
    fill_fn *fill;
    scale_fn *scale;
    sqnorm_fn *sqnorm;
    sum_fn *sum;
} kpath;

static const kpath vpaths[] = {
    {"AVX2", "avx2", cpu_has_avx2, zrt__adamw_f32_avx2, zrt__adamw_f32_out_avx2,
     zrt__fill_f32_avx2, zrt__scale_f32_avx2, zrt__sqnorm_f32_avx2,
     zrt__sum_ordered_f32_avx2},
    {"AVX-512", "avx512f", cpu_has_avx512f, zrt__adamw_f32_avx512,
     zrt__adamw_f32_out_avx512, zrt__fill_f32_avx512, zrt__scale_f32_avx512,
     zrt__sqnorm_f32_avx512, zrt__sum_ordered_f32_avx512},
};
#define NVPATHS ((int)(sizeof vpaths / sizeof vpaths[0]))

/* Around both vector widths (8, 16), both tails, and one large odd size. */
static const size_t path_sizes[] = {0,  1,  7,  8,    9,    15,     16,
                                    17, 31, 33, 1000, 4099, 1000003};
#define NPSIZES ((int)(sizeof path_sizes / sizeof path_sizes[0]))

/* A loop test over paths and lengths, written like START_TEST(name) { ... }
 * but without END_TEST: its body sees the path as var (a const path_type *)
 * and the length as n. The loop index is path index * nlengths + length
 * index. */
#define LOOP_TEST_OVER(name, path_type, var, paths, lengths, nlengths)                   \
    static void name##_body(const path_type *var, size_t n);                             \
    START_TEST(name)                                                                     \
    {                                                                                    \
        name##_body(&paths[_i / (nlengths)], lengths[_i % (nlengths)]);                  \
    }                                                                                    \
    END_TEST                                                                             \
    static void name##_body(const path_type *var, size_t n)

/* PATH_TEST(name) { ... }: each vector path kp of vpaths, each length n of
 * path_sizes. */
#define PATH_TEST(name) LOOP_TEST_OVER(name, kpath, kp, vpaths, path_sizes, NPSIZES)

PATH_TEST(test_path_adamw_bits)
{
    test_rng r = test_rng_seed(1100 + n);
    adam_state a = adam_alloc(&r, n), b;
    float *g = guarded_alloc(n);

    sprinkle_specials(&r, a.p, n);
    b = adam_copy(&a);
    for (long t = 1; t <= ADAM_STEPS; t++) {
        zrt_adamw_scalars s = alternating_scalars(t);

        random_grads(&r, g, n, 1.0f);
        kp->adamw(a.p, g, a.m, a.v, n, &s);
        zrt_adamw_f32_scalar(b.p, g, b.m, b.v, n, &s);
        check_adam_bits(&a, &b, kp->name);
    }
    guarded_free(g, n);
    adam_free(&a);
    adam_free(&b);
}

/* New parameters written elsewhere (a separate buffer, or over the
 * gradient, as the NVMe step does): the in-place update's bits, and p left
 * as it was. */
PATH_TEST(test_path_adamw_out_bits)
{
    test_rng r = test_rng_seed(1300 + n);
    adam_state a = adam_alloc(&r, n), b, c;
    float *g = guarded_alloc(n), *g_over = guarded_alloc(n), *p_out = guarded_alloc(n);
    float *p_before = guarded_alloc(n);

    b = adam_copy(&a);
    c = adam_copy(&a);
    for (long t = 1; t <= ADAM_STEPS; t++) {
        zrt_adamw_scalars s = alternating_scalars(t);

        random_grads(&r, g, n, 1.0f);
        if (n)
            memcpy(g_over, g, n * sizeof *g);
        if (n)
            memcpy(p_before, a.p, n * sizeof *g);
        zrt_adamw_f32_scalar(b.p, g, b.m, b.v, n, &s);
        kp->adamw_out(a.p, p_out, g, a.m, a.v, n, &s);
        ck_assert_bits_eq(p_out, b.p, n, kp->name);
        ck_assert_bits_eq(a.p, p_before, n, kp->name);
        kp->adamw_out(c.p, g_over, g_over, c.m, c.v, n, &s);
        ck_assert_bits_eq(g_over, b.p, n, kp->name);
        if (n) {
            memcpy(a.p, b.p, n * sizeof *g);
            memcpy(c.p, b.p, n * sizeof *g);
        }
        ck_assert_bits_eq(a.m, b.m, n, kp->name);
        ck_assert_bits_eq(c.v, b.v, n, kp->name);
    }
    guarded_free(g, n);
    guarded_free(g_over, n);
    guarded_free(p_out, n);
    guarded_free(p_before, n);
    adam_free(&a);
    adam_free(&b);
    adam_free(&c);
}

/* One assertion per buffer, not per element: in fork mode each passing
 * ck_assert is a message to the parent process. */
PATH_TEST(test_path_fill_bits)
{
    float *a = guarded_alloc(n), *b = guarded_alloc(n);
    float *want = guarded_alloc(n);
    float values[NSPECIAL + 3];

    values[0] = -3.25f;
    values[1] = from_bits(0x7fc00000u); /* a quiet NaN, positive */
    values[2] = from_bits(0x7f800001u); /* a signalling NaN */
    for (int k = 0; k < NSPECIAL; k++)
        values[k + 3] = from_bits(special_bits[k]);
    for (int k = 0; k < NSPECIAL + 3; k++) {
        kp->fill(a, n, values[k]);
        zrt_fill_f32_scalar(b, n, values[k]);
        for (size_t i = 0; i < n; i++)
            memcpy(&want[i], &values[k], sizeof want[i]);
        ck_assert_bits_eq(a, b, n, kp->name);
        ck_assert_bits_eq(a, want, n, kp->name);
    }
    guarded_free(a, n);
    guarded_free(b, n);
    guarded_free(want, n);
}

/* x holds every kind of NaN, alpha none: each product has at most one NaN
 * operand, so its bits are defined. */
PATH_TEST(test_path_scale_bits)
{
    static const uint32_t alphas[] = {
        0x3f333333u /* 0.7 */,  0x80000000u, 0x7f800000u, 0x00000001u,
        0x7f61b1e6u /* 3e38 */, 0xbf800000u};
    test_rng r = test_rng_seed(1200 + n);
    float *x0 = random_buf(&r, n);

    sprinkle_specials(&r, x0, n);
    if (n > 2) {
        x0[n - 1] = from_bits(0x7fc00000u); /* quiet NaN, in the tail */
        x0[n / 2] = from_bits(0x7f800001u); /* signalling NaN */
    }
    for (size_t k = 0; k < sizeof alphas / sizeof alphas[0]; k++) {
        float *a = copy_buf(x0, n), *b = copy_buf(x0, n);

        kp->scale(a, n, from_bits(alphas[k]));
        zrt_scale_f32_scalar(b, n, from_bits(alphas[k]));
        ck_assert_bits_eq(a, b, n, kp->name);
        guarded_free(a, n);
        guarded_free(b, n);
    }
    guarded_free(x0, n);
}

/* A reduction: to rounding against a long double sum; inf and NaN agree
 * with the scalar path's. */
PATH_TEST(test_path_sqnorm)
{
    test_rng r = test_rng_seed(1300 + n);
    float *x = guarded_alloc(n);
    long double ref = 0.0L;
    double a, b;

    for (size_t i = 0; i < n; i++)
        x[i] = rng_grad(&r) * 3.0f;
    for (size_t i = 0; i < n; i++)
        ref += (long double)x[i] * x[i];
    a = kp->sqnorm(x, n);
    ck_assert_msg(fabsl(a - ref) <= 1e-12L * ref, "%s n %zu: %.17g vs %.17Lg", kp->name,
                  n, a, ref);
    if (n > 0) {
        x[n - 1] = INFINITY;
        a = kp->sqnorm(x, n);
        b = zrt_sqnorm_f32_scalar(x, n);
        ck_assert_msg(isinf(a) && a == b, "%s n %zu: %g", kp->name, n, a);
        x[n / 2] = from_bits(0xffc00000u);
        a = kp->sqnorm(x, n);
        ck_assert_msg(isnan(a), "%s n %zu: %g", kp->name, n, a);
    }
    guarded_free(x, n);
}

PATH_TEST(test_path_sum_bits)
{
    check_sum_specials(kp->sum, 4, n, 1.0f, -1, 1400 + n, 0);
    check_sum_specials(kp->sum, 4, n, 0.37f, -1, 1500 + n, 0);
    check_sum_specials(kp->sum, 1, n, 1.0f, -1, 1600 + n, 1);
    check_sum_specials(kp->sum, MAXSRC, n, 1.0f, -1, 1700 + n, 1);
    check_sum_specials(kp->sum, 3, n, 3.0f, 1, 1800 + n, 1);
    check_sum_specials(kp->sum, 2, n, 0.0f, 0, 1900 + n, 1);
}

/* Every start offset within a 64-byte line, for lengths around one and two
 * vectors: the kernels run on x + off and must leave x[0..off) alone. */
START_TEST(test_path_misaligned)
{
    static const size_t lens[] = {1, 8, 15, 16, 17, 33, 47};
    const kpath *kp = &vpaths[_i];
    test_rng r = test_rng_seed(2000);

    for (size_t off = 0; off <= 16; off++)
        for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
            size_t len = lens[j], n = off + len;
            zrt_adamw_scalars s = hp_scalars(&default_hp, 2);
            adam_state a = adam_alloc(&r, n), b;
            float *g = random_buf(&r, n), *src[3], *out = guarded_alloc(n);
            const float *csrc[3];

            sprinkle_specials(&r, g, n);
            b = adam_copy(&a);
            kp->adamw(a.p + off, g + off, a.m + off, a.v + off, len, &s);
            zrt_adamw_f32_scalar(b.p + off, g + off, b.m + off, b.v + off, len, &s);
            check_adam_bits(&a, &b, "adamw");

            kp->scale(a.p + off, len, 0.7f);
            zrt_scale_f32_scalar(b.p + off, len, 0.7f);
            ck_assert_bits_eq(a.p, b.p, n, "scale");

            kp->fill(a.m + off, len, -1.5f);
            zrt_fill_f32_scalar(b.m + off, len, -1.5f);
            ck_assert_bits_eq(a.m, b.m, n, "fill");

            /* sources at offsets other than out's */
            for (int k = 0; k < 3; k++) {
                src[k] = random_buf(&r, n + 16);
                csrc[k] = src[k] + (off * 5 + 3 * (size_t)k) % 16;
            }
            for (size_t i = 0; i < n; i++)
                out[i] = a.p[i];
            kp->sum(a.p + off, csrc, 3, len, 3.0f);
            zrt_sum_ordered_f32_scalar(out + off, csrc, 3, len, 3.0f);
            ck_assert_bits_eq(a.p, out, n, "sum_ordered");

            for (int k = 0; k < 3; k++)
                guarded_free(src[k], n + 16);
            guarded_free(out, n);
            guarded_free(g, n);
            adam_free(&a);
            adam_free(&b);
        }
}
END_TEST

/* ---- 16-bit formats: references independent of the library -------------
 * bf16: truncate and compare the dropped half with the halfway point.
 * fp16: the compiler's _Float16 conversions (libgcc's soft-float code with
 * GCC: the test is built without F16C), and for sums the direct double ->
 * fp16 rounding. A compiler without _Float16 (clang 14 on x86-64) gets an
 * arithmetic reference instead: frexp, rint (ties to even), ldexp. */

static const zrt_half halves[2] = {ZRT_HALF_BF16, ZRT_HALF_F16};
static const char *const half_names[2] = {"bf16", "fp16"};

static uint32_t to_bits(float f)
{
    uint32_t u;

    memcpy(&u, &f, sizeof u);
    return u;
}

static uint16_t ref_bf16(float f)
{
    uint32_t u = to_bits(f), hi = u >> 16, lo = u & 0xffffu;

    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)(hi | 0x40u); /* quieted */
    if (lo > 0x8000u || (lo == 0x8000u && (hi & 1u)))
        hi++; /* a carry into the exponent is the right answer, inf included */
    return (uint16_t)hi;
}

static float ref_bf16_widen(uint16_t x)
{
    return from_bits((uint32_t)x << 16);
}

#if defined(__FLT16_MANT_DIG__)

static const char ref_f16_name[] = "_Float16";

static uint16_t ref_f16(float f)
{
    _Float16 h = (_Float16)f;
    uint16_t b;

    memcpy(&b, &h, sizeof b);
    return b;
}

static uint16_t ref_f16_from_double(double d)
{
    _Float16 h = (_Float16)d;
    uint16_t b;

    memcpy(&b, &h, sizeof b);
    return b;
}

static float ref_f16_widen(uint16_t x)
{
    _Float16 h;

    memcpy(&h, &x, sizeof h);
    return (float)h;
}

#else /* no _Float16: IEEE binary16 by arithmetic, in double */

static const char ref_f16_name[] = "frexp/rint";

static uint16_t ref_f16_from_double(double d)
{
    uint16_t sign = signbit(d) ? 0x8000u : 0u;
    double a = fabs(d), q;
    int e;

    if (isnan(d)) /* quieted, top fraction bits kept */
        return (uint16_t)(sign | 0x7e00u | (to_bits((float)a) >> 13 & 0x3ffu));
    if (a < 0x1p-14) /* subnormal range: multiples of 2^-24 */
        return (uint16_t)(sign | (uint16_t)rint(a * 0x1p24));
    if (isinf(a))
        return (uint16_t)(sign | 0x7c00u);
    q = rint(ldexp(frexp(a, &e), 11)); /* a = q * 2^(e - 11), 1024..2048 */
    if (q == 2048.0) {
        q = 1024.0;
        e++;
    }
    if (e + 14 >= 31)
        return (uint16_t)(sign | 0x7c00u);
    return (uint16_t)(sign | (e + 14) << 10 | ((uint16_t)q - 1024u));
}

static uint16_t ref_f16(float f)
{
    return ref_f16_from_double((double)f);
}

static float ref_f16_widen(uint16_t x)
{
    uint32_t e = (x >> 10) & 0x1fu, frac = x & 0x3ffu;
    float mag;

    if (e == 0x1f && frac) /* quieted */
        return from_bits((uint32_t)(x & 0x8000u) << 16 | 0x7fc00000u | frac << 13);
    if (e == 0x1f)
        mag = INFINITY;
    else if (e == 0)
        mag = (float)ldexp((double)frac, -24);
    else
        mag = (float)ldexp((double)(frac | 0x400u), (int)e - 25);
    return x & 0x8000u ? -mag : mag;
}

#endif

static uint16_t ref_round(float f, zrt_half h)
{
    return h == ZRT_HALF_BF16 ? ref_bf16(f) : ref_f16(f);
}

static float ref_widen(uint16_t x, zrt_half h)
{
    return h == ZRT_HALF_BF16 ? ref_bf16_widen(x) : ref_f16_widen(x);
}

static int half_is_nan(uint16_t x, zrt_half h)
{
    return h == ZRT_HALF_BF16 ? (x & 0x7fffu) > 0x7f80u : (x & 0x7fffu) > 0x7c00u;
}

static uint16_t half_quiet_bit(zrt_half h)
{
    return h == ZRT_HALF_BF16 ? 0x0040u : 0x0200u;
}

/* Values that take other routes than the random ones, per format. The only
 * NaN is the one x86 produces for invalid operations (negative, quiet, no
 * payload) so that arithmetic on two NaNs has defined bits (see
 * special_bits). */
static const uint16_t hspecial_bits[2][14] = {
    {0x0000, 0x8000, 0x0001, 0x807f, 0x0080, 0x7f7f, 0xff7f, 0x7f80, 0xff80, 0xffc0,
     0x3f80, 0xbf81, 0x4b80, 0x3380},
    {0x0000, 0x8000, 0x0001, 0x83ff, 0x0400, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0xfe00,
     0x3c00, 0xbc01, 0x7800, 0x0200},
};
#define NHSPECIAL 14

/* A finite value of mixed magnitude (fp16 subnormals and near-overflow
 * values included), rounded to the format; sometimes zero. */
static uint16_t rng_half(test_rng *r, zrt_half h)
{
    static const float mag[8] = {1.0f, 1e-2f, 1e-4f, 1e-6f, 100.0f, 3e4f, 0.0f, 1e-7f};
    float x = test_rng_unit(r) * mag[test_rng_next(r) >> 61];

    return ref_round(x, h);
}

static uint16_t *rng_half_buf(test_rng *r, size_t n, zrt_half h, int specials)
{
    uint16_t *x = hguarded_alloc(n);

    for (size_t i = 0; i < n; i++) {
        x[i] = rng_half(r, h);
        if (specials && test_rng_next(r) >> 61 == 0)
            x[i] = hspecial_bits[h][test_rng_next(r) % NHSPECIAL];
    }
    return x;
}

#define ck_assert_hbits_eq(a, b, n, what)                                                \
    do {                                                                                 \
        size_t d_ = first_diff((a), (b), (n), sizeof *(a));                              \
        ck_assert_msg(d_ == (n), "%s: bits differ at %zu of %zu (%#x vs %#x)", (what),   \
                      d_, (size_t)(n), d_ < (n) ? (a)[d_] : 0u,                          \
                      d_ < (n) ? (b)[d_] : 0u);                                          \
    } while (0)

/* ---- the 16-bit kernels of one path ---- */

typedef struct hpath {
    const char *name;    /* as the skip line says it */
    const char *feature; /* what the CPU must report */
    int (*present)(void);
    void (*to_half)(uint16_t *, const float *, size_t, zrt_half);
    void (*to_f32)(float *, const uint16_t *, size_t, zrt_half);
    void (*add)(uint16_t *, const uint16_t *, size_t, zrt_half);
    void (*scale)(uint16_t *, size_t, float, zrt_half);
    double (*sqnorm)(const uint16_t *, size_t, zrt_half);
    void (*sum)(uint16_t *, const uint16_t *const *, int, size_t, float, zrt_half);
    int (*finite_half)(const uint16_t *, size_t, zrt_half);
    int (*finite_f32)(const float *, size_t);
    void (*adamw)(float *, uint16_t *, const uint16_t *, float *, float *, size_t, float,
                  const zrt_adamw_scalars *, zrt_half);
    void (*adamw_f32g)(float *, uint16_t *, const float *, float *, float *, size_t,
                       float, const zrt_adamw_scalars *, zrt_half);
} hpath;

static int always(void)
{
    return 1;
}

static int cpu_has_avx2_f16c(void)
{
#if defined(__x86_64__) && defined(__clang__) /* its builtin lacks "f16c" */
    unsigned a, b, c, d;

    return CPU_HAS("avx2") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
#else
    return CPU_HAS("avx2") && CPU_HAS("f16c");
#endif
}

/* hpaths[0] is the dispatching entry point, whichever path it takes here;
 * the vector paths follow, each called directly. */
static const hpath hpaths[] = {
    {"dispatch", "", always, zrt_cast_f32_to_half, zrt_cast_half_to_f32, zrt_add_half,
     zrt_scale_half, zrt_sqnorm_half, zrt_sum_ordered_half, zrt_all_finite_half,
     zrt_all_finite_f32, zrt_adamw_mixed, zrt_adamw_mixed_f32grad},
    {"AVX2", "avx2 and f16c", cpu_has_avx2_f16c, zrt__cast_f32_to_half_avx2,
     zrt__cast_half_to_f32_avx2, zrt__add_half_avx2, zrt__scale_half_avx2,
     zrt__sqnorm_half_avx2, zrt__sum_ordered_half_avx2, zrt__all_finite_half_avx2,
     zrt__all_finite_f32_avx2, zrt__adamw_mixed_avx2, zrt__adamw_mixed_f32grad_avx2},
    {"AVX-512", "avx512f", cpu_has_avx512f, zrt__cast_f32_to_half_avx512,
     zrt__cast_half_to_f32_avx512, zrt__add_half_avx512, zrt__scale_half_avx512,
     zrt__sqnorm_half_avx512, zrt__sum_ordered_half_avx512, zrt__all_finite_half_avx512,
     zrt__all_finite_f32_avx512, zrt__adamw_mixed_avx512,
     zrt__adamw_mixed_f32grad_avx512},
};
#define NHPATHS ((int)(sizeof hpaths / sizeof hpaths[0]))

/* Around both vector widths (8, 16), both tails, and larger odd sizes. */
static const size_t hsizes[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 1003, 4099, 100003};
#define NHSIZES ((int)(sizeof hsizes / sizeof hsizes[0]))

/* HPATH_TEST(name) { ... }: each path hp of hpaths, each length n of
 * hsizes (see LOOP_TEST_OVER). */
#define HPATH_TEST(name) LOOP_TEST_OVER(name, hpath, hp, hpaths, hsizes, NHSIZES)

/* ---- conversions ---- */

/* Every 16-bit pattern widens as the reference does and narrows back to
 * itself; a NaN stays a NaN of the same sign, quieted, and a quiet NaN
 * keeps its bits. The array forms of every present path give the scalar
 * helpers' bits. */
START_TEST(test_half_roundtrip_all)
{
    zrt_half h = halves[_i];
    enum { N = 65536 };
    uint16_t *x = hguarded_alloc(N), *back = hguarded_alloc(N);
    uint16_t *want_back = hguarded_alloc(N);
    float *wide = guarded_alloc(N), *want_wide = guarded_alloc(N);
    size_t bad_widen = 0, bad_back = 0, bad_nan = 0;

    for (size_t i = 0; i < N; i++) {
        uint16_t xi = (uint16_t)i;
        float w = zrt_half_to_f32(xi, h), rw = ref_widen(xi, h);
        uint16_t b = zrt_f32_to_half(w, h);

        x[i] = xi;
        want_wide[i] = w;
        want_back[i] = b;
        bad_widen += to_bits(w) != to_bits(rw);
        if (half_is_nan(xi, h))
            bad_nan += !isnan(w) || !half_is_nan(b, h) ||
                       (b & 0x8000u) != (xi & 0x8000u) || b != (xi | half_quiet_bit(h));
        else
            bad_back += b != xi;
    }
    ck_assert_msg(bad_widen == 0, "%s: %zu patterns widen unlike the reference",
                  half_names[_i], bad_widen);
    ck_assert_msg(bad_back == 0, "%s: %zu patterns do not round-trip", half_names[_i],
                  bad_back);
    ck_assert_msg(bad_nan == 0, "%s: %zu NaNs not kept as quiet NaNs", half_names[_i],
                  bad_nan);
    ck_assert(zrt_f32_to_half(zrt_half_to_f32(0x0001, h), h) == 0x0001);

    zrt_cast_half_to_f32_scalar(wide, x, N, h);
    ck_assert_bits_eq(wide, want_wide, (size_t)N, "scalar widen");
    zrt_cast_f32_to_half_scalar(back, wide, N, h);
    ck_assert_hbits_eq(back, want_back, (size_t)N, "scalar narrow");
    for (int p = 0; p < NHPATHS; p++) {
        if (!hpaths[p].present())
            continue;
        hpaths[p].to_f32(wide, x, N, h);
        ck_assert_bits_eq(wide, want_wide, (size_t)N, hpaths[p].name);
        hpaths[p].to_half(back, wide, N, h);
        ck_assert_hbits_eq(back, want_back, (size_t)N, hpaths[p].name);
    }
    guarded_free(x, N);
    guarded_free(back, N);
    guarded_free(want_back, N);
    guarded_free(wide, N);
    guarded_free(want_wide, N);
}
END_TEST

/* Narrows x[0..n) with the scalar helper, the scalar array form and every
 * present path, and counts the disagreements with the reference. */
static void check_narrow(const float *x, size_t n, zrt_half h, uint16_t *out,
                         uint16_t *want)
{
    size_t bad = 0, first = n;

    for (size_t i = 0; i < n; i++) {
        want[i] = ref_round(x[i], h);
        if (zrt_f32_to_half(x[i], h) != want[i] && bad++ == 0)
            first = i;
    }
    ck_assert_msg(bad == 0,
                  "%s: %zu values narrow unlike the reference, "
                  "first %#x -> %#x, want %#x",
                  half_names[h], bad, first < n ? to_bits(x[first]) : 0u,
                  first < n ? zrt_f32_to_half(x[first], h) : 0u,
                  first < n ? want[first] : 0u);
    zrt_cast_f32_to_half_scalar(out, x, n, h);
    ck_assert_hbits_eq(out, want, n, "scalar narrow");
    for (int p = 0; p < NHPATHS; p++) {
        if (!hpaths[p].present())
            continue;
        hpaths[p].to_half(out, x, n, h);
        ck_assert_hbits_eq(out, want, n, hpaths[p].name);
    }
}

/* 2^24 f32 patterns spread over the whole range: the top 24 bits walk every
 * value, the low 8 bits are zero (ties and exact values) or noise. */
START_TEST(test_half_narrow_sampled)
{
    zrt_half h = halves[_i];
    enum { CHUNK = 1 << 20 };
    float *x = guarded_alloc(CHUNK);
    uint16_t *out = hguarded_alloc(CHUNK), *want = hguarded_alloc(CHUNK);

    for (uint32_t c = 0; c < (1u << 24) / CHUNK; c++) {
        for (uint32_t j = 0; j < CHUNK; j++) {
            uint32_t i = c * CHUNK + j;
            uint32_t noise = (i & 1u) ? (i * 0x9E3779B1u) >> 24 : 0u;

            x[j] = from_bits(i << 8 | noise);
        }
        check_narrow(x, CHUNK, h, out, want);
    }
    guarded_free(x, CHUNK);
    guarded_free(out, CHUNK);
    guarded_free(want, CHUNK);
}
END_TEST

/* Around every representable value v of the format and every midpoint to
 * the next one up in magnitude (the largest finite value's next is the
 * power of two inf stands for): the f32 patterns at, one below and one
 * above each. Ties, max finite, overflow, the subnormal range and signed
 * zeros all lie here; plus f32 specials. */
START_TEST(test_half_narrow_boundaries)
{
    zrt_half h = halves[_i];
    static const uint32_t extra[] = {
        0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu, 0x00800000u, 0x7f7fffffu,
        0xff7fffffu, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u, 0x7f800001u,
        0xffbfffffu, 0x7fffffffu, 0xffffffffu, 0x7fa5a5a5u, 0x33000000u, 0x33000001u,
        0x32ffffffu, 0xb3000000u, 0x33800000u, 0x477fe000u, 0x477fefffu, 0x477ff000u,
        0xc77ff000u, 0x47800000u, 0x38800000u, 0x387fc000u, 0x387fe000u, 0x387ff000u,
        0x7f7f7fffu, 0x7f7f8000u, 0x7f7f8001u, 0xff7f8000u, 0x7f7e8000u,
    };
    enum { PER = 6 };
    size_t nextra = sizeof extra / sizeof extra[0];
    size_t n = 65536 * PER + nextra, k = 0;
    float *x = guarded_alloc(n);
    uint16_t *out = hguarded_alloc(n), *want = hguarded_alloc(n);
    double top = h == ZRT_HALF_BF16 ? 0x1p128 : 65536.0;

    for (uint32_t b = 0; b < 65536; b++) {
        uint16_t v = (uint16_t)b, mag = v & 0x7fffu;
        double lo, hi, mid;
        uint32_t ul, um;

        if (half_is_nan(v, h) || mag == (h == ZRT_HALF_BF16 ? 0x7f80u : 0x7c00u))
            continue;
        lo = fabs((double)ref_widen(v, h));
        hi = mag == (h == ZRT_HALF_BF16 ? 0x7f7fu : 0x7bffu)
                 ? top
                 : fabs((double)ref_widen((uint16_t)(mag + 1u), h));
        mid = lo + (hi - lo) / 2.0; /* exact in f32: one bit more than v */
        ul = to_bits((float)lo) | (v & 0x8000u) << 16;
        um = to_bits((float)mid) | (v & 0x8000u) << 16;
        x[k++] = from_bits(ul);
        x[k++] = from_bits(ul - 1u); /* below 0: 0xffffffff, a NaN; fine */
        x[k++] = from_bits(ul + 1u);
        x[k++] = from_bits(um);
        x[k++] = from_bits(um - 1u);
        x[k++] = from_bits(um + 1u);
    }
    for (size_t i = 0; i < nextra; i++)
        x[k++] = from_bits(extra[i]);
    ck_assert(k <= n);
    check_narrow(x, k, h, out, want);

    /* the rules, spelt out */
    if (h == ZRT_HALF_F16) {
        ck_assert_uint_eq(zrt_f32_to_f16(65504.0f), 0x7bffu);
        ck_assert_uint_eq(zrt_f32_to_f16(65519.996f), 0x7bffu);
        ck_assert_uint_eq(zrt_f32_to_f16(65520.0f), 0x7c00u);
        ck_assert_uint_eq(zrt_f32_to_f16(-1e30f), 0xfc00u);
        ck_assert_uint_eq(zrt_f32_to_f16(0x1p-24f), 0x0001u);
        ck_assert_uint_eq(zrt_f32_to_f16(0x1p-25f), 0x0000u);
        ck_assert_uint_eq(zrt_f32_to_f16(-0x1.000002p-25f), 0x8001u);
        ck_assert_uint_eq(zrt_f32_to_f16(0x3p-25f), 0x0002u);        /* tie up */
        ck_assert_uint_eq(zrt_f32_to_f16(1.0f + 0x1p-11f), 0x3c00u); /* tie down */
        ck_assert_uint_eq(zrt_f32_to_f16(from_bits(0x7f800001u)), 0x7e00u);
        ck_assert_uint_eq(zrt_f32_to_f16(-0.0f), 0x8000u);
    } else {
        ck_assert_uint_eq(zrt_f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80u);
        ck_assert_uint_eq(zrt_f32_to_bf16(from_bits(0x7f7f7fffu)), 0x7f7fu);
        ck_assert_uint_eq(zrt_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80u); /* tie down */
        ck_assert_uint_eq(zrt_f32_to_bf16(1.0f + 0x3p-8f), 0x3f82u); /* tie up */
        ck_assert_uint_eq(zrt_f32_to_bf16(from_bits(0x00000001u)), 0x0000u);
        ck_assert_uint_eq(zrt_f32_to_bf16(from_bits(0x00008000u)), 0x0000u);
        ck_assert_uint_eq(zrt_f32_to_bf16(from_bits(0x00018000u)), 0x0002u);
        ck_assert_uint_eq(zrt_f32_to_bf16(from_bits(0x7f800001u)), 0x7fc0u);
        ck_assert_uint_eq(zrt_f32_to_bf16(-0.0f), 0x8000u);
    }
    guarded_free(x, n);
    guarded_free(out, n);
    guarded_free(want, n);
}
END_TEST

/* ---- arithmetic on 16-bit arrays against formulas written here ---- */

/* add: the f32 sum rounded; for fp16 that is also the exact sum (computed
 * in double, where it is exact) rounded once, which shows the f32 step adds
 * no second rounding. scale: the f32 product rounded. Scalar reference and
 * dispatch. */
START_TEST(test_half_add_scale_formula)
{
    static const float alphas[] = {0.7f,  1.0f / 3.0f, -1.0f, 0x1p-20f,
                                   3e38f, 65536.0f,    -0.0f};
    size_t n = sizes[_i / 2];
    zrt_half h = halves[_i % 2];
    test_rng r = test_rng_seed(3000 + n * 2 + (size_t)h);
    uint16_t *a = rng_half_buf(&r, n, h, 1), *b = rng_half_buf(&r, n, h, 1);
    uint16_t *want = hguarded_alloc(n), *out = hguarded_alloc(n);
    size_t bad_exact = 0;

    for (size_t i = 0; i < n; i++) {
        double sum = (double)ref_widen(a[i], h) + (double)ref_widen(b[i], h);

        want[i] = ref_round((float)sum, h);
        if (h == ZRT_HALF_F16 && !isnan(sum))
            bad_exact += ref_f16_from_double(sum) != want[i];
    }
    ck_assert_msg(bad_exact == 0, "%zu sums rounded twice", bad_exact);
    for (int path = 0; path < 2; path++) {
        memcpy(out, a, n * sizeof *a);
        (path ? zrt_add_half : zrt_add_half_scalar)(out, b, n, h);
        ck_assert_hbits_eq(out, want, n, path ? "add dispatch" : "add scalar");
    }
    for (size_t k = 0; k < sizeof alphas / sizeof alphas[0]; k++) {
        for (size_t i = 0; i < n; i++)
            want[i] = ref_round((float)((double)ref_widen(a[i], h) * alphas[k]), h);
        for (int path = 0; path < 2; path++) {
            memcpy(out, a, n * sizeof *a);
            (path ? zrt_scale_half : zrt_scale_half_scalar)(out, n, alphas[k], h);
            ck_assert_hbits_eq(out, want, n, path ? "scale dispatch" : "scale scalar");
        }
    }
    guarded_free(a, n);
    guarded_free(b, n);
    guarded_free(want, n);
    guarded_free(out, n);
}
END_TEST

/* sum_ordered: an f32 running sum in source order, divided, rounded once;
 * out separate or aliasing a source. */
START_TEST(test_half_sum_formula)
{
    static const float divisors[] = {1.0f, 3.0f, 0.37f, 4.0f};
    size_t n = sizes[_i / 2];
    zrt_half h = halves[_i % 2];
    test_rng r = test_rng_seed(3100 + n * 2 + (size_t)h);
    uint16_t *src[MAXSRC], *want = hguarded_alloc(n), *out;

    for (int k = 0; k < MAXSRC; k++)
        src[k] = rng_half_buf(&r, n, h, 1);
    for (int nsrc = 1; nsrc <= MAXSRC; nsrc++)
        for (size_t d = 0; d < sizeof divisors / sizeof divisors[0]; d++)
            for (int path = 0; path < 2; path++) {
                float div = divisors[d];

                for (size_t i = 0; i < n; i++) {
                    float acc = ref_widen(src[0][i], h);

                    for (int k = 1; k < nsrc; k++)
                        acc = acc + ref_widen(src[k][i], h);
                    want[i] = ref_round(div != 1.0f ? acc / div : acc, h);
                }
                out = hguarded_alloc(n);
                (path ? zrt_sum_ordered_half : zrt_sum_ordered_half_scalar)(
                    out, (const uint16_t *const *)src, nsrc, n, div, h);
                ck_assert_hbits_eq(out, want, n, path ? "dispatch" : "scalar");
                guarded_free(out, n);
            }
    /* out == src[last]: the sources are read before each element is written */
    {
        uint16_t *keep = copy_buf(src[2], n);

        for (size_t i = 0; i < n; i++)
            want[i] = ref_round((ref_widen(src[0][i], h) + ref_widen(src[1][i], h) +
                                 ref_widen(src[2][i], h)) /
                                    3.0f,
                                h);
        zrt_sum_ordered_half(src[2], (const uint16_t *const *)src, 3, n, 3.0f, h);
        ck_assert_hbits_eq(src[2], want, n, "alias");
        memcpy(src[2], keep, n * sizeof *keep);
        guarded_free(keep, n);
    }
    for (int k = 0; k < MAXSRC; k++)
        guarded_free(src[k], n);
    guarded_free(want, n);
}
END_TEST

START_TEST(test_half_sqnorm_exact)
{
    zrt_half h = halves[_i];
    uint16_t x[19];

    for (int i = 0; i < 19; i++)
        x[i] = zrt_f32_to_half(i % 2 ? -2.0f : 0.5f, h);
    ck_assert(zrt_sqnorm_half(x, 0, h) == 0.0);
    ck_assert(zrt_sqnorm_half_scalar(x, 19, h) == 9 * 4.0 + 10 * 0.25);
    ck_assert(zrt_sqnorm_half(x, 19, h) == 9 * 4.0 + 10 * 0.25);
    x[18] = zrt_f32_to_half(INFINITY, h);
    ck_assert(isinf(zrt_sqnorm_half(x, 19, h)));
}
END_TEST

/* ---- mixed AdamW against zrt_adamw_f32 ---- */

/* After one step of both updates: the mixed one's master state has the f32
 * one's bits, and its p_out is the new master rounded to h. grads names the
 * gradients' kind ("16-bit", "f32") in the messages. */
static void check_mixed_step(const adam_state *mixed, const adam_state *f32,
                             const uint16_t *p_out, zrt_half h, const char *grads)
{
    uint16_t *want = hguarded_alloc(f32->n);
    char what[64];

    for (size_t i = 0; i < f32->n; i++)
        want[i] = ref_round(f32->p[i], h);
    snprintf(what, sizeof what, "master state (%s grad)", grads);
    check_adam_bits(mixed, f32, what);
    snprintf(what, sizeof what, "p_out (%s grad)", grads);
    ck_assert_hbits_eq(p_out, want, f32->n, what);
    guarded_free(want, f32->n);
}

/* master, m, v after ADAM_STEPS steps of path p's zrt_adamw_mixed equal
 * zrt_adamw_f32's on the widened (and scaled) gradients, bit for bit, and
 * p_out is round(master) each step. grad_scale 1, a power of two and 1/3
 * (zrt_adamw_f32 then gets widen(g) * grad_scale, rounded in f32). p_out
 * separate and over g. Then the same with f32 gradients. */
static void check_adamw_mixed(const hpath *hp, size_t n, zrt_half h, float grad_scale,
                              uint64_t seed)
{
    test_rng r = test_rng_seed(seed);
    adam_state a = adam_alloc(&r, n), b, c;
    float *gf = guarded_alloc(n), *g32 = guarded_alloc(n);
    uint16_t *p_out = hguarded_alloc(n), *g, *gover;

    b = adam_copy(&a);
    c = adam_copy(&a);
    for (long t = 1; t <= ADAM_STEPS; t++) {
        zrt_adamw_scalars s = alternating_scalars(t);

        g = rng_half_buf(&r, n, h, 1);
        gover = copy_buf(g, n);
        for (size_t i = 0; i < n; i++)
            gf[i] = ref_widen(g[i], h) * grad_scale;
        zrt_adamw_f32(b.p, gf, b.m, b.v, n, &s);
        hp->adamw(a.p, p_out, g, a.m, a.v, n, grad_scale, &s, h);
        check_mixed_step(&a, &b, p_out, h, "16-bit");
        hp->adamw(c.p, gover, gover, c.m, c.v, n, grad_scale, &s, h);
        ck_assert_hbits_eq(gover, p_out, n, "p_out over g");
        ck_assert_bits_eq(c.p, b.p, n, "master (p_out over g)");
        guarded_free(g, n);
        guarded_free(gover, n);
    }
    /* f32 gradients, continuing from the same state */
    for (long t = ADAM_STEPS + 1; t <= 2 * ADAM_STEPS; t++) {
        zrt_adamw_scalars s = alternating_scalars(t);

        random_grads(&r, g32, n, 100.0f);
        for (size_t i = 0; i < n; i++)
            gf[i] = g32[i] * grad_scale;
        zrt_adamw_f32(b.p, gf, b.m, b.v, n, &s);
        hp->adamw_f32g(a.p, p_out, g32, a.m, a.v, n, grad_scale, &s, h);
        check_mixed_step(&a, &b, p_out, h, "f32");
    }
    guarded_free(gf, n);
    guarded_free(g32, n);
    guarded_free(p_out, n);
    adam_free(&a);
    adam_free(&b);
    adam_free(&c);
}

/* The scalar references, then every path, against zrt_adamw_f32. */
START_TEST(test_adamw_mixed_vs_f32)
{
    static const float scales[] = {1.0f, 0x1p-10f, 1.0f / 3.0f};
    hpath scalar = hpaths[0];
    size_t n = sizes[_i];

    scalar.name = "scalar";
    scalar.adamw = zrt_adamw_mixed_scalar;
    scalar.adamw_f32g = zrt_adamw_mixed_f32grad_scalar;
    for (int hi = 0; hi < 2; hi++)
        for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
            check_adamw_mixed(&scalar, n, halves[hi], scales[k], 3200 + n + k);
            for (int p = 0; p < NHPATHS; p++)
                if (hpaths[p].present())
                    check_adamw_mixed(&hpaths[p], n, halves[hi], scales[k], 3300 + n + k);
        }
}
END_TEST

/* ---- every path bit-identical to the scalar references ---- */

HPATH_TEST(test_hpath_cast_bits)
{
    test_rng r = test_rng_seed(3400 + n);
    float *x = guarded_alloc(n), *wa = guarded_alloc(n), *wb = guarded_alloc(n);
    uint16_t *hx = hguarded_alloc(n), *a = hguarded_alloc(n), *b = hguarded_alloc(n);

    for (size_t i = 0; i < n; i++) {
        x[i] = from_bits((uint32_t)(test_rng_next(&r) >> 32)); /* any pattern */
        hx[i] = (uint16_t)(test_rng_next(&r) >> 48);
    }
    for (int hi = 0; hi < 2; hi++) {
        hp->to_half(a, x, n, halves[hi]);
        zrt_cast_f32_to_half_scalar(b, x, n, halves[hi]);
        ck_assert_hbits_eq(a, b, n, hp->name);
        hp->to_f32(wa, hx, n, halves[hi]);
        zrt_cast_half_to_f32_scalar(wb, hx, n, halves[hi]);
        ck_assert_bits_eq(wa, wb, n, hp->name);
    }
    guarded_free(x, n);
    guarded_free(wa, n);
    guarded_free(wb, n);
    guarded_free(hx, n);
    guarded_free(a, n);
    guarded_free(b, n);
}

HPATH_TEST(test_hpath_arith_bits)
{
    static const uint32_t alphas[] = {
        0x3f333333u /* 0.7 */,  0x80000000u, 0x7f800000u, 0x35800000u /* 2^-20 */,
        0x7f61b1e6u /* 3e38 */, 0xbf800000u};
    test_rng r = test_rng_seed(3500 + n);

    for (int hi = 0; hi < 2; hi++) {
        zrt_half h = halves[hi];
        uint16_t *x = rng_half_buf(&r, n, h, 1), *y = rng_half_buf(&r, n, h, 1);
        uint16_t *a = copy_buf(x, n), *b = copy_buf(x, n);

        hp->add(a, y, n, h);
        zrt_add_half_scalar(b, y, n, h);
        ck_assert_hbits_eq(a, b, n, hp->name);
        hp->add(a, a, n, h); /* dst == src */
        zrt_add_half_scalar(b, b, n, h);
        ck_assert_hbits_eq(a, b, n, hp->name);
        for (size_t k = 0; k < sizeof alphas / sizeof alphas[0]; k++) {
            memcpy(a, x, n * sizeof *x);
            memcpy(b, x, n * sizeof *x);
            hp->scale(a, n, from_bits(alphas[k]), h);
            zrt_scale_half_scalar(b, n, from_bits(alphas[k]), h);
            ck_assert_hbits_eq(a, b, n, hp->name);
        }
        guarded_free(x, n);
        guarded_free(y, n);
        guarded_free(a, n);
        guarded_free(b, n);
    }
}

HPATH_TEST(test_hpath_sum_bits)
{
    static const float divisors[] = {1.0f, 3.0f, 0.37f, 0.0f};
    test_rng r = test_rng_seed(3600 + n);

    for (int hi = 0; hi < 2; hi++) {
        zrt_half h = halves[hi];
        uint16_t *src[MAXSRC], *a = hguarded_alloc(n), *b = hguarded_alloc(n);

        for (int k = 0; k < MAXSRC; k++)
            src[k] = rng_half_buf(&r, n, h, 1);
        for (int nsrc = 1; nsrc <= MAXSRC; nsrc += 2)
            for (size_t d = 0; d < sizeof divisors / sizeof divisors[0]; d++) {
                hp->sum(a, (const uint16_t *const *)src, nsrc, n, divisors[d], h);
                zrt_sum_ordered_half_scalar(b, (const uint16_t *const *)src, nsrc, n,
                                            divisors[d], h);
                ck_assert_hbits_eq(a, b, n, hp->name);
            }
        /* out == src[0], after the separate-output reference */
        zrt_sum_ordered_half_scalar(b, (const uint16_t *const *)src, 3, n, 3.0f, h);
        hp->sum(src[0], (const uint16_t *const *)src, 3, n, 3.0f, h);
        ck_assert_hbits_eq(src[0], b, n, hp->name);
        for (int k = 0; k < MAXSRC; k++)
            guarded_free(src[k], n);
        guarded_free(a, n);
        guarded_free(b, n);
    }
}

/* A reduction: to rounding against a long double sum; inf and NaN agree
 * with the scalar path's. */
HPATH_TEST(test_hpath_sqnorm)
{
    test_rng r = test_rng_seed(3700 + n);

    for (int hi = 0; hi < 2; hi++) {
        zrt_half h = halves[hi];
        uint16_t *x = rng_half_buf(&r, n, h, 0);
        long double ref = 0.0L;
        double a, b;

        for (size_t i = 0; i < n; i++)
            ref += (long double)ref_widen(x[i], h) * ref_widen(x[i], h);
        a = hp->sqnorm(x, n, h);
        b = zrt_sqnorm_half_scalar(x, n, h);
        ck_assert_msg(fabsl(a - ref) <= 1e-12L * ref && fabsl(b - ref) <= 1e-12L * ref,
                      "%s n %zu: %.17g, scalar %.17g, want %.17Lg", hp->name, n, a, b,
                      ref);
        if (n > 0) {
            x[n - 1] = zrt_f32_to_half(-INFINITY, h);
            a = hp->sqnorm(x, n, h);
            ck_assert_msg(isinf(a) && a == zrt_sqnorm_half_scalar(x, n, h),
                          "%s n %zu: %g", hp->name, n, a);
            x[n / 2] = hspecial_bits[h][9]; /* NaN */
            ck_assert_msg(isnan(hp->sqnorm(x, n, h)), "%s n %zu", hp->name, n);
        }
        guarded_free(x, n);
    }
}

/* inf and NaN found at every position (of small arrays; of large ones at
 * the start, the middle and every position of the last two vectors);
 * finite extremes are not. One assertion per array and kind. */
HPATH_TEST(test_hpath_all_finite)
{
    static const uint32_t bad32[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u,
                                     0xffffffffu};
    static const uint16_t bad16[2][5] = {
        {0x7f80, 0xff80, 0x7fc0, 0x7f81, 0xffff},
        {0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xffff},
    };
    test_rng r = test_rng_seed(3800 + n);
    float *x = random_buf(&r, n);
    uint16_t *hx[2];
    size_t missed = 0, false_alarm = 0, where = 0;

    for (int hi = 0; hi < 2; hi++) {
        hx[hi] = rng_half_buf(&r, n, halves[hi], 0);
        for (size_t i = 0; i < n; i += 3) /* finite extremes */
            hx[hi][i] = hspecial_bits[hi][i % 7];
    }
    for (size_t i = 0; i < n; i += 5)
        x[i] = from_bits(special_bits[i % 7]); /* finite ones */
    false_alarm += !hp->finite_f32(x, n);
    for (int hi = 0; hi < 2; hi++) {
        false_alarm += !hp->finite_half(hx[hi], n, halves[hi]);
        false_alarm += !zrt_all_finite_half_scalar(hx[hi], n, halves[hi]);
    }
    false_alarm += !zrt_all_finite_f32_scalar(x, n);
    ck_assert_msg(false_alarm == 0, "%s n %zu: finite data reported not finite", hp->name,
                  n);
    for (size_t pos = 0; pos < n; pos++) {
        if (n > 64 && pos > 40 && pos != n / 2 && pos < n - 40)
            continue;
        for (int k = 0; k < 5; k++) {
            float keep = x[pos];

            x[pos] = from_bits(bad32[k]);
            if (hp->finite_f32(x, n) || zrt_all_finite_f32_scalar(x, n))
                missed++, where = pos;
            x[pos] = keep;
            for (int hi = 0; hi < 2; hi++) {
                uint16_t hkeep = hx[hi][pos];

                hx[hi][pos] = bad16[hi][k];
                if (hp->finite_half(hx[hi], n, halves[hi]) ||
                    zrt_all_finite_half_scalar(hx[hi], n, halves[hi]))
                    missed++, where = pos;
                hx[hi][pos] = hkeep;
            }
        }
    }
    ck_assert_msg(missed == 0, "%s n %zu: %zu inf/NaN missed (last at %zu)", hp->name, n,
                  missed, where);
    guarded_free(x, n);
    guarded_free(hx[0], n);
    guarded_free(hx[1], n);
}

HPATH_TEST(test_hpath_adamw_bits)
{
    test_rng r = test_rng_seed(3900 + n);

    for (int hi = 0; hi < 2; hi++) {
        zrt_half h = halves[hi];
        adam_state a = adam_alloc(&r, n), b;
        uint16_t *pa = hguarded_alloc(n), *pb = hguarded_alloc(n);
        float *g32 = guarded_alloc(n);

        sprinkle_specials(&r, a.p, n);
        b = adam_copy(&a);
        for (long t = 1; t <= ADAM_STEPS; t++) {
            zrt_adamw_scalars s = alternating_scalars(t);
            uint16_t *g = rng_half_buf(&r, n, h, 1);
            float gs = t % 2 ? 1.0f : 1.0f / 3.0f;

            hp->adamw(a.p, pa, g, a.m, a.v, n, gs, &s, h);
            zrt_adamw_mixed_scalar(b.p, pb, g, b.m, b.v, n, gs, &s, h);
            check_adam_bits(&a, &b, hp->name);
            ck_assert_hbits_eq(pa, pb, n, hp->name);
            random_grads(&r, g32, n, 1.0f);
            hp->adamw_f32g(a.p, pa, g32, a.m, a.v, n, gs, &s, h);
            zrt_adamw_mixed_f32grad_scalar(b.p, pb, g32, b.m, b.v, n, gs, &s, h);
            check_adam_bits(&a, &b, hp->name);
            ck_assert_hbits_eq(pa, pb, n, hp->name);
            guarded_free(g, n);
        }
        guarded_free(g32, n);
        guarded_free(pa, n);
        guarded_free(pb, n);
        adam_free(&a);
        adam_free(&b);
    }
}

/* Every start offset (in elements: 2-byte steps for the 16-bit arrays) over
 * 64 bytes and more, for lengths around one and two vectors: each kernel
 * runs on x + off and must leave x[0..off) and x[off + len..] alone. */
START_TEST(test_hpath_misaligned)
{
    static const size_t lens[] = {1, 7, 8, 15, 16, 17, 33, 47};
    const hpath *hp = &hpaths[_i];
    test_rng r = test_rng_seed(4000);

    for (int hi = 0; hi < 2; hi++) {
        zrt_half h = halves[hi];

        for (size_t off = 0; off <= 33; off++)
            for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
                size_t len = lens[j], n = off + len + 5;
                zrt_adamw_scalars s = hp_scalars(&default_hp, 2);
                adam_state a = adam_alloc(&r, n), b;
                uint16_t *x = rng_half_buf(&r, n, h, 1), *y = copy_buf(x, n);
                uint16_t *g = rng_half_buf(&r, n + 16, h, 1);
                uint16_t *src[3];
                float *f = random_buf(&r, n), *fb = copy_buf(f, n);

                b = adam_copy(&a);
                hp->adamw(a.p + off, x + off, g + (off * 3) % 16, a.m + off, a.v + off,
                          len, 0.5f, &s, h);
                zrt_adamw_mixed_scalar(b.p + off, y + off, g + (off * 3) % 16, b.m + off,
                                       b.v + off, len, 0.5f, &s, h);
                check_adam_bits(&a, &b, "adamw master state");
                ck_assert_hbits_eq(x, y, n, "adamw p_out");

                hp->scale(x + off, len, 0.7f, h);
                zrt_scale_half_scalar(y + off, len, 0.7f, h);
                ck_assert_hbits_eq(x, y, n, "scale");

                hp->add(x + off, g + 16 - off % 16, len, h);
                zrt_add_half_scalar(y + off, g + 16 - off % 16, len, h);
                ck_assert_hbits_eq(x, y, n, "add");

                hp->to_half(x + off, f + (off * 7) % 5, len, h);
                zrt_cast_f32_to_half_scalar(y + off, f + (off * 7) % 5, len, h);
                ck_assert_hbits_eq(x, y, n, "cast to 16 bits");

                hp->to_f32(f + off, g + off % 16, len, h);
                zrt_cast_half_to_f32_scalar(fb + off, g + off % 16, len, h);
                ck_assert_bits_eq(f, fb, n, "cast to f32");

                for (int k = 0; k < 3; k++)
                    src[k] = g + (off * 5 + 3 * (size_t)k) % 16;
                hp->sum(x + off, (const uint16_t *const *)src, 3, len, 3.0f, h);
                zrt_sum_ordered_half_scalar(y + off, (const uint16_t *const *)src, 3, len,
                                            3.0f, h);
                ck_assert_hbits_eq(x, y, n, "sum_ordered");

                x[off + len - 1] = hspecial_bits[h][7]; /* inf, last element */
                ck_assert(!hp->finite_half(x + off, len, h));
                ck_assert(hp->finite_half(x + off + len, 5, h) ==
                          zrt_all_finite_half_scalar(x + off + len, 5, h));
                f[off + len - 1] = INFINITY;
                ck_assert(!hp->finite_f32(f + off, len));

                guarded_free(f, n);
                guarded_free(fb, n);
                guarded_free(x, n);
                guarded_free(y, n);
                guarded_free(g, n + 16);
                adam_free(&a);
                adam_free(&b);
            }
    }
}
END_TEST

/* ---- path ---------------------------------------------------------------- */

START_TEST(test_cpu_path)
{
    const char *path = zrt_kernels_cpu_path();

    ck_assert_ptr_nonnull(path);
    ck_assert(strcmp(path, "avx512") == 0 || strcmp(path, "avx2") == 0 ||
              strcmp(path, "scalar") == 0);
    ck_assert_str_eq(path, cpu_has_avx512f() ? "avx512"
                           : cpu_has_avx2()  ? "avx2"
                                             : "scalar");
}
END_TEST

/* ---- suite --------------------------------------------------------------- */

/* A test case named name for path p: each of the NULL-terminated
 * loop_tests over the path's nlengths lengths (loop indices p * nlengths
 * and on), then misaligned, whose loop index is p. */
static void add_path_tcase(Suite *s, const char *name, int p, int nlengths,
                           const TTest *const *loop_tests, const TTest *misaligned)
{
    TCase *tc = tcase_create(name);
    int lo = p * nlengths;

    tcase_set_timeout(tc, 60); /* 1000003 elements under valgrind */
    for (; *loop_tests; loop_tests++)
        tcase_add_loop_test(tc, *loop_tests, lo, lo + nlengths);
    tcase_add_loop_test(tc, misaligned, p, p + 1);
    suite_add_tcase(s, tc);
}

/* The bit-for-bit checks of vector path p. */
static void add_path_tests(Suite *s, int p)
{
    add_path_tcase(s, vpaths[p].feature, p, NPSIZES,
                   (const TTest *const[]){test_path_adamw_bits, test_path_adamw_out_bits,
                                          test_path_fill_bits, test_path_scale_bits,
                                          test_path_sqnorm, test_path_sum_bits, NULL},
                   test_path_misaligned);
}

/* The bit-for-bit checks of the 16-bit kernels of path p (hpaths[0] is the
 * dispatching entry point). */
static void add_hpath_tests(Suite *s, int p)
{
    add_path_tcase(s, p == 0 ? "16-bit dispatch" : hpaths[p].feature, p, NHSIZES,
                   (const TTest *const[]){test_hpath_cast_bits, test_hpath_arith_bits,
                                          test_hpath_sum_bits, test_hpath_sqnorm,
                                          test_hpath_all_finite, test_hpath_adamw_bits,
                                          NULL},
                   test_hpath_misaligned);
}

static Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("cpu");
    TCase *th = tcase_create("16-bit");

    tcase_add_loop_test(tc, test_adamw_dispatch_bits, 0, NSIZES);
    tcase_add_loop_test(tc, test_adamw_scalar_vs_double, 0, NSIZES);
    tcase_add_test(tc, test_adamw_step1_by_hand);
    tcase_add_test(tc, test_adamw_weight_decay_only);
    tcase_add_test(tc, test_adamw_scalars_make);
    tcase_add_loop_test(tc, test_fill, 0, NSIZES);
    tcase_add_loop_test(tc, test_scale, 0, NSIZES);
    tcase_add_loop_test(tc, test_sqnorm_random, 0, NSIZES + 1);
    tcase_add_test(tc, test_sqnorm_exact);
    tcase_add_loop_test(tc, test_sum_ordered_random, 0, NSIZES);
    tcase_add_test(tc, test_sum_ordered_alias);
    tcase_add_test(tc, test_sum_ordered_single_source);
    tcase_add_test(tc, test_sum_ordered_mean_of_three);
    tcase_add_test(tc, test_sum_ordered_order_matters);
    tcase_add_test(tc, test_cpu_path);
    suite_add_tcase(s, tc);
    for (int p = 0; p < NVPATHS; p++)
        if (vpaths[p].present())
            add_path_tests(s, p);

    tcase_set_timeout(th, 60); /* 2^24 conversions under valgrind */
    tcase_add_loop_test(th, test_half_roundtrip_all, 0, 2);
    tcase_add_loop_test(th, test_half_narrow_sampled, 0, 2);
    tcase_add_loop_test(th, test_half_narrow_boundaries, 0, 2);
    tcase_add_loop_test(th, test_half_add_scale_formula, 0, 2 * NSIZES);
    tcase_add_loop_test(th, test_half_sum_formula, 0, 2 * NSIZES);
    tcase_add_loop_test(th, test_half_sqnorm_exact, 0, 2);
    tcase_add_loop_test(th, test_adamw_mixed_vs_f32, 0, NSIZES);
    suite_add_tcase(s, th);
    for (int p = 0; p < NHPATHS; p++)
        if (hpaths[p].present())
            add_hpath_tests(s, p);
    return s;
}

int main(void)
{
    printf("kernels: dispatch uses the %s path; fp16 reference: %s\n",
           zrt_kernels_cpu_path(), ref_f16_name);
    for (int p = 0; p < NVPATHS; p++) {
        if (vpaths[p].present())
            printf("%s path tested against the scalar reference\n", vpaths[p].name);
        else
            printf("%s path not tested: this CPU lacks %s\n", vpaths[p].name,
                   vpaths[p].feature);
    }
    for (int p = 1; p < NHPATHS; p++) {
        if (hpaths[p].present())
            printf("%s 16-bit kernels tested against the scalar reference\n",
                   hpaths[p].name);
        else
            printf("%s 16-bit kernels not tested: this CPU lacks %s\n", hpaths[p].name,
                   hpaths[p].feature);
    }
    fflush(stdout);
    return zrt_check_main(kernels_suite());
}
