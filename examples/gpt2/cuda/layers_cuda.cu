/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/gpt2/cuda/layers_cuda.cu — GPT-2's operations on a CUDA device
 * (see layers_cuda.h for the contracts). Written to be simple and correct
 * first: one thread per element, one warp per row, and for the sums over
 * rows (parameter gradients) a fixed split of the rows with the partial sums
 * added in a fixed order, never atomics. The matrix products, which are
 * most of the work, go to cuBLAS.
 *
 * Layout of the attention scratch (floats, BTC = B*T*C): q, k, v, y (4 BTC)
 * in the forward; q, k, v, dy, dq, dk, dv (7 BTC) in the backward. q, k, v,
 * y and their gradients are (B,NH,T,hs), so the score products are one
 * strided batch of B*NH row-major (T,hs) matrices each.
 */
#include "layers_cuda.h"

#include "kernels/cpu/kernels.h" /* zrt_half_to_f32, zrt_f32_to_half */
#include "kernels/cuda/kernels_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#define THREADS        256
#define WARP           32
#define ROWS_PER_BLOCK (THREADS / WARP) /* warp-per-row kernels */

/* ---- errors -------------------------------------------------------------- */

static int fail(gpt2_cuda *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->error, sizeof x->error, fmt, ap);
    va_end(ap);
    return -1;
}

static int cuda_ok(gpt2_cuda *x, const char *what, cudaError_t e)
{
    if (e == cudaSuccess)
        return 0;
    return fail(x, "%s: %s (%s)", what, cudaGetErrorName(e), cudaGetErrorString(e));
}

/* After a launch: a bad configuration or an earlier asynchronous fault. */
static int launched(gpt2_cuda *x, const char *what)
{
    return cuda_ok(x, what, cudaGetLastError());
}

static int cublas_ok(gpt2_cuda *x, const char *what, cublasStatus_t s)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return 0;
    return fail(x, "%s: cuBLAS %s", what, cublasGetStatusName(s));
}

static cudaStream_t stream_of(const gpt2_cuda *x)
{
    return (cudaStream_t)x->stream;
}

static unsigned blocks_for(size_t n, size_t per_block)
{
    size_t b = (n + per_block - 1) / per_block;
    return (unsigned)(b < 1u << 30 ? b : 1u << 30); /* kernels stride beyond */
}

/* ---- setup ---------------------------------------------------------------- */

int gpt2_cuda_init(gpt2_cuda *x, struct CUstream_st *stream, gpt2_cuda_math math)
{
    x->stream = stream;
    x->cublas = NULL;
    x->math = math;
    x->error[0] = '\0';
    cublasHandle_t h;
    if (cublas_ok(x, "cublasCreate", cublasCreate(&h)))
        return -1;
    x->cublas = h;
    /* the default math mode: CUBLAS_COMPUTE_32F stays f32 (no TF32) */
    if (cublas_ok(x, "cublasSetStream", cublasSetStream(h, stream_of(x)))) {
        gpt2_cuda_deinit(x);
        return -1;
    }
    return 0;
}

void gpt2_cuda_deinit(gpt2_cuda *x)
{
    if (x->cublas)
        cublasDestroy(x->cublas);
    x->cublas = NULL;
}

int gpt2_cuda_sync(gpt2_cuda *x)
{
    return cuda_ok(x, "cudaStreamSynchronize", cudaStreamSynchronize(stream_of(x)));
}

static cublasComputeType_t compute_type(const gpt2_cuda *x)
{
    switch (x->math) {
    case GPT2_CUDA_MATH_BF16:
        return CUBLAS_COMPUTE_32F_FAST_16BF;
    case GPT2_CUDA_MATH_F16:
        return CUBLAS_COMPUTE_32F_FAST_16F;
    default:
        return CUBLAS_COMPUTE_32F;
    }
}

