/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/comm_nccl.c — the communicator over NCCL, for the cuda backend with
 * one GPU per rank.
 *
 * Bootstrap: an inner MPI communicator (runtime/comm_mpi.c) starts MPI and
 * knows the ranks. Every rank names its GPU by PCI bus id; when two ranks of
 * a host have the same one, every rank refuses (agreed over MPI, so none is
 * left waiting in NCCL): NCCL cannot give one GPU two ranks, and
 * "communicator": "mpi" stages through host memory instead. Rank 0 makes the
 * ncclUniqueId and MPI broadcasts it. The NCCL communicator is nonblocking
 * (config.blocking = 0): its init, and the enqueue of every collective, return
 * at once and are polled (ncclCommGetAsyncError) until done, for at most
 * timeout_seconds. A blocking init or enqueue would wait forever for a peer
 * that never comes (NCCL connects peers lazily, at the first collective), and
 * nothing could interrupt it.
 *
 * Streams and events. Collectives run on a stream of the communicator's own
 * (non-blocking with respect to the legacy stream). Before each, an event
 * recorded on the backend's stream (be->stream, where the backend and the
 * training loop queue their work) is waited on by the comm stream, so NCCL
 * reads what was produced before the call; after it, a done-event is recorded
 * on the comm stream. test() queries that event. wait() never blocks the host:
 * it makes the backend's stream wait on the done-event, so whatever is queued
 * there next sees the result; a host reader synchronizes the backend (ops->
 * synchronize) as it would after any kernel. One request is one NCCL group
 * (ncclGroupStart/End around its call). Device buffers go to NCCL as they are:
 * NCCL's in-place rule is comm.h's (recv = send + r * count for
 * reduce-scatter, send = recv + r * count for all-gather), so ZeRO's flat
 * per-layer buffers need no copies.
 *
 * Host buffers (a loss, the gradient norm's one float), or a call mixing a host
 * and a device buffer, go to the inner MPI communicator (which stages a device
 * side through pinned host memory); the request wraps MPI's. agree, barrier
 * and abort_job are MPI's too; barrier first synchronizes the comm stream.
 *
 * The watchdog: a thread polls every WATCH_PERIOD_MS ms the NCCL
 * communicator's asynchronous error and the done-event of every collective
 * not yet seen complete (the watch list: an entry outlives its request until
 * its event completes). When NCCL reports an error, an event reports a device
 * error, or a collective is older than timeout_seconds (0: never), it writes
 * one sentence (which collective, how many bytes, for how long, NCCL's error
 * string), aborts the NCCL communicator (ncclCommAbort: the kernels return,
 * so no stream or host synchronization hangs) and marks the communicator
 * failed. Every later collective, test, wait and barrier returns that
 * sentence with ZRT_ERR_REMOTE; agree counts this rank as failed; abort_job
 * still works. That is how a lost peer ends the job instead of hanging it: the
 * engine returns the error and the program calls zrt_abort_job. A NCCL call
 * that fails on this rank fails the same way, with ZRT_ERR_COMM. One mutex
 * serializes every NCCL call (NCCL allows one thread at a time on a
 * communicator), the watch list and the failure; the sentence is written to
 * the communicator's own buffer under it and copied into c->err by the
 * calling thread (zrt__errbuf is not thread-safe). The watchdog never calls
 * MPI (MPI runs at MPI_THREAD_FUNNELED). A collective's age counts from its
 * enqueue, so time spent queued behind earlier work, or waiting for a peer
 * busy elsewhere (writing a checkpoint), counts too: the timeout must exceed
 * the longest such wait. Since wait() does not block, a collective that fails
 * after its wait returned is reported by the next call on the communicator.
 *
 * Numerics: reductions are NCCL's, in its order (ring or tree, chosen per
 * size), not comm.h's rank order: an all-reduce's elements need not equal
 * the same elements reduce-scattered, and bf16/f16 sums are NCCL's 16-bit
 * arithmetic (not a sum in f32 rounded once), but every rank gets the same
 * bits from an all-reduce and from an all-gather. ZRT_AVG is ncclAvg.
 *
 * Point-to-point (send, recv) and split serve pipeline parallelism: device
 * buffers through ncclSend / ncclRecv (no tags: matched by call order), host
 * buffers through MPI; split makes a sub-communicator with its own inner MPI
 * communicator, ncclCommSplit, stream and watchdog. Built; not yet run on a
 * GPU (tests/cuda/test_comm_cuda.c checks them where one is).
 *
 * Not supported: two ranks on one GPU (use "communicator": "mpi"); several
 * threads calling one communicator; comm.h's rank-order reduction bits.
 */
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm.h"

enum { WATCH_PERIOD_MS = 50, BUS_ID_LEN = 32 };

/* A collective enqueued on the comm stream and not yet seen complete. */
typedef struct watch {
    cudaEvent_t done; /* recorded on the comm stream after the collective */
    double started;   /* monotonic seconds at enqueue */
    char what[160];   /* "NCCL reduce-scatter of 4096 bf16 elements per rank, 8.00 KiB
                         (8192 bytes)" */
    int complete;     /* the event was seen complete */
    int released;     /* its request was waited: the list owns the entry */
    struct watch *next;
} watch;

typedef struct nccl_impl {
    zrt__comm *mpi;      /* owned: bootstrap, host buffers, agree/barrier/abort */
    ncclComm_t comm;     /* NULL once aborted */
    cudaStream_t stream; /* the comm stream */
    cudaEvent_t ready;   /* recorded on be->stream before each collective */
    int device;
    double timeout;       /* seconds; 0: never */
    pthread_mutex_t lock; /* NCCL calls, watched, failed, why, stopping */
    pthread_cond_t wake;  /* destroy stops the watchdog */
    pthread_t watchdog;
    int watchdog_running;
    int stopping;
    watch *watched;    /* newest first */
    zrt_status failed; /* ZRT_OK while usable */
    char why[ZRT__ERRBUF_SIZE];
} nccl_impl;

