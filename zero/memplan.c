/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/memplan.c — the memory plan: what this rank will hold in every tier
 * and category at every call of a training step, computed before anything is
 * allocated.
 *
 * The plan replays the engine's decisions on the partition plan, without
 * memory or communication: which buffer each call allocates and frees
 * (zero/engine.c), the NVMe staging (zero/nvme.c) and the reduction scratch
 * (runtime/comm_mpi.c). It charges the same sizes to a memory account of its
 * own, in the same order, so its peaks are those the run will measure, if
 *   - the loop makes the layer calls of its declared step (zrt_declare_step)
 *     or, without one, forward 0..n-1 then backward n-1..0, every step;
 *   - the loop's own buffers are the ones it declared (zrt_declare_buffer);
 *   - the engine frees at fixed points, which it does: nothing is freed
 *     because a poll found a collective done (see progress() in engine.c).
 * The loop's zrt_allreduce_f32 scratch (a few bytes for a loss) and buffers
 * made by zrt_grad_read/zrt_param_read outside the step are not planned.
 *
 * Every function below is named after the engine function it mirrors; a
 * change there needs the same change here, and the plan-versus-measured test
 * (tests/scripts/mem_plan_sweep.sh) fails until it has one.
 *
 * Three steps are replayed: the first records the layer order (no prefetch),
 * the second follows it, the third shows the second was the steady state.
 *
 * The communicator's scratch depends on where it runs (see comm_tier): the
 * cpu backend's MPI reductions hold scratch in the device tier (host memory
 * playing the device); on the cuda backend NCCL reduces in place with no
 * scratch of ours, and MPI's scratch for host buffers (the norm's float) is
 * host memory. MPI staging of device buffers on cuda (ranks sharing a GPU,
 * "communicator": "mpi") is not modelled: that pairing's plan is approximate.
 * The cuda backend's bounce buffer is a fixed host/staging line from the start.
 */
#include <stdlib.h>
#include <string.h>

#include "ctx.h"

enum { PLANNED_STEPS = 3 };

typedef struct sim_layer {
    int64_t numel, flat, shard, range; /* elements; range: what this rank updates */
    int has_full;                      /* param_full allocated */
    int gathered, prefetched, persistent, gather_pending;
    int qwz_held; /* qwZ: the quantized send and receive buffers */
    int fwd_live, bwd_live, bwd_done;
    int has_bucket;  /* grad_full at stages 2-3 */
    int fetch_state; /* ZRT__FETCH_* */
} sim_layer;

typedef struct sim {
    const zrt_config *cfg;
    int world, n;
    int replicas; /* hybrid sharding: G copies of each shard (1: none) */
    zrt__mem_account acct;
    sim_layer *layers;
    int *fifo, nfifo;
    int64_t reducing, prefetched;
    int fetches_queued, params_nvme, optim_nvme;
    int64_t esize;      /* bytes of a parameter or gradient element: 4, or 2 (mixed) */
    zrt_tier comm_tier; /* where the communicator's scratch lives */
    int reduce_scratch; /* whether gradient reductions hold scratch (MPI) */
    long step;
    int micro; /* micro-steps ended in this optimizer step */
    zrt__trace trace;
    zrt__errbuf *err;
} sim;

/* ---- the account ------------------------------------------------------------ */

static void set_phase(sim *s, int kind, int layer)
{
    s->acct.phase = (zrt__phase){.kind = kind, .layer = layer, .step = s->step + 1};
}

/* f32 elements: moments, the master copy, staging, the norm's all-reduce. */
static void charge(sim *s, zrt_tier tier, zrt_category cat, int64_t elements)
{
    zrt__mem_charge(&s->acct, NULL, tier, cat, elements * (int64_t)sizeof(float), NULL);
}

static void release(sim *s, zrt_tier tier, zrt_category cat, int64_t elements)
{
    zrt__mem_release(&s->acct, tier, cat, elements * (int64_t)sizeof(float));
}

/* Parameter-typed elements: parameters, gradients, their reductions. */
static void charge_p(sim *s, zrt_tier tier, zrt_category cat, int64_t elements)
{
    zrt__mem_charge(&s->acct, NULL, tier, cat, elements * s->esize, NULL);
}

