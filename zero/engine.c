/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/engine.c — the ZeRO engine: what happens at each layer boundary and
 * in the optimizer step, for stages 0 to 3 (see the table in ctx.h).
 *
 * Gradients: backward_end starts the layer's reduction (stage 0 all-reduce,
 * stages 1-3 reduce-scatter into this rank's shard). At most
 * reduce_bucket_size elements of full-size gradients wait for their reduction
 * at once; past that, the oldest is completed first. Stages 2-3 add the
 * reduced block into the gradient shard and free the full-size buffer.
 * Parameters: stages 1-2 all-gather each layer after the step (at most
 * allgather_bucket_size elements in flight) and wait for it when the layer is
 * next entered; stage 3 gathers a layer when it is entered, prefetches the
 * layers that the recorded trace says come next (up to
 * stage3_prefetch_bucket_size elements), and frees it when it is left.
 * Hybrid sharding (ctx.h shard_comm, replica_comm): every collective above
 * runs within the rank's shard group, and a completed reduction's range is
 * then all-reduced across the replicas of its shard (reduce_across_replicas).
 * Top-k (gradient_topk_ratio, stages 0-1): the reduction is an all-gather
 * of each rank's k largest |gradient + residual| as (index, value) pairs,
 * summed in rank order into the zeroed gradient at the wait
 * (start_topk_reduction, finish_topk_reduction).
 * hpZ (ctx.h hpz_comm): a stage-3 gather over the shard group also fills the
 * layer's secondary shard (fill_hpz_shard), and the layer's later gathers
 * until the parameters change run within the hpZ group from those.
 * Every entry point first advances the collectives in flight, which is where
 * communication overlaps the training loop's compute; buffers are freed only
 * at fixed points (see progress()), so the memory plan can predict them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"

static int64_t flat_of(const zrt_ctx *ctx, int layer)
{
    return ctx->plan.layers[layer].flat_numel;
}

static int64_t shard_of(const zrt_ctx *ctx, int layer)
{
    return ctx->plan.layers[layer].shard_numel;
}

static zrt_status alloc_in(zrt_ctx *ctx, zrt__buf *buf, int64_t elements, size_t esize,
                           zrt_tier tier, zrt_category cat, const char *what, int layer)
{
    char label[96];
    snprintf(label, sizeof label, "%s of layer %d", what, layer);
    return ctx->be->ops->alloc(ctx->be, (size_t)elements * esize, tier, cat, label, buf);
}

/* A buffer of state that an offload section may move to the host, of
 * elements of esize bytes. */
static zrt_status alloc_offloadable(zrt_ctx *ctx, zrt__buf *buf, int64_t elements,
                                    size_t esize, zrt_tier tier, zrt_category cat,
                                    const char *what, int layer,
                                    const zrt_offload_config *owner)
{
    ZRT_CHECK(alloc_in(ctx, buf, elements, esize, tier, cat, what, layer));
    return zrt__pin_for(ctx, buf, owner);
}

/* Device buffers of parameter-typed elements (parameters, gradients). */
static zrt_status alloc_elems(zrt_ctx *ctx, zrt__buf *buf, int64_t elements,
                              zrt_category cat, const char *what, int layer)
{
    return alloc_in(ctx, buf, elements, ctx->esize, ZRT_TIER_DEVICE, cat, what, layer);
}

/* Where offloadable state lives: host memory when the config offloads it. */
static zrt_tier tier_for(const zrt_offload_config *offload)
{
    return offload->device == ZRT_OFFLOAD_CPU ? ZRT_TIER_HOST : ZRT_TIER_DEVICE;
}

/* ---- allocation ------------------------------------------------------------ */

/* With the optimizer off the device, its input goes with it, as in
 * ZeRO-Offload: the reduced gradient shard lives in host memory. */
static zrt_tier grad_shard_tier(const zrt_ctx *ctx)
{
    return ctx->cfg.offload_optimizer.device == ZRT_OFFLOAD_NONE || zrt__grad_staged(ctx)
               ? ZRT_TIER_DEVICE
               : ZRT_TIER_HOST;
}

static zrt_status alloc_params(zrt_ctx *ctx, int l)
{
    zrt__layer_state *ls = &ctx->layers[l];
    if (ctx->cfg.stage < 3)
        return alloc_elems(ctx, &ls->param_full, flat_of(ctx, l), ZRT_CAT_PARAM,
                           "parameters", l);
    if (ctx->cfg.offload_param.device != ZRT_OFFLOAD_NVME) /* else in zero/nvme.c */
        ZRT_CHECK(alloc_offloadable(ctx, &ls->param_shard, shard_of(ctx, l), ctx->esize,
                                    tier_for(&ctx->cfg.offload_param), ZRT_CAT_PARAM,
                                    "parameter shard", l, &ctx->cfg.offload_param));
    ls->persistent =
        ctx->plan.layers[l].numel <= ctx->cfg.stage3_param_persistence_threshold;
    if (!ls->persistent && ctx->hpz_comm) /* hpZ: this rank's slice of P */
        return alloc_elems(ctx, &ls->hpz_shard, flat_of(ctx, l) / ctx->hpz_comm->size,
                           ZRT_CAT_HPZ, "hpZ secondary shard", l);
    if (!ls->persistent)
        return ZRT_OK;
    return alloc_elems(ctx, &ls->param_full, flat_of(ctx, l), ZRT_CAT_PARAM_PERSIST,
                       "persistent parameters", l);
}

/* 16-bit parameters: the f32 master copy of this rank's range goes with the
 * optimizer, in host memory when it is offloaded (also to NVMe: the master
 * copy stays in memory, the moments go to disk). A step through the NVMe
 * tier must apply nothing until every rank wrote everything, so it writes
 * the new master copy into a second buffer, and the commit swaps them. */
static zrt_status alloc_master(zrt_ctx *ctx, int l)
{
    zrt__layer_state *ls = &ctx->layers[l];
    const zrt_offload_config *optim = &ctx->cfg.offload_optimizer;
    zrt_tier tier = optim->device == ZRT_OFFLOAD_NONE ? ZRT_TIER_DEVICE : ZRT_TIER_HOST;
    ZRT_CHECK(alloc_offloadable(ctx, &ls->master, ls->range_len, sizeof(float), tier,
                                ZRT_CAT_MASTER, "f32 master copy", l, optim));
    if (!zrt__nvme_configured(ctx))
        return ZRT_OK;
    return alloc_offloadable(ctx, &ls->master_next, ls->range_len, sizeof(float), tier,
                             ZRT_CAT_MASTER, "f32 master copy for the next step", l,
                             optim);
}

