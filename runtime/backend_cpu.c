/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/backend_cpu.c — the cpu backend: host memory plays the device.
 *
 * Device and host tiers are both malloc'd host memory, 64-byte aligned; the
 * memory account enforces the configured device capacity, so a machine
 * without a GPU shows exactly what would and would not fit. Copies and
 * kernels run synchronously on the calling thread.
 *
 * Freed blocks are kept for reuse by an allocation of the same size and tier
 * (runtime/block_cache.c):
 * a training step allocates the same buffers every time (gradient buckets,
 * gathered layers, reduction scratch), and fresh pages cost a page fault and
 * a kernel zeroing each. The account counts blocks in use; cached blocks are
 * evicted whenever in-use plus cached bytes would pass the tier's limit, or,
 * without a limit, the tier's peak in use: what the process really holds
 * never exceeds the capacity, nor the peak the memory report shows.
 *
 * Pinning (pin_memory) mlocks a host-tier block. Locks do not nest per page,
 * so host-tier blocks are page-aligned and a whole number of pages: no two
 * blocks share a page, and munlocking one never unlocks another. A pinned
 * block is unlocked when freed, before it enters the cache: cached blocks are
 * never locked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "backend.h"
#include "block_cache.h"

enum { CPU_ALIGNMENT = 64 };

typedef struct cpu_impl {
    zrt__block_cache cache;
    size_t page_size;
    size_t pinned_bytes; /* sum of the pinned buffers' sizes as asked */
} cpu_impl;

/* The alignment of a tier's blocks: a page on the host tier (see above). */
static size_t block_alignment(const cpu_impl *impl, zrt_tier tier)
{
    return tier == ZRT_TIER_HOST ? impl->page_size : CPU_ALIGNMENT;
}

/* The bytes a tier's block of `bytes` really takes: a multiple of its
 * alignment, as aligned_alloc requires. */
static size_t block_size(const cpu_impl *impl, size_t bytes, zrt_tier tier)
{
    size_t align = block_alignment(impl, tier);
    return (bytes + align - 1) / align * align;
}

static void release_block(void *ptr, zrt_tier tier, void *arg)
{
    (void)tier;
    (void)arg;
    free(ptr);
}

/* Both tiers are host memory here, the host tier's page-aligned (see above). */
static zrt_status cpu_block(zrt__backend *be, size_t bytes, zrt_tier tier,
                            zrt_category cat, const char *what, void **out)
{
    cpu_impl *impl = be->impl;
    return zrt__host_block(be, &impl->cache, bytes, block_alignment(impl, tier), tier,
                           cat, what, out);
}

static zrt_status cpu_alloc(zrt__backend *be, size_t bytes, zrt_tier tier,
                            zrt_category cat, const char *what, zrt__buf *out)
{
    if (tier == ZRT_TIER_NVME)
        return zrt__fail(be->err, ZRT_ERR_INVALID_ARG,
                         "the cpu backend cannot allocate in the nvme tier");
    return zrt__backend_alloc(be, bytes, tier, cat, what, cpu_block, out);
}

static void cpu_free(zrt__backend *be, zrt__buf *buf)
{
    if (!buf || (!buf->ptr && buf->bytes == 0))
        return;
    cpu_impl *impl = be->impl;
    size_t rounded = block_size(impl, buf->bytes, buf->tier);
    if (buf->pinned) {
        munlock(buf->ptr, rounded); /* cannot fail on a locked range */
        impl->pinned_bytes -= buf->bytes;
    }
    zrt__mem_release(be->acct, buf->tier, buf->cat, (int64_t)buf->bytes);
    if (buf->ptr) {
        zrt__block_cache_put(&impl->cache, buf->ptr, rounded, buf->tier);
        zrt__block_cache_fit(&impl->cache, &be->acct->stats, buf->tier);
    }
    memset(buf, 0, sizeof *buf); /* padding too: callers may memcmp */
}

/* "unlimited" or "64.00 KiB (65536 bytes)": the soft RLIMIT_MEMLOCK. */
static const char *memlock_limit_text(char *buf, size_t size)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        snprintf(buf, size, "unknown");
    else if (rl.rlim_cur == RLIM_INFINITY)
        snprintf(buf, size, "unlimited");
    else
        zrt__fmt_bytes((long long)rl.rlim_cur, buf, size);
    return buf;
}

