/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels/cpu/kernels.c — the scalar reference kernels, the AdamW scalars,
 * the quantization block loop every path shares (each path supplies its
 * per-block functions: zrt__quant_ops), and the run-time choice between the
 * AVX-512, AVX2 and scalar paths.
 *
 * The scalar loops define each kernel's result. The AVX-512 and AVX2 paths
 * perform the same correctly rounded operations in the same order per
 * element, so the elementwise kernels give identical bits on every path.
 * That needs FMA contraction off: a fused multiply-add rounds once where the
 * vector path rounds twice. Build with -ffp-contract=off; the pragma below
 * keeps the promise even when a build forgets (gnu11 with -march=native
 * contracts).
 *
 * The widest path the CPU supports wins: AVX512F, else AVX2, else scalar.
 * The CPU is asked on every call (__builtin_cpu_supports reads a table that
 * libgcc fills at load time, OS support for the vector state included), so
 * there is no state here to initialise and nothing to override: the unit test
 * calls each path's zrt__*_avx2 / zrt__*_avx512 function directly. The
 * 16-bit kernels' AVX2 path converts fp16 with F16C, so it also needs f16c
 * (every AVX2 CPU made has it); AVX512F has the conversions itself.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "kernels.h"
#include "kernels_avx2.h"
#include "kernels_avx512.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__) && defined(__clang__)
#include <cpuid.h>
#endif

static int use_avx512(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

static int use_avx2(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

/* GCC's __builtin_cpu_supports knows "f16c"; clang's (14) does not, so
 * clang builds ask CPUID leaf 1 once and keep the answer (a constant of the
 * machine; a race only computes it twice). AVX2 being usable already means
 * the OS saves the YMM state F16C works in. */
static int use_avx2_f16c(void)
{
#if defined(__x86_64__) && defined(__clang__)
    static int f16c = -1;
    int has = __atomic_load_n(&f16c, __ATOMIC_RELAXED);

    if (has < 0) {
        unsigned a, b, c, d;

        has = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
        __atomic_store_n(&f16c, has, __ATOMIC_RELAXED);
    }
    return __builtin_cpu_supports("avx2") && has;
#elif defined(__x86_64__)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

const char *zrt_kernels_cpu_path(void)
{
    if (use_avx512())
        return "avx512";
    return use_avx2() ? "avx2" : "scalar";
}

zrt_adamw_scalars zrt_adamw_scalars_make(float lr, float beta1, float beta2, float eps,
                                         float weight_decay, long step)
{
    double bc1 = 1.0 - pow((double)beta1, (double)step);
    double bc2 = 1.0 - pow((double)beta2, (double)step);
    zrt_adamw_scalars s;

    s.beta1 = beta1;
    s.one_minus_beta1 = (float)(1.0 - (double)beta1);
    s.beta2 = beta2;
    s.one_minus_beta2 = (float)(1.0 - (double)beta2);
    s.step_size = (float)((double)lr / bc1);
    s.inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    s.eps = eps;
    s.decay_factor = (float)(1.0 - (double)lr * (double)weight_decay);
    return s;
}

/* One element of AdamW: updates *m and *v, returns the new parameter. The
 * parenthesisation here is the contract: kernels_avx2.c and kernels_avx512.c
 * repeat it, and every AdamW kernel (f32 and mixed) goes through it. */
static inline float adamw_elem(const zrt_adamw_scalars *s, float p, float g, float *m,
                               float *v)
{
    float pi = p * s->decay_factor;
    float mi = s->beta1 * *m + s->one_minus_beta1 * g;
    float vi = s->beta2 * *v + (s->one_minus_beta2 * g) * g;
    float denom = sqrtf(vi) * s->inv_sqrt_bc2 + s->eps;

    *m = mi;
    *v = vi;
    return pi - (s->step_size * mi) / denom;
}

void zrt_adamw_f32_out_scalar(const float *p, float *p_out, const float *g, float *m,
                              float *v, size_t n, const zrt_adamw_scalars *s)
{
    for (size_t i = 0; i < n; i++) {
        float gi = g[i], pi = p[i];

        p_out[i] = adamw_elem(s, pi, gi, &m[i], &v[i]); /* after reading i */
    }
}

void zrt_adamw_f32_scalar(float *p, const float *g, float *m, float *v, size_t n,
                          const zrt_adamw_scalars *s)
{
    zrt_adamw_f32_out_scalar(p, p, g, m, v, n, s);
}

void zrt_fill_f32_scalar(float *x, size_t n, float value)
{
    for (size_t i = 0; i < n; i++)
        x[i] = value;
}

void zrt_scale_f32_scalar(float *x, size_t n, float alpha)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= alpha;
}

double zrt_sqnorm_f32_scalar(const float *x, size_t n)
{
    double acc = 0.0;

    for (size_t i = 0; i < n; i++)
        acc += (double)x[i] * (double)x[i];
    return acc;
}

void zrt__sum_ordered_f32_range(float *out, const float *const *src, int nsrc,
                                size_t begin, size_t end, float divisor)
{
    for (size_t i = begin; i < end; i++) {
        float acc = src[0][i];

        for (int k = 1; k < nsrc; k++)
            acc += src[k][i];
        if (divisor != 1.0f)
            acc /= divisor;
        out[i] = acc;
    }
}

void zrt_sum_ordered_f32_scalar(float *out, const float *const *src, int nsrc, size_t n,
                                float divisor)
{
    zrt__sum_ordered_f32_range(out, src, nsrc, 0, n, divisor);
}

/* ---- 16-bit scalar references ---- */

void zrt_cast_f32_to_half_scalar(uint16_t *dst, const float *src, size_t n, zrt_half h)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = zrt_f32_to_half(src[i], h);
}

void zrt_cast_half_to_f32_scalar(float *dst, const uint16_t *src, size_t n, zrt_half h)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = zrt_half_to_f32(src[i], h);
}