static zrt_status alloc_layer(zrt_ctx *ctx, int l)
{
    zrt__layer_state *ls = &ctx->layers[l];
    const zrt__layer_plan *lp = &ctx->plan.layers[l];
    if (lp->numel == 0)
        return ZRT_OK;
    int stage = ctx->cfg.stage;
    const zrt_offload_config *optim = &ctx->cfg.offload_optimizer;
    ls->range_lo = stage == 0 ? 0 : (int64_t)ctx->shard_comm->rank * lp->shard_numel;
    ls->range_len = stage == 0 ? lp->flat_numel : lp->shard_numel;
    ZRT_CHECK(alloc_params(ctx, l));
    if (stage < 2)
        ZRT_CHECK(alloc_elems(ctx, &ls->grad_full, lp->flat_numel, ZRT_CAT_GRAD,
                              "gradients", l));
    else
        ZRT_CHECK(alloc_offloadable(ctx, &ls->grad_shard, lp->shard_numel, ctx->esize,
                                    grad_shard_tier(ctx), ZRT_CAT_GRAD, "gradient shard",
                                    l, optim));
    if (stage < 2 && ctx->cfg.gradient_topk_ratio > 0.0f) {
        ZRT_CHECK(alloc_in(ctx, &ls->topk_residual, lp->flat_numel, sizeof(float),
                           ZRT_TIER_DEVICE, ZRT_CAT_TOPK_RESIDUAL, "top-k residual", l));
        ZRT_CHECK(ctx->be->ops->fill_f32(ctx->be, ls->topk_residual.ptr,
                                         (size_t)lp->flat_numel, 0.0f));
    }
    if (stage >= 2 && zrt__grad_staged(ctx))
        ZRT_CHECK(alloc_offloadable(ctx, &ls->grad_host, lp->shard_numel, ctx->esize,
                                    ZRT_TIER_HOST, ZRT_CAT_GRAD,
                                    "gradient shard for the optimizer", l, optim));
    if (zrt__mixed(ctx))
        ZRT_CHECK(alloc_master(ctx, l));
    if (optim->device != ZRT_OFFLOAD_NVME) {
        ZRT_CHECK(alloc_offloadable(ctx, &ls->m, ls->range_len, sizeof(float),
                                    tier_for(optim), ZRT_CAT_OPTIM, "Adam first moment",
                                    l, optim));
        ZRT_CHECK(alloc_offloadable(ctx, &ls->v, ls->range_len, sizeof(float),
                                    tier_for(optim), ZRT_CAT_OPTIM, "Adam second moment",
                                    l, optim));
    }
    ls->segs = calloc((size_t)lp->count, sizeof *ls->segs);
    if (!ls->segs)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot allocate the segment table of layer %d", l);
    ls->nsegs = zrt__plan_segments(&ctx->plan, l, ls->range_lo,
                                   ls->range_lo + ls->range_len, ls->segs);
    return ZRT_OK;
}

/* zrt_load's checksum window (ctx.h zrt__ckpt_staging_bytes), unless the
 * NVMe step staging is there to serve. */
static zrt_status alloc_ckpt_staging(zrt_ctx *ctx)
{
    int64_t largest = 0;
    for (int l = 0; l < ctx->plan.nlayers; l++)
        if (ctx->layers[l].range_len > largest)
            largest = ctx->layers[l].range_len;
    int64_t bytes = zrt__ckpt_staging_bytes(largest);
    if (ctx->step_staging.ptr || bytes == 0)
        return ZRT_OK;
    return ctx->be->ops->alloc(ctx->be, (size_t)bytes, ZRT_TIER_HOST, ZRT_CAT_STAGING,
                               "checkpoint checksum window", &ctx->ckpt_staging);
}

zrt_status zrt__engine_allocate(zrt_ctx *ctx)
{
    int n = ctx->plan.nlayers;
    ctx->layers = calloc((size_t)n + 1, sizeof *ctx->layers);
    ctx->reduce_fifo = calloc((size_t)n + 1, sizeof *ctx->reduce_fifo);
    ctx->trace.cap = 8 * n + 64; /* forward + backward + re-entries (tied weights) */
    ctx->trace.layers = calloc((size_t)ctx->trace.cap, sizeof *ctx->trace.layers);
    if (!ctx->layers || !ctx->reduce_fifo || !ctx->trace.layers)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                         "cannot allocate the state of %d layers", n);
    ctx->trace.recording = 1;
    for (int l = 0; l < n; l++)
        ZRT_CHECK(alloc_layer(ctx, l));
    ZRT_CHECK(zrt__nvme_open(ctx));
    ZRT_CHECK(alloc_ckpt_staging(ctx));
    int64_t ring = zrt__ckpt_buffer_bytes(&ctx->cfg, &ctx->plan);
    if (ring == 0)
        return ZRT_OK;
    return ctx->be->ops->alloc(ctx->be, (size_t)ring, ZRT_TIER_HOST, ZRT_CAT_CKPT_BUFFER,
                               "asynchronous checkpoint buffer", &ctx->ckpt_buffer);
}

/* The communicator of the layer's gather in flight: hpZ's group for one
 * from the secondary shards, the shard group otherwise. */
static zrt__comm *gather_comm(const zrt_ctx *ctx, const zrt__layer_state *ls)
{
    return ls->hpz_gather ? ctx->hpz_comm : ctx->shard_comm;
}

static void release_layer(zrt_ctx *ctx, zrt__layer_state *ls)
{
    zrt__backend *be = ctx->be;
    zrt__comm *c = ctx->shard_comm, *g = gather_comm(ctx, ls);
    if (ls->gather)
        g->ops->wait(g, ls->gather);
    if (ls->reduce)
        c->ops->wait(c, ls->reduce);
    be->ops->free(be, &ls->param_full);
    be->ops->free(be, &ls->hpz_shard);
    be->ops->free(be, &ls->qwz_send);
    be->ops->free(be, &ls->qwz_recv);
    be->ops->free(be, &ls->topk_send);
    be->ops->free(be, &ls->topk_recv);
    be->ops->free(be, &ls->topk_residual);
    be->ops->free(be, &ls->param_shard);
    be->ops->free(be, &ls->grad_full);
    be->ops->free(be, &ls->grad_shard);
    be->ops->free(be, &ls->grad_host);
    be->ops->free(be, &ls->m);
    be->ops->free(be, &ls->v);
    be->ops->free(be, &ls->master);
    be->ops->free(be, &ls->master_next);
    free(ls->segs);
}

void zrt__engine_release(zrt_ctx *ctx)
{
    for (int l = 0; ctx->layers && l < ctx->plan.nlayers; l++)
        release_layer(ctx, &ctx->layers[l]);
    zrt__nvme_close(ctx); /* after the gathers that read its fetched shards */
    ctx->be->ops->free(ctx->be, &ctx->ckpt_staging);
    ctx->be->ops->free(ctx->be, &ctx->ckpt_buffer);
    free(ctx->layers);
    free(ctx->reduce_fifo);
    free(ctx->trace.layers);
    ctx->layers = NULL;
    ctx->reduce_fifo = NULL;
    ctx->trace = (zrt__trace){0};
    zrt__plan_free(&ctx->plan);
}