static void release_p(sim *s, zrt_tier tier, zrt_category cat, int64_t elements)
{
    zrt__mem_release(&s->acct, tier, cat, elements * s->esize);
}

/* ---- allocation at finalize (engine.c alloc_layer, nvme.c zrt__nvme_open) -- */

static zrt_tier tier_for(const zrt_offload_config *offload)
{
    return offload->device == ZRT_OFFLOAD_CPU ? ZRT_TIER_HOST : ZRT_TIER_DEVICE;
}

/* engine.c zrt__grad_staged: the shard accumulates on the device. */
static int grad_staged(const sim *s)
{
    const zrt_config *c = s->cfg;
    return c->stage >= 2 && c->offload_optimizer.device != ZRT_OFFLOAD_NONE &&
           c->gradient_accumulation_steps > 1;
}

static zrt_tier grad_shard_tier(const sim *s)
{
    return s->cfg->offload_optimizer.device == ZRT_OFFLOAD_NONE || grad_staged(s)
               ? ZRT_TIER_DEVICE
               : ZRT_TIER_HOST;
}

static void alloc_layer(sim *s, sim_layer *ly)
{
    const zrt_config *c = s->cfg;
    if (ly->numel == 0)
        return;
    ly->range = c->stage == 0 ? ly->flat : ly->shard;
    if (c->stage < 3) {
        charge_p(s, ZRT_TIER_DEVICE, ZRT_CAT_PARAM, ly->flat);
        ly->has_full = 1;
    } else {
        if (c->offload_param.device != ZRT_OFFLOAD_NVME)
            charge_p(s, tier_for(&c->offload_param), ZRT_CAT_PARAM, ly->shard);
        ly->persistent = ly->numel <= c->stage3_param_persistence_threshold;
        if (ly->persistent) {
            charge_p(s, ZRT_TIER_DEVICE, ZRT_CAT_PARAM_PERSIST, ly->flat);
            ly->has_full = 1;
        } else if (c->zero_hpz_partition_size > 1) {
            /* engine.c alloc_params: hpZ's secondary shard, flat / P */
            charge_p(s, ZRT_TIER_DEVICE, ZRT_CAT_HPZ,
                     ly->flat / c->zero_hpz_partition_size);
        }
    }
    if (c->stage < 2)
        charge_p(s, ZRT_TIER_DEVICE, ZRT_CAT_GRAD, ly->flat);
    else
        charge_p(s, grad_shard_tier(s), ZRT_CAT_GRAD, ly->shard);
    if (c->stage < 2 && c->gradient_topk_ratio > 0.0f) /* engine.c alloc_layer */
        charge(s, ZRT_TIER_DEVICE, ZRT_CAT_TOPK_RESIDUAL, ly->flat);
    if (c->stage >= 2 && grad_staged(s)) /* the optimizer's host copy */
        charge_p(s, ZRT_TIER_HOST, ZRT_CAT_GRAD, ly->shard);
    if (s->esize == 2) { /* engine.c alloc_master */
        zrt_tier tier = c->offload_optimizer.device == ZRT_OFFLOAD_NONE ? ZRT_TIER_DEVICE
                                                                        : ZRT_TIER_HOST;
        charge(s, tier, ZRT_CAT_MASTER, ly->range);
        if (s->optim_nvme || s->params_nvme)
            charge(s, tier, ZRT_CAT_MASTER, ly->range);
    }
    if (c->offload_optimizer.device != ZRT_OFFLOAD_NVME) {
        charge(s, tier_for(&c->offload_optimizer), ZRT_CAT_OPTIM, ly->range);
        charge(s, tier_for(&c->offload_optimizer), ZRT_CAT_OPTIM, ly->range);
    }
}

/* The swap file's size: two slots per region, each rounded to a block;
 * regions of elements of `esize` bytes. */
static int64_t swap_capacity(const sim *s, int regions_per_slot, int64_t esize)
{
    int64_t block = s->cfg->aio.block_size ? s->cfg->aio.block_size : (1 << 20);
    int64_t at = 0;
    for (int l = 0; l < s->n; l++) {
        int64_t bytes = s->layers[l].range * esize;
        at += 2 * regions_per_slot * ((bytes + block - 1) / block * block);
    }
    return at;
}

static int64_t largest_range(const sim *s)
{
    int64_t largest = 0;
    for (int l = 0; l < s->n; l++)
        if (s->layers[l].range > largest)
            largest = s->layers[l].range;
    return largest;
}

