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
 * A vector path the CPU lacks is not run: main prints, for instance,
 * "AVX-512 path not tested: this CPU lacks avx512f", and the suite holds
 * fewer checks.
 */
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/kernels_avx2.h"
#include "kernels/cpu/kernels_avx512.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD 9 /* floats each side; odd, so buffers are misaligned */
#define SENTINEL 12345.0f
#define ADAM_STEPS 5

static const size_t sizes[] = {0, 1, 7, 8, 9, 1000, 4099};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

/* ---- helpers ---------------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) /* xorshift64* */
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

static rng rng_seed(uint64_t seed)
{
    rng r = {seed * 0x9E3779B97F4A7C15ULL + 1};
    return r;
}

/* Uniform in [-1, 1), exactly representable. */
static float rng_unit(rng *r)
{
    return (float)((int32_t)(rng_next(r) >> 40) - (1 << 23)) / (float)(1 << 23);
}

/* A value of mixed magnitude, sometimes exactly zero, like a gradient. */
static float rng_grad(rng *r)
{
    static const float scale[4] = {1.0f, 1e-2f, 1e-4f, 0.0f};
    return rng_unit(r) * scale[rng_next(r) >> 62];
}

static float *guarded_alloc(size_t n)
{
    float *base = malloc((n + 2 * GUARD) * sizeof *base);

    ck_assert_ptr_nonnull(base);
    for (size_t i = 0; i < n + 2 * GUARD; i++)
        base[i] = SENTINEL;
    return base + GUARD;
}

static void guarded_free(float *x, size_t n)
{
    float *base = x - GUARD;

    for (size_t i = 0; i < GUARD; i++) {
        ck_assert_msg(base[i] == SENTINEL, "write before buffer at -%zu",
                      GUARD - i);
        ck_assert_msg(x[n + i] == SENTINEL, "write past buffer at n+%zu", i);
    }
    free(base);
}

static float *random_buf(rng *r, size_t n)
{
    float *x = guarded_alloc(n);

    for (size_t i = 0; i < n; i++)
        x[i] = rng_unit(r);
    return x;
}

static float *copy_buf(const float *x, size_t n)
{
    float *y = guarded_alloc(n);

    for (size_t i = 0; i < n; i++)
        y[i] = x[i];
    return y;
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
static void sprinkle_specials(rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (rng_next(r) >> 61 == 0)
            x[i] = from_bits(special_bits[rng_next(r) % NSPECIAL]);
}

/* Index of the first element whose bits differ, or n. */
static size_t first_diff(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0)
            return i;
    return n;
}

#define ck_assert_bits_eq(a, b, n, what)                                     \
    do {                                                                     \
        size_t d_ = first_diff((a), (b), (n));                               \
        ck_assert_msg(d_ == (n), "%s: bits differ at %zu of %zu (%a vs %a)", \
                      (what), d_, (size_t)(n),                               \
                      d_ < (n) ? (double)(a)[d_] : 0.0,                      \
                      d_ < (n) ? (double)(b)[d_] : 0.0);                     \
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

static adam_state adam_alloc(rng *r, size_t n)
{
    adam_state st = {random_buf(r, n), guarded_alloc(n), guarded_alloc(n), n};

    for (size_t i = 0; i < n; i++)
        st.m[i] = st.v[i] = 0.0f;
    return st;
}

static adam_state adam_copy(const adam_state *a)
{
    adam_state st = {copy_buf(a->p, a->n), copy_buf(a->m, a->n),
                     copy_buf(a->v, a->n), a->n};
    return st;
}

static void adam_free(adam_state *st)
{
    guarded_free(st->p, st->n);
    guarded_free(st->m, st->n);
    guarded_free(st->v, st->n);
}

static zrt_adamw_scalars hp_scalars(const adam_hp *hp, long t)
{
    return zrt_adamw_scalars_make(hp->lr, hp->beta1, hp->beta2, hp->eps,
                                  hp->wd, t);
}

START_TEST(test_adamw_dispatch_bits)
{
    size_t n = sizes[_i];
    rng r = rng_seed(100 + n);
    adam_state a = adam_alloc(&r, n), b = adam_copy(&a);
    float *g = guarded_alloc(n);

    for (long t = 1; t <= ADAM_STEPS; t++) {
        zrt_adamw_scalars s = hp_scalars(&default_hp, t);

        for (size_t i = 0; i < n; i++)
            g[i] = rng_grad(&r);
        zrt_adamw_f32(a.p, g, a.m, a.v, n, &s);
        zrt_adamw_f32_scalar(b.p, g, b.m, b.v, n, &s);
        ck_assert_bits_eq(a.p, b.p, n, "p");
        ck_assert_bits_eq(a.m, b.m, n, "m");
        ck_assert_bits_eq(a.v, b.v, n, "v");
    }
    guarded_free(g, n);
    adam_free(&a);
    adam_free(&b);
}
END_TEST

/* One element of PyTorch's AdamW step in double, from the float inputs.
 * Tolerances are relative to the sum of the magnitudes of the terms, so
 * cancellation in m or p does not make a correct result look wrong. */
static void check_adamw_elem(const adam_hp *hp, long t, float p0, float g,
                             float m0, float v0, float p, float m, float v)
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
    ck_assert_msg(fabs(p - pref) <= 1e-6 * (fabs(pd) + upd_mag),
                  "p %.9g vs %.9g", p, pref);
}