static zrt_status pin_failed(zrt__backend *be, const zrt__buf *buf, int err)
{
    const cpu_impl *impl = be->impl;
    char size[64], held[64], limit[64], why[128];
    return zrt__fail(
        be->err,
        err == ENOMEM || err == EPERM || err == EAGAIN ? ZRT_ERR_OUT_OF_MEMORY
                                                       : ZRT_ERR_INTERNAL,
        "cannot pin the %s-tier '%s' buffer of %s: mlock: %s "
        "(RLIMIT_MEMLOCK soft limit %s; this backend already "
        "pins %s); raise `ulimit -l` or set pin_memory to false",
        zrt_tier_str(buf->tier), zrt_category_str(buf->cat),
        zrt__fmt_bytes((long long)buf->bytes, size, sizeof size),
        zrt__errno_text(err, why, sizeof why), memlock_limit_text(limit, sizeof limit),
        zrt__fmt_bytes((long long)impl->pinned_bytes, held, sizeof held));
}

static zrt_status cpu_pin(zrt__backend *be, zrt__buf *buf)
{
    ZRT_CHECK(zrt__pin_check(be, buf));
    if (buf->pinned || !buf->ptr)
        return ZRT_OK;
    cpu_impl *impl = be->impl;
    if (mlock(buf->ptr, block_size(impl, buf->bytes, buf->tier)) != 0)
        return pin_failed(be, buf, errno);
    buf->pinned = 1;
    impl->pinned_bytes += buf->bytes;
    return ZRT_OK;
}

static zrt_status cpu_copy(zrt__backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes)
        memmove(dst, src, bytes);
    return ZRT_OK;
}

static zrt_status cpu_fill_f32(zrt__backend *be, float *x, size_t n, float value)
{
    (void)be;
    zrt_fill_f32(x, n, value);
    return ZRT_OK;
}

static zrt_status cpu_scale_f32(zrt__backend *be, float *x, size_t n, float alpha)
{
    (void)be;
    zrt_scale_f32(x, n, alpha);
    return ZRT_OK;
}

static zrt_status cpu_add_f32(zrt__backend *be, float *dst, const float *src, size_t n)
{
    (void)be;
    const float *srcs[2] = {dst, src};
    zrt_sum_ordered_f32(dst, srcs, 2, n, 1.0f);
    return ZRT_OK;
}

static zrt_status cpu_sqnorm_f32(zrt__backend *be, const float *x, size_t n, double *out)
{
    (void)be;
    *out = zrt_sqnorm_f32(x, n);
    return ZRT_OK;
}

static zrt_status cpu_quantize_i8(zrt__backend *be, const float *x, size_t n,
                                  size_t block, int8_t *q, float *scale,
                                  size_t *nonfinite)
{
    (void)be;
    *nonfinite = zrt_quantize_i8(x, n, block, q, scale);
    return ZRT_OK;
}

static zrt_status cpu_dequantize_i8(zrt__backend *be, const int8_t *q, const float *scale,
                                    size_t n, size_t block, float *x)
{
    (void)be;
    zrt_dequantize_i8(q, scale, n, block, x);
    return ZRT_OK;
}

static zrt_status cpu_topk_take_f32(zrt__backend *be, float *a, size_t n, size_t k,
                                    uint32_t *idx, float *val, size_t *taken)
{
    (void)be;
    *taken = zrt_topk_select_f32(a, n, k, idx, val);
    for (size_t i = 0; i < *taken; i++)
        a[idx[i]] = 0.0f;
    return ZRT_OK;
}

static zrt_status cpu_topk_sum_f32(zrt__backend *be, float *out, size_t n,
                                   const float *lists, int nlists, size_t k,
                                   float divisor)
{
    zrt_fill_f32(out, n, 0.0f);
    for (int r = 0; r < nlists; r++) {
        const float *list = lists + 2 * k * (size_t)r;
        const uint32_t *idx = (const uint32_t *)(const void *)list;
        /* the indices came over the wire: one past the buffer is refused,
         * not written */
        for (size_t i = 0; i < k; i++)
            if (idx[i] >= n)
                return zrt__fail(
                    be->err, ZRT_ERR_REMOTE,
                    "top-k: rank %d sent index %u for a layer of %zu elements", r, idx[i],
                    n);
        zrt_scatter_add_f32(out, idx, list + k, k);
    }
    for (size_t i = 0; divisor != 1.0f && i < n; i++)
        out[i] /= divisor;
    return ZRT_OK;
}

