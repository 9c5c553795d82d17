/*
 * tests/unit/test_kernels.c — Check suite "kernels" for kernels/cpu.
 *
 * The dispatching entry points (AVX2 on this CPU when it has it) must equal
 * the scalar references bit for bit for AdamW, fill, scale and sum_ordered;
 * the scalar references are checked in turn against independent references
 * (a double-precision PyTorch AdamW step, a long double squared norm, a plain
 * sequential sum). Every buffer sits between guard words, at an address that
 * is not 32-byte aligned, so overruns and alignment assumptions show up.
 */
#include "kernels/cpu/kernels.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
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
static void check_sum(sum_fn *fn, int nsrc, size_t n, float divisor,
                      int alias, uint64_t seed)
{
    rng r = rng_seed(seed);
    float *src[MAXSRC], *want = guarded_alloc(n), *out;

    for (int k = 0; k < nsrc; k++) {
        src[k] = guarded_alloc(n);
        for (size_t i = 0; i < n; i++) {
            float mag = (float)(1 << (rng_next(&r) >> 60));
            src[k][i] = rng_unit(&r) * mag;
        }
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

/* ---- path ---------------------------------------------------------------- */

START_TEST(test_cpu_path)
{
    const char *path = zrt_kernels_cpu_path();

    ck_assert_ptr_nonnull(path);
    ck_assert(strcmp(path, "avx2") == 0 || strcmp(path, "scalar") == 0);
#if defined(__x86_64__)
    ck_assert_str_eq(path,
                     __builtin_cpu_supports("avx2") ? "avx2" : "scalar");
#endif
}
END_TEST

/* ---- suite --------------------------------------------------------------- */

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
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(kernels_suite());
    int nfailed;

    srunner_run_all(sr, CK_NORMAL);
    nfailed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return (nfailed == 0) ? 0 : 1;
}