/* engine.c alloc_ckpt_staging: zrt_load's checksum window, planned from
 * init whether or not the loop loads, as the engine allocates it. */
static void ckpt_staging(sim *s)
{
    if ((s->optim_nvme || s->params_nvme) && largest_range(s) > 0)
        return; /* the NVMe step staging serves */
    zrt__mem_charge(&s->acct, NULL, ZRT_TIER_HOST, ZRT_CAT_STAGING,
                    zrt__ckpt_staging_bytes(largest_range(s)), NULL);
}

static void nvme_open(sim *s)
{
    if (!s->optim_nvme && !s->params_nvme)
        return;
    int64_t largest = largest_range(s);
    if (largest == 0)
        return;
    /* nvme.c zrt__step_staging_bytes */
    int64_t halves = s->esize == 2 && s->params_nvme ? 2 * largest * s->esize : 0;
    zrt__mem_charge(&s->acct, NULL, ZRT_TIER_HOST, ZRT_CAT_STAGING,
                    6 * largest * (int64_t)sizeof(float) + halves, NULL);
    int64_t optim = s->optim_nvme ? swap_capacity(s, 2, sizeof(float)) : 0;
    int64_t param = s->params_nvme ? swap_capacity(s, 1, s->esize) : 0;
    if (optim)
        zrt__mem_charge(&s->acct, NULL, ZRT_TIER_NVME, ZRT_CAT_OPTIM, optim, NULL);
    if (param)
        zrt__mem_charge(&s->acct, NULL, ZRT_TIER_NVME, ZRT_CAT_PARAM, param, NULL);
}

/* ---- NVMe shard reads (nvme.c) ---------------------------------------------- */

static void nvme_fetch(sim *s, int l)
{
    sim_layer *ly = &s->layers[l];
    if (ly->fetch_state != ZRT__FETCH_NONE || ly->range == 0)
        return;
    zrt__phase caller = s->acct.phase;
    set_phase(s, ZRT__PHASE_SWAP, l);
    charge_p(s, ZRT_TIER_HOST, ZRT_CAT_STAGING, ly->range);
    s->acct.phase = caller;
    ly->fetch_state = ZRT__FETCH_QUEUED;
    s->fetches_queued++;
}

static void nvme_fetched_shard(sim *s, int l)
{
    sim_layer *ly = &s->layers[l];
    nvme_fetch(s, l);
    if (ly->fetch_state == ZRT__FETCH_QUEUED) {
        s->fetches_queued--;
        ly->fetch_state = ZRT__FETCH_READY;
    }
}

static void nvme_drop_fetch(sim *s, int l)
{
    sim_layer *ly = &s->layers[l];
    if (ly->fetch_state == ZRT__FETCH_NONE)
        return;
    if (ly->fetch_state == ZRT__FETCH_QUEUED)
        s->fetches_queued--;
    ly->fetch_state = ZRT__FETCH_NONE;
    release_p(s, ZRT_TIER_HOST, ZRT_CAT_STAGING, ly->range);
}

static int nvme_fetch_room(const sim *s)
{
    int limit =
        s->cfg->offload_param.buffer_count > 0 ? s->cfg->offload_param.buffer_count : 1;
    return s->fetches_queued < limit;
}

/* ---- parameter gathers (engine.c) ------------------------------------------- */

/* qwZ (engine.c start_quantized_gather, free_qwz): this rank's shard
 * quantized, then the shard group's (flat / shard ranks), held until the wait dequantizes
 * them. */
static int64_t qwz_part(const sim *s, const sim_layer *ly)
{
    return zrt__qwz_bytes(ly->shard, s->cfg->zero_quantized_block_size);
}

static void qwz_charge(sim *s, sim_layer *ly)
{
    int64_t part = qwz_part(s, ly);
    zrt__mem_charge(&s->acct, NULL, ZRT_TIER_DEVICE, ZRT_CAT_QWZ, part, NULL);
    zrt__mem_charge(&s->acct, NULL, ZRT_TIER_DEVICE, ZRT_CAT_QWZ,
                    part * (ly->flat / ly->shard), NULL);
    ly->qwz_held = 1;
}

