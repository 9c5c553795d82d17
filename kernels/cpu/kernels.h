/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels/cpu/kernels.h — elementwise and reduction kernels for host memory.
 *
 * kernels/ is a leaf: pure functions over arrays, no context, no allocation,
 * no error state. Backends bind them into their kernel table.
 *
 * Every kernel has a scalar reference (suffix _scalar) and a dispatching entry
 * point that picks the widest vector path the CPU supports at run time
 * (AVX-512 when the CPU has AVX512F, else AVX2, else scalar). The elementwise
 * kernels (AdamW, fill, scale, sum_ordered) give the same bits on every path:
 * they are compiled without FMA contraction and use only correctly rounded
 * operations, so a shard updated with AVX-512 or AVX2 equals the same shard
 * updated by the scalar loop. The squared norm is a reduction: paths agree to
 * rounding, not to the bit.
 *
 * Mixed precision (second half of this file): parameters and gradients may be
 * stored as 16-bit floats (bf16 or IEEE fp16, as uint16_t bit patterns) while
 * the master weights and Adam moments stay f32. Every 16-bit kernel widens to
 * f32 exactly, computes in f32, and rounds once to the 16-bit format, to
 * nearest with ties to even. The same-bits rule covers them too (the
 * overflow checks are exact; the 16-bit squared norm is a reduction). The
 * 16-bit kernels' AVX2 path also needs F16C; without it they run scalar.
 */
#ifndef ZRT_KERNELS_CPU_KERNELS_H
#define ZRT_KERNELS_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Scalars of one AdamW update, precomputed once per step and tensor segment
 * so that every path rounds the same way. */
typedef struct zrt_adamw_scalars {
    float beta1, one_minus_beta1;
    float beta2, one_minus_beta2;
    float step_size;    /* lr / (1 - beta1^t) */
    float inv_sqrt_bc2; /* 1 / sqrt(1 - beta2^t) */
    float eps;
    float decay_factor; /* 1 - lr * weight_decay */
} zrt_adamw_scalars;

/* Computes the scalars for step t (t >= 1), as PyTorch's AdamW does. */
zrt_adamw_scalars zrt_adamw_scalars_make(float lr, float beta1, float beta2, float eps,
                                         float weight_decay, long step);

/* AdamW on n elements (PyTorch's order of operations):
 *   p *= decay_factor
 *   m  = beta1 * m + (1 - beta1) * g
 *   v  = beta2 * v + (1 - beta2) * g * g
 *   p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
 * p, m, v are updated in place; g is read. */
void zrt_adamw_f32(float *p, const float *g, float *m, float *v, size_t n,
                   const zrt_adamw_scalars *s);
void zrt_adamw_f32_scalar(float *p, const float *g, float *m, float *v, size_t n,
                          const zrt_adamw_scalars *s);

/* The same update with the new parameters written to p_out instead of p
 * (p is only read). p_out may be p, or g: each element's inputs are read
 * before its output is written. Same bits as the in-place update. */
void zrt_adamw_f32_out(const float *p, float *p_out, const float *g, float *m, float *v,
                       size_t n, const zrt_adamw_scalars *s);
void zrt_adamw_f32_out_scalar(const float *p, float *p_out, const float *g, float *m,
                              float *v, size_t n, const zrt_adamw_scalars *s);

/* x[i] = value */
void zrt_fill_f32(float *x, size_t n, float value);
void zrt_fill_f32_scalar(float *x, size_t n, float value);

/* x[i] *= alpha */
void zrt_scale_f32(float *x, size_t n, float alpha);
void zrt_scale_f32_scalar(float *x, size_t n, float alpha);

/* sum of x[i]^2, accumulated in double */
double zrt_sqnorm_f32(const float *x, size_t n);
double zrt_sqnorm_f32_scalar(const float *x, size_t n);

/* out[i] = ((src[0][i] + src[1][i]) + src[2][i]) + ... in the order given,
 * then divided by divisor when divisor != 1. out may alias any src (each
 * element is written after all its inputs are read). nsrc >= 1. */
void zrt_sum_ordered_f32(float *out, const float *const *src, int nsrc, size_t n,
                         float divisor);
