/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/gpt2/cuda/layers_cuda.h — GPT-2's operations on a CUDA device:
 * the functions of examples/gpt2/layers.h, one for one, with the same
 * shapes and the same accumulate rule (backward functions add, +=, into
 * their parameter and input gradients), f32 activations and f32 arithmetic.
 * Matrix products go through cuBLAS; everything else is a kernel here.
 *
 * The header names no CUDA type, so C code includes it without the CUDA
 * headers: a stream is the `struct CUstream_st *` that cudaStream_t is a
 * typedef of, a cuBLAS handle the `struct cublasContext *` of cublasHandle_t.
 *
 * Contracts shared by every function:
 *   - pointers are device memory, except where a name says host;
 *   - the work is queued on x->stream and the call returns without waiting
 *     (gpt2_cuda_download waits: its result is in host memory);
 *   - returns 0, or -1 with a sentence in x->error naming the operation and
 *     the CUDA or cuBLAS error. A fault inside a kernel shows up later, at the
 *     next call that synchronises, as CUDA's errors do;
 *   - deterministic: no atomics; every reduction over positions (embedding,
 *     layernorm and bias gradients) runs in a fixed order, so a run gives the
 *     same bits every time on the same GPU model. The embedding gradients
 *     add in layers.c's order exactly.
 *
 * Numerics against layers.c: the matrix products follow x->math (f32 runs
 * use plain f32 in cuBLAS, no TF32; bf16/fp16 runs let cuBLAS round the
 * operands to 16 bits on tensor cores, accumulating in f32). The other
 * reductions (layernorm, softmax) sum in another order than the CPU, and
 * nvcc contracts multiply-adds, so results agree with the CPU to rounding,
 * not bit for bit (tests/cuda/test_gpt2_layers_cuda.c states the bounds).
 */
#ifndef ZRT_EXAMPLES_GPT2_LAYERS_CUDA_H
#define ZRT_EXAMPLES_GPT2_LAYERS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct CUstream_st;   /* cudaStream_t */
struct cublasContext; /* cublasHandle_t */

/* How cuBLAS multiplies: the computeType of every product. */
typedef enum gpt2_cuda_math {
    GPT2_CUDA_MATH_F32,  /* CUBLAS_COMPUTE_32F: f32 operands, no TF32 */
    GPT2_CUDA_MATH_BF16, /* CUBLAS_COMPUTE_32F_FAST_16BF: bf16 operands, f32 sums */
    GPT2_CUDA_MATH_F16   /* CUBLAS_COMPUTE_32F_FAST_16F: fp16 operands, f32 sums */
} gpt2_cuda_math;

/* Where the operations run. init/deinit: the caller owns the struct. */
typedef struct gpt2_cuda {
    struct CUstream_st *stream;   /* not owned; NULL = the legacy default stream */
    struct cublasContext *cublas; /* owned, bound to stream */
    gpt2_cuda_math math;
    char error[256]; /* the last failure's sentence */
} gpt2_cuda;

/* Creates the cuBLAS handle on the current device and binds it to stream.
 * Returns 0 or -1 (x->error says why; no device, say). */
int gpt2_cuda_init(gpt2_cuda *x, struct CUstream_st *stream, gpt2_cuda_math math);
/* Destroys the handle; a zeroed or deinitialised x is fine. */
void gpt2_cuda_deinit(gpt2_cuda *x);
/* Returns when everything queued on x->stream has finished. */
int gpt2_cuda_sync(gpt2_cuda *x);

/* ---- the layers (layers.h's shapes: B batch, T time, C channels, NH
 * heads, OC output channels, V vocabulary, Vp padded vocabulary) ---------- */

/* out (B,T,C) = wte[inp] + wpe[t]; inp (B,T) device ints */
int gpt2_cuda_encoder_forward(gpt2_cuda *x, float *out, const int *inp, const float *wte,
                              const float *wpe, int B, int T, int C);
/* dwte[inp[b,t]] += dout[b,t], dwpe[t] += dout[b,t], in (b, t) order */
int gpt2_cuda_encoder_backward(gpt2_cuda *x, float *dwte, float *dwpe, const float *dout,
                               const int *inp, int B, int T, int C);

/* out (N,C) = (x - mean) * rstd * w + b per row; mean, rstd (N) kept */
int gpt2_cuda_layernorm_forward(gpt2_cuda *x, float *out, float *mean, float *rstd,
                                const float *inp, const float *w, const float *b, int N,
                                int C);
