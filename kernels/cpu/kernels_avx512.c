/* SPDX-License-Identifier: Apache-2.0 */
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
#include "kernels_avx2.h" /* the quantization block loop */

#if defined(__x86_64__)

#include <immintrin.h>
#include <string.h>

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

ZRT__AVX512 static void adamw_vec_init(adamw_vec *k, const zrt_adamw_scalars *s)
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

/* adamw_elem of kernels.c on sixteen lanes, same parenthesisation: updates
 * *m and *v, returns the new parameters. */
ZRT__AVX512 static inline __m512 adamw16_core(__m512 p, __m512 gv, __m512 *m, __m512 *v,
                                              const adamw_vec *k)
{
    __m512 pv = _mm512_mul_ps(p, k->decay_factor);
    __m512 mv =
        _mm512_add_ps(_mm512_mul_ps(k->beta1, *m), _mm512_mul_ps(k->one_minus_beta1, gv));
    __m512 vv = _mm512_add_ps(_mm512_mul_ps(k->beta2, *v),
                              _mm512_mul_ps(_mm512_mul_ps(k->one_minus_beta2, gv), gv));
    __m512 denom =
        _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vv), k->inv_sqrt_bc2), k->eps);

    *m = mv;
    *v = vv;
    return _mm512_sub_ps(pv, _mm512_div_ps(_mm512_mul_ps(k->step_size, mv), denom));
}

/* One vector of zrt_adamw_f32_out_scalar's loop, on the lanes in mask. */
ZRT__AVX512 static void adamw16(const float *p, float *p_out, const float *g, float *m,
                                float *v, const adamw_vec *k, __mmask16 mask)
{
    __m512 mv = _mm512_maskz_loadu_ps(mask, m);
    __m512 vv = _mm512_maskz_loadu_ps(mask, v);
    __m512 pv = adamw16_core(_mm512_maskz_loadu_ps(mask, p),
                             _mm512_maskz_loadu_ps(mask, g), &mv, &vv, k);

    _mm512_mask_storeu_ps(p_out, mask, pv);
    _mm512_mask_storeu_ps(m, mask, mv);
    _mm512_mask_storeu_ps(v, mask, vv);
}

ZRT__AVX512 void zrt__adamw_f32_out_avx512(const float *p, float *p_out, const float *g,
                                           float *m, float *v, size_t n,
                                           const zrt_adamw_scalars *s)
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
ZRT__AVX512 static void sqnorm16(const float *x, __mmask16 mask, __m512d *lo, __m512d *hi)
{
    __m512 xv = _mm512_maskz_loadu_ps(mask, x);
    __m256 xlo = _mm512_castps512_ps256(xv);
    __m256 xhi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1));
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
ZRT__AVX512 static void sum16(float *out, const float *const *src, int nsrc, size_t i,
                              __mmask16 mask, float divisor, __m512 d)
{
    __m512 acc = _mm512_maskz_loadu_ps(mask, src[0] + i);

    for (int k = 1; k < nsrc; k++)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(mask, src[k] + i));
    if (divisor != 1.0f)
        acc = _mm512_div_ps(acc, d);
    _mm512_mask_storeu_ps(out + i, mask, acc);
}

ZRT__AVX512 void zrt__sum_ordered_f32_avx512(float *out, const float *const *src,
                                             int nsrc, size_t n, float divisor)
{
    __m512 d = _mm512_set1_ps(divisor);
    size_t i;

    for (i = 0; n - i >= 16; i += 16)
        sum16(out, src, nsrc, i, ALL_LANES, divisor, d);
    if (i < n)
        sum16(out, src, nsrc, i, first_lanes(n - i), divisor, d);
}

/* ---- 16-bit kernels ------------------------------------------------------
 * Sixteen 16-bit values travel in an __m256i, widened to an __m512 of f32.
 * fp16 goes through AVX512F's VCVTPH2PS / VCVTPS2PH (round-to-nearest-even
 * as an immediate); bf16 is integer work that repeats zrt_f32_to_bf16 /
 * zrt_bf16_to_f32 lane by lane. (AVX512_BF16's VCVTNEPS2BF16 is not used: it
 * flushes subnormals, the scalar rule does not.)
 *
 * AVX512F has no masked 16-bit load or store (that is AVX512BW), so the last
 * r < 16 elements of a 16-bit array pass through a zero-padded copy on the
 * stack: never a read or a write past the array. Every loop below runs over
 * chunks of r = min(16, n - i) elements. */