void zrt_sum_ordered_f32_scalar(float *out, const float *const *src, int nsrc, size_t n,
                                float divisor);

/* Name of the path the dispatching entry points use on this CPU: "avx512",
 * "avx2" or "scalar". */
const char *zrt_kernels_cpu_path(void);

/* ---- mixed precision: 16-bit storage, f32 arithmetic ---------------------- */

/* The two 16-bit storage formats. Any other value is a caller bug. */
typedef enum zrt_half {
    ZRT_HALF_BF16, /* bfloat16: 1 sign, 8 exponent, 7 fraction bits */
    ZRT_HALF_F16   /* IEEE binary16: 1 sign, 5 exponent, 10 fraction bits */
} zrt_half;

/* Narrowing rules (f32 -> 16 bits), identical on every path:
 *   - round to nearest, ties to even; the rounding mode in MXCSR is not used;
 *   - a value that rounds past the largest finite number becomes +-inf
 *     (bf16 max 0x7f7f = 3.3895e38, fp16 max 0x7bff = 65504; fp16 inf from
 *     65520 up);
 *   - fp16 keeps its subnormals (down to 2^-24); f32 below 2^-25 -> +-0,
 *     exactly 2^-25 -> +-0 (tie to even); the sign of zero is kept;
 *   - NaN stays NaN, quieted: sign and the top fraction bits kept, the quiet
 *     bit set (what VCVTPS2PH does).
 * Widening (16 bits -> f32) is exact. An fp16 signalling NaN widens to the
 * quieted f32 NaN (what VCVTPH2PS does); bf16 widens by a shift, bit for
 * bit. Assumes MXCSR's DAZ and FTZ clear (the default), as the f32 kernels
 * do. */

/* The helpers below are compiled for the GPU too (kernels/cuda includes this
 * header): one definition of the rounding rules for both. */
#ifdef __CUDACC__
#define ZRT_HOST_DEVICE __host__ __device__
#else
#define ZRT_HOST_DEVICE
#endif

typedef union zrt__f32_bits { /* internal to the helpers below */
    float f;
    uint32_t u;
} zrt__f32_bits;

/* One bf16 value, exactly. */
static inline ZRT_HOST_DEVICE float zrt_bf16_to_f32(uint16_t x)
{
    zrt__f32_bits b;

    b.u = (uint32_t)x << 16;
    return b.f;
}

/* One f32 value rounded to bf16 by the rules above. */
static inline ZRT_HOST_DEVICE uint16_t zrt_f32_to_bf16(float x)
{
    zrt__f32_bits b;

    b.f = x;
    if ((b.u & 0x7fffffffu) > 0x7f800000u) /* NaN */
        return (uint16_t)((b.u | 0x00400000u) >> 16);
    return (uint16_t)((b.u + 0x7fffu + ((b.u >> 16) & 1u)) >> 16);
}

/* One fp16 value, exactly. */
static inline ZRT_HOST_DEVICE float zrt_f16_to_f32(uint16_t x)
{
    uint32_t sign = (uint32_t)(x & 0x8000u) << 16;
    uint32_t exp = (x >> 10) & 0x1fu, frac = x & 0x3ffu;
    zrt__f32_bits b;

    if (exp == 0x1f) { /* inf, NaN (quieted) */
        b.u = sign | 0x7f800000u | (frac << 13) | (frac ? 0x00400000u : 0u);
    } else if (exp == 0) { /* zero, subnormal: frac * 2^-24, exact */
        b.f = (float)frac * 0x1p-24f;
        b.u |= sign;
    } else {
        b.u = sign | ((exp + 112u) << 23) | (frac << 13);
    }
    return b.f;
}

