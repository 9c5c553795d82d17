/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/cuda/test_comm_cuda.c — the communicators on the cuda backend: NCCL
 * (runtime/comm_nccl.c) and MPI staging device buffers through pinned host
 * memory (runtime/comm_mpi.c). Run by ctest under mpirun with 1 and 2 ranks.
 *
 * Each rank creates the cuda backend on its local rank's device. When every
 * rank of the host has a GPU of its own, the NCCL communicator runs the
 * checks below, then the MPI communicator on the same backend runs them
 * again (staged), and with 2 or more ranks a collective that one rank never
 * joins must end in ZRT_ERR_REMOTE after comm_timeout_seconds instead of
 * hanging. When ranks share a GPU, NCCL creation must refuse with
 * ZRT_ERR_UNSUPPORTED and a sentence that points to "communicator": "mpi",
 * and the MPI communicator runs the checks.
 *
 * The checks, ZeRO's pattern on flat buffers: f32 and bf16 reduce-scatter
 * in place into the full buffer (ZRT_SUM), waited, the backend's stream
 * synchronized, then this rank's block read; all-gather in place of those
 * blocks, polled with test() until done; all-reduce in place of a device
 * buffer (ZRT_AVG); all-reduce of a host float (delegated to MPI under
 * NCCL); broadcast of a device buffer; a ring of device point-to-point
 * transfers; a split into two groups by rank parity, each all-reducing on its
 * own. Sums are compared with the exact sum
 * (in double) within the dtype's rounding: NCCL sums in its own order, and
 * bf16 in bf16. Results every rank holds (gather, all-reduce, broadcast)
 * must be the same bits on every rank.
 *
 * Exit status: 0 all passed, 1 a check failed, 77 no CUDA device (every
 * rank exits 77 before MPI starts, so mpirun returns 77 and ctest reports a
 * skip). A plain program: a CUDA context does not survive Check's fork.
 */
#include "kernels/cpu/kernels.h"
#include "runtime/backend.h"
#include "runtime/comm.h"
#include "runtime/memory.h"

#include <cuda_runtime_api.h>
#include <mpi.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/test_comm.h"

enum { POLL_LIMIT_S = 120 };

static zrt__mem_account g_acct;
static zrt__errbuf g_err = {.rank = -1};
static zrt__backend *g_be;
static int g_rank, g_size;

/* A zrt call that failed: reported, and the caller skips what depended on it. */
static int ok(const char *what, zrt_status st)
{
    return tc_ok(&g_err, what, st);
}

static int env_int(const char *name, int fallback)
{
    const char *text = getenv(name);
    return text && *text ? atoi(text) : fallback;
}

/* ---- data ------------------------------------------------------------------ */