/* ---- parameter gathers ------------------------------------------------------ */

/* hpZ: keeps this rank's slice of P of the parameters just gathered over
 * the shard group: the forward's gather (the first since the parameters
 * last changed) refreshes the copy the backward then gathers from. */
static zrt_status fill_hpz_shard(zrt_ctx *ctx, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    int64_t slice = flat_of(ctx, layer) / ctx->hpz_comm->size; /* elements */
    const void *from = zrt__elem(ctx, ls->param_full.ptr, slice * ctx->hpz_comm->rank);
    ZRT_CHECK(
        ctx->be->ops->copy(ctx->be, ls->hpz_shard.ptr, from, (size_t)slice * ctx->esize));
    ls->hpz_valid = 1;
    return ZRT_OK;
}

/* qwZ: dequantizes each rank's part of the received bytes into its shard
 * of param_full (this rank's own too, so every rank holds the same bits). */
static zrt_status dequantize_gathered(zrt_ctx *ctx, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    int64_t shard = shard_of(ctx, layer), block = ctx->cfg.zero_quantized_block_size;
    int64_t part = zrt__qwz_bytes(shard, block);
    for (int r = 0; r < ctx->shard_comm->size; r++) {
        const char *q = (const char *)ls->qwz_recv.ptr + r * part;
        const float *scale = (const float *)(q + (shard + 3) / 4 * 4);
        ZRT_CHECK(ctx->be->ops->dequantize_i8(ctx->be, (const int8_t *)q, scale,
                                              (size_t)shard, (size_t)block,
                                              (float *)ls->param_full.ptr + r * shard));
    }
    return ZRT_OK;
}

static void free_qwz(zrt_ctx *ctx, zrt__layer_state *ls)
{
    ctx->be->ops->free(ctx->be, &ls->qwz_send);
    ctx->be->ops->free(ctx->be, &ls->qwz_recv);
}

zrt_status zrt__wait_gather(zrt_ctx *ctx, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    if (!ls->gather)
        return ZRT_OK;
    zrt__comm_req *req = ls->gather;
    ls->gather = NULL;
    if (ctx->cfg.stage < 3)
        ctx->gathering_numel -= flat_of(ctx, layer);
    zrt_status st = zrt__comm_wait_in(ctx, gather_comm(ctx, ls), req);
    ls->hpz_gather = 0;
    if (ls->fetch_state == ZRT__FETCH_READY)
        zrt__nvme_drop_fetch(ctx, layer); /* the gather was its only reader */
    if (st == ZRT_OK && ls->qwz_recv.ptr)
        st = dequantize_gathered(ctx, layer);
    free_qwz(ctx, ls);
    if (st == ZRT_OK && ls->hpz_fill)
        st = fill_hpz_shard(ctx, layer);
    ls->hpz_fill = 0;
    return st;
}

/* qwZ: quantizes this rank's f32 shard into qwz_send and starts the
 * gather of every rank's into qwz_recv (the wait dequantizes). A shard with
 * a NaN or an infinity is an error, never sent. */
static zrt_status start_quantized_gather(zrt_ctx *ctx, zrt__comm *c, int layer,
                                         const float *shard)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    int64_t n = shard_of(ctx, layer), block = ctx->cfg.zero_quantized_block_size;
    int64_t part = zrt__qwz_bytes(n, block);
    size_t bad = 0;
    ZRT_CHECK(alloc_in(ctx, &ls->qwz_send, part, 1, ZRT_TIER_DEVICE, ZRT_CAT_QWZ,
                       "qwZ quantized shard", layer));
    ZRT_CHECK(alloc_in(ctx, &ls->qwz_recv, part * c->size, 1, ZRT_TIER_DEVICE,
                       ZRT_CAT_QWZ, "qwZ quantized shards gathered", layer));
    int8_t *q = ls->qwz_send.ptr;
    if (n % 4) /* the padding goes on the wire: zeros, then q over the rest */
        ZRT_CHECK(ctx->be->ops->fill_f32(ctx->be, (float *)(q + n / 4 * 4), 1, 0.0f));
    ZRT_CHECK(ctx->be->ops->quantize_i8(ctx->be, shard, (size_t)n, (size_t)block, q,
                                        (float *)(q + (n + 3) / 4 * 4), &bad));
    if (bad)
        return zrt__fail(&ctx->err, ZRT_ERR_NUMERIC,
                         "qwZ: the parameter shard of layer %d holds %zu blocks with "
                         "a NaN or an infinity; not gathered",
                         layer, bad);
    return c->ops->all_gather(c, ls->qwz_send.ptr, ls->qwz_recv.ptr, (size_t)part / 4,
                              ZRT_F32, &ls->gather);
}

static zrt_status start_plain_or_quantized(zrt_ctx *ctx, zrt__comm *c, int layer,
                                           void *shard, size_t count)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    if (!ctx->cfg.zero_quantized_weights)
        return c->ops->all_gather(c, shard, ls->param_full.ptr, count, ctx->pdtype,
                                  &ls->gather);
    zrt_status st = start_quantized_gather(ctx, c, layer, shard);
    if (st != ZRT_OK)
        free_qwz(ctx, ls);
    return st;
}

/* Stage 3: all-gathers the layer's shards into its full buffer. */
static zrt_status start_gather(zrt_ctx *ctx, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    void *shard = ls->param_shard.ptr;
    size_t count = (size_t)shard_of(ctx, layer);
    zrt__comm *c = ctx->shard_comm;
    int from_hpz = ls->hpz_shard.ptr && ls->hpz_valid;
    if (from_hpz) { /* hpZ: within the group, from the secondary shards */
        c = ctx->hpz_comm;
        shard = ls->hpz_shard.ptr;
        count = (size_t)(flat_of(ctx, layer) / c->size);
    } else if (zrt__params_on_nvme(ctx)) {
        ZRT_CHECK(zrt__nvme_fetched_shard(ctx, layer, &shard));
    }
    if (!ls->param_full.ptr)
        ZRT_CHECK(alloc_elems(ctx, &ls->param_full, flat_of(ctx, layer),
                              ZRT_CAT_PARAM_GATHER, "gathered parameters", layer));
    zrt__comm_for_layer(c, layer);
    ZRT_CHECK(start_plain_or_quantized(ctx, c, layer, shard, count));
    ls->hpz_gather = from_hpz;
    ls->hpz_fill = ls->hpz_shard.ptr && !from_hpz;
    ls->gathered = 1;
    return ZRT_OK;
}

static void unmark_prefetched(zrt_ctx *ctx, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    if (!ls->prefetched)
        return;
    ls->prefetched = 0;
    ctx->prefetched_numel -= flat_of(ctx, layer);
}

