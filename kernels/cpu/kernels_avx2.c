/*
 * kernels/cpu/kernels_avx2.c — AVX2 versions of the kernels in kernels.h,
 * eight floats at a time, with unaligned loads and stores.
 *
 * Each elementwise kernel repeats, lane by lane, the operations of its scalar
 * reference in kernels.c in the same order, using only correctly rounded
 * instructions (mul, add, sub, div, sqrt; never FMA), and hands the last
 * n % 8 elements to the scalar code. The results are therefore identical to
 * the scalar path's bits. Compile with -ffp-contract=off (the pragma below
 * repeats it: GCC may fuse the intrinsics' mul and add when FMA is enabled).
 *
 * Only kernels.c (and the unit test) call these, and only when the CPU
 * reports AVX2.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "kernels_avx2.h"

#if defined(__x86_64__)

#include <immintrin.h>

#define ZRT__AVX2 __attribute__((target("avx2")))

/* The AdamW scalars broadcast to all eight lanes. */
typedef struct adamw_vec {
    __m256 beta1, one_minus_beta1, beta2, one_minus_beta2;
    __m256 step_size, inv_sqrt_bc2, eps, decay_factor;
} adamw_vec;

ZRT__AVX2 static void adamw_vec_init(adamw_vec *k, const zrt_adamw_scalars *s)
{
    k->beta1 = _mm256_set1_ps(s->beta1);
    k->one_minus_beta1 = _mm256_set1_ps(s->one_minus_beta1);
    k->beta2 = _mm256_set1_ps(s->beta2);
    k->one_minus_beta2 = _mm256_set1_ps(s->one_minus_beta2);
    k->step_size = _mm256_set1_ps(s->step_size);
    k->inv_sqrt_bc2 = _mm256_set1_ps(s->inv_sqrt_bc2);
    k->eps = _mm256_set1_ps(s->eps);
    k->decay_factor = _mm256_set1_ps(s->decay_factor);
}

/* One vector of zrt_adamw_f32_scalar's loop body, same parenthesisation. */
ZRT__AVX2 static void adamw8(const float *p, float *p_out, const float *g, float *m,
                             float *v, const adamw_vec *k)
{
    __m256 gv = _mm256_loadu_ps(g);
    __m256 pv = _mm256_mul_ps(_mm256_loadu_ps(p), k->decay_factor);
    __m256 mv = _mm256_add_ps(_mm256_mul_ps(k->beta1, _mm256_loadu_ps(m)),
                              _mm256_mul_ps(k->one_minus_beta1, gv));
    __m256 vv = _mm256_add_ps(
        _mm256_mul_ps(k->beta2, _mm256_loadu_ps(v)),
        _mm256_mul_ps(_mm256_mul_ps(k->one_minus_beta2, gv), gv));
    __m256 denom = _mm256_add_ps(
        _mm256_mul_ps(_mm256_sqrt_ps(vv), k->inv_sqrt_bc2), k->eps);

    pv = _mm256_sub_ps(pv,
                       _mm256_div_ps(_mm256_mul_ps(k->step_size, mv), denom));
    _mm256_storeu_ps(p_out, pv);
    _mm256_storeu_ps(m, mv);
    _mm256_storeu_ps(v, vv);
}

ZRT__AVX2 void zrt__adamw_f32_out_avx2(const float *p, float *p_out, const float *g,
                                       float *m, float *v, size_t n,
                                       const zrt_adamw_scalars *s)
{
    adamw_vec k;
    size_t i;

    adamw_vec_init(&k, s);
    for (i = 0; n - i >= 8; i += 8)
        adamw8(p + i, p_out + i, g + i, m + i, v + i, &k);
    zrt_adamw_f32_out_scalar(p + i, p_out + i, g + i, m + i, v + i, n - i, s);
}

void zrt__adamw_f32_avx2(float *p, const float *g, float *m, float *v, size_t n,
                         const zrt_adamw_scalars *s)
{
    zrt__adamw_f32_out_avx2(p, p, g, m, v, n, s);
}

ZRT__AVX2 void zrt__fill_f32_avx2(float *x, size_t n, float value)
{
    __m256 val = _mm256_set1_ps(value);
    size_t i;

    for (i = 0; n - i >= 8; i += 8)
        _mm256_storeu_ps(x + i, val);
    zrt_fill_f32_scalar(x + i, n - i, value);
}

ZRT__AVX2 void zrt__scale_f32_avx2(float *x, size_t n, float alpha)
{
    __m256 a = _mm256_set1_ps(alpha);
    size_t i;

    for (i = 0; n - i >= 8; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), a));
    zrt_scale_f32_scalar(x + i, n - i, alpha);
}

/* Each float is widened to double before squaring, so the products are
 * exact; only the sums round, and in a different order from the scalar
 * loop (eight interleaved partial sums). */
ZRT__AVX2 double zrt__sqnorm_f32_avx2(const float *x, size_t n)
{
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    double lanes[4], acc;
    size_t i;

    for (i = 0; n - i >= 8; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i);
        __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(xv));
        __m256d b = _mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1));

        lo = _mm256_add_pd(lo, _mm256_mul_pd(a, a));
        hi = _mm256_add_pd(hi, _mm256_mul_pd(b, b));
    }
    _mm256_storeu_pd(lanes, _mm256_add_pd(lo, hi));
    acc = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    return acc + zrt_sqnorm_f32_scalar(x + i, n - i);
}

/* All eight lanes of every source are loaded before out is stored, which
 * makes out == src[k] safe. */
ZRT__AVX2 void zrt__sum_ordered_f32_avx2(float *out, const float *const *src,
                                         int nsrc, size_t n, float divisor)
{
    __m256 d = _mm256_set1_ps(divisor);
    size_t i;

    for (i = 0; n - i >= 8; i += 8) {
        __m256 acc = _mm256_loadu_ps(src[0] + i);

        for (int k = 1; k < nsrc; k++)
            acc = _mm256_add_ps(acc, _mm256_loadu_ps(src[k] + i));
        if (divisor != 1.0f)
            acc = _mm256_div_ps(acc, d);
        _mm256_storeu_ps(out + i, acc);
    }
    zrt__sum_ordered_f32_range(out, src, nsrc, i, n, divisor);
}

#else /* not x86-64: never called, defined so that kernels.c links */

void zrt__adamw_f32_out_avx2(const float *p, float *p_out, const float *g, float *m,
                             float *v, size_t n, const zrt_adamw_scalars *s)
{
    zrt_adamw_f32_out_scalar(p, p_out, g, m, v, n, s);
}

void zrt__adamw_f32_avx2(float *p, const float *g, float *m, float *v,
                         size_t n, const zrt_adamw_scalars *s)
{
    zrt_adamw_f32_scalar(p, g, m, v, n, s);
}

void zrt__fill_f32_avx2(float *x, size_t n, float value)
{
    zrt_fill_f32_scalar(x, n, value);
}

void zrt__scale_f32_avx2(float *x, size_t n, float alpha)
{
    zrt_scale_f32_scalar(x, n, alpha);
}

double zrt__sqnorm_f32_avx2(const float *x, size_t n)
{
    return zrt_sqnorm_f32_scalar(x, n);
}

void zrt__sum_ordered_f32_avx2(float *out, const float *const *src, int nsrc,
                               size_t n, float divisor)
{
    zrt_sum_ordered_f32_scalar(out, src, nsrc, n, divisor);
}

#endif