/* One AdamW update split across the helper threads: element-wise, so any
 * split gives the same bits. */
typedef struct adamw_job {
    const float *p, *g;
    float *p_out, *m, *v;
    const zrt_adamw_scalars *s;
} adamw_job;

enum { SPLIT_MIN_ELEMENTS = 1 << 16, SPLIT_ALIGN = 16 };

/* Worker `worker`'s part [*lo, *hi) of n elements: equal shares rounded up to
 * SPLIT_ALIGN, so every part but the last starts on a vector boundary and the
 * shares together cover all n (the share is ceil(n / nworkers), rounded up). */
static void split_range(size_t n, int worker, int nworkers, size_t *lo, size_t *hi)
{
    size_t share = (n + (size_t)nworkers - 1) / (size_t)nworkers;
    size_t per = (share + SPLIT_ALIGN - 1) / SPLIT_ALIGN * SPLIT_ALIGN;
    *lo = per * (size_t)worker < n ? per * (size_t)worker : n;
    *hi = *lo + per < n ? *lo + per : n;
}

/* Runs fn over [0, n) in parts, one per helper thread when n pays for
 * them, else over all of it on this thread. */
typedef void (*range_fn)(const void *job, size_t lo, size_t hi);

typedef struct split_task {
    range_fn fn;
    const void *job;
    size_t n;
} split_task;

static void split_part(void *arg, int worker, int nworkers)
{
    const split_task *t = arg;
    size_t lo, hi;
    split_range(t->n, worker, nworkers, &lo, &hi);
    if (lo < hi)
        t->fn(t->job, lo, hi);
}

static void run_split(zrt__backend *be, size_t n, range_fn fn, const void *job)
{
    split_task task = {.fn = fn, .job = job, .n = n};
    if (be->pool && n >= SPLIT_MIN_ELEMENTS)
        zrt__pool_run(be->pool, split_part, &task);
    else
        split_part(&task, 0, 1);
}

static void adamw_range(const void *arg, size_t lo, size_t hi)
{
    const adamw_job *j = arg;
    zrt_adamw_f32_out(j->p + lo, j->p_out + lo, j->g + lo, j->m + lo, j->v + lo, hi - lo,
                      j->s);
}

static zrt_status cpu_adamw_f32(zrt__backend *be, const float *p, float *p_out,
                                const float *g, float *m, float *v, size_t n,
                                const zrt_adamw_scalars *s)
{
    adamw_job job = {.p = p, .p_out = p_out, .g = g, .m = m, .v = v, .s = s};
    run_split(be, n, adamw_range, &job);
    return ZRT_OK;
}

/* The element-wise 16-bit ops, split across the helper threads like AdamW
 * (element-wise, so any split gives the same bits). */
typedef enum half_op { HALF_ADD, HALF_FROM_F32, HALF_TO_F32 } half_op;

typedef struct half_job {
    half_op op;
    void *dst;
    const void *src;
    zrt_half h;
} half_job;

static void half_range(const void *arg, size_t lo, size_t hi)
{
    const half_job *j = arg;
    uint16_t *dst16 = (uint16_t *)j->dst + lo;
    const uint16_t *src16 = (const uint16_t *)j->src + lo;
    switch (j->op) {
    case HALF_ADD:
        zrt_add_half(dst16, src16, hi - lo, j->h);
        break;
    case HALF_FROM_F32:
        zrt_cast_f32_to_half(dst16, (const float *)j->src + lo, hi - lo, j->h);
        break;
    case HALF_TO_F32:
        zrt_cast_half_to_f32((float *)j->dst + lo, src16, hi - lo, j->h);
        break;
    }
}

static zrt_status run_half(zrt__backend *be, half_op op, void *dst, const void *src,
                           size_t n, zrt_half h)
{
    half_job job = {.op = op, .dst = dst, .src = src, .h = h};
    run_split(be, n, half_range, &job);
    return ZRT_OK;
}

