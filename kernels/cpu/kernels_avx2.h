/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels/cpu/kernels_avx2.h — private to kernels/cpu: the AVX2 versions of
 * the kernels in kernels.h, and the scalar range helper they share with the
 * reference so that their tails round exactly as the scalar loop does.
 *
 * Call a zrt__*_avx2 function only when __builtin_cpu_supports("avx2") holds.
 * On targets other than x86-64 they are defined as the scalar references.
 */
#ifndef ZRT_KERNELS_CPU_KERNELS_AVX2_H
#define ZRT_KERNELS_CPU_KERNELS_AVX2_H

#include "kernels.h"

void zrt__adamw_f32_avx2(float *p, const float *g, float *m, float *v, size_t n,
                         const zrt_adamw_scalars *s);
void zrt__adamw_f32_out_avx2(const float *p, float *p_out, const float *g, float *m,
                             float *v, size_t n, const zrt_adamw_scalars *s);
void zrt__fill_f32_avx2(float *x, size_t n, float value);
void zrt__scale_f32_avx2(float *x, size_t n, float alpha);
double zrt__sqnorm_f32_avx2(const float *x, size_t n);
void zrt__sum_ordered_f32_avx2(float *out, const float *const *src, int nsrc, size_t n,
                               float divisor);

/* The 16-bit kernels. All but all_finite_half also need F16C: call them
 * only when __builtin_cpu_supports("f16c") holds as well. */
void zrt__cast_f32_to_half_avx2(uint16_t *dst, const float *src, size_t n, zrt_half h);
void zrt__cast_half_to_f32_avx2(float *dst, const uint16_t *src, size_t n, zrt_half h);
void zrt__add_half_avx2(uint16_t *dst, const uint16_t *src, size_t n, zrt_half h);
void zrt__scale_half_avx2(uint16_t *x, size_t n, float alpha, zrt_half h);
double zrt__sqnorm_half_avx2(const uint16_t *x, size_t n, zrt_half h);
void zrt__sum_ordered_half_avx2(uint16_t *out, const uint16_t *const *src, int nsrc,
                                size_t n, float divisor, zrt_half h);
int zrt__all_finite_half_avx2(const uint16_t *x, size_t n, zrt_half h);
int zrt__all_finite_f32_avx2(const float *x, size_t n);
void zrt__adamw_mixed_avx2(float *master, uint16_t *p_out, const uint16_t *g, float *m,
                           float *v, size_t n, float grad_scale,
                           const zrt_adamw_scalars *s, zrt_half h);
void zrt__adamw_mixed_f32grad_avx2(float *master, uint16_t *p_out, const float *g,
                                   float *m, float *v, size_t n, float grad_scale,
                                   const zrt_adamw_scalars *s, zrt_half h);

/* The scalar sum_ordered on elements [begin, end). */
void zrt__sum_ordered_f32_range(float *out, const float *const *src, int nsrc,
                                size_t begin, size_t end, float divisor);
void zrt__sum_ordered_half_range(uint16_t *out, const uint16_t *const *src, int nsrc,
                                 size_t begin, size_t end, float divisor, zrt_half h);

/* ---- quantization: one block at a time ---------------------------------- */

/* What a path supplies to the shared block loop of kernels.c: the bits of a
 * block's largest |x| (max of the bits with the sign cleared: an inf or NaN
 * compares above every finite value), the quantization of a block that has a
 * finite nonzero scale (m elements; int4: m may be odd only for the last
 * block, its high nibble 0), and the dequantization of a block with a scale
 * that is not NaN (add: x += q * scale instead of x = q * scale). */
typedef struct zrt__quant_ops {
    uint32_t (*absmax_bits)(const float *x, size_t m);
    void (*quant_i8)(const float *x, size_t m, float inv, int8_t *q);
    void (*quant_i4)(const float *x, size_t m, float inv, uint8_t *q);
    void (*deq_i8)(const int8_t *q, size_t m, float scale, float *x, int add);
    void (*deq_i4)(const uint8_t *q, size_t m, float scale, float *x, int add);
} zrt__quant_ops;

/* The block loops of kernels.h's quantize and dequantize functions (bits 8
 * or 4), with the special blocks (zero, tiny, non-finite) handled here. */
size_t zrt__quantize(const zrt__quant_ops *ops, const float *x, size_t n, size_t block,
                     int bits, void *q, float *scale);
void zrt__dequantize(const zrt__quant_ops *ops, const void *q, const float *scale,
                     size_t n, size_t block, int bits, int add, float *x);

/* The scalar block functions, for the AVX2 tails. */
extern const zrt__quant_ops zrt__quant_ops_scalar;

/* The AVX2 versions of the quantization kernels (AVX2 only, no F16C). */
size_t zrt__quantize_i8_avx2(const float *x, size_t n, size_t block, int8_t *q,
                             float *scale);
void zrt__dequantize_i8_avx2(const int8_t *q, const float *scale, size_t n, size_t block,
                             float *x);
void zrt__dequantize_add_i8_avx2(const int8_t *q, const float *scale, size_t n,
                                 size_t block, float *x);
size_t zrt__quantize_i4_avx2(const float *x, size_t n, size_t block, uint8_t *q,
                             float *scale);
void zrt__dequantize_i4_avx2(const uint8_t *q, const float *scale, size_t n, size_t block,
                             float *x);
void zrt__dequantize_add_i4_avx2(const uint8_t *q, const float *scale, size_t n,
                                 size_t block, float *x);

#endif /* ZRT_KERNELS_CPU_KERNELS_AVX2_H */