/* C (m,n) = alpha op(A) op(B) + beta C, column-major, f32 storage. */
static int gemm(gpt2_cuda *x, const char *what, cublasOperation_t ta,
                cublasOperation_t tb, int m, int n, int k, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    return cublas_ok(x, what,
                     cublasGemmEx(x->cublas, ta, tb, m, n, k, &alpha, A, CUDA_R_32F, lda,
                                  B, CUDA_R_32F, ldb, &beta, C, CUDA_R_32F, ldc,
                                  compute_type(x), CUBLAS_GEMM_DEFAULT));
}

/* The same over `batch` matrices `stride*` floats apart. */
static int gemm_batched(gpt2_cuda *x, const char *what, cublasOperation_t ta,
                        cublasOperation_t tb, int m, int n, int k, float alpha,
                        const float *A, int lda, long long sa, const float *B, int ldb,
                        long long sb, float beta, float *C, int ldc, long long sc,
                        int batch)
{
    return cublas_ok(x, what,
                     cublasGemmStridedBatchedEx(x->cublas, ta, tb, m, n, k, &alpha, A,
                                                CUDA_R_32F, lda, sa, B, CUDA_R_32F, ldb,
                                                sb, &beta, C, CUDA_R_32F, ldc, sc, batch,
                                                compute_type(x), CUBLAS_GEMM_DEFAULT));
}

/* ---- warp reductions: a fixed butterfly, the same order every run -------- */

__device__ static float warp_sum(float v)
{
    for (int o = WARP / 2; o > 0; o /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ static float warp_max(float v)
{
    for (int o = WARP / 2; o > 0; o /= 2)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* ---- column sums -----------------------------------------------------------
 * The parameter gradients of layernorm and of the biases are sums over the N
 * rows of a (N, C) tensor. A block of COL_COLS x COL_ROWS threads owns
 * COL_COLS columns: thread (x, y) adds rows y, y + COL_ROWS, ... in order
 * (for a fixed row the x threads read one coalesced line), then thread
 * (x, 0) adds the COL_ROWS partial sums in y order and adds the total into
 * the gradient. The order depends on N only: the same bits every run. */
#define COL_COLS 32
#define COL_ROWS 32

static dim3 column_block(void)
{
    return dim3(COL_COLS, COL_ROWS);
}

/* ---- encoder -------------------------------------------------------------- */

__global__ static void encoder_forward_kernel(float *out, const int *inp,
                                              const float *wte, const float *wpe, int B,
                                              int T, int C)
{
    size_t n = (size_t)B * T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t bt = i / C;
        int c = (int)(i % C), t = (int)(bt % T);
        out[i] = wte[(size_t)inp[bt] * C + c] + wpe[(size_t)t * C + c];
    }
}

int gpt2_cuda_encoder_forward(gpt2_cuda *x, float *out, const int *inp, const float *wte,
                              const float *wpe, int B, int T, int C)
{
    size_t n = (size_t)B * T * C;
    if (n == 0)
        return 0;
    encoder_forward_kernel<<<blocks_for(n, THREADS), THREADS, 0, stream_of(x)>>>(
        out, inp, wte, wpe, B, T, C);
    return launched(x, "encoder_forward");
}

/* dwte: one thread per channel walks the positions in order, so rows that
 * share a token add in layers.c's order (and no two threads meet). */
__global__ static void encoder_dwte_kernel(float *dwte, const float *dout, const int *inp,
                                           int BT, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    for (int p = 0; p < BT; p++)
        dwte[(size_t)inp[p] * C + c] += dout[(size_t)p * C + c];
}

/* dwpe: one thread per (t, c) adds the B rows in order. */
__global__ static void encoder_dwpe_kernel(float *dwpe, const float *dout, int B, int T,
                                           int C)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C)
        return;
    float acc = dwpe[i];
    for (int b = 0; b < B; b++)
        acc += dout[(size_t)b * T * C + i];
    dwpe[i] = acc;
}

int gpt2_cuda_encoder_backward(gpt2_cuda *x, float *dwte, float *dwpe, const float *dout,
                               const int *inp, int B, int T, int C)
{
    if ((size_t)B * T * C == 0)
        return 0;
    encoder_dwte_kernel<<<blocks_for((size_t)C, THREADS), THREADS, 0, stream_of(x)>>>(
        dwte, dout, inp, B * T, C);
    if (launched(x, "encoder_backward (dwte)"))
        return -1;
    encoder_dwpe_kernel<<<blocks_for((size_t)T * C, THREADS), THREADS, 0, stream_of(x)>>>(
        dwpe, dout, B, T, C);
    return launched(x, "encoder_backward (dwpe)");
}

