/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/comm.h — the communicator interface: the collectives ZeRO needs,
 * each non-blocking (start -> request -> test/wait), so the engine can keep
 * computing while data moves.
 *
 * Collectives must be started in the same order on every rank. Buffers passed
 * to a started collective belong to it until wait returns. Layouts follow
 * NCCL's in-place rule: for reduce-scatter and all-gather the full buffer
 * holds size * count elements and rank r's block starts at r * count; passing
 * recv = send + r * count (reduce-scatter) or send = recv + r * count
 * (all-gather) is the in-place form.
 *
 * Reductions sum the rank contributions in one fixed order on every rank and
 * for every collective, so a value reduced by an all-reduce equals the same
 * value reduced by a reduce-scatter, bit for bit. Flat (the default, and
 * always for nccl): rank order, ((x0 + x1) + x2) + .... Hierarchical (mpi,
 * set_hierarchy): with groups of R consecutive ranks, each group's ranks in
 * order, then the G group sums in group order: ((x0 + x1) + (x2 + x3)) +
 * (x4 + x5) for 3 groups of 2. ZRT_AVG divides that sum by the world size.
 */
#ifndef ZRT_RUNTIME_COMM_H
#define ZRT_RUNTIME_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "error.h"

typedef struct zrt__comm zrt__comm;
typedef struct zrt__comm_req zrt__comm_req;

/* The largest tag of a point-to-point send or recv (MPI guarantees 32767;
 * the collectives' phases take the tags below 30000). */
enum { ZRT__P2P_TAG_MAX = 2767 };

/* How a quantized reduction (qgZ, docs/compression.md) codes each rank
 * block: blockwise symmetric int8 or int4 with one f32 scale per `block`
 * elements (kernels/cpu/kernels.h zrt_quantize_i8/i4). */
typedef struct zrt__quant {
    int bits;     /* 8 or 4 */
    size_t block; /* >= 1; even for 4 bits */
} zrt__quant;

/* The bytes `count` f32 elements take quantized as one unit on the wire:
 * the codes padded to a multiple of 4, then the scales. */
static inline size_t zrt__quant_part_bytes(size_t count, zrt__quant q)
{
    size_t codes = q.bits == 4 ? (count + 1) / 2 : count;
    return (codes + 3) / 4 * 4 + (count + q.block - 1) / q.block * 4;
}

