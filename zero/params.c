/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/params.c — registering parameters, finalizing them (the plans, the
 * allocation), and moving a parameter's value in and out (write, read, data
 * pointers while live).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"

static zrt_status check_desc(zrt_ctx *ctx, const zrt_param_desc *d, int64_t *numel)
{
    const char *name = d->name ? d->name : "(unnamed)";
    if (!d->name || !*d->name)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_param_register: a parameter needs a name");
    if (d->ndim < 1 || d->ndim > ZRT_MAX_DIMS)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_param_register: '%s' has %d dimensions (1..%d)", name,
                         d->ndim, ZRT_MAX_DIMS);
    if (d->layer < 0)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_param_register: '%s' has layer %d (must be >= 0)", name,
                         d->layer);
    if ((unsigned)d->dtype >= ZRT_DTYPE_COUNT)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_param_register: '%s' has dtype %d", name, (int)d->dtype);
    if (d->dtype != ctx->pdtype)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_param_register: '%s' is %s but this context trains %s "
                         "parameters (%s); register every parameter with that dtype",
                         name, zrt_dtype_str(d->dtype), zrt_dtype_str(ctx->pdtype),
                         ctx->cfg.bf16.enabled   ? "bf16.enabled is true"
                         : ctx->cfg.fp16.enabled ? "fp16.enabled is true"
                                                 : "set bf16.enabled or fp16.enabled "
                                                   "for 16-bit parameters");
    int64_t n = 1;
    for (int i = 0; i < d->ndim; i++) {
        if (d->shape[i] < 1 || n > INT64_MAX / d->shape[i])
            return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                             "zrt_param_register: '%s' dimension %d is %lld", name, i,
                             (long long)d->shape[i]);
        n *= d->shape[i];
    }
    for (int i = 0; i < ctx->nparams; i++)
        if (strcmp(ctx->params[i].name, d->name) == 0)
            return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                             "zrt_param_register: '%s' is already registered", name);
    *numel = n;
    return ZRT_OK;
}

static zrt_status grow_params(zrt_ctx *ctx)
{
    if (ctx->nparams < ctx->params_cap)
        return ZRT_OK;
    int cap = ctx->params_cap ? ctx->params_cap * 2 : 16;
    zrt__param_info *grown = realloc(ctx->params, (size_t)cap * sizeof *grown);
    if (!grown)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                         "zrt_param_register: cannot grow the parameter table");
    ctx->params = grown;
    ctx->params_cap = cap;
    return ZRT_OK;
}

zrt_status zrt_param_register(zrt_ctx *ctx, const zrt_param_desc *desc, zrt_param *out)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!desc || !out)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_param_register: NULL description or handle");
    if (ctx->finalized)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "zrt_param_register: '%s' comes after "
                         "zrt_finalize_params",
                         desc->name ? desc->name : "?");
    int64_t numel = 0;
    ZRT_CHECK(check_desc(ctx, desc, &numel));
    ZRT_CHECK(grow_params(ctx));
    char *name = strdup(desc->name);
    if (!name)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                         "zrt_param_register: cannot copy a name");
    zrt__param_info *info = &ctx->params[ctx->nparams];
    info->desc = *desc;
    info->desc.name = name;
    info->name = name;
    info->numel = numel;
    *out = ctx->nparams++;
    return ZRT_OK;
}

/* Every rank learns whether every rank succeeded, so a failure on one rank
 * does not leave the others waiting in the first collective. */
static zrt_status agree_on(zrt_ctx *ctx, zrt_status local)
{
    int first_failed = -1;
    ZRT_CHECK(ctx->comm->ops->agree(ctx->comm, local, &first_failed));
    if (local != ZRT_OK || first_failed < 0)
        return local;
    return zrt__fail(&ctx->err, ZRT_ERR_REMOTE,
                     "zrt_finalize_params failed on rank %d (see its message)",
                     first_failed);
}

/* Keeps the plan in the memory account, where the report and the
 * over-budget error read it. */
static void remember_plan(zrt_ctx *ctx, const zrt_mem_plan *p)
{
    zrt__mem_account *a = &ctx->acct;
    a->has_plan = 1;
    memcpy(a->planned_peak, p->peak, sizeof a->planned_peak);
    memcpy(a->planned_tier_peak, p->tier_peak, sizeof a->planned_tier_peak);
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        snprintf(a->planned_peak_phase[t], sizeof a->planned_peak_phase[t],
                 "%s of step %ld", p->tier_peak_phase[t], p->tier_peak_step[t]);
}