static void qwz_release(sim *s, sim_layer *ly)
{
    int64_t part = qwz_part(s, ly);
    zrt__mem_release(&s->acct, ZRT_TIER_DEVICE, ZRT_CAT_QWZ, part);
    zrt__mem_release(&s->acct, ZRT_TIER_DEVICE, ZRT_CAT_QWZ,
                     part * (ly->flat / ly->shard));
    ly->qwz_held = 0;
}

static void wait_gather(sim *s, int l)
{
    sim_layer *ly = &s->layers[l];
    if (!ly->gather_pending)
        return;
    ly->gather_pending = 0;
    if (ly->fetch_state == ZRT__FETCH_READY)
        nvme_drop_fetch(s, l);
    if (ly->qwz_held)
        qwz_release(s, ly);
}

static void start_gather(sim *s, int l)
{
    sim_layer *ly = &s->layers[l];
    if (s->params_nvme)
        nvme_fetched_shard(s, l);
    if (!ly->has_full) {
        charge_p(s, ZRT_TIER_DEVICE, ZRT_CAT_PARAM_GATHER, ly->flat);
        ly->has_full = 1;
    }
    if (s->cfg->zero_quantized_weights)
        qwz_charge(s, ly);
    ly->gather_pending = 1;
    ly->gathered = 1;
}

static void unmark_prefetched(sim *s, int l)
{
    sim_layer *ly = &s->layers[l];
    if (!ly->prefetched)
        return;
    ly->prefetched = 0;
    s->prefetched -= ly->flat;
}

static void ensure_gathered(sim *s, int l)
{
    sim_layer *ly = &s->layers[l];
    if (s->cfg->stage < 3 || ly->numel == 0) {
        wait_gather(s, l);
        return;
    }
    unmark_prefetched(s, l);
    if (!ly->gathered)
        start_gather(s, l);
    wait_gather(s, l);
}

static int needed_next(const sim *s, int l)
{
    const zrt__trace *tr = &s->trace;
    return tr->valid && tr->pos < tr->len && tr->layers[tr->pos] == l &&
           s->prefetched + s->layers[l].flat <= s->cfg->stage3_prefetch_bucket_size;
}

static void release_if_idle(sim *s, int l)
{
    sim_layer *ly = &s->layers[l];
    if (s->cfg->stage < 3 || ly->fwd_live || ly->bwd_live || ly->persistent ||
        !ly->has_full)
        return;
    if (ly->gathered && !ly->prefetched && needed_next(s, l)) {
        ly->prefetched = 1;
        s->prefetched += ly->flat;
        return;
    }
    wait_gather(s, l);
    unmark_prefetched(s, l);
    release_p(s, ZRT_TIER_DEVICE, ZRT_CAT_PARAM_GATHER, ly->flat);
    ly->has_full = 0;
    ly->gathered = 0;
}

static int skipped_by_prefetch(const sim *s, int l)
{
    const sim_layer *ly = &s->layers[l];
    return ly->numel == 0 || ly->gathered || ly->persistent;
}

static void fetch_ahead(sim *s, int from)
{
    const zrt__trace *tr = &s->trace;
    for (int j = from; j < tr->len && nvme_fetch_room(s); j++)
        if (!skipped_by_prefetch(s, tr->layers[j]))
            nvme_fetch(s, tr->layers[j]);
}

static void prefetch(sim *s)
{
    const zrt__trace *tr = &s->trace;
    if (!tr->valid || !s->cfg->overlap_comm)
        return;
    int j = tr->pos;
    for (; j < tr->len; j++) {
        int next = tr->layers[j];
        if (skipped_by_prefetch(s, next))
            continue;
        if (s->prefetched + s->layers[next].flat > s->cfg->stage3_prefetch_bucket_size)
            break;
        start_gather(s, next);
        s->layers[next].prefetched = 1;
        s->prefetched += s->layers[next].flat;
    }
    if (s->params_nvme)
        fetch_ahead(s, j);
}

/* ---- gradient reductions (engine.c, comm_mpi.c) ----------------------------- */

static void fifo_remove(sim *s, int l)
{
    for (int i = 0; i < s->nfifo; i++) {
        if (s->fifo[i] != l)
            continue;
        memmove(&s->fifo[i], &s->fifo[i + 1],
                (size_t)(s->nfifo - i - 1) * sizeof *s->fifo);
        s->nfifo--;
        return;
    }
}