/* One f32 value rounded to fp16 by the rules above. */
static inline ZRT_HOST_DEVICE uint16_t zrt_f32_to_f16(float x)
{
    zrt__f32_bits b;
    uint32_t sign, a, e, m, sh, r, rem, half;

    b.f = x;
    sign = (b.u >> 16) & 0x8000u;
    a = b.u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* >= 65520 (inf included): +-inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) /* >= 2^-14: normal; rebias 127 -> 15 */
        return (uint16_t)(sign | ((a - 0x38000000u + 0xfffu + ((a >> 13) & 1u)) >> 13));
    if (a <= 0x33000000u) /* <= 2^-25: zero */
        return (uint16_t)sign;
    /* subnormal: round(mantissa * 2^(e - 150) / 2^-24), shift 14..24 */
    e = a >> 23;
    m = (a & 0x7fffffu) | 0x800000u;
    sh = 126u - e;
    r = m >> sh;
    rem = m & ((1u << sh) - 1u);
    half = 1u << (sh - 1u);
    r += (rem > half) | ((rem == half) & r);
    return (uint16_t)(sign | r);
}

static inline ZRT_HOST_DEVICE float zrt_half_to_f32(uint16_t x, zrt_half h)
{
    return h == ZRT_HALF_BF16 ? zrt_bf16_to_f32(x) : zrt_f16_to_f32(x);
}

static inline ZRT_HOST_DEVICE uint16_t zrt_f32_to_half(float x, zrt_half h)
{
    return h == ZRT_HALF_BF16 ? zrt_f32_to_bf16(x) : zrt_f32_to_f16(x);
}

/* dst[i] = round(src[i]) (f32 -> 16 bits). dst and src must not overlap. */
void zrt_cast_f32_to_half(uint16_t *dst, const float *src, size_t n, zrt_half h);
void zrt_cast_f32_to_half_scalar(uint16_t *dst, const float *src, size_t n, zrt_half h);

/* dst[i] = widen(src[i]), exact. dst and src must not overlap. */
void zrt_cast_half_to_f32(float *dst, const uint16_t *src, size_t n, zrt_half h);
void zrt_cast_half_to_f32_scalar(float *dst, const uint16_t *src, size_t n, zrt_half h);

/* dst[i] = round(widen(dst[i]) + widen(src[i])). dst may equal src. */
void zrt_add_half(uint16_t *dst, const uint16_t *src, size_t n, zrt_half h);
void zrt_add_half_scalar(uint16_t *dst, const uint16_t *src, size_t n, zrt_half h);

/* x[i] = round(widen(x[i]) * alpha) */
void zrt_scale_half(uint16_t *x, size_t n, float alpha, zrt_half h);
void zrt_scale_half_scalar(uint16_t *x, size_t n, float alpha, zrt_half h);

/* sum of widen(x[i])^2, accumulated in double (a reduction: paths agree to
 * rounding) */
double zrt_sqnorm_half(const uint16_t *x, size_t n, zrt_half h);
double zrt_sqnorm_half_scalar(const uint16_t *x, size_t n, zrt_half h);

/* out[i] = round(((w(src[0][i]) + w(src[1][i])) + ...) / divisor), w = widen:
 * the sources summed in f32 in the order given, divided when divisor != 1,
 * rounded once. out may alias any src. nsrc >= 1. */
void zrt_sum_ordered_half(uint16_t *out, const uint16_t *const *src, int nsrc, size_t n,
                          float divisor, zrt_half h);
void zrt_sum_ordered_half_scalar(uint16_t *out, const uint16_t *const *src, int nsrc,
                                 size_t n, float divisor, zrt_half h);

/* 1 when no x[i] is inf or NaN (n == 0 included), else 0. */
int zrt_all_finite_half(const uint16_t *x, size_t n, zrt_half h);
int zrt_all_finite_half_scalar(const uint16_t *x, size_t n, zrt_half h);
int zrt_all_finite_f32(const float *x, size_t n);
int zrt_all_finite_f32_scalar(const float *x, size_t n);

/* Mixed-precision AdamW, one pass over n elements:
 *   g32       = widen(g[i]) * grad_scale
 *   master[i] = zrt_adamw_f32's update of master[i], m[i], v[i] with g32
 *   p_out[i]  = round(master[i])
 * grad_scale folds the loss-scale unscaling and the 1/accumulation division
 * (1 / (loss_scale * accum_steps)). The f32 arithmetic is zrt_adamw_f32's,
 * operation for operation: with grad_scale == 1 master, m and v get exactly
 * the bits zrt_adamw_f32 gives for the gradients widen(g). master, m, v are
 * updated in place; p_out may equal g (each element's inputs are read before
 * its outputs are written). */