/* "param 4.00 MiB, grad 4.00 MiB, ...": what the plan puts in a tier at its
 * peak, largest categories included, empty ones left out. */
static void describe_planned(const zrt_mem_plan *p, int tier, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int c = 0; c < ZRT_CAT_COUNT && used + 1 < size; c++) {
        if (p->at_tier_peak[tier][c] == 0)
            continue;
        char amount[64];
        int n = snprintf(buf + used, size - used, "%s%s %s", used ? ", " : "",
                         zrt_category_str((zrt_category)c),
                         zrt__fmt_bytes(p->at_tier_peak[tier][c], amount, sizeof amount));
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* Refuses, before anything is allocated, a plan whose peak passes a budget. */
static zrt_status check_plan_fits(zrt_ctx *ctx, const zrt_mem_plan *p)
{
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        int64_t limit = ctx->acct.stats.tier_limit[t];
        if (limit <= 0 || p->tier_peak[t] <= limit)
            continue;
        char need[64], budget[64], held[512];
        describe_planned(p, t, held, sizeof held);
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                         "%s memory budget exceeded by the memory plan: stage %d "
                         "needs %s per rank at %s of step %ld (%s), over the %s "
                         "budget; nothing was allocated",
                         zrt_tier_str((zrt_tier)t), p->stage,
                         zrt__fmt_bytes(p->tier_peak[t], need, sizeof need),
                         p->tier_peak_phase[t], p->tier_peak_step[t], held,
                         zrt__fmt_bytes(limit, budget, sizeof budget));
    }
    return ZRT_OK;
}

/* ---- "stage": "auto" ---------------------------------------------------- */

static const char *device_word(int device)
{
    return device == ZRT_OFFLOAD_CPU    ? "cpu"
           : device == ZRT_OFFLOAD_NVME ? "nvme"
                                        : "none";
}

/* "stage 3, optimizer cpu, parameters none" */
static void describe_choice(const zrt_config *c, char *buf, size_t size)
{
    snprintf(buf, size, "stage %d, optimizer %s, parameters %s", c->stage,
             device_word(c->offload_optimizer.device),
             device_word(c->offload_param.device));
}

/* The first tier whose planned peak passes its budget, or -1. */
static int tier_over_budget(const zrt_ctx *ctx, const zrt_mem_plan *p)
{
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        int64_t limit = ctx->acct.stats.tier_limit[t];
        if (limit > 0 && p->tier_peak[t] > limit)
            return t;
    }
    return -1;
}

/* An nvme rung takes the path the config gave either section. */
static void share_nvme_path(zrt_config *c)
{
    char *a = c->offload_optimizer.nvme_path, *b = c->offload_param.nvme_path;
    if (!a[0])
        memcpy(a, b, sizeof c->offload_optimizer.nvme_path);
    if (!b[0])
        memcpy(b, a, sizeof c->offload_param.nvme_path);
}

/* "device 3.00 MiB, host 4.00 MiB": the budgets set. */
static void describe_budgets(const zrt_ctx *ctx, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        int64_t limit = ctx->acct.stats.tier_limit[t];
        char amount[64];
        if (limit <= 0)
            continue;
        int k = snprintf(buf + used, size - used, "%s%s %s", used ? ", " : "",
                         zrt_tier_str((zrt_tier)t),
                         zrt__fmt_bytes(limit, amount, sizeof amount));
        if (k < 0 || (size_t)k >= size - used)
            return;
        used += (size_t)k;
    }
}

/* Which rungs fit on every rank: each rank plans them all (its declared
 * buffers and budgets may differ), and one all-reduce of "does not fit"
 * flags lets every rank take the same rung. fits[i] = 1 where all fit. */