/* The bytes of an ordered reduction's scratch, held until the request is
 * waited; none on one rank: as large as the buffer it reduces, or with qgZ
 * two buffers (sent and received) of N quantized rank blocks
 * (comm_mpi.c alloc_quantized), flat and hierarchical alike. Top-k
 * (engine.c start_topk_reduction) holds none: its all-gather holds no
 * scratch; topk_charge has its send and receive buffers. */
static int topk_on(const sim *s)
{
    return s->cfg->stage < 2 && s->cfg->gradient_topk_ratio > 0.0f;
}

static int64_t scratch_of(const sim *s, const sim_layer *ly)
{
    if (s->world <= 1 || !s->reduce_scratch || topk_on(s))
        return 0;
    if (!s->cfg->zero_quantized_gradients)
        return ly->flat * s->esize;
    zrt__quant q = {s->cfg->zero_quantized_gradient_bits,
                    (size_t)s->cfg->zero_quantized_block_size};
    return 2 * s->world *
           (int64_t)zrt__quant_part_bytes((size_t)(ly->flat / s->world), q);
}

static void charge_scratch(sim *s, const sim_layer *ly)
{
    zrt__mem_charge(&s->acct, NULL, s->comm_tier, ZRT_CAT_COMM, scratch_of(s, ly), NULL);
}

static void release_scratch(sim *s, const sim_layer *ly)
{
    zrt__mem_release(&s->acct, s->comm_tier, ZRT_CAT_COMM, scratch_of(s, ly));
}

/* Top-k: the 2k f32 slots sent and the N ranks' received (engine.c
 * start_topk_reduction, free_topk), from the start to the wait; also on
 * one rank. */
static void topk_charge(sim *s, const sim_layer *ly, int charge_it)
{
    int64_t k = zrt__topk_count(ly->flat, s->cfg->gradient_topk_ratio);
    if (!topk_on(s) || k == 0)
        return;
    if (charge_it) {
        charge(s, ZRT_TIER_DEVICE, ZRT_CAT_COMM, 2 * k);
        charge(s, ZRT_TIER_DEVICE, ZRT_CAT_COMM, 2 * k * s->world);
    } else {
        release(s, ZRT_TIER_DEVICE, ZRT_CAT_COMM, 2 * k);
        release(s, ZRT_TIER_DEVICE, ZRT_CAT_COMM, 2 * k * s->world);
    }
}

/* engine.c reduce_across_replicas: the all-reduce of this rank's range over
 * the G replicas, started and waited at once after the group's reduction
 * released its scratch. comm_mpi.c host_all_reduce pads the range to a
 * multiple of G when it is not one, then holds a scratch of the padded
 * size; both go at the wait. */
static void reduce_across_replicas(sim *s, const sim_layer *ly)
{
    int64_t g = s->replicas;
    if (g <= 1 || !s->reduce_scratch || ly->range == 0)
        return;
    int64_t padded = (ly->range + g - 1) / g * g;
    int64_t padding = padded != ly->range ? padded : 0;
    charge_p(s, s->comm_tier, ZRT_CAT_COMM, padding);
    charge_p(s, s->comm_tier, ZRT_CAT_COMM, padded);
    release_p(s, s->comm_tier, ZRT_CAT_COMM, padded + padding);
}

static void complete_reduction(sim *s, int l)
{
    sim_layer *ly = &s->layers[l];
    zrt__phase caller = s->acct.phase;
    set_phase(s, ZRT__PHASE_REDUCE, l);
    fifo_remove(s, l);
    s->reducing -= ly->flat;
    release_scratch(s, ly);
    topk_charge(s, ly, 0);
    reduce_across_replicas(s, ly);
    if (s->cfg->stage >= 2) {
        release_p(s, ZRT_TIER_DEVICE, ZRT_CAT_GRAD_BUCKET, ly->flat);
        ly->has_bucket = 0;
    }
    s->acct.phase = caller;
}

static int at_boundary(const sim *s)
{
    return s->micro + 1 >= s->cfg->gradient_accumulation_steps;
}