typedef struct zrt__comm_ops {
    const char *name;
    /* send: size * count elements; recv: count elements, this rank's block.
     * bf16 and f16 are summed in f32 in rank order and rounded once. */
    zrt_status (*reduce_scatter)(zrt__comm *c, const void *send, void *recv, size_t count,
                                 zrt_dtype dtype, zrt_reduce_op op, zrt__comm_req **req);
    zrt_status (*all_reduce)(zrt__comm *c, const void *send, void *recv, size_t count,
                             zrt_dtype dtype, zrt_reduce_op op, zrt__comm_req **req);
    /* Optional (NULL: qgZ is refused). The f32 reduce_scatter and
     * all_reduce whose reduction moves every contribution quantized as q
     * says, this rank's own included, in units of one rank block (blocks of
     * q.block restart at each); the receiver dequantizes them and sums in
     * f32 in the routing's order, so the result repeats bit for bit.
     * Hierarchical routing quantizes again the group partials it sends
     * across groups (ZeRO++'s one quantization per hop). An all-reduce's
     * second half, the reduced blocks to every rank, moves f32. Host
     * buffers only. */
    zrt_status (*reduce_scatter_quantized)(zrt__comm *c, const float *send, float *recv,
                                           size_t count, zrt__quant q, zrt_reduce_op op,
                                           zrt__comm_req **req);
    zrt_status (*all_reduce_quantized)(zrt__comm *c, const float *send, float *recv,
                                       size_t count, zrt__quant q, zrt_reduce_op op,
                                       zrt__comm_req **req);
    /* send: count elements; recv: size * count elements. */
    zrt_status (*all_gather)(zrt__comm *c, const void *send, void *recv, size_t count,
                             zrt_dtype dtype, zrt__comm_req **req);
    zrt_status (*broadcast)(zrt__comm *c, void *buf, size_t bytes, int root,
                            zrt__comm_req **req);
    /* Optional (NULL: no point-to-point; pipeline parallelism needs it).
     * Non-blocking: `bytes` to / from rank `peer` (mpi: host memory; nccl:
     * device memory through NCCL, matched by call order alone, or host
     * memory through its MPI communicator), matched
     * by `tag` (0 .. ZRT__P2P_TAG_MAX) and by the order of the calls between
     * the same two ranks with the same tag; completed by test/wait like a
     * collective (a lost peer ends the wait after timeout_seconds, naming
     * it). Unlike collectives, only the two ranks take part. */
    zrt_status (*send)(zrt__comm *c, const void *buf, size_t bytes, int peer, int tag,
                       zrt__comm_req **req);
    zrt_status (*recv)(zrt__comm *c, void *buf, size_t bytes, int peer, int tag,
                       zrt__comm_req **req);
    /* Advances the request; *done becomes 1 once wait would not block. */
    zrt_status (*test)(zrt__comm *c, zrt__comm_req *req, int *done);
    /* Completes and frees the request. mpi: fails with ZRT_ERR_REMOTE once
     * it has blocked timeout_seconds (a lost peer), as barrier and agree do;
     * the communicator then stays failed (runtime/comm_mpi.c). */
    zrt_status (*wait)(zrt__comm *c, zrt__comm_req *req);
    zrt_status (*barrier)(zrt__comm *c);
    /* Blocking. Every rank passes its own outcome; *first_failed becomes the
     * lowest rank whose outcome was not ZRT_OK, or -1. */
    zrt_status (*agree)(zrt__comm *c, zrt_status local, int *first_failed);
    /* Ends the whole job; returns only if that fails. */
    zrt_status (*abort_job)(zrt__comm *c, int exit_code);
    void (*destroy)(zrt__comm *c);
    /* Optional (NULL: every collective stays flat, as nccl's). How
     * reductions and all-gathers route: hierarchy a zrt_comm_hierarchy,
     * group_size the ranks per group (0: one group per host). Call before
     * the first collective, with the same values on every rank; sends
     * nothing. *why becomes what was chosen and why, for the log. A layout
     * that cannot be grouped as asked fails with ZRT_ERR_CONFIG
     * (zrt__comm_pick_topology). */
    zrt_status (*set_hierarchy)(zrt__comm *c, int hierarchy, int group_size, char *why,
                                size_t why_size);
    /* Optional (NULL: the communicator cannot be split). Collective
     * over c: a new communicator of the ranks that pass the same color,
     * ranked by key (ties by rank in c), as MPI_Comm_split. It starts flat
     * (whatever c's routing), shares c's backend, error buffer and timeout,
     * counts its own traffic, and must be destroyed before c. Hybrid
     * sharding's shard groups and replica sets (zero/context.c). */
    zrt_status (*split)(zrt__comm *c, int color, int key, zrt__comm **out);
} zrt__comm_ops;

/* Bytes this rank sent, by where the peer runs (MPI_COMM_TYPE_SHARED). */
typedef struct zrt__comm_bytes {
    uint64_t same_host, other_host;
} zrt__comm_bytes;

/* What the communicator sent since it was created. Collectives started for
 * a layer (zrt__comm_for_layer: the engine's gathers and gradient
 * reductions, the model states' traffic) count under `layers`; the rest (a
 * gradient norm, a loss, checkpoints, agree's flags are not counted) under
 * `other`. The mpi communicator counts what its algorithm sends: reductions
 * exactly as written (block j to rank j, then an all-reduce's reduced block
 * to every peer), all-gather and broadcast as the direct ideal (each block to
 * each peer that lacks it: (N-1)/N of the buffer per rank, a ring's cost),
 * since MPI's own algorithms are opaque; hierarchical collectives exactly as
 * their point-to-point phases send. The split by host is per peer, by the
 * real hosts (not the groups). */
typedef struct zrt__comm_traffic {
    zrt__comm_bytes layers, other;
    uint64_t collectives; /* started with something to send */
    /* Of all the bytes above (layers and other), those sent to a rank of
     * another group (zrt__comm.group_size; with no grouping, another host):
     * what a hierarchical collective cuts by the group size. */
    uint64_t other_group;
} zrt__comm_traffic;