static zrt_status rungs_fitting_everywhere(zrt_ctx *ctx, zrt_config *ladder, int n,
                                           int *fits, zrt_mem_plan *plans)
{
    float over[32];
    for (int i = 0; i < n; i++) {
        share_nvme_path(&ladder[i]);
        ZRT_CHECK(zrt__plan_for(ctx, &ladder[i], &ctx->plan, &plans[i]));
        over[i] = tier_over_budget(ctx, &plans[i]) >= 0 ? 1.0f : 0.0f;
    }
    zrt__comm_req *req;
    ZRT_CHECK(zrt__comm_all_reduce_f32(ctx->comm, over, over, (size_t)n, ZRT_SUM, &req));
    ZRT_CHECK(zrt__comm_wait(ctx, req));
    for (int i = 0; i < n; i++)
        fits[i] = over[i] == 0.0f;
    return ZRT_OK;
}

/* Walks the ladder (zero/fit.c) and keeps the first configuration whose
 * plan fits every budget on every rank; logs the choice and what came
 * before it. */
static zrt_status choose_configuration(zrt_ctx *ctx)
{
    zrt_config ladder[32];
    zrt_mem_plan plans[32];
    int n = 0, fits[32];
    int allow_nvme =
        ctx->cfg.offload_optimizer.nvme_path[0] || ctx->cfg.offload_param.nvme_path[0];
    ZRT_CHECK(zrt_fit_ladder(&ctx->cfg, ctx->shard_comm->size, allow_nvme, ladder, 32,
                             &n)); /* the shards' spread: the shard group */
    n = n < 32 ? n : 32;
    ZRT_CHECK(rungs_fitting_everywhere(ctx, ladder, n, fits, plans));
    char skipped[2048] = "", choice[96], need[64]; /* up to 16 rungs of ~100 bytes */
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        describe_choice(&ladder[i], choice, sizeof choice);
        if (fits[i]) {
            ctx->cfg = ladder[i];
            if (ctx->comm->rank == 0)
                zrt_log(
                    ctx, 1, "stage auto: chose %s: device peak %s planned%s%s", choice,
                    zrt__fmt_bytes(plans[i].tier_peak[ZRT_TIER_DEVICE], need,
                                   sizeof need),
                    used ? "; cheaper ones do not fit: " : " (the cheapest)", skipped);
            return ZRT_OK;
        }
        int over = tier_over_budget(ctx, &plans[i]);
        int k =
            over < 0
                ? snprintf(skipped + used, sizeof skipped - used,
                           "%s%s does not fit on another rank", used ? ", " : "", choice)
                : snprintf(skipped + used, sizeof skipped - used, "%s%s needs %s %s",
                           used ? ", " : "", choice,
                           zrt__fmt_bytes(plans[i].tier_peak[over], need, sizeof need),
                           zrt_tier_str((zrt_tier)over));
        if (k > 0 && (size_t)k < sizeof skipped - used)
            used += (size_t)k;
    }
    char budgets[160];
    describe_budgets(ctx, budgets, sizeof budgets);
    return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                     "stage auto: no configuration fits the budgets (%s)%s: %s", budgets,
                     allow_nvme ? "" : "; no nvme_path, so no NVMe rungs", skipped);
}

static zrt_status plan_memory(zrt_ctx *ctx)
{
    if (ctx->cfg.stage == ZRT_STAGE_AUTO)
        ZRT_CHECK(choose_configuration(ctx));
    zrt_mem_plan p;
    ZRT_CHECK(zrt__plan_for(ctx, &ctx->cfg, &ctx->plan, &p));
    remember_plan(ctx, &p);
    return check_plan_fits(ctx, &p);
}

zrt_status zrt_finalize_params(zrt_ctx *ctx)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (ctx->finalized)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE, "zrt_finalize_params: already called");
    zrt__set_phase(ctx, ZRT__PHASE_INIT, -1);
    zrt_config asked = ctx->cfg; /* "stage": "auto" rewrites it */
    zrt_status st = zrt__build_plan(ctx, &ctx->plan);
    if (st == ZRT_OK)
        st = plan_memory(ctx);
    if (st == ZRT_OK)
        st = zrt__engine_allocate(ctx);
    st = agree_on(ctx, st);
    if (st != ZRT_OK) {
        zrt__engine_release(ctx);
        ctx->cfg = asked;
        return st;
    }
    ctx->finalized = 1;
    zrt__set_phase(ctx, ZRT__PHASE_LOOP, -1);
    zrt_log(ctx, 2,
            "plan: %d parameters, %lld elements (%lld padded) in %d "
            "layers",
            ctx->nparams, (long long)ctx->plan.total_numel,
            (long long)ctx->plan.total_flat_numel, ctx->plan.nlayers);
    return ZRT_OK;
}