zrt_status zrt__ensure_gathered(zrt_ctx *ctx, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    if (ctx->cfg.stage < 3 || ctx->plan.layers[layer].numel == 0)
        return zrt__wait_gather(ctx, layer);
    unmark_prefetched(ctx, layer);
    if (!ls->gathered)
        ZRT_CHECK(start_gather(ctx, layer));
    return zrt__wait_gather(ctx, layer);
}

/* Stage 3, trace followed: the layer is entered next, so keeping it costs
 * nothing that prefetching it again would not. */
static int needed_next(const zrt_ctx *ctx, int layer)
{
    const zrt__trace *tr = &ctx->trace;
    return tr->valid && tr->pos < tr->len && tr->layers[tr->pos] == layer &&
           ctx->prefetched_numel + flat_of(ctx, layer) <=
               ctx->cfg.stage3_prefetch_bucket_size;
}

zrt_status zrt__release_if_idle(zrt_ctx *ctx, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    if (ctx->cfg.stage < 3 || ls->fwd_live || ls->bwd_live || ls->persistent ||
        !ls->param_full.ptr)
        return ZRT_OK;
    if (ls->gathered && !ls->prefetched && needed_next(ctx, layer)) {
        ls->prefetched = 1;
        ctx->prefetched_numel += flat_of(ctx, layer);
        return ZRT_OK;
    }
    ZRT_CHECK(zrt__wait_gather(ctx, layer));
    unmark_prefetched(ctx, layer);
    ctx->be->ops->free(ctx->be, &ls->param_full);
    ls->gathered = 0;
    return ZRT_OK;
}

/* Shards on NVMe: queues the reads of the layers after those being
 * gathered, so the disk works ahead of the gathers that need them. */
static zrt_status fetch_ahead(zrt_ctx *ctx, int from)
{
    const zrt__trace *tr = &ctx->trace;
    for (int j = from; j < tr->len && zrt__nvme_fetch_room(ctx); j++) {
        int next = tr->layers[j];
        const zrt__layer_state *ls = &ctx->layers[next];
        if (ctx->plan.layers[next].numel == 0 || ls->gathered || ls->persistent)
            continue;
        ZRT_CHECK(zrt__nvme_fetch(ctx, next));
    }
    return ZRT_OK;
}

/* Starts gathers for the layers the trace says come next, within budget. */
static zrt_status prefetch(zrt_ctx *ctx)
{
    const zrt__trace *tr = &ctx->trace;
    if (!tr->valid || !ctx->cfg.overlap_comm)
        return ZRT_OK;
    int j = tr->pos;
    for (; j < tr->len; j++) {
        int next = tr->layers[j];
        zrt__layer_state *ls = &ctx->layers[next];
        if (ctx->plan.layers[next].numel == 0 || ls->gathered || ls->persistent)
            continue;
        if (ctx->prefetched_numel + flat_of(ctx, next) >
            ctx->cfg.stage3_prefetch_bucket_size)
            break;
        ZRT_CHECK(start_gather(ctx, next));
        ls->prefetched = 1;
        ctx->prefetched_numel += flat_of(ctx, next);
    }
    return zrt__params_on_nvme(ctx) ? fetch_ahead(ctx, j) : ZRT_OK;
}

/* ---- gradient reductions ---------------------------------------------------- */

static void fifo_remove(zrt_ctx *ctx, int layer)
{
    int n = ctx->reduce_count;
    for (int i = 0; i < n; i++) {
        if (ctx->reduce_fifo[i] != layer)
            continue;
        memmove(&ctx->reduce_fifo[i], &ctx->reduce_fifo[i + 1],
                (size_t)(n - i - 1) * sizeof *ctx->reduce_fifo);
        ctx->reduce_count--;
        return;
    }
}

/* Hybrid sharding: this rank's reduced range (its shard's block; stage 0,
 * the whole buffer), averaged within its shard group, is averaged across
 * the G replicas of that shard in group order, in place. Started and
 * waited here, where the group's reduction completes, so its scratch lives
 * inside this call only (zero/memplan.c reduce_across_replicas). Every rank
 * of a replica set completes the same layers in the same order. */
static zrt_status reduce_across_replicas(zrt_ctx *ctx, int layer)
{
    zrt__comm *r = ctx->replica_comm;
    zrt__layer_state *ls = &ctx->layers[layer];
    if (!r || ls->range_len == 0)
        return ZRT_OK;
    void *block = zrt__elem(ctx, ls->grad_full.ptr, ls->range_lo);
    zrt__comm_req *req = NULL;
    zrt__comm_for_layer(r, layer);
    ZRT_CHECK(r->ops->all_reduce(r, block, block, (size_t)ls->range_len, ctx->pdtype,
                                 ZRT_AVG, &req));
    return zrt__comm_wait_in(ctx, r, req);
}

static void free_topk(zrt_ctx *ctx, zrt__layer_state *ls)
{
    ctx->be->ops->free(ctx->be, &ls->topk_send);
    ctx->be->ops->free(ctx->be, &ls->topk_recv);
}

/* Top-k: the N received lists, summed in rank order into the zeroed
 * gradient and divided by N (ZRT_AVG as the ordered sums divide), the
 * whole flat buffer on every rank: stage 0 reads all of it, stage 1 its
 * range (where its reduce-scatter would have left the average). */
static zrt_status finish_topk_reduction(zrt_ctx *ctx, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    int64_t k = zrt__topk_count(flat_of(ctx, layer), ctx->cfg.gradient_topk_ratio);
    zrt__comm *c = ctx->shard_comm;
    return ctx->be->ops->topk_sum_f32(ctx->be, ls->grad_full.ptr,
                                      (size_t)flat_of(ctx, layer), ls->topk_recv.ptr,
                                      c->size, (size_t)k, (float)c->size);
}

/* Waits for the layer's reduction; stages 2-3 fold it into the shard. */
static zrt_status finish_reduction(zrt_ctx *ctx, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    zrt__comm_req *req = ls->reduce;
    ls->reduce = NULL;
    fifo_remove(ctx, layer);
    ctx->reducing_numel -= flat_of(ctx, layer);
    zrt_status st = zrt__comm_wait_in(ctx, ctx->shard_comm, req);
    if (st == ZRT_OK && ls->topk_recv.ptr)
        st = finish_topk_reduction(ctx, layer);
    free_topk(ctx, ls);
    if (st == ZRT_OK)
        st = reduce_across_replicas(ctx, layer);
    if (ctx->cfg.stage < 2)
        return st;
    const void *reduced = zrt__elem(ctx, ls->grad_full.ptr, ls->range_lo);
    if (st == ZRT_OK && zrt__mixed(ctx))
        st = ctx->be->ops->add_half(ctx->be, ls->grad_shard.ptr, reduced,
                                    (size_t)ls->range_len, zrt__half_of(ctx));
    else if (st == ZRT_OK)
        st = ctx->be->ops->add_f32(ctx->be, ls->grad_shard.ptr, reduced,
                                   (size_t)ls->range_len);
    ctx->be->ops->free(ctx->be, &ls->grad_full);
    return st;
}

