/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/report.c — the per-rank memory report (JSON): who this rank is, the
 * memory plan, the timeline of the first steps, and the current and peak
 * bytes per tier and category with the phase of each tier's peak, and what
 * the communicator sent in the first steps beside the ZeRO paper's theory.
 * Written to "<path>.tmp.<pid>", fsynced, then renamed over <path>, so a
 * reader never sees half a report.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctx.h"

/* Copies path into out, replacing each "%r" with the rank. */
static zrt_status expand_rank(zrt_ctx *ctx, const char *path, char *out, size_t size)
{
    size_t used = 0;
    for (const char *p = path; *p; p++) {
        int n;
        if (p[0] == '%' && p[1] == 'r') {
            n = snprintf(out + used, size - used, "%d", ctx->comm->rank);
            p++;
        } else {
            n = snprintf(out + used, size - used, "%c", *p);
        }
        if (n < 0 || (size_t)n >= size - used)
            return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                             "memory report path '%s' is too long", path);
        used += (size_t)n;
    }
    return ZRT_OK;
}

static void write_phase(FILE *f, const char *key, const zrt__phase *phase)
{
    char text[64];
    zrt__phase_format(phase, text, sizeof text);
    fprintf(f, "\"%s\": \"%s\", \"%s_step\": %ld", key, text, key, phase->step);
}

static void write_tier(FILE *f, const zrt__mem_account *a, int tier)
{
    const zrt_mem_stats *s = &a->stats;
    fprintf(f, "    \"%s\": {\"limit\": %lld, \"current\": %lld, \"peak\": %lld, ",
            zrt_tier_str((zrt_tier)tier), (long long)s->tier_limit[tier],
            (long long)s->tier_current[tier], (long long)s->tier_peak[tier]);
    write_phase(f, "peak_phase", &a->tier_peak_phase[tier]);
    fprintf(f, ", \"categories\": {");
    for (int c = 0; c < ZRT_CAT_COUNT; c++)
        fprintf(f, "%s\"%s\": {\"current\": %lld, \"peak\": %lld, \"at_peak\": %lld}",
                c ? ", " : "", zrt_category_str((zrt_category)c),
                (long long)s->current[tier][c], (long long)s->peak[tier][c],
                (long long)a->at_tier_peak[tier][c]);
    fprintf(f, "}}%s\n", tier + 1 < ZRT_TIER_COUNT ? "," : "");
}

/* The plan, shaped like "tiers": what zero-report compares with. */
static void write_plan(FILE *f, zrt_ctx *ctx)
{
    zrt_mem_plan p;
    zrt__errbuf kept = ctx->err; /* a report does not replace the last error */
    if (zrt_plan_memory(ctx, &p) != ZRT_OK) {
        fprintf(f, "  \"plan_error\": \"");
        for (const char *c = zrt_last_error(ctx); *c; c++)
            fprintf(f, *c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
        fprintf(f, "\",\n");
        ctx->err = kept;
        return;
    }
    fprintf(f, "  \"plan\": {\"step\": \"%s\",\n",
            p.declared_step ? "declared" : "default");
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        fprintf(f,
                "    \"%s\": {\"peak\": %lld, \"peak_phase\": \"%s\", "
                "\"peak_phase_step\": %ld, \"categories\": {",
                zrt_tier_str((zrt_tier)t), (long long)p.tier_peak[t],
                p.tier_peak_phase[t], p.tier_peak_step[t]);
        for (int c = 0; c < ZRT_CAT_COUNT; c++)
            fprintf(f, "%s\"%s\": {\"peak\": %lld, \"at_peak\": %lld}", c ? ", " : "",
                    zrt_category_str((zrt_category)c), (long long)p.peak[t][c],
                    (long long)p.at_tier_peak[t][c]);
        fprintf(f, "}}%s\n", t + 1 < ZRT_TIER_COUNT ? "," : "");
    }
    fprintf(f, "  },\n");
}

/* Every charge and release of the first steps, in order: [step, phase,
 * layer, tier, category, bytes], the indices into the legends. */