zrt_status zrt_param_count(const zrt_ctx *ctx, int64_t *out)
{
    if (!ctx || !out)
        return ZRT_ERR_INVALID_ARG;
    int64_t total = 0;
    for (int i = 0; i < ctx->nparams; i++)
        total += ctx->params[i].numel;
    *out = total;
    return ZRT_OK;
}

zrt_status zrt_num_params(const zrt_ctx *ctx, int *out)
{
    if (!ctx || !out)
        return ZRT_ERR_INVALID_ARG;
    *out = ctx->nparams;
    return ZRT_OK;
}

static zrt_status lookup(const zrt_ctx *ctx, zrt_param param, const zrt__param_info **out)
{
    if (!ctx || param < 0 || param >= ctx->nparams)
        return ZRT_ERR_INVALID_ARG;
    *out = &ctx->params[param];
    return ZRT_OK;
}

zrt_status zrt_param_numel(const zrt_ctx *ctx, zrt_param param, int64_t *out)
{
    const zrt__param_info *info;
    if (!out)
        return ZRT_ERR_INVALID_ARG;
    ZRT_CHECK(lookup(ctx, param, &info));
    *out = info->numel;
    return ZRT_OK;
}

zrt_status zrt_param_name(const zrt_ctx *ctx, zrt_param param, const char **out)
{
    const zrt__param_info *info;
    if (!out)
        return ZRT_ERR_INVALID_ARG;
    ZRT_CHECK(lookup(ctx, param, &info));
    *out = info->name;
    return ZRT_OK;
}

/* ---- moving values in and out ------------------------------------------- */

static const zrt__tensor_place *place_of(zrt_ctx *ctx, zrt_param param)
{
    return &ctx->plan.tensors[param];
}

/* The part of the tensor that falls in [lo, lo + len) of its layer's flat
 * buffer: [*begin, *end); empty when *begin >= *end. */
static void overlap_of(const zrt__tensor_place *t, int64_t lo, int64_t len,
                       int64_t *begin, int64_t *end)
{
    *begin = t->offset > lo ? t->offset : lo;
    *end = t->offset + t->numel < lo + len ? t->offset + t->numel : lo + len;
}

/* The values a write brings: elements [first, first + count) of the
 * tensor, in src (parameter-typed). zrt_param_write brings all of them. */
typedef struct value_window {
    const void *src;
    int64_t first, count;
    int ranged; /* from zrt_param_write_range */
} value_window;

/* The part of the window that falls in [lo, lo + len) of the tensor's
 * layer's flat buffer: [*begin, *end), flat positions; empty when
 * *begin >= *end. */
static void window_overlap(const zrt__tensor_place *t, const value_window *w, int64_t lo,
                           int64_t len, int64_t *begin, int64_t *end)
{
    int64_t wb = t->offset + w->first, we = wb + w->count;
    overlap_of(t, lo, len, begin, end);
    *begin = *begin > wb ? *begin : wb;
    *end = *end < we ? *end : we;
}

/* Copies the part of the window that falls in [lo, lo+len) of the tensor's
 * layer's flat buffer into dst (which holds that range). */
static zrt_status copy_into_range(zrt_ctx *ctx, zrt_param param, const value_window *w,
                                  void *dst, int64_t lo, int64_t len)
{
    const zrt__tensor_place *t = place_of(ctx, param);
    int64_t begin, end;
    window_overlap(t, w, lo, len, &begin, &end);
    if (begin >= end)
        return ZRT_OK;
    int64_t wb = t->offset + w->first;
    return ctx->be->ops->copy(ctx->be, zrt__elem(ctx, dst, begin - lo),
                              zrt__elem(ctx, (void *)w->src, begin - wb),
                              (size_t)(end - begin) * ctx->esize);
}

/* 16-bit parameters: the master copy of this rank's range starts as the
 * exact f32 value of what was written. */
