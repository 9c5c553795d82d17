/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/mpi/test_comm_staging.c — the MPI communicator's staging of device
 * buffers through pinned host memory (runtime/comm_mpi.c), on any machine:
 * run by ctest under `mpirun -np N` for N = 1..3.
 *
 * The device is a fake: a backend that wraps the cpu backend, declares that
 * its device is not the host, and hands out "device" buffers mapped
 * PROT_NONE. Only its copy op opens them (for the length of the memmove), so
 * any read or write of device memory that does not go through ops->copy — MPI
 * or the reduction touching a buffer that should have been staged — dies
 * with SIGSEGV and fails the test. Host-tier buffers (the staging, the
 * scratch) come from the cpu backend and its memory account.
 *
 * Checked: reduce-scatter (in place f32, out of place bf16 with ZRT_AVG,
 * device send with host recv), all-reduce (in place, a count that needs the
 * padding), all-gather (in place bf16, host send into device recv),
 * broadcast, a result that test() reports done already copied back before
 * wait, host buffers untouched by staging (no copies), and the accounting:
 * staging and scratch charged to host/comm, nothing to device/comm, all of
 * it released by wait. Expected values come from the same ordered sums the
 * host path uses (kernels/cpu), so they must match bit for bit.
 *
 * A plain program (no Check): every rank runs every case in the same order
 * and counts its failures; main returns 0 only if no rank failed.
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/test_comm.h"
#include "runtime/backend.h"
#include "runtime/comm.h"
#include "runtime/memory.h"

enum { MAX_REGIONS = 64 };

/* ---- the fake device ----------------------------------------------------- */

typedef struct region {
    char *ptr;
    size_t len; /* mapped bytes, whole pages */
} region;

typedef struct fake_dev {
    zrt__backend be; /* what the communicator sees */
    zrt__backend_ops ops;
    zrt__backend *cpu; /* host memory and the account */
    region regions[MAX_REGIONS];
    long copies; /* ops->copy calls touching device memory */
    long pins;
} fake_dev;

static fake_dev g_dev;
static zrt__mem_account g_acct;
static zrt__errbuf g_err = {.rank = -1};
static zrt__comm *g_comm;
static int g_rank, g_size;

static region *region_of(const void *ptr)
{
    const char *p = ptr;
    for (int i = 0; i < MAX_REGIONS; i++) {
        region *r = &g_dev.regions[i];
        if (r->ptr && p >= r->ptr && p < r->ptr + r->len)
            return r;
    }
    return NULL;
}