void zrt_add_half_scalar(uint16_t *dst, const uint16_t *src, size_t n, zrt_half h)
{
    for (size_t i = 0; i < n; i++)
        dst[i] =
            zrt_f32_to_half(zrt_half_to_f32(dst[i], h) + zrt_half_to_f32(src[i], h), h);
}

void zrt_scale_half_scalar(uint16_t *x, size_t n, float alpha, zrt_half h)
{
    for (size_t i = 0; i < n; i++)
        x[i] = zrt_f32_to_half(zrt_half_to_f32(x[i], h) * alpha, h);
}

double zrt_sqnorm_half_scalar(const uint16_t *x, size_t n, zrt_half h)
{
    double acc = 0.0;

    for (size_t i = 0; i < n; i++) {
        double xi = zrt_half_to_f32(x[i], h);

        acc += xi * xi;
    }
    return acc;
}

void zrt__sum_ordered_half_range(uint16_t *out, const uint16_t *const *src, int nsrc,
                                 size_t begin, size_t end, float divisor, zrt_half h)
{
    for (size_t i = begin; i < end; i++) {
        float acc = zrt_half_to_f32(src[0][i], h);

        for (int k = 1; k < nsrc; k++)
            acc += zrt_half_to_f32(src[k][i], h);
        if (divisor != 1.0f)
            acc /= divisor;
        out[i] = zrt_f32_to_half(acc, h);
    }
}

void zrt_sum_ordered_half_scalar(uint16_t *out, const uint16_t *const *src, int nsrc,
                                 size_t n, float divisor, zrt_half h)
{
    zrt__sum_ordered_half_range(out, src, nsrc, 0, n, divisor, h);
}