static void write_timeline(FILE *f, const zrt__mem_account *a)
{
    fprintf(f, "  \"timeline\": {\"steps\": %d, \"dropped\": %lld,\n",
            ZRT__TIMELINE_STEPS, (long long)a->events_dropped);
    fprintf(f, "    \"phases\": [");
    for (int k = 0; k < ZRT__PHASE_COUNT; k++)
        fprintf(f, "%s\"%s\"", k ? ", " : "", zrt__phase_kind_str(k));
    fprintf(f, "],\n    \"tiers\": [");
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        fprintf(f, "%s\"%s\"", t ? ", " : "", zrt_tier_str((zrt_tier)t));
    fprintf(f, "],\n    \"categories\": [");
    for (int c = 0; c < ZRT_CAT_COUNT; c++)
        fprintf(f, "%s\"%s\"", c ? ", " : "", zrt_category_str((zrt_category)c));
    fprintf(f, "],\n    \"events\": [");
    for (int i = 0; i < a->nevents; i++) {
        const zrt__mem_event *e = &a->events[i];
        fprintf(f, "%s[%d, %d, %d, %d, %d, %lld]", i ? ",\n      " : "\n      ",
                (int)e->step, (int)e->kind, (int)e->layer, (int)e->tier, (int)e->cat,
                (long long)e->delta);
    }
    fprintf(f, "]\n  },\n");
}

/* ---- traffic ---------------------------------------------------------------- */

static zrt__comm_bytes bytes_minus(zrt__comm_bytes a, zrt__comm_bytes b)
{
    return (zrt__comm_bytes){a.same_host - b.same_host, a.other_host - b.other_host};
}

static zrt__comm_bytes bytes_plus(zrt__comm_bytes a, zrt__comm_bytes b)
{
    return (zrt__comm_bytes){a.same_host + b.same_host, a.other_host + b.other_host};
}

static void add_traffic(zrt__comm_traffic *sum, const zrt__comm *c)
{
    sum->layers = bytes_plus(sum->layers, c->traffic.layers);
    sum->other = bytes_plus(sum->other, c->traffic.other);
    sum->collectives += c->traffic.collectives;
    sum->other_group += c->traffic.other_group;
}

/* What this rank sent on all its communicators: the world's, with hybrid
 * sharding its shard group's and replica set's, with hpZ its group's, with
 * a pipeline its stage's and its pipeline's (the activations, `other`). */
static zrt__comm_traffic total_traffic(const zrt_ctx *ctx)
{
    zrt__comm_traffic sum = ctx->comm->traffic;
    if (ctx->shard_comm && ctx->shard_comm != ctx->comm)
        add_traffic(&sum, ctx->shard_comm);
    if (ctx->replica_comm)
        add_traffic(&sum, ctx->replica_comm);
    if (ctx->hpz_comm)
        add_traffic(&sum, ctx->hpz_comm);
    if (ctx->pipe_comm)
        add_traffic(&sum, ctx->pipe_comm);
    return sum;
}

void zrt__traffic_step_end(zrt_ctx *ctx)
{
    zrt__comm_traffic total = total_traffic(ctx);
    const zrt__comm_traffic *now = &total, *mark = &ctx->traffic_mark;
    if (ctx->traffic_nsteps < ZRT__TRAFFIC_STEPS)
        ctx->traffic_steps[ctx->traffic_nsteps++] =
            (zrt__comm_traffic){.layers = bytes_minus(now->layers, mark->layers),
                                .other = bytes_minus(now->other, mark->other),
                                .collectives = now->collectives - mark->collectives};
    ctx->traffic_mark = *now;
}

static void write_bytes(FILE *f, const char *key, zrt__comm_bytes b)
{
    fprintf(f, "\"%s\": {\"same_host\": %llu, \"other_host\": %llu}", key,
            (unsigned long long)b.same_host, (unsigned long long)b.other_host);
}

static void write_traffic(FILE *f, const zrt__comm_traffic *t)
{
    write_bytes(f, "layers", t->layers);
    fprintf(f, ", ");
    write_bytes(f, "other", t->other);
    fprintf(f, ", \"collectives\": %llu", (unsigned long long)t->collectives);
}

/* Blocks of psi/N this rank sends to peer p in one collective: flat, one to
 * every peer; hierarchical (groups of R consecutive ranks), its G blocks to
 * each member of its group, then one partial to the rank of its own local
 * index in every other group (runtime/comm_mpi.c). Either way N-1 in all. */
static uint64_t blocks_to(const zrt__comm *c, int p)
{
    int R = c->group_size;
    if (!c->hierarchical || R <= 0)
        return 1;
    if (p / R == c->rank / R)
        return (uint64_t)(c->size / R);
    return p % R == c->rank % R;
}

/* Which host rank p is on: hosts of local_size consecutive ranks, as
 * zero-launch and mpirun's ppr mapping place them. */
