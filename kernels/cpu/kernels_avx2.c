/* SPDX-License-Identifier: Apache-2.0 */
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
 * reports AVX2 (and F16C, for the 16-bit kernels that convert).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "kernels_avx2.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <string.h>

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

/* adamw_elem of kernels.c on eight lanes, same parenthesisation: updates
 * *m and *v, returns the new parameters. */
ZRT__AVX2 static inline __m256 adamw8_core(__m256 p, __m256 gv, __m256 *m, __m256 *v,
                                           const adamw_vec *k)
{
    __m256 pv = _mm256_mul_ps(p, k->decay_factor);
    __m256 mv =
        _mm256_add_ps(_mm256_mul_ps(k->beta1, *m), _mm256_mul_ps(k->one_minus_beta1, gv));
    __m256 vv = _mm256_add_ps(_mm256_mul_ps(k->beta2, *v),
                              _mm256_mul_ps(_mm256_mul_ps(k->one_minus_beta2, gv), gv));
    __m256 denom =
        _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vv), k->inv_sqrt_bc2), k->eps);

    *m = mv;
    *v = vv;
    return _mm256_sub_ps(pv, _mm256_div_ps(_mm256_mul_ps(k->step_size, mv), denom));
}

/* One vector of zrt_adamw_f32_out_scalar's loop. */
ZRT__AVX2 static void adamw8(const float *p, float *p_out, const float *g, float *m,
                             float *v, const adamw_vec *k)
{
    __m256 mv = _mm256_loadu_ps(m), vv = _mm256_loadu_ps(v);
    __m256 pv = adamw8_core(_mm256_loadu_ps(p), _mm256_loadu_ps(g), &mv, &vv, k);

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

/* The squares of eight floats added into eight partial sums, lo and hi
 * (four doubles each). Each float is widened to double before squaring,
 * so the products are exact; only the sums round. */
ZRT__AVX2 static inline void add_squares8(__m256 xv, __m256d *lo, __m256d *hi)
{
    __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(xv));
    __m256d b = _mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1));

    *lo = _mm256_add_pd(*lo, _mm256_mul_pd(a, a));
    *hi = _mm256_add_pd(*hi, _mm256_mul_pd(b, b));
}

/* add_squares8's eight partial sums as one, in a fixed order. */
ZRT__AVX2 static inline double sum_partials(__m256d lo, __m256d hi)
{
    double lanes[4];

    _mm256_storeu_pd(lanes, _mm256_add_pd(lo, hi));
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

/* The sums round in a different order from the scalar loop (eight
 * interleaved partial sums, see add_squares8). */
ZRT__AVX2 double zrt__sqnorm_f32_avx2(const float *x, size_t n)
{
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    size_t i;

    for (i = 0; n - i >= 8; i += 8)
        add_squares8(_mm256_loadu_ps(x + i), &lo, &hi);
    return sum_partials(lo, hi) + zrt_sqnorm_f32_scalar(x + i, n - i);
}

/* All eight lanes of every source are loaded before out is stored, which
 * makes out == src[k] safe. */
ZRT__AVX2 void zrt__sum_ordered_f32_avx2(float *out, const float *const *src, int nsrc,
                                         size_t n, float divisor)
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

/* ---- 16-bit kernels ------------------------------------------------------
 * Eight 16-bit values travel in an __m128i, widened to an __m256 of f32.
 * fp16 goes through F16C (VCVTPH2PS, VCVTPS2PH with round-to-nearest-even as
 * an immediate, so MXCSR's rounding mode is not used); bf16 is integer work
 * that repeats zrt_f32_to_bf16 / zrt_bf16_to_f32 lane by lane. */

#define ZRT__AVX2H __attribute__((target("avx2,f16c")))

/* Eight 16-bit values to f32, exactly. */
ZRT__AVX2H static inline __m256 widen8(const uint16_t *x, zrt_half h)
{
    __m128i xv = _mm_loadu_si128((const __m128i *)x);

    if (h == ZRT_HALF_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(xv), 16));
    return _mm256_cvtph_ps(xv);
}