/* Exactly one of inner and w is set, or neither (nothing to move). */
struct zrt__comm_req {
    zrt__comm_req *inner; /* a host-buffer collective: the MPI request */
    watch *w;             /* a device collective */
};

typedef enum coll_kind {
    REDUCE_SCATTER,
    ALL_GATHER,
    ALL_REDUCE,
    BROADCAST,
    SEND,
    RECV
} coll_kind;

static const char *const kind_names[] = {"reduce-scatter", "all-gather", "all-reduce",
                                         "broadcast",      "send",       "recv"};

/* One collective as asked. count: elements per rank block (reduce-scatter,
 * all-gather), of the buffer (all-reduce), bytes (broadcast, send, recv).
 * root: the broadcast's root, or the peer of a send or recv. */
typedef struct coll {
    coll_kind kind;
    const void *send;
    void *recv;
    size_t count;
    zrt_dtype dtype;
    zrt_reduce_op op;
    int root;
    int tag; /* send, recv: the MPI path's; NCCL matches by order alone */
} coll;

static int moves_bytes(coll_kind kind)
{
    return kind == BROADCAST || kind == SEND || kind == RECV;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static const char *dtype_name(const coll *k)
{
    if (moves_bytes(k->kind))
        return "byte";
    return k->dtype == ZRT_F32 ? "f32" : k->dtype == ZRT_BF16 ? "bf16" : "f16";
}

/* "NCCL reduce-scatter of 4096 bf16 elements per rank, 8.00 KiB (8192 bytes)" */
static void describe(const coll *k, char *buf, size_t size)
{
    size_t esize = moves_bytes(k->kind) ? 1 : zrt_dtype_size(k->dtype);
    char bytes[64], peer[32] = "";
    zrt__fmt_bytes((long long)(k->count * esize), bytes, sizeof bytes);
    if (k->kind == SEND || k->kind == RECV)
        snprintf(peer, sizeof peer, " %s rank %d", k->kind == SEND ? "to" : "from",
                 k->root);
    snprintf(buf, size, "NCCL %s of %zu %s elements%s%s, %s", kind_names[k->kind],
             k->count, dtype_name(k),
             k->kind == REDUCE_SCATTER || k->kind == ALL_GATHER ? " per rank" : "", peer,
             bytes);
}

/* ---- errors ---------------------------------------------------------------- */

static zrt_status cuda_fail(zrt__comm *c, cudaError_t rc, const char *call,
                            const char *what)
{
    /* Clear CUDA's last error (per thread), as the backend's
     * cuda_error does: otherwise the backend's next kernel launch, which
     * reads cudaGetLastError, fails with this error as its own. */
    (void)cudaGetLastError();
    return zrt__fail(c->err, ZRT_ERR_COMM, "%s: %s failed: %s", what, call,
                     cudaGetErrorString(rc));
}

/* "what: call failed: NCCL's string: its last error". ncclGetLastError is
 * asked with no communicator: the watchdog may have aborted ours. */
static void nccl_sentence(char *buf, size_t size, ncclResult_t rc, const char *call,
                          const char *what)
{
    const char *detail = ncclGetLastError(NULL);
    snprintf(buf, size, "%s: %s failed: %s%s%s", what, call, ncclGetErrorString(rc),
             detail && *detail ? ": " : "", detail ? detail : "");
}

static zrt_status nccl_fail(zrt__comm *c, ncclResult_t rc, const char *call,
                            const char *what)
{
    char text[ZRT__ERRBUF_SIZE];
    nccl_sentence(text, sizeof text, rc, call, what);
    return zrt__fail(c->err, ZRT_ERR_COMM, "%s", text);
}

/* Marks the communicator failed (the first cause wins) and aborts NCCL, so
 * that kernels waiting for a lost peer return. Under impl->lock. */
static void fail_locked(nccl_impl *impl, zrt_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_locked(nccl_impl *impl, zrt_status status, const char *fmt, ...)
{
    if (impl->failed != ZRT_OK)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(impl->why, sizeof impl->why, fmt, ap);
    va_end(ap);
    impl->failed = status;
    if (impl->comm) {
        ncclCommAbort(impl->comm);
        impl->comm = NULL;
    }
}

/* The failure as the calling thread's error. Under impl->lock. */
static zrt_status failed_sentence_locked(zrt__comm *c)
{
    nccl_impl *impl = c->impl;
    return zrt__fail(c->err, impl->failed, "the NCCL communicator was aborted: %s",
                     impl->why);
}

/* The failure, if any, as this thread's error. */
static zrt_status check_failed(zrt__comm *c)
{
    nccl_impl *impl = c->impl;
    char why[ZRT__ERRBUF_SIZE];
    pthread_mutex_lock(&impl->lock);
    zrt_status failed = impl->failed;
    if (failed != ZRT_OK)
        memcpy(why, impl->why, sizeof why);
    pthread_mutex_unlock(&impl->lock);
    if (failed == ZRT_OK)
        return ZRT_OK;
    return zrt__fail(c->err, failed, "the NCCL communicator was aborted: %s", why);
}

/* Polls a nonblocking NCCL operation until it leaves ncclInProgress, for at
 * most timeout seconds (0: no limit). *timed_out says which ended it. */
static ncclResult_t settle(ncclComm_t comm, double timeout, int *timed_out)
{
    double start = now_seconds();
    *timed_out = 0;
    for (;;) {
        ncclResult_t state = ncclSuccess;
        ncclResult_t rc = ncclCommGetAsyncError(comm, &state);
        if (rc != ncclSuccess)
            return rc;
        if (state != ncclInProgress)
            return state;
        if (timeout > 0 && now_seconds() - start > timeout) {
            *timed_out = 1;
            return ncclInProgress;
        }
        sleep_us(100);
    }
}

/* ---- the watchdog ---------------------------------------------------------- */

/* One pass over the watch list and NCCL's asynchronous error. Under lock. */
static void watch_once(nccl_impl *impl)
{
    double now = now_seconds();
    for (watch **link = &impl->watched; *link;) {
        watch *w = *link;
        if (!w->complete) {
            cudaError_t rc = cudaEventQuery(w->done);
            double age = now - w->started;
            if (rc != cudaSuccess)
                (void)cudaGetLastError(); /* see nccl_test */
            if (rc == cudaSuccess) {
                w->complete = 1;
            } else if (rc != cudaErrorNotReady) {
                fail_locked(impl, ZRT_ERR_COMM,
                            "%s failed on the device after %.1f s: %s", w->what, age,
                            cudaGetErrorString(rc));
                return;
            } else if (impl->timeout > 0 && age > impl->timeout) {
                ncclResult_t async = ncclSuccess;
                if (impl->comm)
                    ncclCommGetAsyncError(impl->comm, &async);
                fail_locked(impl, ZRT_ERR_REMOTE,
                            "%s has not completed after %.1f s (comm_timeout_seconds "
                            "%.1f): a peer is lost or stuck; NCCL reports %s",
                            w->what, age, impl->timeout, ncclGetErrorString(async));
                return;
            }
        }
        if (w->complete && w->released) {
            *link = w->next;
            cudaEventDestroy(w->done);
            free(w);
            continue;
        }
        link = &w->next;
    }
    ncclResult_t async = ncclSuccess;
    if (impl->comm && ncclCommGetAsyncError(impl->comm, &async) == ncclSuccess &&
        async != ncclSuccess && async != ncclInProgress) {
        const char *oldest = "no collective";
        for (watch *w = impl->watched; w; w = w->next)
            if (!w->complete)
                oldest = w->what; /* the list is newest first */
        const char *detail = ncclGetLastError(impl->comm);
        fail_locked(impl, ZRT_ERR_REMOTE,
                    "NCCL reported an asynchronous error with %s in flight: %s%s%s",
                    oldest, ncclGetErrorString(async), detail && *detail ? ": " : "",
                    detail ? detail : "");
    }
}

static void *watchdog_main(void *arg)
{
    nccl_impl *impl = arg;
    cudaSetDevice(impl->device); /* the events and stream are the device's */
    pthread_mutex_lock(&impl->lock);
    while (!impl->stopping) {
        if (impl->failed == ZRT_OK)
            watch_once(impl);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += WATCH_PERIOD_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec += 1;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&impl->wake, &impl->lock, &until);
    }
    pthread_mutex_unlock(&impl->lock);
    return NULL;
}

/* ---- collectives ------------------------------------------------------------ */

static ncclDataType_t nccl_type(zrt_dtype dtype)
{
    return dtype == ZRT_BF16  ? ncclBfloat16
           : dtype == ZRT_F16 ? ncclFloat16
                              : ncclFloat32;
}

static zrt_status check_args(zrt__comm *c, const coll *k)
{
    const char *name = kind_names[k->kind];
    if ((k->kind == SEND || k->kind == RECV) &&
        (k->root < 0 || k->root >= c->size || k->root == c->rank))
        return zrt__fail(c->err, ZRT_ERR_INVALID_ARG,
                         "%s: peer %d is not another rank of the %d", name, k->root,
                         c->size);
    if ((k->kind == SEND || k->kind == RECV) && (k->tag < 0 || k->tag > ZRT__P2P_TAG_MAX))
        return zrt__fail(c->err, ZRT_ERR_INVALID_ARG, "%s: tag %d is outside 0..%d", name,
                         k->tag, (int)ZRT__P2P_TAG_MAX);
    if (!moves_bytes(k->kind) && k->dtype != ZRT_F32 && k->dtype != ZRT_BF16 &&
        k->dtype != ZRT_F16)
        return zrt__fail(c->err, ZRT_ERR_INVALID_ARG, "%s: unknown dtype %d", name,
                         (int)k->dtype);
    if ((k->kind == REDUCE_SCATTER || k->kind == ALL_REDUCE) && k->op != ZRT_SUM &&
        k->op != ZRT_AVG)
        return zrt__fail(c->err, ZRT_ERR_INVALID_ARG, "%s: unknown reduce op %d", name,
                         (int)k->op);
    if (k->kind == BROADCAST && (k->root < 0 || k->root >= c->size))
        return zrt__fail(c->err, ZRT_ERR_INVALID_ARG,
                         "broadcast root %d is outside the world of %d ranks", k->root,
                         c->size);
    return ZRT_OK;
}

static ncclResult_t enqueue_call(nccl_impl *impl, const coll *k)
{
    ncclDataType_t type = nccl_type(k->dtype);
    ncclRedOp_t red = k->op == ZRT_AVG ? ncclAvg : ncclSum;
    switch (k->kind) {
    case REDUCE_SCATTER:
        return ncclReduceScatter(k->send, k->recv, k->count, type, red, impl->comm,
                                 impl->stream);
    case ALL_GATHER:
        return ncclAllGather(k->send, k->recv, k->count, type, impl->comm, impl->stream);
    case ALL_REDUCE:
        return ncclAllReduce(k->send, k->recv, k->count, type, red, impl->comm,
                             impl->stream);
    case BROADCAST:
        return ncclBroadcast(k->send, k->recv, k->count, ncclUint8, k->root, impl->comm,
                             impl->stream);
    case SEND:
        return ncclSend(k->send, k->count, ncclUint8, k->root, impl->comm, impl->stream);
    case RECV:
        return ncclRecv(k->recv, k->count, ncclUint8, k->root, impl->comm, impl->stream);
    }
    return ncclInvalidArgument;
}

/* One group holding the collective, settled, then its done-event. Under
 * lock; a NCCL failure fails the communicator (its state is unknown and the
 * peers wait for this rank). */
static zrt_status enqueue_locked(zrt__comm *c, const coll *k, watch *w)
{
    nccl_impl *impl = c->impl;
    ncclResult_t rc = ncclGroupStart();
    if (rc == ncclSuccess) {
        ncclResult_t call = enqueue_call(impl, k);
        rc = ncclGroupEnd();
        if (call != ncclSuccess && call != ncclInProgress)
            rc = call;
    }
    int timed_out = 0;
    if (rc == ncclInProgress)
        rc = settle(impl->comm, impl->timeout, &timed_out);
    char text[ZRT__ERRBUF_SIZE];
    if (timed_out) {
        fail_locked(impl, ZRT_ERR_REMOTE,
                    "%s could not be enqueued within %.1f s (comm_timeout_seconds): a "
                    "peer is lost or stuck",
                    w->what, impl->timeout);
        return failed_sentence_locked(c);
    }
    if (rc != ncclSuccess) {
        nccl_sentence(text, sizeof text, rc, "ncclGroupEnd", w->what);
        fail_locked(impl, ZRT_ERR_COMM, "%s", text);
        return zrt__fail(c->err, ZRT_ERR_COMM, "%s", text);
    }
    cudaError_t crc = cudaEventRecord(w->done, impl->stream);
    if (crc != cudaSuccess) {
        (void)cudaGetLastError(); /* see cuda_fail */
        snprintf(text, sizeof text, "%s: cudaEventRecord(comm stream) failed: %s",
                 w->what, cudaGetErrorString(crc));
        fail_locked(impl, ZRT_ERR_COMM, "%s", text);
        return zrt__fail(c->err, ZRT_ERR_COMM, "%s", text);
    }
    w->started = now_seconds();
    w->next = impl->watched;
    impl->watched = w;
    return ZRT_OK;
}

static zrt_status empty_request(zrt__comm *c, zrt__comm_req **out)
{
    zrt__comm_req *req = calloc(1, sizeof *req);
    if (!req)
        return zrt__fail(c->err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot allocate a communication request");
    *out = req;
    return ZRT_OK;
}

/* A device collective: ordered after be->stream's work, watched until done. */
static zrt_status start_device(zrt__comm *c, const coll *k, int layer,
                               zrt__comm_req **out)
{
    nccl_impl *impl = c->impl;
    zrt__comm_req *req = NULL;
    ZRT_CHECK(empty_request(c, &req));
    watch *w = calloc(1, sizeof *w);
    if (!w) {
        free(req);
        return zrt__fail(c->err, ZRT_ERR_OUT_OF_MEMORY, "cannot allocate a watch entry");
    }
    describe(k, w->what, sizeof w->what);
    if (layer >= 0) {
        size_t used = strlen(w->what);
        snprintf(w->what + used, sizeof w->what - used, " for layer %d", layer);
    }
    const char *call = "cudaEventCreateWithFlags";
    cudaError_t crc = cudaEventCreateWithFlags(&w->done, cudaEventDisableTiming);
    if (crc == cudaSuccess) {
        call = "cudaEventRecord(backend stream)";
        crc = cudaEventRecord(impl->ready, (cudaStream_t)c->be->stream);
        if (crc == cudaSuccess) {
            call = "cudaStreamWaitEvent(comm stream)";
            crc = cudaStreamWaitEvent(impl->stream, impl->ready, 0);
        }
        if (crc != cudaSuccess)
            cudaEventDestroy(w->done);
    }
    if (crc != cudaSuccess) {
        zrt_status st = cuda_fail(c, crc, call, w->what);
        free(w);
        free(req);
        return st;
    }
    pthread_mutex_lock(&impl->lock);
    zrt_status st =
        impl->failed == ZRT_OK ? enqueue_locked(c, k, w) : failed_sentence_locked(c);
    pthread_mutex_unlock(&impl->lock);
    if (st != ZRT_OK) {
        cudaEventDestroy(w->done);
        free(w);
        free(req);
        return st;
    }
    req->w = w;
    *out = req;
    return ZRT_OK;
}

/* Wraps the inner MPI communicator's request. */
static zrt_status wrap_inner(zrt__comm *c, zrt_status st, zrt__comm_req *inner,
                             zrt__comm_req **out)
{
    if (st != ZRT_OK)
        return st;
    nccl_impl *impl = c->impl;
    zrt__comm_req *req = calloc(1, sizeof *req);
    if (!req) {
        impl->mpi->ops->wait(impl->mpi, inner);
        return zrt__fail(c->err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot allocate a communication request");
    }
    req->inner = inner;
    *out = req;
    return ZRT_OK;
}

static int on_device(zrt__comm *c, const void *ptr)
{
    return ptr && zrt__be_on_device(c->be, ptr);
}

/* Where the collective's data is: NCCL takes it when every buffer it names
 * is device memory. */
static int all_on_device(zrt__comm *c, const coll *k)
{
    if (k->kind == SEND)
        return on_device(c, k->send);
    if (k->kind == RECV)
        return on_device(c, k->recv);
    return on_device(c, k->send) && on_device(c, k->recv);
}

/* Device buffers to NCCL; a host buffer anywhere, to MPI. The layer label
 * (zrt__comm_for_layer) is this collective's: taken here, passed on. */
static zrt_status start(zrt__comm *c, const coll *k, zrt__comm_req **out)
{
    nccl_impl *impl = c->impl;
    zrt__comm *mpi = impl->mpi;
    int layer = c->next_layer;
    c->next_layer = -1;
    ZRT_CHECK(check_args(c, k));
    ZRT_CHECK(check_failed(c));
    if (k->count == 0)
        return empty_request(c, out);
    if (all_on_device(c, k))
        return start_device(c, k, layer, out);
    mpi->next_layer = layer;
    zrt__comm_req *inner = NULL;
    zrt_status st = ZRT_ERR_INTERNAL;
    switch (k->kind) {
    case REDUCE_SCATTER:
        st = mpi->ops->reduce_scatter(mpi, k->send, k->recv, k->count, k->dtype, k->op,
                                      &inner);
        break;
    case ALL_GATHER:
        st = mpi->ops->all_gather(mpi, k->send, k->recv, k->count, k->dtype, &inner);
        break;
    case ALL_REDUCE:
        st = mpi->ops->all_reduce(mpi, k->send, k->recv, k->count, k->dtype, k->op,
                                  &inner);
        break;
    case BROADCAST:
        st = mpi->ops->broadcast(mpi, k->recv, k->count, k->root, &inner);
        break;
    case SEND:
        st = mpi->ops->send(mpi, k->send, k->count, k->root, k->tag, &inner);
        break;
    case RECV:
        st = mpi->ops->recv(mpi, k->recv, k->count, k->root, k->tag, &inner);
        break;
    }
    return wrap_inner(c, st, inner, out);
}

/* A reduce-scatter or an all-reduce: a collective with an op. */
static zrt_status start_reduction(zrt__comm *c, coll_kind kind, const void *send,
                                  void *recv, size_t count, zrt_dtype dtype,
                                  zrt_reduce_op op, zrt__comm_req **out)
{
    coll k = {.kind = kind,
              .send = send,
              .recv = recv,
              .count = count,
              .dtype = dtype,
              .op = op};
    return start(c, &k, out);
}

static zrt_status nccl_reduce_scatter(zrt__comm *c, const void *send, void *recv,
                                      size_t count, zrt_dtype dtype, zrt_reduce_op op,
                                      zrt__comm_req **out)
{
    return start_reduction(c, REDUCE_SCATTER, send, recv, count, dtype, op, out);
}

static zrt_status nccl_all_reduce(zrt__comm *c, const void *send, void *recv,
                                  size_t count, zrt_dtype dtype, zrt_reduce_op op,
                                  zrt__comm_req **out)
{
    return start_reduction(c, ALL_REDUCE, send, recv, count, dtype, op, out);
}

static zrt_status nccl_all_gather(zrt__comm *c, const void *send, void *recv,
                                  size_t count, zrt_dtype dtype, zrt__comm_req **out)
{
    coll k = {
        .kind = ALL_GATHER, .send = send, .recv = recv, .count = count, .dtype = dtype};
    return start(c, &k, out);
}

static zrt_status nccl_broadcast(zrt__comm *c, void *buf, size_t bytes, int root,
                                 zrt__comm_req **out)
{
    coll k = {.kind = BROADCAST, .send = buf, .recv = buf, .count = bytes, .root = root};
    return start(c, &k, out);
}

/* ---- completion ------------------------------------------------------------- */

/* Point-to-point (pipeline parallelism): device buffers through ncclSend /
 * ncclRecv, host buffers through MPI. NCCL has no tags: device transfers
 * between two ranks match in the order of the calls alone, so a caller must
 * post them in the same order on both sides whatever their tags (zero/pipe.c
 * does: each direction carries one stream of transfers in schedule order). */
static zrt_status nccl_send(zrt__comm *c, const void *buf, size_t bytes, int peer,
                            int tag, zrt__comm_req **out)
{
    coll k = {.kind = SEND, .send = buf, .count = bytes, .root = peer, .tag = tag};
    return start(c, &k, out);
}

static zrt_status nccl_recv(zrt__comm *c, void *buf, size_t bytes, int peer, int tag,
                            zrt__comm_req **out)
{
    coll k = {.kind = RECV, .recv = buf, .count = bytes, .root = peer, .tag = tag};
    return start(c, &k, out);
}

static zrt_status nccl_test(zrt__comm *c, zrt__comm_req *req, int *done)
{
    nccl_impl *impl = c->impl;
    if (req->inner)
        return impl->mpi->ops->test(impl->mpi, req->inner, done);
    ZRT_CHECK(check_failed(c));
    *done = 1;
    if (!req->w)
        return ZRT_OK;
    cudaError_t rc = cudaEventQuery(req->w->done);
    if (rc == cudaErrorNotReady) {
        /* The runtime may keep cudaErrorNotReady as this
         * thread's last error (PyTorch clears it after every query for that
         * reason); left there, the backend's next kernel launch, which reads
         * cudaGetLastError, would fail with "device not ready". */
        (void)cudaGetLastError();
        *done = 0;
        return ZRT_OK;
    }
    if (rc != cudaSuccess)
        return cuda_fail(c, rc, "cudaEventQuery", req->w->what);
    /* An aborted collective completes too: the watchdog marks the failure
     * before it aborts, so asking again now tells the two apart. */
    return check_failed(c);
}

/* Orders the backend's stream after the collective and frees the request;
 * the watch entry stays until the watchdog sees it complete. A collective
 * that fails after its wait returned (wait does not block) is reported by
 * the next call on the communicator. */
static zrt_status nccl_wait(zrt__comm *c, zrt__comm_req *req)
{
    nccl_impl *impl = c->impl;
    zrt_status st = ZRT_OK;
    if (req->inner) {
        st = impl->mpi->ops->wait(impl->mpi, req->inner);
        free(req);
        return st;
    }
    if (req->w) {
        st = check_failed(c);
        if (st == ZRT_OK) {
            cudaError_t rc =
                cudaStreamWaitEvent((cudaStream_t)c->be->stream, req->w->done, 0);
            if (rc != cudaSuccess)
                st =
                    cuda_fail(c, rc, "cudaStreamWaitEvent(backend stream)", req->w->what);
        }
        pthread_mutex_lock(&impl->lock);
        req->w->released = 1;
        pthread_mutex_unlock(&impl->lock);
    }
    free(req);
    return st;
}

/* ---- blocking calls, through MPI --------------------------------------------- */

static zrt_status nccl_barrier(zrt__comm *c)
{
    nccl_impl *impl = c->impl;
    ZRT_CHECK(check_failed(c));
    cudaError_t rc = cudaStreamSynchronize(impl->stream);
    ZRT_CHECK(check_failed(c)); /* the watchdog may have aborted what it waited for */
    if (rc != cudaSuccess)
        return cuda_fail(c, rc, "cudaStreamSynchronize(comm stream)", "barrier");
    return impl->mpi->ops->barrier(impl->mpi);
}

/* A failed NCCL communicator is this rank's failure, whatever local says. */
static zrt_status nccl_agree(zrt__comm *c, zrt_status local, int *first_failed)
{
    nccl_impl *impl = c->impl;
    pthread_mutex_lock(&impl->lock);
    zrt_status failed = impl->failed;
    pthread_mutex_unlock(&impl->lock);
    if (local == ZRT_OK && failed != ZRT_OK)
        local = failed;
    return impl->mpi->ops->agree(impl->mpi, local, first_failed);
}

static zrt_status nccl_abort_job(zrt__comm *c, int exit_code)
{
    nccl_impl *impl = c->impl;
    return impl->mpi->ops->abort_job(impl->mpi, exit_code);
}

/* ---- creation and destruction ----------------------------------------------- */

static void stop_watchdog(nccl_impl *impl)
{
    if (!impl->watchdog_running)
        return;
    pthread_mutex_lock(&impl->lock);
    impl->stopping = 1;
    pthread_cond_signal(&impl->wake);
    pthread_mutex_unlock(&impl->lock);
    pthread_join(impl->watchdog, NULL);
    impl->watchdog_running = 0;
}

/* Finalizes a healthy communicator (its queued work completes, within the
 * timeout) and destroys it; aborts one that failed or does not finalize. */
static void close_nccl(nccl_impl *impl)
{
    if (!impl->comm)
        return;
    int timed_out = 0;
    ncclResult_t rc = ncclCommFinalize(impl->comm);
    if (rc == ncclInProgress)
        rc = settle(impl->comm, impl->timeout, &timed_out);
    if (rc == ncclSuccess)
        ncclCommDestroy(impl->comm);
    else
        ncclCommAbort(impl->comm);
    impl->comm = NULL;
}

static void nccl_destroy(zrt__comm *c)
{
    if (!c)
        return;
    nccl_impl *impl = c->impl;
    stop_watchdog(impl);
    cudaSetDevice(impl->device);
    close_nccl(impl);
    if (impl->stream)
        cudaStreamSynchronize(impl->stream); /* the events below are done */
    while (impl->watched) {
        watch *w = impl->watched;
        impl->watched = w->next;
        cudaEventDestroy(w->done);
        free(w);
    }
    if (impl->ready)
        cudaEventDestroy(impl->ready);
    if (impl->stream)
        cudaStreamDestroy(impl->stream);
    pthread_cond_destroy(&impl->wake);
    pthread_mutex_destroy(&impl->lock);
    if (impl->mpi)
        impl->mpi->ops->destroy(impl->mpi);
    free(impl);
    free(c);
}

static zrt_status nccl_split(zrt__comm *c, int color, int key, zrt__comm **out);

static const zrt__comm_ops nccl_ops = {
    .name = "nccl",
    .reduce_scatter = nccl_reduce_scatter,
    .all_gather = nccl_all_gather,
    .all_reduce = nccl_all_reduce,
    .broadcast = nccl_broadcast,
    .send = nccl_send,
    .recv = nccl_recv,
    .split = nccl_split,
    .test = nccl_test,
    .wait = nccl_wait,
    .barrier = nccl_barrier,
    .agree = nccl_agree,
    .abort_job = nccl_abort_job,
    .destroy = nccl_destroy,
};

/* Every rank agrees on one outcome: a rank that failed made its sentence;
 * the others name the first rank that failed. */
static zrt_status agree_or_fail(zrt__comm *c, zrt_status local, const char *step)
{
    nccl_impl *impl = c->impl;
    int first = -1;
    ZRT_CHECK(impl->mpi->ops->agree(impl->mpi, local, &first));
    if (local != ZRT_OK)
        return local;
    if (first >= 0)
        return zrt__fail(c->err, ZRT_ERR_REMOTE,
                         "cannot create the NCCL communicator: rank %d failed %s", first,
                         step);
    return ZRT_OK;
}

/* NCCL needs a GPU per rank: refuse when a rank of this host has ours. */
static zrt_status check_own_device(zrt__comm *c, int device)
{
    char mine[BUS_ID_LEN] = {0};
    cudaError_t rc = cudaDeviceGetPCIBusId(mine, BUS_ID_LEN, device);
    if (rc != cudaSuccess)
        return cuda_fail(c, rc, "cudaDeviceGetPCIBusId", "the NCCL communicator");
    char *all = calloc((size_t)c->local_size, BUS_ID_LEN);
    if (!all)
        return zrt__fail(c->err, ZRT_ERR_OUT_OF_MEMORY, "cannot allocate %d bus ids",
                         c->local_size);
    MPI_Comm node;
    zrt_status st = ZRT_OK;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL,
                            &node) != MPI_SUCCESS) {
        st = zrt__fail(c->err, ZRT_ERR_COMM, "MPI_Comm_split_type failed");
    } else {
        if (MPI_Allgather(mine, BUS_ID_LEN, MPI_CHAR, all, BUS_ID_LEN, MPI_CHAR, node) !=
            MPI_SUCCESS)
            st = zrt__fail(c->err, ZRT_ERR_COMM,
                           "MPI_Allgather of the GPUs' bus ids failed");
        MPI_Comm_free(&node);
    }
    for (int r = 0; st == ZRT_OK && r < c->local_size; r++) {
        if (r != c->local_rank &&
            strncmp(all + (size_t)r * BUS_ID_LEN, mine, BUS_ID_LEN) == 0)
            st = zrt__fail(
                c->err, ZRT_ERR_UNSUPPORTED,
                "the nccl communicator needs one GPU per rank, but local ranks "
                "%d and %d of this host share GPU %d (%s): use \"communicator\": "
                "\"mpi\", which stages device buffers through host memory, or "
                "start at most as many ranks per host as it has GPUs",
                c->local_rank < r ? c->local_rank : r,
                c->local_rank < r ? r : c->local_rank, device, mine);
    }
    free(all);
    return st;
}

/* Rank 0's ncclUniqueId, broadcast over MPI. */
static zrt_status share_unique_id(zrt__comm *c, ncclUniqueId *id)
{
    nccl_impl *impl = c->impl;
    zrt_status st = ZRT_OK;
    memset(id, 0, sizeof *id);
    if (c->rank == 0) {
        ncclResult_t rc = ncclGetUniqueId(id);
        if (rc != ncclSuccess)
            st = nccl_fail(c, rc, "ncclGetUniqueId", "the NCCL communicator");
    }
    ZRT_CHECK(agree_or_fail(c, st, "to make the ncclUniqueId"));
    zrt__comm_req *req = NULL;
    ZRT_CHECK(impl->mpi->ops->broadcast(impl->mpi, id, sizeof *id, 0, &req));
    return impl->mpi->ops->wait(impl->mpi, req);
}

/* A nonblocking communicator, polled until ready for at most the timeout. */
static zrt_status init_nccl(zrt__comm *c, const ncclUniqueId *id)
{
    nccl_impl *impl = c->impl;
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclComm_t comm = NULL;
    ncclResult_t rc = ncclCommInitRankConfig(&comm, c->size, *id, c->rank, &config);
    int timed_out = 0;
    if (rc == ncclInProgress && comm)
        rc = settle(comm, impl->timeout, &timed_out);
    if (rc == ncclSuccess) {
        impl->comm = comm;
        return ZRT_OK;
    }
    zrt_status st;
    if (timed_out)
        st =
            zrt__fail(c->err, ZRT_ERR_REMOTE,
                      "ncclCommInitRankConfig of %d ranks did not complete within %.1f s "
                      "(comm_timeout_seconds): a rank is missing or stuck",
                      c->size, impl->timeout);
    else
        st = nccl_fail(c, rc, "ncclCommInitRankConfig", "the NCCL communicator");
    if (comm)
        ncclCommAbort(comm);
    return st;
}

static zrt_status make_stream_and_event(zrt__comm *c)
{
    nccl_impl *impl = c->impl;
    cudaError_t rc = cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking);
    if (rc != cudaSuccess) {
        impl->stream = NULL;
        return cuda_fail(c, rc, "cudaStreamCreateWithFlags", "the NCCL communicator");
    }
    rc = cudaEventCreateWithFlags(&impl->ready, cudaEventDisableTiming);
    if (rc != cudaSuccess) {
        impl->ready = NULL;
        return cuda_fail(c, rc, "cudaEventCreateWithFlags", "the NCCL communicator");
    }
    return ZRT_OK;
}

