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

#endif /* ZRT_KERNELS_CPU_KERNELS_AVX2_H */