static zrt_status cpu_add_half(zrt__backend *be, uint16_t *dst, const uint16_t *src,
                               size_t n, zrt_half h)
{
    return run_half(be, HALF_ADD, dst, src, n, h);
}

static zrt_status cpu_cast_f32_to_half(zrt__backend *be, uint16_t *dst, const float *src,
                                       size_t n, zrt_half h)
{
    return run_half(be, HALF_FROM_F32, dst, src, n, h);
}

static zrt_status cpu_cast_half_to_f32(zrt__backend *be, float *dst, const uint16_t *src,
                                       size_t n, zrt_half h)
{
    return run_half(be, HALF_TO_F32, dst, src, n, h);
}

static zrt_status cpu_sqnorm_half(zrt__backend *be, const uint16_t *x, size_t n,
                                  zrt_half h, double *out)
{
    (void)be;
    *out = zrt_sqnorm_half(x, n, h);
    return ZRT_OK;
}

typedef struct adamw_mixed_job {
    float *master, *m, *v;
    uint16_t *p_out;
    const uint16_t *g;
    float grad_scale;
    const zrt_adamw_scalars *s;
    zrt_half h;
} adamw_mixed_job;

static void adamw_mixed_range(const void *arg, size_t lo, size_t hi)
{
    const adamw_mixed_job *j = arg;
    zrt_adamw_mixed(j->master + lo, j->p_out + lo, j->g + lo, j->m + lo, j->v + lo,
                    hi - lo, j->grad_scale, j->s, j->h);
}

static zrt_status cpu_adamw_mixed(zrt__backend *be, float *master, uint16_t *p_out,
                                  const uint16_t *g, float *m, float *v, size_t n,
                                  float grad_scale, const zrt_adamw_scalars *s,
                                  zrt_half h)
{
    adamw_mixed_job job = {.master = master,
                           .m = m,
                           .v = v,
                           .p_out = p_out,
                           .g = g,
                           .grad_scale = grad_scale,
                           .s = s,
                           .h = h};
    run_split(be, n, adamw_mixed_range, &job);
    return ZRT_OK;
}

static void cpu_destroy(zrt__backend *be)
{
    cpu_impl *impl = be->impl;
    zrt__block_cache_drop(&impl->cache);
    zrt__backend_delete(be);
}

static const zrt__backend_ops cpu_ops = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .pin = cpu_pin,
    .copy = cpu_copy,
    .fill_f32 = cpu_fill_f32,
    .scale_f32 = cpu_scale_f32,
    .add_f32 = cpu_add_f32,
    .sqnorm_f32 = cpu_sqnorm_f32,
    .adamw_f32 = cpu_adamw_f32,
    .add_half = cpu_add_half,
    .sqnorm_half = cpu_sqnorm_half,
    .cast_f32_to_half = cpu_cast_f32_to_half,
    .cast_half_to_f32 = cpu_cast_half_to_f32,
    .adamw_mixed = cpu_adamw_mixed,
    .quantize_i8 = cpu_quantize_i8,
    .dequantize_i8 = cpu_dequantize_i8,
    .topk_take_f32 = cpu_topk_take_f32,
    .topk_sum_f32 = cpu_topk_sum_f32,
    /* synchronize, on_device: not needed, everything runs on the host */
    .destroy = cpu_destroy,
};

zrt_status zrt__backend_cpu_create(zrt__mem_account *acct, zrt__errbuf *err,
                                   zrt__pool *pool, zrt__backend **out)
{
    zrt__backend *be;
    ZRT_CHECK(zrt__backend_new(&cpu_ops, sizeof(cpu_impl), acct, err, pool, &be));
    cpu_impl *impl = be->impl;
    impl->page_size = zrt__page_size();
    zrt__block_cache_init(&impl->cache, release_block, NULL);
    be->caps =
        (zrt__backend_caps){.device_is_host = 1, .device_ordinal = -1, .device_count = 0};
    *out = be;
    return ZRT_OK;
}

size_t zrt__backend_cpu_pinned_bytes(const zrt__backend *be)
{
    if (!be || be->ops != &cpu_ops)
        return 0;
    const cpu_impl *impl = be->impl;
    return impl->pinned_bytes;
}
