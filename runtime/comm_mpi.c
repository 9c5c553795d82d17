/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/comm_mpi.c — the communicator over Open MPI, on host buffers (device
 * buffers are staged through them).
 *
 * Reductions are ordered, in one of two routings (set_hierarchy, from the
 * config's comm_hierarchy and comm_group_size; flat until it is called, and
 * always for the nccl communicator's MPI part):
 *
 * Flat: every rank sends block j of its buffer to rank j (MPI_Ialltoall),
 * and rank j sums the blocks it received in rank order. The traffic equals
 * a ring reduce-scatter's ((N-1)/N of the buffer per rank); the cost is a
 * scratch buffer of the buffer's size, charged to the 'comm' category until
 * the request is waited, and a reduction that runs when the exchange
 * completes. An all-reduce is that reduce-scatter followed by sending the
 * reduced block to every peer, so both give the same bits for the same
 * element. All-gather and broadcast move bytes and are MPI's own
 * non-blocking collectives.
 *
 * Hierarchical: the N ranks form G groups of R consecutive ranks (a host
 * each, or comm_group_size), rank r = g * R + k. A reduce-scatter runs in
 * two phases. Within the group, local rank k receives from each member m
 * the G blocks {g' * R + k : g'} of m's buffer (sent straight from it with
 * an MPI hvector type: no packing) into row m of the scratch, R rows of G
 * blocks, and sums them in member order into its own row, which received
 * nothing (its own blocks are read from the input). Across groups, rank
 * (g, k) sends partial g' to rank (g', k), receives the other groups'
 * partials of its block into a row already summed (row 0, or 1 on local
 * rank 0), and sums the G partials in group order into block r. So
 * element i is ((x0 + x1) + (x2 + x3)) + (x4 + x5) for 3 groups of 2: an
 * order fixed by the groups, the same on every rank, in every run and at
 * every ZeRO stage (16-bit partials are rounded to their type between the
 * levels; the sum within each level is in f32). The scratch is one buffer,
 * as flat (zero/memplan.c predicts both alike). Each rank sends N - 1
 * blocks in all, as flat, but only G - 1 of them to other groups where flat
 * sends N - R: the bytes between groups drop by R. An all-gather runs the
 * other way, across groups (rank (g, k) gets blocks g' * R + k), then
 * within (the G blocks it holds to each member, strided in place), with no
 * scratch; an all-reduce is the hierarchical reduce-scatter, then that
 * all-gather of the reduced blocks (its elements equal reduce-scatter's,
 * bit for bit). With one group, or groups of one rank, there is one level
 * and the routing is flat. Broadcast stays MPI's.
 *
 * Quantized (qgZ, reduce_scatter_quantized / all_reduce_quantized, f32
 * only): the same routings, with every block quantized (zrt__quant: int8
 * or int4, a scale per q.block elements restarting at each rank block)
 * where it is sent, this rank's own included, so every contribution carries
 * the same kind of error. At the start the N rank blocks are quantized into
 * one send buffer of N parts (flat: part j for rank j; hierarchical: row m
 * for member m, its G parts contiguous, so no MPI type is needed) and the
 * input is not read again. Flat: an all-to-all of the parts, then the N
 * received parts dequantized into this rank's block in rank order (the
 * first written, each next one added: a multiply and an add per element).
 * Hierarchical: within the group the same, giving G partials; each partial
 * is summed in this rank's output block (free until the last phase), then
 * quantized again into its own row of the receive buffer (which received
 * nothing), sent across groups, and the G quantized partials summed in
 * group order. The receive buffer holds N parts as the scratch does, so a
 * quantized reduction holds two buffers of N parts (zero/memplan.c). An
 * all-reduce's gather of the reduced blocks then moves f32.
 *
 * Every phase that starts when another completes (an all-reduce's second
 * phase, every hierarchical phase) uses point-to-point messages: phases
 * complete at different times on different ranks, and collectives (on
 * sub-communicators too) must start in one order everywhere. Each such
 * collective takes PHASE_TAGS message tags at its start (the count of them
 * started so far, the same on every rank), one per phase.
 *
 * Sub-communicators: split (MPI_Comm_split by color and key) makes a
 * communicator of some of the ranks, flat whatever its parent's routing,
 * with its own requests, tags and traffic; hybrid sharding's shard groups
 * and replica sets (zero/context.c). It does not own MPI, so it must be
 * destroyed before the communicator it came from.
 *
 * Staging: on a backend whose device is not the host (the cuda backend, when
 * two or more ranks share one GPU and NCCL cannot be used), a collective whose
 * send or recv buffer is device memory (zrt__be_on_device) runs on host copies.
 * Its device input is copied into host buffers from the backend (tier host,
 * category comm: host memory charged to host/comm, page-locked with ops->pin
 * so the copies run at full speed), the host algorithm below runs on those,
 * and the result is copied back into the device buffer when the request
 * completes: in wait, or in test once it reports done. The staging is freed
 * in wait, like the scratch. Both copies go through ops->copy, which
 * synchronizes the backend's stream when one side is host memory: the host
 * blocks for them (the exchange itself stays non-blocking). In-place forms
 * stay in place on the staged copy. The scratch and the padding are host
 * memory (host/comm) on such a backend. Host buffers, and every buffer of a
 * backend whose device is the host (cpu), take exactly the path they took
 * before staging existed: same calls, same bytes charged.
 *
 * Progress: MPI moves data inside MPI calls. The engine calls test() on its
 * outstanding requests at every layer boundary. test(), wait() and the
 * blocking calls (barrier, agree) advance every request in flight, not only
 * the one asked about: a phase that starts when another completes (an
 * all-reduce's second phase, every hierarchical phase) must start on every
 * rank whatever order the ranks wait in, or two ranks waiting on different
 * requests would each hold back what the other needs.
 *
 * Lost peers: MPI's own waits end only through TCP's timeouts (many minutes)
 * when a peer vanishes, so nothing here blocks in MPI. wait, barrier and
 * agree poll (MPI_Test: spinning for 100 us, yielding the core between polls
 * up to 10 ms, then napping 50-100 us, so a long wait does not burn a core)
 * for at most c->timeout_seconds (comm_timeout_seconds; 0: no
 * limit), counted from the start of that wait: the time a rank blocks, not
 * the collective's age, so compute between start and wait does not count.
 * On expiry the call fails with ZRT_ERR_REMOTE and one sentence naming the
 * collective, its bytes, the layer it served (zrt__comm_for_layer), its
 * hierarchical phase, and the peers that did not answer where they are
 * known (a point-to-point phase names the ranks whose message has not come
 * or who have not taken ours; an MPI collective cannot say which rank is
 * missing). The communicator is failed
 * from then on: every later call returns that sentence at once, and destroy
 * neither frees the MPI communicator nor finalizes MPI (a lost peer would
 * hold them): the program ends the job (zrt_abort_job -> MPI_Abort), which
 * also ends the peers still waiting, each within its own timeout at most.
 *
 * Traffic: every collective started adds what this rank sends to
 * c->traffic (comm.h), split per peer by whether the peer is on this host
 * (MPI_COMM_TYPE_SHARED: the real hosts, whatever the groups), and the
 * bytes to other groups apart. The reductions' bytes are exact for the
 * algorithms above (flat: block j to rank j, an all-reduce's reduced block
 * to each peer; hierarchical: each phase's blocks to its peers), and so are
 * hierarchical all-gathers'; flat all-gather and broadcast are MPI's, whose
 * algorithms are opaque, so they count the direct ideal: each rank's block
 * to each of the N-1 peers (a ring's (N-1)/N of the buffer per rank), the
 * broadcast root's buffer to each peer.
 */
#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm.h"

typedef struct mpi_impl {
    MPI_Comm comm;
    int owns_mpi;            /* we called MPI_Init_thread, so we finalize */
    unsigned next_tag;       /* collectives with point-to-point phases
                                started, for their message tags */
    zrt__comm_req *active;   /* requests not yet waited, newest first */
    int agree_in, agree_out; /* agree's operands: MPI may still write them
                                after a timeout, so not on the stack */
    zrt_status failed;       /* ZRT_OK until a wait timed out */
    char why[ZRT__ERRBUF_SIZE];
    char *hosts;  /* each rank's host name, HOST_LEN bytes apiece, for the
                     timeout sentence; NULL if they could not be gathered */
    int *host_id; /* each rank's host as the lowest rank on it: the traffic
                     split and the groups per host */
} mpi_impl;

enum { HOST_LEN = 64 }; /* a host name's bytes in mpi_impl.hosts, NUL included */

/* MPI guarantees tags up to 32767. A collective with point-to-point phases
 * takes PHASE_TAGS consecutive tags, one per phase. */
enum { TAG_SPACE = 30000, PHASE_TAGS = 4 };
/* Point-to-point sends and receives take the tags from TAG_SPACE on. */
_Static_assert(TAG_SPACE + ZRT__P2P_TAG_MAX <= 32767, "point-to-point tags beyond MPI's");
enum { TAG_GROUP_REDUCE, TAG_CROSS_REDUCE, TAG_CROSS_GATHER, TAG_GATHER };

/* A wait's polling, by how long it has waited: spin, then yield the core
 * between polls (to a peer rank sharing it, without a timer's latency), then
 * nap, so a long wait costs a few percent of a core. */
static const double SPIN_SECONDS = 100e-6, YIELD_SECONDS = 10e-3, LONG_NAP_AFTER = 100e-3;
enum { NAP_US = 50, LONG_NAP_US = 100 };

/* What a request does, for its timeout sentence and its traffic. */
typedef enum coll_kind {
    REDUCE_SCATTER,
    ALL_REDUCE,
    ALL_GATHER,
    BROADCAST,
    SEND,
    RECV
} coll_kind;

static const char *const kind_names[] = {"reduce-scatter", "all-reduce", "all-gather",
                                         "broadcast",      "send",       "recv"};

/* A staged collective's host copies and where its result goes back. */
typedef struct staging {
    zrt__buf in, out;     /* pinned host copies of device buffers */
    void *back_dst;       /* the caller's device buffer the result goes to, or NULL */
    const void *back_src; /* the staged result */
    size_t back_bytes;
} staging;

/* One collective in flight: its current phase. Flat: a reduction's
 * exchange, then an all-reduce's gather of the reduced blocks (all-gather and
 * broadcast: MPI's collective, in PHASE_GATHER). Hierarchical: a reduction
 * within the group, then across groups; an all-gather (an all-reduce's
 * second half) across groups, then within. */
typedef enum req_phase {
    PHASE_EXCHANGE,
    PHASE_GROUP_REDUCE,
    PHASE_CROSS_REDUCE,
    PHASE_GATHER,
    PHASE_CROSS_GATHER,
    PHASE_GROUP_GATHER,
    PHASE_DONE
} req_phase;

struct zrt__comm_req {
    MPI_Request *mpi; /* the current phase's requests */
    int *peer;        /* p2p: the rank each of them exchanges with */
    int nmpi;
    int p2p; /* the current phase is point-to-point (its peers are known) */
    coll_kind kind;
    size_t bytes; /* of the full buffer (broadcast: the buffer) */
    int layer;    /* the layer it serves, or -1 */
    int tag;      /* point-to-point phases: the first of PHASE_TAGS tags */
    req_phase phase;
    int gathers_after_reduce; /* all-reduce: phase 2 follows */
    zrt_reduce_op op;
    zrt_dtype dtype;      /* of the reduction: f32, bf16 or f16 */
    size_t esize;         /* its bytes */
    size_t block;         /* elements per rank block */
    const char *send_buf; /* hierarchical reduction: the input */
    char *reduce_out;     /* where this rank's reduced block goes */
    char *gather_buf;     /* all-reduce: the padded full buffer */
    char *final_out;      /* all-reduce with padding: copy here at the end */
    size_t final_count;
    zrt__buf scratch;    /* received blocks, size * block elements
                            (hierarchical: R rows of G blocks) */
    const void **blocks; /* the received blocks, in rank order */
    zrt__buf padded;     /* all-reduce whose count is not a multiple */
    /* qgZ: how the reduction quantizes (bits 0: it does not), the bytes of
     * one quantized rank block, and the N parts quantized to send (the
     * scratch then holds N received parts) */
    zrt__quant quant;
    size_t qpart;
    zrt__buf qsend;
    staging stage;       /* device buffers on a host-staging backend */
    zrt__comm_req *next; /* in mpi_impl.active */
};

static MPI_Comm comm_of(const zrt__comm *c)
{
    return ((const mpi_impl *)c->impl)->comm;
}

static zrt_status mpi_fail(zrt__comm *c, int code, const char *call)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", code);
    return zrt__fail(c->err, ZRT_ERR_COMM, "%s failed: %s", call, text);
}

#define MPI_TRY(c, call)                                                                 \
    do {                                                                                 \
        int zrt__rc_ = (call);                                                           \
        if (zrt__rc_ != MPI_SUCCESS)                                                     \
            return mpi_fail((c), zrt__rc_, #call);                                       \
    } while (0)

/* MPI counts are ints, and every collective here moves MPI_BYTE: per_rank
 * is the bytes one MPI call sees per rank. */
static zrt_status check_count(zrt__comm *c, size_t per_rank, const char *what)
{
    if (per_rank > (size_t)INT_MAX)
        return zrt__fail(c->err, ZRT_ERR_UNSUPPORTED,
                         "%s of %zu bytes per rank exceeds MPI's int count (2 GiB)", what,
                         per_rank);
    return ZRT_OK;
}

static zrt_status check_op(zrt__comm *c, zrt_reduce_op op, const char *what)
{
    if (op != ZRT_SUM && op != ZRT_AVG)
        return zrt__fail(c->err, ZRT_ERR_INVALID_ARG, "%s: unknown reduce op %d", what,
                         (int)op);
    return ZRT_OK;
}

/* ---- lost peers ----------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A poll that found nothing, `waited` seconds into the wait. */
static void pause_poll(double waited)
{
    if (waited < SPIN_SECONDS)
        return;
    if (waited < YIELD_SECONDS) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, (waited < LONG_NAP_AFTER ? NAP_US : LONG_NAP_US) * 1000L};
    nanosleep(&ts, NULL);
}

/* After a timeout the communicator is unusable: every call says why. */
static zrt_status check_failed(zrt__comm *c)
{
    mpi_impl *impl = c->impl;
    if (impl->failed == ZRT_OK)
        return ZRT_OK;
    return zrt__fail(c->err, impl->failed, "the MPI communicator failed earlier: %s",
                     impl->why);
}

/* Where a hierarchical request is, for its timeout sentence. */
static const char *phase_where(const zrt__comm_req *req)
{
    switch (req->phase) {
    case PHASE_GROUP_REDUCE:
    case PHASE_GROUP_GATHER:
        return " (hierarchical, within the group)";
    case PHASE_CROSS_REDUCE:
    case PHASE_CROSS_GATHER:
        return " (hierarchical, across groups)";
    default:
        return "";
    }
}

/* "all-gather of 4.00 KiB (4096 bytes; 2.00 KiB per rank) for layer 3" */
static void describe(const zrt__comm *c, const zrt__comm_req *req, char *buf, size_t size)
{
    char total[48], block[48] = "", layer[32] = "";
    zrt__fmt_bytes((long long)req->bytes, total, sizeof total);
    if (req->kind == REDUCE_SCATTER || req->kind == ALL_GATHER)
        zrt__fmt_bytes((long long)(req->bytes / (size_t)c->size), block, sizeof block);
    if (req->layer >= 0)
        snprintf(layer, sizeof layer, " for layer %d", req->layer);
    snprintf(buf, size, "%s of %s%s%s%s", kind_names[req->kind], total,
             *block ? ", " : "", *block ? block : "", *block ? " per rank" : "");
    size_t used = strlen(buf);
    snprintf(buf + used, size - used, "%s%s", layer, phase_where(req));
}

/* Appends host name h to the list in buf ("zrt-h1, zrt-h2") unless it is
 * there already. */
static void add_host(char *buf, size_t size, const char *h)
{
    size_t used = strlen(buf), n = strlen(h);
    for (const char *p = buf; (p = strstr(p, h)) != NULL; p += n)
        if ((p == buf || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return;
    if (used + n + 3 < size)
        snprintf(buf + used, size - used, "%s%s", used ? ", " : "", h);
}

/* The host of rank r, or NULL when the names were not gathered. */
static const char *host_of(const zrt__comm *c, int r)
{
    const mpi_impl *impl = c->impl;
    return impl->hosts ? impl->hosts + (size_t)r * HOST_LEN : NULL;
}

/* Whether the current phase's messages with `peer` (a point-to-point
 * phase) have not all completed. Asking completes those that did, which is
 * harmless: the request is failing. */
static int peer_pending(zrt__comm_req *req, int peer)
{
    int pending = 0;
    for (int i = 0; i < req->nmpi; i++) {
        int flag = 0;
        if (req->peer[i] != peer)
            continue;
        if (MPI_Test(&req->mpi[i], &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS || !flag)
            pending = 1;
    }
    return pending;
}

/* A point-to-point phase (an all-reduce's second phase, every hierarchical
 * phase) knows its peers, so those whose message has not come, or who have
 * not taken ours, are named: "ranks 2, 3". */
static int missing_peers(zrt__comm *c, zrt__comm_req *req, char *buf, size_t size,
                         char *hosts, size_t hosts_size)
{
    if (!req->p2p || req->phase == PHASE_DONE)
        return 0;
    int missing = 0;
    size_t used = 0;
    buf[0] = '\0';
    for (int peer = 0; peer < c->size; peer++) {
        if (peer == c->rank || !peer_pending(req, peer))
            continue;
        int w = snprintf(buf + used, size - used, "%s%d", missing ? ", " : "", peer);
        if (w > 0 && (size_t)w < size - used)
            used += (size_t)w;
        if (host_of(c, peer))
            add_host(hosts, hosts_size, host_of(c, peer));
        missing++;
    }
    return missing;
}

/* Fails the communicator for good with the sentence about `what`. */
static zrt_status fail_lost(zrt__comm *c, const char *what, const char *peers,
                            double waited)
{
    mpi_impl *impl = c->impl;
    snprintf(impl->why, sizeof impl->why,
             "%s did not complete within %.1f s (comm_timeout_seconds %g): %s; a peer "
             "is lost or stuck, so the job must end",
             what, waited, c->timeout_seconds, peers);
    impl->failed = ZRT_ERR_REMOTE;
    return zrt__fail(c->err, ZRT_ERR_REMOTE, "%s", impl->why);
}

/* Who did not answer, when nothing tells which peer it was. */
static void unknown_peers(const zrt__comm *c, char *buf, size_t size)
{
    char hosts[160] = "";
    for (int r = 0; r < c->size; r++)
        if (r != c->rank && host_of(c, r))
            add_host(hosts, sizeof hosts, host_of(c, r));
    snprintf(buf, size,
             "no answer from the other %d rank%s (%s%s%san MPI collective cannot tell "
             "which is missing)",
             c->size - 1, c->size > 2 ? "s" : "", *hosts ? "on " : "", hosts,
             *hosts ? "; " : "");
}

static zrt_status timed_out(zrt__comm *c, zrt__comm_req *req, double waited)
{
    char what[160], who[256], peers[480], hosts[160] = "";
    describe(c, req, what, sizeof what);
    int missing = missing_peers(c, req, who, sizeof who, hosts, sizeof hosts);
    if (missing) {
        snprintf(peers, sizeof peers, "no answer from rank%s %s%s%s%s",
                 missing > 1 ? "s" : "", who, *hosts ? " (on " : "", hosts,
                 *hosts ? ")" : "");
    } else {
        unknown_peers(c, peers, sizeof peers);
    }
    return fail_lost(c, what, peers, waited);
}

/* Whether a wait that began at `start` has used up the timeout; *waited
 * becomes how long it has waited. */
static int expired(const zrt__comm *c, double start, double *waited)
{
    *waited = now_seconds() - start;
    return c->timeout_seconds > 0 && *waited > c->timeout_seconds;
}

/* ---- traffic ---------------------------------------------------------------- */

/* Rank r's group: its group of c->group_size ranks, or with no grouping
 * its host. */
static int group_of(const zrt__comm *c, int r)
{
    const mpi_impl *impl = c->impl;
    return c->group_size > 0 ? r / c->group_size : impl->host_id[r];
}

/* bytes sent to `peer`, by whether it runs on this host (the real hosts,
 * whatever the groups) and whether it is in this rank's group. */
static void count_to(zrt__comm *c, zrt__comm_bytes *b, int peer, uint64_t bytes)
{
    const mpi_impl *impl = c->impl;
    if (impl->host_id[peer] == impl->host_id[c->rank])
        b->same_host += bytes;
    else
        b->other_host += bytes;
    if (group_of(c, peer) != group_of(c, c->rank))
        c->traffic.other_group += bytes;
}

static zrt__comm_bytes *bytes_for(zrt__comm *c, int layer)
{
    return layer >= 0 ? &c->traffic.layers : &c->traffic.other;
}

/* This rank sends per_peer bytes to each of its N-1 peers. */
static void count_sent(zrt__comm *c, int layer, uint64_t per_peer)
{
    for (int peer = 0; peer < c->size; peer++)
        if (peer != c->rank)
            count_to(c, bytes_for(c, layer), peer, per_peer);
    c->traffic.collectives++;
}

/* ---- requests --------------------------------------------------------------- */

static zrt_status new_request(zrt__comm *c, zrt__comm_req **out)
{
    zrt__comm_req *req = calloc(1, sizeof *req);
    if (!req)
        return zrt__fail(c->err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot allocate a communication request");
    req->mpi = calloc(2 * (size_t)c->size, sizeof *req->mpi);
    req->peer = calloc(2 * (size_t)c->size, sizeof *req->peer);
    if (!req->mpi || !req->peer) {
        free(req->mpi);
        free(req->peer);
        free(req);
        return zrt__fail(c->err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot allocate a communication request");
    }
    for (int i = 0; i < 2 * c->size; i++)
        req->mpi[i] = MPI_REQUEST_NULL;
    req->nmpi = 1;
    req->layer = c->next_layer;
    mpi_impl *impl = c->impl;
    req->next = impl->active;
    impl->active = req;
    *out = req;
    return ZRT_OK;
}

static void free_request(zrt__comm *c, zrt__comm_req *req)
{
    mpi_impl *impl = c->impl;
    for (zrt__comm_req **link = &impl->active; *link; link = &(*link)->next) {
        if (*link == req) {
            *link = req->next;
            break;
        }
    }
    free(req->blocks);
    free(req->mpi);
    free(req->peer);
    c->be->ops->free(c->be, &req->scratch);
    c->be->ops->free(c->be, &req->padded);
    c->be->ops->free(c->be, &req->qsend);
    c->be->ops->free(c->be, &req->stage.in);
    c->be->ops->free(c->be, &req->stage.out);
    free(req);
}

/* Where the scratch and the padding live: device memory when the device is
 * the host (cpu: unchanged), host memory when MPI cannot read the device. */
static zrt_tier scratch_tier(const zrt__comm *c)
{
    return c->be->caps.device_is_host ? ZRT_TIER_DEVICE : ZRT_TIER_HOST;
}

/* Blocks travel as bytes: a 16-bit block is 2 * block bytes. */
static int block_bytes(const zrt__comm_req *req)
{
    return (int)(req->block * req->esize);
}

/* The byte offset of block j of a buffer of blocks. */
static size_t block_at(const zrt__comm_req *req, size_t j)
{
    return j * req->block * req->esize;
}

/* A reduction's block table and scratch: N blocks, charged to 'comm' until
 * the request is waited (flat and hierarchical alike: zero/memplan.c). */
static zrt_status alloc_scratch(zrt__comm *c, zrt__comm_req *req)
{
    req->blocks = calloc((size_t)c->size, sizeof *req->blocks);
    if (!req->blocks)
        return zrt__fail(c->err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot allocate a reduction's block table");
    return c->be->ops->alloc(c->be, block_at(req, (size_t)c->size), scratch_tier(c),
                             ZRT_CAT_COMM, "reduction scratch", &req->scratch);
}

/* Flat phase 1 of a reduction: block j of send goes to rank j. */
static zrt_status start_exchange(zrt__comm *c, zrt__comm_req *req, const void *send)
{
    ZRT_CHECK(alloc_scratch(c, req));
    req->phase = PHASE_EXCHANGE;
    MPI_TRY(c, MPI_Ialltoall(send, block_bytes(req), MPI_BYTE, req->scratch.ptr,
                             block_bytes(req), MPI_BYTE, comm_of(c), &req->mpi[0]));
    return ZRT_OK;
}

/* Point-to-point messages of the current phase, each remembered with its
 * peer (the timeout names the peers that did not answer). */
static zrt_status post_recv(zrt__comm *c, zrt__comm_req *req, void *buf, int count,
                            MPI_Datatype type, int peer, int tag)
{
    int i = req->nmpi++;
    req->peer[i] = peer;
    MPI_TRY(c, MPI_Irecv(buf, count, type, peer, tag, comm_of(c), &req->mpi[i]));
    return ZRT_OK;
}

static zrt_status post_send(zrt__comm *c, zrt__comm_req *req, const void *buf, int count,
                            MPI_Datatype type, int peer, int tag)
{
    int i = req->nmpi++;
    req->peer[i] = peer;
    MPI_TRY(c, MPI_Isend(buf, count, type, peer, tag, comm_of(c), &req->mpi[i]));
    return ZRT_OK;
}

/* A point-to-point phase begins: no message posted yet. */
static void begin_p2p(zrt__comm_req *req, req_phase phase)
{
    req->phase = phase;
    req->p2p = 1;
    req->nmpi = 0;
}

/* Flat phase 2 of an all-reduce: this rank's reduced block to every peer,
 * and every peer's block from it. */
static zrt_status start_block_exchange(zrt__comm *c, zrt__comm_req *req)
{
    begin_p2p(req, PHASE_GATHER);
    int tag = req->tag + TAG_GATHER;
    for (int peer = 0; peer < c->size; peer++) {
        if (peer == c->rank)
            continue;
        char *theirs = req->gather_buf + block_at(req, (size_t)peer);
        ZRT_CHECK(post_recv(c, req, theirs, block_bytes(req), MPI_BYTE, peer, tag));
        ZRT_CHECK(
            post_send(c, req, req->reduce_out, block_bytes(req), MPI_BYTE, peer, tag));
    }
    return ZRT_OK;
}

/* out = the n blocks of req->blocks summed in their order, then divided:
 * f32, or 16-bit summed in f32 and rounded once. */
static void sum_blocks(zrt__comm_req *req, char *out, int n, float divisor)
{
    if (req->dtype == ZRT_F32)
        zrt_sum_ordered_f32((float *)out, (const float *const *)req->blocks, n,
                            req->block, divisor);
    else
        zrt_sum_ordered_half((uint16_t *)out, (const uint16_t *const *)req->blocks, n,
                             req->block, divisor,
                             req->dtype == ZRT_BF16 ? ZRT_HALF_BF16 : ZRT_HALF_F16);
}

static float divisor_of(const zrt__comm *c, const zrt__comm_req *req)
{
    return req->op == ZRT_AVG ? (float)c->size : 1.0f;
}

/* The received blocks, summed in rank order into this rank's block. */
static void reduce_received(zrt__comm *c, zrt__comm_req *req)
{
    const char *base = req->scratch.ptr;
    for (int k = 0; k < c->size; k++)
        req->blocks[k] = base + block_at(req, (size_t)k);
    sum_blocks(req, req->reduce_out, c->size, divisor_of(c, req));
    /* The scratch stays until wait frees the request: memory is released
     * where the caller completes it, never where a poll happened to find it
     * done, so every run holds the same bytes at the same point (the memory
     * plan relies on it). */
}

/* ---- hierarchical phases ------------------------------------------------------ */

/* This rank's place among G groups of R consecutive ranks: rank = g * R + k. */
typedef struct place {
    int R, G, g, k;
} place;

static place place_of(const zrt__comm *c)
{
    int R = c->group_size;
    return (place){R, c->size / R, c->rank / R, c->rank % R};
}

/* The MPI types of a phase: one block, and the G blocks {g * R + m : g} of
 * a full buffer from its block m on (a stride of R blocks). */
typedef struct block_types {
    MPI_Datatype one, strided;
} block_types;

static zrt_status make_types(zrt__comm *c, const zrt__comm_req *req, block_types *t)
{
    place p = place_of(c);
    MPI_Aint stride = (MPI_Aint)block_at(req, (size_t)p.R);
    MPI_TRY(c, MPI_Type_contiguous(block_bytes(req), MPI_BYTE, &t->one));
    MPI_TRY(c, MPI_Type_commit(&t->one));
    MPI_TRY(c, MPI_Type_create_hvector(p.G, 1, stride, t->one, &t->strided));
    MPI_TRY(c, MPI_Type_commit(&t->strided));
    return ZRT_OK;
}

/* Freed once the phase's messages are posted (MPI keeps what they use). */
static void free_types(block_types *t)
{
    if (t->one != MPI_DATATYPE_NULL)
        MPI_Type_free(&t->one);
    if (t->strided != MPI_DATATYPE_NULL)
        MPI_Type_free(&t->strided);
}

/* Scratch row m (R rows of G blocks): block j of it. */
static char *scratch_block(const zrt__comm_req *req, place p, int m, int j)
{
    return (char *)req->scratch.ptr + block_at(req, (size_t)m * (size_t)p.G + (size_t)j);
}

/* Phase 2 receives into a row phase 1 has consumed: another member's. */
static int spare_row(place p)
{
    return p.k == 0 ? 1 : 0;
}

/* Reduction, within the group: member m's blocks {g * R + k : g} (the ones
 * this local rank k reduces) come into scratch row m; ours for member m go
 * to it. */
static zrt_status post_group_reduce(zrt__comm *c, zrt__comm_req *req,
                                    const block_types *t)
{
    place p = place_of(c);
    int tag = req->tag + TAG_GROUP_REDUCE;
    for (int m = 0; m < p.R; m++) {
        int peer = p.g * p.R + m;
        if (m == p.k)
            continue;
        ZRT_CHECK(post_recv(c, req, scratch_block(req, p, m, 0), p.G, t->one, peer, tag));
        ZRT_CHECK(post_send(c, req, req->send_buf + block_at(req, (size_t)m), 1,
                            t->strided, peer, tag));
    }
    return ZRT_OK;
}

/* Reduction, across groups among the ranks of local rank k: our partial of
 * block g' * R + k goes to rank (g', k); theirs of our block g * R + k
 * come into the spare row, at their group's place. */
static zrt_status post_cross_reduce(zrt__comm *c, zrt__comm_req *req,
                                    const block_types *t)
{
    place p = place_of(c);
    int tag = req->tag + TAG_CROSS_REDUCE;
    for (int gi = 0; gi < p.G; gi++) {
        int peer = gi * p.R + p.k;
        if (gi == p.g)
            continue;
        ZRT_CHECK(post_recv(c, req, scratch_block(req, p, spare_row(p), gi), 1, t->one,
                            peer, tag));
        ZRT_CHECK(
            post_send(c, req, scratch_block(req, p, p.k, gi), 1, t->one, peer, tag));
    }
    return ZRT_OK;
}

/* All-gather, across groups: our block to rank (g', k), its block
 * g' * R + k from it, in place in the full buffer. */
static zrt_status post_cross_gather(zrt__comm *c, zrt__comm_req *req,
                                    const block_types *t)
{
    place p = place_of(c);
    int tag = req->tag + TAG_CROSS_GATHER;
    const char *mine = req->gather_buf + block_at(req, (size_t)c->rank);
    for (int gi = 0; gi < p.G; gi++) {
        int peer = gi * p.R + p.k;
        if (gi == p.g)
            continue;
        ZRT_CHECK(post_recv(c, req, req->gather_buf + block_at(req, (size_t)peer), 1,
                            t->one, peer, tag));
        ZRT_CHECK(post_send(c, req, mine, 1, t->one, peer, tag));
    }
    return ZRT_OK;
}

/* All-gather, within the group: the blocks {g' * R + k : g'} we now hold
 * to every member m, its {g' * R + m : g'} from it. */
static zrt_status post_group_gather(zrt__comm *c, zrt__comm_req *req,
                                    const block_types *t)
{
    place p = place_of(c);
    int tag = req->tag + TAG_GATHER;
    for (int m = 0; m < p.R; m++) {
        int peer = p.g * p.R + m;
        if (m == p.k)
            continue;
        ZRT_CHECK(post_recv(c, req, req->gather_buf + block_at(req, (size_t)m), 1,
                            t->strided, peer, tag));
        ZRT_CHECK(post_send(c, req, req->gather_buf + block_at(req, (size_t)p.k), 1,
                            t->strided, peer, tag));
    }
    return ZRT_OK;
}

typedef zrt_status (*phase_poster)(zrt__comm *c, zrt__comm_req *req,
                                   const block_types *t);

/* Starts hierarchical phase `phase`: its types made, its messages posted. */
static zrt_status start_hier_phase(zrt__comm *c, zrt__comm_req *req, req_phase phase)
{
    phase_poster post = phase == PHASE_GROUP_REDUCE   ? post_group_reduce
                        : phase == PHASE_CROSS_REDUCE ? post_cross_reduce
                        : phase == PHASE_CROSS_GATHER ? post_cross_gather
                                                      : post_group_gather;
    block_types t = {MPI_DATATYPE_NULL, MPI_DATATYPE_NULL};
    begin_p2p(req, phase);
    zrt_status st = make_types(c, req, &t);
    if (st == ZRT_OK)
        st = post(c, req, &t);
    free_types(&t);
    return st;
}

/* Within the group: partial g' = the members' blocks g' * R + k summed in
 * member order (ours read from the input), into our own row of the
 * scratch, which received nothing. */
static void reduce_group_rows(zrt__comm *c, zrt__comm_req *req)
{
    place p = place_of(c);
    for (int gi = 0; gi < p.G; gi++) {
        for (int m = 0; m < p.R; m++)
            req->blocks[m] = m == p.k
                                 ? req->send_buf + block_at(req, (size_t)(gi * p.R + p.k))
                                 : scratch_block(req, p, m, gi);
        sum_blocks(req, scratch_block(req, p, p.k, gi), p.R, 1.0f);
    }
}

/* Across groups: the G partials of our block summed in group order (ours
 * in our row, the others' in the spare row), divided once (ZRT_AVG). */
static void reduce_group_partials(zrt__comm *c, zrt__comm_req *req)
{
    place p = place_of(c);
    for (int gi = 0; gi < p.G; gi++)
        req->blocks[gi] = scratch_block(req, p, gi == p.g ? p.k : spare_row(p), gi);
    sum_blocks(req, req->reduce_out, p.G, divisor_of(c, req));
}

/* Hierarchical reduction: the scratch (N blocks, as flat), then phase 1. */
static zrt_status start_hier_reduce(zrt__comm *c, zrt__comm_req *req, const void *send)
{
    req->send_buf = send;
    ZRT_CHECK(alloc_scratch(c, req));
    return start_hier_phase(c, req, PHASE_GROUP_REDUCE);
}

/* A collective with point-to-point phases takes its tags. Every rank
 * starts collectives in one order, so the tags pair up. */
static void take_tags(zrt__comm *c, zrt__comm_req *req)
{
    mpi_impl *impl = c->impl;
    req->tag = (int)(impl->next_tag++ % (TAG_SPACE / PHASE_TAGS)) * PHASE_TAGS;
}

/* What a hierarchical collective sends, counted at its start: a
 * reduction's G blocks to each other member and a partial to each other
 * group's rank k, an all-gather's block to each other group's rank k and
 * G blocks to each other member: the same per peer, `times` over (2: an
 * all-reduce). */
static void count_hier(zrt__comm *c, int layer, uint64_t block, uint64_t times)
{
    place p = place_of(c);
    for (int m = 0; m < p.R; m++)
        if (m != p.k)
            count_to(c, bytes_for(c, layer), p.g * p.R + m,
                     times * (uint64_t)p.G * block);
    for (int gi = 0; gi < p.G; gi++)
        if (gi != p.g)
            count_to(c, bytes_for(c, layer), gi * p.R + p.k, times * block);
    c->traffic.collectives++;
}

/* ---- quantized reductions (qgZ) --------------------------------------------- */

static int quantized(const zrt__comm_req *req)
{
    return req->quant.bits != 0;
}

/* Part j of a buffer of quantized rank blocks. */
static char *qpart_at(const zrt__buf *b, const zrt__comm_req *req, size_t j)
{
    return (char *)b->ptr + j * req->qpart;
}

/* Where the scales of a part start: after its codes, padded to 4 bytes. */
static float *qpart_scales(const zrt__comm_req *req, const char *part)
{
    size_t codes = req->quant.bits == 4 ? (req->block + 1) / 2 : req->block;
    return (float *)(part + (codes + 3) / 4 * 4);
}

/* One rank block of f32 (req->block elements) quantized into `part`. A
 * non-finite block is sent as a NaN scale and propagates into the sum
 * (docs/compression.md): the loss scaler's overflow check sees it. */
static void quantize_part(const zrt__comm_req *req, const float *x, char *part)
{
    float *scale = qpart_scales(req, part);
    if (req->quant.bits == 8)
        (void)zrt_quantize_i8(x, req->block, req->quant.block, (int8_t *)part, scale);
    else
        (void)zrt_quantize_i4(x, req->block, req->quant.block, (uint8_t *)part, scale);
}

/* out = the parts in req->blocks dequantized and summed in their order:
 * the first written, each next one added; then divided. */
static void sum_parts(const zrt__comm_req *req, int n, float *out, float divisor)
{
    size_t count = req->block, qb = req->quant.block;
    for (int i = 0; i < n; i++) {
        const char *part = req->blocks[i];
        const float *scale = qpart_scales(req, part);
        if (req->quant.bits == 8 && i == 0)
            zrt_dequantize_i8((const int8_t *)part, scale, count, qb, out);
        else if (req->quant.bits == 8)
            zrt_dequantize_add_i8((const int8_t *)part, scale, count, qb, out);
        else if (i == 0)
            zrt_dequantize_i4((const uint8_t *)part, scale, count, qb, out);
        else
            zrt_dequantize_add_i4((const uint8_t *)part, scale, count, qb, out);
    }
    if (divisor != 1.0f)
        for (size_t e = 0; e < count; e++)
            out[e] /= divisor;
}

/* The send buffer of N quantized parts and the receive buffer (the
 * scratch) of as many, both 'comm' until the request is waited. */
static zrt_status alloc_quantized(zrt__comm *c, zrt__comm_req *req)
{
    req->blocks = calloc((size_t)c->size, sizeof *req->blocks);
    if (!req->blocks)
        return zrt__fail(c->err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot allocate a reduction's block table");
    size_t bytes = req->qpart * (size_t)c->size;
    ZRT_CHECK(c->be->ops->alloc(c->be, bytes, scratch_tier(c), ZRT_CAT_COMM,
                                "quantized reduction send", &req->qsend));
    return c->be->ops->alloc(c->be, bytes, scratch_tier(c), ZRT_CAT_COMM,
                             "quantized reduction scratch", &req->scratch);
}

/* Flat: rank block j quantized into part j, then the all-to-all. */
static zrt_status start_quantized_exchange(zrt__comm *c, zrt__comm_req *req,
                                           const void *send)
{
    ZRT_CHECK(alloc_quantized(c, req));
    for (int j = 0; j < c->size; j++)
        quantize_part(req, (const float *)((const char *)send + block_at(req, (size_t)j)),
                      qpart_at(&req->qsend, req, (size_t)j));
    req->phase = PHASE_EXCHANGE;
    MPI_TRY(c, MPI_Ialltoall(req->qsend.ptr, (int)req->qpart, MPI_BYTE, req->scratch.ptr,
                             (int)req->qpart, MPI_BYTE, comm_of(c), &req->mpi[0]));
    return ZRT_OK;
}

/* The parts of a row of G: part g of row m. */
static char *qrow_part(const zrt__buf *b, const zrt__comm_req *req, place p, int m, int g)
{
    return qpart_at(b, req, (size_t)m * (size_t)p.G + (size_t)g);
}

/* Hierarchical, within the group: row m of the send buffer (blocks
 * {g * R + m : g} quantized) to member m, its row for us into our receive
 * row m. */
static zrt_status post_group_reduce_quantized(zrt__comm *c, zrt__comm_req *req)
{
    place p = place_of(c);
    int tag = req->tag + TAG_GROUP_REDUCE, row = (int)req->qpart * p.G;
    for (int m = 0; m < p.R; m++) {
        int peer = p.g * p.R + m;
        if (m == p.k)
            continue;
        ZRT_CHECK(post_recv(c, req, qrow_part(&req->scratch, req, p, m, 0), row, MPI_BYTE,
                            peer, tag));
        ZRT_CHECK(post_send(c, req, qrow_part(&req->qsend, req, p, m, 0), row, MPI_BYTE,
                            peer, tag));
    }
    return ZRT_OK;
}

/* Hierarchical, across groups: our quantized partial of block g' * R + k
 * (receive row k) to rank (g', k); theirs of our block into send row 0,
 * every part of which has been sent and read. */
static zrt_status post_cross_reduce_quantized(zrt__comm *c, zrt__comm_req *req)
{
    place p = place_of(c);
    int tag = req->tag + TAG_CROSS_REDUCE;
    for (int gi = 0; gi < p.G; gi++) {
        int peer = gi * p.R + p.k;
        if (gi == p.g)
            continue;
        ZRT_CHECK(post_recv(c, req, qrow_part(&req->qsend, req, p, 0, gi),
                            (int)req->qpart, MPI_BYTE, peer, tag));
        ZRT_CHECK(post_send(c, req, qrow_part(&req->scratch, req, p, p.k, gi),
                            (int)req->qpart, MPI_BYTE, peer, tag));
    }
    return ZRT_OK;
}

/* Hierarchical start: block g * R + m quantized into send row m, part g. */
static zrt_status start_quantized_hier(zrt__comm *c, zrt__comm_req *req, const void *send)
{
    place p = place_of(c);
    ZRT_CHECK(alloc_quantized(c, req));
    for (int m = 0; m < p.R; m++)
        for (int gi = 0; gi < p.G; gi++)
            quantize_part(req,
                          (const float *)((const char *)send +
                                          block_at(req, (size_t)(gi * p.R + m))),
                          qrow_part(&req->qsend, req, p, m, gi));
    begin_p2p(req, PHASE_GROUP_REDUCE);
    return post_group_reduce_quantized(c, req);
}

/* Within the group, for each g: the members' parts summed in member order
 * (ours from the send buffer) into our output block, used as scratch, and
 * quantized again into our receive row. Then the phase across groups. */
static zrt_status reduce_group_rows_quantized(zrt__comm *c, zrt__comm_req *req)
{
    place p = place_of(c);
    float *partial = (float *)req->reduce_out;
    for (int gi = 0; gi < p.G; gi++) {
        for (int m = 0; m < p.R; m++)
            req->blocks[m] =
                qrow_part(m == p.k ? &req->qsend : &req->scratch, req, p, m, gi);
        sum_parts(req, p.R, partial, 1.0f);
        quantize_part(req, partial, qrow_part(&req->scratch, req, p, p.k, gi));
    }
    begin_p2p(req, PHASE_CROSS_REDUCE);
    return post_cross_reduce_quantized(c, req);
}

/* Across groups: the G quantized partials of our block in group order
 * (ours in our receive row), divided once. */
static void reduce_group_partials_quantized(zrt__comm *c, zrt__comm_req *req)
{
    place p = place_of(c);
    for (int gi = 0; gi < p.G; gi++)
        req->blocks[gi] = gi == p.g ? qrow_part(&req->scratch, req, p, p.k, gi)
                                    : qrow_part(&req->qsend, req, p, 0, gi);
    sum_parts(req, p.G, (float *)req->reduce_out, divisor_of(c, req));
}

/* The flat exchange's N received parts, in rank order. */
static void reduce_received_quantized(zrt__comm *c, zrt__comm_req *req)
{
    for (int k = 0; k < c->size; k++)
        req->blocks[k] = qpart_at(&req->scratch, req, (size_t)k);
    sum_parts(req, c->size, (float *)req->reduce_out, divisor_of(c, req));
}

/* The first phase of a reduction, by routing and by whether it quantizes. */
static zrt_status start_reduce_phase(zrt__comm *c, zrt__comm_req *req, const void *send)
{
    if (quantized(req))
        return c->hierarchical ? start_quantized_hier(c, req, send)
                               : start_quantized_exchange(c, req, send);
    return c->hierarchical ? start_hier_reduce(c, req, send)
                           : start_exchange(c, req, send);
}

/* What one rank block of the reduction puts on the wire. */
static uint64_t reduce_unit(const zrt__comm_req *req)
{
    return quantized(req) ? (uint64_t)req->qpart : (uint64_t)block_bytes(req);
}

/* ---- the phase machine ---------------------------------------------------------- */

/* A reduction's sum is in place: an all-reduce goes on to gather it. */
static zrt_status after_reduce(zrt__comm *c, zrt__comm_req *req)
{
    if (!req->gathers_after_reduce) {
        req->phase = PHASE_DONE;
        return ZRT_OK;
    }
    if (c->hierarchical)
        return start_hier_phase(c, req, PHASE_CROSS_GATHER);
    return start_block_exchange(c, req);
}

/* Called when the current MPI phase has completed. */
static zrt_status finish_phase(zrt__comm *c, zrt__comm_req *req)
{
    switch (req->phase) {
    case PHASE_EXCHANGE:
        if (quantized(req))
            reduce_received_quantized(c, req);
        else
            reduce_received(c, req);
        return after_reduce(c, req);
    case PHASE_GROUP_REDUCE:
        if (quantized(req))
            return reduce_group_rows_quantized(c, req);
        reduce_group_rows(c, req);
        return start_hier_phase(c, req, PHASE_CROSS_REDUCE);
    case PHASE_CROSS_REDUCE:
        if (quantized(req))
            reduce_group_partials_quantized(c, req);
        else
            reduce_group_partials(c, req);
        return after_reduce(c, req);
    case PHASE_CROSS_GATHER:
        return start_hier_phase(c, req, PHASE_GROUP_GATHER);
    default: /* the last phase: PHASE_GATHER, PHASE_GROUP_GATHER */
        if (req->final_out)
            memcpy(req->final_out, req->gather_buf, req->final_count * req->esize);
        req->phase = PHASE_DONE;
        return ZRT_OK;
    }
}

/* Moves one request through every phase that has completed. */
static zrt_status advance(zrt__comm *c, zrt__comm_req *req)
{
    while (req->phase != PHASE_DONE) {
        int flag = 0;
        MPI_TRY(c, MPI_Testall(req->nmpi, req->mpi, &flag, MPI_STATUSES_IGNORE));
        if (!flag)
            break;
        ZRT_CHECK(finish_phase(c, req));
    }
    return ZRT_OK;
}

static zrt_status advance_all(zrt__comm *c)
{
    mpi_impl *impl = c->impl;
    for (zrt__comm_req *req = impl->active; req; req = req->next)
        ZRT_CHECK(advance(c, req));
    return ZRT_OK;
}

/* A staged request that is done: its result goes to the caller's device
 * buffer, once (ops->copy blocks until it has). */
static zrt_status copy_back(zrt__comm *c, zrt__comm_req *req)
{
    staging *s = &req->stage;
    if (!s->back_dst)
        return ZRT_OK;
    void *dst = s->back_dst;
    s->back_dst = NULL;
    return c->be->ops->copy(c->be, dst, s->back_src, s->back_bytes);
}

/* Advances every request, like MPI_Test: a caller polling one request in a
 * loop must not starve the others. */
static zrt_status mpi_test(zrt__comm *c, zrt__comm_req *req, int *done)
{
    ZRT_CHECK(check_failed(c));
    ZRT_CHECK(advance_all(c));
    *done = req->phase == PHASE_DONE;
    if (*done)
        return copy_back(c, req);
    return ZRT_OK;
}

/* Polls rather than blocking in MPI_Wait, so that every request in flight
 * keeps moving while this one completes, and a lost peer ends the wait
 * after c->timeout_seconds. */
static zrt_status mpi_wait(zrt__comm *c, zrt__comm_req *req)
{
    ZRT_CHECK(check_failed(c));
    zrt_status st = ZRT_OK;
    double start = now_seconds(), waited = 0.0;
    while (st == ZRT_OK && req->phase != PHASE_DONE) {
        st = advance_all(c);
        if (st != ZRT_OK || req->phase == PHASE_DONE)
            break;
        if (expired(c, start, &waited))
            st = timed_out(c, req, waited);
        else
            pause_poll(waited);
    }
    /* After an MPI failure or a timeout the request's buffers may still be
     * in MPI's hands: keep them (the communicator is unusable; end the
     * job). */
    if (st != ZRT_OK)
        return st;
    st = copy_back(c, req);
    free_request(c, req);
    return st;
}

/* Completes one raw MPI request (barrier, agree: `what`) the same way. */
static zrt_status wait_raw(zrt__comm *c, MPI_Request *raw, const char *call,
                           const char *what)
{
    double start = now_seconds(), waited = 0.0;
    for (;;) {
        int flag = 0;
        int rc = MPI_Test(raw, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_fail(c, rc, call);
        if (flag)
            return ZRT_OK;
        ZRT_CHECK(advance_all(c));
        if (expired(c, start, &waited)) {
            char peers[128];
            unknown_peers(c, peers, sizeof peers);
            return fail_lost(c, what, peers, waited);
        }
        pause_poll(waited);
    }
}

/* A request that is already complete (world size 1, zero elements). */
static zrt_status done_request(zrt__comm *c, zrt__comm_req **out)
{
    ZRT_CHECK(new_request(c, out));
    (*out)->phase = PHASE_DONE;
    return ZRT_OK;
}

static zrt_status single_rank_reduce(zrt__comm *c, const void *send, void *recv,
                                     size_t bytes, zrt__comm_req **out)
{
    if (recv != send)
        memmove(recv, send, bytes);
    return done_request(c, out);
}

/* The reductions' element types: f32, and the 16-bit formats (summed in f32,
 * rounded once). */
static zrt_status check_dtype(zrt__comm *c, zrt_dtype dtype, const char *what)
{
    if (dtype != ZRT_F32 && dtype != ZRT_BF16 && dtype != ZRT_F16)
        return zrt__fail(c->err, ZRT_ERR_INVALID_ARG, "%s: unknown dtype %d", what,
                         (int)dtype);
    return ZRT_OK;
}

/* A reduction's element type, size and op checked; the request made, with
 * its quantization (bits 0: none) and the bytes of one rank block. */
static zrt_status new_reduction(zrt__comm *c, zrt_dtype dtype, zrt_reduce_op op,
                                zrt__quant quant, zrt__comm_req **out)
{
    ZRT_CHECK(new_request(c, out));
    (*out)->op = op;
    (*out)->dtype = dtype;
    (*out)->esize = zrt_dtype_size(dtype);
    (*out)->quant = quant;
    return ZRT_OK;
}

/* Sets the rank block and, quantized, the bytes of its part, checked
 * against MPI's int counts. */
static zrt_status set_block(zrt__comm *c, zrt__comm_req *req, size_t block,
                            const char *what)
{
    req->block = block;
    if (!quantized(req))
        return ZRT_OK;
    req->qpart = zrt__quant_part_bytes(block, req->quant);
    return check_count(c, req->qpart * (size_t)c->size, what);
}

static zrt_status reduce_scatter_on_host(zrt__comm *c, const void *send, void *recv,
                                         size_t count, zrt_dtype dtype, zrt_reduce_op op,
                                         zrt__quant quant, zrt__comm_req **out)
{
    ZRT_CHECK(check_dtype(c, dtype, "reduce-scatter"));
    ZRT_CHECK(check_count(c, count * zrt_dtype_size(dtype), "reduce-scatter"));
    ZRT_CHECK(check_op(c, op, "reduce-scatter"));
    if (c->size == 1 || count == 0)
        return single_rank_reduce(c, send, recv, count * zrt_dtype_size(dtype), out);
    zrt__comm_req *req = NULL;
    ZRT_CHECK(new_reduction(c, dtype, op, quant, &req));
    req->reduce_out = recv;
    req->kind = REDUCE_SCATTER;
    req->bytes = (size_t)c->size * count * req->esize;
    zrt_status st = set_block(c, req, count, "quantized reduce-scatter");
    if (st == ZRT_OK && c->hierarchical)
        take_tags(c, req);
    if (st == ZRT_OK)
        st = start_reduce_phase(c, req, send);
    if (st != ZRT_OK) {
        free_request(c, req);
        return st;
    }
    if (c->hierarchical)
        count_hier(c, req->layer, reduce_unit(req), 1);
    else
        count_sent(c, req->layer, reduce_unit(req)); /* block j to rank j */
    *out = req;
    return ZRT_OK;
}

static zrt_status host_reduce_scatter(zrt__comm *c, const void *send, void *recv,
                                      size_t count, zrt_dtype dtype, zrt_reduce_op op,
                                      zrt__comm_req **out)
{
    return reduce_scatter_on_host(c, send, recv, count, dtype, op, (zrt__quant){0, 0},
                                  out);
}

/* All-reduce over a buffer whose length is a multiple of the world size:
 * in place in gather_buf. */
static zrt_status start_all_reduce(zrt__comm *c, zrt__comm_req *req, const void *send,
                                   void *gather_buf, size_t padded_count)
{
    ZRT_CHECK(set_block(c, req, padded_count / (size_t)c->size, "quantized all-reduce"));
    req->gather_buf = gather_buf;
    req->reduce_out = req->gather_buf + (size_t)c->rank * req->block * req->esize;
    req->gathers_after_reduce = 1;
    take_tags(c, req);
    return start_reduce_phase(c, req, send);
}

static zrt_status all_reduce_on_host(zrt__comm *c, const void *send, void *recv,
                                     size_t count, zrt_dtype dtype, zrt_reduce_op op,
                                     zrt__quant quant, zrt__comm_req **out)
{
    ZRT_CHECK(check_dtype(c, dtype, "all-reduce"));
    size_t esize = zrt_dtype_size(dtype);
    ZRT_CHECK(check_count(c, (count / (size_t)c->size + 1) * esize, "all-reduce"));
    ZRT_CHECK(check_op(c, op, "all-reduce"));
    if (c->size == 1 || count == 0)
        return single_rank_reduce(c, send, recv, count * esize, out);
    zrt__comm_req *req = NULL;
    ZRT_CHECK(new_reduction(c, dtype, op, quant, &req));
    req->kind = ALL_REDUCE;
    req->bytes = count * esize;
    size_t n = (size_t)c->size;
    size_t padded_count = (count + n - 1) / n * n;
    zrt_status st;
    if (padded_count == count) {
        st = start_all_reduce(c, req, send, recv, count);
    } else {
        st = c->be->ops->alloc(c->be, padded_count * esize, scratch_tier(c), ZRT_CAT_COMM,
                               "all-reduce padding", &req->padded);
        if (st == ZRT_OK) {
            memcpy(req->padded.ptr, send, count * esize);
            req->final_out = recv;
            req->final_count = count;
            st = start_all_reduce(c, req, req->padded.ptr, req->padded.ptr, padded_count);
        }
    }
    if (st != ZRT_OK) {
        free_request(c, req);
        return st;
    }
    /* flat: the padded block to each peer twice, its share to reduce, then
     * the reduced block; hierarchical: a reduce-scatter and an all-gather
     * (quantized: the first half's blocks quantized) */
    uint64_t both = reduce_unit(req) + (uint64_t)block_bytes(req);
    if (c->hierarchical)
        count_hier(c, req->layer, both, 1);
    else
        count_sent(c, req->layer, both);
    *out = req;
    return ZRT_OK;
}

static zrt_status host_all_reduce(zrt__comm *c, const void *send, void *recv,
                                  size_t count, zrt_dtype dtype, zrt_reduce_op op,
                                  zrt__comm_req **out)
{
    return all_reduce_on_host(c, send, recv, count, dtype, op, (zrt__quant){0, 0}, out);
}

/* Hierarchical all-gather: this rank's block into its place (unless in
 * place), then across groups and within, in recv. */
static zrt_status hier_all_gather(zrt__comm *c, const void *send, void *recv,
                                  size_t count, size_t esize, zrt__comm_req **out)
{
    zrt__comm_req *req = NULL;
    ZRT_CHECK(new_request(c, &req));
    req->kind = ALL_GATHER;
    req->block = count;
    req->esize = esize;
    req->bytes = (size_t)c->size * count * esize;
    req->gather_buf = recv;
    char *own_block = req->gather_buf + block_at(req, (size_t)c->rank);
    if (send != own_block)
        memcpy(own_block, send, count * esize);
    take_tags(c, req);
    zrt_status st = start_hier_phase(c, req, PHASE_CROSS_GATHER);
    if (st != ZRT_OK) {
        free_request(c, req);
        return st;
    }
    count_hier(c, req->layer, (uint64_t)block_bytes(req), 1);
    *out = req;
    return ZRT_OK;
}

static zrt_status host_all_gather(zrt__comm *c, const void *send, void *recv,
                                  size_t count, zrt_dtype dtype, zrt__comm_req **out)
{
    size_t esize = zrt_dtype_size(dtype);
    if (esize == 0)
        return zrt__fail(c->err, ZRT_ERR_INVALID_ARG, "all-gather: unknown dtype %d",
                         (int)dtype);
    ZRT_CHECK(check_count(c, count * esize, "all-gather"));
    size_t bytes = count * esize;
    char *own_block = (char *)recv + (size_t)c->rank * bytes;
    if (c->size == 1 || count == 0) {
        if (count && send != own_block)
            memmove(own_block, send, bytes);
        return done_request(c, out);
    }
    if (c->hierarchical)
        return hier_all_gather(c, send, recv, count, esize, out);
    zrt__comm_req *req = NULL;
    ZRT_CHECK(new_request(c, &req));
    req->phase = PHASE_GATHER;
    req->kind = ALL_GATHER;
    req->bytes = (size_t)c->size * bytes;
    const void *source = send == own_block ? MPI_IN_PLACE : send;
    int rc = MPI_Iallgather(source, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE,
                            comm_of(c), &req->mpi[0]);
    if (rc != MPI_SUCCESS) {
        free_request(c, req);
        return mpi_fail(c, rc, "MPI_Iallgather");
    }
    count_sent(c, req->layer, bytes); /* the direct ideal: own block to each peer */
    *out = req;
    return ZRT_OK;
}

static zrt_status host_broadcast(zrt__comm *c, void *buf, size_t bytes, int root,
                                 zrt__comm_req **out)
{
    ZRT_CHECK(check_count(c, bytes, "broadcast"));
    if (root < 0 || root >= c->size)
        return zrt__fail(c->err, ZRT_ERR_INVALID_ARG,
                         "broadcast root %d is outside the world of %d ranks", root,
                         c->size);
    zrt__comm_req *req = NULL;
    ZRT_CHECK(new_request(c, &req));
    req->phase = PHASE_GATHER;
    req->kind = BROADCAST;
    req->bytes = bytes;
    int rc = MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, comm_of(c), &req->mpi[0]);
    if (rc != MPI_SUCCESS) {
        free_request(c, req);
        return mpi_fail(c, rc, "MPI_Ibcast");
    }
    if (bytes > 0) /* the direct ideal: the root's buffer to each peer */
        count_sent(c, req->layer, c->rank == root ? bytes : 0);
    *out = req;
    return ZRT_OK;
}

/* ---- staging device buffers through pinned host memory ---------------------- */

/* Whether ptr is device memory MPI cannot read. Never asked on a backend
 * whose device is the host, so the cpu backend's path is unchanged. */
static int on_device(const zrt__comm *c, const void *ptr)
{
    return !c->be->caps.device_is_host && ptr && zrt__be_on_device(c->be, ptr);
}

/* ---- point-to-point ------------------------------------------------------- */

/* A send or recv's arguments checked: a peer other than this rank, a tag in
 * range, a count MPI can take, host memory. */
static zrt_status check_p2p(zrt__comm *c, const void *buf, size_t bytes, int peer,
                            int tag, const char *what)
{
    ZRT_CHECK(check_failed(c));
    ZRT_CHECK(check_count(c, bytes, what));
    if (peer < 0 || peer >= c->size || peer == c->rank)
        return zrt__fail(c->err, ZRT_ERR_INVALID_ARG,
                         "%s: peer %d is not another rank of the %d (this is rank %d)",
                         what, peer, c->size, c->rank);
    if (tag < 0 || tag > ZRT__P2P_TAG_MAX)
        return zrt__fail(c->err, ZRT_ERR_INVALID_ARG, "%s: tag %d is outside 0..%d", what,
                         tag, (int)ZRT__P2P_TAG_MAX);
    if (on_device(c, buf))
        return zrt__fail(c->err, ZRT_ERR_UNSUPPORTED,
                         "%s: device buffers are not supported (host memory only)", what);
    return ZRT_OK;
}

/* One MPI_Isend or MPI_Irecv as a request: a point-to-point phase with its
 * peer known, so a timeout names it. */
static zrt_status start_p2p(zrt__comm *c, coll_kind kind, void *buf, size_t bytes,
                            int peer, int tag, zrt__comm_req **out)
{
    const char *what = kind_names[kind];
    ZRT_CHECK(check_p2p(c, buf, bytes, peer, tag, what));
    zrt__comm_req *req = NULL;
    ZRT_CHECK(new_request(c, &req));
    req->kind = kind;
    req->bytes = bytes;
    begin_p2p(req, PHASE_GATHER); /* the one, last phase */
    zrt_status st =
        kind == SEND
            ? post_send(c, req, buf, (int)bytes, MPI_BYTE, peer, TAG_SPACE + tag)
            : post_recv(c, req, buf, (int)bytes, MPI_BYTE, peer, TAG_SPACE + tag);
    if (st != ZRT_OK) {
        free_request(c, req);
        return st;
    }
    if (kind == SEND && bytes > 0) {
        count_to(c, bytes_for(c, req->layer), peer, bytes);
        c->traffic.collectives++;
    }
    *out = req;
    return ZRT_OK;
}

static zrt_status mpi_send(zrt__comm *c, const void *buf, size_t bytes, int peer, int tag,
                           zrt__comm_req **out)
{
    zrt_status st = start_p2p(c, SEND, (void *)buf, bytes, peer, tag, out);
    c->next_layer = -1;
    return st;
}

static zrt_status mpi_recv(zrt__comm *c, void *buf, size_t bytes, int peer, int tag,
                           zrt__comm_req **out)
{
    zrt_status st = start_p2p(c, RECV, buf, bytes, peer, tag, out);
    c->next_layer = -1;
    return st;
}

/* A page-locked host buffer of bytes, charged to host/comm. */
static zrt_status stage_alloc(zrt__comm *c, size_t bytes, const char *what, zrt__buf *out)
{
    ZRT_CHECK(c->be->ops->alloc(c->be, bytes, ZRT_TIER_HOST, ZRT_CAT_COMM, what, out));
    zrt_status st = c->be->ops->pin(c->be, out);
    if (st != ZRT_OK)
        c->be->ops->free(c->be, out);
    return st;
}

/* The same, holding a copy of the device bytes at src. */
static zrt_status stage_in(zrt__comm *c, const void *src, size_t bytes, const char *what,
                           zrt__buf *out)
{
    ZRT_CHECK(stage_alloc(c, bytes, what, out));
    zrt_status st = c->be->ops->copy(c->be, out->ptr, src, bytes);
    if (st != ZRT_OK)
        c->be->ops->free(c->be, out);
    return st;
}

static void stage_result(staging *s, void *dst, const void *src, size_t bytes)
{
    s->back_dst = dst;
    s->back_src = src;
    s->back_bytes = bytes;
}

/* Hands the staging to the request the host algorithm started, or frees it
 * when that failed. */
static zrt_status stage_attach(zrt__comm *c, staging *s, zrt_status st,
                               zrt__comm_req **out)
{
    if (st != ZRT_OK) {
        c->be->ops->free(c->be, &s->in);
        c->be->ops->free(c->be, &s->out);
        return st;
    }
    (*out)->stage = *s;
    return ZRT_OK;
}

/* Stages a reduction's device operands: send (in_bytes) into a staged input;
 * recv (out_bytes) into a staged output or, in place (recv is send's bytes
 * at own_at), into the staged input there. *hsend and *hrecv are what the
 * host algorithm reads and writes. What it staged is in *s, failed or not
 * (stage_attach frees it). */
static zrt_status stage_reduction(zrt__comm *c, const char *name, const void *send,
                                  void *recv, size_t in_bytes, size_t out_bytes,
                                  size_t own_at, staging *s, const void **hsend,
                                  void **hrecv)
{
    char what[48];
    *hsend = send;
    *hrecv = recv;
    if (on_device(c, send)) {
        snprintf(what, sizeof what, "staged %s input", name);
        ZRT_CHECK(stage_in(c, send, in_bytes, what, &s->in));
        *hsend = s->in.ptr;
    }
    if (!on_device(c, recv))
        return ZRT_OK;
    if ((const char *)recv == (const char *)send + own_at && s->in.ptr) {
        *hrecv = (char *)s->in.ptr + own_at;
    } else {
        snprintf(what, sizeof what, "staged %s output", name);
        ZRT_CHECK(stage_alloc(c, out_bytes, what, &s->out));
        *hrecv = s->out.ptr;
    }
    stage_result(s, recv, *hrecv, out_bytes);
    return ZRT_OK;
}

typedef zrt_status (*host_reduction)(zrt__comm *c, const void *send, void *recv,
                                     size_t count, zrt_dtype dtype, zrt_reduce_op op,
                                     zrt__comm_req **out);

/* A reduction of send's `blocks` blocks of count elements into recv's one
 * block, by the host algorithm `host`: host buffers as they are, device
 * buffers staged (stage_reduction), in place when recv is send's block
 * `own`. */
static zrt_status reduction(zrt__comm *c, const char *name, host_reduction host,
                            size_t blocks, size_t own, const void *send, void *recv,
                            size_t count, zrt_dtype dtype, zrt_reduce_op op,
                            zrt__comm_req **out)
{
    if (count == 0 || (!on_device(c, send) && !on_device(c, recv)))
        return host(c, send, recv, count, dtype, op, out);
    ZRT_CHECK(check_dtype(c, dtype, name));
    size_t block = count * zrt_dtype_size(dtype);
    staging s = {0};
    const void *hsend;
    void *hrecv;
    zrt_status st = stage_reduction(c, name, send, recv, blocks * block, block,
                                    own * block, &s, &hsend, &hrecv);
    if (st == ZRT_OK)
        st = host(c, hsend, hrecv, count, dtype, op, out);
    return stage_attach(c, &s, st, out);
}

/* send: size * count elements, recv: count; in place when recv is send's
 * block r, which then stays in the staged input. */
static zrt_status mpi_reduce_scatter(zrt__comm *c, const void *send, void *recv,
                                     size_t count, zrt_dtype dtype, zrt_reduce_op op,
                                     zrt__comm_req **out)
{
    zrt_status st = check_failed(c);
    if (st == ZRT_OK)
        st = reduction(c, "reduce-scatter", host_reduce_scatter, (size_t)c->size,
                       (size_t)c->rank, send, recv, count, dtype, op, out);
    c->next_layer = -1; /* the label was this collective's */
    return st;
}

/* count elements each; in place when recv is send. */
static zrt_status mpi_all_reduce(zrt__comm *c, const void *send, void *recv, size_t count,
                                 zrt_dtype dtype, zrt_reduce_op op, zrt__comm_req **out)
{
    zrt_status st = check_failed(c);
    if (st == ZRT_OK)
        st = reduction(c, "all-reduce", host_all_reduce, 1, 0, send, recv, count, dtype,
                       op, out);
    c->next_layer = -1;
    return st;
}

/* qgZ's forms: f32 host buffers only (the cpu backend's device memory is
 * host memory; staging device buffers is not built). */
static zrt_status check_quantized(zrt__comm *c, const void *send, const void *recv,
                                  zrt__quant q, const char *what)
{
    if (on_device(c, send) || on_device(c, recv))
        return zrt__fail(c->err, ZRT_ERR_UNSUPPORTED,
                         "quantized %s: device buffers are not supported (host memory "
                         "only)",
                         what);
    if ((q.bits != 8 && q.bits != 4) || q.block == 0 || (q.bits == 4 && q.block % 2))
        return zrt__fail(c->err, ZRT_ERR_INVALID_ARG,
                         "quantized %s: %d bits in blocks of %zu elements is not a "
                         "format (8 or 4 bits; blocks >= 1, even for 4 bits)",
                         what, q.bits, q.block);
    return ZRT_OK;
}

typedef zrt_status (*host_quantized)(zrt__comm *c, const void *send, void *recv,
                                     size_t count, zrt_dtype dtype, zrt_reduce_op op,
                                     zrt__quant quant, zrt__comm_req **out);

/* A quantized form checked, then run on the host buffers; the layer label
 * was this collective's either way. */
static zrt_status start_quantized(zrt__comm *c, const char *what, host_quantized run,
                                  const float *send, float *recv, size_t count,
                                  zrt__quant q, zrt_reduce_op op, zrt__comm_req **out)
{
    zrt_status st = check_failed(c);
    if (st == ZRT_OK)
        st = check_quantized(c, send, recv, q, what);
    if (st == ZRT_OK)
        st = run(c, send, recv, count, ZRT_F32, op, q, out);
    c->next_layer = -1;
    return st;
}

static zrt_status mpi_reduce_scatter_quantized(zrt__comm *c, const float *send,
                                               float *recv, size_t count, zrt__quant q,
                                               zrt_reduce_op op, zrt__comm_req **out)
{
    return start_quantized(c, "reduce-scatter", reduce_scatter_on_host, send, recv, count,
                           q, op, out);
}

static zrt_status mpi_all_reduce_quantized(zrt__comm *c, const float *send, float *recv,
                                           size_t count, zrt__quant q, zrt_reduce_op op,
                                           zrt__comm_req **out)
{
    return start_quantized(c, "all-reduce", all_reduce_on_host, send, recv, count, q, op,
                           out);
}

/* send: count elements, recv: size * count; in place when send is recv's
 * block r, copied into the staged output's block r. */
static zrt_status staged_all_gather(zrt__comm *c, const void *send, void *recv,
                                    size_t count, zrt_dtype dtype, zrt__comm_req **out)
{
    size_t esize = zrt_dtype_size(dtype);
    if (count == 0 || esize == 0 || (!on_device(c, send) && !on_device(c, recv)))
        return host_all_gather(c, send, recv, count, dtype, out);
    size_t block = count * esize;
    const char *own_block = (const char *)recv + (size_t)c->rank * block;
    staging s = {0};
    const void *hsend = send;
    void *hrecv = recv;
    zrt_status st = ZRT_OK;
    if (on_device(c, recv)) {
        ZRT_CHECK(
            stage_alloc(c, (size_t)c->size * block, "staged all-gather output", &s.out));
        hrecv = s.out.ptr;
        stage_result(&s, recv, hrecv, (size_t)c->size * block);
        if ((const char *)send == own_block) {
            char *staged_own = (char *)s.out.ptr + (size_t)c->rank * block;
            ZRT_CHECK_GOTO(c->be->ops->copy(c->be, staged_own, send, block), st, done);
            hsend = staged_own;
        }
    }
    if (hsend == send && on_device(c, send)) {
        ZRT_CHECK_GOTO(stage_in(c, send, block, "staged all-gather input", &s.in), st,
                       done);
        hsend = s.in.ptr;
    }
    st = host_all_gather(c, hsend, hrecv, count, dtype, out);
done:
    return stage_attach(c, &s, st, out);
}

static zrt_status mpi_all_gather(zrt__comm *c, const void *send, void *recv, size_t count,
                                 zrt_dtype dtype, zrt__comm_req **out)
{
    zrt_status st = check_failed(c);
    if (st == ZRT_OK)
        st = staged_all_gather(c, send, recv, count, dtype, out);
    c->next_layer = -1;
    return st;
}

/* The root's bytes go in; every other rank's come back. */
static zrt_status staged_broadcast(zrt__comm *c, void *buf, size_t bytes, int root,
                                   zrt__comm_req **out)
{
    if (bytes == 0 || !on_device(c, buf) || root < 0 || root >= c->size)
        return host_broadcast(c, buf, bytes, root, out);
    staging s = {0};
    if (c->rank == root)
        ZRT_CHECK(stage_in(c, buf, bytes, "staged broadcast", &s.out));
    else
        ZRT_CHECK(stage_alloc(c, bytes, "staged broadcast", &s.out));
    if (c->rank != root)
        stage_result(&s, buf, s.out.ptr, bytes);
    zrt_status st = host_broadcast(c, s.out.ptr, bytes, root, out);
    return stage_attach(c, &s, st, out);
}

static zrt_status mpi_broadcast(zrt__comm *c, void *buf, size_t bytes, int root,
                                zrt__comm_req **out)
{
    zrt_status st = check_failed(c);
    if (st == ZRT_OK)
        st = staged_broadcast(c, buf, bytes, root, out);
    c->next_layer = -1;
    return st;
}

static zrt_status mpi_barrier(zrt__comm *c)
{
    ZRT_CHECK(check_failed(c));
    MPI_Request raw;
    MPI_TRY(c, MPI_Ibarrier(comm_of(c), &raw));
    return wait_raw(c, &raw, "MPI_Ibarrier", "barrier");
}

/* A failed communicator cannot agree: it returns its sentence instead. */
static zrt_status mpi_agree(zrt__comm *c, zrt_status local, int *first_failed)
{
    ZRT_CHECK(check_failed(c));
    mpi_impl *impl = c->impl;
    impl->agree_in = local == ZRT_OK ? INT_MAX : c->rank;
    impl->agree_out = INT_MAX;
    MPI_Request raw;
    MPI_TRY(c, MPI_Iallreduce(&impl->agree_in, &impl->agree_out, 1, MPI_INT, MPI_MIN,
                              comm_of(c), &raw));
    char what[64];
    snprintf(what, sizeof what, "agree (an all-reduce of one int, this rank %s)",
             local == ZRT_OK ? "ok" : "failed");
    ZRT_CHECK(wait_raw(c, &raw, "MPI_Iallreduce", what));
    *first_failed = impl->agree_out == INT_MAX ? -1 : impl->agree_out;
    return ZRT_OK;
}

static zrt_status mpi_abort_job(zrt__comm *c, int exit_code)
{
    MPI_TRY(c, MPI_Abort(comm_of(c), exit_code));
    return ZRT_OK;
}

/* After a timeout, MPI_Comm_free and MPI_Finalize could wait for the lost
 * peer: both are skipped (the job is to be ended by abort_job). */
static void mpi_destroy(zrt__comm *c)
{
    mpi_impl *impl = c->impl;
    free(impl->hosts);
    free(impl->host_id);
    if (impl->failed != ZRT_OK) {
        free(impl);
        free(c);
        return;
    }
    MPI_Comm_free(&impl->comm);
    if (impl->owns_mpi)
        MPI_Finalize();
    free(impl);
    free(c);
}

/* ---- groups ------------------------------------------------------------------- */

/* Ranks per host when every host holds the same number of consecutive
 * ranks, else 0. *runs lists the rank counts of the hosts' runs of
 * consecutive ranks ("3, 1"), and *scattered is 1 when a host's ranks are
 * not consecutive (its id, its lowest rank, starts no run of its own). */
static int ranks_per_host(const int *host_id, int size, char *runs, size_t runs_size,
                          int *scattered)
{
    int per_host = -1, even = 1;
    size_t used = 0;
    runs[0] = '\0';
    *scattered = 0;
    for (int start = 0, end; start < size; start = end) {
        for (end = start; end < size && host_id[end] == host_id[start];)
            end++;
        if (per_host < 0)
            per_host = end - start;
        if (host_id[start] != start)
            *scattered = 1;
        even = even && end - start == per_host && host_id[start] == start;
        int w = snprintf(runs + used, runs_size - used, "%s%d", used ? ", " : "",
                         end - start);
        if (w > 0 && (size_t)w < runs_size - used)
            used += (size_t)w;
    }
    return even && per_host > 0 ? per_host : 0;
}

static zrt_status check_route_values(zrt__errbuf *err, int hierarchy, int group_size)
{
    if (hierarchy < ZRT_COMM_HIER_AUTO || hierarchy > ZRT_COMM_HIER_HIERARCHICAL)
        return zrt__fail(
            err, ZRT_ERR_CONFIG,
            "'comm_hierarchy' is %d; it must be \"auto\" (%d), \"flat\" (%d) "
            "or \"hierarchical\" (%d)",
            hierarchy, ZRT_COMM_HIER_AUTO, ZRT_COMM_HIER_FLAT,
            ZRT_COMM_HIER_HIERARCHICAL);
    if (group_size < 0)
        return zrt__fail(err, ZRT_ERR_CONFIG,
                         "'comm_group_size' is %d; it must be 0 (a group per host) or a "
                         "number of ranks",
                         group_size);
    return ZRT_OK;
}

/* No group per host: "hierarchical" is refused, auto and flat run flat. */
static zrt_status uneven_hosts(zrt__errbuf *err, int size, int hierarchy,
                               const char *runs, int scattered, zrt__comm_topology *t)
{
    char layout[160];
    snprintf(layout, sizeof layout, "the %d ranks' hosts hold %s ranks%s", size, runs,
             scattered ? " (a host's ranks are not consecutive)" : "");
    if (hierarchy == ZRT_COMM_HIER_HIERARCHICAL)
        return zrt__fail(
            err, ZRT_ERR_CONFIG,
            "'comm_hierarchy' is \"hierarchical\" with 'comm_group_size' 0 (a "
            "group per host), but %s; every host must hold the same number "
            "of consecutive ranks, or set 'comm_group_size' to a divisor of %d",
            layout, size);
    snprintf(t->why, sizeof t->why, "flat: no group per host, since %s", layout);
    return ZRT_OK;
}

zrt_status zrt__comm_pick_topology(const int *host_id, int size, int hierarchy,
                                   int group_size, zrt__errbuf *err,
                                   zrt__comm_topology *out)
{
    ZRT_CHECK(check_route_values(err, hierarchy, group_size));
    if (group_size > 0 && size % group_size != 0)
        return zrt__fail(err, ZRT_ERR_CONFIG,
                         "'comm_group_size' is %d but the job has %d ranks; the world "
                         "size must be a multiple of the group size",
                         group_size, size);
    zrt__comm_topology t = {0};
    char runs[96];
    int scattered = 0;
    int per_host = ranks_per_host(host_id, size, runs, sizeof runs, &scattered);
    t.group_size = group_size > 0 ? group_size : per_host;
    if (t.group_size == 0) {
        ZRT_CHECK(uneven_hosts(err, size, hierarchy, runs, scattered, &t));
        *out = t;
        return ZRT_OK;
    }
    int R = t.group_size, G = size / R;
    char groups[96];
    snprintf(groups, sizeof groups, "%d group%s of %d rank%s (%s)", G, G > 1 ? "s" : "",
             R, R > 1 ? "s" : "",
             group_size > 0 ? "comm_group_size" : "a group per host");
    t.hierarchical = hierarchy != ZRT_COMM_HIER_FLAT && G > 1 && R > 1;
    if (t.hierarchical)
        snprintf(t.why, sizeof t.why, "hierarchical: %s", groups);
    else if (hierarchy == ZRT_COMM_HIER_FLAT)
        snprintf(t.why, sizeof t.why, "flat (comm_hierarchy \"flat\"): %s", groups);
    else
        snprintf(t.why, sizeof t.why,
                 "flat: %s, one level, whose order is rank order either way", groups);
    *out = t;
    return ZRT_OK;
}

static zrt_status mpi_set_hierarchy(zrt__comm *c, int hierarchy, int group_size,
                                    char *why, size_t why_size)
{
    mpi_impl *impl = c->impl;
    ZRT_CHECK(check_failed(c));
    if (impl->active)
        return zrt__fail(c->err, ZRT_ERR_STATE,
                         "the collectives' routing cannot change while a collective is "
                         "in flight");
    zrt__comm_topology t;
    ZRT_CHECK(zrt__comm_pick_topology(impl->host_id, c->size, hierarchy, group_size,
                                      c->err, &t));
    c->hierarchical = t.hierarchical;
    c->group_size = t.group_size;
    if (why && why_size)
        snprintf(why, why_size, "%s", t.why);
    return ZRT_OK;
}

static zrt_status mpi_split(zrt__comm *c, int color, int key, zrt__comm **out);

static const zrt__comm_ops mpi_ops = {
    .name = "mpi",
    .reduce_scatter = mpi_reduce_scatter,
    .all_gather = mpi_all_gather,
    .all_reduce = mpi_all_reduce,
    .reduce_scatter_quantized = mpi_reduce_scatter_quantized,
    .all_reduce_quantized = mpi_all_reduce_quantized,
    .broadcast = mpi_broadcast,
    .send = mpi_send,
    .recv = mpi_recv,
    .test = mpi_test,
    .wait = mpi_wait,
    .barrier = mpi_barrier,
    .agree = mpi_agree,
    .abort_job = mpi_abort_job,
    .destroy = mpi_destroy,
    .set_hierarchy = mpi_set_hierarchy,
    .split = mpi_split,
};

static zrt_status start_mpi(zrt__errbuf *err, int *owns)
{
    int initialized = 0;
    MPI_Initialized(&initialized);
    *owns = 0;
    if (initialized)
        return ZRT_OK;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return zrt__fail(err, ZRT_ERR_COMM, "MPI_Init_thread failed");
    *owns = 1;
    return ZRT_OK;
}

/* Each rank's host as the lowest rank on it (node: this host's ranks), and
 * the flat default: grouped by host where the hosts are even. */
static zrt_status gather_host_ids(zrt__comm *c, MPI_Comm node)
{
    mpi_impl *impl = c->impl;
    int lowest = c->rank, scattered = 0;
    char runs[96];
    MPI_TRY(c, MPI_Allreduce(MPI_IN_PLACE, &lowest, 1, MPI_INT, MPI_MIN, node));
    impl->host_id = calloc((size_t)c->size, sizeof *impl->host_id);
    if (!impl->host_id)
        return zrt__fail(c->err, ZRT_ERR_OUT_OF_MEMORY, "cannot allocate the host table");
    MPI_TRY(c, MPI_Allgather(&lowest, 1, MPI_INT, impl->host_id, 1, MPI_INT, comm_of(c)));
    c->group_size = ranks_per_host(impl->host_id, c->size, runs, sizeof runs, &scattered);
    return ZRT_OK;
}

static zrt_status describe_world(zrt__comm *c)
{
    MPI_Comm node;
    MPI_TRY(c, MPI_Comm_rank(comm_of(c), &c->rank));
    MPI_TRY(c, MPI_Comm_size(comm_of(c), &c->size));
    MPI_TRY(c, MPI_Comm_split_type(comm_of(c), MPI_COMM_TYPE_SHARED, c->rank,
                                   MPI_INFO_NULL, &node));
    MPI_Comm_rank(node, &c->local_rank);
    MPI_Comm_size(node, &c->local_size);
    zrt_status st = gather_host_ids(c, node);
    MPI_Comm_free(&node);
    ZRT_CHECK(st);
    /* Every rank's host name, so that a timeout can say where the silent
     * ranks run; without them the sentence names ranks only. */
    mpi_impl *impl = c->impl;
    char name[MPI_MAX_PROCESSOR_NAME] = "", mine[HOST_LEN] = "";
    int len = 0;
    MPI_Get_processor_name(name, &len);
    snprintf(mine, sizeof mine, "%s", name);
    impl->hosts = calloc((size_t)c->size, HOST_LEN);
    if (impl->hosts && MPI_Allgather(mine, HOST_LEN, MPI_CHAR, impl->hosts, HOST_LEN,
                                     MPI_CHAR, comm_of(c)) != MPI_SUCCESS) {
        free(impl->hosts);
        impl->hosts = NULL;
    }
    return ZRT_OK;
}

/* The communicator around impl->comm (an MPI communicator it owns), with
 * its ranks, hosts and the flat default routing. */
static zrt_status wrap_comm(zrt__backend *be, zrt__errbuf *err, mpi_impl *impl,
                            zrt__comm *c, zrt__comm **out)
{
    MPI_Comm_set_errhandler(impl->comm, MPI_ERRORS_RETURN);
    *c = (zrt__comm){
        .ops = &mpi_ops, .be = be, .err = err, .impl = impl, .next_layer = -1};
    zrt_status st = describe_world(c);
    if (st != ZRT_OK) {
        mpi_destroy(c);
        return st;
    }
    *out = c;
    return ZRT_OK;
}

/* A sub-communicator of c's ranks with the same color, ordered by key
 * (MPI_Comm_split): flat, with c's backend, error buffer and timeout. It
 * does not own MPI: destroy it before c. */
static zrt_status mpi_split(zrt__comm *c, int color, int key, zrt__comm **out)
{
    ZRT_CHECK(check_failed(c));
    zrt__comm *sub = calloc(1, sizeof *sub);
    mpi_impl *impl = calloc(1, sizeof *impl);
    int rc = sub && impl ? MPI_Comm_split(comm_of(c), color, key, &impl->comm) : -1;
    if (rc != MPI_SUCCESS) {
        free(sub);
        free(impl);
        return rc == -1 ? zrt__fail(c->err, ZRT_ERR_OUT_OF_MEMORY,
                                    "cannot allocate a sub-communicator")
                        : mpi_fail(c, rc, "MPI_Comm_split");
    }
    ZRT_CHECK(wrap_comm(c->be, c->err, impl, sub, out));
    (*out)->timeout_seconds = c->timeout_seconds;
    return ZRT_OK;
}

zrt_status zrt__comm_mpi_create(zrt__backend *be, zrt__errbuf *err, zrt__comm **out)
{
    zrt__comm *c = calloc(1, sizeof *c);
    mpi_impl *impl = calloc(1, sizeof *impl);
    if (!c || !impl) {
        free(c);
        free(impl);
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot allocate the mpi communicator");
    }
    zrt_status st = start_mpi(err, &impl->owns_mpi);
    if (st == ZRT_OK && MPI_Comm_dup(MPI_COMM_WORLD, &impl->comm) != MPI_SUCCESS)
        st = zrt__fail(err, ZRT_ERR_COMM, "MPI_Comm_dup failed");
    if (st != ZRT_OK) {
        free(c);
        free(impl);
        return st;
    }
    /* Errors come back as codes we turn into a sentence (wrap_comm sets the
     * handler of our communicator). Requests report on MPI_COMM_WORLD's
     * handler in Open MPI, so set it there too when the program left MPI to
     * us. */
    if (impl->owns_mpi)
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    return wrap_comm(be, err, impl, c, out);
}