/* Eight f32 values rounded to 16 bits and stored, as zrt_f32_to_half does. */
ZRT__AVX2H static inline void narrow8(uint16_t *out, __m256 x, zrt_half h)
{
    __m128i r;

    if (h == ZRT_HALF_BF16) {
        __m256i u = _mm256_castps_si256(x);
        __m256i mag = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
        __m256i nan = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7f800000));
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
        __m256i rne =
            _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb);
        __m256i quiet = _mm256_or_si256(u, _mm256_set1_epi32(0x00400000));
        __m256i w = _mm256_srli_epi32(_mm256_blendv_epi8(rne, quiet, nan), 16);

        /* each lane holds 0..0xffff: the unsigned saturating pack is exact */
        r = _mm_packus_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    } else {
        r = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    _mm_storeu_si128((__m128i *)out, r);
}

ZRT__AVX2H void zrt__cast_f32_to_half_avx2(uint16_t *dst, const float *src, size_t n,
                                           zrt_half h)
{
    size_t i;

    for (i = 0; n - i >= 8; i += 8)
        narrow8(dst + i, _mm256_loadu_ps(src + i), h);
    zrt_cast_f32_to_half_scalar(dst + i, src + i, n - i, h);
}

ZRT__AVX2H void zrt__cast_half_to_f32_avx2(float *dst, const uint16_t *src, size_t n,
                                           zrt_half h)
{
    size_t i;

    for (i = 0; n - i >= 8; i += 8)
        _mm256_storeu_ps(dst + i, widen8(src + i, h));
    zrt_cast_half_to_f32_scalar(dst + i, src + i, n - i, h);
}

ZRT__AVX2H void zrt__add_half_avx2(uint16_t *dst, const uint16_t *src, size_t n,
                                   zrt_half h)
{
    size_t i;

    for (i = 0; n - i >= 8; i += 8)
        narrow8(dst + i, _mm256_add_ps(widen8(dst + i, h), widen8(src + i, h)), h);
    zrt_add_half_scalar(dst + i, src + i, n - i, h);
}

ZRT__AVX2H void zrt__scale_half_avx2(uint16_t *x, size_t n, float alpha, zrt_half h)
{
    __m256 a = _mm256_set1_ps(alpha);
    size_t i;

    for (i = 0; n - i >= 8; i += 8)
        narrow8(x + i, _mm256_mul_ps(widen8(x + i, h), a), h);
    zrt_scale_half_scalar(x + i, n - i, alpha, h);
}

/* As zrt__sqnorm_f32_avx2, on the widened values. */
ZRT__AVX2H double zrt__sqnorm_half_avx2(const uint16_t *x, size_t n, zrt_half h)
{
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    size_t i;

    for (i = 0; n - i >= 8; i += 8)
        add_squares8(widen8(x + i, h), &lo, &hi);
    return sum_partials(lo, hi) + zrt_sqnorm_half_scalar(x + i, n - i, h);
}

/* All eight lanes of every source are loaded before out is stored, which
 * makes out == src[k] safe. */
ZRT__AVX2H void zrt__sum_ordered_half_avx2(uint16_t *out, const uint16_t *const *src,
                                           int nsrc, size_t n, float divisor, zrt_half h)
{
    __m256 d = _mm256_set1_ps(divisor);
    size_t i;

    for (i = 0; n - i >= 8; i += 8) {
        __m256 acc = widen8(src[0] + i, h);

        for (int k = 1; k < nsrc; k++)
            acc = _mm256_add_ps(acc, widen8(src[k] + i, h));
        if (divisor != 1.0f)
            acc = _mm256_div_ps(acc, d);
        narrow8(out + i, acc, h);
    }
    zrt__sum_ordered_half_range(out, src, nsrc, i, n, divisor, h);
}

/* Integer work only (no F16C): an element is inf or NaN when all its
 * exponent bits are set. Sixteen elements at a time. */
ZRT__AVX2 int zrt__all_finite_half_avx2(const uint16_t *x, size_t n, zrt_half h)
{
    __m256i e = _mm256_set1_epi16((short)(h == ZRT_HALF_BF16 ? 0x7f80 : 0x7c00));
    size_t i;

    for (i = 0; n - i >= 16; i += 16) {
        __m256i xv = _mm256_loadu_si256((const __m256i *)(x + i));
        __m256i bad = _mm256_cmpeq_epi16(_mm256_and_si256(xv, e), e);

        if (!_mm256_testz_si256(bad, bad))
            return 0;
    }
    return zrt_all_finite_half_scalar(x + i, n - i, h);
}

