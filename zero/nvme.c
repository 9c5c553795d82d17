/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/nvme.c — the NVMe tiers: optimizer moments (offload_optimizer nvme)
 * and stage-3 parameter shards (offload_param nvme) in swap files, one per
 * kind per rank, each with its own I/O thread (offload/mover.h).
 *
 * Two slots per layer. Every layer's state has two block-aligned regions in
 * its file; ctx->nvme_slot says which holds the current values. A step reads
 * the current slot and writes the new values to the other one, and flips
 * ctx->nvme_slot only after every rank wrote everything. A step that fails
 * anywhere (a checksum, a short read, a full disk, a file-size limit) leaves
 * the parameters and the moments as they were on every rank, and zeroes the
 * gradients (they may hold new parameters by then); the next step can be
 * tried again.
 *
 * The step streams the layers through two staging sets of (p, m, v): reading
 * layer i+1 and writing layer i-1 overlap updating layer i. Nothing that
 * lives in memory is updated in place during the pass:
 *   - parameters in memory, moments on NVMe: the update reads the parameters
 *     and writes the new ones over the layer's gradient (each element's
 *     gradient is read before its slot is written), where they wait until
 *     the commit copies them over;
 *   - parameters on NVMe, moments in memory: the commit recomputes the new
 *     moments in place (they do not depend on the parameters; the same
 *     kernel gives the same bits), which costs a second pass of compute;
 *   - both on NVMe: nothing in memory changes until the slot flips.
 *
 * Stage-3 gathers of shards on NVMe: the shard is read into a staging buffer
 * (`fetched`), all-gathered from there, and the buffer is freed when the
 * gather completes. The prefetcher queues these reads ahead of the gathers,
 * along the recorded trace, up to offload_param.buffer_count layers.
 */
#include <stdlib.h>
#include <string.h>

#include "ctx.h"

enum { SET_P = 0, SET_M = 1, SET_V = 2 };

int zrt__params_on_nvme(const zrt_ctx *ctx)
{
    return ctx->param_nvme.mover != NULL;
}

int zrt__nvme_step_needed(const zrt_ctx *ctx)
{
    return ctx->optim_nvme.mover != NULL || ctx->param_nvme.mover != NULL;
}

static uint64_t round_up_u64(uint64_t value, uint64_t multiple)
{
    return (value + multiple - 1) / multiple * multiple;
}

/* Adam's moments (and every staging set's arrays) are f32. */
static size_t range_bytes(const zrt__layer_state *ls)
{
    return (size_t)ls->range_len * sizeof(float);
}

/* Parameter shards are in the parameters' type: f32, or 16-bit. */
static size_t param_bytes(const zrt_ctx *ctx, const zrt__layer_state *ls)
{
    return (size_t)ls->range_len * ctx->esize;
}

/* ---- opening and closing ---------------------------------------------------- */

/* Lays out two slots per layer and returns the file's capacity: m and v
 * (optimizer file) or the parameter shard (parameter file). */
static uint64_t layout(zrt_ctx *ctx, uint64_t block, int optim)
{
    uint64_t at = 0;
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        zrt__layer_state *ls = &ctx->layers[l];
        uint64_t bytes =
            round_up_u64(optim ? range_bytes(ls) : param_bytes(ctx, ls), block);
        for (int s = 0; s < 2; s++) {
            if (optim) {
                ls->swap_m[s] = at;
                ls->swap_v[s] = at + bytes;
                at += 2 * bytes;
            } else {
                ls->swap_p[s] = at;
                at += bytes;
            }
        }
    }
    return at;
}

/* Writes slot 0 of every region from the zeroed staging buffer, so that the
 * first reads verify. Parameters start at zero like in-memory shards do. */
static zrt_status write_zero_slot(zrt_ctx *ctx, zrt__nvme_store *store, int optim)
{
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        zrt__layer_state *ls = &ctx->layers[l];
        size_t bytes = range_bytes(ls);
        const void *zeros = ctx->step_staging.ptr;
        if (bytes == 0)
            continue;
        if (optim) {
            ZRT_CHECK(
                zrt__swap_write(store->swap, ls->swap_m[0], zeros, bytes, &ctx->err));
            ZRT_CHECK(
                zrt__swap_write(store->swap, ls->swap_v[0], zeros, bytes, &ctx->err));
        } else {
            ZRT_CHECK(zrt__swap_write(store->swap, ls->swap_p[0], zeros,
                                      param_bytes(ctx, ls), &ctx->err));
        }
    }
    return ZRT_OK;
}