struct zrt__comm {
    const zrt__comm_ops *ops;
    int rank, size;             /* in the job */
    int local_rank, local_size; /* on this host */
    zrt__backend *be;           /* not owned: scratch comes from it */
    zrt__errbuf *err;           /* not owned */
    void *impl;
    /* mpi: how long one wait, barrier or agree may block before it fails
     * with ZRT_ERR_REMOTE (a lost peer); 0: no limit. The creator sets it
     * after create (zrt_ctx_create: comm_timeout_seconds); the nccl
     * communicator takes its own at create and passes it to its inner one. */
    double timeout_seconds;
    /* The layer the next collective started is for (-1: none), named in its
     * timeout sentence and counted in traffic.layers; a start resets it. */
    int next_layer;
    zrt__comm_traffic traffic; /* mpi: counted at each start; nccl: zero */
    /* mpi: 1 when reductions and all-gathers run in two levels over groups
     * of group_size consecutive ranks (set_hierarchy), 0 flat. group_size
     * is the grouping in use, or flat the ranks per host when every host
     * holds the same number of consecutive ranks; 0: no grouping. */
    int hierarchical, group_size;
};

/* Labels the next collective started on c with the layer it serves. */
static inline void zrt__comm_for_layer(zrt__comm *c, int layer)
{
    c->next_layer = layer;
}

/* The f32 forms of reduce_scatter and all_reduce (count floats; recv may
 * equal send for all_reduce). */
static inline zrt_status zrt__comm_reduce_scatter_f32(zrt__comm *c, const float *send,
                                                      float *recv, size_t count,
                                                      zrt_reduce_op op,
                                                      zrt__comm_req **req)
{
    return c->ops->reduce_scatter(c, send, recv, count, ZRT_F32, op, req);
}

static inline zrt_status zrt__comm_all_reduce_f32(zrt__comm *c, const float *send,
                                                  float *recv, size_t count,
                                                  zrt_reduce_op op, zrt__comm_req **req)
{
    return c->ops->all_reduce(c, send, recv, count, ZRT_F32, op, req);
}

/* The routing set_hierarchy chose. */
typedef struct zrt__comm_topology {
    int hierarchical; /* 1: two levels (reduce-scatter, all-reduce, all-gather) */
    int group_size;   /* R, ranks per group; 0: no grouping (uneven hosts) */
    char why[200];    /* "hierarchical: 2 groups of 2 ranks (...)", for the log */
} zrt__comm_topology;

/* Chooses the routing of `size` ranks whose hosts are host_id[] (equal ids:
 * one host; a host's id is its lowest rank) from comm_hierarchy and
 * comm_group_size. auto: hierarchical when there are 2 or more groups of 2
 * or more ranks, else flat; uneven hosts (different rank counts, or ranks
 * not consecutive) fall back to flat, and *out says so. Fails with
 * ZRT_ERR_CONFIG and a sentence naming the numbers: a bad value, a world
 * size that is not a multiple of group_size, uneven hosts with
 * "hierarchical" and group_size 0. Pure: no MPI. */
zrt_status zrt__comm_pick_topology(const int *host_id, int size, int hierarchy,
                                   int group_size, zrt__errbuf *err,
                                   zrt__comm_topology *out);

/* Starts MPI if the program has not (and finalizes it in destroy). On a
 * backend whose device is not the host, device buffers are staged through
 * pinned host memory (see runtime/comm_mpi.c). */
zrt_status zrt__comm_mpi_create(zrt__backend *be, zrt__errbuf *err, zrt__comm **out);

#ifdef ZRT_HAVE_NCCL
/* The NCCL communicator (runtime/comm_nccl.c) for the cuda backend: one
 * device per rank. Device buffers go through NCCL on a stream of its own,
 * ordered against the backend's stream by events; host buffers (a loss, a
 * norm) and agree/barrier/abort go through MPI, which also carries the
 * ncclUniqueId. A collective that does not complete within timeout_seconds
 * (a lost peer) aborts the NCCL communicator and fails with
 * ZRT_ERR_REMOTE. */
zrt_status zrt__comm_nccl_create(zrt__backend *be, zrt__errbuf *err,
                                 double timeout_seconds, zrt__comm **out);
#endif

#endif /* ZRT_RUNTIME_COMM_H */