static void start_reduction(sim *s, int l)
{
    sim_layer *ly = &s->layers[l];
    if (ly->flat == 0 || (s->cfg->stage < 2 && !at_boundary(s)))
        return;
    while (s->nfifo > 0 && s->reducing + ly->flat > s->cfg->reduce_bucket_size)
        complete_reduction(s, s->fifo[0]);
    charge_scratch(s, ly);
    topk_charge(s, ly, 1);
    s->fifo[s->nfifo++] = l;
    s->reducing += ly->flat;
    if (!s->cfg->overlap_comm)
        complete_reduction(s, l);
}

static void drain_reductions(sim *s)
{
    while (s->nfifo > 0)
        complete_reduction(s, s->fifo[0]);
}

/* ---- the layer calls and the step ------------------------------------------- */

static void enter_layer(sim *s, int l)
{
    if (s->cfg->stage < 3) {
        wait_gather(s, l);
        return;
    }
    zrt__trace_enter(&s->trace, l);
    ensure_gathered(s, l);
    prefetch(s);
}

/* One layer call; a call the engine would refuse fails the plan, naming it. */
static zrt_status replay_call(sim *s, const zrt_layer_call *call, int index)
{
    static const char *const names[] = {"forward_begin", "forward_end", "backward_begin",
                                        "backward_end"};
    int l = call->layer;
    if ((unsigned)call->kind > ZRT_BACKWARD_END || l < 0 || l >= s->n)
        return zrt__fail(s->err, ZRT_ERR_INVALID_ARG,
                         "declared step: call %d is kind %d, layer %d; kinds are "
                         "ZRT_FORWARD_BEGIN..ZRT_BACKWARD_END and layers 0..%d",
                         index, call->kind, l, s->n - 1);
    sim_layer *ly = &s->layers[l];
    const char *wrong = NULL;
    int bwd = call->kind >= ZRT_BACKWARD_BEGIN;
    set_phase(s, bwd ? ZRT__PHASE_BACKWARD : ZRT__PHASE_FORWARD, l);
    switch (call->kind) {
    case ZRT_FORWARD_BEGIN:
        if (ly->fwd_live) {
            wrong = "is already in forward";
            break;
        }
        enter_layer(s, l);
        ly->fwd_live = 1;
        break;
    case ZRT_FORWARD_END:
        if (!ly->fwd_live) {
            wrong = "is not in forward";
            break;
        }
        ly->fwd_live = 0;
        release_if_idle(s, l);
        break;
    case ZRT_BACKWARD_BEGIN:
        if (ly->bwd_live || ly->bwd_done) {
            wrong = "runs backward twice";
            break;
        }
        enter_layer(s, l);
        if (ly->has_bucket && s->cfg->stage >= 2) /* last micro-step's reduction */
            complete_reduction(s, l);
        if (s->cfg->stage >= 2 && ly->flat > 0) {
            charge_p(s, ZRT_TIER_DEVICE, ZRT_CAT_GRAD_BUCKET, ly->flat);
            ly->has_bucket = 1;
        }
        ly->bwd_live = 1;
        break;
    default:
        if (!ly->bwd_live) {
            wrong = "is not in backward";
            break;
        }
        start_reduction(s, l);
        ly->bwd_live = 0;
        ly->bwd_done = 1;
        release_if_idle(s, l);
        break;
    }
    if (wrong)
        return zrt__fail(s->err, ZRT_ERR_INVALID_ARG,
                         "declared step: call %d (%s of layer %d): layer %d %s", index,
                         names[call->kind], l, l, wrong);
    return ZRT_OK;
}

static void refresh_stage3_params(sim *s)
{
    for (int l = 0; l < s->n; l++) {
        sim_layer *ly = &s->layers[l];
        wait_gather(s, l);
        ly->gathered = 0;
        if (ly->persistent && ly->numel > 0) {
            start_gather(s, l);
            if (!s->cfg->overlap_comm)
                wait_gather(s, l);
        } else {
            release_if_idle(s, l);
        }
    }
}

/* An all-reduce of one float over n ranks: padded to one per rank, and its
 * scratch (comm_mpi.c mpi_all_reduce_f32). */
static void one_float_all_reduce(sim *s, int64_t n)
{
    charge(s, s->comm_tier, ZRT_CAT_COMM, n);
    charge(s, s->comm_tier, ZRT_CAT_COMM, n);
    release(s, s->comm_tier, ZRT_CAT_COMM, n);
    release(s, s->comm_tier, ZRT_CAT_COMM, n);
}

