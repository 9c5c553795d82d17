/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/block_cache.c — freed blocks kept by size and tier (see the header).
 * A singly linked list, newest first: a step holds tens to hundreds of
 * blocks, so a walk costs less than the allocation it saves.
 */
#include <stdlib.h>

#include "block_cache.h"

struct zrt__cached_block {
    void *ptr;
    size_t bytes;
    zrt_tier tier;
    zrt__cached_block *next;
};

void zrt__block_cache_init(zrt__block_cache *c, zrt__block_release_fn release, void *arg)
{
    *c = (zrt__block_cache){.release = release, .arg = arg};
}

void *zrt__block_cache_take(zrt__block_cache *c, size_t bytes, zrt_tier tier)
{
    for (zrt__cached_block **link = &c->head; *link; link = &(*link)->next) {
        zrt__cached_block *b = *link;
        if (b->bytes != bytes || b->tier != tier)
            continue;
        void *ptr = b->ptr;
        *link = b->next;
        c->bytes[tier] -= (int64_t)bytes;
        free(b);
        return ptr;
    }
    return NULL;
}

void zrt__block_cache_put(zrt__block_cache *c, void *ptr, size_t bytes, zrt_tier tier)
{
    zrt__cached_block *b = malloc(sizeof *b);
    if (!b) {
        c->release(ptr, tier, c->arg);
        return;
    }
    *b = (zrt__cached_block){.ptr = ptr, .bytes = bytes, .tier = tier, .next = c->head};
    c->head = b;
    c->bytes[tier] += (int64_t)bytes;
}

void zrt__block_cache_evict(zrt__block_cache *c, zrt_tier tier, int64_t in_use,
                            int64_t limit)
{
    zrt__cached_block **link = &c->head;
    while (*link && in_use + c->bytes[tier] > limit) {
        zrt__cached_block *b = *link;
        if (b->tier != tier) {
            link = &b->next;
            continue;
        }
        *link = b->next;
        c->bytes[tier] -= (int64_t)b->bytes;
        c->release(b->ptr, tier, c->arg);
        free(b);
    }
}

void zrt__block_cache_fit(zrt__block_cache *c, const zrt_mem_stats *stats, zrt_tier tier)
{
    int64_t limit =
        stats->tier_limit[tier] > 0 ? stats->tier_limit[tier] : stats->tier_peak[tier];
    zrt__block_cache_evict(c, tier, stats->tier_current[tier], limit);
}

void zrt__block_cache_drop(zrt__block_cache *c)
{
    while (c->head) {
        zrt__cached_block *next = c->head->next;
        c->release(c->head->ptr, c->head->tier, c->arg);
        free(c->head);
        c->head = next;
    }
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        c->bytes[t] = 0;
}