/* ---- layernorm ------------------------------------------------------------ */

/* One warp per row: mean, then the variance around it (layers.c's two
 * passes), then the normalised row. */
__global__ static void layernorm_forward_kernel(float *out, float *mean, float *rstd,
                                                const float *inp, const float *w,
                                                const float *b, int N, int C)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (row >= N)
        return;
    const float *xr = inp + (size_t)row * C;
    float sum = 0.0f;
    for (int i = lane; i < C; i += WARP)
        sum += xr[i];
    float m = warp_sum(sum) / (float)C;
    float var = 0.0f;
    for (int i = lane; i < C; i += WARP)
        var += (xr[i] - m) * (xr[i] - m);
    var = warp_sum(var) / (float)C;
    float s = 1.0f / sqrtf(var + 1e-5f);
    float *o = out + (size_t)row * C;
    for (int i = lane; i < C; i += WARP)
        o[i] = (xr[i] - m) * s * w[i] + b[i];
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = s;
    }
}

int gpt2_cuda_layernorm_forward(gpt2_cuda *x, float *out, float *mean, float *rstd,
                                const float *inp, const float *w, const float *b, int N,
                                int C)
{
    if (N <= 0)
        return 0;
    layernorm_forward_kernel<<<blocks_for((size_t)N, ROWS_PER_BLOCK), THREADS, 0,
                               stream_of(x)>>>(out, mean, rstd, inp, w, b, N, C);
    return launched(x, "layernorm_forward");
}

/* dinp: one warp per row, the two reductions of the layernorm gradient. */
__global__ static void layernorm_dinp_kernel(float *dinp, const float *dout,
                                             const float *inp, const float *w,
                                             const float *mean, const float *rstd, int N,
                                             int C)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (row >= N)
        return;
    const float *d = dout + (size_t)row * C, *xr = inp + (size_t)row * C;
    float *dx = dinp + (size_t)row * C;
    float m = mean[row], s = rstd[row];
    float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
    for (int i = lane; i < C; i += WARP) {
        float norm = (xr[i] - m) * s;
        float dnorm = w[i] * d[i];
        dnorm_mean += dnorm;
        dnorm_norm_mean += dnorm * norm;
    }
    dnorm_mean = warp_sum(dnorm_mean) / (float)C;
    dnorm_norm_mean = warp_sum(dnorm_norm_mean) / (float)C;
    for (int i = lane; i < C; i += WARP) {
        float norm = (xr[i] - m) * s;
        float dnorm = w[i] * d[i];
        dx[i] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
    }
}

/* dw, db: column sums (see column_block for the order). */
__global__ static void layernorm_dparams_kernel(float *dw, float *db, const float *dout,
                                                const float *inp, const float *mean,
                                                const float *rstd, int N, int C)
{
    __shared__ float part_w[COL_ROWS][COL_COLS + 1], part_b[COL_ROWS][COL_COLS + 1];
    int c = blockIdx.x * COL_COLS + threadIdx.x;
    float w_acc = 0.0f, b_acc = 0.0f;
    if (c < C) {
        for (int n = threadIdx.y; n < N; n += COL_ROWS) {
            float d = dout[(size_t)n * C + c];
            float norm = (inp[(size_t)n * C + c] - mean[n]) * rstd[n];
            b_acc += d;
            w_acc += norm * d;
        }
    }
    part_w[threadIdx.y][threadIdx.x] = w_acc;
    part_b[threadIdx.y][threadIdx.x] = b_acc;
    __syncthreads();
    if (threadIdx.y != 0 || c >= C)
        return;
    float w_sum = 0.0f, b_sum = 0.0f;
    for (int r = 0; r < COL_ROWS; r++) {
        w_sum += part_w[r][threadIdx.x];
        b_sum += part_b[r][threadIdx.x];
    }
    dw[c] += w_sum;
    db[c] += b_sum;
}