static zrt_status open_store(zrt_ctx *ctx, zrt__nvme_store *store,
                             const zrt_offload_config *oc, int optim)
{
    const zrt_config *c = &ctx->cfg;
    zrt__swap_config sc = {.dir = oc->nvme_path,
                           .rank = ctx->comm->rank,
                           .block_size = (size_t)c->aio.block_size,
                           .queue_depth = c->aio.queue_depth,
                           .buffer_count = oc->buffer_count};
    uint64_t capacity = layout(ctx, sc.block_size ? sc.block_size : (1u << 20), optim);
    if (capacity == 0)
        return ZRT_OK;
    zrt_category cat = optim ? ZRT_CAT_OPTIM : ZRT_CAT_PARAM;
    ZRT_CHECK(zrt__mem_charge(&ctx->acct, &ctx->err, ZRT_TIER_NVME, cat,
                              (int64_t)capacity,
                              optim ? "optimizer swap file" : "parameter swap file"));
    store->bytes = (int64_t)capacity;
    store->cat = cat;
    ZRT_CHECK(zrt__swap_open(&sc, optim ? "optim" : "param", capacity, &ctx->err,
                             &store->swap));
    ZRT_CHECK(write_zero_slot(ctx, store, optim));
    return zrt__mover_create(store->swap, &ctx->err, &store->mover);
}

/* Two (p, m, v) sets of the largest range in f32; with 16-bit parameters
 * on NVMe, two 16-bit arrays more for the new parameters on their way out. */
size_t zrt__step_staging_bytes(const zrt_ctx *ctx)
{
    size_t largest = (size_t)ctx->staging_largest;
    size_t halves = zrt__mixed(ctx) && ctx->cfg.offload_param.device == ZRT_OFFLOAD_NVME
                        ? 2 * largest * ctx->esize
                        : 0;
    return 6 * largest * sizeof(float) + halves;
}

static int64_t largest_range(const zrt_ctx *ctx)
{
    int64_t largest = 0;
    for (int l = 0; l < ctx->plan.nlayers; l++)
        if (ctx->layers[l].range_len > largest)
            largest = ctx->layers[l].range_len;
    return largest;
}

zrt_status zrt__nvme_open(zrt_ctx *ctx)
{
    int optim = ctx->cfg.offload_optimizer.device == ZRT_OFFLOAD_NVME;
    int param = ctx->cfg.offload_param.device == ZRT_OFFLOAD_NVME;
    if (!optim && !param)
        return ZRT_OK;
    ctx->staging_largest = largest_range(ctx);
    if (ctx->staging_largest == 0)
        return ZRT_OK;
    ZRT_CHECK(ctx->be->ops->alloc(
        ctx->be, zrt__step_staging_bytes(ctx), ZRT_TIER_HOST, ZRT_CAT_STAGING,
        "optimizer step staging for the nvme tier", &ctx->step_staging));
    ZRT_CHECK(
        zrt__pin_for(ctx, &ctx->step_staging,
                     optim ? &ctx->cfg.offload_optimizer : &ctx->cfg.offload_param));
    if (optim)
        ZRT_CHECK(open_store(ctx, &ctx->optim_nvme, &ctx->cfg.offload_optimizer, 1));
    if (param)
        ZRT_CHECK(open_store(ctx, &ctx->param_nvme, &ctx->cfg.offload_param, 0));
    return ZRT_OK;
}

static void close_store(zrt_ctx *ctx, zrt__nvme_store *store)
{
    zrt__mover_destroy(store->mover);
    zrt__swap_close(store->swap);
    if (store->bytes)
        zrt__mem_release(&ctx->acct, ZRT_TIER_NVME, store->cat, store->bytes);
    *store = (zrt__nvme_store){0};
}

