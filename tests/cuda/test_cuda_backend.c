/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/cuda/test_cuda_backend.c — the cuda backend (runtime/backend_cuda.c)
 * against kernels/cpu.
 *
 * Allocation: every buffer is charged to the account and released on free,
 * comes zeroed, and a device limit gives ZRT_ERR_OUT_OF_MEMORY naming the
 * category. Arenas: with a memory plan set by hand, a sequence of device
 * allocations freed out of order and made again is served by the arena both
 * times and never reaches cudaMalloc; without a plan the exact-size cache
 * makes the second round free of cudaMalloc too. Copies in all four
 * directions; pinning; on_device. Kernels: every op on every placement of its
 * operands (all device, all host, each mix; aliased operands too) gives the
 * bits of kernels/cpu on random data, for lengths 1, 7 and 3000001 (more
 * than one bounce chunk). The only latitude is the one kernels_cuda.h
 * documents for the all-device path: NaN payloads of arithmetic, and the
 * squared norms' summation order (relative 1e-6).
 *
 * Exit status: 0 all passed, 1 a check failed, 77 no CUDA device (the
 * backend cannot be created for that reason), which ctest shows as skipped.
 * A plain program rather than a Check suite: Check forks each test, and a
 * CUDA context does not survive fork.
 */
#include "kernels/cpu/kernels.h"
#include "runtime/backend.h"
#include "runtime/backend_cuda.h"
#include "runtime/memory.h"
#include "runtime/threads.h"

#include <cuda_runtime_api.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/test_common.h"

static test_rng rng = {0x9e3779b97f4a7c15ull};
static zrt__mem_account g_acct, g_ref_acct;
static zrt__errbuf err = {.rank = -1};
static zrt__backend *be;  /* under test */
static zrt__backend *ref; /* a cpu backend, for what is not a cuda backend */