int gpt2_cuda_layernorm_backward(gpt2_cuda *x, float *dinp, float *dw, float *db,
                                 const float *dout, const float *inp, const float *w,
                                 const float *mean, const float *rstd, int N, int C)
{
    if (N <= 0 || C <= 0)
        return 0;
    layernorm_dinp_kernel<<<blocks_for((size_t)N, ROWS_PER_BLOCK), THREADS, 0,
                            stream_of(x)>>>(dinp, dout, inp, w, mean, rstd, N, C);
    if (launched(x, "layernorm_backward (dinp)"))
        return -1;
    layernorm_dparams_kernel<<<blocks_for((size_t)C, COL_COLS), column_block(), 0,
                               stream_of(x)>>>(dw, db, dout, inp, mean, rstd, N, C);
    return launched(x, "layernorm_backward (dw, db)");
}

/* ---- matmul --------------------------------------------------------------- */

__global__ static void add_bias_kernel(float *out, const float *bias, int N, int OC)
{
    size_t n = (size_t)N * OC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] += bias[i % OC];
}

/* dbias += the column sums of dout (see column_block for the order). */
__global__ static void bias_backward_kernel(float *dbias, const float *dout, int N,
                                            int OC)
{
    __shared__ float part[COL_ROWS][COL_COLS + 1];
    int j = blockIdx.x * COL_COLS + threadIdx.x;
    float acc = 0.0f;
    if (j < OC)
        for (int n = threadIdx.y; n < N; n += COL_ROWS)
            acc += dout[(size_t)n * OC + j];
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y != 0 || j >= OC)
        return;
    float sum = 0.0f;
    for (int r = 0; r < COL_ROWS; r++)
        sum += part[r][threadIdx.x];
    dbias[j] += sum;
}

/* Row-major (N,OC) = (N,C) W^T is column-major out^T = W inp^T: W's buffer
 * read as (C,OC) column-major is W^T, hence OP_T. */
int gpt2_cuda_matmul_forward(gpt2_cuda *x, float *out, const float *inp, const float *w,
                             const float *bias, int N, int C, int OC)
{
    if (N <= 0 || OC <= 0)
        return 0;
    if (gemm(x, "matmul_forward", CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, 1.0f, w, C, inp, C,
             0.0f, out, OC))
        return -1;
    if (!bias)
        return 0;
    size_t n = (size_t)N * OC;
    add_bias_kernel<<<blocks_for(n, THREADS), THREADS, 0, stream_of(x)>>>(out, bias, N,
                                                                          OC);
    return launched(x, "matmul_forward (bias)");
}

int gpt2_cuda_matmul_backward(gpt2_cuda *x, float *dinp, float *dw, float *dbias,
                              const float *dout, const float *inp, const float *w, int N,
                              int C, int OC)
{
    if (N <= 0 || C <= 0 || OC <= 0)
        return 0;
    /* dinp (N,C) += dout (N,OC) W (OC,C): column-major dinp^T = W^T dout^T */
    if (gemm(x, "matmul_backward (dinp)", CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, 1.0f, w, C,
             dout, OC, 1.0f, dinp, C))
        return -1;
    /* dW (OC,C) += dout^T inp: column-major dW^T = inp^T dout */
    if (gemm(x, "matmul_backward (dw)", CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, 1.0f, inp, C,
             dout, OC, 1.0f, dw, C))
        return -1;
    if (!dbias)
        return 0;
    bias_backward_kernel<<<blocks_for((size_t)OC, COL_COLS), column_block(), 0,
                           stream_of(x)>>>(dbias, dout, N, OC);
    return launched(x, "matmul_backward (dbias)");
}

/* ---- attention ------------------------------------------------------------ */

size_t gpt2_cuda_attention_scratch(int B, int T, int C)
{
    return 7 * (size_t)B * T * C;
}

/* Where element i of a (B,NH,T,hs) tensor, i indexing (b, h, t, e), sits in
 * part 0 of the interleaved (B,T,parts,NH,hs) one; part p is p * NH * hs
 * further on. */