static int host_of(const zrt__comm *c, int p)
{
    return p / (c->local_size > 0 ? c->local_size : 1);
}

/* Adds bytes sent to world rank p to the same- or other-host side. */
static void add_to(const zrt__comm *c, zrt__comm_bytes *b, int p, uint64_t bytes)
{
    if (host_of(c, p) == host_of(c, c->rank))
        b->same_host += bytes;
    else
        b->other_host += bytes;
}

/* Plain ZeRO over the world: `total` (zrt_fit_cost_of's) split by host
 * with the routing (blocks_to). With hpZ (zero_hpz_partition_size P) the
 * backward's gather runs within each group of P consecutive ranks: psi
 * (P-1)/P to the group instead of psi (N-1)/N to every rank, so with P the
 * ranks per host L the bytes to other hosts are 2 psi (N-L)/N, not 3. */
static zrt__comm_bytes world_theory(const zrt_ctx *ctx, uint64_t total)
{
    const zrt__comm *c = ctx->comm;
    int P = ctx->hpz_comm ? ctx->hpz_comm->size : 1;
    uint64_t peers = (uint64_t)(c->size - 1);
    /* hpZ: psi (P-1)/P of it is the backward's gathers, to the group */
    uint64_t group =
        P > 1 ? (uint64_t)(ctx->plan.total_flat_numel / P * (P - 1)) * ctx->esize : 0;
    uint64_t per_block = peers ? (total - group) / peers : 0;
    zrt__comm_bytes b = {0, 0};
    for (int p = 0; p < c->size; p++) {
        if (p == c->rank)
            continue;
        add_to(c, &b, p, per_block * blocks_to(c, p));
        if (P > 1 && p / P == c->rank / P)
            add_to(c, &b, p, group / (uint64_t)(P - 1));
    }
    return b;
}

/* Hybrid sharding's all-reduce across the G replicas, per replica peer and
 * step: each layer's reduced range (stage 0 the whole flat buffer, stages
 * 1-3 its shard) padded to a multiple of G, 2/G of it to each peer
 * (engine.c reduce_across_replicas, comm_mpi.c host_all_reduce). */
static uint64_t to_each_replica(const zrt_ctx *ctx)
{
    int64_t G = ctx->replica_comm->size, blocks = 0;
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        const zrt__layer_plan *lp = &ctx->plan.layers[l];
        int64_t range = ctx->cfg.stage == 0 ? lp->flat_numel : lp->shard_numel;
        blocks += (range + G - 1) / G;
    }
    return 2 * (uint64_t)blocks * ctx->esize;
}

/* Hybrid sharding (shard groups of S consecutive ranks, G = N/S replicas):
 * `group` (zrt_fit_cost_of over S ranks: 2 or 3 psi (S-1)/S, flat) in
 * equal parts to the S-1 members of this rank's group, m psi/S each, and
 * the replicas' all-reduce, 2 range/G to each of the G-1 ranks k, S+k, ...
 * holding the same shard. A pipeline's stage (D consecutive ranks, no
 * replicas) is such a group with nothing to the replicas. */
static zrt__comm_bytes hybrid_theory(const zrt_ctx *ctx, uint64_t group)
{
    const zrt__comm *c = ctx->comm;
    int S = ctx->shard_comm->size;
    uint64_t to_member = S > 1 ? group / (uint64_t)(S - 1) : 0;
    uint64_t to_replica = ctx->replica_comm ? to_each_replica(ctx) : 0;
    zrt__comm_bytes b = {0, 0};
    for (int p = 0; p < c->size; p++) {
        if (p != c->rank && p / S == c->rank / S)
            add_to(c, &b, p, to_member);
        else if (p != c->rank && p % S == c->rank % S)
            add_to(c, &b, p, to_replica);
    }
    return b;
}

/* qwZ (zero_quantized_weights): stage 3's two gathers send each layer's
 * shard quantized (zrt__qwz_bytes, a whole number of f32 elements) to the
 * S-1 members instead of its f32 shard; the reduce-scatter is unchanged. */
static uint64_t qwz_theory(const zrt_ctx *ctx, uint64_t total)
{
    int64_t S = ctx->shard_comm->size, block = ctx->cfg.zero_quantized_block_size;
    uint64_t f32 = 0, quantized = 0;
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        int64_t shard = ctx->plan.layers[l].shard_numel;
        f32 += 2 * (uint64_t)(S - 1) * (uint64_t)shard * ctx->esize;
        quantized += 2 * (uint64_t)(S - 1) * (uint64_t)zrt__qwz_bytes(shard, block);
    }
    return total - f32 + quantized;
}