/* Rank r's element i of test `seed`, in [-1, 1), exact in bf16 when asked. */
static float input(unsigned seed, int r, size_t i, zrt_dtype dtype)
{
    uint64_t h = test_mix64(((uint64_t)seed << 48) ^ ((uint64_t)(unsigned)r << 40) ^ i);
    float x = (float)((double)(h >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    return dtype == ZRT_BF16 ? zrt_bf16_to_f32(zrt_f32_to_bf16(x)) : x;
}

static size_t esize_of(zrt_dtype dtype)
{
    return zrt_dtype_size(dtype);
}

static void store(void *host, size_t i, float x, zrt_dtype dtype)
{
    if (dtype == ZRT_BF16)
        ((uint16_t *)host)[i] = zrt_f32_to_bf16(x);
    else
        ((float *)host)[i] = x;
}

static float load(const void *host, size_t i, zrt_dtype dtype)
{
    return dtype == ZRT_BF16 ? zrt_bf16_to_f32(((const uint16_t *)host)[i])
                             : ((const float *)host)[i];
}

/* Element i of the exact sum over ranks, and the tolerance for it: each of
 * the size - 1 additions and the final rounding may err by half an ulp of a
 * partial sum, bounded by the sum of magnitudes. */
static void expected_sum(unsigned seed, size_t i, zrt_dtype dtype, double *sum,
                         double *tol)
{
    double s = 0.0, mag = 0.0;
    for (int r = 0; r < g_size; r++) {
        double x = input(seed, r, i, dtype);
        s += x;
        mag += fabs(x);
    }
    double ulp = dtype == ZRT_BF16 ? 1.0 / 256.0 : 1.0 / 16777216.0;
    *sum = s;
    *tol = (double)g_size * ulp * mag + 1e-30;
}

/* FNV-1a over bytes: equal on every rank, or the ranks disagree. */
static uint64_t fingerprint(const void *data, size_t bytes)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < bytes; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static void expect_same_everywhere(const char *what, const void *data, size_t bytes)
{
    uint64_t mine = fingerprint(data, bytes), lo = 0, hi = 0;
    MPI_Allreduce(&mine, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&mine, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    if (lo != hi)
        TEST_FAIL("%s: the ranks hold different bits", what);
}

/* ---- device buffers ----------------------------------------------------------- */

static int dev_alloc(size_t bytes, zrt__buf *out)
{
    return ok("device alloc", g_be->ops->alloc(g_be, bytes, ZRT_TIER_DEVICE, ZRT_CAT_GRAD,
                                               "test buffer", out));
}

static int put(void *dev, const void *host, size_t bytes)
{
    return ok("copy to device", g_be->ops->copy(g_be, dev, host, bytes));
}

/* Reads after the backend's stream: what a collective's wait ordered is there. */
static int get(void *host, const void *dev, size_t bytes)
{
    return ok("synchronize", zrt__be_synchronize(g_be)) &&
           ok("copy to host", g_be->ops->copy(g_be, host, dev, bytes));
}

static int wait_polled(zrt__comm *c, zrt__comm_req *req, const char *what)
{
    int done = 0;
    double start = MPI_Wtime();
    while (!done) {
        if (!ok(what, c->ops->test(c, req, &done)))
            return 0;
        if (MPI_Wtime() - start > POLL_LIMIT_S) {
            TEST_FAIL("%s: test() did not report done within %d s", what, POLL_LIMIT_S);
            break;
        }
        /* a poll that found the event not ready must not leave
         * cudaErrorNotReady behind: the backend's next kernel launch reads
         * cudaGetLastError and would fail with it */
        cudaError_t last = cudaGetLastError();
        if (last != cudaSuccess) {
            TEST_FAIL("%s: test() left CUDA's last error set: %s", what,
                      cudaGetErrorString(last));
            break;
        }
    }
    return ok(what, c->ops->wait(c, req));
}

/* ---- the checks ------------------------------------------------------------------- */

/* Reduce-scatter in place into the flat buffer, then all-gather in place:
 * every rank ends with the whole sum. */
static void check_scatter_gather(zrt__comm *c, zrt_dtype dtype, size_t count,
                                 unsigned seed)
{
    const char *name = dtype == ZRT_BF16 ? "bf16" : "f32";
    size_t es = esize_of(dtype), n = count * (size_t)g_size, own = (size_t)g_rank * count;
    char *host = malloc(n * es);
    zrt__buf full = {0};
    if (!host || !dev_alloc(n * es, &full))
        goto out;
    for (size_t i = 0; i < n; i++)
        store(host, i, input(seed, g_rank, i, dtype), dtype);
    if (!put(full.ptr, host, n * es))
        goto out;
    char *dev = full.ptr;
    zrt__comm_req *req = NULL;
    if (!ok("reduce-scatter", c->ops->reduce_scatter(c, dev, dev + own * es, count, dtype,
                                                     ZRT_SUM, &req)) ||
        !ok("reduce-scatter wait", c->ops->wait(c, req)) ||
        !get(host + own * es, dev + own * es, count * es))
        goto out;
    int bad = 0;
    for (size_t i = 0; i < count && bad < 5; i++) {
        double want, tol, got = load(host, own + i, dtype);
        expected_sum(seed, own + i, dtype, &want, &tol);
        if (fabs(got - want) > tol && bad++ < 5)
            TEST_FAIL("%s reduce-scatter of %zu: element %zu is %.9g, want %.9g +- %.3g",
                      name, count, own + i, got, want, tol);
    }
    if (!ok("all-gather",
            c->ops->all_gather(c, dev + own * es, dev, count, dtype, &req)) ||
        !wait_polled(c, req, "all-gather") || !get(host, dev, n * es))
        goto out;
    for (size_t i = 0; i < n && bad < 5; i++) {
        double want, tol, got = load(host, i, dtype);
        expected_sum(seed, i, dtype, &want, &tol);
        if (fabs(got - want) > tol && bad++ < 5)
            TEST_FAIL(
                "%s all-gather of %zu per rank: element %zu is %.9g, want %.9g +- %.3g",
                name, count, i, got, want, tol);
    }
    expect_same_everywhere("all-gather", host, n * es);
out:
    g_be->ops->free(g_be, &full);
    free(host);
}

/* In place, ZRT_AVG, a count that is not a multiple of the world size. */
static void check_all_reduce(zrt__comm *c, size_t n, unsigned seed)
{
    float *host = malloc(n * sizeof *host);
    zrt__buf buf = {0};
    if (!host || !dev_alloc(n * sizeof *host, &buf))
        goto out;
    for (size_t i = 0; i < n; i++)
        host[i] = input(seed, g_rank, i, ZRT_F32);
    zrt__comm_req *req = NULL;
    if (!put(buf.ptr, host, n * sizeof *host) ||
        !ok("all-reduce",
            c->ops->all_reduce(c, buf.ptr, buf.ptr, n, ZRT_F32, ZRT_AVG, &req)) ||
        !ok("all-reduce wait", c->ops->wait(c, req)) ||
        !get(host, buf.ptr, n * sizeof *host))
        goto out;
    int bad = 0;
    for (size_t i = 0; i < n && bad < 5; i++) {
        double want, tol;
        expected_sum(seed, i, ZRT_F32, &want, &tol);
        want /= g_size; /* ncclAvg may scale each input first: twice the margin */
        tol = 2.0 * tol / g_size + fabs(want) / 8388608.0;
        if (fabs(host[i] - want) > tol && bad++ < 5)
            TEST_FAIL("all-reduce avg of %zu: element %zu is %.9g, want %.9g +- %.3g", n,
                      i, host[i], want, tol);
    }
    expect_same_everywhere("all-reduce", host, n * sizeof *host);
out:
    g_be->ops->free(g_be, &buf);
    free(host);
}

/* A host float, as the gradient norm is: MPI's business under NCCL. */
static void check_host_all_reduce(zrt__comm *c)
{
    float x = (float)(g_rank + 1);
    zrt__comm_req *req = NULL;
    if (!ok("host all-reduce", zrt__comm_all_reduce_f32(c, &x, &x, 1, ZRT_SUM, &req)) ||
        !ok("host all-reduce wait", c->ops->wait(c, req)))
        return;
    float want = (float)g_size * (float)(g_size + 1) / 2.0f;
    if (x != want)
        TEST_FAIL("all-reduce of a host float: %g, want %g", x, want);
}

static void check_broadcast(zrt__comm *c, size_t bytes)
{
    const int root = g_size - 1;
    unsigned char *host = malloc(bytes);
    zrt__buf buf = {0};
    if (!host || !dev_alloc(bytes, &buf))
        goto out;
    for (size_t i = 0; i < bytes; i++)
        host[i] = g_rank == root ? (unsigned char)(i * 31 + 7) : 0;
    zrt__comm_req *req = NULL;
    if (!put(buf.ptr, host, bytes) ||
        !ok("broadcast", c->ops->broadcast(c, buf.ptr, bytes, root, &req)) ||
        !ok("broadcast wait", c->ops->wait(c, req)) || !get(host, buf.ptr, bytes))
        goto out;
    for (size_t i = 0; i < bytes; i++) {
        if (host[i] != (unsigned char)(i * 31 + 7)) {
            TEST_FAIL("broadcast of %zu bytes: byte %zu is %u", bytes, i, host[i]);
            break;
        }
    }
    expect_same_everywhere("broadcast", host, bytes);
out:
    g_be->ops->free(g_be, &buf);
    free(host);
}

/* A ring of device buffers: each rank sends to the next and receives from
 * the previous (pipeline parallelism's transport); with one rank nothing. */
static void check_point_to_point(zrt__comm *c, size_t bytes)
{
    if (g_size < 2 || !c->ops->send)
        return;
    int next = (g_rank + 1) % g_size, prev = (g_rank + g_size - 1) % g_size;
    unsigned char *host = malloc(bytes);
    zrt__buf out = {0}, in = {0};
    if (!host || !dev_alloc(bytes, &out) || !dev_alloc(bytes, &in))
        goto done;
    for (size_t i = 0; i < bytes; i++)
        host[i] = (unsigned char)(i * 13 + (size_t)g_rank);
    zrt__comm_req *sreq = NULL, *rreq = NULL;
    /* even ranks send first, odd ones receive first: order must not matter */
    int sent_first = g_rank % 2 == 0;
    if (!put(out.ptr, host, bytes) ||
        !ok("post", sent_first ? c->ops->send(c, out.ptr, bytes, next, 5, &sreq)
                               : c->ops->recv(c, in.ptr, bytes, prev, 5, &rreq)) ||
        !ok("post", sent_first ? c->ops->recv(c, in.ptr, bytes, prev, 5, &rreq)
                               : c->ops->send(c, out.ptr, bytes, next, 5, &sreq)) ||
        !wait_polled(c, rreq, "recv") || !ok("send wait", c->ops->wait(c, sreq)) ||
        !get(host, in.ptr, bytes))
        goto done;
    for (size_t i = 0; i < bytes; i++) {
        if (host[i] != (unsigned char)(i * 13 + (size_t)prev)) {
            TEST_FAIL("point to point of %zu bytes: byte %zu is %u", bytes, i, host[i]);
            break;
        }
    }
done:
    g_be->ops->free(g_be, &out);
    g_be->ops->free(g_be, &in);
    free(host);
}

/* Two groups by rank parity: each runs the checks among its own ranks. */
static void check_split(zrt__comm *c)
{
    zrt__comm *half = NULL;
    if (g_size < 2 || !c->ops->split)
        return;
    if (!ok("split", c->ops->split(c, g_rank % 2, g_rank, &half)))
        return;
    if (half->size != (g_size + 1 - g_rank % 2) / 2 || half->rank != g_rank / 2)
        TEST_FAIL("split: rank %d of %d, expected %d of %d", half->rank, half->size,
                  g_rank / 2, (g_size + 1 - g_rank % 2) / 2);
    enum { N = 4099 };
    float *host = malloc(N * sizeof *host), want = 0.0f;
    zrt__buf buf = {0};
    for (int r = g_rank % 2; r < g_size; r += 2)
        want += (float)(r + 1); /* small integers: exact in any order */
    zrt__comm_req *req = NULL;
    if (host && dev_alloc(N * sizeof *host, &buf)) {
        for (size_t i = 0; i < N; i++)
            host[i] = (float)(g_rank + 1);
        if (put(buf.ptr, host, N * sizeof *host) &&
            ok("split all-reduce", half->ops->all_reduce(half, buf.ptr, buf.ptr, N,
                                                         ZRT_F32, ZRT_SUM, &req)) &&
            ok("split all-reduce wait", half->ops->wait(half, req)) &&
            get(host, buf.ptr, N * sizeof *host) &&
            (host[0] != want || host[N - 1] != want))
            TEST_FAIL("split all-reduce: %g, want the group's sum %g", host[0], want);
    }
    g_be->ops->free(g_be, &buf);
    free(host);
    half->ops->destroy(half);
}

static void run_checks(zrt__comm *c)
{
    int before = test_failures;
    check_scatter_gather(c, ZRT_F32, (1u << 20) + 3, 1);
    check_scatter_gather(c, ZRT_BF16, 4097, 2);
    check_scatter_gather(c, ZRT_F32, 1, 3);
    check_all_reduce(c, 100003, 4);
    check_host_all_reduce(c);
    check_broadcast(c, 65537);
    check_point_to_point(c, 200003);
    check_split(c);
    ok("barrier", c->ops->barrier(c));
    if (g_rank == 0)
        printf("test_comm_cuda: %s on %d rank(s): %s\n", c->ops->name, g_size,
               test_failures == before ? "passed" : "FAILED");
}

/* ---- the communicators ----------------------------------------------------------------
 */

/* Every rank of the host has its own device. */
static void run_nccl(void)
{
    zrt__comm *c = NULL;
    if (!ok("zrt__comm_nccl_create", zrt__comm_nccl_create(g_be, &g_err, 60.0, &c)))
        return;
    run_checks(c);
    c->ops->destroy(c);
}

/* One rank starts an all-reduce the others never join: it must fail with
 * ZRT_ERR_REMOTE once the timeout has passed, not hang. */
static void run_nccl_timeout(void)
{
    const double timeout = 3.0;
    zrt__comm *c = NULL;
    if (!ok("zrt__comm_nccl_create", zrt__comm_nccl_create(g_be, &g_err, timeout, &c)))
        return;
    if (g_rank == 0) {
        zrt__buf buf = {0};
        zrt__comm_req *req = NULL;
        double start = MPI_Wtime();
        zrt_status st = ZRT_OK;
        if (dev_alloc(4096, &buf)) {
            st = zrt__comm_all_reduce_f32(c, buf.ptr, buf.ptr, 1024, ZRT_SUM, &req);
            if (st == ZRT_OK) {
                int done = 0;
                while (st == ZRT_OK && !done && MPI_Wtime() - start < 10 * timeout)
                    st = c->ops->test(c, req, &done);
                if (st == ZRT_OK)
                    st = c->ops->wait(c, req);
                else
                    c->ops->wait(c, req);
            }
        }
        double took = MPI_Wtime() - start;
        if (st != ZRT_ERR_REMOTE)
            TEST_FAIL("an all-reduce no peer joined gave %s after %.1f s (want "
                      "ZRT_ERR_REMOTE): %s",
                      zrt_status_str(st), took, g_err.text);
        else if (took > timeout + 5.0)
            TEST_FAIL("the lost peer was noticed after %.1f s (timeout %.1f s)", took,
                      timeout);
        else if (!strstr(g_err.text, "all-reduce"))
            TEST_FAIL("the timeout's sentence does not name the collective: %s",
                      g_err.text);
        else
            printf("test_comm_cuda: lost peer noticed after %.1f s: %s\n", took,
                   g_err.text);
        if (c->ops->barrier(c) != ZRT_ERR_REMOTE)
            TEST_FAIL("a call after the abort did not return ZRT_ERR_REMOTE");
        zrt__be_synchronize(g_be);
        g_be->ops->free(g_be, &buf);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    c->ops->destroy(c);
}

static void run_mpi_staged(void)
{
    zrt__comm *c = NULL;
    if (!ok("zrt__comm_mpi_create", zrt__comm_mpi_create(g_be, &g_err, &c)))
        return;
    run_checks(c);
    c->ops->destroy(c);
    if (g_acct.stats.current[ZRT_TIER_HOST][ZRT_CAT_COMM] != 0)
        TEST_FAIL("%lld bytes of host/comm staging still held after every wait",
                  (long long)g_acct.stats.current[ZRT_TIER_HOST][ZRT_CAT_COMM]);
    if (g_acct.stats.peak[ZRT_TIER_HOST][ZRT_CAT_COMM] == 0)
        TEST_FAIL("the MPI communicator did not stage through host/comm");
    if (g_acct.stats.peak[ZRT_TIER_DEVICE][ZRT_CAT_COMM] != 0)
        TEST_FAIL("the MPI communicator charged device memory to comm");
}

/* Ranks sharing a GPU: NCCL must refuse, and say what to do instead. */
static void expect_nccl_refused(void)
{
    zrt__comm *c = NULL;
    zrt_status st = zrt__comm_nccl_create(g_be, &g_err, 60.0, &c);
    if (st == ZRT_OK) {
        TEST_FAIL("the NCCL communicator was created with ranks sharing a GPU");
        c->ops->destroy(c);
        return;
    }
    if (st != ZRT_ERR_UNSUPPORTED && st != ZRT_ERR_REMOTE)
        TEST_FAIL("NCCL refused with %s, want ZRT_ERR_UNSUPPORTED: %s",
                  zrt_status_str(st), g_err.text);
    else if (st == ZRT_ERR_UNSUPPORTED &&
             !strstr(g_err.text, "\"communicator\": \"mpi\""))
        TEST_FAIL("NCCL's refusal does not point to \"communicator\": \"mpi\": %s",
                  g_err.text);
    else if (g_rank == 0)
        printf("test_comm_cuda: NCCL refused as it should: %s\n", g_err.text);
}

/* Whether the backend put two ranks of a host on one GPU (by PCI bus id, as
 * the NCCL communicator decides), on any host. */
static int device_shared(void)
{
    char mine[32] = {0}, *all = calloc((size_t)g_size, sizeof mine);
    int shared = 0, any = 0, node_rank = 0, node_size = 1;
    MPI_Comm node;
    cudaDeviceGetPCIBusId(mine, sizeof mine, zrt__backend_cuda_device(g_be));
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL,
                        &node);
    MPI_Comm_rank(node, &node_rank);
    MPI_Comm_size(node, &node_size);
    MPI_Allgather(mine, sizeof mine, MPI_CHAR, all, sizeof mine, MPI_CHAR, node);
    for (int r = 0; r < node_size; r++)
        shared |= r != node_rank &&
                  strncmp(all + (size_t)r * sizeof mine, mine, sizeof mine) == 0;
    MPI_Comm_free(&node);
    free(all);
    MPI_Allreduce(&shared, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return any;
}

int main(void)
{
    int local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0);
    int local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
    zrt__mem_account_init(&g_acct);
    zrt_status st =
        zrt__backend_cuda_create(&g_acct, &g_err, NULL, local_rank, local_size, &g_be);
    if (st == ZRT_ERR_UNSUPPORTED) {
        printf("test_comm_cuda: skipped: %s\n", g_err.text);
        return ZRT_TEST_SKIP; /* before MPI starts: every rank skips alike */
    }
    if (st != ZRT_OK) {
        fprintf(stderr, "test_comm_cuda: cannot create the cuda backend: %s\n",
                g_err.text);
        return 1;
    }
    /* The program starts MPI, so a communicator that refuses (and is
     * destroyed) does not finalize it under the next one. */
    tc_mpi_start(&g_rank, &g_size);
    g_err.rank = g_rank;
    test_rank = g_rank;
    int any_shared = device_shared();
    if (g_rank == 0)
        printf("test_comm_cuda: %d rank(s), %d per host: %s\n", g_size, local_size,
               any_shared ? "ranks share a GPU" : "one GPU per rank");
    if (any_shared) {
        expect_nccl_refused();
    } else {
        run_nccl();
        if (g_size > 1)
            run_nccl_timeout();
    }
    run_mpi_staged();

    int status = tc_exit_status("test_comm_cuda");
    g_be->ops->destroy(g_be);
    MPI_Finalize();
    return status;
}