static zrt_status widen_into_master(zrt_ctx *ctx, zrt_param param, const value_window *w)
{
    const zrt__tensor_place *t = place_of(ctx, param);
    const zrt__layer_state *ls = &ctx->layers[t->layer];
    int64_t begin, end;
    window_overlap(t, w, ls->range_lo, ls->range_len, &begin, &end);
    if (begin >= end)
        return ZRT_OK;
    const uint16_t *src = w->src;
    return ctx->be->ops->cast_half_to_f32(
        ctx->be, (float *)ls->master.ptr + (begin - ls->range_lo),
        src + (begin - t->offset - w->first), (size_t)(end - begin), zrt__half_of(ctx));
}

static zrt_status require_idle(zrt_ctx *ctx, zrt_param param, const char *call)
{
    const zrt__layer_state *ls = &ctx->layers[place_of(ctx, param)->layer];
    if (ls->fwd_live || ls->bwd_live)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE, "%s: layer %d of '%s' is live", call,
                         place_of(ctx, param)->layer, ctx->params[param].name);
    return ZRT_OK;
}

typedef struct write_request {
    zrt_param param;
    const value_window *w;
} write_request;

/* Stage 3 with shards on NVMe: applied to the shard read back from disk. */
static zrt_status write_into_shard(zrt_ctx *ctx, int layer, void *shard, const void *arg)
{
    const write_request *req = arg;
    const zrt__layer_state *ls = &ctx->layers[layer];
    return copy_into_range(ctx, req->param, req->w, shard, ls->range_lo, ls->range_len);
}

static uint64_t round_up_bytes(uint64_t value, uint64_t multiple)
{
    return (value + multiple - 1) / multiple * multiple;
}

/* Stage 3, shards on NVMe, a ranged write: reads only the
 * swap blocks of the shard that the window touches, copies its part in and
 * writes those blocks back to the current slot, so a write costs its own
 * size rather than the shard's (the swap checks block by block, and the
 * blocks keep the lengths the shard's write gave them). */
static zrt_status write_window_blocks(zrt_ctx *ctx, int layer, zrt_param param,
                                      const value_window *w)
{
    const zrt__layer_state *ls = &ctx->layers[layer];
    int64_t begin, end;
    window_overlap(place_of(ctx, param), w, ls->range_lo, ls->range_len, &begin, &end);
    if (begin >= end)
        return ZRT_OK;
    uint64_t block = ctx->cfg.aio.block_size > 0 ? (uint64_t)ctx->cfg.aio.block_size
                                                 : (uint64_t)1 << 20;
    uint64_t shard_bytes = (uint64_t)ls->range_len * ctx->esize;
    uint64_t b0 = (uint64_t)(begin - ls->range_lo) * ctx->esize / block * block;
    uint64_t b1 = round_up_bytes((uint64_t)(end - ls->range_lo) * ctx->esize, block);
    b1 = b1 < shard_bytes ? b1 : shard_bytes;
    uint64_t at = ls->swap_p[ctx->nvme_slot] + b0, ticket;
    zrt__buf buf = {0};
    ZRT_CHECK(ctx->be->ops->alloc(ctx->be, (size_t)(b1 - b0), ZRT_TIER_HOST,
                                  ZRT_CAT_STAGING, "parameter blocks being written",
                                  &buf));
    zrt__mover *mv = ctx->param_nvme.mover;
    zrt_status st = zrt__mover_read(mv, at, buf.ptr, (size_t)(b1 - b0), &ticket);
    if (st == ZRT_OK)
        st = zrt__mover_wait(mv, ticket, &ctx->err);
    if (st == ZRT_OK)
        st = copy_into_range(ctx, param, w, buf.ptr,
                             ls->range_lo + (int64_t)(b0 / ctx->esize),
                             (int64_t)((b1 - b0) / ctx->esize));
    if (st == ZRT_OK)
        st = zrt__mover_write(mv, at, buf.ptr, (size_t)(b1 - b0), &ticket);
    if (st == ZRT_OK)
        st = zrt__mover_wait(mv, ticket, &ctx->err);
    ctx->be->ops->free(ctx->be, &buf);
    return st;
}

/* Stage 3, shards on NVMe: any copy read ahead is stale now. A ranged
 * write touches only its blocks (a small tensor's included: a whole-shard
 * pass per piece would cost the shard's size each time). */