void zrt__nvme_close(zrt_ctx *ctx)
{
    for (int l = 0; ctx->layers && l < ctx->plan.nlayers; l++) {
        zrt__layer_state *ls = &ctx->layers[l];
        if (ls->fetch_state == ZRT__FETCH_QUEUED)
            zrt__mover_wait(ctx->param_nvme.mover, ls->fetch_ticket, NULL);
        ctx->be->ops->free(ctx->be, &ls->fetched);
        ls->fetch_state = ZRT__FETCH_NONE;
    }
    ctx->fetches_queued = 0;
    close_store(ctx, &ctx->optim_nvme);
    close_store(ctx, &ctx->param_nvme);
    ctx->be->ops->free(ctx->be, &ctx->step_staging);
}

/* ---- stage-3 shards on NVMe: fetch, gather from the fetched copy ----------- */

static zrt_status queue_fetch(zrt_ctx *ctx, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    ZRT_CHECK(ctx->be->ops->alloc(ctx->be, param_bytes(ctx, ls), ZRT_TIER_HOST,
                                  ZRT_CAT_STAGING, "parameter shard read from nvme",
                                  &ls->fetched));
    zrt_status st = zrt__pin_for(ctx, &ls->fetched, &ctx->cfg.offload_param);
    if (st == ZRT_OK)
        st = zrt__mover_read(ctx->param_nvme.mover, ls->swap_p[ctx->nvme_slot],
                             ls->fetched.ptr, param_bytes(ctx, ls), &ls->fetch_ticket);
    if (st != ZRT_OK) {
        ctx->be->ops->free(ctx->be, &ls->fetched);
        return st;
    }
    ls->fetch_state = ZRT__FETCH_QUEUED;
    ctx->fetches_queued++;
    return ZRT_OK;
}

zrt_status zrt__nvme_fetch(zrt_ctx *ctx, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    if (ls->fetch_state != ZRT__FETCH_NONE || ls->range_len == 0)
        return ZRT_OK;
    zrt__phase caller = ctx->acct.phase;
    zrt__set_phase(ctx, ZRT__PHASE_SWAP, layer);
    zrt_status st = queue_fetch(ctx, layer);
    ctx->acct.phase = caller;
    return st;
}

zrt_status zrt__nvme_fetched_shard(zrt_ctx *ctx, int layer, void **shard)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    ZRT_CHECK(zrt__nvme_fetch(ctx, layer));
    if (ls->fetch_state == ZRT__FETCH_QUEUED) {
        ctx->fetches_queued--;
        ls->fetch_state = ZRT__FETCH_READY;
        zrt_status st =
            zrt__mover_wait(ctx->param_nvme.mover, ls->fetch_ticket, &ctx->err);
        if (st != ZRT_OK) { /* never gather what a failed read left behind */
            zrt__nvme_drop_fetch(ctx, layer);
            return st;
        }
    }
    *shard = ls->fetched.ptr;
    return ZRT_OK;
}

void zrt__nvme_drop_fetch(zrt_ctx *ctx, int layer)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    if (ls->fetch_state == ZRT__FETCH_QUEUED) {
        ctx->fetches_queued--;
        zrt__mover_wait(ctx->param_nvme.mover, ls->fetch_ticket, NULL);
    }
    ls->fetch_state = ZRT__FETCH_NONE;
    ctx->be->ops->free(ctx->be, &ls->fetched);
}

int zrt__nvme_fetch_room(const zrt_ctx *ctx)
{
    int limit =
        ctx->cfg.offload_param.buffer_count > 0 ? ctx->cfg.offload_param.buffer_count : 1;
    return ctx->fetches_queued < limit;
}

/* zrt_param_write at stage 3: read the shard, change the tensor's part, write
 * it back to the current slot. */
