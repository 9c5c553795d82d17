/*
 * kernels/cpu/kernels_avx512.c — AVX-512 (AVX512F only) versions of the
 * kernels in kernels.h, sixteen floats at a time, with unaligned loads and
 * stores.
 *
 * Each elementwise kernel repeats, lane by lane, the operations of its scalar
 * reference in kernels.c in the same order, using only correctly rounded
 * instructions (mul, add, sub, div, sqrt; never FMA, never the rcp14/rsqrt14
 * approximations), so the results are identical to the scalar path's bits.
 * Compile with -ffp-contract=off (the pragma below repeats it: GCC may fuse
 * the intrinsics' mul and add when FMA is enabled).
 *
 * The last n % 16 elements go through the same vector code under a lane mask:
 * masked loads read zeros in the inactive lanes (and never fault there), the
 * inactive lanes are computed on those zeros, and masked stores leave the
 * memory past n untouched.
 *
 * Only kernels.c (and the unit test) call these, and only when the CPU
 * reports AVX512F.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "kernels_avx512.h"

#if defined(__x86_64__)

#include <immintrin.h>

#define ZRT__AVX512 __attribute__((target("avx512f")))

#define ALL_LANES ((__mmask16)0xFFFF)

/* The first r lanes, 0 <= r < 16. */
static __mmask16 first_lanes(size_t r)
{
    return (__mmask16)((1u << r) - 1u);
}

/* The AdamW scalars broadcast to all sixteen lanes. */
typedef struct adamw_vec {
    __m512 beta1, one_minus_beta1, beta2, one_minus_beta2;
    __m512 step_size, inv_sqrt_bc2, eps, decay_factor;
} adamw_vec;

ZRT__AVX512 static void adamw_vec_init(adamw_vec *k,
                                       const zrt_adamw_scalars *s)
{
    k->beta1 = _mm512_set1_ps(s->beta1);
    k->one_minus_beta1 = _mm512_set1_ps(s->one_minus_beta1);
    k->beta2 = _mm512_set1_ps(s->beta2);
    k->one_minus_beta2 = _mm512_set1_ps(s->one_minus_beta2);
    k->step_size = _mm512_set1_ps(s->step_size);
    k->inv_sqrt_bc2 = _mm512_set1_ps(s->inv_sqrt_bc2);
    k->eps = _mm512_set1_ps(s->eps);
    k->decay_factor = _mm512_set1_ps(s->decay_factor);
}

/* One vector of zrt_adamw_f32_scalar's loop body, same parenthesisation,
 * on the lanes in mask. */
ZRT__AVX512 static void adamw16(const float *p, float *p_out, const float *g,
                                float *m, float *v, const adamw_vec *k,
                                __mmask16 mask)
{
    __m512 gv = _mm512_maskz_loadu_ps(mask, g);
    __m512 pv = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, p), k->decay_factor);
    __m512 mv = _mm512_add_ps(
        _mm512_mul_ps(k->beta1, _mm512_maskz_loadu_ps(mask, m)),
        _mm512_mul_ps(k->one_minus_beta1, gv));
    __m512 vv = _mm512_add_ps(
        _mm512_mul_ps(k->beta2, _mm512_maskz_loadu_ps(mask, v)),
        _mm512_mul_ps(_mm512_mul_ps(k->one_minus_beta2, gv), gv));
    __m512 denom = _mm512_add_ps(
        _mm512_mul_ps(_mm512_sqrt_ps(vv), k->inv_sqrt_bc2), k->eps);

    pv = _mm512_sub_ps(pv,
                       _mm512_div_ps(_mm512_mul_ps(k->step_size, mv), denom));
    _mm512_mask_storeu_ps(p_out, mask, pv);
    _mm512_mask_storeu_ps(m, mask, mv);
    _mm512_mask_storeu_ps(v, mask, vv);
}

ZRT__AVX512 void zrt__adamw_f32_out_avx512(const float *p, float *p_out,
                                           const float *g, float *m, float *v,
                                           size_t n, const zrt_adamw_scalars *s)
{
    adamw_vec k;
    size_t i;

    adamw_vec_init(&k, s);
    for (i = 0; n - i >= 16; i += 16)
        adamw16(p + i, p_out + i, g + i, m + i, v + i, &k, ALL_LANES);
    if (i < n)
        adamw16(p + i, p_out + i, g + i, m + i, v + i, &k, first_lanes(n - i));
}

void zrt__adamw_f32_avx512(float *p, const float *g, float *m, float *v, size_t n,
                           const zrt_adamw_scalars *s)
{
    zrt__adamw_f32_out_avx512(p, p, g, m, v, n, s);
}