/* The number of elements in the chunk that starts at i. */
static size_t chunk(size_t n, size_t i)
{
    return n - i < 16 ? n - i : 16;
}

static __mmask16 lanes(size_t r)
{
    return r >= 16 ? ALL_LANES : first_lanes(r);
}

/* x[0..r) (1 <= r <= 16), zeros in the lanes after. */
ZRT__AVX512 static inline __m256i load16h(const uint16_t *x, size_t r)
{
    uint16_t tmp[16] = {0};

    if (r == 16)
        return _mm256_loadu_si256((const __m256i *)x);
    memcpy(tmp, x, r * sizeof *x);
    return _mm256_loadu_si256((const __m256i *)tmp);
}

/* The first r lanes of xv to x[0..r). */
ZRT__AVX512 static inline void store16h(uint16_t *x, __m256i xv, size_t r)
{
    uint16_t tmp[16];

    if (r == 16) {
        _mm256_storeu_si256((__m256i *)x, xv);
        return;
    }
    _mm256_storeu_si256((__m256i *)tmp, xv);
    memcpy(x, tmp, r * sizeof *x);
}

/* x[0..r) widened to f32, exactly; zeros in the lanes after. */
ZRT__AVX512 static inline __m512 widen16(const uint16_t *x, size_t r, zrt_half h)
{
    __m256i xv = load16h(x, r);

    if (h == ZRT_HALF_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(xv), 16));
    return _mm512_cvtph_ps(xv);
}

/* The first r lanes of x rounded to 16 bits, as zrt_f32_to_half does, and
 * stored to out[0..r). */
ZRT__AVX512 static inline void narrow16(uint16_t *out, __m512 x, size_t r, zrt_half h)
{
    __m256i w;

    if (h == ZRT_HALF_BF16) {
        __m512i u = _mm512_castps_si512(x);
        __m512i mag = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
        __mmask16 nan = _mm512_cmpgt_epi32_mask(mag, _mm512_set1_epi32(0x7f800000));
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
        __m512i rne =
            _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb);

        rne = _mm512_mask_or_epi32(rne, nan, u, _mm512_set1_epi32(0x00400000));
        w = _mm512_cvtepi32_epi16(_mm512_srli_epi32(rne, 16)); /* exact: < 2^16 */
    } else {
        w = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    store16h(out, w, r);
}

ZRT__AVX512 void zrt__cast_f32_to_half_avx512(uint16_t *dst, const float *src, size_t n,
                                              zrt_half h)
{
    for (size_t i = 0, r; i < n; i += r) {
        r = chunk(n, i);
        narrow16(dst + i, _mm512_maskz_loadu_ps(lanes(r), src + i), r, h);
    }
}

ZRT__AVX512 void zrt__cast_half_to_f32_avx512(float *dst, const uint16_t *src, size_t n,
                                              zrt_half h)
{
    for (size_t i = 0, r; i < n; i += r) {
        r = chunk(n, i);
        _mm512_mask_storeu_ps(dst + i, lanes(r), widen16(src + i, r, h));
    }
}

ZRT__AVX512 void zrt__add_half_avx512(uint16_t *dst, const uint16_t *src, size_t n,
                                      zrt_half h)
{
    for (size_t i = 0, r; i < n; i += r) {
        r = chunk(n, i);
        narrow16(dst + i, _mm512_add_ps(widen16(dst + i, r, h), widen16(src + i, r, h)),
                 r, h);
    }
}

ZRT__AVX512 void zrt__scale_half_avx512(uint16_t *x, size_t n, float alpha, zrt_half h)
{
    __m512 a = _mm512_set1_ps(alpha);

    for (size_t i = 0, r; i < n; i += r) {
        r = chunk(n, i);
        narrow16(x + i, _mm512_mul_ps(widen16(x + i, r, h), a), r, h);
    }
}

/* As zrt__sqnorm_f32_avx512, on the widened values; the padding lanes add
 * exact zeros. */
ZRT__AVX512 double zrt__sqnorm_half_avx512(const uint16_t *x, size_t n, zrt_half h)
{
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    double l[8];

    for (size_t i = 0, r; i < n; i += r) {
        __m512 xv;
        __m512d a, b;

        r = chunk(n, i);
        xv = widen16(x + i, r, h);
        a = _mm512_cvtps_pd(_mm512_castps512_ps256(xv));
        b = _mm512_cvtps_pd(
            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1)));
        lo = _mm512_add_pd(lo, _mm512_mul_pd(a, a));
        hi = _mm512_add_pd(hi, _mm512_mul_pd(b, b));
    }
    _mm512_storeu_pd(l, _mm512_add_pd(lo, hi));
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/* All lanes of every source are loaded before out is stored, which makes
 * out == src[k] safe. */