/* inf and NaN are the patterns with every exponent bit set */
int zrt_all_finite_half_scalar(const uint16_t *x, size_t n, zrt_half h)
{
    uint16_t e = h == ZRT_HALF_BF16 ? 0x7f80u : 0x7c00u;

    for (size_t i = 0; i < n; i++)
        if ((x[i] & e) == e)
            return 0;
    return 1;
}

int zrt_all_finite_f32_scalar(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        zrt__f32_bits b;

        b.f = x[i];
        if ((b.u & 0x7f800000u) == 0x7f800000u)
            return 0;
    }
    return 1;
}

void zrt_adamw_mixed_scalar(float *master, uint16_t *p_out, const uint16_t *g, float *m,
                            float *v, size_t n, float grad_scale,
                            const zrt_adamw_scalars *s, zrt_half h)
{
    for (size_t i = 0; i < n; i++) {
        float gi = zrt_half_to_f32(g[i], h) * grad_scale;
        float pi = adamw_elem(s, master[i], gi, &m[i], &v[i]);

        master[i] = pi;
        p_out[i] = zrt_f32_to_half(pi, h); /* after reading g[i] */
    }
}

void zrt_adamw_mixed_f32grad_scalar(float *master, uint16_t *p_out, const float *g,
                                    float *m, float *v, size_t n, float grad_scale,
                                    const zrt_adamw_scalars *s, zrt_half h)
{
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * grad_scale;
        float pi = adamw_elem(s, master[i], gi, &m[i], &v[i]);

        master[i] = pi;
        p_out[i] = zrt_f32_to_half(pi, h);
    }
}

/* ---- quantization: the shared block loop and the scalar blocks ---- */

#define QUANT_NAN_BITS 0x7fc00000u /* the NaN of a non-finite block's scale */

static float quant_nan(void)
{
    zrt__f32_bits b;

    b.u = QUANT_NAN_BITS;
    return b.f;
}

/* A block's scale and reciprocal from the bits of its largest |x|: 1 for a
 * block to quantize, 0 for a block stored as zeros (absmax 0, or Q / absmax
 * overflows), -1 for a block holding inf or NaN. */
static int quant_block_scale(uint32_t absmax_bits, float qmax, float *scale, float *inv)
{
    zrt__f32_bits a;

    if (absmax_bits >= 0x7f800000u) {
        *scale = quant_nan();
        return -1;
    }
    *scale = 0.0f;
    if (absmax_bits == 0)
        return 0;
    a.u = absmax_bits;
    *inv = qmax / a.f;
    if (*inv > 3.40282347e38f) /* +inf: a < Q / FLT_MAX */
        return 0;
    *scale = a.f / qmax;
    return 1;
}

size_t zrt__quantize(const zrt__quant_ops *ops, const float *x, size_t n, size_t block,
                     int bits, void *q, float *scale)
{
    float qmax = bits == 8 ? 127.0f : 7.0f;
    size_t bad = 0;

    if (block == 0 || (bits == 4 && block % 2 != 0))
        return 0;
    for (size_t i = 0; i < n; i += block, scale++) {
        size_t m = n - i < block ? n - i : block;
        float inv = 0.0f;
        int kind = quant_block_scale(ops->absmax_bits(x + i, m), qmax, scale, &inv);
        int8_t *q8 = (int8_t *)q + i;
        uint8_t *q4 = (uint8_t *)q + i / 2;

        bad += kind < 0;
        if (bits == 8 && kind > 0)
            ops->quant_i8(x + i, m, inv, q8);
        else if (bits == 8)
            memset(q8, 0, m);
        else if (kind > 0)
            ops->quant_i4(x + i, m, inv, q4);
        else
            memset(q4, 0, (m + 1) / 2);
    }
    return bad;
}