/* The same, labelled as the layer's reduce phase. */
static zrt_status complete_reduction(zrt_ctx *ctx, int layer)
{
    zrt__phase caller = ctx->acct.phase;
    zrt__set_phase(ctx, ZRT__PHASE_REDUCE, layer);
    zrt_status st = finish_reduction(ctx, layer);
    ctx->acct.phase = caller;
    return st;
}

static zrt_status make_room_for_reduction(zrt_ctx *ctx, int64_t elements)
{
    while (ctx->reduce_count > 0 &&
           ctx->reducing_numel + elements > ctx->cfg.reduce_bucket_size)
        ZRT_CHECK(complete_reduction(ctx, ctx->reduce_fifo[0]));
    return ZRT_OK;
}

/* qgZ (zero_quantized_gradients; f32, checked at context creation): the
 * same reduction as below, each contribution quantized on the wire. */
static zrt_status start_quantized_reduction(zrt_ctx *ctx, zrt__comm *c, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    float *grad = ls->grad_full.ptr;
    zrt__quant q = {ctx->cfg.zero_quantized_gradient_bits,
                    (size_t)ctx->cfg.zero_quantized_block_size};
    if (ctx->cfg.stage == 0)
        return c->ops->all_reduce_quantized(c, grad, grad, (size_t)flat_of(ctx, layer), q,
                                            ZRT_AVG, &ls->reduce);
    return c->ops->reduce_scatter_quantized(c, grad, grad + ls->range_lo,
                                            (size_t)shard_of(ctx, layer), q, ZRT_AVG,
                                            &ls->reduce);
}

/* Top-k: a = gradient + residual (in the residual), its k largest |a| into
 * topk_send as [k u32 indices | k values] and set to 0 there (the residual
 * keeps the rest), then the all-gather of every rank's 2k f32 slots into
 * topk_recv; finish_topk_reduction sums them. Unlike the plain reductions,
 * a failure of the all-gather's start is not retryable as it stands: the
 * residual already holds g + e and the selection is gone from it, so a
 * retried zrt_backward_end would add g again (an MPI failure there ends
 * the job in practice). */
static zrt_status start_topk_reduction(zrt_ctx *ctx, zrt__comm *c, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    int64_t flat = flat_of(ctx, layer);
    int64_t k = zrt__topk_count(flat, ctx->cfg.gradient_topk_ratio);
    size_t taken = 0;
    ZRT_CHECK(alloc_in(ctx, &ls->topk_send, 2 * k, sizeof(float), ZRT_TIER_DEVICE,
                       ZRT_CAT_COMM, "top-k pairs", layer));
    ZRT_CHECK(alloc_in(ctx, &ls->topk_recv, 2 * k * c->size, sizeof(float),
                       ZRT_TIER_DEVICE, ZRT_CAT_COMM, "top-k pairs gathered", layer));
    float *send = ls->topk_send.ptr, *residual = ls->topk_residual.ptr;
    ZRT_CHECK(ctx->be->ops->add_f32(ctx->be, residual, ls->grad_full.ptr, (size_t)flat));
    ZRT_CHECK(ctx->be->ops->topk_take_f32(ctx->be, residual, (size_t)flat, (size_t)k,
                                          (uint32_t *)(void *)send, send + k, &taken));
    if ((int64_t)taken != k)
        return zrt__fail(&ctx->err, ZRT_ERR_INTERNAL,
                         "top-k: layer %d took %zu of %lld elements", layer, taken,
                         (long long)k);
    return c->ops->all_gather(c, send, ls->topk_recv.ptr, (size_t)(2 * k), ZRT_F32,
                              &ls->reduce);
}

/* The layer's reduction: top-k, quantized (qgZ) or f32 (context
 * creation refuses top-k with qgZ). */
static zrt_status start_layer_reduction(zrt_ctx *ctx, zrt__comm *c, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    void *grad = ls->grad_full.ptr;
    if (ls->topk_residual.ptr) {
        zrt_status st = start_topk_reduction(ctx, c, layer);
        if (st != ZRT_OK)
            free_topk(ctx, ls);
        return st;
    }
    if (ctx->cfg.zero_quantized_gradients)
        return start_quantized_reduction(ctx, c, layer);
    if (ctx->cfg.stage == 0)
        return c->ops->all_reduce(c, grad, grad, (size_t)flat_of(ctx, layer), ctx->pdtype,
                                  ZRT_AVG, &ls->reduce);
    return c->ops->reduce_scatter(c, grad, zrt__elem(ctx, grad, ls->range_lo),
                                  (size_t)shard_of(ctx, layer), ctx->pdtype, ZRT_AVG,
                                  &ls->reduce);
}

/* Stages 0-1 accumulate micro-steps in the full buffers and reduce once, in
 * the last; stages 2-3 reduce-scatter every micro-step into the shard, so no
 * full-size gradient outlives its layer's backward. */
static zrt_status start_reduction(zrt_ctx *ctx, int layer)
{
    int64_t flat = flat_of(ctx, layer);
    if (flat == 0 || (ctx->cfg.stage < 2 && !zrt__at_boundary(ctx)))
        return ZRT_OK;
    ZRT_CHECK(make_room_for_reduction(ctx, flat));
    zrt__comm *c = ctx->shard_comm;
    zrt__comm_for_layer(c, layer);
    ZRT_CHECK(start_layer_reduction(ctx, c, layer));
    ctx->reduce_fifo[ctx->reduce_count++] = layer;
    ctx->reducing_numel += flat;
    if (!ctx->cfg.overlap_comm)
        return complete_reduction(ctx, layer);
    return ZRT_OK;
}

static zrt_status drain_reductions(zrt_ctx *ctx)
{
    while (ctx->reduce_count > 0)
        ZRT_CHECK(complete_reduction(ctx, ctx->reduce_fifo[0]));
    return ZRT_OK;
}

static zrt_status drain_gathers(zrt_ctx *ctx)
{
    for (int l = 0; l < ctx->plan.nlayers; l++)
        ZRT_CHECK(zrt__wait_gather(ctx, l));
    return ZRT_OK;
}

zrt_status zrt__drain_reductions(zrt_ctx *ctx)
{
    return drain_reductions(ctx);
}

zrt_status zrt__engine_drain(zrt_ctx *ctx)
{
    ZRT_CHECK(drain_reductions(ctx));
    return drain_gathers(ctx);
}