static zrt_status fake_alloc(zrt__backend *be, size_t bytes, zrt_tier tier,
                             zrt_category cat, const char *what, zrt__buf *out)
{
    (void)be;
    if (tier != ZRT_TIER_DEVICE)
        return g_dev.cpu->ops->alloc(g_dev.cpu, bytes, tier, cat, what, out);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = (bytes + page - 1) / page * page;
    for (int i = 0; i < MAX_REGIONS; i++) {
        region *r = &g_dev.regions[i];
        if (r->ptr)
            continue;
        void *p =
            mmap(NULL, len ? len : page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return ZRT_ERR_OUT_OF_MEMORY;
        *r = (region){p, len ? len : page};
        *out = (zrt__buf){.ptr = p, .bytes = bytes, .tier = tier, .cat = cat};
        return ZRT_OK;
    }
    return ZRT_ERR_OUT_OF_MEMORY;
}

static void fake_free(zrt__backend *be, zrt__buf *buf)
{
    (void)be;
    region *r = buf->ptr ? region_of(buf->ptr) : NULL;
    if (!r) {
        g_dev.cpu->ops->free(g_dev.cpu, buf);
        return;
    }
    munmap(r->ptr, r->len);
    *r = (region){0};
    *buf = (zrt__buf){0};
}

/* Counts the request; page-locking is the cpu backend's business (tested
 * there) and may be refused by a small RLIMIT_MEMLOCK here. */
static zrt_status fake_pin(zrt__backend *be, zrt__buf *buf)
{
    (void)be;
    if (buf->tier != ZRT_TIER_HOST)
        return ZRT_ERR_INVALID_ARG;
    g_dev.pins++;
    return ZRT_OK;
}

static void set_access(const void *ptr, int prot)
{
    region *r = ptr ? region_of(ptr) : NULL;
    if (r)
        mprotect(r->ptr, r->len, prot);
}

static zrt_status fake_copy(zrt__backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (region_of(dst) || region_of(src))
        g_dev.copies++;
    set_access(dst, PROT_READ | PROT_WRITE);
    set_access(src, PROT_READ | PROT_WRITE);
    if (bytes)
        memmove(dst, src, bytes);
    set_access(dst, PROT_NONE);
    set_access(src, PROT_NONE);
    return ZRT_OK;
}

static int fake_on_device(zrt__backend *be, const void *ptr)
{
    (void)be;
    return region_of(ptr) != NULL;
}

static zrt_status fake_synchronize(zrt__backend *be)
{
    (void)be;
    return ZRT_OK;
}

static int make_fake_device(void)
{
    zrt__mem_account_init(&g_acct);
    if (zrt__backend_cpu_create(&g_acct, &g_err, NULL, &g_dev.cpu) != ZRT_OK)
        return -1;
    g_dev.ops = *g_dev.cpu->ops;
    g_dev.ops.name = "fake-device";
    g_dev.ops.alloc = fake_alloc;
    g_dev.ops.free = fake_free;
    g_dev.ops.pin = fake_pin;
    g_dev.ops.copy = fake_copy;
    g_dev.ops.on_device = fake_on_device;
    g_dev.ops.synchronize = fake_synchronize;
    g_dev.be = *g_dev.cpu;
    g_dev.be.ops = &g_dev.ops;
    g_dev.be.caps.device_is_host = 0;
    g_dev.be.impl = &g_dev;
    return 0;
}

/* ---- helpers --------------------------------------------------------------- */

static zrt__backend *be(void)
{
    return &g_dev.be;
}

static void *dev_alloc(size_t bytes)
{
    zrt__buf b = {0};
    if (fake_alloc(be(), bytes, ZRT_TIER_DEVICE, ZRT_CAT_GRAD, "test", &b) != ZRT_OK) {
        fprintf(stderr, "cannot map a fake device buffer\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return b.ptr;
}

static void dev_free(void *ptr, size_t bytes)
{
    zrt__buf b = {.ptr = ptr, .bytes = bytes, .tier = ZRT_TIER_DEVICE};
    fake_free(be(), &b);
}

static void put(void *dev, const void *host, size_t bytes)
{
    fake_copy(be(), dev, host, bytes);
}

static void get(void *host, const void *dev, size_t bytes)
{
    fake_copy(be(), host, dev, bytes);
}

/* Rank r's element i: small integers (exact in bf16) that differ by rank. */
static float input(int r, size_t i)
{
    return (float)((int)((i * 7 + (size_t)r * 13) % 31) - 15);
}

static void inputs_f32(float *x, int r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = input(r, i);
}

static void inputs_bf16(uint16_t *x, int r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = zrt_f32_to_bf16(input(r, i));
}

/* The cases use f32 and bf16 only. */
static size_t esize_of(zrt_dtype dtype)
{
    return dtype == ZRT_BF16 ? sizeof(uint16_t) : sizeof(float);
}

/* Rank r's first n inputs in dtype, into x. */
static void inputs_of(zrt_dtype dtype, void *x, int r, size_t n)
{
    if (dtype == ZRT_BF16)
        inputs_bf16(x, r, n);
    else
        inputs_f32(x, r, n);
}

/* Every rank's first n inputs in dtype, one rank after another: what an
 * all-gather gives (the caller frees it). */
static void *every_rank_inputs(zrt_dtype dtype, size_t n)
{
    size_t bytes = n * esize_of(dtype);
    char *all = test_xmalloc((size_t)g_size * bytes);
    for (int r = 0; r < g_size; r++)
        inputs_of(dtype, all + (size_t)r * bytes, r, n);
    return all;
}

/* A device buffer holding this rank's first n inputs in dtype. */
static void *device_inputs(zrt_dtype dtype, size_t n)
{
    size_t bytes = n * esize_of(dtype);
    void *host = test_xmalloc(bytes), *dev = dev_alloc(bytes);
    inputs_of(dtype, host, g_rank, n);
    put(dev, host, bytes);
    free(host);
    return dev;
}

/* Every rank's full f32 inputs of n elements, summed in rank order over
 * elements [lo, lo + len) into out. */
static void reference_f32(float *out, size_t n, size_t lo, size_t len, float divisor)
{
    float *all = every_rank_inputs(ZRT_F32, n);
    const float **src = test_xmalloc((size_t)g_size * sizeof *src);
    for (int r = 0; r < g_size; r++)
        src[r] = all + (size_t)r * n + lo;
    zrt_sum_ordered_f32(out, (const float *const *)src, g_size, len, divisor);
    free(src);
    free(all);
}

static void reference_bf16(uint16_t *out, size_t n, size_t lo, size_t len, float divisor)
{
    uint16_t *all = every_rank_inputs(ZRT_BF16, n);
    const uint16_t **src = test_xmalloc((size_t)g_size * sizeof *src);
    for (int r = 0; r < g_size; r++)
        src[r] = all + (size_t)r * n + lo;
    zrt_sum_ordered_half(out, (const uint16_t *const *)src, g_size, len, divisor,
                         ZRT_HALF_BF16);
    free(src);
    free(all);
}

static void expect_same(const char *what, const void *got, const void *want, size_t bytes)
{
    if (memcmp(got, want, bytes) != 0)
        TEST_FAIL("%s: result differs from the ordered host reduction", what);
}

/* got (host memory, len elements of dtype) is reference_f32 or
 * reference_bf16 of n, lo, len and divisor. */
static void expect_reduced(const char *what, zrt_dtype dtype, const void *got, size_t n,
                           size_t lo, size_t len, float divisor)
{
    void *want = test_xmalloc(len * esize_of(dtype));
    if (dtype == ZRT_BF16)
        reference_bf16(want, n, lo, len, divisor);
    else
        reference_f32(want, n, lo, len, divisor);
    expect_same(what, got, want, len * esize_of(dtype));
    free(want);
}

/* expect_reduced of a result in device memory, read back through copy. */
static void expect_device_reduced(const char *what, zrt_dtype dtype, const void *dev,
                                  size_t n, size_t lo, size_t len, float divisor)
{
    void *got = test_xmalloc(len * esize_of(dtype));
    get(got, dev, len * esize_of(dtype));
    expect_reduced(what, dtype, got, n, lo, len, divisor);
    free(got);
}

/* dev (device memory) holds every rank's first count inputs in dtype, one
 * rank after another. */
static void expect_device_gathered(const char *what, zrt_dtype dtype, const void *dev,
                                   size_t count)
{
    size_t bytes = (size_t)g_size * count * esize_of(dtype);
    void *got = test_xmalloc(bytes), *want = every_rank_inputs(dtype, count);
    get(got, dev, bytes);
    expect_same(what, got, want, bytes);
    free(got);
    free(want);
}

static int check(const char *what, zrt_status st)
{
    return tc_ok(&g_err, what, st);
}

static void wait_req(const char *what, zrt__comm_req *req)
{
    check(what, g_comm->ops->wait(g_comm, req));
}

/* Waits a started collective; a failed start or wait is a failure. req is
 * read here, after the start call in the argument list has written it. */
static void complete(const char *what, zrt_status started, zrt__comm_req *const *req)
{
    if (check(what, started))
        wait_req(what, *req);
}

/* ---- cases ----------------------------------------------------------------- */

/* f32, in place: recv is the send buffer's block r. */
static void case_reduce_scatter_in_place(void)
{
    const size_t count = 1000, n = count * (size_t)g_size, mine = (size_t)g_rank * count;
    float *dev = device_inputs(ZRT_F32, n);
    zrt__comm_req *req = NULL;
    complete("reduce-scatter in place",
             zrt__comm_reduce_scatter_f32(g_comm, dev, dev + mine, count, ZRT_SUM, &req),
             &req);
    expect_device_reduced("reduce-scatter f32 in place", ZRT_F32, dev + mine, n, mine,
                          count, 1.0f);
    dev_free(dev, n * sizeof *dev);
}

/* bf16 with ZRT_AVG, separate device send and recv. */
static void case_reduce_scatter_bf16(void)
{
    const size_t count = 333, n = count * (size_t)g_size;
    uint16_t *send = device_inputs(ZRT_BF16, n), *recv = dev_alloc(count * 2);
    zrt__comm_req *req = NULL;
    complete(
        "reduce-scatter bf16",
        g_comm->ops->reduce_scatter(g_comm, send, recv, count, ZRT_BF16, ZRT_AVG, &req),
        &req);
    expect_device_reduced("reduce-scatter bf16 avg", ZRT_BF16, recv, n,
                          (size_t)g_rank * count, count, (float)g_size);
    dev_free(send, n * 2);
    dev_free(recv, count * 2);
}

/* Device send, host recv: only the input is staged. */
static void case_reduce_scatter_to_host(void)
{
    const size_t count = 64, n = count * (size_t)g_size;
    float *send = device_inputs(ZRT_F32, n), *recv = test_xmalloc(count * sizeof *recv);
    zrt__comm_req *req = NULL;
    complete("reduce-scatter to host",
             zrt__comm_reduce_scatter_f32(g_comm, send, recv, count, ZRT_SUM, &req),
             &req);
    expect_reduced("reduce-scatter device to host", ZRT_F32, recv, n,
                   (size_t)g_rank * count, count, 1.0f);
    dev_free(send, n * sizeof *send);
    free(recv);
}

/* In place, 1001 elements: padded to a multiple of the world size. Polls
 * test() until done: the result must be in the device buffer before wait. */
static void case_all_reduce_polled(void)
{
    const size_t n = 1001;
    float *dev = device_inputs(ZRT_F32, n);
    zrt__comm_req *req = NULL;
    if (check("all-reduce",
              zrt__comm_all_reduce_f32(g_comm, dev, dev, n, ZRT_SUM, &req))) {
        int done = 0;
        while (!done && check("all-reduce test", g_comm->ops->test(g_comm, req, &done)))
            ;
        expect_device_reduced("all-reduce in place, after test reported done", ZRT_F32,
                              dev, n, 0, n, 1.0f);
        wait_req("all-reduce", req);
    }
    expect_device_reduced("all-reduce in place, after wait", ZRT_F32, dev, n, 0, n, 1.0f);
    dev_free(dev, n * sizeof *dev);
}

/* bf16, in place: send is recv's block r. */
static void case_all_gather_in_place(void)
{
    const size_t count = 257, n = count * (size_t)g_size;
    uint16_t *host = test_xmalloc(n * 2), *dev = dev_alloc(n * 2);
    memset(host, 0xA5, n * 2);
    inputs_bf16(host + (size_t)g_rank * count, g_rank, count);
    put(dev, host, n * 2);
    zrt__comm_req *req = NULL;
    complete("all-gather in place",
             g_comm->ops->all_gather(g_comm, dev + (size_t)g_rank * count, dev, count,
                                     ZRT_BF16, &req),
             &req);
    expect_device_gathered("all-gather bf16 in place", ZRT_BF16, dev, count);
    dev_free(dev, n * 2);
    free(host);
}

/* Host send into a device recv. */
static void case_all_gather_from_host(void)
{
    const size_t count = 100, n = count * (size_t)g_size;
    float *mine = test_xmalloc(count * sizeof *mine), *dev = dev_alloc(n * sizeof *dev);
    inputs_f32(mine, g_rank, count);
    zrt__comm_req *req = NULL;
    complete("all-gather from host",
             g_comm->ops->all_gather(g_comm, mine, dev, count, ZRT_F32, &req), &req);
    expect_device_gathered("all-gather host to device", ZRT_F32, dev, count);
    dev_free(dev, n * sizeof *dev);
    free(mine);
}

static void case_broadcast(void)
{
    const size_t bytes = 4099;
    const int root = g_size - 1;
    unsigned char *host = test_xmalloc(bytes), *want = test_xmalloc(bytes);
    unsigned char *dev = dev_alloc(bytes);
    for (size_t i = 0; i < bytes; i++) {
        want[i] = (unsigned char)(i * 31 + 7);
        host[i] = g_rank == root ? want[i] : 0;
    }
    put(dev, host, bytes);
    zrt__comm_req *req = NULL;
    complete("broadcast", g_comm->ops->broadcast(g_comm, dev, bytes, root, &req), &req);
    get(host, dev, bytes);
    expect_same("broadcast of a device buffer", host, want, bytes);
    dev_free(dev, bytes);
    free(host);
    free(want);
}

/* Host buffers on this backend take the host path: no copies, no pins. */
static void case_host_buffers_untouched(void)
{
    float x[5];
    inputs_f32(x, g_rank, 5);
    long copies = g_dev.copies, pins = g_dev.pins;
    zrt__comm_req *req = NULL;
    complete("host all-reduce", zrt__comm_all_reduce_f32(g_comm, x, x, 5, ZRT_SUM, &req),
             &req);
    expect_reduced("all-reduce of host floats", ZRT_F32, x, 5, 0, 5, 1.0f);
    if (g_dev.copies != copies || g_dev.pins != pins)
        TEST_FAIL("a host-buffer all-reduce staged: %ld copies, %ld pins",
                  g_dev.copies - copies, g_dev.pins - pins);
}

static void check_accounting(void)
{
    const zrt_mem_stats *s = &g_acct.stats;
    if (s->current[ZRT_TIER_HOST][ZRT_CAT_COMM] != 0)
        TEST_FAIL("%lld bytes of host/comm still held after every wait",
                  (long long)s->current[ZRT_TIER_HOST][ZRT_CAT_COMM]);
    if (s->peak[ZRT_TIER_HOST][ZRT_CAT_COMM] == 0)
        TEST_FAIL("the staging was not charged to host/comm");
    if (s->peak[ZRT_TIER_DEVICE][ZRT_CAT_COMM] != 0)
        TEST_FAIL("%lld bytes of comm scratch charged to the device tier",
                  (long long)s->peak[ZRT_TIER_DEVICE][ZRT_CAT_COMM]);
    if (g_dev.pins == 0)
        TEST_FAIL("no staging buffer was pinned");
}

int main(void)
{
    if (make_fake_device() != 0 ||
        zrt__comm_mpi_create(be(), &g_err, &g_comm) != ZRT_OK) {
        fprintf(stderr, "test_comm_staging: cannot create the communicator: %s\n",
                g_err.text);
        return 1;
    }
    g_rank = g_comm->rank;
    g_size = g_comm->size;
    g_err.rank = g_rank;
    test_rank = g_rank;
    case_reduce_scatter_in_place();
    case_reduce_scatter_bf16();
    case_reduce_scatter_to_host();
    case_all_reduce_polled();
    case_all_gather_in_place();
    case_all_gather_from_host();
    case_broadcast();
    case_host_buffers_untouched();
    check_accounting();

    int status = tc_exit_status("test_comm_staging");
    g_comm->ops->destroy(g_comm);
    g_dev.cpu->ops->destroy(g_dev.cpu);
    zrt__mem_account_free(&g_acct);
    return status;
}