static zrt_status write_nvme_shard(zrt_ctx *ctx, int layer, zrt_param param,
                                   const value_window *w)
{
    if (w->ranged) {
        zrt__nvme_drop_fetch(ctx, layer);
        return write_window_blocks(ctx, layer, param, w);
    }
    write_request req = {param, w};
    return zrt__nvme_shard_update(ctx, layer, write_into_shard, &req);
}

/* Puts the window's values where this rank keeps them: the full buffer,
 * the shard, or the shard on NVMe. */
static zrt_status write_values(zrt_ctx *ctx, zrt_param param, const value_window *w)
{
    int layer = place_of(ctx, param)->layer;
    zrt__layer_state *ls = &ctx->layers[layer];
    if (ctx->cfg.stage < 3) {
        int64_t flat = ctx->plan.layers[layer].flat_numel;
        return copy_into_range(ctx, param, w, ls->param_full.ptr, 0, flat);
    }
    ls->gathered = 0;  /* any gathered copy is now stale */
    ls->hpz_valid = 0; /* and hpZ's secondary shard */
    ZRT_CHECK(zrt__release_if_idle(ctx, layer));
    if (zrt__params_on_nvme(ctx))
        return write_nvme_shard(ctx, layer, param, w);
    return copy_into_range(ctx, param, w, ls->param_shard.ptr, ls->range_lo,
                           ls->range_len);
}

static zrt_status write_window(zrt_ctx *ctx, zrt_param param, const value_window *w,
                               const char *call)
{
    ZRT_CHECK(require_idle(ctx, param, call));
    ZRT_CHECK(zrt__wait_gather(ctx, place_of(ctx, param)->layer));
    ZRT_CHECK(write_values(ctx, param, w));
    if (zrt__mixed(ctx)) /* only once the 16-bit values are in place */
        return widen_into_master(ctx, param, w);
    return ZRT_OK;
}

zrt_status zrt_param_write(zrt_ctx *ctx, zrt_param param, const void *src)
{
    ZRT_CHECK(zrt__require_param(ctx, param, "zrt_param_write"));
    if (!src)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_param_write: source is NULL");
    value_window w = {src, 0, ctx->params[param].numel, 0};
    return write_window(ctx, param, &w, "zrt_param_write");
}

zrt_status zrt_param_owned_range(zrt_ctx *ctx, zrt_param param, int64_t *first,
                                 int64_t *count)
{
    ZRT_CHECK(zrt__require_param(ctx, param, "zrt_param_owned_range"));
    if (!first || !count)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_param_owned_range: an output is NULL");
    const zrt__tensor_place *t = place_of(ctx, param);
    const zrt__layer_state *ls = &ctx->layers[t->layer];
    int64_t begin = 0, end = t->numel; /* stages 0-2: the full value */
    if (ctx->cfg.stage >= 3) {
        overlap_of(t, ls->range_lo, ls->range_len, &begin, &end);
        begin -= t->offset;
        end -= t->offset;
    }
    *first = begin < end ? begin : 0;
    *count = begin < end ? end - begin : 0;
    return ZRT_OK;
}

zrt_status zrt_param_write_range(zrt_ctx *ctx, zrt_param param, int64_t first,
                                 int64_t count, const void *src)
{
    ZRT_CHECK(zrt__require_param(ctx, param, "zrt_param_write_range"));
    int64_t numel = ctx->params[param].numel;
    if (first < 0 || count < 0 || first > numel || count > numel - first)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_param_write_range: elements [%lld, %lld) are outside "
                         "'%s' (%lld elements)",
                         (long long)first, (long long)first + (long long)count,
                         ctx->params[param].name, (long long)numel);
    if (!src && count > 0)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_param_write_range: source is NULL");
    value_window w = {src, first, count, 1};
    return write_window(ctx, param, &w, "zrt_param_write_range");
}

zrt_status zrt_param_read(zrt_ctx *ctx, zrt_param param, void *dst)
{
    ZRT_CHECK(zrt__require_param(ctx, param, "zrt_param_read"));
    if (!dst)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_param_read: destination is NULL");
    int layer = place_of(ctx, param)->layer;
    ZRT_CHECK(zrt__ensure_gathered(ctx, layer));
    const zrt__tensor_place *t = place_of(ctx, param);
    ZRT_CHECK(ctx->be->ops->copy(ctx->be, dst,
                                 zrt__elem(ctx, zrt__param_base(ctx, layer), t->offset),
                                 (size_t)t->numel * ctx->esize));
    return zrt__release_if_idle(ctx, layer);
}