ZRT__AVX512 void zrt__fill_f32_avx512(float *x, size_t n, float value)
{
    __m512 val = _mm512_set1_ps(value);
    size_t i;

    for (i = 0; n - i >= 16; i += 16)
        _mm512_storeu_ps(x + i, val);
    if (i < n)
        _mm512_mask_storeu_ps(x + i, first_lanes(n - i), val);
}

ZRT__AVX512 static void scale16(float *x, __m512 a, __mmask16 mask)
{
    __m512 xv = _mm512_maskz_loadu_ps(mask, x);

    _mm512_mask_storeu_ps(x, mask, _mm512_mul_ps(xv, a));
}

ZRT__AVX512 void zrt__scale_f32_avx512(float *x, size_t n, float alpha)
{
    __m512 a = _mm512_set1_ps(alpha);
    size_t i;

    for (i = 0; n - i >= 16; i += 16)
        scale16(x + i, a, ALL_LANES);
    if (i < n)
        scale16(x + i, a, first_lanes(n - i));
}

/* x[0..15] (the lanes in mask; zeros elsewhere) squared in double and added
 * to the partial sums: lo gets lanes 0-7, hi lanes 8-15. */
ZRT__AVX512 static void sqnorm16(const float *x, __mmask16 mask, __m512d *lo,
                                 __m512d *hi)
{
    __m512 xv = _mm512_maskz_loadu_ps(mask, x);
    __m256 xlo = _mm512_castps512_ps256(xv);
    __m256 xhi =
        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1));
    __m512d a = _mm512_cvtps_pd(xlo);
    __m512d b = _mm512_cvtps_pd(xhi);

    *lo = _mm512_add_pd(*lo, _mm512_mul_pd(a, a));
    *hi = _mm512_add_pd(*hi, _mm512_mul_pd(b, b));
}

/* Each float is widened to double before squaring, so the products are
 * exact; only the sums round, and in a different order from the scalar
 * loop (sixteen interleaved partial sums). The masked tail adds exact
 * zeros, which change nothing. */
ZRT__AVX512 double zrt__sqnorm_f32_avx512(const float *x, size_t n)
{
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    double l[8];
    size_t i;

    for (i = 0; n - i >= 16; i += 16)
        sqnorm16(x + i, ALL_LANES, &lo, &hi);
    if (i < n)
        sqnorm16(x + i, first_lanes(n - i), &lo, &hi);
    _mm512_storeu_pd(l, _mm512_add_pd(lo, hi));
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/* All lanes of every source are loaded before out is stored, which makes
 * out == src[k] safe. */
ZRT__AVX512 static void sum16(float *out, const float *const *src, int nsrc,
                              size_t i, __mmask16 mask, float divisor,
                              __m512 d)
{
    __m512 acc = _mm512_maskz_loadu_ps(mask, src[0] + i);

    for (int k = 1; k < nsrc; k++)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(mask, src[k] + i));
    if (divisor != 1.0f)
        acc = _mm512_div_ps(acc, d);
    _mm512_mask_storeu_ps(out + i, mask, acc);
}

ZRT__AVX512 void zrt__sum_ordered_f32_avx512(float *out,
                                             const float *const *src,
                                             int nsrc, size_t n, float divisor)
{
    __m512 d = _mm512_set1_ps(divisor);
    size_t i;

    for (i = 0; n - i >= 16; i += 16)
        sum16(out, src, nsrc, i, ALL_LANES, divisor, d);
    if (i < n)
        sum16(out, src, nsrc, i, first_lanes(n - i), divisor, d);
}

#else /* not x86-64: never called, defined so that kernels.c links */

void zrt__adamw_f32_out_avx512(const float *p, float *p_out, const float *g, float *m,
                               float *v, size_t n, const zrt_adamw_scalars *s)
{
    zrt_adamw_f32_out_scalar(p, p_out, g, m, v, n, s);
}

void zrt__adamw_f32_avx512(float *p, const float *g, float *m, float *v,
                           size_t n, const zrt_adamw_scalars *s)
{
    zrt_adamw_f32_scalar(p, g, m, v, n, s);
}

void zrt__fill_f32_avx512(float *x, size_t n, float value)
{
    zrt_fill_f32_scalar(x, n, value);
}

void zrt__scale_f32_avx512(float *x, size_t n, float alpha)
{
    zrt_scale_f32_scalar(x, n, alpha);
}

double zrt__sqnorm_f32_avx512(const float *x, size_t n)
{
    return zrt_sqnorm_f32_scalar(x, n);
}

void zrt__sum_ordered_f32_avx512(float *out, const float *const *src,
                                 int nsrc, size_t n, float divisor)
{
    zrt_sum_ordered_f32_scalar(out, src, nsrc, n, divisor);
}

#endif