ZRT__AVX512 void zrt__sum_ordered_half_avx512(uint16_t *out, const uint16_t *const *src,
                                              int nsrc, size_t n, float divisor,
                                              zrt_half h)
{
    __m512 d = _mm512_set1_ps(divisor);

    for (size_t i = 0, r; i < n; i += r) {
        __m512 acc;

        r = chunk(n, i);
        acc = widen16(src[0] + i, r, h);
        for (int k = 1; k < nsrc; k++)
            acc = _mm512_add_ps(acc, widen16(src[k] + i, r, h));
        if (divisor != 1.0f)
            acc = _mm512_div_ps(acc, d);
        narrow16(out + i, acc, r, h);
    }
}

/* An element is inf or NaN when all its exponent bits are set; 16-bit
 * elements are compared widened to 32 bits (no AVX512BW). Padding lanes are
 * zeros, which are finite. */
ZRT__AVX512 int zrt__all_finite_half_avx512(const uint16_t *x, size_t n, zrt_half h)
{
    __m512i e = _mm512_set1_epi32(h == ZRT_HALF_BF16 ? 0x7f80 : 0x7c00);

    for (size_t i = 0, r; i < n; i += r) {
        __m512i xv;

        r = chunk(n, i);
        xv = _mm512_cvtepu16_epi32(load16h(x + i, r));
        if (_mm512_cmpeq_epi32_mask(_mm512_and_si512(xv, e), e))
            return 0;
    }
    return 1;
}

ZRT__AVX512 int zrt__all_finite_f32_avx512(const float *x, size_t n)
{
    __m512i e = _mm512_set1_epi32(0x7f800000);

    for (size_t i = 0, r; i < n; i += r) {
        __m512i xv;

        r = chunk(n, i);
        xv = _mm512_castps_si512(_mm512_maskz_loadu_ps(lanes(r), x + i));
        if (_mm512_cmpeq_epi32_mask(_mm512_and_si512(xv, e), e))
            return 0;
    }
    return 1;
}

/* One chunk of zrt_adamw_mixed_scalar's loop, from the scaled gradients:
 * g was loaded before p_out is stored, so p_out == g is safe. */
ZRT__AVX512 static void adamw_mixed16(float *master, uint16_t *p_out, __m512 g32,
                                      float *m, float *v, const adamw_vec *k, size_t r,
                                      zrt_half h)
{
    __mmask16 mask = lanes(r);
    __m512 mv = _mm512_maskz_loadu_ps(mask, m);
    __m512 vv = _mm512_maskz_loadu_ps(mask, v);
    __m512 pv = adamw16_core(_mm512_maskz_loadu_ps(mask, master), g32, &mv, &vv, k);

    _mm512_mask_storeu_ps(master, mask, pv);
    _mm512_mask_storeu_ps(m, mask, mv);
    _mm512_mask_storeu_ps(v, mask, vv);
    narrow16(p_out, pv, r, h);
}

ZRT__AVX512 void zrt__adamw_mixed_avx512(float *master, uint16_t *p_out,
                                         const uint16_t *g, float *m, float *v, size_t n,
                                         float grad_scale, const zrt_adamw_scalars *s,
                                         zrt_half h)
{
    __m512 gs = _mm512_set1_ps(grad_scale);
    adamw_vec k;

    adamw_vec_init(&k, s);
    for (size_t i = 0, r; i < n; i += r) {
        r = chunk(n, i);
        adamw_mixed16(master + i, p_out + i, _mm512_mul_ps(widen16(g + i, r, h), gs),
                      m + i, v + i, &k, r, h);
    }
}

ZRT__AVX512 void zrt__adamw_mixed_f32grad_avx512(float *master, uint16_t *p_out,
                                                 const float *g, float *m, float *v,
                                                 size_t n, float grad_scale,
                                                 const zrt_adamw_scalars *s, zrt_half h)
{
    __m512 gs = _mm512_set1_ps(grad_scale);
    adamw_vec k;

    adamw_vec_init(&k, s);
    for (size_t i = 0, r; i < n; i += r) {
        r = chunk(n, i);
        adamw_mixed16(master + i, p_out + i,
                      _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes(r), g + i), gs), m + i,
                      v + i, &k, r, h);
    }
}

/* ---- quantization: sixteen floats at a time, the tail under a mask ---- */

