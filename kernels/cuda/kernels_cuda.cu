/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels/cuda/kernels_cuda.cu — kernels/cpu's kernels on device memory.
 *
 * Each elementwise kernel repeats the scalar reference in kernels/cpu/kernels.c
 * per element: the same correctly rounded f32 operations in the same order
 * (written as __f*_rn intrinsics, which nvcc never contracts into an FMA),
 * and the 16-bit conversions as the same integer code as the helpers in
 * kernels/cpu/kernels.h. So the results are the CPU's bits (NaN payloads of
 * arithmetic aside, see kernels_cuda.h). The build adds -fmad=false
 * -ftz=false -prec-div=true -prec-sqrt=true so that nothing else in this
 * file can round differently either (f32 subnormals are kept, as on x86).
 *
 * Launch shape: 256 threads a block, a grid-stride loop, at most
 * ELEM_MAX_BLOCKS blocks. The squared norms use a fixed grid of
 * ZRT_CUDA_SQNORM_BLOCKS blocks and a fixed tree, so their order of
 * summation depends on n only.
 */
#include "kernels/cuda/kernels_cuda.h"

#include <cuda_runtime.h>

#define THREADS         256
#define ELEM_MAX_BLOCKS 8192

/* ---- device helpers ------------------------------------------------------------ */

/* The 16-bit conversions are kernels.h's own (ZRT_HOST_DEVICE): one copy of
 * the rounding rules for the CPU and the GPU. */
__device__ __forceinline__ float widen(uint16_t x, zrt_half h)
{
    return zrt_half_to_f32(x, h);
}

__device__ __forceinline__ uint16_t narrow(float x, zrt_half h)
{
    return zrt_f32_to_half(x, h);
}

/* kernels.c's adamw_elem, operation for operation:
 *   pi = p * decay; mi = b1*m + (1-b1)*g; vi = b2*v + ((1-b2)*g)*g;
 *   denom = sqrt(vi) * inv_sqrt_bc2 + eps; return pi - (step*mi) / denom */
__device__ __forceinline__ float adamw_elem(const zrt_adamw_scalars &s, float p, float g,
                                            float *m, float *v)
{
    float pi = __fmul_rn(p, s.decay_factor);
    float mi = __fadd_rn(__fmul_rn(s.beta1, *m), __fmul_rn(s.one_minus_beta1, g));
    float vi =
        __fadd_rn(__fmul_rn(s.beta2, *v), __fmul_rn(__fmul_rn(s.one_minus_beta2, g), g));
    float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), s.inv_sqrt_bc2), s.eps);

    *m = mi;
    *v = vi;
    return __fsub_rn(pi, __fdiv_rn(__fmul_rn(s.step_size, mi), denom));
}

#define GRID_STRIDE(i, n)                                                                \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);              \
         i += (size_t)gridDim.x * blockDim.x)

/* ---- kernels ------------------------------------------------------------------ */

__global__ void k_fill_f32(float *x, size_t n, float value)
{
    GRID_STRIDE(i, n) x[i] = value;
}

__global__ void k_scale_f32(float *x, size_t n, float alpha)
{
    GRID_STRIDE(i, n) x[i] = __fmul_rn(x[i], alpha);
}

__global__ void k_add_f32(float *dst, const float *src, size_t n)
{
    GRID_STRIDE(i, n) dst[i] = __fadd_rn(dst[i], src[i]);
}

__global__ void k_adamw_f32(const float *p, float *p_out, const float *g, float *m,
                            float *v, size_t n, zrt_adamw_scalars s)
{
    GRID_STRIDE(i, n)
    {
        float gi = g[i], pi = p[i];

        p_out[i] = adamw_elem(s, pi, gi, &m[i], &v[i]); /* after reading i */
    }
}

__global__ void k_cast_f32_to_half(uint16_t *dst, const float *src, size_t n, zrt_half h)
{
    GRID_STRIDE(i, n) dst[i] = narrow(src[i], h);
}

__global__ void k_cast_half_to_f32(float *dst, const uint16_t *src, size_t n, zrt_half h)
{
    GRID_STRIDE(i, n) dst[i] = widen(src[i], h);
}

__global__ void k_add_half(uint16_t *dst, const uint16_t *src, size_t n, zrt_half h)
{
    GRID_STRIDE(i, n) dst[i] = narrow(__fadd_rn(widen(dst[i], h), widen(src[i], h)), h);
}

__global__ void k_scale_half(uint16_t *x, size_t n, float alpha, zrt_half h)
{
    GRID_STRIDE(i, n) x[i] = narrow(__fmul_rn(widen(x[i], h), alpha), h);
}

/* G is uint16_t (16-bit gradients, widened) or float (f32 gradients) */
__device__ __forceinline__ float grad_f32(uint16_t g, zrt_half h)
{
    return widen(g, h);
}
__device__ __forceinline__ float grad_f32(float g, zrt_half)
{
    return g;
}