zrt_status zrt__nvme_shard_update(zrt_ctx *ctx, int layer, zrt__shard_edit edit,
                                  const void *arg)
{
    zrt__layer_state *ls = &ctx->layers[layer];
    void *shard;
    uint64_t ticket;
    zrt__nvme_drop_fetch(ctx, layer);
    ZRT_CHECK(zrt__nvme_fetched_shard(ctx, layer, &shard));
    zrt_status st = edit(ctx, layer, shard, arg);
    if (st == ZRT_OK)
        st = zrt__mover_write(ctx->param_nvme.mover, ls->swap_p[ctx->nvme_slot], shard,
                              param_bytes(ctx, ls), &ticket);
    if (st == ZRT_OK)
        st = zrt__mover_wait(ctx->param_nvme.mover, ticket, &ctx->err);
    zrt__nvme_drop_fetch(ctx, layer);
    return st;
}

/* ---- the step --------------------------------------------------------------- */

static float *set_array(zrt_ctx *ctx, int set, int which)
{
    return (float *)ctx->step_staging.ptr +
           ((size_t)set * 3 + (size_t)which) * (size_t)ctx->staging_largest;
}

/* 16-bit parameters on NVMe: the set's new parameters, after the six f32
 * arrays. */
static uint16_t *set_halves(zrt_ctx *ctx, int set)
{
    return (uint16_t *)(set_array(ctx, 2, 0)) +
           (size_t)set * (size_t)ctx->staging_largest;
}

/* The step's grad_scale (16-bit parameters: 1/K, the loss scale and the
 * clipping coefficient in one multiplier), for update_set and commit. */
typedef struct step_args {
    float grad_scale;
    const zrt_adamw_scalars *decay, *no_decay;
} step_args;

typedef struct tickets {
    uint64_t param, optim;
} tickets;

static zrt_status queue_reads(zrt_ctx *ctx, int l, int set, tickets *t)
{
    const zrt__layer_state *ls = &ctx->layers[l];
    size_t bytes = range_bytes(ls);
    int slot = ctx->nvme_slot;
    /* 16-bit: the update starts from the master copy, not the shard */
    if (ctx->param_nvme.mover && !zrt__mixed(ctx))
        ZRT_CHECK(zrt__mover_read(ctx->param_nvme.mover, ls->swap_p[slot],
                                  set_array(ctx, set, SET_P), bytes, &t->param));
    if (!ctx->optim_nvme.mover)
        return ZRT_OK;
    ZRT_CHECK(zrt__mover_read(ctx->optim_nvme.mover, ls->swap_m[slot],
                              set_array(ctx, set, SET_M), bytes, &t->optim));
    return zrt__mover_read(ctx->optim_nvme.mover, ls->swap_v[slot],
                           set_array(ctx, set, SET_V), bytes, &t->optim);
}

static zrt_status wait_for(zrt_ctx *ctx, const tickets *t)
{
    if (ctx->param_nvme.mover && t->param)
        ZRT_CHECK(zrt__mover_wait(ctx->param_nvme.mover, t->param, &ctx->err));
    if (ctx->optim_nvme.mover && t->optim)
        ZRT_CHECK(zrt__mover_wait(ctx->optim_nvme.mover, t->optim, &ctx->err));
    return ZRT_OK;
}

/* Copies moments that live in memory into the set, so the update leaves
 * them alone. (Parameters in memory are only read: the update writes the
 * new ones into the spent gradient. A 16-bit run's master copy is copied
 * into master_next, which the update then changes.) */
static zrt_status fill_from_memory(zrt_ctx *ctx, int l, int set)
{
    zrt__layer_state *ls = &ctx->layers[l];
    size_t bytes = range_bytes(ls);
    const zrt__backend_ops *ops = ctx->be->ops;
    if (zrt__mixed(ctx))
        ZRT_CHECK(ops->copy(ctx->be, ls->master_next.ptr, ls->master.ptr, bytes));
    if (ctx->optim_nvme.mover)
        return ZRT_OK;
    ZRT_CHECK(ops->copy(ctx->be, set_array(ctx, set, SET_M), ls->m.ptr, bytes));
    return ops->copy(ctx->be, set_array(ctx, set, SET_V), ls->v.ptr, bytes);
}

