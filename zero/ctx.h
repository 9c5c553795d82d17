/*
 * zero/ctx.h — the context: everything one rank of a zrt job owns.
 *
 * The context sits at the top of the library: it holds the runtime pieces
 * (config, error sentence, memory account, backend, communicator) and the
 * ZeRO engine's state (registered parameters, the partition plan, and per
 * layer the buffers and collectives the stage calls for).
 *
 * Per-layer buffers by stage (S = shard elements, F = flat elements = N*S):
 *   stage  param_full        param_shard  grad_full          grad_shard  m, v
 *   0      F persistent      -            F persistent       -           F
 *   1      F persistent      -            F persistent       -           S
 *   2      F persistent      -            F while in bwd     S           S
 *   3      F while live *    S            F while in bwd     S           S
 * (* and while prefetched; kept for layers under the persistence threshold)
 */
#ifndef ZRT_ZERO_CTX_H
#define ZRT_ZERO_CTX_H

#include "../runtime/backend.h"
#include "../runtime/comm.h"
#include "../runtime/error.h"
#include "../runtime/memory.h"
#include "../offload/mover.h"
#include "../offload/swap.h"
#include "plan.h"
#include "zrt/zrt.h"

typedef struct zrt__param_info {
    zrt_param_desc desc; /* desc.name points at name */
    char *name;
    int64_t numel;
} zrt__param_info;

typedef struct zrt__layer_state {
    zrt__buf param_full;
    zrt__buf param_shard;
    zrt__buf grad_full;
    zrt__buf grad_shard;
    zrt__buf m, v;
    zrt__comm_req *gather; /* all-gather into param_full in flight */
    zrt__comm_req *reduce; /* gradient reduction in flight */
    int fwd_live, bwd_live;
    int bwd_done;    /* backward ended in this step */
    int persistent;  /* stage 3: kept gathered */
    int gathered;    /* stage 3: param_full holds current values (or will,
                        once `gather` completes) */
    int prefetched;  /* stage 3: gathered ahead of use, counted in
                        ctx->prefetched_numel */
    uint64_t swap_m, swap_v; /* NVMe optimizer tier: where m and v live */
    int64_t range_lo;  /* this rank's range of the flat buffer: the elements */
    int64_t range_len; /* it updates in the optimizer step */
    zrt__segment *segs; /* tensors within that range */
    int nsegs;
} zrt__layer_state;

typedef struct zrt__user_buf {
    zrt__buf buf;
    struct zrt__user_buf *next;
} zrt__user_buf;

/* Stage 3 learns the order in which layers are entered during the first
 * step, and prefetches along it afterwards. */
typedef struct zrt__trace {
    int *layers;
    int len, cap;   /* cap is fixed at finalize */
    int pos;        /* next expected entry */
    int valid;      /* a full step was recorded and is being followed */
    int recording;  /* recording this step */
    int overflowed; /* this step entered more layers than cap */
} zrt__trace;

struct zrt_ctx {
    zrt_config cfg;
    zrt__errbuf err;
    zrt__mem_account acct;
    zrt__backend *be;
    zrt__comm *comm;
    zrt__pool *pool;       /* helper threads, bound inside the rank's cores */
    int log_rank_prefix;   /* 0 when the launcher tags output lines already */

    zrt__param_info *params;
    int nparams, params_cap;
    int finalized;
    zrt__plan plan;
    zrt__layer_state *layers;
    long step;

    int *reduce_fifo; /* layers with a reduction in flight, oldest first */
    int reduce_count;
    int64_t reducing_numel;
    int64_t gathering_numel; /* stages 1-2: post-step all-gathers in flight,
                                started in layer order */
    int64_t prefetched_numel;
    zrt__trace trace;

    zrt__user_buf *user_bufs;
    zrt__swap *optim_swap;   /* offload_optimizer nvme: m, v of every layer */
    zrt__mover *optim_mover; /* its I/O thread */
    zrt__buf optim_staging;  /* host: two (m, v) pairs of the largest layer */
    int64_t optim_largest;   /* elements of the largest layer's range */
    int64_t optim_swap_bytes; /* charged to the nvme tier */
    double comm_wait_seconds; /* blocked in zrt__comm_wait */
};

/* Validates the context pointer and that the params are (not) finalized. */
zrt_status zrt__require_ctx(const zrt_ctx *ctx);
zrt_status zrt__require_finalized(zrt_ctx *ctx, const char *call);
zrt_status zrt__require_layer(zrt_ctx *ctx, int layer, const char *call);
zrt_status zrt__require_param(zrt_ctx *ctx, zrt_param param, const char *call);

/* Waits for a collective, counting the time blocked in comm_wait_seconds. */
zrt_status zrt__comm_wait(zrt_ctx *ctx, zrt__comm_req *req);

/* Engine internals shared by params.c and engine.c. */
zrt_status zrt__engine_allocate(zrt_ctx *ctx);
void zrt__engine_release(zrt_ctx *ctx);
zrt_status zrt__engine_drain(zrt_ctx *ctx); /* completes all collectives */
zrt_status zrt__drain_reductions(zrt_ctx *ctx);
zrt_status zrt__wait_gather(zrt_ctx *ctx, int layer);
zrt_status zrt__ensure_gathered(zrt_ctx *ctx, int layer);
zrt_status zrt__release_if_idle(zrt_ctx *ctx, int layer);
float *zrt__param_base(zrt_ctx *ctx, int layer); /* param_full as floats */

#endif /* ZRT_ZERO_CTX_H */