START_TEST(test_adamw_scalar_vs_double)
{
    size_t n = sizes[_i];
    rng r = rng_seed(200 + n);
    adam_state st = adam_alloc(&r, n), prev;
    float *g = guarded_alloc(n);

    for (long t = 1; t <= ADAM_STEPS; t++) {
        zrt_adamw_scalars s = hp_scalars(&default_hp, t);

        for (size_t i = 0; i < n; i++)
            g[i] = rng_grad(&r);
        prev = adam_copy(&st);
        zrt_adamw_f32_scalar(st.p, g, st.m, st.v, n, &s);
        for (size_t i = 0; i < n; i++)
            check_adamw_elem(&default_hp, t, prev.p[i], g[i], prev.m[i],
                             prev.v[i], st.p[i], st.m[i], st.v[i]);
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
    zrt_adamw_scalars s = zrt_adamw_scalars_make(0.1f, 0.9f, 0.999f, 1e-8f,
                                                 0.0f, 1);
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
    zrt_adamw_scalars s = zrt_adamw_scalars_make(0.1f, 0.9f, 0.999f, 1e-8f,
                                                 0.5f, 3);
    rng r = rng_seed(300);

    ck_assert(s.decay_factor == (float)(1.0 - 0.1f * (double)0.5f));
    ck_assert(fabsf(s.decay_factor - 0.95f) <= 1e-7f);
    for (int path = 0; path < 2; path++) {
        float p[N], p0[N], g[N] = {0}, m[N] = {0}, v[N] = {0};

        for (int i = 0; i < N; i++)
            p[i] = p0[i] = rng_unit(&r) * 10.0f;
        if (path == 0)
            zrt_adamw_f32(p, g, m, v, N, &s);
        else
            zrt_adamw_f32_scalar(p, g, m, v, N, &s);
        for (int i = 0; i < N; i++) {
            ck_assert_msg(p[i] == p0[i] * s.decay_factor, "path %d i %d",
                          path, i);
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
    rng r = rng_seed(400 + n);
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
    ck_assert_msg(fabsl(a - ref) <= 1e-12L * ref, "n %zu: %.17g vs %.17Lg",
                  n, a, ref);
    ck_assert_msg(fabsl(b - ref) <= 1e-12L * ref, "n %zu: %.17g vs %.17Lg",
                  n, b, ref);
}

START_TEST(test_sqnorm_random)
{
    size_t n = _i < NSIZES ? sizes[_i] : 100003;
    rng r = rng_seed(500 + n);
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
static void sum_expected(float *out, float *const *src, int nsrc, size_t n,
                         float divisor)
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
static void check_sum_specials(sum_fn *fn, int nsrc, size_t n, float divisor,
                               int alias, uint64_t seed, int specials)
{
    rng r = rng_seed(seed);
    float *src[MAXSRC], *want = guarded_alloc(n), *out;

    for (int k = 0; k < nsrc; k++) {
        src[k] = guarded_alloc(n);
        for (size_t i = 0; i < n; i++) {
            float mag = (float)(1 << (rng_next(&r) >> 60));
            src[k][i] = rng_unit(&r) * mag;
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

static void check_sum(sum_fn *fn, int nsrc, size_t n, float divisor,
                      int alias, uint64_t seed)
{
    check_sum_specials(fn, nsrc, n, divisor, alias, seed, 0);
}

static sum_fn *const sum_paths[2] = {zrt_sum_ordered_f32,
                                     zrt_sum_ordered_f32_scalar};

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
    rng r = rng_seed(900);
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
    rng r = rng_seed(1000);
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
typedef void adamw_out_fn(const float *, float *, const float *, float *, float *,
                          size_t, const zrt_adamw_scalars *);
typedef void fill_fn(float *, size_t, float);
typedef void scale_fn(float *, size_t, float);
typedef double sqnorm_fn(const float *, size_t);

static int cpu_has_avx2(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

static int cpu_has_avx512f(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
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

/* A per-path loop test's index is path * NPSIZES + size index. */
static const kpath *loop_path(int i)
{
    return &vpaths[i / NPSIZES];
}

static size_t loop_size(int i)
{
    return path_sizes[i % NPSIZES];
}

/* Alternate settings, eps = 0 among them (0 / 0 where g = m = v = 0). */
static const adam_hp other_hp = {1e-2f, 0.8f, 0.99f, 0.0f, 0.1f};

START_TEST(test_path_adamw_bits)
{
    const kpath *kp = loop_path(_i);
    size_t n = loop_size(_i);
    rng r = rng_seed(1100 + n);
    adam_state a = adam_alloc(&r, n), b;
    float *g = guarded_alloc(n);

    sprinkle_specials(&r, a.p, n);
    b = adam_copy(&a);
    for (long t = 1; t <= ADAM_STEPS; t++) {
        zrt_adamw_scalars s = hp_scalars(t % 2 ? &default_hp : &other_hp, t);

        for (size_t i = 0; i < n; i++)
            g[i] = rng_grad(&r);
        sprinkle_specials(&r, g, n);
        kp->adamw(a.p, g, a.m, a.v, n, &s);
        zrt_adamw_f32_scalar(b.p, g, b.m, b.v, n, &s);
        ck_assert_bits_eq(a.p, b.p, n, kp->name);
        ck_assert_bits_eq(a.m, b.m, n, kp->name);
        ck_assert_bits_eq(a.v, b.v, n, kp->name);
    }
    guarded_free(g, n);
    adam_free(&a);
    adam_free(&b);
}
END_TEST

/* New parameters written elsewhere (a separate buffer, or over the
 * gradient, as the NVMe step does): the in-place update's bits, and p left
 * as it was. */
START_TEST(test_path_adamw_out_bits)
{
    const kpath *kp = loop_path(_i);
    size_t n = loop_size(_i);
    rng r = rng_seed(1300 + n);
    adam_state a = adam_alloc(&r, n), b, c;
    float *g = guarded_alloc(n), *g_over = guarded_alloc(n), *p_out = guarded_alloc(n);
    float *p_before = guarded_alloc(n);

    b = adam_copy(&a);
    c = adam_copy(&a);
    for (long t = 1; t <= ADAM_STEPS; t++) {
        zrt_adamw_scalars s = hp_scalars(t % 2 ? &default_hp : &other_hp, t);

        for (size_t i = 0; i < n; i++)
            g[i] = rng_grad(&r);
        sprinkle_specials(&r, g, n);
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
END_TEST

/* One assertion per buffer, not per element: in fork mode each passing
 * ck_assert is a message to the parent process. */
START_TEST(test_path_fill_bits)
{
    const kpath *kp = loop_path(_i);
    size_t n = loop_size(_i);
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
END_TEST

/* x holds every kind of NaN, alpha none: each product has at most one NaN
 * operand, so its bits are defined. */
START_TEST(test_path_scale_bits)
{
    static const uint32_t alphas[] = {0x3f333333u /* 0.7 */, 0x80000000u,
                                      0x7f800000u, 0x00000001u,
                                      0x7f61b1e6u /* 3e38 */, 0xbf800000u};
    const kpath *kp = loop_path(_i);
    size_t n = loop_size(_i);
    rng r = rng_seed(1200 + n);
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
END_TEST

/* A reduction: to rounding against a long double sum; inf and NaN agree
 * with the scalar path's. */
START_TEST(test_path_sqnorm)
{
    const kpath *kp = loop_path(_i);
    size_t n = loop_size(_i);
    rng r = rng_seed(1300 + n);
    float *x = guarded_alloc(n);
    long double ref = 0.0L;
    double a, b;

    for (size_t i = 0; i < n; i++)
        x[i] = rng_grad(&r) * 3.0f;
    for (size_t i = 0; i < n; i++)
        ref += (long double)x[i] * x[i];
    a = kp->sqnorm(x, n);
    ck_assert_msg(fabsl(a - ref) <= 1e-12L * ref, "%s n %zu: %.17g vs %.17Lg",
                  kp->name, n, a, ref);
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
END_TEST

START_TEST(test_path_sum_bits)
{
    const kpath *kp = loop_path(_i);
    size_t n = loop_size(_i);

    check_sum_specials(kp->sum, 4, n, 1.0f, -1, 1400 + n, 0);
    check_sum_specials(kp->sum, 4, n, 0.37f, -1, 1500 + n, 0);
    check_sum_specials(kp->sum, 1, n, 1.0f, -1, 1600 + n, 1);
    check_sum_specials(kp->sum, MAXSRC, n, 1.0f, -1, 1700 + n, 1);
    check_sum_specials(kp->sum, 3, n, 3.0f, 1, 1800 + n, 1);
    check_sum_specials(kp->sum, 2, n, 0.0f, 0, 1900 + n, 1);
}
END_TEST

/* Every start offset within a 64-byte line, for lengths around one and two
 * vectors: the kernels run on x + off and must leave x[0..off) alone. */
START_TEST(test_path_misaligned)
{
    static const size_t lens[] = {1, 8, 15, 16, 17, 33, 47};
    const kpath *kp = &vpaths[_i];
    rng r = rng_seed(2000);

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
            zrt_adamw_f32_scalar(b.p + off, g + off, b.m + off, b.v + off,
                                 len, &s);
            ck_assert_bits_eq(a.p, b.p, n, "adamw p");
            ck_assert_bits_eq(a.m, b.m, n, "adamw m");
            ck_assert_bits_eq(a.v, b.v, n, "adamw v");

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

/* The bit-for-bit checks of vector path p, in a test case of its own. */
static void add_path_tests(Suite *s, int p)
{
    TCase *tc = tcase_create(vpaths[p].feature);
    int lo = p * NPSIZES, hi = lo + NPSIZES;

    tcase_set_timeout(tc, 60); /* 1000003 elements under valgrind */
    tcase_add_loop_test(tc, test_path_adamw_bits, lo, hi);
    tcase_add_loop_test(tc, test_path_adamw_out_bits, lo, hi);
    tcase_add_loop_test(tc, test_path_fill_bits, lo, hi);
    tcase_add_loop_test(tc, test_path_scale_bits, lo, hi);
    tcase_add_loop_test(tc, test_path_sqnorm, lo, hi);
    tcase_add_loop_test(tc, test_path_sum_bits, lo, hi);
    tcase_add_loop_test(tc, test_path_misaligned, p, p + 1);
    suite_add_tcase(s, tc);
}

static Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("cpu");

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
    return s;
}

int main(void)
{
    SRunner *sr;
    int nfailed;

    printf("kernels: dispatch uses the %s path\n", zrt_kernels_cpu_path());
    for (int p = 0; p < NVPATHS; p++) {
        if (vpaths[p].present())
            printf("%s path tested against the scalar reference\n",
                   vpaths[p].name);
        else
            printf("%s path not tested: this CPU lacks %s\n", vpaths[p].name,
                   vpaths[p].feature);
    }
    fflush(stdout);
    sr = srunner_create(kernels_suite());
    srunner_run_all(sr, CK_NORMAL);
    nfailed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return (nfailed == 0) ? 0 : 1;
}