ZRT__AVX512 static uint32_t absmax_bits_avx512(const float *x, size_t m)
{
    const __m512i sign_off = _mm512_set1_epi32(0x7fffffff);
    __m512i acc = _mm512_setzero_si512();

    for (size_t j = 0; j < m; j += 16) {
        __mmask16 k = lanes(chunk(m, j));
        __m512i b = _mm512_maskz_loadu_epi32(k, x + j);
        acc = _mm512_max_epu32(acc, _mm512_and_si512(b, sign_off));
    }
    return (uint32_t)_mm512_reduce_max_epu32(acc);
}

/* clamp(round-to-nearest-even(x * inv), -Q, Q) on the lanes of k (zeros
 * elsewhere). */
ZRT__AVX512 static inline __m512i quant16(const float *x, __mmask16 k, __m512 inv,
                                          __m512i qmax)
{
    __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x), inv);
    __m512i i = _mm512_cvtps_epi32(y);

    return _mm512_max_epi32(_mm512_min_epi32(i, qmax),
                            _mm512_sub_epi32(_mm512_setzero_si512(), qmax));
}

ZRT__AVX512 static void quant_i8_avx512(const float *x, size_t m, float inv, int8_t *q)
{
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i qmax = _mm512_set1_epi32(127);

    for (size_t j = 0; j < m; j += 16) {
        __mmask16 k = lanes(chunk(m, j));
        _mm512_mask_cvtepi32_storeu_epi8(q + j, k, quant16(x + j, k, vinv, qmax));
    }
}

ZRT__AVX512 static void quant_i4_avx512(const float *x, size_t m, float inv, uint8_t *q)
{
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i qmax = _mm512_set1_epi32(7);
    const __m512i low4 = _mm512_set1_epi32(0xf);

    for (size_t j = 0; j < m; j += 16) {
        size_t r = chunk(m, j);
        __mmask16 k = lanes(r);
        __m512i v = _mm512_and_si512(quant16(x + j, k, vinv, qmax), low4);
        /* each qword holds a pair: low nibble in bits 0-3, high in 32-35 */
        __m512i pairs = _mm512_or_si512(v, _mm512_srli_epi64(v, 28));
        _mm512_mask_cvtepi64_storeu_epi8(q + j / 2, (__mmask8)first_lanes((r + 1) / 2),
                                         pairs);
    }
}

/* x = q * scale, or x += q * scale, on the lanes of k of q (int32). */
ZRT__AVX512 static inline void deq16(__m512i qi, __mmask16 k, __m512 scale, float *x,
                                     int add)
{
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(qi), scale);

    if (add)
        v = _mm512_add_ps(_mm512_maskz_loadu_ps(k, x), v);
    _mm512_mask_storeu_ps(x, k, v);
}

ZRT__AVX512 static void deq_i8_avx512(const int8_t *q, size_t m, float scale, float *x,
                                      int add)
{
    const __m512 vs = _mm512_set1_ps(scale);

    for (size_t j = 0; j < m; j += 16) {
        size_t r = chunk(m, j);
        __m128i b = _mm_setzero_si128();

        if (r == 16)
            b = _mm_loadu_si128((const __m128i *)(q + j));
        else
            memcpy(&b, q + j, r);
        deq16(_mm512_cvtepi8_epi32(b), lanes(r), vs, x + j, add);
    }
}

ZRT__AVX512 static void deq_i4_avx512(const uint8_t *q, size_t m, float scale, float *x,
                                      int add)
{
    const __m512 vs = _mm512_set1_ps(scale);
    const __m512i low4 = _mm512_set1_epi64(0xf), high4 = _mm512_set1_epi64(0xf0);

    for (size_t j = 0; j < m; j += 16) {
        size_t r = chunk(m, j);
        uint64_t eight = 0;
        __m512i b, v;

        memcpy(&eight, q + j / 2, (r + 1) / 2);
        b = _mm512_cvtepu8_epi64(_mm_cvtsi64_si128((long long)eight));
        /* low nibble to the low dword, high nibble to the high dword, then
         * sign-extend each from 4 bits */
        v = _mm512_or_si512(_mm512_and_si512(b, low4),
                            _mm512_slli_epi64(_mm512_and_si512(b, high4), 28));
        deq16(_mm512_srai_epi32(_mm512_slli_epi32(v, 28), 28), lanes(r), vs, x + j, add);
    }
}

static const zrt__quant_ops quant_ops_avx512 = {
    absmax_bits_avx512, quant_i8_avx512, quant_i4_avx512, deq_i8_avx512, deq_i4_avx512};
