/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels/cpu/kernels_avx512.h — private to kernels/cpu (and to the unit
 * test, which calls each path directly): the AVX-512 versions of the kernels
 * in kernels.h.
 *
 * Call a zrt__*_avx512 function only when __builtin_cpu_supports("avx512f")
 * holds. On targets other than x86-64 they are defined as the scalar
 * references.
 */
#ifndef ZRT_KERNELS_CPU_KERNELS_AVX512_H
#define ZRT_KERNELS_CPU_KERNELS_AVX512_H

#include "kernels.h"

void zrt__adamw_f32_avx512(float *p, const float *g, float *m, float *v, size_t n,
                           const zrt_adamw_scalars *s);
void zrt__adamw_f32_out_avx512(const float *p, float *p_out, const float *g, float *m,
                               float *v, size_t n, const zrt_adamw_scalars *s);
void zrt__fill_f32_avx512(float *x, size_t n, float value);
void zrt__scale_f32_avx512(float *x, size_t n, float alpha);
double zrt__sqnorm_f32_avx512(const float *x, size_t n);
void zrt__sum_ordered_f32_avx512(float *out, const float *const *src, int nsrc, size_t n,
                                 float divisor);

/* The 16-bit kernels (AVX512F has the fp16 conversions). */
void zrt__cast_f32_to_half_avx512(uint16_t *dst, const float *src, size_t n, zrt_half h);
void zrt__cast_half_to_f32_avx512(float *dst, const uint16_t *src, size_t n, zrt_half h);
void zrt__add_half_avx512(uint16_t *dst, const uint16_t *src, size_t n, zrt_half h);
void zrt__scale_half_avx512(uint16_t *x, size_t n, float alpha, zrt_half h);
double zrt__sqnorm_half_avx512(const uint16_t *x, size_t n, zrt_half h);
void zrt__sum_ordered_half_avx512(uint16_t *out, const uint16_t *const *src, int nsrc,
                                  size_t n, float divisor, zrt_half h);
int zrt__all_finite_half_avx512(const uint16_t *x, size_t n, zrt_half h);
int zrt__all_finite_f32_avx512(const float *x, size_t n);
void zrt__adamw_mixed_avx512(float *master, uint16_t *p_out, const uint16_t *g, float *m,
                             float *v, size_t n, float grad_scale,
                             const zrt_adamw_scalars *s, zrt_half h);
void zrt__adamw_mixed_f32grad_avx512(float *master, uint16_t *p_out, const float *g,
                                     float *m, float *v, size_t n, float grad_scale,
                                     const zrt_adamw_scalars *s, zrt_half h);

/* The quantization kernels. */
size_t zrt__quantize_i8_avx512(const float *x, size_t n, size_t block, int8_t *q,
                               float *scale);
void zrt__dequantize_i8_avx512(const int8_t *q, const float *scale, size_t n,
                               size_t block, float *x);
void zrt__dequantize_add_i8_avx512(const int8_t *q, const float *scale, size_t n,
                                   size_t block, float *x);
size_t zrt__quantize_i4_avx512(const float *x, size_t n, size_t block, uint8_t *q,
                               float *scale);
void zrt__dequantize_i4_avx512(const uint8_t *q, const float *scale, size_t n,
                               size_t block, float *x);
void zrt__dequantize_add_i4_avx512(const uint8_t *q, const float *scale, size_t n,
                                   size_t block, float *x);

#endif /* ZRT_KERNELS_CPU_KERNELS_AVX512_H */