template <typename G>
__global__ void k_adamw_mixed(float *master, uint16_t *p_out, const G *g, float *m,
                              float *v, size_t n, float grad_scale, zrt_adamw_scalars s,
                              zrt_half h)
{
    GRID_STRIDE(i, n)
    {
        float gi = __fmul_rn(grad_f32(g[i], h), grad_scale);
        float pi = adamw_elem(s, master[i], gi, &m[i], &v[i]);

        master[i] = pi;
        p_out[i] = narrow(pi, h); /* after reading g[i] */
    }
}

/* Non-finite means every exponent bit set. Blocks that find one write 0;
 * k_set_int wrote 1 first (same stream, so ordered). */
__global__ void k_set_int(int *out, int value)
{
    *out = value;
}

__global__ void k_all_finite_f32(const float *x, size_t n, int *out)
{
    GRID_STRIDE(i, n)
    if ((__float_as_uint(x[i]) & 0x7f800000u) == 0x7f800000u)
        *out = 0;
}

__global__ void k_all_finite_half(const uint16_t *x, size_t n, uint16_t e, int *out)
{
    GRID_STRIDE(i, n)
    if ((x[i] & e) == e)
        *out = 0;
}

/* Sums a block's THREADS values in a fixed tree; thread 0 gets the total. */
__device__ double block_sum(double acc)
{
    __shared__ double buf[THREADS];

    buf[threadIdx.x] = acc;
    __syncthreads();
    for (unsigned w = THREADS / 2; w > 0; w /= 2) {
        if (threadIdx.x < w)
            buf[threadIdx.x] += buf[threadIdx.x + w];
        __syncthreads();
    }
    return buf[0];
}

/* Pass 1 (grid of ZRT_CUDA_SQNORM_BLOCKS): block b's partial into out[1 + b]. */
template <typename T>
__global__ void k_sqnorm_partial(const T *x, size_t n, zrt_half h, double *out)
{
    double acc = 0.0;

    GRID_STRIDE(i, n)
    {
        double xi = grad_f32(x[i], h); /* exact widening */

        acc = __dadd_rn(acc, __dmul_rn(xi, xi));
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0)
        out[1 + blockIdx.x] = acc;
}

/* Pass 2 (one block): the partials into out[0]. */
__global__ void k_sqnorm_final(double *out)
{
    double acc = 0.0;

    for (unsigned b = threadIdx.x; b < ZRT_CUDA_SQNORM_BLOCKS; b += THREADS)
        acc += out[1 + b];
    acc = block_sum(acc);
    if (threadIdx.x == 0)
        out[0] = acc;
}

/* ---- host side ------------------------------------------------------------------ */

static unsigned elem_blocks(size_t n)
{
    size_t b = (n + THREADS - 1) / THREADS;

    return b > ELEM_MAX_BLOCKS ? ELEM_MAX_BLOCKS : (unsigned)b;
}

static int launched(void)
{
    return (int)cudaGetLastError();
}

static int bad_half(zrt_half h)
{
    return h != ZRT_HALF_BF16 && h != ZRT_HALF_F16;
}

#define ELEM_LAUNCH(kernel, n, stream, ...)                                              \
    do {                                                                                 \
        if ((n) == 0)                                                                    \
            return 0;                                                                    \
        kernel<<<elem_blocks(n), THREADS, 0, (cudaStream_t)(stream)>>>(__VA_ARGS__);     \
        return launched();                                                               \
    } while (0)

/* Both mixed AdamW entry points: G is their gradients' type (see
 * k_adamw_mixed). A template has no C linkage, so it sits outside the
 * extern "C" block. */
template <typename G>
static int adamw_mixed(float *d_master, uint16_t *d_p_out, const G *d_g, float *d_m,
                       float *d_v, size_t n, float grad_scale, const zrt_adamw_scalars *s,
                       zrt_half h, struct CUstream_st *stream)
{
    if (bad_half(h))
        return (int)cudaErrorInvalidValue;
    ELEM_LAUNCH(k_adamw_mixed<G>, n, stream, d_master, d_p_out, d_g, d_m, d_v, n,
                grad_scale, *s, h);
}