void zrt__dequantize(const zrt__quant_ops *ops, const void *q, const float *scale,
                     size_t n, size_t block, int bits, int add, float *x)
{
    if (block == 0 || (bits == 4 && block % 2 != 0))
        return;
    for (size_t i = 0; i < n; i += block, scale++) {
        size_t m = n - i < block ? n - i : block;

        if (*scale != *scale) /* a non-finite block: NaN, whatever x held */
            for (size_t j = 0; j < m; j++)
                x[i + j] = quant_nan();
        else if (bits == 8)
            ops->deq_i8((const int8_t *)q + i, m, *scale, x + i, add);
        else
            ops->deq_i4((const uint8_t *)q + i / 2, m, *scale, x + i, add);
    }
}

static uint32_t absmax_bits_scalar(const float *x, size_t m)
{
    uint32_t amax = 0;

    for (size_t j = 0; j < m; j++) {
        zrt__f32_bits b;

        b.f = x[j];
        b.u &= 0x7fffffffu;
        amax = b.u > amax ? b.u : amax;
    }
    return amax;
}

/* One value: clamp(nearbyintf(x * inv), -Q, Q), as the vector paths'
 * multiply, round-to-nearest-even conversion and integer clamp. */
static int32_t quant_one(float x, float inv, float qmax)
{
    float y = nearbyintf(x * inv);

    y = y > qmax ? qmax : y;
    y = y < -qmax ? -qmax : y;
    return (int32_t)y;
}

static void quant_i8_scalar(const float *x, size_t m, float inv, int8_t *q)
{
    for (size_t j = 0; j < m; j++)
        q[j] = (int8_t)quant_one(x[j], inv, 127.0f);
}

static void quant_i4_scalar(const float *x, size_t m, float inv, uint8_t *q)
{
    for (size_t j = 0; j < m; j += 2) {
        uint32_t lo = (uint32_t)quant_one(x[j], inv, 7.0f) & 0xfu;
        uint32_t hi = j + 1 < m ? (uint32_t)quant_one(x[j + 1], inv, 7.0f) & 0xfu : 0u;

        q[j / 2] = (uint8_t)(lo | hi << 4);
    }
}

static void deq_i8_scalar(const int8_t *q, size_t m, float scale, float *x, int add)
{
    for (size_t j = 0; j < m; j++) {
        float v = (float)q[j] * scale;

        x[j] = add ? x[j] + v : v;
    }
}

/* The signed value of nibble k (0 low, 1 high) of byte b. */
static int32_t nibble(uint8_t b, int k)
{
    int32_t v = (b >> (4 * k)) & 0xf;

    return v >= 8 ? v - 16 : v;
}

static void deq_i4_scalar(const uint8_t *q, size_t m, float scale, float *x, int add)
{
    for (size_t j = 0; j < m; j++) {
        float v = (float)nibble(q[j / 2], (int)(j & 1)) * scale;

        x[j] = add ? x[j] + v : v;
    }
}

const zrt__quant_ops zrt__quant_ops_scalar = {
    absmax_bits_scalar, quant_i8_scalar, quant_i4_scalar, deq_i8_scalar, deq_i4_scalar};

size_t zrt_quantize_i8_scalar(const float *x, size_t n, size_t block, int8_t *q,
                              float *scale)
{
    return zrt__quantize(&zrt__quant_ops_scalar, x, n, block, 8, q, scale);
}

void zrt_dequantize_i8_scalar(const int8_t *q, const float *scale, size_t n, size_t block,
                              float *x)
{
    zrt__dequantize(&zrt__quant_ops_scalar, q, scale, n, block, 8, 0, x);
}

void zrt_dequantize_add_i8_scalar(const int8_t *q, const float *scale, size_t n,
                                  size_t block, float *x)
{
    zrt__dequantize(&zrt__quant_ops_scalar, q, scale, n, block, 8, 1, x);
}

size_t zrt_quantize_i4_scalar(const float *x, size_t n, size_t block, uint8_t *q,
                              float *scale)
{
    return zrt__quantize(&zrt__quant_ops_scalar, x, n, block, 4, q, scale);
}