ZRT__AVX2 int zrt__all_finite_f32_avx2(const float *x, size_t n)
{
    __m256i e = _mm256_set1_epi32(0x7f800000);
    size_t i;

    for (i = 0; n - i >= 8; i += 8) {
        __m256i xv = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        __m256i bad = _mm256_cmpeq_epi32(_mm256_and_si256(xv, e), e);

        if (!_mm256_testz_si256(bad, bad))
            return 0;
    }
    return zrt_all_finite_f32_scalar(x + i, n - i);
}

/* One vector of zrt_adamw_mixed_scalar's loop, from the scaled gradients:
 * g was loaded before p_out is stored, so p_out == g is safe. */
ZRT__AVX2H static void adamw_mixed8(float *master, uint16_t *p_out, __m256 g32, float *m,
                                    float *v, const adamw_vec *k, zrt_half h)
{
    __m256 mv = _mm256_loadu_ps(m), vv = _mm256_loadu_ps(v);
    __m256 pv = adamw8_core(_mm256_loadu_ps(master), g32, &mv, &vv, k);

    _mm256_storeu_ps(master, pv);
    _mm256_storeu_ps(m, mv);
    _mm256_storeu_ps(v, vv);
    narrow8(p_out, pv, h);
}

/* The whole vectors of both mixed kernels, whose gradients are either 16-bit
 * (g16) or f32 (g32; the other is NULL). Returns the elements done, n less
 * the n % 8 left for the scalar code. */
ZRT__AVX2H static size_t adamw_mixed_vectors(float *master, uint16_t *p_out,
                                             const uint16_t *g16, const float *g32,
                                             float *m, float *v, size_t n,
                                             float grad_scale, const zrt_adamw_scalars *s,
                                             zrt_half h)
{
    __m256 gs = _mm256_set1_ps(grad_scale);
    adamw_vec k;
    size_t i;

    adamw_vec_init(&k, s);
    for (i = 0; n - i >= 8; i += 8) {
        __m256 gv = g16 ? widen8(g16 + i, h) : _mm256_loadu_ps(g32 + i);

        adamw_mixed8(master + i, p_out + i, _mm256_mul_ps(gv, gs), m + i, v + i, &k, h);
    }
    return i;
}

ZRT__AVX2H void zrt__adamw_mixed_avx2(float *master, uint16_t *p_out, const uint16_t *g,
                                      float *m, float *v, size_t n, float grad_scale,
                                      const zrt_adamw_scalars *s, zrt_half h)
{
    size_t i = adamw_mixed_vectors(master, p_out, g, NULL, m, v, n, grad_scale, s, h);

    zrt_adamw_mixed_scalar(master + i, p_out + i, g + i, m + i, v + i, n - i, grad_scale,
                           s, h);
}

ZRT__AVX2H void zrt__adamw_mixed_f32grad_avx2(float *master, uint16_t *p_out,
                                              const float *g, float *m, float *v,
                                              size_t n, float grad_scale,
                                              const zrt_adamw_scalars *s, zrt_half h)
{
    size_t i = adamw_mixed_vectors(master, p_out, NULL, g, m, v, n, grad_scale, s, h);

    zrt_adamw_mixed_f32grad_scalar(master + i, p_out + i, g + i, m + i, v + i, n - i,
                                   grad_scale, s, h);
}

/* ---- quantization: eight floats at a time, the tail by the scalar code ---- */

ZRT__AVX2 static uint32_t absmax_bits_avx2(const float *x, size_t m)
{
    const __m256i sign_off = _mm256_set1_epi32(0x7fffffff);
    __m256i acc = _mm256_setzero_si256();
    uint32_t lane[8], amax;
    size_t j = 0;

    for (; j + 8 <= m; j += 8) {
        __m256i b = _mm256_loadu_si256((const __m256i *)(x + j));
        acc = _mm256_max_epu32(acc, _mm256_and_si256(b, sign_off));
    }
    _mm256_storeu_si256((__m256i *)lane, acc);
    amax = zrt__quant_ops_scalar.absmax_bits(x + j, m - j);
    for (int k = 0; k < 8; k++)
        amax = lane[k] > amax ? lane[k] : amax;
    return amax;
}