extern "C" {

int zrt_cuda_fill_f32(float *d_x, size_t n, float value, struct CUstream_st *stream)
{
    ELEM_LAUNCH(k_fill_f32, n, stream, d_x, n, value);
}

int zrt_cuda_scale_f32(float *d_x, size_t n, float alpha, struct CUstream_st *stream)
{
    ELEM_LAUNCH(k_scale_f32, n, stream, d_x, n, alpha);
}

int zrt_cuda_add_f32(float *d_dst, const float *d_src, size_t n,
                     struct CUstream_st *stream)
{
    ELEM_LAUNCH(k_add_f32, n, stream, d_dst, d_src, n);
}

int zrt_cuda_sqnorm_f32(const float *d_x, size_t n, double *d_out,
                        struct CUstream_st *stream)
{
    k_sqnorm_partial<float>
        <<<ZRT_CUDA_SQNORM_BLOCKS, THREADS, 0, stream>>>(d_x, n, ZRT_HALF_BF16, d_out);
    k_sqnorm_final<<<1, THREADS, 0, stream>>>(d_out);
    return launched();
}

int zrt_cuda_all_finite_f32(const float *d_x, size_t n, int *d_out,
                            struct CUstream_st *stream)
{
    k_set_int<<<1, 1, 0, stream>>>(d_out, 1);
    if (n == 0)
        return launched();
    ELEM_LAUNCH(k_all_finite_f32, n, stream, d_x, n, d_out);
}

int zrt_cuda_adamw_f32_out(const float *d_p, float *d_p_out, const float *d_g, float *d_m,
                           float *d_v, size_t n, const zrt_adamw_scalars *s,
                           struct CUstream_st *stream)
{
    ELEM_LAUNCH(k_adamw_f32, n, stream, d_p, d_p_out, d_g, d_m, d_v, n, *s);
}

int zrt_cuda_adamw_f32(float *d_p, const float *d_g, float *d_m, float *d_v, size_t n,
                       const zrt_adamw_scalars *s, struct CUstream_st *stream)
{
    return zrt_cuda_adamw_f32_out(d_p, d_p, d_g, d_m, d_v, n, s, stream);
}

int zrt_cuda_cast_f32_to_half(uint16_t *d_dst, const float *d_src, size_t n, zrt_half h,
                              struct CUstream_st *stream)
{
    if (bad_half(h))
        return (int)cudaErrorInvalidValue;
    ELEM_LAUNCH(k_cast_f32_to_half, n, stream, d_dst, d_src, n, h);
}

int zrt_cuda_cast_half_to_f32(float *d_dst, const uint16_t *d_src, size_t n, zrt_half h,
                              struct CUstream_st *stream)
{
    if (bad_half(h))
        return (int)cudaErrorInvalidValue;
    ELEM_LAUNCH(k_cast_half_to_f32, n, stream, d_dst, d_src, n, h);
}

int zrt_cuda_add_half(uint16_t *d_dst, const uint16_t *d_src, size_t n, zrt_half h,
                      struct CUstream_st *stream)
{
    if (bad_half(h))
        return (int)cudaErrorInvalidValue;
    ELEM_LAUNCH(k_add_half, n, stream, d_dst, d_src, n, h);
}

int zrt_cuda_scale_half(uint16_t *d_x, size_t n, float alpha, zrt_half h,
                        struct CUstream_st *stream)
{
    if (bad_half(h))
        return (int)cudaErrorInvalidValue;
    ELEM_LAUNCH(k_scale_half, n, stream, d_x, n, alpha, h);
}

int zrt_cuda_sqnorm_half(const uint16_t *d_x, size_t n, zrt_half h, double *d_out,
                         struct CUstream_st *stream)
{
    if (bad_half(h))
        return (int)cudaErrorInvalidValue;
    k_sqnorm_partial<uint16_t>
        <<<ZRT_CUDA_SQNORM_BLOCKS, THREADS, 0, stream>>>(d_x, n, h, d_out);
    k_sqnorm_final<<<1, THREADS, 0, stream>>>(d_out);
    return launched();
}

int zrt_cuda_all_finite_half(const uint16_t *d_x, size_t n, zrt_half h, int *d_out,
                             struct CUstream_st *stream)
{
    uint16_t e = h == ZRT_HALF_BF16 ? 0x7f80u : 0x7c00u;

    if (bad_half(h))
        return (int)cudaErrorInvalidValue;
    k_set_int<<<1, 1, 0, stream>>>(d_out, 1);
    if (n == 0)
        return launched();
    ELEM_LAUNCH(k_all_finite_half, n, stream, d_x, n, e, d_out);
}

int zrt_cuda_adamw_mixed(float *d_master, uint16_t *d_p_out, const uint16_t *d_g,
                         float *d_m, float *d_v, size_t n, float grad_scale,
                         const zrt_adamw_scalars *s, zrt_half h,
                         struct CUstream_st *stream)
{
    return adamw_mixed(d_master, d_p_out, d_g, d_m, d_v, n, grad_scale, s, h, stream);
}

int zrt_cuda_adamw_mixed_f32grad(float *d_master, uint16_t *d_p_out, const float *d_g,
                                 float *d_m, float *d_v, size_t n, float grad_scale,
                                 const zrt_adamw_scalars *s, zrt_half h,
                                 struct CUstream_st *stream)
{
    return adamw_mixed(d_master, d_p_out, d_g, d_m, d_v, n, grad_scale, s, h, stream);
}

} /* extern "C" */