void zrt_dequantize_i4_scalar(const uint8_t *q, const float *scale, size_t n,
                              size_t block, float *x)
{
    zrt__dequantize(&zrt__quant_ops_scalar, q, scale, n, block, 4, 0, x);
}

void zrt_dequantize_add_i4_scalar(const uint8_t *q, const float *scale, size_t n,
                                  size_t block, float *x)
{
    zrt__dequantize(&zrt__quant_ops_scalar, q, scale, n, block, 4, 1, x);
}

size_t zrt_quantized_bytes(size_t n, size_t block, int bits)
{
    size_t nblocks = block ? n / block + (n % block != 0) : 0;

    if (block == 0 || (bits != 8 && bits != 4))
        return 0;
    return (bits == 8 ? n : n / 2 + n % 2) + nblocks * sizeof(float);
}

/* ---- top-k selection ---- */

enum { TOPK_BUCKETS = 1 << 16 };

static uint32_t abs_key(float x)
{
    uint32_t u;

    memcpy(&u, &x, sizeof u);
    return u & 0x7fffffffu;
}

/* The bucket, from the top, where the count of elements reaches `need`;
 * *above gets the count in the buckets over it. */
static uint32_t topk_bucket(const uint32_t *hist, size_t need, size_t *above)
{
    size_t cum = 0;
    uint32_t b = TOPK_BUCKETS - 1;

    for (; b > 0 && cum + hist[b] < need; b--)
        cum += hist[b];
    *above = cum;
    return b;
}

size_t zrt_topk_select_f32(const float *a, size_t n, size_t k, uint32_t *idx, float *val)
{
    uint32_t hist[TOPK_BUCKETS];
    size_t above_hi, above_lo, taken = 0, equal_left;

    if (k > n)
        k = n;
    if (k == 0)
        return 0;
    memset(hist, 0, sizeof hist);
    for (size_t i = 0; i < n; i++)
        hist[abs_key(a[i]) >> 16]++;
    uint32_t hi = topk_bucket(hist, k, &above_hi);
    memset(hist, 0, sizeof hist);
    for (size_t i = 0; i < n; i++) {
        uint32_t key = abs_key(a[i]);

        if (key >> 16 == hi)
            hist[key & 0xffffu]++;
    }
    uint32_t lo = topk_bucket(hist, k - above_hi, &above_lo);
    uint32_t threshold = hi << 16 | lo;
    equal_left = k - above_hi - above_lo;
    for (size_t i = 0; i < n && taken < k; i++) {
        uint32_t key = abs_key(a[i]);

        if (key > threshold || (key == threshold && equal_left > 0)) {
            equal_left -= key == threshold;
            idx[taken] = (uint32_t)i;
            val[taken++] = a[i];
        }
    }
    return taken;
}

void zrt_scatter_add_f32(float *out, const uint32_t *idx, const float *val, size_t k)
{
    for (size_t i = 0; i < k; i++)
        out[idx[i]] += val[i];
}

/* ---- dispatch ---- */

void zrt_adamw_f32_out(const float *p, float *p_out, const float *g, float *m, float *v,
                       size_t n, const zrt_adamw_scalars *s)
{
    if (use_avx512())
        zrt__adamw_f32_out_avx512(p, p_out, g, m, v, n, s);
    else if (use_avx2())
        zrt__adamw_f32_out_avx2(p, p_out, g, m, v, n, s);
    else
        zrt_adamw_f32_out_scalar(p, p_out, g, m, v, n, s);
}

void zrt_adamw_f32(float *p, const float *g, float *m, float *v, size_t n,
                   const zrt_adamw_scalars *s)
{
    zrt_adamw_f32_out(p, p, g, m, v, n, s);
}

void zrt_fill_f32(float *x, size_t n, float value)
{
    if (use_avx512())
        zrt__fill_f32_avx512(x, n, value);
    else if (use_avx2())
        zrt__fill_f32_avx2(x, n, value);
    else
        zrt_fill_f32_scalar(x, n, value);
}

