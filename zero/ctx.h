/* SPDX-License-Identifier: Apache-2.0 */
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

#include <math.h>

#include "../offload/mover.h"
#include "../offload/swap.h"
#include "../runtime/backend.h"
#include "../runtime/comm.h"
#include "../runtime/error.h"
#include "../runtime/memory.h"
#include "checkpoint.h"
#include "loss_scale.h"
#include "plan.h"
#include "trace.h"
#include "zrt/zrt.h"

typedef struct zrt__param_info {
    zrt_param_desc desc; /* desc.name points at name */
    char *name;
    int64_t numel;
} zrt__param_info;

enum { ZRT__FETCH_NONE, ZRT__FETCH_QUEUED, ZRT__FETCH_READY };

/* One swap file and the I/O thread that drives it. */
typedef struct zrt__nvme_store {
    zrt__swap *swap;
    zrt__mover *mover;
    int64_t bytes; /* charged to the nvme tier */
    zrt_category cat;
} zrt__nvme_store;

typedef struct zrt__layer_state {
    zrt__buf param_full;
    zrt__buf param_shard;
    zrt__buf grad_full;
    zrt__buf grad_shard;
    zrt__buf grad_host; /* the optimizer's copy of grad_shard, when the shard
                           accumulates on the device (zrt__grad_staged) */
    zrt__buf m, v;
    zrt__buf master;       /* 16-bit parameters: the f32 copy of this rank's range */
    zrt__buf master_next;  /* with an NVMe tier: the step writes the new master
                              copy here, and the commit swaps the two */
    zrt__comm_req *gather; /* all-gather into param_full in flight */
    zrt__comm_req *reduce; /* gradient reduction in flight */
    int fwd_live, bwd_live;
    int bwd_done;   /* backward ended in this step */
    int persistent; /* stage 3: kept gathered */
    int gathered;   /* stage 3: param_full holds current values (or will,
                       once `gather` completes) */
    int prefetched; /* stage 3: gathered ahead of use, counted in
                       ctx->prefetched_numel */
    /* hpZ (ctx->hpz_comm): hpz_shard is slice hpz_comm->rank of P of the
     * flat parameters (flat / P elements; layers that are not persistent);
     * hpz_valid: it holds the current parameters; hpz_fill: the gather in
     * flight is over shard_comm and fills it when it completes; hpz_gather:
     * the gather in flight runs over hpz_comm, from the secondary shards. */
    zrt__buf hpz_shard;
    int hpz_valid, hpz_fill, hpz_gather;
    /* qwZ (zero_quantized_weights): this rank's shard quantized
     * (zrt__qwz_bytes) and the N shards' received; held from start_gather
     * until the wait dequantizes qwz_recv into param_full. */
    zrt__buf qwz_send, qwz_recv;
    /* Top-k (gradient_topk_ratio, stages 0-1): topk_residual is the f32
     * error feedback, flat elements, for the whole run; topk_send holds
     * this rank's k (index, value) pairs as 2k f32 slots [k u32 indices |
     * k values] and topk_recv the N ranks', held from start_reduction until
     * finish_reduction sums them into grad_full. */
    zrt__buf topk_residual, topk_send, topk_recv;
    /* NVMe tiers (zero/nvme.c): where m, v and the parameter shard live in
     * each of the two slots; ctx->nvme_slot holds the current values */
    uint64_t swap_m[2], swap_v[2], swap_p[2];
    zrt__buf fetched;      /* stage 3, shards on NVMe: the copy being gathered */
    uint64_t fetch_ticket; /* its read on the parameter mover */
    int fetch_state;       /* ZRT__FETCH_* */
    int64_t range_lo;      /* this rank's range of the flat buffer: the elements */
    int64_t range_len;     /* it updates in the optimizer step */
    zrt__segment *segs;    /* tensors within that range */
    int nsegs;
} zrt__layer_state;

typedef struct zrt__user_buf {
    zrt__buf buf;
    struct zrt__user_buf *next;
} zrt__user_buf;

enum { ZRT__TRAFFIC_STEPS = 8 }; /* steps whose traffic the report lists */