static zrt_status start_watchdog(zrt__comm *c)
{
    nccl_impl *impl = c->impl;
    int rc = pthread_create(&impl->watchdog, NULL, watchdog_main, impl);
    char why[128];
    if (rc != 0)
        return zrt__fail(c->err, ZRT_ERR_INTERNAL,
                         "cannot start the NCCL watchdog thread: %s",
                         zrt__errno_text(rc, why, sizeof why));
    impl->watchdog_running = 1;
    return ZRT_OK;
}

/* The impl's mutex and condition (the condition on the monotonic clock the
 * watchdog sleeps by). */
static zrt_status init_sync(zrt__comm *c, nccl_impl *impl)
{
    pthread_condattr_t attr;
    if (pthread_mutex_init(&impl->lock, NULL) != 0 || pthread_condattr_init(&attr) != 0)
        return zrt__fail(c->err, ZRT_ERR_INTERNAL,
                         "cannot create the NCCL watchdog's lock");
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&impl->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_destroy(&impl->lock);
        return zrt__fail(c->err, ZRT_ERR_INTERNAL,
                         "cannot create the NCCL watchdog's lock");
    }
    return ZRT_OK;
}

/* Everything after the inner MPI communicator; on failure nccl_destroy
 * undoes what was made. */
static zrt_status build(zrt__comm *c)
{
    nccl_impl *impl = c->impl;
    zrt_status st = ZRT_OK;
    cudaError_t rc = cudaSetDevice(impl->device);
    if (rc != cudaSuccess)
        st = cuda_fail(c, rc, "cudaSetDevice", "the NCCL communicator");
    if (st == ZRT_OK)
        st = check_own_device(c, impl->device);
    ZRT_CHECK(agree_or_fail(c, st, "its GPU check (see that rank's error)"));
    ncclUniqueId id;
    ZRT_CHECK(share_unique_id(c, &id));
    st = agree_or_fail(c, init_nccl(c, &id), "ncclCommInitRankConfig");
    if (st != ZRT_OK && impl->comm) { /* a peer's failed: ours cannot finalize */
        ncclCommAbort(impl->comm);
        impl->comm = NULL;
    }
    ZRT_CHECK(st);
    ZRT_CHECK(make_stream_and_event(c));
    return start_watchdog(c);
}

