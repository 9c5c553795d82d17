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
 */
#ifndef ZRT_KERNELS_CPU_KERNELS_H
#define ZRT_KERNELS_CPU_KERNELS_H

#include <stddef.h>

/* Scalars of one AdamW update, precomputed once per step and tensor segment
 * so that every path rounds the same way. */
typedef struct zrt_adamw_scalars {
    float beta1, one_minus_beta1;
    float beta2, one_minus_beta2;
    float step_size;        /* lr / (1 - beta1^t) */
    float inv_sqrt_bc2;     /* 1 / sqrt(1 - beta2^t) */
    float eps;
    float decay_factor;     /* 1 - lr * weight_decay */
} zrt_adamw_scalars;

/* Computes the scalars for step t (t >= 1), as PyTorch's AdamW does. */
zrt_adamw_scalars zrt_adamw_scalars_make(float lr, float beta1, float beta2,
                                         float eps, float weight_decay,
                                         long step);

/* AdamW on n elements (PyTorch's order of operations):
 *   p *= decay_factor
 *   m  = beta1 * m + (1 - beta1) * g
 *   v  = beta2 * v + (1 - beta2) * g * g
 *   p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
 * p, m, v are updated in place; g is read. */
void zrt_adamw_f32(float *p, const float *g, float *m, float *v, size_t n,
                   const zrt_adamw_scalars *s);
void zrt_adamw_f32_scalar(float *p, const float *g, float *m, float *v,
                          size_t n, const zrt_adamw_scalars *s);

/* The same update with the new parameters written to p_out instead of p
 * (p is only read). p_out may be p, or g: each element's inputs are read
 * before its output is written. Same bits as the in-place update. */
void zrt_adamw_f32_out(const float *p, float *p_out, const float *g, float *m,
                       float *v, size_t n, const zrt_adamw_scalars *s);
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
void zrt_sum_ordered_f32(float *out, const float *const *src, int nsrc,
                         size_t n, float divisor);
void zrt_sum_ordered_f32_scalar(float *out, const float *const *src, int nsrc,
                                size_t n, float divisor);

/* Name of the path the dispatching entry points use on this CPU: "avx512",
 * "avx2" or "scalar". */
const char *zrt_kernels_cpu_path(void);

#endif /* ZRT_KERNELS_CPU_KERNELS_H */