/* One pass of the pipeline (zero/pipe.c), from zrt_pipe_begin to done, and
 * the statistics of the training passes so far. */
typedef struct zrt__pipe {
    int running; /* a pass between zrt_pipe_begin and done */
    zrt_pipe_kind kind;
    int micro_batches, slots;
    zrt_pipe_op *ops;      /* the stage's schedule, `count` ops */
    size_t count, next;    /* next: the index of the op to hand out */
    zrt_pipe_op op;        /* the current op (handed out last) */
    int op_received;       /* zrt_pipe_recv done for the current op */
    int op_sent;           /* zrt_pipe_send done for the current op */
    zrt__comm_req **sends; /* [2 * M]: pass * M + micro; NULL: none pending */
    double started, idle;  /* monotonic seconds at begin; idle in this pass */
    zrt_pipe_stats stats;
} zrt__pipe;

struct zrt_ctx {
    zrt_config cfg;
    zrt__errbuf err;
    zrt__mem_account acct;
    zrt__backend *be;
    zrt__comm *comm; /* every rank of the job: the loss, agree, barrier */
    /* Hybrid sharding (hybrid_shard_size S, zero/context.c): shard_comm is
     * this rank's shard group (S consecutive ranks), which the model states
     * are sharded across: the partition plan, the gradients' reduce-scatter,
     * the parameter all-gathers, the gradient norm. replica_comm holds the
     * world / S ranks with this rank's index in each group, which all-reduce
     * each reduced shard. Off (or S the world size): shard_comm is comm and
     * replica_comm NULL, so the engine runs exactly as plain ZeRO. */
    zrt__comm *shard_comm;
    zrt__comm *replica_comm;
    /* hpZ (zero_hpz_partition_size P > 1, stage 3, zero/context.c): this
     * rank's group of P consecutive ranks, ranked by r % P. A forward's
     * gather (over shard_comm) also fills each layer's hpz_shard, and later
     * gathers of the same parameters run over hpz_comm from those. NULL:
     * off. */
    zrt__comm *hpz_comm;
    /* Pipeline parallelism (pipeline_stages P > 1, zero/context.c): world
     * rank r is data-parallel rank d = r % D of stage s = r / D (D = N / P).
     * shard_comm is then the stage's D ranks (split from the world, flat),
     * and pipe_comm the P ranks of equal d, ranked by stage: activations and
     * their gradients move over it (zero/pipe.c). NULL: off. */
    zrt__comm *pipe_comm;
    zrt__pipe pipe;
    zrt__pool *pool;     /* helper threads, bound inside the rank's cores */
    int log_rank_prefix; /* 0 when the launcher tags output lines already */

    zrt__param_info *params;
    int nparams, params_cap;
    int finalized;
    zrt__plan plan;
    zrt__layer_state *layers;
    long step;
    zrt_dtype pdtype;        /* parameters and gradients: f32, bf16 or f16 */
    size_t esize;            /* their bytes */
    zrt__loss_scaler scaler; /* fp16; a fixed 1 otherwise */
    int micro;               /* micro-steps ended since the last optimizer step */
    float last_grad_norm;    /* of the last optimizer step, before clipping */

    int *reduce_fifo; /* layers with a reduction in flight, oldest first */
    int reduce_count;
    int64_t reducing_numel;
    int64_t gathering_numel; /* stages 1-2: post-step all-gathers in flight,
                                started in layer order */
    int64_t prefetched_numel;
    zrt__trace trace;