__device__ static size_t interleaved_index(size_t i, int T, int NH, int hs, int parts)
{
    int e = (int)(i % hs);
    size_t r = i / hs;
    int t = (int)(r % T);
    r /= T;
    int h = (int)(r % NH);
    size_t b = r / NH;
    return ((b * T + t) * parts * NH + h) * (size_t)hs + e;
}

/* (B,T,parts,NH,hs) -> parts tensors (B,NH,T,hs), dst[p] = dst + p * BTC. */
__global__ static void permute_kernel(float *dst, const float *src, int B, int T, int NH,
                                      int hs, int parts)
{
    size_t btc = (size_t)B * T * NH * hs;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < btc;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t from = interleaved_index(i, T, NH, hs, parts);
        for (int p = 0; p < parts; p++)
            dst[p * btc + i] = src[from + (size_t)p * NH * hs];
    }
}

/* The inverse: parts tensors (B,NH,T,hs) -> (B,T,parts,NH,hs), set or
 * added. */
__global__ static void unpermute_kernel(float *dst, const float *src, int B, int T,
                                        int NH, int hs, int parts, int add)
{
    size_t btc = (size_t)B * T * NH * hs;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < btc;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t to = interleaved_index(i, T, NH, hs, parts);
        for (int p = 0; p < parts; p++) {
            float v = src[p * btc + i];
            float *d = dst + to + (size_t)p * NH * hs;
            *d = add ? *d + v : v;
        }
    }
}

/* One warp per (b, h, t) row of the scores: att = softmax over t2 <= t of
 * preatt (already scaled), 0 beyond. */
__global__ static void causal_softmax_kernel(float *att, const float *preatt, int rows,
                                             int T)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (row >= rows)
        return;
    int t = row % T;
    const float *pre = preatt + (size_t)row * T;
    float *a = att + (size_t)row * T;
    float maxv = -INFINITY;
    for (int t2 = lane; t2 <= t; t2 += WARP)
        maxv = fmaxf(maxv, pre[t2]);
    maxv = warp_max(maxv);
    float sum = 0.0f;
    for (int t2 = lane; t2 <= t; t2 += WARP) {
        float e = expf(pre[t2] - maxv);
        a[t2] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    for (int t2 = lane; t2 < T; t2 += WARP)
        a[t2] = t2 <= t ? a[t2] / sum : 0.0f;
}

/* dpreatt += att * (datt - sum(att * datt)) over t2 <= t; 0 beyond. Each
 * lane rereads only the entries it wrote itself. */
__global__ static void causal_softmax_backward_kernel(float *dpreatt, const float *datt,
                                                      const float *att, int rows, int T)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (row >= rows)
        return;
    int t = row % T;
    size_t base = (size_t)row * T;
    float dot = 0.0f;
    for (int t2 = lane; t2 <= t; t2 += WARP)
        dot += att[base + t2] * datt[base + t2];
    dot = warp_sum(dot);
    for (int t2 = lane; t2 < T; t2 += WARP)
        dpreatt[base + t2] =
            t2 <= t ? dpreatt[base + t2] + att[base + t2] * (datt[base + t2] - dot)
                    : 0.0f;
}

static int permute(gpt2_cuda *x, float *dst, const float *src, int B, int T, int C,
                   int NH, int parts, const char *what)
{
    size_t n = (size_t)B * T * C;
    permute_kernel<<<blocks_for(n, THREADS), THREADS, 0, stream_of(x)>>>(
        dst, src, B, T, NH, C / NH, parts);
    return launched(x, what);
}

static int unpermute(gpt2_cuda *x, float *dst, const float *src, int B, int T, int C,
                     int NH, int parts, int add, const char *what)
{
    size_t n = (size_t)B * T * C;
    unpermute_kernel<<<blocks_for(n, THREADS), THREADS, 0, stream_of(x)>>>(
        dst, src, B, T, NH, C / NH, parts, add);
    return launched(x, what);
}