int gpt2_cuda_layernorm_backward(gpt2_cuda *x, float *dinp, float *dw, float *db,
                                 const float *dout, const float *inp, const float *w,
                                 const float *mean, const float *rstd, int N, int C);

/* out (N,OC) = inp (N,C) W^T + bias; W (OC,C); bias (OC) or NULL */
int gpt2_cuda_matmul_forward(gpt2_cuda *x, float *out, const float *inp, const float *w,
                             const float *bias, int N, int C, int OC);
/* dinp += dout W; dW += dout^T inp; dbias (or NULL) += column sums of dout */
int gpt2_cuda_matmul_backward(gpt2_cuda *x, float *dinp, float *dw, float *dbias,
                              const float *dout, const float *inp, const float *w, int N,
                              int C, int OC);

/* Floats of scratch the attention functions need (device memory the caller
 * provides; its contents are not kept between calls). */
size_t gpt2_cuda_attention_scratch(int B, int T, int C);
/* inp (B,T,3C) holds q, k, v; out (B,T,C); preatt, att (B,NH,T,T). Scores
 * scale 1/sqrt(C/NH). Unlike layers.c, preatt is written above the diagonal
 * too (the masked scores; att is 0 there, as on the CPU). */
int gpt2_cuda_attention_forward(gpt2_cuda *x, float *out, float *preatt, float *att,
                                const float *inp, float *scratch, int B, int T, int C,
                                int NH);
/* dinp (B,T,3C) += the gradient of q, k, v. dpreatt, datt (B,NH,T,T) are
 * added into below and on the diagonal, as layers.c does; above it, dpreatt
 * is set to 0 and datt holds the masked products (not meaningful). */
int gpt2_cuda_attention_backward(gpt2_cuda *x, float *dinp, float *dpreatt, float *datt,
                                 const float *dout, const float *inp, const float *att,
                                 float *scratch, int B, int T, int C, int NH);

/* tanh-approximated GELU over n elements; backward adds into dinp */
int gpt2_cuda_gelu_forward(gpt2_cuda *x, float *out, const float *inp, size_t n);
int gpt2_cuda_gelu_backward(gpt2_cuda *x, float *dinp, const float *inp,
                            const float *dout, size_t n);

/* out = a + b; backward adds dout into da and db */
int gpt2_cuda_residual_forward(gpt2_cuda *x, float *out, const float *a, const float *b,
                               size_t n);
int gpt2_cuda_residual_backward(gpt2_cuda *x, float *da, float *db, const float *dout,
                                size_t n);

/* probs (N,Vp) = softmax of the first V logits (padded ones 0); losses (N) =
 * -log probs[target]; targets (N) device ints in 0..V-1 */
int gpt2_cuda_softmax_crossentropy_forward(gpt2_cuda *x, float *probs, float *losses,
                                           const float *logits, const int *targets, int N,
                                           int V, int Vp);
/* dlogits (N,Vp) = (probs - onehot(target)) * scale, padded ones 0 (written,
 * not added, as layers.c does) */
int gpt2_cuda_softmax_crossentropy_backward(gpt2_cuda *x, float *dlogits,
                                            const float *probs, const int *targets,
                                            float scale, int N, int V, int Vp);

/* ---- memory chores of a training step ----------------------------------- */

/* bytes of d_dst = 0 */
int gpt2_cuda_zero(gpt2_cuda *x, void *d_dst, size_t bytes);
/* host -> device; the host buffer may be reused when the call returns */
int gpt2_cuda_upload(gpt2_cuda *x, void *d_dst, const void *host_src, size_t bytes);
/* device -> host after everything queued before it; waits for the copy */
int gpt2_cuda_download(gpt2_cuda *x, void *host_dst, const void *d_src, size_t bytes);
/* d_dst (n f32) = widen(d_src (n bf16 or fp16)), exactly */
int gpt2_cuda_widen(gpt2_cuda *x, float *d_dst, const uint16_t *d_src, size_t n,
                    int is_bf16);
/* d_dst[i] = round(widen(d_dst[i]) + d_src[i]): zrt_accumulate's rule and
 * bits, for adding f32 gradients into zrt's 16-bit buffers */
int gpt2_cuda_accumulate_half(gpt2_cuda *x, uint16_t *d_dst, const float *d_src, size_t n,
                              int is_bf16);

#ifdef __cplusplus
}
#endif

#endif /* ZRT_EXAMPLES_GPT2_LAYERS_CUDA_H */