    zrt__user_buf *user_bufs;
    int64_t declared_bytes[ZRT_CAT_COUNT]; /* zrt_declare_buffer */
    zrt_layer_call *declared_calls;        /* zrt_declare_step; NULL: default */
    int ndeclared_calls;
    zrt__nvme_store optim_nvme; /* offload_optimizer nvme: m, v of every layer */
    zrt__nvme_store param_nvme; /* offload_param nvme: stage-3 shards */
    zrt__buf step_staging;      /* host: two (p, m, v) sets of the largest range */
    zrt__buf ckpt_staging;      /* host: checkpoint checksums without step_staging */
    zrt__buf ckpt_buffer;       /* host: asynchronous saves' ring (checkpoint_async) */
    struct zrt__ckpt_pending *ckpt_pending;  /* an asynchronous save not yet
                                                published (zero/checkpoint.c) */
    zrt_status ckpt_failed;                  /* an asynchronous save's failure, */
    char ckpt_failed_text[ZRT__ERRBUF_SIZE]; /* kept for zrt_save_wait */
    int restart;                             /* ZRT_RESTART: zero-launch's attempt */
    /* Set by checkpoint.c's first asynchronous save, so that the layers
     * below call up without knowing it (design.md, "who calls whom"):
     * ckpt_poll, collective, at every optimizer step once its collectives
     * are drained, publishes the pending save when every rank's file is
     * durable; ckpt_release, in zrt_ctx_destroy, stops a pending save's
     * writer without publishing it. */
    zrt_status (*ckpt_poll)(zrt_ctx *ctx);
    void (*ckpt_release)(zrt_ctx *ctx);
    zrt__model_dim model_dims[ZRT_MODEL_DIMS_MAX]; /* zrt_declare_model_dim */
    int nmodel_dims;
    int64_t staging_largest;  /* elements of the largest layer's range */
    int nvme_slot;            /* which of the two slots is current */
    int fetches_queued;       /* shard reads queued ahead of their gathers */
    double comm_wait_seconds; /* blocked in zrt__comm_wait */
    /* the communicator's traffic per optimizer step (zero/report.c) */
    zrt__comm_traffic traffic_mark; /* comm->traffic at the last step's end */
    zrt__comm_traffic traffic_steps[ZRT__TRAFFIC_STEPS]; /* steps 1.. */
    int traffic_nsteps;                                  /* recorded */
};

/* Labels what follows (allocations, the timeline, the peaks) with a phase
 * of the step in progress; layer -1 for none. */
static inline void zrt__set_phase(zrt_ctx *ctx, int kind, int layer)
{
    ctx->acct.phase = (zrt__phase){.kind = kind, .layer = layer, .step = ctx->step + 1};
}

/* Validates the context pointer and that the params are (not) finalized. */
zrt_status zrt__require_ctx(const zrt_ctx *ctx);
zrt_status zrt__require_finalized(zrt_ctx *ctx, const char *call);
zrt_status zrt__require_layer(zrt_ctx *ctx, int layer, const char *call);
zrt_status zrt__require_param(zrt_ctx *ctx, zrt_param param, const char *call);

/* Ends an optimizer step's traffic record (zrt_step, once the step's
 * collectives have started): what comm->traffic gained since the last. */
void zrt__traffic_step_end(zrt_ctx *ctx);

/* Waits for a collective of ctx->comm, counting the time blocked in
 * comm_wait_seconds; zrt__comm_wait_in: of the communicator c that started
 * it (shard_comm, replica_comm). */
zrt_status zrt__comm_wait(zrt_ctx *ctx, zrt__comm_req *req);
zrt_status zrt__comm_wait_in(zrt_ctx *ctx, zrt__comm *c, zrt__comm_req *req);

/* Advances a pipeline pass's pending sends without completing any (base.c;
 * the engine calls it at every layer call). */
zrt_status zrt__pipe_progress(zrt_ctx *ctx);

/* Ends a pass left running (zero/pipe.c): waits for its pending sends and
 * frees its schedule. zrt_ctx_destroy calls it. */
void zrt__pipe_release(zrt_ctx *ctx);

/* The partition plan of the registered parameters (params.c). */
zrt_status zrt__build_plan(zrt_ctx *ctx, zrt__plan *out);

/* 16-bit parameters and gradients with an f32 master copy. */
static inline int zrt__mixed(const zrt_ctx *ctx)
{
    return ctx->pdtype != ZRT_F32;
}

static inline zrt_half zrt__half_of(const zrt_ctx *ctx)
{
    return ctx->pdtype == ZRT_BF16 ? ZRT_HALF_BF16 : ZRT_HALF_F16;
}

