/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/block_cache.h — freed blocks kept for an allocation of the same size
 * and tier, shared by the backends.
 *
 * A training step allocates the same buffers every time (gradient buckets,
 * gathered layers, reduction scratch); fresh host pages cost a page fault and
 * a kernel zeroing each, and cudaMalloc/cudaFree synchronise the device. So a
 * backend puts a freed block here and takes it back for the next allocation
 * of exactly that size and tier. Eviction keeps what the process holds within
 * the rule the backend states (zrt__block_cache_fit: the tier's limit, or its
 * peak in use). The cache owns the blocks it holds and gives them back with
 * the release function it was made with.
 */
#ifndef ZRT_RUNTIME_BLOCK_CACHE_H
#define ZRT_RUNTIME_BLOCK_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "zrt/zrt.h"

/* Returns a block to the system (free, cudaFree); arg is the cache's. */
typedef void (*zrt__block_release_fn)(void *ptr, zrt_tier tier, void *arg);

typedef struct zrt__cached_block zrt__cached_block;

typedef struct zrt__block_cache {
    zrt__cached_block *head;
    int64_t bytes[ZRT_TIER_COUNT]; /* held per tier */
    zrt__block_release_fn release;
    void *arg;
} zrt__block_cache;

void zrt__block_cache_init(zrt__block_cache *c, zrt__block_release_fn release, void *arg);
/* A cached block of exactly `bytes` in `tier`, now the caller's; NULL if none. */
void *zrt__block_cache_take(zrt__block_cache *c, size_t bytes, zrt_tier tier);
/* Keeps the block (or releases it when the bookkeeping cannot be allocated). */
void zrt__block_cache_put(zrt__block_cache *c, void *ptr, size_t bytes, zrt_tier tier);
/* Releases blocks of the tier, newest first, while in_use plus cached passes
 * limit. */
void zrt__block_cache_evict(zrt__block_cache *c, zrt_tier tier, int64_t in_use,
                            int64_t limit);
/* The backends' rule: in use plus cached never passes the tier's limit, or
 * without one the tier's peak in use, so the process never holds more than
 * the budget or the peak a memory report shows. */
void zrt__block_cache_fit(zrt__block_cache *c, const zrt_mem_stats *stats, zrt_tier tier);
/* Releases everything. */
void zrt__block_cache_drop(zrt__block_cache *c);

#endif /* ZRT_RUNTIME_BLOCK_CACHE_H */