/* Per (b, h): preatt = scale Q K^T, att = causal softmax, y = att V. In
 * column-major terms with row-major (T,hs) buffers read as (hs,T): preatt^T =
 * K Q^T and y^T = V^T att^T. */
int gpt2_cuda_attention_forward(gpt2_cuda *x, float *out, float *preatt, float *att,
                                const float *inp, float *scratch, int B, int T, int C,
                                int NH)
{
    if ((size_t)B * T * C == 0 || NH <= 0)
        return 0;
    int hs = C / NH, batch = B * NH;
    size_t btc = (size_t)B * T * C;
    long long s_qkv = (long long)T * hs, s_att = (long long)T * T;
    float *q = scratch, *k = q + btc, *v = k + btc, *y = v + btc;
    float scale = 1.0f / sqrtf((float)hs);
    if (permute(x, q, inp, B, T, C, NH, 3, "attention_forward (permute)") ||
        gemm_batched(x, "attention_forward (QK^T)", CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs,
                     scale, k, hs, s_qkv, q, hs, s_qkv, 0.0f, preatt, T, s_att, batch))
        return -1;
    int rows = batch * T;
    causal_softmax_kernel<<<blocks_for((size_t)rows, ROWS_PER_BLOCK), THREADS, 0,
                            stream_of(x)>>>(att, preatt, rows, T);
    if (launched(x, "attention_forward (softmax)") ||
        gemm_batched(x, "attention_forward (att V)", CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T,
                     1.0f, v, hs, s_qkv, att, T, s_att, 0.0f, y, hs, s_qkv, batch))
        return -1;
    return unpermute(x, out, y, B, T, C, NH, 1, 0, "attention_forward (unpermute)");
}

int gpt2_cuda_attention_backward(gpt2_cuda *x, float *dinp, float *dpreatt, float *datt,
                                 const float *dout, const float *inp, const float *att,
                                 float *scratch, int B, int T, int C, int NH)
{
    if ((size_t)B * T * C == 0 || NH <= 0)
        return 0;
    int hs = C / NH, batch = B * NH, rows = batch * T;
    size_t btc = (size_t)B * T * C;
    long long s_qkv = (long long)T * hs, s_att = (long long)T * T;
    float *q = scratch, *k = q + btc, *v = k + btc, *dy = v + btc;
    float *dq = dy + btc, *dk = dq + btc, *dv = dk + btc;
    float scale = 1.0f / sqrtf((float)hs);
    if (permute(x, q, inp, B, T, C, NH, 3, "attention_backward (permute qkv)") ||
        permute(x, dy, dout, B, T, C, NH, 1, "attention_backward (permute dout)") ||
        /* datt += dy V^T: column-major datt^T = V dy^T */
        gemm_batched(x, "attention_backward (datt)", CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs,
                     1.0f, v, hs, s_qkv, dy, hs, s_qkv, 1.0f, datt, T, s_att, batch) ||
        /* dv = att^T dy: column-major dv^T = dy^T att */
        gemm_batched(x, "attention_backward (dv)", CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T,
                     1.0f, dy, hs, s_qkv, att, T, s_att, 0.0f, dv, hs, s_qkv, batch))
        return -1;
    causal_softmax_backward_kernel<<<blocks_for((size_t)rows, ROWS_PER_BLOCK), THREADS, 0,
                                     stream_of(x)>>>(dpreatt, datt, att, rows, T);
    if (launched(x, "attention_backward (softmax)") ||
        /* dq = scale dpreatt K: column-major dq^T = K^T dpreatt^T */
        gemm_batched(x, "attention_backward (dq)", CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T,
                     scale, k, hs, s_qkv, dpreatt, T, s_att, 0.0f, dq, hs, s_qkv,
                     batch) ||
        /* dk = scale dpreatt^T Q: column-major dk^T = Q^T dpreatt */
        gemm_batched(x, "attention_backward (dk)", CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T,
                     scale, q, hs, s_qkv, dpreatt, T, s_att, 0.0f, dk, hs, s_qkv, batch))
        return -1;
    return unpermute(x, dinp, dq, B, T, C, NH, 3, 1, "attention_backward (unpermute)");
}

