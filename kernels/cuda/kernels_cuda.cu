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
 * summation depends on n only. The quantization kernels loop over
 * quantization blocks instead of elements: a warp, or a whole thread block
 * for blocks of 2048 elements and more, per quantization block (see their
 * section).
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

/* ---- blockwise quantization (kernels/cpu's zrt_quantize_*, byte for byte) --------
 *
 * One group of G threads per quantization block: a warp (G = 32) for blocks
 * of fewer than QUANT_CTA_BLOCK elements, the whole thread block (G =
 * THREADS) from there up; a grid-stride loop over the quantization blocks.
 * The group reads its block twice: once for the absmax, once to quantize.
 *
 * The absmax is a max over the bit patterns |x| (sign cleared) as unsigned
 * integers: for non-negative floats the order of the patterns is the order of
 * the values, so the max is exact and independent of the order of the
 * reduction, and a pattern >= 0x7f800000 (inf, NaN) marks the block
 * non-finite in the same pass.
 *
 * Rounding: scale = absmax / qmax and inv = qmax / absmax are __fdiv_rn (one
 * correctly rounded division each), t = x * inv is __fmul_rn, and
 * __float2int_rn rounds t to the nearest integer, ties to even (nearbyintf's
 * default mode), saturating outside the int range; then a clamp to
 * [-qmax, qmax] (which never bites: |t| < qmax + 0.5). A block whose absmax
 * is 0, or so small that qmax / absmax overflows to inf, is stored as zeros
 * with scale 0; a block holding inf or NaN as zeros with scale NaN
 * (0x7fc00000), counted. Dequantizing is (float)q * scale (an exact
 * conversion, one __fmul_rn) and for _add one __fadd_rn after it; a NaN scale
 * gives 0x7fc00000 everywhere in its block. These are kernels/cpu/kernels.c's
 * quant_block_scale, quant_one and zrt__dequantize, decision for decision. */

#define QUANT_CTA_BLOCK 2048u       /* blocks this large get a thread block */
#define QUANT_NAN_BITS  0x7fc00000u /* the scale of a non-finite block: NAN */

/* x86's NaN rules for one binary operation (SSE/AVX, DAZ and FTZ clear): a NaN
 * operand comes back quieted, the first one when both are; an invalid
 * operation (inf - inf, 0 * inf) gives the default NaN 0xffc00000. The GPU
 * answers its canonical 0x7fffffff in each case instead. With these the
 * dequantized bits are the CPU's for a NaN accumulator (dequantize_add) and
 * for inf + -inf (int8's absmax FLT_MAX dequantizes +-127 to +-inf) too. */
__device__ __forceinline__ float x86_nan(float a, float b, float r)
{
    uint32_t ua = __float_as_uint(a), ub = __float_as_uint(b);

    if ((ua & 0x7fffffffu) > 0x7f800000u)
        return __uint_as_float(ua | 0x00400000u);
    if ((ub & 0x7fffffffu) > 0x7f800000u)
        return __uint_as_float(ub | 0x00400000u);
    if (r != r)
        return __uint_as_float(0xffc00000u);
    return r;
}

__device__ __forceinline__ float x86_mul(float a, float b)
{
    return x86_nan(a, b, __fmul_rn(a, b));
}

__device__ __forceinline__ float x86_add(float a, float b)
{
    return x86_nan(a, b, __fadd_rn(a, b));
}

/* The max of m over the G threads of a group; every thread gets it. */
template <int G> __device__ __forceinline__ uint32_t group_max(uint32_t m)
{
    for (int off = 16; off > 0; off /= 2)
        m = max(m, __shfl_xor_sync(0xffffffffu, m, off));
    if (G > 32) {
        __shared__ uint32_t warp_max[THREADS / 32];

        if (threadIdx.x % 32 == 0)
            warp_max[threadIdx.x / 32] = m;
        __syncthreads();
        for (int w = 0; w < G / 32; w++)
            m = max(m, warp_max[w]);
        __syncthreads(); /* before the next block's writes */
    }
    return m;
}

/* A block's scale and the reciprocal that quantizes it. */
struct quant_block {
    float scale, inv;
    int bad; /* an inf or NaN in the block: scale NaN, every q 0 */
};

