/*
 * runtime/backend_cpu.c — the cpu backend: host memory plays the device.
 *
 * Device and host tiers are both malloc'd host memory, 64-byte aligned; the
 * memory account enforces the configured device capacity, so a machine
 * without a GPU shows exactly what would and would not fit. Copies and
 * kernels run synchronously on the calling thread.
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"

enum { CPU_ALIGNMENT = 64 };

static zrt_status cpu_alloc(zrt__backend *be, size_t bytes, zrt_tier tier,
                            zrt_category cat, const char *what, zrt__buf *out)
{
    if (tier == ZRT_TIER_NVME)
        return zrt__fail(be->err, ZRT_ERR_INVALID_ARG,
                         "the cpu backend cannot allocate in the nvme tier");
    ZRT_CHECK(zrt__mem_charge(be->acct, be->err, tier, cat, (int64_t)bytes, what));
    size_t rounded = (bytes + CPU_ALIGNMENT - 1) / CPU_ALIGNMENT * CPU_ALIGNMENT;
    void *ptr = rounded ? aligned_alloc(CPU_ALIGNMENT, rounded) : NULL;
    if (rounded && !ptr) {
        zrt__mem_release(be->acct, tier, cat, (int64_t)bytes);
        char asked[64];
        return zrt__fail(be->err, ZRT_ERR_OUT_OF_MEMORY,
                         "host allocation of %s for '%s'%s%s failed",
                         zrt__fmt_bytes((long long)bytes, asked, sizeof asked),
                         zrt_category_str(cat), what ? " " : "", what ? what : "");
    }
    if (ptr)
        memset(ptr, 0, rounded);
    *out = (zrt__buf){.ptr = ptr, .bytes = bytes, .tier = tier, .cat = cat};
    return ZRT_OK;
}

static void cpu_free(zrt__backend *be, zrt__buf *buf)
{
    if (!buf || (!buf->ptr && buf->bytes == 0))
        return;
    free(buf->ptr);
    zrt__mem_release(be->acct, buf->tier, buf->cat, (int64_t)buf->bytes);
    *buf = (zrt__buf){0};
}

static zrt_status cpu_copy(zrt__backend *be, void *dst, const void *src,
                           size_t bytes)
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

static zrt_status cpu_add_f32(zrt__backend *be, float *dst, const float *src,
                              size_t n)
{
    (void)be;
    const float *srcs[2] = {dst, src};
    zrt_sum_ordered_f32(dst, srcs, 2, n, 1.0f);
    return ZRT_OK;
}

static zrt_status cpu_sqnorm_f32(zrt__backend *be, const float *x, size_t n,
                                 double *out)
{
    (void)be;
    *out = zrt_sqnorm_f32(x, n);
    return ZRT_OK;
}

static zrt_status cpu_adamw_f32(zrt__backend *be, float *p, const float *g,
                                float *m, float *v, size_t n,
                                const zrt_adamw_scalars *s)
{
    (void)be;
    zrt_adamw_f32(p, g, m, v, n, s);
    return ZRT_OK;
}

static zrt_status cpu_synchronize(zrt__backend *be)
{
    (void)be;
    return ZRT_OK;
}

static void cpu_destroy(zrt__backend *be)
{
    free(be);
}

static const zrt__backend_ops cpu_ops = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy = cpu_copy,
    .fill_f32 = cpu_fill_f32,
    .scale_f32 = cpu_scale_f32,
    .add_f32 = cpu_add_f32,
    .sqnorm_f32 = cpu_sqnorm_f32,
    .adamw_f32 = cpu_adamw_f32,
    .synchronize = cpu_synchronize,
    .destroy = cpu_destroy,
};

zrt_status zrt__backend_cpu_create(zrt__mem_account *acct, zrt__errbuf *err,
                                   zrt__backend **out)
{
    zrt__backend *be = calloc(1, sizeof *be);
    if (!be)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot allocate the cpu backend");
    be->ops = &cpu_ops;
    be->caps.device_is_host = 1;
    be->acct = acct;
    be->err = err;
    *out = be;
    return ZRT_OK;
}