/* ---- elementwise ---------------------------------------------------------- */

#define GELU_SCALE 0.7978845608028654f /* sqrt(2 / pi) */

__global__ static void gelu_forward_kernel(float *out, const float *inp, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = inp[i];
        float cube = 0.044715f * v * v * v;
        out[i] = 0.5f * v * (1.0f + tanhf(GELU_SCALE * (v + cube)));
    }
}

__global__ static void gelu_backward_kernel(float *dinp, const float *inp,
                                            const float *dout, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = inp[i];
        float cube = 0.044715f * v * v * v;
        float th = tanhf(GELU_SCALE * (v + cube));
        float sech2 = 1.0f - th * th;
        float grad = 0.5f * (1.0f + th) +
                     0.5f * v * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * v * v);
        dinp[i] += grad * dout[i];
    }
}

int gpt2_cuda_gelu_forward(gpt2_cuda *x, float *out, const float *inp, size_t n)
{
    if (n == 0)
        return 0;
    gelu_forward_kernel<<<blocks_for(n, THREADS), THREADS, 0, stream_of(x)>>>(out, inp,
                                                                              n);
    return launched(x, "gelu_forward");
}

int gpt2_cuda_gelu_backward(gpt2_cuda *x, float *dinp, const float *inp,
                            const float *dout, size_t n)
{
    if (n == 0)
        return 0;
    gelu_backward_kernel<<<blocks_for(n, THREADS), THREADS, 0, stream_of(x)>>>(dinp, inp,
                                                                               dout, n);
    return launched(x, "gelu_backward");
}

__global__ static void residual_forward_kernel(float *out, const float *a, const float *b,
                                               size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

__global__ static void residual_backward_kernel(float *da, float *db, const float *dout,
                                                size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

int gpt2_cuda_residual_forward(gpt2_cuda *x, float *out, const float *a, const float *b,
                               size_t n)
{
    if (n == 0)
        return 0;
    residual_forward_kernel<<<blocks_for(n, THREADS), THREADS, 0, stream_of(x)>>>(out, a,
                                                                                  b, n);
    return launched(x, "residual_forward");
}

int gpt2_cuda_residual_backward(gpt2_cuda *x, float *da, float *db, const float *dout,
                                size_t n)
{
    if (n == 0)
        return 0;
    residual_backward_kernel<<<blocks_for(n, THREADS), THREADS, 0, stream_of(x)>>>(
        da, db, dout, n);
    return launched(x, "residual_backward");
}

/* ---- softmax + cross-entropy ---------------------------------------------- */

/* Block-wide max or sum over THREADS values with a fixed tree in shared
 * memory; every thread gets the result. */
__device__ static float block_reduce(float v, float *shared, int is_max)
{
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int o = THREADS / 2; o > 0; o /= 2) {
        if ((int)threadIdx.x < o) {
            float other = shared[threadIdx.x + o];
            shared[threadIdx.x] =
                is_max ? fmaxf(shared[threadIdx.x], other) : shared[threadIdx.x] + other;
        }
        __syncthreads();
    }
    float result = shared[0];
    __syncthreads(); /* shared is reused by the next reduction */
    return result;
}

/* One block per row. */
__global__ static void softmax_xent_kernel(float *probs, float *losses,
                                           const float *logits, const int *targets, int V,
                                           int Vp)
{
    __shared__ float shared[THREADS];
    size_t row = blockIdx.x;
    const float *l = logits + row * Vp;
    float *p = probs + row * Vp;
    float maxv = -INFINITY;
    for (int v = threadIdx.x; v < V; v += THREADS)
        maxv = fmaxf(maxv, l[v]);
    maxv = block_reduce(maxv, shared, 1);
    float sum = 0.0f;
    for (int v = threadIdx.x; v < V; v += THREADS)
        sum += expf(l[v] - maxv);
    sum = block_reduce(sum, shared, 0);
    for (int v = threadIdx.x; v < Vp; v += THREADS)
        p[v] = v < V ? expf(l[v] - maxv) / sum : 0.0f;
    if (threadIdx.x == 0) /* the same expression the target's thread wrote */
        losses[row] = -logf(expf(l[targets[row]] - maxv) / sum);
}

__global__ static void xent_backward_kernel(float *dlogits, const float *probs,
                                            const int *targets, float scale, int N, int V,
                                            int Vp)
{
    size_t n = (size_t)N * Vp;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        int v = (int)(i % Vp);
        float indicator = v == targets[i / Vp] ? 1.0f : 0.0f;
        dlogits[i] = v < V ? (probs[i] - indicator) * scale : 0.0f;
    }
}