#define QUANT_OPS (&quant_ops_avx512)

#else /* not x86-64: never called, defined so that kernels.c links */

void zrt__adamw_f32_out_avx512(const float *p, float *p_out, const float *g, float *m,
                               float *v, size_t n, const zrt_adamw_scalars *s)
{
    zrt_adamw_f32_out_scalar(p, p_out, g, m, v, n, s);
}

void zrt__adamw_f32_avx512(float *p, const float *g, float *m, float *v, size_t n,
                           const zrt_adamw_scalars *s)
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

void zrt__sum_ordered_f32_avx512(float *out, const float *const *src, int nsrc, size_t n,
                                 float divisor)
{
    zrt_sum_ordered_f32_scalar(out, src, nsrc, n, divisor);
}

void zrt__cast_f32_to_half_avx512(uint16_t *dst, const float *src, size_t n, zrt_half h)
{
    zrt_cast_f32_to_half_scalar(dst, src, n, h);
}

void zrt__cast_half_to_f32_avx512(float *dst, const uint16_t *src, size_t n, zrt_half h)
{
    zrt_cast_half_to_f32_scalar(dst, src, n, h);
}

void zrt__add_half_avx512(uint16_t *dst, const uint16_t *src, size_t n, zrt_half h)
{
    zrt_add_half_scalar(dst, src, n, h);
}

void zrt__scale_half_avx512(uint16_t *x, size_t n, float alpha, zrt_half h)
{
    zrt_scale_half_scalar(x, n, alpha, h);
}

double zrt__sqnorm_half_avx512(const uint16_t *x, size_t n, zrt_half h)
{
    return zrt_sqnorm_half_scalar(x, n, h);
}

void zrt__sum_ordered_half_avx512(uint16_t *out, const uint16_t *const *src, int nsrc,
                                  size_t n, float divisor, zrt_half h)
{
    zrt_sum_ordered_half_scalar(out, src, nsrc, n, divisor, h);
}

int zrt__all_finite_half_avx512(const uint16_t *x, size_t n, zrt_half h)
{
    return zrt_all_finite_half_scalar(x, n, h);
}

int zrt__all_finite_f32_avx512(const float *x, size_t n)
{
    return zrt_all_finite_f32_scalar(x, n);
}

void zrt__adamw_mixed_avx512(float *master, uint16_t *p_out, const uint16_t *g, float *m,
                             float *v, size_t n, float grad_scale,
                             const zrt_adamw_scalars *s, zrt_half h)
{
    zrt_adamw_mixed_scalar(master, p_out, g, m, v, n, grad_scale, s, h);
}

void zrt__adamw_mixed_f32grad_avx512(float *master, uint16_t *p_out, const float *g,
                                     float *m, float *v, size_t n, float grad_scale,
                                     const zrt_adamw_scalars *s, zrt_half h)
{
    zrt_adamw_mixed_f32grad_scalar(master, p_out, g, m, v, n, grad_scale, s, h);
}

#define QUANT_OPS (&zrt__quant_ops_scalar)

#endif

/* ---- quantization entry points (the block loop is kernels.c's) ---- */

size_t zrt__quantize_i8_avx512(const float *x, size_t n, size_t block, int8_t *q,
                               float *scale)
{
    return zrt__quantize(QUANT_OPS, x, n, block, 8, q, scale);
}

void zrt__dequantize_i8_avx512(const int8_t *q, const float *scale, size_t n,
                               size_t block, float *x)
{
    zrt__dequantize(QUANT_OPS, q, scale, n, block, 8, 0, x);
}

void zrt__dequantize_add_i8_avx512(const int8_t *q, const float *scale, size_t n,
                                   size_t block, float *x)
{
    zrt__dequantize(QUANT_OPS, q, scale, n, block, 8, 1, x);
}

size_t zrt__quantize_i4_avx512(const float *x, size_t n, size_t block, uint8_t *q,
                               float *scale)
{
    return zrt__quantize(QUANT_OPS, x, n, block, 4, q, scale);
}

void zrt__dequantize_i4_avx512(const uint8_t *q, const float *scale, size_t n,
                               size_t block, float *x)
{
    zrt__dequantize(QUANT_OPS, q, scale, n, block, 4, 0, x);
}

void zrt__dequantize_add_i4_avx512(const uint8_t *q, const float *scale, size_t n,
                                   size_t block, float *x)
{
    zrt__dequantize(QUANT_OPS, q, scale, n, block, 4, 1, x);
}