__device__ __forceinline__ quant_block quant_params(uint32_t absmax_bits, float qmax)
{
    quant_block p = {0.0f, 0.0f, 0};

    if (absmax_bits >= 0x7f800000u) {
        p.scale = __uint_as_float(QUANT_NAN_BITS);
        p.bad = 1;
    } else if (absmax_bits != 0) {
        float absmax = __uint_as_float(absmax_bits), inv = __fdiv_rn(qmax, absmax);

        if (inv <= 3.40282347e38f) { /* else +inf: absmax < qmax / FLT_MAX */
            p.scale = __fdiv_rn(absmax, qmax);
            p.inv = inv;
        }
    }
    /* All-zero blocks, and those whose qmax / absmax overflows, keep scale 0
     * and inv 0: x * 0 quantizes every (finite) x to 0. */
    return p;
}

/* clamp(nearbyintf(x * inv), -qmax, qmax); NaN -> 0 */
__device__ __forceinline__ int quant_one(float x, float inv, int qmax)
{
    float t = __fmul_rn(x, inv);
    int r;

    if (t != t)
        return 0;
    r = __float2int_rn(t);
    return r < -qmax ? -qmax : r > qmax ? qmax : r;
}

/* A 4-bit two's complement nibble (0..15) as an int in [-8, 7]. */
__device__ __forceinline__ int nibble(unsigned v)
{
    return (int)(v ^ 8u) - 8;
}

#define GROUP_LOOP(b, G, nblocks)                                                        \
    for (size_t b = (size_t)blockIdx.x * (THREADS / (G)) + threadIdx.x / (G);            \
         b < (nblocks); b += (size_t)gridDim.x * (THREADS / (G)))

/* BITS 8: q[i] is element i as an int8_t byte; BITS 4: q[k] holds elements
 * 2k (low nibble) and 2k + 1 (high nibble). block is even for BITS 4. */
template <int G, int BITS>
__global__ void k_quantize(const float *x, size_t n, size_t block, uint8_t *q,
                           float *scale, unsigned long long *nonfinite)
{
    const size_t nblocks = n / block + (n % block != 0);
    const unsigned lane = threadIdx.x % G;
    const int qmax = BITS == 8 ? 127 : 7;

    GROUP_LOOP(b, G, nblocks)
    {
        size_t base = b * block, len = n - base < block ? n - base : block;
        const float *xb = x + base;
        uint32_t m = 0;
        quant_block p;

        for (size_t j = lane; j < len; j += G)
            m = max(m, __float_as_uint(xb[j]) & 0x7fffffffu);
        p = quant_params(group_max<G>(m), (float)qmax);
        if (lane == 0) {
            scale[b] = p.scale;
            if (p.bad && nonfinite)
                atomicAdd(nonfinite, 1ull);
        }
        if (BITS == 8) {
            for (size_t j = lane; j < len; j += G)
                q[base + j] =
                    (uint8_t)(int8_t)(p.bad ? 0 : quant_one(xb[j], p.inv, qmax));
        } else {
            for (size_t k = lane; k < (len + 1) / 2; k += G) {
                int lo = 0, hi = 0;

                if (!p.bad) {
                    lo = quant_one(xb[2 * k], p.inv, qmax);
                    if (2 * k + 1 < len)
                        hi = quant_one(xb[2 * k + 1], p.inv, qmax);
                }
                q[base / 2 + k] = (uint8_t)((lo & 0xf) | ((hi & 0xf) << 4));
            }
        }
    }
}

/* x[i] = (float)q_i * scale (ADD: x[i] = x[i] + that), x86's NaN rules; a
 * block whose scale is NaN (a non-finite block) becomes QUANT_NAN_BITS in
 * every element, whatever x held, as on the CPU. */