zrt_status zrt__comm_nccl_create(zrt__backend *be, zrt__errbuf *err,
                                 double timeout_seconds, zrt__comm **out)
{
    int device = zrt__backend_cuda_device(be);
    if (device < 0 || be->caps.device_is_host || !be->stream)
        return zrt__fail(err, ZRT_ERR_UNSUPPORTED,
                         "the nccl communicator needs the cuda backend (backend '%s')",
                         be->ops->name);
    if (!(timeout_seconds >= 0))
        return zrt__fail(err, ZRT_ERR_INVALID_ARG, "comm_timeout_seconds %g is negative",
                         timeout_seconds);
    zrt__comm *c = calloc(1, sizeof *c);
    nccl_impl *impl = calloc(1, sizeof *impl);
    if (!c || !impl) {
        free(c);
        free(impl);
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot allocate the nccl communicator");
    }
    *c = (zrt__comm){.ops = &nccl_ops,
                     .be = be,
                     .err = err,
                     .impl = impl,
                     .timeout_seconds = timeout_seconds,
                     .next_layer = -1};
    impl->device = device;
    impl->timeout = timeout_seconds;
    zrt_status st = init_sync(c, impl);
    if (st != ZRT_OK) {
        free(impl);
        free(c);
        return st;
    }
    st = zrt__comm_mpi_create(be, err, &impl->mpi);
    if (st == ZRT_OK) {
        /* host buffers, agree and barrier: bounded like NCCL's collectives */
        impl->mpi->timeout_seconds = timeout_seconds;
        c->rank = impl->mpi->rank;
        c->size = impl->mpi->size;
        c->local_rank = impl->mpi->local_rank;
        c->local_size = impl->mpi->local_size;
        st = build(c);
    }
    if (st != ZRT_OK) {
        nccl_destroy(c);
        return st;
    }
    *out = c;
    return ZRT_OK;
}

