/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/planning.c — a context's two plans: the partition plan of its
 * registered parameters (plan.c lays it out) and the memory plan of its
 * declared step (memplan.c simulates it). The declarations the loop makes
 * for the memory plan live here too. Below params.c (finalize uses both
 * plans), above plan.c and memplan.c, which know no context.
 */
#include <stdlib.h>
#include <string.h>

#include "ctx.h"

enum { PLAN_ALIGNMENT = 16 }; /* elements: 64 bytes of f32 */

zrt_status zrt__build_plan(zrt_ctx *ctx, zrt__plan *out)
{
    int n = ctx->nparams;
    int64_t *numel = malloc(((size_t)n + 1) * sizeof *numel);
    int *layer = malloc(((size_t)n + 1) * sizeof *layer);
    zrt_status st = ZRT_OK;
    if (!numel || !layer)
        st = zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                       "zrt_finalize_params: cannot allocate the plan input");
    for (int i = 0; st == ZRT_OK && i < n; i++) {
        numel[i] = ctx->params[i].numel;
        layer[i] = ctx->params[i].desc.layer;
    }
    if (st == ZRT_OK)
        st = zrt__plan_build(numel, layer, n, ctx->shard_comm->size, PLAN_ALIGNMENT,
                             &ctx->err, out);
    if (st == ZRT_OK)
        out->replicas = ctx->replica_comm ? ctx->replica_comm->size : 1;
    if (st == ZRT_OK) /* checkpoint.c writes_files */
        out->writes_ckpt = ctx->pipe_comm || ctx->comm->rank < out->world;
    free(numel);
    free(layer);
    return st;
}

zrt_status zrt_declare_step(zrt_ctx *ctx, const zrt_layer_call *calls, int count)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (count < 1 || !calls)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_declare_step: %d calls%s; a step has at least one", count,
                         calls ? "" : " (NULL)");
    zrt_layer_call *copy = malloc((size_t)count * sizeof *copy);
    if (!copy)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                         "zrt_declare_step: cannot copy %d calls", count);
    memcpy(copy, calls, (size_t)count * sizeof *copy);
    free(ctx->declared_calls);
    ctx->declared_calls = copy;
    ctx->ndeclared_calls = count;
    return ZRT_OK;
}

zrt_status zrt_declare_buffer(zrt_ctx *ctx, zrt_category category, size_t bytes)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if ((unsigned)category >= ZRT_CAT_COUNT)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_declare_buffer: bad category %d", (int)category);
    ctx->declared_bytes[category] += (int64_t)bytes;
    return ZRT_OK;
}

zrt_status zrt__plan_for(zrt_ctx *ctx, const zrt_config *cfg, const zrt__plan *plan,
                         zrt_mem_plan *out)
{
    ZRT_CHECK(zrt__memplan_run(cfg, plan, ctx->declared_calls, ctx->ndeclared_calls,
                               ctx->declared_bytes, &ctx->err, out));
    out->declared_step = ctx->declared_calls != NULL;
    return ZRT_OK;
}

zrt_status zrt_plan_memory(zrt_ctx *ctx, zrt_mem_plan *out)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!out)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_plan_memory: out is NULL");
    if (ctx->finalized)
        return zrt__plan_for(ctx, &ctx->cfg, &ctx->plan, out);
    if (ctx->cfg.stage == ZRT_STAGE_AUTO)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "zrt_plan_memory: stage is \"auto\", chosen by "
                         "zrt_finalize_params; plan after it, or plan a stage 0-3");
    zrt__plan plan = {0};
    ZRT_CHECK(zrt__build_plan(ctx, &plan));
    zrt_status st = zrt__plan_for(ctx, &ctx->cfg, &plan, out);
    zrt__plan_free(&plan);
    return st;
}