/* clamp(round-to-nearest-even(x * inv), -Q, Q) on eight lanes. */
ZRT__AVX2 static inline __m256i quant8(const float *x, __m256 inv, __m256i qmax)
{
    __m256i i = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), inv));

    return _mm256_max_epi32(_mm256_min_epi32(i, qmax),
                            _mm256_sub_epi32(_mm256_setzero_si256(), qmax));
}

ZRT__AVX2 static void quant_i8_avx2(const float *x, size_t m, float inv, int8_t *q)
{
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i qmax = _mm256_set1_epi32(127);
    /* byte 0 of each dword to the first four bytes of its 128-bit lane */
    const __m256i pick =
        _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0,
                         4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    size_t j = 0;

    for (; j + 8 <= m; j += 8) {
        __m256i b = _mm256_shuffle_epi8(quant8(x + j, vinv, qmax), pick);
        __m128i r =
            _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
        _mm_storel_epi64((__m128i *)(q + j), r);
    }
    zrt__quant_ops_scalar.quant_i8(x + j, m - j, inv, q + j);
}

ZRT__AVX2 static void quant_i4_avx2(const float *x, size_t m, float inv, uint8_t *q)
{
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i qmax = _mm256_set1_epi32(7);
    const __m256i low4 = _mm256_set1_epi32(0xf);
    /* byte 0 of each qword (a packed pair) to the first two bytes of its lane */
    const __m256i pick =
        _mm256_setr_epi8(0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0,
                         8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    size_t j = 0;

    for (; j + 8 <= m; j += 8) {
        __m256i v = _mm256_and_si256(quant8(x + j, vinv, qmax), low4);
        __m256i b =
            _mm256_shuffle_epi8(_mm256_or_si256(v, _mm256_srli_epi64(v, 28)), pick);
        __m128i r =
            _mm_unpacklo_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
        int32_t four = _mm_cvtsi128_si32(r);

        memcpy(q + j / 2, &four, 4);
    }
    zrt__quant_ops_scalar.quant_i4(x + j, m - j, inv, q + j / 2);
}

/* x = q * scale, or x += q * scale, on eight lanes of q (int32). */
ZRT__AVX2 static inline void deq8(__m256i qi, __m256 scale, float *x, int add)
{
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(qi), scale);

    _mm256_storeu_ps(x, add ? _mm256_add_ps(_mm256_loadu_ps(x), v) : v);
}

ZRT__AVX2 static void deq_i8_avx2(const int8_t *q, size_t m, float scale, float *x,
                                  int add)
{
    const __m256 vs = _mm256_set1_ps(scale);
    size_t j = 0;

    for (; j + 8 <= m; j += 8)
        deq8(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + j))), vs, x + j,
             add);
    zrt__quant_ops_scalar.deq_i8(q + j, m - j, scale, x + j, add);
}

ZRT__AVX2 static void deq_i4_avx2(const uint8_t *q, size_t m, float scale, float *x,
                                  int add)
{
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256i low4 = _mm256_set1_epi64x(0xf), high4 = _mm256_set1_epi64x(0xf0);
    size_t j = 0;

    for (; j + 8 <= m; j += 8) {
        int32_t four;
        __m256i b, v;

        memcpy(&four, q + j / 2, 4);
        b = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(four));
        /* low nibble to the low dword, high nibble to the high dword, then
         * sign-extend each from 4 bits */
        v = _mm256_or_si256(_mm256_and_si256(b, low4),
                            _mm256_slli_epi64(_mm256_and_si256(b, high4), 28));
        deq8(_mm256_srai_epi32(_mm256_slli_epi32(v, 28), 28), vs, x + j, add);
    }
    zrt__quant_ops_scalar.deq_i4(q + j / 2, m - j, scale, x + j, add);
}

static const zrt__quant_ops quant_ops_avx2 = {absmax_bits_avx2, quant_i8_avx2,
                                              quant_i4_avx2, deq_i8_avx2, deq_i4_avx2};
#define QUANT_OPS (&quant_ops_avx2)

#else /* not x86-64: never called, defined so that kernels.c links */