/* ---- split ------------------------------------------------------------------ */

/* ncclCommSplit of the parent's communicator (collective over the parent;
 * nonblocking, polled for at most the timeout). */
static zrt_status split_nccl(zrt__comm *parent, zrt__comm *child, int color, int key)
{
    nccl_impl *p = parent->impl, *impl = child->impl;
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclComm_t comm = NULL;
    int timed_out = 0;
    pthread_mutex_lock(&p->lock);
    ncclResult_t rc = p->failed == ZRT_OK
                          ? ncclCommSplit(p->comm, color, key, &comm, &config)
                          : ncclInvalidUsage;
    if (rc == ncclInProgress && comm)
        rc = settle(comm, p->timeout, &timed_out);
    pthread_mutex_unlock(&p->lock);
    if (rc == ncclSuccess) {
        impl->comm = comm;
        return ZRT_OK;
    }
    if (comm)
        ncclCommAbort(comm);
    if (timed_out)
        return zrt__fail(child->err, ZRT_ERR_REMOTE,
                         "ncclCommSplit (color %d) did not complete within %.1f s "
                         "(comm_timeout_seconds): a rank is missing or stuck",
                         color, p->timeout);
    return nccl_fail(child, rc, "ncclCommSplit", "a sub-communicator");
}

/* A sub-communicator of the ranks with the same color, ranked by key, as
 * the mpi communicator's split: its own inner MPI communicator (split the
 * same way), NCCL communicator, stream, event and watchdog. Collective over
 * c. Not yet run on a GPU. */