/* New values go to the other slot. */
static zrt_status queue_writes(zrt_ctx *ctx, int l, int set, tickets *t)
{
    const zrt__layer_state *ls = &ctx->layers[l];
    size_t bytes = range_bytes(ls);
    int next = ctx->nvme_slot ^ 1;
    if (ctx->param_nvme.mover)
        ZRT_CHECK(zrt__mover_write(ctx->param_nvme.mover, ls->swap_p[next],
                                   zrt__mixed(ctx) ? (void *)set_halves(ctx, set)
                                                   : (void *)set_array(ctx, set, SET_P),
                                   param_bytes(ctx, ls), &t->param));
    if (!ctx->optim_nvme.mover)
        return ZRT_OK;
    ZRT_CHECK(zrt__mover_write(ctx->optim_nvme.mover, ls->swap_m[next],
                               set_array(ctx, set, SET_M), bytes, &t->optim));
    return zrt__mover_write(ctx->optim_nvme.mover, ls->swap_v[next],
                            set_array(ctx, set, SET_V), bytes, &t->optim);
}

/* Parameters on NVMe are updated in their set; parameters in memory are
 * read in place and their new values written over the spent gradient,
 * where they wait for the commit. */
static zrt_status update_set(zrt_ctx *ctx, int l, int set, const step_args *a)
{
    if (zrt__mixed(ctx)) {
        uint16_t *g = zrt__owned_grad(ctx, l);
        uint16_t *p_out = ctx->param_nvme.mover ? set_halves(ctx, set) : g;
        return zrt__adamw_layer_mixed(
            ctx, l, ctx->layers[l].master_next.ptr, p_out, g, set_array(ctx, set, SET_M),
            set_array(ctx, set, SET_V), a->grad_scale, a->decay, a->no_decay);
    }
    const zrt_adamw_scalars *decay = a->decay, *no_decay = a->no_decay;
    float *g = zrt__owned_grad(ctx, l);
    const float *p =
        ctx->param_nvme.mover ? set_array(ctx, set, SET_P) : zrt__owned_param(ctx, l);
    float *p_out = ctx->param_nvme.mover ? set_array(ctx, set, SET_P) : g;
    return zrt__adamw_layer(ctx, l, p, p_out, g, set_array(ctx, set, SET_M),
                            set_array(ctx, set, SET_V), decay, no_decay);
}

/* Queue order read 0, read 1, [update 0], write 0, read 2, [update 1], ...:
 * each mover runs its jobs in order, so a set's write-back finishes before
 * the read that reuses it; the p arrays belong to the parameter mover and
 * the m, v arrays to the optimizer mover. */
static zrt_status pass_through_sets(zrt_ctx *ctx, const int *order, int n,
                                    const step_args *a)
{
    tickets read[2] = {{0, 0}, {0, 0}}, wrote[2] = {{0, 0}, {0, 0}}, written = {0, 0};
    zrt_status st = ZRT_OK;
    /* tickets count up per mover: the last queued job is a read or a write */
    for (int i = 0; st == ZRT_OK && i < n && i < 2; i++)
        st = queue_reads(ctx, order[i], i, &read[i]);
    for (int i = 0; st == ZRT_OK && i < n; i++) {
        int set = i % 2;
        st = wait_for(ctx, &read[set]);
        /* 16-bit parameters on NVMe are not read back into the set, so no
         * read orders the set's last write-back before its reuse: wait. */
        if (st == ZRT_OK && zrt__mixed(ctx))
            st = wait_for(ctx, &wrote[set]);
        if (st == ZRT_OK)
            st = fill_from_memory(ctx, order[i], set);
        if (st == ZRT_OK)
            st = update_set(ctx, order[i], set, a);
        if (st == ZRT_OK)
            st = queue_writes(ctx, order[i], set, &wrote[set]);
        if (wrote[set].param > written.param)
            written.param = wrote[set].param;
        if (wrote[set].optim > written.optim)
            written.optim = wrote[set].optim;
        if (st == ZRT_OK && i + 2 < n)
            st = queue_reads(ctx, order[i + 2], set, &read[set]);
    }
    tickets last = written;
    for (int set = 0; set < 2; set++) {
        if (read[set].param > last.param)
            last.param = read[set].param;
        if (read[set].optim > last.optim)
            last.optim = read[set].optim;
    }
    zrt_status drained = wait_for(ctx, &last); /* nothing may touch the sets later */
    return st != ZRT_OK ? st : drained;
}