/* A zrt call that must succeed; nothing after a failure would mean much. */
#define ZOK(expr)                                                                        \
    do {                                                                                 \
        zrt_status st_ = (expr);                                                         \
        if (st_ != ZRT_OK)                                                               \
            TEST_FATAL("%s: %s: %s", #expr, zrt_status_str(st_), err.text);              \
    } while (0)

/* ---- random data ---------------------------------------------------------- */

/* What an operand's random data looks like. */
enum {
    F32_FINITE,  /* |x| < 2^20 */
    F32_MOMENT,  /* small, >= 0: a second moment */
    F32_ANY,     /* raw bit patterns: NaN, inf, subnormals */
    HALF_FINITE, /* finite 16-bit patterns of the case's format */
    HALF_ANY     /* any 16-bit pattern */
};

static void fill_random(void *data, size_t n, int kind, zrt_half h)
{
    float *f = data;
    uint16_t *u = data;
    for (size_t i = 0; i < n; i++) {
        switch (kind) {
        case F32_FINITE:
            f[i] = ldexpf(test_rng_unit(&rng), (int)(test_rng_u32(&rng) % 40) - 20);
            break;
        case F32_MOMENT:
            f[i] = 0.01f * fabsf(test_rng_unit(&rng));
            break;
        case F32_ANY: {
            uint32_t b = test_rng_u32(&rng);
            memcpy(&f[i], &b, 4);
            break;
        }
        case HALF_FINITE:
            do
                u[i] = (uint16_t)test_rng_u32(&rng);
            while (test_half_nonfinite(u[i], h == ZRT_HALF_BF16));
            break;
        default:
            u[i] = (uint16_t)test_rng_u32(&rng);
            break;
        }
    }
}

/* ---- placing data --------------------------------------------------------- */

/* A buffer of the backend under test, on the device or the host tier,
 * holding `bytes` of data. The backend zeroes new memory on its own stream:
 * wait for it before writing with another stream. */
static void place(zrt__buf *buf, int on_device, const void *data, size_t bytes)
{
    ZOK(be->ops->alloc(be, bytes, on_device ? ZRT_TIER_DEVICE : ZRT_TIER_HOST,
                       ZRT_CAT_PARAM, "a test operand", buf));
    ZOK(zrt__be_synchronize(be));
    if (on_device) {
        TEST_CUDA(cudaMemcpy(buf->ptr, data, bytes, cudaMemcpyHostToDevice));
        /* from pageable memory cudaMemcpy may return before the data lands,
         * and the backend's stream does not wait for the legacy one */
        TEST_CUDA(cudaDeviceSynchronize());
    } else
        memcpy(buf->ptr, data, bytes);
}

static void fetch(void *data, const zrt__buf *buf)
{
    ZOK(zrt__be_synchronize(be));
    if (buf->tier == ZRT_TIER_DEVICE)
        TEST_CUDA(cudaMemcpy(data, buf->ptr, buf->bytes, cudaMemcpyDeviceToHost));
    else
        memcpy(data, buf->ptr, buf->bytes);
}

static int all_zero(const zrt__buf *buf)
{
    unsigned char *host = test_xmalloc(buf->bytes);
    fetch(host, buf);
    int zero = 1;
    for (size_t i = 0; i < buf->bytes && zero; i++)
        zero = host[i] == 0;
    free(host);
    return zero;
}

/* ---- comparing -------------------------------------------------------------- */

/* 1 when equal bit for bit (NaN payloads aside when nan_ok). */
static int same(const void *got, const void *want, size_t n, size_t esize, zrt_half h,
                int nan_ok, size_t *first)
{
    for (size_t i = 0; i < n; i++) {
        int ok;
        if (esize == 4) {
            float a, b;
            memcpy(&a, (const char *)got + 4 * i, 4);
            memcpy(&b, (const char *)want + 4 * i, 4);
            ok = test_bits_of(a) == test_bits_of(b) || (nan_ok && isnan(a) && isnan(b));
        } else {
            uint16_t a = ((const uint16_t *)got)[i], b = ((const uint16_t *)want)[i];
            int bf16 = h == ZRT_HALF_BF16;
            ok = a == b || (nan_ok && test_half_nan(a, bf16) && test_half_nan(b, bf16));
        }
        if (!ok) {
            *first = i;
            return 0;
        }
    }
    return 1;
}

/* ---- every op on every placement --------------------------------------------- */

enum { MAX_OPS = 5 };

typedef zrt_status (*op_fn)(zrt__backend *b, void *const *p, size_t n, const void *arg);

typedef struct op_case {
    const char *name;
    int k; /* operands */
    size_t esize[MAX_OPS];
    int kind[MAX_OPS];  /* fill_random's kind */
    int alias[MAX_OPS]; /* the operand whose pointer this one reuses, or -1 */
    op_fn fn;
    const void *arg;
    zrt_half h;     /* the 16-bit format, where there is one */
    int arithmetic; /* NaN payloads may differ on the all-device path */
} op_case;

static const char *mask_text(unsigned mask, int k, char *buf)
{
    for (int i = 0; i < k; i++)
        buf[i] = mask & (1u << i) ? 'D' : 'H';
    buf[k] = 0;
    return buf;
}

/* Runs the case on the backend under test with operand i on the device when
 * bit i of mask is set, and compares every operand with the reference. */
static void run_placement(const op_case *c, size_t n, unsigned mask, void *const *init,
                          void *const *want, void **got)
{
    zrt__buf buf[MAX_OPS] = {{0}};
    void *ptr[MAX_OPS];
    char where[MAX_OPS + 1];
    for (int i = 0; i < c->k; i++) {
        if (c->alias[i] >= 0) {
            ptr[i] = ptr[c->alias[i]];
            continue;
        }
        place(&buf[i], (mask >> i) & 1u, init[i], n * c->esize[i]);
        ptr[i] = buf[i].ptr;
    }
    zrt_status st = c->fn(be, ptr, n, c->arg);
    test_checks++;
    if (st != ZRT_OK)
        TEST_FAIL("%s n=%zu placement %s: %s: %s", c->name, n,
                  mask_text(mask, c->k, where), zrt_status_str(st), err.text);
    for (int i = 0; i < c->k && st == ZRT_OK; i++) {
        if (c->alias[i] >= 0)
            continue;
        size_t first = 0;
        int nan_ok = c->arithmetic && mask == (1u << c->k) - 1;
        fetch(got[i], &buf[i]);
        test_checks++;
        if (!same(got[i], want[i], n, c->esize[i], c->h, nan_ok, &first)) {
            uint32_t a = 0, b = 0;
            memcpy(&a, (char *)got[i] + first * c->esize[i], c->esize[i]);
            memcpy(&b, (char *)want[i] + first * c->esize[i], c->esize[i]);
            TEST_FAIL(
                "%s n=%zu placement %s: operand %d differs first at [%zu]: got 0x%x "
                "want 0x%x",
                c->name, n, mask_text(mask, c->k, where), i, first, a, b);
        }
    }
    for (int i = 0; i < c->k; i++)
        be->ops->free(be, &buf[i]);
}

static void run_case(const op_case *c, size_t n)
{
    void *init[MAX_OPS], *want[MAX_OPS], *got[MAX_OPS];
    for (int i = 0; i < c->k; i++) {
        size_t bytes = n * c->esize[i];
        init[i] = test_xmalloc(bytes);
        want[i] = test_xmalloc(bytes);
        got[i] = test_xmalloc(bytes);
        fill_random(init[i], n, c->kind[i], c->h);
        memcpy(want[i], init[i], bytes);
    }
    void *ref_ptr[MAX_OPS];
    for (int i = 0; i < c->k; i++)
        ref_ptr[i] = c->alias[i] >= 0 ? want[c->alias[i]] : want[i];
    ZOK(c->fn(NULL, ref_ptr, n, c->arg));
    for (unsigned mask = 0; mask < 1u << c->k; mask++) {
        int consistent = 1;
        for (int i = 0; i < c->k; i++)
            if (c->alias[i] >= 0 && ((mask >> i) & 1u) != ((mask >> c->alias[i]) & 1u))
                consistent = 0;
        if (consistent)
            run_placement(c, n, mask, init, want, got);
    }
    for (int i = 0; i < c->k; i++) {
        free(init[i]);
        free(want[i]);
        free(got[i]);
    }
}

/* The ops, in the form run_case calls them; b == NULL: kernels/cpu itself,
 * the reference. */

typedef struct op_args {
    float value;
    zrt_adamw_scalars s;
    zrt_half h;
} op_args;

static zrt_status op_fill(zrt__backend *b, void *const *p, size_t n, const void *arg)
{
    const op_args *a = arg;
    if (!b)
        zrt_fill_f32(p[0], n, a->value);
    return b ? b->ops->fill_f32(b, p[0], n, a->value) : ZRT_OK;
}

static zrt_status op_scale(zrt__backend *b, void *const *p, size_t n, const void *arg)
{
    const op_args *a = arg;
    if (!b)
        zrt_scale_f32(p[0], n, a->value);
    return b ? b->ops->scale_f32(b, p[0], n, a->value) : ZRT_OK;
}

static zrt_status op_add(zrt__backend *b, void *const *p, size_t n, const void *arg)
{
    (void)arg;
    const float *src[2] = {p[0], p[1]};
    if (!b)
        zrt_sum_ordered_f32(p[0], src, 2, n, 1.0f);
    return b ? b->ops->add_f32(b, p[0], p[1], n) : ZRT_OK;
}

static zrt_status op_adamw(zrt__backend *b, void *const *p, size_t n, const void *arg)
{
    const op_args *a = arg;
    if (!b)
        zrt_adamw_f32_out(p[0], p[1], p[2], p[3], p[4], n, &a->s);
    return b ? b->ops->adamw_f32(b, p[0], p[1], p[2], p[3], p[4], n, &a->s) : ZRT_OK;
}

static zrt_status op_add_half(zrt__backend *b, void *const *p, size_t n, const void *arg)
{
    const op_args *a = arg;
    if (!b)
        zrt_add_half(p[0], p[1], n, a->h);
    return b ? b->ops->add_half(b, p[0], p[1], n, a->h) : ZRT_OK;
}

static zrt_status op_to_half(zrt__backend *b, void *const *p, size_t n, const void *arg)
{
    const op_args *a = arg;
    if (!b)
        zrt_cast_f32_to_half(p[0], p[1], n, a->h);
    return b ? b->ops->cast_f32_to_half(b, p[0], p[1], n, a->h) : ZRT_OK;
}

static zrt_status op_to_f32(zrt__backend *b, void *const *p, size_t n, const void *arg)
{
    const op_args *a = arg;
    if (!b)
        zrt_cast_half_to_f32(p[0], p[1], n, a->h);
    return b ? b->ops->cast_half_to_f32(b, p[0], p[1], n, a->h) : ZRT_OK;
}

static zrt_status op_adamw_mixed(zrt__backend *b, void *const *p, size_t n,
                                 const void *arg)
{
    const op_args *a = arg;
    if (!b)
        zrt_adamw_mixed(p[0], p[1], p[2], p[3], p[4], n, a->value, &a->s, a->h);
    return b ? b->ops->adamw_mixed(b, p[0], p[1], p[2], p[3], p[4], n, a->value, &a->s,
                                   a->h)
             : ZRT_OK;
}

static void test_elementwise(size_t n)
{
    op_args a = {.value = 0.37f,
                 .s = zrt_adamw_scalars_make(1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 3)};
    const size_t F = 4, U = 2;
    /* A case per row, fields in op_case's order: name, operands, element
     * sizes, fill_random's kinds, aliases, op, args, 16-bit format, arithmetic. */
    /* clang-format off */
    op_case f32_cases[] = {
        {"fill_f32", 1, {F}, {F32_ANY}, {-1}, op_fill, &a, ZRT_HALF_BF16, 0},
        {"scale_f32", 1, {F}, {F32_ANY}, {-1}, op_scale, &a, ZRT_HALF_BF16, 1},
        {"add_f32", 2, {F, F}, {F32_ANY, F32_ANY}, {-1, -1},
         op_add, &a, ZRT_HALF_BF16, 1},
        {"add_f32 (dst == src)", 2, {F, F}, {F32_FINITE, F32_FINITE}, {-1, 0},
         op_add, &a, ZRT_HALF_BF16, 1},
        /* p, p_out, g, m, v */
        {"adamw_f32", 5,
         {F, F, F, F, F}, {F32_FINITE, F32_FINITE, F32_FINITE, F32_FINITE, F32_MOMENT},
         {-1, -1, -1, -1, -1}, op_adamw, &a, ZRT_HALF_BF16, 1},
        {"adamw_f32 (p_out == p)", 5,
         {F, F, F, F, F}, {F32_FINITE, F32_FINITE, F32_FINITE, F32_FINITE, F32_MOMENT},
         {-1, 0, -1, -1, -1}, op_adamw, &a, ZRT_HALF_BF16, 1},
        {"adamw_f32 (p_out == g)", 5,
         {F, F, F, F, F}, {F32_FINITE, F32_FINITE, F32_FINITE, F32_FINITE, F32_MOMENT},
         {-1, -1, 1, -1, -1}, op_adamw, &a, ZRT_HALF_BF16, 1},
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof f32_cases / sizeof f32_cases[0]; i++)
        run_case(&f32_cases[i], n);
    for (int hi = 0; hi < 2; hi++) {
        zrt_half h = hi ? ZRT_HALF_F16 : ZRT_HALF_BF16;
        op_args ah = a;
        ah.h = h;
        ah.value = 1.0f / 1024.0f; /* adamw_mixed's grad_scale */
        /* clang-format off */
        op_case half_cases[] = {
            {"add_half", 2, {U, U}, {HALF_ANY, HALF_ANY}, {-1, -1},
             op_add_half, &ah, h, 1},
            {"add_half (dst == src)", 2, {U, U}, {HALF_ANY, HALF_ANY}, {-1, 0},
             op_add_half, &ah, h, 1},
            {"cast_f32_to_half", 2, {U, F}, {HALF_ANY, F32_ANY}, {-1, -1},
             op_to_half, &ah, h, 0},
            {"cast_half_to_f32", 2, {F, U}, {F32_ANY, HALF_ANY}, {-1, -1},
             op_to_f32, &ah, h, 0},
            /* master, p_out, g, m, v */
            {"adamw_mixed", 5, {F, U, U, F, F},
             {F32_FINITE, HALF_ANY, HALF_FINITE, F32_FINITE, F32_MOMENT},
             {-1, -1, -1, -1, -1}, op_adamw_mixed, &ah, h, 1},
            {"adamw_mixed (p_out == g)", 5, {F, U, U, F, F},
             {F32_FINITE, HALF_FINITE, HALF_FINITE, F32_FINITE, F32_MOMENT},
             {-1, -1, 1, -1, -1}, op_adamw_mixed, &ah, h, 1},
        };
        /* clang-format on */
        for (size_t i = 0; i < sizeof half_cases / sizeof half_cases[0]; i++)
            run_case(&half_cases[i], n);
    }
}

/* The squared norms: device within 1e-6 relative, host exact. */
static void test_sqnorm(size_t n)
{
    float *f = test_xmalloc(n * 4);
    uint16_t *u = test_xmalloc(n * 2);
    fill_random(f, n, F32_FINITE, ZRT_HALF_BF16);
    for (int on_dev = 0; on_dev < 2; on_dev++) {
        zrt__buf bf, bu;
        double want, got = -1.0;
        place(&bf, on_dev, f, n * 4);
        want = zrt_sqnorm_f32(f, n);
        ZOK(be->ops->sqnorm_f32(be, bf.ptr, n, &got));
        TEST_CHECK(on_dev ? fabs(got - want) <= 1e-6 * fabs(want) : got == want,
                   "sqnorm_f32 n=%zu %s: got %.17g want %.17g", n,
                   on_dev ? "device" : "host", got, want);
        be->ops->free(be, &bf);
        for (int hi = 0; hi < 2; hi++) {
            zrt_half h = hi ? ZRT_HALF_F16 : ZRT_HALF_BF16;
            fill_random(u, n, HALF_FINITE, h);
            place(&bu, on_dev, u, n * 2);
            want = zrt_sqnorm_half(u, n, h);
            ZOK(be->ops->sqnorm_half(be, bu.ptr, n, h, &got));
            TEST_CHECK(on_dev ? fabs(got - want) <= 1e-6 * fabs(want) : got == want,
                       "sqnorm_half %s n=%zu %s: got %.17g want %.17g",
                       hi ? "fp16" : "bf16", n, on_dev ? "device" : "host", got, want);
            be->ops->free(be, &bu);
        }
    }
    free(f);
    free(u);
}

/* ---- allocation, arenas, copies, pinning --------------------------------------- */

static void test_accounting(void)
{
    zrt__buf d, h, none;
    ZOK(be->ops->alloc(be, 1000, ZRT_TIER_DEVICE, ZRT_CAT_GRAD, "grads", &d));
    ZOK(be->ops->alloc(be, 5000, ZRT_TIER_HOST, ZRT_CAT_OPTIM, "moments", &h));
    TEST_CHECK(g_acct.stats.current[ZRT_TIER_DEVICE][ZRT_CAT_GRAD] == 1000 &&
                   g_acct.stats.current[ZRT_TIER_HOST][ZRT_CAT_OPTIM] == 5000,
               "charged %lld device grad and %lld host optim bytes, want 1000 and 5000",
               (long long)g_acct.stats.current[ZRT_TIER_DEVICE][ZRT_CAT_GRAD],
               (long long)g_acct.stats.current[ZRT_TIER_HOST][ZRT_CAT_OPTIM]);
    TEST_CHECK(all_zero(&d) && all_zero(&h), "new memory is not zeroed");
    TEST_CHECK(zrt__be_on_device(be, d.ptr) == 1 &&
                   zrt__be_on_device(be, (char *)d.ptr + 999) == 1,
               "on_device is not 1 for device memory");
    int on_stack = 0;
    void *heap = test_xmalloc(64);
    TEST_CHECK(zrt__be_on_device(be, h.ptr) == 0 && zrt__be_on_device(be, heap) == 0 &&
                   zrt__be_on_device(be, &on_stack) == 0 &&
                   zrt__be_on_device(be, NULL) == 0,
               "on_device is not 0 for host memory");
    free(heap);
    /* the same buffers again, written first: a reused block comes zeroed too */
    TEST_CUDA(cudaMemset(d.ptr, 0xff, 1000));
    TEST_CUDA(cudaDeviceSynchronize());
    memset(h.ptr, 0xff, 5000);
    be->ops->free(be, &d);
    be->ops->free(be, &h);
    /* the host tier keeps the bounce buffer, charged from the backend's
     * creation (host/staging; the memory plan has the same line) */
    TEST_CHECK(g_acct.stats.tier_current[ZRT_TIER_DEVICE] == 0 &&
                   g_acct.stats.tier_current[ZRT_TIER_HOST] ==
                       (int64_t)ZRT__CUDA_BOUNCE_BYTES &&
                   g_acct.stats.current[ZRT_TIER_HOST][ZRT_CAT_STAGING] ==
                       (int64_t)ZRT__CUDA_BOUNCE_BYTES,
               "free leaves %lld device and %lld host bytes charged (want 0, and the "
               "bounce buffer's)",
               (long long)g_acct.stats.tier_current[ZRT_TIER_DEVICE],
               (long long)g_acct.stats.tier_current[ZRT_TIER_HOST]);
    ZOK(be->ops->alloc(be, 1000, ZRT_TIER_DEVICE, ZRT_CAT_GRAD, "grads", &d));
    ZOK(be->ops->alloc(be, 5000, ZRT_TIER_HOST, ZRT_CAT_OPTIM, "moments", &h));
    TEST_CHECK(all_zero(&d) && all_zero(&h), "reused memory is not zeroed");
    be->ops->free(be, &d);
    be->ops->free(be, &h);
    ZOK(be->ops->alloc(be, 0, ZRT_TIER_DEVICE, ZRT_CAT_GRAD, "nothing", &none));
    be->ops->free(be, &none);
    zrt_status st = be->ops->alloc(be, 4096, ZRT_TIER_NVME, ZRT_CAT_PARAM, "swap", &none);
    TEST_CHECK(st == ZRT_ERR_INVALID_ARG,
               "an nvme-tier allocation gives %s, want "
               "ZRT_ERR_INVALID_ARG",
               zrt_status_str(st));

    /* a device limit: out of memory, naming the category; nothing charged */
    int64_t before = g_acct.stats.tier_current[ZRT_TIER_DEVICE];
    zrt__mem_set_limit(&g_acct, ZRT_TIER_DEVICE, before + 4096);
    st = be->ops->alloc(be, 1 << 20, ZRT_TIER_DEVICE, ZRT_CAT_OPTIM, "m of layer 0",
                        &none);
    TEST_CHECK(
        st == ZRT_ERR_OUT_OF_MEMORY && strstr(err.text, "optim"),
        "over the device limit: %s '%s', want ZRT_ERR_OUT_OF_MEMORY naming 'optim'",
        zrt_status_str(st), err.text);
    TEST_CHECK(g_acct.stats.tier_current[ZRT_TIER_DEVICE] == before,
               "a refused allocation stays charged");
    zrt__mem_set_limit(&g_acct, ZRT_TIER_DEVICE, 0);
}

static void test_arenas(void)
{
    static const size_t sizes[] = {(1u << 20) + 3, 5000, 2u << 20, 77, 300000, 256};
    enum { COUNT = sizeof sizes / sizeof sizes[0] };
    static const int free_order[COUNT] = {2, 0, 4, 1, 5, 3};
    int64_t total = 0;
    for (int i = 0; i < COUNT; i++)
        total += (int64_t)sizes[i];
    g_acct.has_plan = 1;
    g_acct.planned_peak[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_GATHER] = total;
    g_acct.planned_peak[ZRT_TIER_DEVICE][ZRT_CAT_COMM] = 4096;

    zrt__cuda_stats s0, s1, s2;
    TEST_CHECK(zrt__backend_cuda_stats(be, &s0) == 0, "no stats from the cuda backend");
    TEST_CHECK(zrt__backend_cuda_stats(ref, &s1) == -1, "stats from the cpu backend");
    for (int round = 0; round < 2; round++) {
        zrt__buf buf[COUNT];
        for (int i = 0; i < COUNT; i++) {
            ZOK(be->ops->alloc(be, sizes[i], ZRT_TIER_DEVICE, ZRT_CAT_PARAM_GATHER,
                               "a gathered layer", &buf[i]));
            TEST_CHECK((uintptr_t)buf[i].ptr % 256 == 0,
                       "block %d is not 256-byte aligned", i);
            TEST_CHECK(all_zero(&buf[i]), "arena block %d (round %d) is not zeroed", i,
                       round);
        }
        for (int i = 0; i < COUNT; i++) /* dirty them: the next round must re-zero */
            TEST_CUDA(cudaMemset(buf[i].ptr, 0xa5, sizes[i]));
        TEST_CUDA(cudaDeviceSynchronize());
        for (int i = 0; i < COUNT; i++)
            be->ops->free(be, &buf[free_order[i]]);
    }
    zrt__backend_cuda_stats(be, &s1);
    TEST_CHECK(s1.fallback_mallocs == s0.fallback_mallocs,
               "planned allocations reached cudaMalloc %llu times",
               (unsigned long long)(s1.fallback_mallocs - s0.fallback_mallocs));
    TEST_CHECK(s1.arena_allocs == s0.arena_allocs + 2 * COUNT,
               "the arena served %llu allocations, want %d",
               (unsigned long long)(s1.arena_allocs - s0.arena_allocs), 2 * COUNT);
    TEST_CHECK(s1.arena_bytes >= (size_t)total && s1.arena_used_bytes == 0,
               "arenas hold %zu bytes (%zu used), want >= %lld (0 used)", s1.arena_bytes,
               s1.arena_used_bytes, (long long)total);

    /* no plan for the category (activation), and a block too big for its
     * arena (comm): cudaMalloc the first time, the cache the second */
    for (int round = 0; round < 2; round++) {
        zrt__buf a, c;
        ZOK(be->ops->alloc(be, 12345, ZRT_TIER_DEVICE, ZRT_CAT_ACTIVATION, "acts", &a));
        ZOK(be->ops->alloc(be, 3u << 20, ZRT_TIER_DEVICE, ZRT_CAT_COMM, "scratch", &c));
        TEST_CHECK(all_zero(&a) && all_zero(&c), "fallback blocks (round %d) not zeroed",
                   round);
        TEST_CUDA(cudaMemset(a.ptr, 0x5a, a.bytes));
        TEST_CUDA(cudaMemset(c.ptr, 0x5a, c.bytes));
        TEST_CUDA(cudaDeviceSynchronize());
        be->ops->free(be, &a);
        be->ops->free(be, &c);
        zrt__backend_cuda_stats(be, &s2);
        TEST_CHECK(s2.fallback_mallocs == s1.fallback_mallocs + 2,
                   "round %d: %llu fallback cudaMallocs, want 2 in all", round,
                   (unsigned long long)(s2.fallback_mallocs - s1.fallback_mallocs));
    }
    TEST_CHECK(s2.fallback_reuses >= s1.fallback_reuses + 2,
               "the fallback cache was not used");
    g_acct.has_plan = 0;
}

static void test_copies(void)
{
    enum { N = 100003 };
    unsigned char *a = test_xmalloc(N), *b = test_xmalloc(N);
    for (size_t i = 0; i < N; i++)
        a[i] = (unsigned char)test_rng_u32(&rng);
    zrt__buf d1, d2, h;
    ZOK(be->ops->alloc(be, N, ZRT_TIER_DEVICE, ZRT_CAT_PARAM, "copy 1", &d1));
    ZOK(be->ops->alloc(be, N, ZRT_TIER_DEVICE, ZRT_CAT_PARAM, "copy 2", &d2));
    ZOK(be->ops->alloc(be, N, ZRT_TIER_HOST, ZRT_CAT_STAGING, "copy 3", &h));
    ZOK(be->ops->copy(be, d1.ptr, a, N));      /* host to device */
    ZOK(be->ops->copy(be, d2.ptr, d1.ptr, N)); /* device to device */
    ZOK(be->ops->copy(be, h.ptr, d2.ptr, N));  /* device to host */
    memset(b, 0, N);
    ZOK(be->ops->copy(be, b, h.ptr, N)); /* host to host */
    TEST_CHECK(memcmp(a, b, N) == 0, "copies in four directions changed the data");
    memset(b, 0, N);
    fetch(b, &d2);
    TEST_CHECK(memcmp(a, b, N) == 0, "the device-to-device copy changed the data");

    /* pinned: registered host memory is still host memory */
    ZOK(be->ops->pin(be, &h));
    ZOK(be->ops->pin(be, &h)); /* twice: nothing */
    struct cudaPointerAttributes attr;
    TEST_CUDA(cudaPointerGetAttributes(&attr, h.ptr));
    TEST_CHECK(h.pinned && attr.type == cudaMemoryTypeHost,
               "pin: pinned %d, memory type %d", h.pinned, (int)attr.type);
    TEST_CHECK(zrt__be_on_device(be, h.ptr) == 0,
               "on_device is 1 for pinned host memory");
    memset(h.ptr, 0, N);
    ZOK(be->ops->copy(be, h.ptr, d1.ptr, N));
    TEST_CHECK(memcmp(a, h.ptr, N) == 0, "a copy into pinned memory changed the data");
    zrt_status st = be->ops->pin(be, &d1);
    TEST_CHECK(st == ZRT_ERR_INVALID_ARG, "pinning a device buffer gives %s",
               zrt_status_str(st));
    void *was = h.ptr;
    be->ops->free(be, &h);
    TEST_CHECK(!h.pinned && !h.ptr, "free leaves the buffer set");
    ZOK(be->ops->alloc(be, N, ZRT_TIER_HOST, ZRT_CAT_STAGING, "copy 3", &h));
    if (h.ptr == was) { /* the cached block: unregistered by the free */
        TEST_CUDA(cudaPointerGetAttributes(&attr, h.ptr));
        TEST_CHECK(attr.type != cudaMemoryTypeHost, "free left the block registered");
    }
    be->ops->free(be, &h);

    /* overlapping device ranges: memmove's result (cudaMemcpyAsync alone is
     * undefined there), the same range a no-op, and no error left behind */
    static const long shifts[] = {0,    1,     -1,     7,     -7,    256,
                                  -256, 33333, -33333, 50001, -50001};
    unsigned char *want = test_xmalloc(N);
    for (size_t k = 0; k < sizeof shifts / sizeof shifts[0]; k++) {
        long sh = shifts[k];
        size_t len = N - (size_t)labs(sh), so = sh >= 0 ? 0 : (size_t)-sh,
               dof = sh >= 0 ? (size_t)sh : 0;
        memcpy(want, a, N);
        memmove(want + dof, want + so, len);
        ZOK(be->ops->copy(be, d1.ptr, a, N));
        ZOK(be->ops->copy(be, (char *)d1.ptr + dof, (char *)d1.ptr + so, len));
        memset(b, 0, N);
        fetch(b, &d1);
        TEST_CHECK(memcmp(b, want, N) == 0,
                   "an overlapping device copy (shift %ld) is not memmove's", sh);
        TEST_CHECK(cudaGetLastError() == cudaSuccess,
                   "an overlapping copy left a CUDA error");
    }
    free(want);
    be->ops->free(be, &d1);
    be->ops->free(be, &d2);
    free(a);
    free(b);
}

/* ---- main ------------------------------------------------------------------------ */

int main(void)
{
    zrt__pool *pool = NULL;
    zrt__mem_account_init(&g_acct);
    zrt__mem_account_init(&g_ref_acct);
    if (zrt__pool_create(0, 0, 1, &err, &pool) != ZRT_OK)
        pool = NULL; /* the kernels run on one thread */
    zrt_status st = zrt__backend_cuda_create(&g_acct, &err, pool, 0, 1, &be);
    if (st == ZRT_ERR_UNSUPPORTED) {
        printf("test_cuda_backend: skipped: %s\n", err.text);
        zrt__pool_destroy(pool);
        zrt__mem_account_free(&g_acct);
        zrt__mem_account_free(&g_ref_acct);
        return ZRT_TEST_SKIP;
    }
    ZOK(st);
    ZOK(zrt__backend_cpu_create(&g_ref_acct, &err, pool, &ref));
    TEST_CHECK(zrt__backend_cuda_device(be) >= 0 && zrt__backend_cuda_device(ref) == -1,
               "device ordinals %d (cuda) and %d (cpu)", zrt__backend_cuda_device(be),
               zrt__backend_cuda_device(ref));
    TEST_CHECK(!be->caps.device_is_host && be->stream, "caps or stream not set");

    test_accounting();
    test_arenas();
    test_copies();
    static const size_t lengths[] = {1, 7, 3000001};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        test_elementwise(lengths[i]);
        test_sqnorm(lengths[i]);
    }
    TEST_CHECK(g_acct.stats.tier_current[ZRT_TIER_DEVICE] == 0,
               "%lld device bytes still charged",
               (long long)g_acct.stats.tier_current[ZRT_TIER_DEVICE]);

    zrt__cuda_stats s;
    zrt__backend_cuda_stats(be, &s);
    int device = zrt__backend_cuda_device(be);
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess)
        snprintf(prop.name, sizeof prop.name, "?");
    be->ops->destroy(be);
    ref->ops->destroy(ref);
    TEST_CHECK(g_acct.stats.tier_current[ZRT_TIER_HOST] == 0,
               "%lld host bytes charged after destroy",
               (long long)g_acct.stats.tier_current[ZRT_TIER_HOST]);
    zrt__pool_destroy(pool);
    zrt__mem_account_free(&g_acct);
    zrt__mem_account_free(&g_ref_acct);
    printf("test_cuda_backend: device %d (%s), cpu kernels %s: %d checks, %d failed; "
           "arenas %zu bytes, %llu arena allocations, %llu fallback cudaMallocs, bounce "
           "%zu bytes\n",
           device, prop.name, zrt_kernels_cpu_path(), test_checks, test_failures,
           s.arena_bytes, (unsigned long long)s.arena_allocs,
           (unsigned long long)s.fallback_mallocs, s.bounce_bytes);
    return test_failures ? 1 : 0;
}