static zrt_status nccl_split(zrt__comm *c, int color, int key, zrt__comm **out)
{
    nccl_impl *parent = c->impl;
    zrt__comm *child = calloc(1, sizeof *child);
    nccl_impl *impl = calloc(1, sizeof *impl);
    if (!child || !impl) {
        free(child);
        free(impl);
        return zrt__fail(c->err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot allocate a split nccl communicator");
    }
    *child = (zrt__comm){.ops = &nccl_ops,
                         .be = c->be,
                         .err = c->err,
                         .impl = impl,
                         .timeout_seconds = c->timeout_seconds,
                         .next_layer = -1};
    impl->device = parent->device;
    impl->timeout = parent->timeout;
    zrt_status st = init_sync(child, impl);
    if (st != ZRT_OK) {
        free(impl);
        free(child);
        return st;
    }
    st = parent->mpi->ops->split(parent->mpi, color, key, &impl->mpi);
    if (st == ZRT_OK) {
        child->rank = impl->mpi->rank;
        child->size = impl->mpi->size;
        child->local_rank = impl->mpi->local_rank;
        child->local_size = impl->mpi->local_size;
        st = agree_or_fail(c, split_nccl(c, child, color, key), "ncclCommSplit");
    }
    if (st == ZRT_OK)
        st = make_stream_and_event(child);
    if (st == ZRT_OK)
        st = start_watchdog(child);
    if (st != ZRT_OK) {
        nccl_destroy(child);
        return st;
    }
    *out = child;
    return ZRT_OK;
}