/* Moments in memory: recomputed in place (they do not depend on the
 * parameters; the same kernel gives the same bits), with throwaway
 * parameters: a copy of the old ones, whose update is not kept. */
static zrt_status recompute_moments(zrt_ctx *ctx, int l, const step_args *a)
{
    zrt__layer_state *ls = &ctx->layers[l];
    float *scratch = set_array(ctx, 0, SET_P);
    if (!zrt__mixed(ctx))
        return zrt__adamw_layer(ctx, l, scratch, scratch, zrt__owned_grad(ctx, l),
                                ls->m.ptr, ls->v.ptr, a->decay, a->no_decay);
    ZRT_CHECK(ctx->be->ops->copy(ctx->be, scratch, ls->master.ptr, range_bytes(ls)));
    return zrt__adamw_layer_mixed(ctx, l, scratch, set_halves(ctx, 0),
                                  zrt__owned_grad(ctx, l), ls->m.ptr, ls->v.ptr,
                                  a->grad_scale, a->decay, a->no_decay);
}

/* Every rank wrote every layer: make the new values current. */
static zrt_status commit(zrt_ctx *ctx, const int *order, int n, const step_args *a)
{
    for (int i = 0; i < n; i++) {
        int l = order[i];
        zrt__layer_state *ls = &ctx->layers[l];
        if (!ctx->param_nvme.mover)
            ZRT_CHECK(ctx->be->ops->copy(ctx->be, zrt__owned_param(ctx, l),
                                         zrt__owned_grad(ctx, l), param_bytes(ctx, ls)));
        if (!ctx->optim_nvme.mover)
            ZRT_CHECK(recompute_moments(ctx, l, a));
        if (zrt__mixed(ctx)) { /* the new master copy becomes current */
            zrt__buf old = ls->master;
            ls->master = ls->master_next;
            ls->master_next = old;
        }
    }
    ctx->nvme_slot ^= 1;
    return ZRT_OK;
}

/* A failed step wrote only to the unused slot, which stays unused: the
 * movers may serve the current slot again (a write that failed for want of
 * space can succeed in a retry; corrupt data fails its checksum again). */
static void forget_step_failures(zrt_ctx *ctx)
{
    if (ctx->optim_nvme.mover)
        zrt__mover_forget_failure(ctx->optim_nvme.mover);
    if (ctx->param_nvme.mover)
        zrt__mover_forget_failure(ctx->param_nvme.mover);
}

static zrt_status agree_on_step(zrt_ctx *ctx, zrt_status local)
{
    int first_failed = -1;
    zrt_status agreed = ctx->comm->ops->agree(ctx->comm, local, &first_failed);
    if (agreed != ZRT_OK) /* the caller still frees and drains the movers */
        return agreed;
    if (local != ZRT_OK || first_failed < 0)
        return local;
    return zrt__fail(&ctx->err, ZRT_ERR_REMOTE,
                     "zrt_step failed on rank %d (see its message); parameters "
                     "and optimizer state are unchanged on every rank",
                     first_failed);
}

zrt_status zrt__nvme_step(zrt_ctx *ctx, float grad_scale, const zrt_adamw_scalars *decay,
                          const zrt_adamw_scalars *no_decay)
{
    const step_args a = {.grad_scale = grad_scale, .decay = decay, .no_decay = no_decay};
    for (int l = 0; l < ctx->plan.nlayers; l++)
        zrt__nvme_drop_fetch(ctx, l); /* read from the slot about to change */
    int n = 0, *order = malloc(((size_t)ctx->plan.nlayers + 1) * sizeof *order);
    zrt_status st = order ? ZRT_OK
                          : zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                                      "zrt_step: no memory for the layer order");
    for (int l = 0; order && l < ctx->plan.nlayers; l++)
        if (ctx->layers[l].range_len > 0)
            order[n++] = l;
    if (st == ZRT_OK)
        st = pass_through_sets(ctx, order, n, &a);
    st = agree_on_step(ctx, st);
    if (st == ZRT_OK)
        st = commit(ctx, order, n, &a);
    else
        forget_step_failures(ctx);
    free(order);
    return st;
}