/* Lets MPI move data for everything in flight: one test advances every
 * request (see runtime/comm_mpi.c). Nothing is completed here, because what
 * a poll finds done depends on timing: reductions complete when the bucket
 * bound or the step needs them, gathers when their layer is entered or left,
 * so every run frees its buffers at the same calls and the memory plan
 * (zero/memplan.c) predicts the peaks exactly. */
static zrt_status progress(zrt_ctx *ctx)
{
    int done = 0;
    zrt__comm *c = ctx->shard_comm;
    ZRT_CHECK(zrt__pipe_progress(ctx));
    if (ctx->reduce_count > 0)
        return c->ops->test(c, ctx->layers[ctx->reduce_fifo[0]].reduce, &done);
    for (int l = 0; l < ctx->plan.nlayers; l++)
        if (ctx->layers[l].gather) {
            zrt__comm *g = gather_comm(ctx, &ctx->layers[l]);
            return g->ops->test(g, ctx->layers[l].gather, &done);
        }
    return ZRT_OK;
}

/* ---- the per-layer protocol ------------------------------------------------ */

/* Makes the layer's parameters readable; stage 3 also prefetches. */
static zrt_status enter_layer(zrt_ctx *ctx, int layer)
{
    ZRT_CHECK(progress(ctx));
    if (ctx->cfg.stage < 3)
        return zrt__wait_gather(ctx, layer);
    zrt__trace_enter(&ctx->trace, layer);
    ZRT_CHECK(zrt__ensure_gathered(ctx, layer));
    return prefetch(ctx);
}

zrt_status zrt_forward_begin(zrt_ctx *ctx, int layer)
{
    ZRT_CHECK(zrt__require_layer(ctx, layer, "zrt_forward_begin"));
    zrt__set_phase(ctx, ZRT__PHASE_FORWARD, layer);
    if (ctx->layers[layer].fwd_live)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "zrt_forward_begin: layer %d is already in forward", layer);
    ZRT_CHECK(enter_layer(ctx, layer));
    ctx->layers[layer].fwd_live = 1;
    return ZRT_OK;
}

zrt_status zrt_forward_end(zrt_ctx *ctx, int layer)
{
    ZRT_CHECK(zrt__require_layer(ctx, layer, "zrt_forward_end"));
    zrt__set_phase(ctx, ZRT__PHASE_FORWARD, layer);
    if (!ctx->layers[layer].fwd_live)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "zrt_forward_end: layer %d is not in forward", layer);
    ctx->layers[layer].fwd_live = 0;
    ZRT_CHECK(zrt__release_if_idle(ctx, layer));
    return progress(ctx);
}

zrt_status zrt_backward_begin(zrt_ctx *ctx, int layer)
{
    ZRT_CHECK(zrt__require_layer(ctx, layer, "zrt_backward_begin"));
    zrt__set_phase(ctx, ZRT__PHASE_BACKWARD, layer);
    zrt__layer_state *ls = &ctx->layers[layer];
    if (ls->bwd_live)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "zrt_backward_begin: layer %d is already in backward", layer);
    if (ls->bwd_done)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "zrt_backward_begin: layer %d already ran backward in "
                         "this step; keep it open across all its uses (one "
                         "backward per layer per step)",
                         layer);
    ZRT_CHECK(enter_layer(ctx, layer));
    if (ls->reduce) /* the previous micro-step's, still holding the bucket */
        ZRT_CHECK(complete_reduction(ctx, layer));
    if (ctx->cfg.stage >= 2 && flat_of(ctx, layer) > 0)
        ZRT_CHECK(alloc_elems(ctx, &ls->grad_full, flat_of(ctx, layer),
                              ZRT_CAT_GRAD_BUCKET, "gradient bucket", layer));
    ls->bwd_live = 1;
    return ZRT_OK;
}

zrt_status zrt_backward_end(zrt_ctx *ctx, int layer)
{
    ZRT_CHECK(zrt__require_layer(ctx, layer, "zrt_backward_end"));
    zrt__set_phase(ctx, ZRT__PHASE_BACKWARD, layer);
    zrt__layer_state *ls = &ctx->layers[layer];
    if (!ls->bwd_live)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "zrt_backward_end: layer %d is not in backward", layer);
    /* On failure the layer stays in backward with its gradient buffer, so
     * nothing is lost and the call can be retried. */
    ZRT_CHECK(start_reduction(ctx, layer));
    ls->bwd_live = 0;
    ls->bwd_done = 1;
    ZRT_CHECK(zrt__release_if_idle(ctx, layer));
    return progress(ctx);
}

/* ---- optimizer ---------------------------------------------------------------- */

zrt_status zrt_adamw_init(zrt_adamw *hp)
{
    if (!hp)
        return ZRT_ERR_INVALID_ARG;
    *hp = (zrt_adamw){
        .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    return ZRT_OK;
}

static zrt_status check_hyperparams(zrt_ctx *ctx, const zrt_adamw *hp)
{
    if (!hp)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_step: hyperparameters are NULL");
    if (!(hp->lr >= 0.0f) || !(hp->beta1 >= 0.0f && hp->beta1 < 1.0f) ||
        !(hp->beta2 >= 0.0f && hp->beta2 < 1.0f) || !(hp->eps > 0.0f) ||
        !(hp->weight_decay >= 0.0f))
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_step: AdamW hyperparameters out of range (lr %g, "
                         "beta1 %g, beta2 %g, eps %g, weight_decay %g)",
                         hp->lr, hp->beta1, hp->beta2, hp->eps, hp->weight_decay);
    return ZRT_OK;
}

static zrt_status require_no_live_layer(zrt_ctx *ctx, const char *call)
{
    for (int l = 0; l < ctx->plan.nlayers; l++)
        if (ctx->layers[l].fwd_live || ctx->layers[l].bwd_live)
            return zrt__fail(&ctx->err, ZRT_ERR_STATE, "%s: layer %d is still live", call,
                             l);
    return ZRT_OK;
}

/* The accumulated shards move to the optimizer's host copies, once. */
static zrt_status move_staged_grads(zrt_ctx *ctx)
{
    for (int l = 0; zrt__grad_staged(ctx) && l < ctx->plan.nlayers; l++) {
        zrt__layer_state *ls = &ctx->layers[l];
        if (ls->grad_host.ptr)
            ZRT_CHECK(ctx->be->ops->copy(ctx->be, ls->grad_host.ptr, ls->grad_shard.ptr,
                                         ls->grad_shard.bytes));
    }
    return ZRT_OK;
}

static zrt_status update_layer_mixed(zrt_ctx *ctx, int l, float grad_scale,
                                     const zrt_adamw_scalars *decay,
                                     const zrt_adamw_scalars *no_decay);

static zrt_status update_all_layers(zrt_ctx *ctx, float grad_scale,
                                    const zrt_adamw_scalars *decay,
                                    const zrt_adamw_scalars *no_decay)
{
    if (zrt__nvme_step_needed(ctx))
        return zrt__nvme_step(ctx, grad_scale, decay, no_decay);
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        zrt__layer_state *ls = &ctx->layers[l];
        if (ls->range_len > 0 && zrt__mixed(ctx)) {
            ZRT_CHECK(update_layer_mixed(ctx, l, grad_scale, decay, no_decay));
        } else if (ls->range_len > 0) {
            float *p = zrt__owned_param(ctx, l);
            ZRT_CHECK(zrt__adamw_layer(ctx, l, p, p, zrt__owned_grad(ctx, l), ls->m.ptr,
                                       ls->v.ptr, decay, no_decay));
        }
    }
    return ZRT_OK;
}