void zrt_scale_f32(float *x, size_t n, float alpha)
{
    if (use_avx512())
        zrt__scale_f32_avx512(x, n, alpha);
    else if (use_avx2())
        zrt__scale_f32_avx2(x, n, alpha);
    else
        zrt_scale_f32_scalar(x, n, alpha);
}

double zrt_sqnorm_f32(const float *x, size_t n)
{
    if (use_avx512())
        return zrt__sqnorm_f32_avx512(x, n);
    return use_avx2() ? zrt__sqnorm_f32_avx2(x, n) : zrt_sqnorm_f32_scalar(x, n);
}

void zrt_sum_ordered_f32(float *out, const float *const *src, int nsrc, size_t n,
                         float divisor)
{
    if (use_avx512())
        zrt__sum_ordered_f32_avx512(out, src, nsrc, n, divisor);
    else if (use_avx2())
        zrt__sum_ordered_f32_avx2(out, src, nsrc, n, divisor);
    else
        zrt_sum_ordered_f32_scalar(out, src, nsrc, n, divisor);
}

void zrt_cast_f32_to_half(uint16_t *dst, const float *src, size_t n, zrt_half h)
{
    if (use_avx512())
        zrt__cast_f32_to_half_avx512(dst, src, n, h);
    else if (use_avx2_f16c())
        zrt__cast_f32_to_half_avx2(dst, src, n, h);
    else
        zrt_cast_f32_to_half_scalar(dst, src, n, h);
}

void zrt_cast_half_to_f32(float *dst, const uint16_t *src, size_t n, zrt_half h)
{
    if (use_avx512())
        zrt__cast_half_to_f32_avx512(dst, src, n, h);
    else if (use_avx2_f16c())
        zrt__cast_half_to_f32_avx2(dst, src, n, h);
    else
        zrt_cast_half_to_f32_scalar(dst, src, n, h);
}

void zrt_add_half(uint16_t *dst, const uint16_t *src, size_t n, zrt_half h)
{
    if (use_avx512())
        zrt__add_half_avx512(dst, src, n, h);
    else if (use_avx2_f16c())
        zrt__add_half_avx2(dst, src, n, h);
    else
        zrt_add_half_scalar(dst, src, n, h);
}

void zrt_scale_half(uint16_t *x, size_t n, float alpha, zrt_half h)
{
    if (use_avx512())
        zrt__scale_half_avx512(x, n, alpha, h);
    else if (use_avx2_f16c())
        zrt__scale_half_avx2(x, n, alpha, h);
    else
        zrt_scale_half_scalar(x, n, alpha, h);
}

double zrt_sqnorm_half(const uint16_t *x, size_t n, zrt_half h)
{
    if (use_avx512())
        return zrt__sqnorm_half_avx512(x, n, h);
    return use_avx2_f16c() ? zrt__sqnorm_half_avx2(x, n, h)
                           : zrt_sqnorm_half_scalar(x, n, h);
}

void zrt_sum_ordered_half(uint16_t *out, const uint16_t *const *src, int nsrc, size_t n,
                          float divisor, zrt_half h)
{
    if (use_avx512())
        zrt__sum_ordered_half_avx512(out, src, nsrc, n, divisor, h);
    else if (use_avx2_f16c())
        zrt__sum_ordered_half_avx2(out, src, nsrc, n, divisor, h);
    else
        zrt_sum_ordered_half_scalar(out, src, nsrc, n, divisor, h);
}

int zrt_all_finite_half(const uint16_t *x, size_t n, zrt_half h)
{
    if (use_avx512())
        return zrt__all_finite_half_avx512(x, n, h);
    return use_avx2() ? zrt__all_finite_half_avx2(x, n, h)
                      : zrt_all_finite_half_scalar(x, n, h);
}

