/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels/cuda/kernels_cuda.h — the kernels of kernels/cpu/kernels.h on
 * device memory, launched on a CUDA stream.
 *
 * Like kernels/cpu, this is a leaf: pure functions over arrays, no context,
 * no allocation, no error state. The CUDA backend binds them into its kernel
 * table. The header names no CUDA type: a stream is passed as the
 * `struct CUstream_st *` that cudaStream_t is a typedef of (NULL = the legacy
 * default stream), so C code can include it without the CUDA headers.
 *
 * Contracts shared by every function:
 *   - every pointer argument named d_* is device memory (or managed memory)
 *     the device can read and write; scalars (`s`, `alpha`, ...) are host
 *     values read before the call returns;
 *   - the work is enqueued on `stream` and the call returns without waiting:
 *     the results are there once the stream has reached that point;
 *   - the return value is 0 (cudaSuccess) or the cudaError_t of the launch,
 *     as an int; an invalid zrt_half gives cudaErrorInvalidValue (1). A
 *     fault inside a kernel shows up later, at the next synchronising call,
 *     as CUDA's errors always do. Nothing here exits or aborts;
 *   - n == 0 launches nothing (the reductions still write their result).
 *
 * Numerics: the same bits as kernels/cpu's scalar references (the *_scalar
 * functions), element for element. The f32 arithmetic uses only correctly
 * rounded intrinsics (__fmul_rn, __fadd_rn, __fsub_rn, __fdiv_rn,
 * __fsqrt_rn) in the CPU's order, so nvcc cannot contract a multiply-add
 * into an FMA, and the file is built with -fmad=false -ftz=false
 * -prec-div=true -prec-sqrt=true besides. The 16-bit conversions are
 * kernels/cpu's integer code, line for line. Two exceptions, both
 * documented in docs/cuda.md:
 *   - NaN payloads: when arithmetic (not a cast) produces a NaN from a NaN
 *     input, the GPU returns the canonical NaN 0x7fffffff where x86 keeps the
 *     input's payload. The result is NaN on both; the payload bits differ;
 *   - the squared norms are reductions in another order: they agree with the
 *     CPU to rounding (the test allows a relative 1e-6; in practice it is
 *     ~1e-15). They are deterministic: the order depends on n only, not on
 *     the device, the timing or the run.
 * The quantization kernels (last section) have neither exception: their
 * absmax is a max (exact in any order), and where a NaN can arise they
 * produce x86's NaN bits explicitly, so they give the CPU's bytes and bits
 * everywhere, NaN payloads included.
 */
#ifndef ZRT_KERNELS_CUDA_KERNELS_CUDA_H
#define ZRT_KERNELS_CUDA_KERNELS_CUDA_H

#include "kernels/cpu/kernels.h" /* zrt_half, zrt_adamw_scalars */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct CUstream_st; /* cudaStream_t == struct CUstream_st * */

/* The squared norms need scratch: d_out points to ZRT_CUDA_SQNORM_SLOTS
 * doubles of device memory, and the sum lands in d_out[0] (the other slots
 * hold per-block partial sums and are overwritten). */
#define ZRT_CUDA_SQNORM_BLOCKS 256
#define ZRT_CUDA_SQNORM_SLOTS  (1 + ZRT_CUDA_SQNORM_BLOCKS)

/* ---- f32 ---------------------------------------------------------------- */

/* d_x[i] = value */
int zrt_cuda_fill_f32(float *d_x, size_t n, float value, struct CUstream_st *stream);

/* d_x[i] *= alpha */
int zrt_cuda_scale_f32(float *d_x, size_t n, float alpha, struct CUstream_st *stream);

/* d_dst[i] = d_dst[i] + d_src[i]; d_dst may equal d_src. The bits of
 * zrt_sum_ordered_f32_scalar with the two sources {dst, src}, divisor 1. */
int zrt_cuda_add_f32(float *d_dst, const float *d_src, size_t n,
                     struct CUstream_st *stream);

/* d_out[0] = sum of d_x[i]^2, accumulated in double (see the slots above) */
int zrt_cuda_sqnorm_f32(const float *d_x, size_t n, double *d_out,
                        struct CUstream_st *stream);

/* *d_out = 1 when no d_x[i] is inf or NaN (n == 0 included), else 0 */
int zrt_cuda_all_finite_f32(const float *d_x, size_t n, int *d_out,
                            struct CUstream_st *stream);

/* AdamW, zrt_adamw_f32's update operation for operation; p, m, v in place,
 * g read. `s` comes from zrt_adamw_scalars_make (host memory). */
int zrt_cuda_adamw_f32(float *d_p, const float *d_g, float *d_m, float *d_v, size_t n,
                       const zrt_adamw_scalars *s, struct CUstream_st *stream);

/* The same with the new parameters written to d_p_out (d_p only read);
 * d_p_out may equal d_p or d_g. */
int zrt_cuda_adamw_f32_out(const float *d_p, float *d_p_out, const float *d_g, float *d_m,
                           float *d_v, size_t n, const zrt_adamw_scalars *s,
                           struct CUstream_st *stream);

/* ---- 16-bit storage, f32 arithmetic (kernels.h's rounding rules) --------- */