/* Stages 1-2: every rank updated its shard in place; share it. */
static zrt_status start_param_gathers(zrt_ctx *ctx)
{
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        zrt__layer_state *ls = &ctx->layers[l];
        int64_t flat = flat_of(ctx, l);
        if (flat == 0)
            continue;
        for (int old = 0; old < l && ctx->gathering_numel > 0 &&
                          ctx->gathering_numel + flat > ctx->cfg.allgather_bucket_size;
             old++)
            ZRT_CHECK(zrt__wait_gather(ctx, old));
        void *full = ls->param_full.ptr;
        zrt__comm *c = ctx->shard_comm;
        zrt__comm_for_layer(c, l);
        ZRT_CHECK(c->ops->all_gather(c, zrt__elem(ctx, full, ls->range_lo), full,
                                     (size_t)shard_of(ctx, l), ctx->pdtype, &ls->gather));
        ctx->gathering_numel += flat;
        if (!ctx->cfg.overlap_comm)
            ZRT_CHECK(zrt__wait_gather(ctx, l));
    }
    return ZRT_OK;
}

/* Stage 3: gathered copies are stale now; persistent layers re-gather. */
static zrt_status refresh_stage3_params(zrt_ctx *ctx)
{
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        zrt__layer_state *ls = &ctx->layers[l];
        ZRT_CHECK(zrt__wait_gather(ctx, l));
        ls->gathered = 0;
        ls->hpz_valid = 0; /* the next forward's gather refreshes it */
        if (ls->persistent && ctx->plan.layers[l].numel > 0) {
            ZRT_CHECK(start_gather(ctx, l));
            if (!ctx->cfg.overlap_comm)
                ZRT_CHECK(zrt__wait_gather(ctx, l));
        } else
            ZRT_CHECK(zrt__release_if_idle(ctx, l));
    }
    return ZRT_OK;
}

/* Zeroes the gradients this rank holds (full at stages 0-1, shards at 2-3). */
static zrt_status zero_owned_grads(zrt_ctx *ctx)
{
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        zrt__layer_state *ls = &ctx->layers[l];
        zrt__buf *grad = ctx->cfg.stage < 2 ? &ls->grad_full : &ls->grad_shard;
        if (grad->ptr)
            ZRT_CHECK(ctx->be->ops->fill_f32(ctx->be, grad->ptr,
                                             grad->bytes / sizeof(float), 0.0f));
        ls->bwd_done = 0;
    }
    ctx->micro = 0;
    return ZRT_OK;
}

/* Ends a micro-step that is not the last of its optimizer step: the
 * gradients stay, every layer may run backward again. */
static zrt_status end_micro_step(zrt_ctx *ctx)
{
    zrt__trace_step_end(&ctx->trace);
    for (int l = 0; l < ctx->plan.nlayers; l++)
        ctx->layers[l].bwd_done = 0;
    ctx->micro++;
    zrt__set_phase(ctx, ZRT__PHASE_LOOP, -1);
    return ZRT_OK;
}

static zrt_status scale_owned_grads(zrt_ctx *ctx, float factor)
{
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        const zrt__layer_state *ls = &ctx->layers[l];
        if (ls->range_len > 0)
            ZRT_CHECK(ctx->be->ops->scale_f32(ctx->be, zrt__owned_grad(ctx, l),
                                              (size_t)ls->range_len, factor));
    }
    return ZRT_OK;
}

/* The sum of the squares of every rank's gradients: the owned ranges are
 * disjoint at stages 1-3 (one ordered all-reduce, so every rank gets the same
 * bits); at stage 0 every rank holds all of it. Not finite when any rank's
 * gradients are not. With hybrid sharding the shard group's ranges cover the
 * gradient once and every replica holds the same bits, so the sum runs
 * within the group: the norm of the whole gradient, not G times it. With a
 * pipeline the stages' sums are added (in stage order), so clipping and the
 * fp16 overflow test see the model's norm on every rank alike. */
static zrt_status global_grad_sqnorm(zrt_ctx *ctx, float *out)
{
    double sum = 0.0;
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        const zrt__layer_state *ls = &ctx->layers[l];
        double sq = 0.0;
        if (ls->range_len > 0 && zrt__mixed(ctx))
            ZRT_CHECK(ctx->be->ops->sqnorm_half(ctx->be, zrt__owned_grad(ctx, l),
                                                (size_t)ls->range_len, zrt__half_of(ctx),
                                                &sq));
        else if (ls->range_len > 0)
            ZRT_CHECK(ctx->be->ops->sqnorm_f32(ctx->be, zrt__owned_grad(ctx, l),
                                               (size_t)ls->range_len, &sq));
        sum += sq;
    }
    float total = (float)sum;
    if (ctx->cfg.stage > 0) {
        zrt__comm_req *req;
        zrt__comm *c = ctx->shard_comm;
        ZRT_CHECK(zrt__comm_all_reduce_f32(c, &total, &total, 1, ZRT_SUM, &req));
        ZRT_CHECK(zrt__comm_wait_in(ctx, c, req));
    }
    if (ctx->pipe_comm) { /* the model's norm: every stage's layers */
        zrt__comm_req *req;
        zrt__comm *p = ctx->pipe_comm;
        ZRT_CHECK(zrt__comm_all_reduce_f32(p, &total, &total, 1, ZRT_SUM, &req));
        ZRT_CHECK(zrt__comm_wait_in(ctx, p, req));
    }
    *out = total;
    return ZRT_OK;
}

static float clip_coefficient(const zrt_ctx *ctx, float norm)
{
    float clip = ctx->cfg.gradient_clipping;
    return clip > 0.0f && norm > clip ? clip / (norm + 1e-6f) : 1.0f;
}

/* f32: the accumulated sum becomes a mean over the micro-steps, then clipping
 * to gradient_clipping, as DeepSpeed and torch.nn.utils.clip_grad_norm_ do,
 * both applied to the gradients in place. */