/* The gradient norm: over the shard group (nothing at stage 0, where every
 * rank holds every gradient), then, with a pipeline, over the stages. */
static void global_grad_norm(sim *s)
{
    if (s->cfg->stage > 0 && s->world > 1)
        one_float_all_reduce(s, s->world);
    if (s->cfg->pipeline_stages > 1)
        one_float_all_reduce(s, s->cfg->pipeline_stages);
}

static void end_micro_step(sim *s)
{
    set_phase(s, ZRT__PHASE_STEP, -1);
    zrt__trace_step_end(&s->trace);
    for (int l = 0; l < s->n; l++)
        s->layers[l].bwd_done = 0;
    s->micro++;
    set_phase(s, ZRT__PHASE_LOOP, -1);
}

static void step(sim *s)
{
    set_phase(s, ZRT__PHASE_STEP, -1);
    drain_reductions(s);
    for (int l = 0; l < s->n; l++)
        wait_gather(s, l);
    global_grad_norm(s);
    s->step++;
    if (s->optim_nvme || s->params_nvme)
        for (int l = 0; l < s->n; l++)
            nvme_drop_fetch(s, l);
    if (s->cfg->stage == 3)
        refresh_stage3_params(s);
    zrt__trace_step_end(&s->trace);
    set_phase(s, ZRT__PHASE_LOOP, -1);
    for (int l = 0; l < s->n; l++)
        s->layers[l].bwd_done = 0;
    s->micro = 0;
}

/* One optimizer step: gradient_accumulation_steps micro-steps of the calls,
 * each ended by zrt_step. */
static zrt_status replay_step(sim *s, const zrt_layer_call *calls, int ncalls)
{
    set_phase(s, ZRT__PHASE_LOOP, -1);
    drain_reductions(s); /* zrt_zero_grad */
    for (;;) {
        for (int i = 0; i < ncalls; i++)
            ZRT_CHECK(replay_call(s, &calls[i], i));
        for (int l = 0; l < s->n; l++)
            if (s->layers[l].fwd_live || s->layers[l].bwd_live)
                return zrt__fail(s->err, ZRT_ERR_INVALID_ARG,
                                 "declared step: layer %d is still live at its end", l);
        if (at_boundary(s))
            break;
        end_micro_step(s);
    }
    step(s);
    return ZRT_OK;
}

/* ---- setup and the public call ----------------------------------------------- */

/* Before the first step: the loop's parameter writes (each reads and drops
 * its shard when shards live on NVMe) and its declared buffers. */
static void replay_setup(sim *s, const int64_t *declared)
{
    set_phase(s, ZRT__PHASE_LOOP, -1);
    for (int l = 0; s->params_nvme && l < s->n; l++) {
        nvme_fetched_shard(s, l);
        nvme_drop_fetch(s, l);
    }
    for (int c = 0; c < ZRT_CAT_COUNT; c++)
        if (declared[c] > 0)
            zrt__mem_charge(&s->acct, NULL, ZRT_TIER_DEVICE, (zrt_category)c, declared[c],
                            NULL);
}

/* Forward through every layer, then backward in reverse. */
static zrt_layer_call *default_step(int n, int *count)
{
    zrt_layer_call *calls = malloc((4 * (size_t)n + 1) * sizeof *calls);
    if (!calls)
        return NULL;
    int k = 0;
    for (int l = 0; l < n; l++) {
        calls[k++] = (zrt_layer_call){ZRT_FORWARD_BEGIN, l};
        calls[k++] = (zrt_layer_call){ZRT_FORWARD_END, l};
    }
    for (int l = n - 1; l >= 0; l--) {
        calls[k++] = (zrt_layer_call){ZRT_BACKWARD_BEGIN, l};
        calls[k++] = (zrt_layer_call){ZRT_BACKWARD_END, l};
    }
    *count = k;
    return calls;
}

static int on_cuda(const zrt_config *cfg)
{
    return strcmp(cfg->backend, "cuda") == 0;
}

/* The communicator's scratch: device tier on the cpu backend (MPI), host tier
 * on cuda, where only MPI's host-buffer collectives hold any unless the
 * config names MPI for everything ("auto" on cuda is taken to be NCCL). */