template <int G, int BITS, bool ADD>
__global__ void k_dequantize(const uint8_t *q, const float *scale, size_t n, size_t block,
                             float *x)
{
    const size_t nblocks = n / block + (n % block != 0);
    const unsigned lane = threadIdx.x % G;

    GROUP_LOOP(b, G, nblocks)
    {
        size_t base = b * block, len = n - base < block ? n - base : block;
        float sc = scale[b], *xb = x + base;

        if (sc != sc) {
            for (size_t j = lane; j < len; j += G)
                xb[j] = __uint_as_float(QUANT_NAN_BITS);
        } else if (BITS == 8) {
            for (size_t j = lane; j < len; j += G) {
                float d = x86_mul((float)(int8_t)q[base + j], sc);

                xb[j] = ADD ? x86_add(xb[j], d) : d;
            }
        } else {
            for (size_t k = lane; k < (len + 1) / 2; k += G) {
                unsigned byte = q[base / 2 + k];
                float lo = x86_mul((float)nibble(byte & 0xfu), sc);
                float hi = x86_mul((float)nibble(byte >> 4), sc);

                xb[2 * k] = ADD ? x86_add(xb[2 * k], lo) : lo;
                if (2 * k + 1 < len)
                    xb[2 * k + 1] = ADD ? x86_add(xb[2 * k + 1], hi) : hi;
            }
        }
    }
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

/* ---- quantization: host side ----------------------------------------------------- */

static_assert(sizeof(size_t) == sizeof(unsigned long long),
              "d_nonfinite is counted with a 64-bit atomicAdd");

/* enough thread blocks for nblocks groups of G threads, at most ELEM_MAX_BLOCKS */
static unsigned group_ctas(size_t nblocks, unsigned g)
{
    size_t per = THREADS / g, c = (nblocks + per - 1) / per;

    return c > ELEM_MAX_BLOCKS ? ELEM_MAX_BLOCKS : (unsigned)c;
}

static int quant_bad_block(size_t block, int bits)
{
    return block == 0 || (bits == 4 && block % 2 != 0);
}

template <int BITS>
static int quantize(const float *d_x, size_t n, size_t block, uint8_t *d_q,
                    float *d_scale, size_t *d_nonfinite, cudaStream_t stream)
{
    unsigned long long *count = (unsigned long long *)d_nonfinite;
    size_t nblocks;
    int rc;

    if (quant_bad_block(block, BITS))
        return (int)cudaErrorInvalidValue;
    if (count) {
        rc = (int)cudaMemsetAsync(count, 0, sizeof *count, stream);
        if (rc != 0)
            return rc;
    }
    if (n == 0)
        return 0;
    nblocks = n / block + (n % block != 0);
    if (block >= QUANT_CTA_BLOCK)
        k_quantize<THREADS, BITS><<<group_ctas(nblocks, THREADS), THREADS, 0, stream>>>(
            d_x, n, block, d_q, d_scale, count);
    else
        k_quantize<32, BITS><<<group_ctas(nblocks, 32), THREADS, 0, stream>>>(
            d_x, n, block, d_q, d_scale, count);
    return launched();
}

template <int BITS, bool ADD>
static int dequantize(const uint8_t *d_q, const float *d_scale, size_t n, size_t block,
                      float *d_x, cudaStream_t stream)
{
    size_t nblocks;

    if (quant_bad_block(block, BITS))
        return (int)cudaErrorInvalidValue;
    if (n == 0)
        return 0;
    nblocks = n / block + (n % block != 0);
    if (block >= QUANT_CTA_BLOCK)
        k_dequantize<THREADS, BITS, ADD>
            <<<group_ctas(nblocks, THREADS), THREADS, 0, stream>>>(d_q, d_scale, n, block,
                                                                   d_x);
    else
        k_dequantize<32, BITS, ADD><<<group_ctas(nblocks, 32), THREADS, 0, stream>>>(
            d_q, d_scale, n, block, d_x);
    return launched();
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

int zrt_cuda_quantize_i8(const float *d_x, size_t n, size_t block, int8_t *d_q,
                         float *d_scale, size_t *d_nonfinite, struct CUstream_st *stream)
{
    return quantize<8>(d_x, n, block, (uint8_t *)d_q, d_scale, d_nonfinite, stream);
}

int zrt_cuda_dequantize_i8(const int8_t *d_q, const float *d_scale, size_t n,
                           size_t block, float *d_x, struct CUstream_st *stream)
{
    return dequantize<8, false>((const uint8_t *)d_q, d_scale, n, block, d_x, stream);
}

int zrt_cuda_dequantize_add_i8(const int8_t *d_q, const float *d_scale, size_t n,
                               size_t block, float *d_x, struct CUstream_st *stream)
{
    return dequantize<8, true>((const uint8_t *)d_q, d_scale, n, block, d_x, stream);
}

int zrt_cuda_quantize_i4(const float *d_x, size_t n, size_t block, uint8_t *d_q,
                         float *d_scale, size_t *d_nonfinite, struct CUstream_st *stream)
{
    return quantize<4>(d_x, n, block, d_q, d_scale, d_nonfinite, stream);
}

int zrt_cuda_dequantize_i4(const uint8_t *d_q, const float *d_scale, size_t n,
                           size_t block, float *d_x, struct CUstream_st *stream)
{
    return dequantize<4, false>(d_q, d_scale, n, block, d_x, stream);
}

int zrt_cuda_dequantize_add_i4(const uint8_t *d_q, const float *d_scale, size_t n,
                               size_t block, float *d_x, struct CUstream_st *stream)
{
    return dequantize<4, true>(d_q, d_scale, n, block, d_x, stream);
}

} /* extern "C" */
