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

void zrt__adamw_f32_avx512(float *p, const float *g, float *m, float *v,
                           size_t n, const zrt_adamw_scalars *s);
void zrt__adamw_f32_out_avx512(const float *p, float *p_out, const float *g, float *m,
                               float *v, size_t n, const zrt_adamw_scalars *s);
void zrt__fill_f32_avx512(float *x, size_t n, float value);
void zrt__scale_f32_avx512(float *x, size_t n, float alpha);
double zrt__sqnorm_f32_avx512(const float *x, size_t n);
void zrt__sum_ordered_f32_avx512(float *out, const float *const *src,
                                 int nsrc, size_t n, float divisor);

#endif /* ZRT_KERNELS_CPU_KERNELS_AVX512_H */
