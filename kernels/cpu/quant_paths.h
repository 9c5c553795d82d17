/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels/cpu/quant_paths.h — every path of the quantization kernels
 * (kernels.h) by name, for the test and the benchmark that run them side by
 * side: the scalar reference first, then the run-time dispatch, AVX2 and
 * AVX-512, each with whether this CPU can run it.
 */
#ifndef ZRT_KERNELS_CPU_QUANT_PATHS_H
#define ZRT_KERNELS_CPU_QUANT_PATHS_H

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/kernels_avx2.h"
#include "kernels/cpu/kernels_avx512.h"

typedef size_t zrt_quant8_fn(const float *, size_t, size_t, int8_t *, float *);
typedef void zrt_deq8_fn(const int8_t *, const float *, size_t, size_t, float *);
typedef size_t zrt_quant4_fn(const float *, size_t, size_t, uint8_t *, float *);
typedef void zrt_deq4_fn(const uint8_t *, const float *, size_t, size_t, float *);

typedef struct zrt_quant_path {
    const char *name;
    int (*present)(void); /* 1: this CPU runs it */
    zrt_quant8_fn *quant8;
    zrt_deq8_fn *deq8, *deq_add8;
    zrt_quant4_fn *quant4;
    zrt_deq4_fn *deq4, *deq_add4;
} zrt_quant_path;

static inline int zrt_quant_path_always(void)
{
    return 1;
}

static inline int zrt_quant_path_avx2(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

static inline int zrt_quant_path_avx512(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* zrt_quant_paths[0] is the reference the others are compared with. */
static const zrt_quant_path zrt_quant_paths[] = {
    {"scalar", zrt_quant_path_always, zrt_quantize_i8_scalar, zrt_dequantize_i8_scalar,
     zrt_dequantize_add_i8_scalar, zrt_quantize_i4_scalar, zrt_dequantize_i4_scalar,
     zrt_dequantize_add_i4_scalar},
    {"dispatch", zrt_quant_path_always, zrt_quantize_i8, zrt_dequantize_i8,
     zrt_dequantize_add_i8, zrt_quantize_i4, zrt_dequantize_i4, zrt_dequantize_add_i4},
    {"AVX2", zrt_quant_path_avx2, zrt__quantize_i8_avx2, zrt__dequantize_i8_avx2,
     zrt__dequantize_add_i8_avx2, zrt__quantize_i4_avx2, zrt__dequantize_i4_avx2,
     zrt__dequantize_add_i4_avx2},
    {"AVX-512", zrt_quant_path_avx512, zrt__quantize_i8_avx512, zrt__dequantize_i8_avx512,
     zrt__dequantize_add_i8_avx512, zrt__quantize_i4_avx512, zrt__dequantize_i4_avx512,
     zrt__dequantize_add_i4_avx512},
};
enum { ZRT_QUANT_PATHS = sizeof zrt_quant_paths / sizeof zrt_quant_paths[0] };

#endif
