/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/backend.c — what the backends share: creating the backend object,
 * the frame of alloc, host-memory blocks through the block cache, and pin's
 * refusals.
 *
 * The cpu backend's blocks (both tiers) and the cuda backend's host-tier
 * blocks are the same thing: aligned host memory, zeroed, kept on free for
 * the next allocation of the same size and tier (block_cache.h).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

zrt_status zrt__backend_new(const zrt__backend_ops *ops, size_t impl_bytes,
                            zrt__mem_account *acct, zrt__errbuf *err, zrt__pool *pool,
                            zrt__backend **out)
{
    zrt__backend *be = calloc(1, sizeof *be);
    void *impl = calloc(1, impl_bytes);
    if (!be || !impl) {
        free(be);
        free(impl);
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY, "cannot allocate the %s backend",
                         ops->name);
    }
    *be =
        (zrt__backend){.ops = ops, .acct = acct, .err = err, .pool = pool, .impl = impl};
    *out = be;
    return ZRT_OK;
}

void zrt__backend_delete(zrt__backend *be)
{
    free(be->impl);
    free(be);
}

size_t zrt__page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (size_t)page : 4096;
}

zrt_status zrt__backend_alloc(zrt__backend *be, size_t bytes, zrt_tier tier,
                              zrt_category cat, const char *what, zrt__block_fn block,
                              zrt__buf *out)
{
    ZRT_CHECK(zrt__mem_charge(be->acct, be->err, tier, cat, (int64_t)bytes, what));
    void *ptr = NULL;
    zrt_status st = bytes > 0 ? block(be, bytes, tier, cat, what, &ptr) : ZRT_OK;
    if (st != ZRT_OK) {
        zrt__mem_release(be->acct, tier, cat, (int64_t)bytes);
        return st;
    }
    *out = (zrt__buf){.ptr = ptr, .bytes = bytes, .tier = tier, .cat = cat};
    return ZRT_OK;
}

zrt_status zrt__host_block(zrt__backend *be, zrt__block_cache *cache, size_t bytes,
                           size_t align, zrt_tier tier, zrt_category cat,
                           const char *what, void **out)
{
    size_t rounded = (bytes + align - 1) / align * align;
    void *ptr = zrt__block_cache_take(cache, rounded, tier);
    if (!ptr) {
        zrt__block_cache_fit(cache, &be->acct->stats, tier);
        ptr = aligned_alloc(align, rounded);
    }
    if (!ptr) {
        char asked[64];
        return zrt__fail(be->err, ZRT_ERR_OUT_OF_MEMORY,
                         "host allocation of %s for '%s'%s%s failed",
                         zrt__fmt_bytes((long long)bytes, asked, sizeof asked),
                         zrt_category_str(cat), what ? " " : "", what ? what : "");
    }
    memset(ptr, 0, rounded);
    *out = ptr;
    return ZRT_OK;
}

zrt_status zrt__pin_check(zrt__backend *be, const zrt__buf *buf)
{
    if (!buf)
        return zrt__fail(be->err, ZRT_ERR_INVALID_ARG, "pin: buf is NULL");
    if (buf->tier != ZRT_TIER_HOST) {
        char size[64];
        return zrt__fail(be->err, ZRT_ERR_INVALID_ARG,
                         "cannot pin the %s-tier '%s' buffer of %s: only "
                         "host-tier buffers are page-locked",
                         zrt_tier_str(buf->tier), zrt_category_str(buf->cat),
                         zrt__fmt_bytes((long long)buf->bytes, size, sizeof size));
    }
    return ZRT_OK;
}