int gpt2_cuda_softmax_crossentropy_forward(gpt2_cuda *x, float *probs, float *losses,
                                           const float *logits, const int *targets, int N,
                                           int V, int Vp)
{
    if (N <= 0)
        return 0;
    softmax_xent_kernel<<<(unsigned)N, THREADS, 0, stream_of(x)>>>(probs, losses, logits,
                                                                   targets, V, Vp);
    return launched(x, "softmax_crossentropy_forward");
}

int gpt2_cuda_softmax_crossentropy_backward(gpt2_cuda *x, float *dlogits,
                                            const float *probs, const int *targets,
                                            float scale, int N, int V, int Vp)
{
    size_t n = (size_t)N * Vp;
    if (n == 0)
        return 0;
    xent_backward_kernel<<<blocks_for(n, THREADS), THREADS, 0, stream_of(x)>>>(
        dlogits, probs, targets, scale, N, V, Vp);
    return launched(x, "softmax_crossentropy_backward");
}

/* ---- memory chores -------------------------------------------------------- */

int gpt2_cuda_zero(gpt2_cuda *x, void *d_dst, size_t bytes)
{
    if (bytes == 0)
        return 0;
    return cuda_ok(x, "cudaMemsetAsync", cudaMemsetAsync(d_dst, 0, bytes, stream_of(x)));
}

int gpt2_cuda_upload(gpt2_cuda *x, void *d_dst, const void *host_src, size_t bytes)
{
    if (bytes == 0)
        return 0;
    /* pageable source: staged before the call returns */
    return cuda_ok(
        x, "cudaMemcpyAsync (to device)",
        cudaMemcpyAsync(d_dst, host_src, bytes, cudaMemcpyHostToDevice, stream_of(x)));
}

int gpt2_cuda_download(gpt2_cuda *x, void *host_dst, const void *d_src, size_t bytes)
{
    if (bytes == 0)
        return 0;
    if (cuda_ok(x, "cudaMemcpyAsync (to host)",
                cudaMemcpyAsync(host_dst, d_src, bytes, cudaMemcpyDeviceToHost,
                                stream_of(x))))
        return -1;
    return cuda_ok(x, "cudaStreamSynchronize", cudaStreamSynchronize(stream_of(x)));
}

int gpt2_cuda_widen(gpt2_cuda *x, float *d_dst, const uint16_t *d_src, size_t n,
                    int is_bf16)
{
    if (n == 0)
        return 0;
    int rc = zrt_cuda_cast_half_to_f32(
        d_dst, d_src, n, is_bf16 ? ZRT_HALF_BF16 : ZRT_HALF_F16, stream_of(x));
    return cuda_ok(x, "widen (zrt_cuda_cast_half_to_f32)", (cudaError_t)rc);
}

__global__ static void accumulate_half_kernel(uint16_t *dst, const float *src, size_t n,
                                              zrt_half h)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = zrt_f32_to_half(__fadd_rn(zrt_half_to_f32(dst[i], h), src[i]), h);
}

int gpt2_cuda_accumulate_half(gpt2_cuda *x, uint16_t *d_dst, const float *d_src, size_t n,
                              int is_bf16)
{
    if (n == 0)
        return 0;
    accumulate_half_kernel<<<blocks_for(n, THREADS), THREADS, 0, stream_of(x)>>>(
        d_dst, d_src, n, is_bf16 ? ZRT_HALF_BF16 : ZRT_HALF_F16);
    return launched(x, "accumulate_half");
}