int zrt_all_finite_f32(const float *x, size_t n)
{
    if (use_avx512())
        return zrt__all_finite_f32_avx512(x, n);
    return use_avx2() ? zrt__all_finite_f32_avx2(x, n) : zrt_all_finite_f32_scalar(x, n);
}

void zrt_adamw_mixed(float *master, uint16_t *p_out, const uint16_t *g, float *m,
                     float *v, size_t n, float grad_scale, const zrt_adamw_scalars *s,
                     zrt_half h)
{
    if (use_avx512())
        zrt__adamw_mixed_avx512(master, p_out, g, m, v, n, grad_scale, s, h);
    else if (use_avx2_f16c())
        zrt__adamw_mixed_avx2(master, p_out, g, m, v, n, grad_scale, s, h);
    else
        zrt_adamw_mixed_scalar(master, p_out, g, m, v, n, grad_scale, s, h);
}

void zrt_adamw_mixed_f32grad(float *master, uint16_t *p_out, const float *g, float *m,
                             float *v, size_t n, float grad_scale,
                             const zrt_adamw_scalars *s, zrt_half h)
{
    if (use_avx512())
        zrt__adamw_mixed_f32grad_avx512(master, p_out, g, m, v, n, grad_scale, s, h);
    else if (use_avx2_f16c())
        zrt__adamw_mixed_f32grad_avx2(master, p_out, g, m, v, n, grad_scale, s, h);
    else
        zrt_adamw_mixed_f32grad_scalar(master, p_out, g, m, v, n, grad_scale, s, h);
}

size_t zrt_quantize_i8(const float *x, size_t n, size_t block, int8_t *q, float *scale)
{
    if (use_avx512())
        return zrt__quantize_i8_avx512(x, n, block, q, scale);
    return use_avx2() ? zrt__quantize_i8_avx2(x, n, block, q, scale)
                      : zrt_quantize_i8_scalar(x, n, block, q, scale);
}

void zrt_dequantize_i8(const int8_t *q, const float *scale, size_t n, size_t block,
                       float *x)
{
    if (use_avx512())
        zrt__dequantize_i8_avx512(q, scale, n, block, x);
    else if (use_avx2())
        zrt__dequantize_i8_avx2(q, scale, n, block, x);
    else
        zrt_dequantize_i8_scalar(q, scale, n, block, x);
}

void zrt_dequantize_add_i8(const int8_t *q, const float *scale, size_t n, size_t block,
                           float *x)
{
    if (use_avx512())
        zrt__dequantize_add_i8_avx512(q, scale, n, block, x);
    else if (use_avx2())
        zrt__dequantize_add_i8_avx2(q, scale, n, block, x);
    else
        zrt_dequantize_add_i8_scalar(q, scale, n, block, x);
}

size_t zrt_quantize_i4(const float *x, size_t n, size_t block, uint8_t *q, float *scale)
{
    if (use_avx512())
        return zrt__quantize_i4_avx512(x, n, block, q, scale);
    return use_avx2() ? zrt__quantize_i4_avx2(x, n, block, q, scale)
                      : zrt_quantize_i4_scalar(x, n, block, q, scale);
}

void zrt_dequantize_i4(const uint8_t *q, const float *scale, size_t n, size_t block,
                       float *x)
{
    if (use_avx512())
        zrt__dequantize_i4_avx512(q, scale, n, block, x);
    else if (use_avx2())
        zrt__dequantize_i4_avx2(q, scale, n, block, x);
    else
        zrt_dequantize_i4_scalar(q, scale, n, block, x);
}

void zrt_dequantize_add_i4(const uint8_t *q, const float *scale, size_t n, size_t block,
                           float *x)
{
    if (use_avx512())
        zrt__dequantize_add_i4_avx512(q, scale, n, block, x);
    else if (use_avx2())
        zrt__dequantize_add_i4_avx2(q, scale, n, block, x);
    else
        zrt_dequantize_add_i4_scalar(q, scale, n, block, x);
}