void zrt__adamw_f32_out_avx2(const float *p, float *p_out, const float *g, float *m,
                             float *v, size_t n, const zrt_adamw_scalars *s)
{
    zrt_adamw_f32_out_scalar(p, p_out, g, m, v, n, s);
}

void zrt__adamw_f32_avx2(float *p, const float *g, float *m, float *v, size_t n,
                         const zrt_adamw_scalars *s)
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

void zrt__sum_ordered_f32_avx2(float *out, const float *const *src, int nsrc, size_t n,
                               float divisor)
{
    zrt_sum_ordered_f32_scalar(out, src, nsrc, n, divisor);
}

void zrt__cast_f32_to_half_avx2(uint16_t *dst, const float *src, size_t n, zrt_half h)
{
    zrt_cast_f32_to_half_scalar(dst, src, n, h);
}

void zrt__cast_half_to_f32_avx2(float *dst, const uint16_t *src, size_t n, zrt_half h)
{
    zrt_cast_half_to_f32_scalar(dst, src, n, h);
}

void zrt__add_half_avx2(uint16_t *dst, const uint16_t *src, size_t n, zrt_half h)
{
    zrt_add_half_scalar(dst, src, n, h);
}

void zrt__scale_half_avx2(uint16_t *x, size_t n, float alpha, zrt_half h)
{
    zrt_scale_half_scalar(x, n, alpha, h);
}

double zrt__sqnorm_half_avx2(const uint16_t *x, size_t n, zrt_half h)
{
    return zrt_sqnorm_half_scalar(x, n, h);
}

void zrt__sum_ordered_half_avx2(uint16_t *out, const uint16_t *const *src, int nsrc,
                                size_t n, float divisor, zrt_half h)
{
    zrt_sum_ordered_half_scalar(out, src, nsrc, n, divisor, h);
}

int zrt__all_finite_half_avx2(const uint16_t *x, size_t n, zrt_half h)
{
    return zrt_all_finite_half_scalar(x, n, h);
}

int zrt__all_finite_f32_avx2(const float *x, size_t n)
{
    return zrt_all_finite_f32_scalar(x, n);
}

void zrt__adamw_mixed_avx2(float *master, uint16_t *p_out, const uint16_t *g, float *m,
                           float *v, size_t n, float grad_scale,
                           const zrt_adamw_scalars *s, zrt_half h)
{
    zrt_adamw_mixed_scalar(master, p_out, g, m, v, n, grad_scale, s, h);
}

void zrt__adamw_mixed_f32grad_avx2(float *master, uint16_t *p_out, const float *g,
                                   float *m, float *v, size_t n, float grad_scale,
                                   const zrt_adamw_scalars *s, zrt_half h)
{
    zrt_adamw_mixed_f32grad_scalar(master, p_out, g, m, v, n, grad_scale, s, h);
}

#define QUANT_OPS (&zrt__quant_ops_scalar)

#endif

/* ---- quantization entry points (the block loop is kernels.c's) ---- */

size_t zrt__quantize_i8_avx2(const float *x, size_t n, size_t block, int8_t *q,
                             float *scale)
{
    return zrt__quantize(QUANT_OPS, x, n, block, 8, q, scale);
}

void zrt__dequantize_i8_avx2(const int8_t *q, const float *scale, size_t n, size_t block,
                             float *x)
{
    zrt__dequantize(QUANT_OPS, q, scale, n, block, 8, 0, x);
}

void zrt__dequantize_add_i8_avx2(const int8_t *q, const float *scale, size_t n,
                                 size_t block, float *x)
{
    zrt__dequantize(QUANT_OPS, q, scale, n, block, 8, 1, x);
}

size_t zrt__quantize_i4_avx2(const float *x, size_t n, size_t block, uint8_t *q,
                             float *scale)
{
    return zrt__quantize(QUANT_OPS, x, n, block, 4, q, scale);
}

void zrt__dequantize_i4_avx2(const uint8_t *q, const float *scale, size_t n, size_t block,
                             float *x)
{
    zrt__dequantize(QUANT_OPS, q, scale, n, block, 4, 0, x);
}

void zrt__dequantize_add_i4_avx2(const uint8_t *q, const float *scale, size_t n,
                                 size_t block, float *x)
{
    zrt__dequantize(QUANT_OPS, q, scale, n, block, 4, 1, x);
}