/* Element `index` of a buffer of parameter-typed elements. */
static inline void *zrt__elem(const zrt_ctx *ctx, void *base, int64_t index)
{
    return (char *)base + (size_t)index * ctx->esize;
}

/* Stages 2-3 with the optimizer off the device and micro-steps: the
 * gradient shard accumulates on the device, and moves to the host once per
 * optimizer step, as ZeRO-Offload does with accumulation. */
static inline int zrt__grad_staged(const zrt_ctx *ctx)
{
    return ctx->cfg.stage >= 2 && ctx->cfg.offload_optimizer.device != ZRT_OFFLOAD_NONE &&
           ctx->cfg.gradient_accumulation_steps > 1;
}

/* Whether the micro-step in progress ends with the optimizer step. */
static inline int zrt__at_boundary(const zrt_ctx *ctx)
{
    return ctx->micro + 1 >= ctx->cfg.gradient_accumulation_steps;
}

/* Engine internals shared by params.c and engine.c. */
zrt_status zrt__engine_allocate(zrt_ctx *ctx);
void zrt__engine_release(zrt_ctx *ctx);
zrt_status zrt__engine_drain(zrt_ctx *ctx); /* completes all collectives */
zrt_status zrt__drain_reductions(zrt_ctx *ctx);
zrt_status zrt__wait_gather(zrt_ctx *ctx, int layer);
zrt_status zrt__ensure_gathered(zrt_ctx *ctx, int layer);
zrt_status zrt__release_if_idle(zrt_ctx *ctx, int layer);
void *zrt__param_base(zrt_ctx *ctx, int layer); /* param_full */

/* The range of the layer this rank updates: parameters (not on NVMe) and
 * gradients, and one AdamW update of such a range, segment by segment. */
void *zrt__owned_param(zrt_ctx *ctx, int layer);
void *zrt__owned_grad(zrt_ctx *ctx, int layer);   /* what the optimizer reads */
void *zrt__reduced_grad(zrt_ctx *ctx, int layer); /* what reductions add into */
zrt_status zrt__adamw_layer(zrt_ctx *ctx, int layer, const float *p, float *p_out,
                            const float *g, float *m, float *v,
                            const zrt_adamw_scalars *decay,
                            const zrt_adamw_scalars *no_decay);

/* The same with 16-bit parameters: the f32 master copy updated in place,
 * the rounded parameters written to p (which may be g). */
zrt_status zrt__adamw_layer_mixed(zrt_ctx *ctx, int l, float *master, uint16_t *p,
                                  const uint16_t *g, float *m, float *v, float grad_scale,
                                  const zrt_adamw_scalars *decay,
                                  const zrt_adamw_scalars *no_decay);

/* pin_memory: page-locks a host-tier buffer when its owning offload section
 * asks for it (no-op otherwise). */
zrt_status zrt__pin_for(zrt_ctx *ctx, zrt__buf *buf, const zrt_offload_config *owner);

/* The memory plan (zero/memplan.c): replays a step on `plan`; calls NULL
 * means the default order. */
zrt_status zrt__memplan_run(const zrt_config *cfg, const zrt__plan *plan,
                            const zrt_layer_call *calls, int ncalls,
                            const int64_t *declared, zrt__errbuf *err, zrt_mem_plan *out);

/* The plan of `cfg` (the context's, or a candidate's) for the context's
 * declared step and buffers. */
zrt_status zrt__plan_for(zrt_ctx *ctx, const zrt_config *cfg, const zrt__plan *plan,
                         zrt_mem_plan *out);

/* The NVMe tiers (zero/nvme.c). */
zrt_status zrt__nvme_open(zrt_ctx *ctx);
void zrt__nvme_close(zrt_ctx *ctx);
int zrt__params_on_nvme(const zrt_ctx *ctx);
int zrt__nvme_step_needed(const zrt_ctx *ctx);
/* Bytes of ctx->ckpt_staging, the window zrt_load reads a section through
 * to check its CRC32C when there is no NVMe step staging to borrow: 1 MiB,
 * or the largest layer range in f32 when that is smaller. It is allocated
 * at finalize, not at the load, so that the memory plan (which charges it
 * from "init") covers loading as it covers steps. */