static zrt_status prepare_grads(zrt_ctx *ctx)
{
    int k = ctx->cfg.gradient_accumulation_steps;
    if (k > 1)
        ZRT_CHECK(scale_owned_grads(ctx, 1.0f / (float)k));
    float sq;
    ZRT_CHECK(global_grad_sqnorm(ctx, &sq));
    ctx->last_grad_norm = sqrtf(sq);
    float coef = clip_coefficient(ctx, ctx->last_grad_norm);
    if (coef < 1.0f)
        ZRT_CHECK(scale_owned_grads(ctx, coef));
    return ZRT_OK;
}

/* 16-bit: the same factors (and the loss scale's) are folded into one
 * multiplier that the mixed AdamW applies as it widens each gradient, so the
 * 16-bit gradients are read once and never rounded again. *overflow: fp16
 * gradients that are not finite on some rank. */
static zrt_status prepare_mixed_grads(zrt_ctx *ctx, float *grad_scale, int *overflow)
{
    float unscale =
        1.0f / ((float)ctx->cfg.gradient_accumulation_steps * ctx->scaler.scale);
    float sq;
    ZRT_CHECK(global_grad_sqnorm(ctx, &sq));
    *overflow = ctx->pdtype == ZRT_F16 && !isfinite(sq);
    ctx->last_grad_norm = sqrtf(sq) * unscale;
    *grad_scale = unscale * clip_coefficient(ctx, ctx->last_grad_norm);
    return ZRT_OK;
}

static zrt_status update_layer_mixed(zrt_ctx *ctx, int l, float grad_scale,
                                     const zrt_adamw_scalars *decay,
                                     const zrt_adamw_scalars *no_decay)
{
    zrt__layer_state *ls = &ctx->layers[l];
    return zrt__adamw_layer_mixed(ctx, l, ls->master.ptr, zrt__owned_param(ctx, l),
                                  zrt__owned_grad(ctx, l), ls->m.ptr, ls->v.ptr,
                                  grad_scale, decay, no_decay);
}

/* The optimizer step skipped for an fp16 overflow: nothing changes but the
 * loss scale, on every rank alike (the norm they agree on decided it). */
static zrt_status skip_step(zrt_ctx *ctx)
{
    int at_floor = zrt__loss_scaler_update(&ctx->scaler, 1);
    zrt__trace_step_end(&ctx->trace);
    zrt__set_phase(ctx, ZRT__PHASE_LOOP, -1);
    ZRT_CHECK(zero_owned_grads(ctx));
    if (ctx->comm->rank == 0)
        zrt_log(ctx, 2,
                "fp16: gradients overflowed in step %ld: skipped; loss scale "
                "now %g",
                ctx->step + 1, (double)ctx->scaler.scale);
    if (at_floor)
        return zrt__fail(&ctx->err, ZRT_ERR_NUMERIC,
                         "fp16: the gradients overflow even at the minimum loss scale "
                         "%g (fp16.min_loss_scale); the step was skipped. Lower the "
                         "learning rate, or train in bf16",
                         (double)ctx->scaler.scale);
    return ZRT_OK;
}

zrt_status zrt_step(zrt_ctx *ctx, const zrt_adamw *hp)
{
    ZRT_CHECK(zrt__require_finalized(ctx, "zrt_step"));
    ZRT_CHECK(check_hyperparams(ctx, hp));
    ZRT_CHECK(require_no_live_layer(ctx, "zrt_step"));
    zrt__set_phase(ctx, ZRT__PHASE_STEP, -1);
    if (!zrt__at_boundary(ctx))
        return end_micro_step(ctx);
    ZRT_CHECK(drain_reductions(ctx));
    ZRT_CHECK(drain_gathers(ctx));
    ZRT_CHECK(move_staged_grads(ctx));
    if (ctx->ckpt_poll) /* an asynchronous save (checkpoint.c); nothing in flight here */
        ZRT_CHECK(ctx->ckpt_poll(ctx));
    float grad_scale = 1.0f;
    int overflow = 0;
    if (zrt__mixed(ctx))
        ZRT_CHECK(prepare_mixed_grads(ctx, &grad_scale, &overflow));
    else
        ZRT_CHECK(prepare_grads(ctx));
    if (overflow)
        return skip_step(ctx);
    ctx->step++;
    zrt_adamw_scalars decay = zrt_adamw_scalars_make(
        hp->lr, hp->beta1, hp->beta2, hp->eps, hp->weight_decay, ctx->step);
    zrt_adamw_scalars no_decay =
        zrt_adamw_scalars_make(hp->lr, hp->beta1, hp->beta2, hp->eps, 0.0f, ctx->step);
    zrt_status st = update_all_layers(ctx, grad_scale, &decay, &no_decay);
    if (st != ZRT_OK) { /* through NVMe nothing was applied (zero/nvme.c); the
                           in-memory kernels cannot fail on the cpu backend */
        ctx->step--;
        zero_owned_grads(ctx);
        return st;
    }
    zrt__loss_scaler_update(&ctx->scaler, 0); /* a step that was applied */
    if (ctx->cfg.stage == 1 || ctx->cfg.stage == 2)
        ZRT_CHECK(start_param_gathers(ctx));
    if (ctx->cfg.stage == 3)
        ZRT_CHECK(refresh_stage3_params(ctx));
    zrt__traffic_step_end(ctx);
    zrt__trace_step_end(&ctx->trace);
    zrt__set_phase(ctx, ZRT__PHASE_LOOP, -1); /* of the next step */
    return zero_owned_grads(ctx);
}

zrt_status zrt_is_accumulation_boundary(const zrt_ctx *ctx, int *out)
{
    if (!ctx || !out)
        return ZRT_ERR_INVALID_ARG;
    *out = zrt__at_boundary(ctx);
    return ZRT_OK;
}

zrt_status zrt_loss_scale(const zrt_ctx *ctx, float *out)
{
    if (!ctx || !out)
        return ZRT_ERR_INVALID_ARG;
    *out = ctx->scaler.scale;
    return ZRT_OK;
}

zrt_status zrt_skipped_steps(const zrt_ctx *ctx, long *out)
{
    if (!ctx || !out)
        return ZRT_ERR_INVALID_ARG;
    *out = ctx->scaler.skipped;
    return ZRT_OK;
}

zrt_status zrt_last_grad_norm(const zrt_ctx *ctx, float *out)
{
    if (!ctx || !out)
        return ZRT_ERR_INVALID_ARG;
    *out = ctx->last_grad_norm;
    return ZRT_OK;
}

zrt_status zrt_zero_grad(zrt_ctx *ctx)
{
    ZRT_CHECK(zrt__require_finalized(ctx, "zrt_zero_grad"));
    for (int l = 0; l < ctx->plan.nlayers; l++)
        if (ctx->layers[l].bwd_live)
            return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                             "zrt_zero_grad: layer %d is in backward", l);
    ZRT_CHECK(drain_reductions(ctx));
    return zero_owned_grads(ctx);
}