void zrt_adamw_mixed(float *master, uint16_t *p_out, const uint16_t *g, float *m,
                     float *v, size_t n, float grad_scale, const zrt_adamw_scalars *s,
                     zrt_half h);
void zrt_adamw_mixed_scalar(float *master, uint16_t *p_out, const uint16_t *g, float *m,
                            float *v, size_t n, float grad_scale,
                            const zrt_adamw_scalars *s, zrt_half h);

/* The same with f32 gradients (reduced in f32): g32 = g[i] * grad_scale. */
void zrt_adamw_mixed_f32grad(float *master, uint16_t *p_out, const float *g, float *m,
                             float *v, size_t n, float grad_scale,
                             const zrt_adamw_scalars *s, zrt_half h);
void zrt_adamw_mixed_f32grad_scalar(float *master, uint16_t *p_out, const float *g,
                                    float *m, float *v, size_t n, float grad_scale,
                                    const zrt_adamw_scalars *s, zrt_half h);

/* ---- blockwise int8 / int4 quantization (fewer bytes on the wire) ------- */

/* Blockwise symmetric quantization (ZeRO++'s qwZ / qgZ, bitsandbytes'
 * blockwise format). The n elements are cut into blocks of `block` elements
 * (the last one may be shorter); block b = i / block has one f32 scale,
 * Q = 127 (int8) or 7 (int4), a = max |x_i| over the block:
 *   scale_b = a / Q,  inv_b = Q / a     (each one correctly rounded division)
 *   q_i     = clamp(nearbyintf(x_i * inv_b), -Q, Q)   ties to even
 *   x'_i    = (float)q_i * scale_b      (dequantize: one multiply)
 *   x_i    += (float)q_i * scale_b      (dequantize_add: multiply, then add)
 * Special blocks:
 *   - a == 0 (every x_i is +-0), or a so small that inv_b = Q / a overflows
 *     to inf (a below about Q / FLT_MAX: 3.7e-37 for int8, 2.1e-38 for
 *     int4; denormal blocks included): scale 0, every q 0; they dequantize
 *     to +0;
 *   - a block holding an inf or NaN: scale NaN (the bits 0x7fc00000), every
 *     q 0; the quantize functions return the number of such blocks. A block
 *     whose scale is NaN dequantizes to NaN (0x7fc00000) in every element,
 *     dequantize_add included (whatever x held). In a finite block,
 *     dequantize_add follows x86's NaN rules: a NaN already in x stays,
 *     quieted with its payload; inf + -inf gives the default NaN 0xffc00000.
 * int4 packs two values a byte, element 2k in the low nibble and 2k+1 in the
 * high nibble, each 4-bit two's complement; an odd n leaves the last high
 * nibble 0. int4 blocks must be even, so that each block starts a byte.
 *
 * Error bound (the unit test checks it): for every finite x_i in a block,
 *   |x_i - x'_i| <= scale_b * (0.5 + (4Q + 1) * 2^-24) + Q / FLT_MAX
 * i.e. half a step plus about 2^-15 of a step (int8) or 2^-19 (int4), plus
 * an absolute term that only matters for blocks flushed to zero or with a
 * denormal scale. Derivation: u = 2^-24; d1..d4 the relative errors (|d| <=
 * u) of scale_b, inv_b, x * inv_b and q * scale_b; t = Q x / a exactly.
 * y = x * inv_b = t (1+d2)(1+d3) is within Q (2u + u^2) of t; q is within
 * 0.5 of y (the clamp never bites: |y| <= Q (1+u)^2 < Q + 0.5); then
 * x - x' = (a/Q) [(t - q) - q (d1 + d4 + d1 d4)] with scale_b = (a/Q)(1+d1),
 * so |x - x'| <= (a/Q)(0.5 + 2Q (2u + u^2)) <= scale_b (0.5 + (4Q+1) u).
 * Measured on 2^26 values (four scalings of uniform data), block 256: at
 * most scale_b (0.5 + 251 u) for int8 (bound 509 u), scale_b (0.5 + 12.5 u)
 * for int4 (bound 29 u).
 * One exception: int8 with a == FLT_MAX gives 127 * (FLT_MAX / 127) = +inf
 * (the only a for which Q * scale overflows, for either Q: checked over
 * every a in [2^127, FLT_MAX]), so the elements quantized to +-127 in such a
 * block dequantize to +-inf.
 *
 * Same bits on every path (q, scales, dequantized values), for every n and
 * block, and on the GPU (kernels/cuda). Assumes the default rounding mode and
 * MXCSR's DAZ and FTZ clear, as the other kernels do.
 *
 * block == 0, or an odd block for int4, is the caller's error (kernels/ has
 * no status): the functions then write nothing and return 0. Sizes: q holds
 * n bytes (int8) or (n + 1) / 2 (int4); scale holds ceil(n / block) floats.
 * q and scale must not overlap x; dequantize_add updates x in place. */
