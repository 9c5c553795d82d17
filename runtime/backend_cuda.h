/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/backend_cuda.h — what the cuda backend tells its tests.
 *
 * The backend itself is created through runtime/backend.h
 * (zrt__backend_cuda_create); this header only exposes counters that show
 * whether the device arenas do their job: after the first training step, no
 * allocation should reach cudaMalloc.
 */
#ifndef ZRT_RUNTIME_BACKEND_CUDA_H
#define ZRT_RUNTIME_BACKEND_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

typedef struct zrt__cuda_stats {
    size_t arena_bytes;        /* device memory the category arenas hold */
    size_t arena_used_bytes;   /* of which in blocks handed out (rounded) */
    uint64_t arena_allocs;     /* device allocations an arena served */
    uint64_t fallback_mallocs; /* cudaMalloc calls for blocks outside an arena */
    uint64_t fallback_reuses;  /* device allocations the exact-size cache served */
    size_t bounce_bytes;       /* the pinned bounce buffer; 0 until a mixed op */
} zrt__cuda_stats;

/* Fills *out and returns 0; returns -1, *out untouched, when be is not a
 * cuda backend. */
int zrt__backend_cuda_stats(const zrt__backend *be, zrt__cuda_stats *out);

#endif /* ZRT_RUNTIME_BACKEND_CUDA_H */