static void comm_model(sim *s, const zrt_config *cfg)
{
    s->comm_tier = on_cuda(cfg) ? ZRT_TIER_HOST : ZRT_TIER_DEVICE;
    s->reduce_scratch = !on_cuda(cfg) || cfg->communicator == ZRT_COMM_MPI;
}

static zrt_status sim_init(sim *s, const zrt_config *cfg, const zrt__plan *plan,
                           zrt__errbuf *err)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->world = plan->world;
    s->replicas = plan->replicas > 1 ? plan->replicas : 1;
    s->n = plan->nlayers;
    s->err = err;
    s->optim_nvme = cfg->offload_optimizer.device == ZRT_OFFLOAD_NVME;
    s->params_nvme = cfg->stage == 3 && cfg->offload_param.device == ZRT_OFFLOAD_NVME;
    s->esize = cfg->bf16.enabled || cfg->fp16.enabled ? 2 : 4;
    comm_model(s, cfg);
    zrt__mem_account_init(&s->acct);
    s->acct.record_off = 1;
    s->layers = calloc((size_t)s->n + 1, sizeof *s->layers);
    s->fifo = calloc((size_t)s->n + 1, sizeof *s->fifo);
    s->trace.cap = 8 * s->n + 64;
    s->trace.layers = calloc((size_t)s->trace.cap, sizeof *s->trace.layers);
    s->trace.recording = 1;
    if (!s->layers || !s->fifo || !s->trace.layers)
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot allocate the memory plan's tables");
    for (int l = 0; l < s->n; l++) {
        const zrt__layer_plan *lp = &plan->layers[l];
        s->layers[l] = (sim_layer){
            .numel = lp->numel, .flat = lp->flat_numel, .shard = lp->shard_numel};
    }
    return ZRT_OK;
}

static void sim_free(sim *s)
{
    free(s->layers);
    free(s->fifo);
    free(s->trace.layers);
    zrt__mem_account_free(&s->acct);
}

static void fill_result(const sim *s, zrt_mem_plan *out)
{
    memset(out, 0, sizeof *out);
    out->stage = s->cfg->stage;
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        out->tier_peak[t] = s->acct.stats.tier_peak[t];
        out->tier_peak_step[t] = s->acct.tier_peak_phase[t].step;
        zrt__phase_format(&s->acct.tier_peak_phase[t], out->tier_peak_phase[t],
                          sizeof out->tier_peak_phase[t]);
        for (int c = 0; c < ZRT_CAT_COUNT; c++) {
            out->peak[t][c] = s->acct.stats.peak[t][c];
            out->at_tier_peak[t][c] = s->acct.at_tier_peak[t][c];
        }
    }
}

zrt_status zrt__memplan_run(const zrt_config *cfg, const zrt__plan *plan,
                            const zrt_layer_call *calls, int ncalls,
                            const int64_t *declared, zrt__errbuf *err, zrt_mem_plan *out)
{
    sim s;
    zrt_layer_call *own = NULL;
    zrt_status st = sim_init(&s, cfg, plan, err);
    if (st == ZRT_OK && !calls) {
        own = default_step(s.n, &ncalls);
        calls = own;
        if (!own)
            st = zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                           "cannot allocate the memory plan's step");
    }
    if (st == ZRT_OK) {
        set_phase(&s, ZRT__PHASE_INIT, -1);
        if (on_cuda(cfg)) /* runtime/backend_cuda.c, from its creation */
            zrt__mem_charge(&s.acct, NULL, ZRT_TIER_HOST, ZRT_CAT_STAGING,
                            (int64_t)ZRT__CUDA_BOUNCE_BYTES, NULL);
        for (int l = 0; l < s.n; l++)
            alloc_layer(&s, &s.layers[l]);
        nvme_open(&s);
        ckpt_staging(&s);
        zrt__mem_charge(&s.acct, NULL, ZRT_TIER_HOST, ZRT_CAT_CKPT_BUFFER,
                        zrt__ckpt_buffer_bytes(cfg, plan), NULL);
        replay_setup(&s, declared);
    }
    for (int k = 0; st == ZRT_OK && k < PLANNED_STEPS; k++)
        st = replay_step(&s, calls, ncalls);
    if (st == ZRT_OK)
        fill_result(&s, out);
    free(own);
    sim_free(&s);
    return st;
}