/* d_dst[i] = round(d_src[i]); no overlap */
int zrt_cuda_cast_f32_to_half(uint16_t *d_dst, const float *d_src, size_t n, zrt_half h,
                              struct CUstream_st *stream);

/* d_dst[i] = widen(d_src[i]), exact; no overlap */
int zrt_cuda_cast_half_to_f32(float *d_dst, const uint16_t *d_src, size_t n, zrt_half h,
                              struct CUstream_st *stream);

/* d_dst[i] = round(widen(d_dst[i]) + widen(d_src[i])); d_dst may equal d_src */
int zrt_cuda_add_half(uint16_t *d_dst, const uint16_t *d_src, size_t n, zrt_half h,
                      struct CUstream_st *stream);

/* d_x[i] = round(widen(d_x[i]) * alpha) */
int zrt_cuda_scale_half(uint16_t *d_x, size_t n, float alpha, zrt_half h,
                        struct CUstream_st *stream);

/* d_out[0] = sum of widen(d_x[i])^2 in double (see the slots above) */
int zrt_cuda_sqnorm_half(const uint16_t *d_x, size_t n, zrt_half h, double *d_out,
                         struct CUstream_st *stream);

/* *d_out = 1 when no d_x[i] is inf or NaN (n == 0 included), else 0: the
 * overflow check of fp16 loss scaling */
int zrt_cuda_all_finite_half(const uint16_t *d_x, size_t n, zrt_half h, int *d_out,
                             struct CUstream_st *stream);

/* Mixed-precision AdamW in one pass (zrt_adamw_mixed's contract):
 *   g32 = widen(d_g[i]) * grad_scale; AdamW on d_master, d_m, d_v with g32;
 *   d_p_out[i] = round(d_master[i]).
 * d_p_out may equal d_g. */
int zrt_cuda_adamw_mixed(float *d_master, uint16_t *d_p_out, const uint16_t *d_g,
                         float *d_m, float *d_v, size_t n, float grad_scale,
                         const zrt_adamw_scalars *s, zrt_half h,
                         struct CUstream_st *stream);

/* The same with f32 gradients: g32 = d_g[i] * grad_scale. */
int zrt_cuda_adamw_mixed_f32grad(float *d_master, uint16_t *d_p_out, const float *d_g,
                                 float *d_m, float *d_v, size_t n, float grad_scale,
                                 const zrt_adamw_scalars *s, zrt_half h,
                                 struct CUstream_st *stream);

/* ---- blockwise quantization (kernels.h's zrt_quantize_*; docs/compression.md) -
 *
 * The format of kernels/cpu, byte for byte: the n elements in blocks of
 * `block` (the last may be shorter), one f32 scale a block; int8 q in
 * [-127, 127], int4 q in [-7, 7] two a byte (element 2k in the low nibble,
 * 2k+1 in the high one; an odd n leaves the last high nibble 0). A block
 * holding an inf or NaN gets scale NaN (0x7fc00000) and q 0, and
 * dequantizes to that NaN in every element (dequantize_add too, whatever
 * d_x held); a block whose absmax is 0 or below qmax / FLT_MAX gets scale 0
 * and q 0. The launch: a warp per quantization block below 2048 elements, a
 * thread block of 256 from there up.
 * d_q has n bytes (int8) or (n + 1) / 2 (int4); d_scale has
 * (n + block - 1) / block floats.
 *
 * block == 0, or an odd block for int4, is refused with
 * cudaErrorInvalidValue (1) before anything is enqueued or written.
 *
 * d_nonfinite (device memory, may be NULL): set to the number of blocks that
 * held an inf or NaN (the count zrt_quantize_* returns on the CPU), so the
 * caller may refuse the result. It is set, not added to: 0 when n == 0. */

/* int8: d_q (n bytes), d_scale */
int zrt_cuda_quantize_i8(const float *d_x, size_t n, size_t block, int8_t *d_q,
                         float *d_scale, size_t *d_nonfinite, struct CUstream_st *stream);

/* d_x[i] = (float)d_q[i] * d_scale[i / block] */
int zrt_cuda_dequantize_i8(const int8_t *d_q, const float *d_scale, size_t n,
                           size_t block, float *d_x, struct CUstream_st *stream);

/* d_x[i] = d_x[i] + (float)d_q[i] * d_scale[i / block]: two roundings, no
 * FMA (one rank's contribution to the receiver's ordered sum) */
int zrt_cuda_dequantize_add_i8(const int8_t *d_q, const float *d_scale, size_t n,
                               size_t block, float *d_x, struct CUstream_st *stream);

/* int4, block even: d_q ((n + 1) / 2 bytes), d_scale */
int zrt_cuda_quantize_i4(const float *d_x, size_t n, size_t block, uint8_t *d_q,
                         float *d_scale, size_t *d_nonfinite, struct CUstream_st *stream);

int zrt_cuda_dequantize_i4(const uint8_t *d_q, const float *d_scale, size_t n,
                           size_t block, float *d_x, struct CUstream_st *stream);

int zrt_cuda_dequantize_add_i4(const uint8_t *d_q, const float *d_scale, size_t n,
                               size_t block, float *d_x, struct CUstream_st *stream);

#ifdef __cplusplus
}
#endif

#endif /* ZRT_KERNELS_CUDA_KERNELS_CUDA_H */