/* qgZ (zero_quantized_gradients): each layer's reduction sends its rank
 * blocks (flat / S elements) quantized (zrt__quant_part_bytes) to the S-1
 * members instead of in f32; stage 0's all-reduce gathers the reduced
 * blocks in f32 as before. */
static uint64_t qgz_theory(const zrt_ctx *ctx, uint64_t total)
{
    int64_t S = ctx->shard_comm->size;
    zrt__quant q = {ctx->cfg.zero_quantized_gradient_bits,
                    (size_t)ctx->cfg.zero_quantized_block_size};
    uint64_t f32 = 0, quantized = 0;
    for (int l = 0; l < ctx->plan.nlayers; l++) {
        int64_t block = ctx->plan.layers[l].flat_numel / S;
        f32 += (uint64_t)(S - 1) * (uint64_t)block * ctx->esize;
        quantized += (uint64_t)(S - 1) * zrt__quant_part_bytes((size_t)block, q);
    }
    return total - f32 + quantized;
}

/* Top-k (gradient_topk_ratio, stages 0-1): each layer's reduction (the
 * all-reduce's 2 psi (N-1)/N, or the reduce-scatter's psi (N-1)/N at stage
 * 1, whose parameter all-gather stays) becomes an all-gather of 2k f32
 * slots, 8k bytes to each of the N-1 peers as the mpi communicator counts
 * a flat all-gather (hierarchical: the same blocks, routed as blocks_to
 * says). */
static uint64_t topk_theory(const zrt_ctx *ctx, uint64_t total)
{
    uint64_t N = (uint64_t)ctx->shard_comm->size, pairs = 0;
    uint64_t psi = (uint64_t)ctx->plan.total_flat_numel;
    for (int l = 0; l < ctx->plan.nlayers; l++)
        pairs += (uint64_t)zrt__topk_count(ctx->plan.layers[l].flat_numel,
                                           ctx->cfg.gradient_topk_ratio);
    uint64_t reduction = psi / N * (N - 1) * ctx->esize * (ctx->cfg.stage == 0 ? 2 : 1);
    return total - reduction + (N - 1) * 8 * pairs;
}

/* The ZeRO paper's volume per rank and step (2 psi at stages 0-2: an
 * all-reduce, or a reduce-scatter and an all-gather; 3 psi at stage 3: the
 * forward and backward all-gathers and the reduce-scatter), each collective
 * sending (S-1)/S of psi over the S ranks that shard it (the world's N, or
 * with hybrid sharding the shard group's): psi is the padded elements
 * (every layer a multiple of S) in bytes of the parameter dtype,
 * zrt_fit_cost_of's formula, plus hybrid sharding's replica all-reduce. It
 * is what `layers` holds per step with one micro-step, and at stage 3 with
 * no layer kept gathered between its forward and backward (persistence
 * threshold and prefetch bucket 0). "hybrid_shard_size" is S: N without
 * hybrid sharding. */
static void write_theory(FILE *f, zrt_ctx *ctx)
{
    int S = ctx->shard_comm->size, P = ctx->hpz_comm ? ctx->hpz_comm->size : 1;
    zrt_fit_cost cost = {0};
    zrt_config cfg = ctx->cfg;
    zrt_fit_cost_of(&cfg, ctx->plan.total_flat_numel, (int)ctx->esize, S, &cost);
    uint64_t total = (uint64_t)cost.comm_bytes;
    if (ctx->cfg.zero_quantized_weights)
        total = qwz_theory(ctx, total);
    if (ctx->cfg.zero_quantized_gradients && S > 1)
        total = qgz_theory(ctx, total);
    if (ctx->cfg.gradient_topk_ratio > 0.0f && ctx->cfg.stage < 2)
        total = topk_theory(ctx, total);
    zrt__comm_bytes b = ctx->shard_comm != ctx->comm ? hybrid_theory(ctx, total)
                                                     : world_theory(ctx, total);
    fprintf(f,
            "    \"theory\": {\"psi_elements\": %lld, \"bytes_per_element\": %zu, "
            "\"psi_multiple\": %d, \"hpz_partition_size\": %d, "
            "\"hybrid_shard_size\": %d, \"qwz_block_size\": %d, "
            "\"qgz_bits\": %d, \"qgz_block_size\": %d, \"topk_ratio\": %g, "
            "\"bytes_per_step\": %llu, ",
            (long long)ctx->plan.total_flat_numel, ctx->esize,
            ctx->cfg.stage == 3 ? 3 : 2, P, S,
            ctx->cfg.zero_quantized_weights ? ctx->cfg.zero_quantized_block_size : 0,
            ctx->cfg.zero_quantized_gradients ? ctx->cfg.zero_quantized_gradient_bits : 0,
            ctx->cfg.zero_quantized_gradients ? ctx->cfg.zero_quantized_block_size : 0,
            (double)ctx->cfg.gradient_topk_ratio,
            (unsigned long long)(b.same_host + b.other_host));
    write_bytes(f, "layers", b);
    fprintf(f, "},\n");
}