zrt_status zrt_param_data(zrt_ctx *ctx, zrt_param param, void **out)
{
    ZRT_CHECK(zrt__require_param(ctx, param, "zrt_param_data"));
    if (!out)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_param_data: out is NULL");
    const zrt__tensor_place *t = place_of(ctx, param);
    const zrt__layer_state *ls = &ctx->layers[t->layer];
    if (!ls->fwd_live && !ls->bwd_live)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "zrt_param_data: '%s' belongs to layer %d, which is not "
                         "live (call zrt_forward_begin or zrt_backward_begin)",
                         ctx->params[param].name, t->layer);
    *out = zrt__elem(ctx, zrt__param_base(ctx, t->layer), t->offset);
    return ZRT_OK;
}

/* This rank's reduced gradient range of the layer: the whole buffer at
 * stage 0, this rank's block of the full buffer at 1, the shard at 2-3. */
/* Stages 1-3: all-gathers the layer's reduced gradient blocks into full. */
static zrt_status gather_grads(zrt_ctx *ctx, int layer, zrt__buf *full)
{
    const zrt__layer_plan *lp = &ctx->plan.layers[layer];
    const zrt__layer_state *ls = &ctx->layers[layer];
    ZRT_CHECK(ctx->be->ops->alloc(ctx->be, (size_t)lp->flat_numel * ctx->esize,
                                  ZRT_TIER_DEVICE, ZRT_CAT_COMM,
                                  "zrt_grad_read's gathered gradients", full));
    void *own_block = zrt__elem(ctx, full->ptr, ls->range_lo);
    zrt__comm_req *req = NULL;
    zrt_status st = ctx->be->ops->copy(ctx->be, own_block, zrt__reduced_grad(ctx, layer),
                                       (size_t)ls->range_len * ctx->esize);
    zrt__comm *c = ctx->shard_comm;
    if (st == ZRT_OK)
        st = c->ops->all_gather(c, own_block, full->ptr, (size_t)lp->shard_numel,
                                ctx->pdtype, &req);
    if (st == ZRT_OK)
        st = zrt__comm_wait_in(ctx, c, req);
    if (st != ZRT_OK)
        ctx->be->ops->free(ctx->be, full);
    return st;
}

zrt_status zrt_grad_read(zrt_ctx *ctx, zrt_param param, void *dst)
{
    ZRT_CHECK(zrt__require_param(ctx, param, "zrt_grad_read"));
    if (!dst)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_grad_read: destination is NULL");
    ZRT_CHECK(require_idle(ctx, param, "zrt_grad_read"));
    ZRT_CHECK(zrt__drain_reductions(ctx));
    const zrt__tensor_place *t = place_of(ctx, param);
    size_t bytes = (size_t)t->numel * ctx->esize;
    if (ctx->cfg.stage == 0)
        return ctx->be->ops->copy(
            ctx->be, dst, zrt__elem(ctx, zrt__reduced_grad(ctx, t->layer), t->offset),
            bytes);
    zrt__buf full = {0};
    ZRT_CHECK(gather_grads(ctx, t->layer, &full));
    zrt_status st =
        ctx->be->ops->copy(ctx->be, dst, zrt__elem(ctx, full.ptr, t->offset), bytes);
    ctx->be->ops->free(ctx->be, &full);
    return st;
}

zrt_status zrt_grad_data(zrt_ctx *ctx, zrt_param param, void **out)
{
    ZRT_CHECK(zrt__require_param(ctx, param, "zrt_grad_data"));
    if (!out)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_grad_data: out is NULL");
    const zrt__tensor_place *t = place_of(ctx, param);
    const zrt__layer_state *ls = &ctx->layers[t->layer];
    if (!ls->bwd_live)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "zrt_grad_data: '%s' belongs to layer %d, which is not "
                         "in backward (call zrt_backward_begin)",
                         ctx->params[param].name, t->layer);
    *out = zrt__elem(ctx, ls->grad_full.ptr, t->offset);
    return ZRT_OK;
}