size_t zrt_quantize_i8(const float *x, size_t n, size_t block, int8_t *q, float *scale);
size_t zrt_quantize_i8_scalar(const float *x, size_t n, size_t block, int8_t *q,
                              float *scale);
void zrt_dequantize_i8(const int8_t *q, const float *scale, size_t n, size_t block,
                       float *x);
void zrt_dequantize_i8_scalar(const int8_t *q, const float *scale, size_t n, size_t block,
                              float *x);
/* x[i] += deq(q)[i]: the receiver's sum of a quantized reduce-scatter, in
 * rank order */
void zrt_dequantize_add_i8(const int8_t *q, const float *scale, size_t n, size_t block,
                           float *x);
void zrt_dequantize_add_i8_scalar(const int8_t *q, const float *scale, size_t n,
                                  size_t block, float *x);
size_t zrt_quantize_i4(const float *x, size_t n, size_t block, uint8_t *q, float *scale);
size_t zrt_quantize_i4_scalar(const float *x, size_t n, size_t block, uint8_t *q,
                              float *scale);
void zrt_dequantize_i4(const uint8_t *q, const float *scale, size_t n, size_t block,
                       float *x);
void zrt_dequantize_i4_scalar(const uint8_t *q, const float *scale, size_t n,
                              size_t block, float *x);
void zrt_dequantize_add_i4(const uint8_t *q, const float *scale, size_t n, size_t block,
                           float *x);
void zrt_dequantize_add_i4_scalar(const uint8_t *q, const float *scale, size_t n,
                                  size_t block, float *x);

/* Bytes of the quantized form of n elements: the q bytes (n for bits 8,
 * (n + 1) / 2 for bits 4) plus 4 per block. 0 for block 0 or other bits. */
size_t zrt_quantized_bytes(size_t n, size_t block, int bits);

/* ---- top-k sparsification (fewer bytes on the wire) ---------------------- */

/* Top-k selection, exact and deterministic: writes to idx and val, in
 * increasing index order, the min(k, n) elements of a with the largest |a|,
 * compared as the bit patterns of |a| (the sign bit cleared) read as
 * uint32: for finite values and infinities integer order is value order,
 * and every NaN pattern compares above +inf, so a NaN is always taken.
 * Among equal patterns the lower index wins. A radix select: a histogram of
 * the patterns' top 16 bits, then of the low 16 bits within the bucket
 * holding the k-th largest, then one pass in index order that takes every
 * element above that threshold T and the first (k - count above T) equal to
 * it. Scratch: one histogram of 65,536 uint32 counts on the stack (256
 * KiB, used for both passes), never n-sized. n must be below 2^32
 * (indices are uint32). Returns the number taken, min(k, n); idx and val
 * hold that many. Scalar only: the same on every machine. */
size_t zrt_topk_select_f32(const float *a, size_t n, size_t k, uint32_t *idx, float *val);

/* out[idx[i]] += val[i] for i = 0 .. k-1, in that order (an index may
 * repeat; each add is one f32 add). */
void zrt_scatter_add_f32(float *out, const uint32_t *idx, const float *val, size_t k);

#endif /* ZRT_KERNELS_CPU_KERNELS_H */