static void write_comm(FILE *f, zrt_ctx *ctx)
{
    const zrt__comm *c = ctx->comm;
    fprintf(f,
            "  \"comm\": {\"communicator\": \"%s\", \"local_size\": %d, "
            "\"hierarchical\": %d, \"group_size\": %d, \"model\": \"%s\",\n",
            c->ops->name, c->local_size, c->hierarchical, c->group_size,
            "bytes sent: reductions and hierarchical collectives as sent, flat "
            "all-gather and broadcast as the direct ideal ((N-1)/N of the buffer per "
            "rank)");
    write_theory(f, ctx);
    fprintf(f, "    \"steps\": [");
    for (int i = 0; i < ctx->traffic_nsteps; i++) {
        fprintf(f, "%s{\"step\": %d, ", i ? ",\n              " : "", i + 1);
        write_traffic(f, &ctx->traffic_steps[i]);
        fprintf(f, "}");
    }
    fprintf(f, "],\n    \"total\": {");
    zrt__comm_traffic total = total_traffic(ctx);
    write_traffic(f, &total);
    fprintf(f, "}\n  },\n");
}

static void write_json(zrt_ctx *ctx, FILE *f)
{
    const zrt__mem_account *a = &ctx->acct;
    fprintf(f, "{\n  \"rank\": %d,\n  \"world_size\": %d,\n  \"stage\": %d,\n",
            ctx->comm->rank, ctx->comm->size, ctx->cfg.stage);
    zrt_pipe_grid grid;
    zrt_get_pipe_grid(ctx, &grid);
    fprintf(f,
            "  \"pipeline_stages\": %d,\n  \"pipeline_stage\": %d,\n"
            "  \"data_parallel_size\": %d,\n",
            grid.stages, grid.stage, grid.data_size);
    fprintf(f, "  \"steps\": %ld,\n", ctx->step);
    fprintf(f, "  \"param_count\": %lld,\n  \"padded_param_count\": %lld,\n",
            (long long)ctx->plan.total_numel, (long long)ctx->plan.total_flat_numel);
    fprintf(f, "  \"largest_layer_elements\": %lld,\n",
            (long long)ctx->plan.max_flat_numel);
    fprintf(f,
            "  \"bytes_per_param_element\": {\"param\": %zu, \"grad\": %zu, "
            "\"master\": %d, \"optim\": 8},\n",
            ctx->esize, ctx->esize,
            zrt__mixed(ctx) ? (zrt__nvme_configured(ctx) ? 8 : 4) : 0);
    write_plan(f, ctx);
    write_timeline(f, a);
    if (ctx->finalized)
        write_comm(f, ctx);
    fprintf(f, "  \"tiers\": {\n");
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        write_tier(f, a, t);
    fprintf(f, "  }\n}\n");
}

static zrt_status write_atomically(zrt_ctx *ctx, const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return zrt__fail(&ctx->err, ZRT_ERR_IO, "cannot create '%s': %s", tmp,
                         strerror(errno));
    write_json(ctx, f);
    int failed = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
    int saved = errno;
    failed |= fclose(f) != 0;
    if (failed || rename(tmp, path) != 0) {
        saved = failed ? saved : errno;
        unlink(tmp);
        return zrt__fail(&ctx->err, ZRT_ERR_IO, "cannot write '%s': %s", path,
                         strerror(saved));
    }
    return ZRT_OK;
}

zrt_status zrt_write_mem_report(zrt_ctx *ctx, const char *path)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!path || !*path)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_write_mem_report: empty path");
    char expanded[4096];
    ZRT_CHECK(expand_rank(ctx, path, expanded, sizeof expanded));
    return write_atomically(ctx, expanded);
}