/* qwZ: bytes of one shard of `shard` f32 elements quantized to int8 in
 * blocks of `block`: [q, shard bytes | padding to 4 | an f32 scale a block],
 * a whole number of f32 elements so the gather moves it as ZRT_F32. */
static inline int64_t zrt__qwz_bytes(int64_t shard, int64_t block)
{
    return (int64_t)zrt__quant_part_bytes((size_t)shard, (zrt__quant){8, (size_t)block});
}

/* Top-k: the elements a layer of `flat` elements sends, ceil(ratio * flat)
 * and at least 1 (no more than flat); 0 when top-k is off. */
static inline int64_t zrt__topk_count(int64_t flat, float ratio)
{
    if (!(ratio > 0.0f) || flat <= 0)
        return 0;
    int64_t k = (int64_t)ceil((double)ratio * (double)flat);
    return k < 1 ? 1 : k > flat ? flat : k;
}

/* Bytes of ctx->ckpt_buffer, the ring asynchronous saves copy a rank's
 * file through: the file's data (every layer's shard of each kind: the
 * parameters in their type, the moments and the master copy in f32),
 * capped by checkpoint_async_buffer_size; 0 when saves are synchronous or
 * the rank writes no file (plan->writes_ckpt). Allocated at finalize so
 * that the memory plan charges it from "init". */
static inline int64_t zrt__ckpt_buffer_bytes(const zrt_config *cfg, const zrt__plan *plan)
{
    if (!cfg->checkpoint_async || !plan->writes_ckpt)
        return 0;
    int mixed = cfg->bf16.enabled || cfg->fp16.enabled;
    int64_t per_elem = (mixed ? 2 : 4) + 4 * (mixed ? 3 : 2);
    int64_t data = 0;
    for (int l = 0; l < plan->nlayers; l++)
        data += plan->layers[l].numel > 0 ? plan->layers[l].shard_numel * per_elem : 0;
    int64_t cap = cfg->checkpoint_async_buffer_size;
    return cap > 0 && cap < data ? cap : data;
}

static inline int64_t zrt__ckpt_staging_bytes(int64_t largest_range)
{
    int64_t range_bytes = largest_range * (int64_t)sizeof(float);
    return range_bytes < (1 << 20) ? range_bytes : (1 << 20);
}

/* Bytes of ctx->step_staging (ctx->staging_largest set). */
size_t zrt__step_staging_bytes(const zrt_ctx *ctx);
/* Whether the config puts state on NVMe, so the step runs through nvme.c. */
static inline int zrt__nvme_configured(const zrt_ctx *ctx)
{
    return ctx->cfg.offload_optimizer.device == ZRT_OFFLOAD_NVME ||
           (ctx->cfg.stage == 3 && ctx->cfg.offload_param.device == ZRT_OFFLOAD_NVME);
}
/* Queues the read of a stage-3 shard from NVMe (no-op when queued already). */
zrt_status zrt__nvme_fetch(zrt_ctx *ctx, int layer);
/* Waits for the shard's read (queuing it first if needed). */
zrt_status zrt__nvme_fetched_shard(zrt_ctx *ctx, int layer, void **shard);
/* Frees the fetched copy (after its gather, or when it went stale). */
void zrt__nvme_drop_fetch(zrt_ctx *ctx, int layer);
/* Whether another read may be queued ahead (offload_param.buffer_count). */
int zrt__nvme_fetch_room(const zrt_ctx *ctx);
/* Reads the layer's shard, lets `edit` change it, writes it back. */
typedef zrt_status (*zrt__shard_edit)(zrt_ctx *ctx, int layer, void *shard,
                                      const void *arg);
zrt_status zrt__nvme_shard_update(zrt_ctx *ctx, int layer, zrt__shard_edit edit,
                                  const void *arg);
/* The optimizer step with state on NVMe: all or nothing on every rank. */
zrt_status zrt__nvme_step(zrt_ctx *ctx, float grad_scale, const zrt_adamw_scalars *decay,
                          const zrt_adamw_scalars *no_decay);

#endif /* ZRT_ZERO_CTX_H */
