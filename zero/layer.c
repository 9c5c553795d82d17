/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/layer.c — where one layer's state lives and its optimizer update:
 * the parameter base, the owned parameter and gradient ranges, the reduced
 * gradient, pinning, and one AdamW loop over a layer's segments that serves
 * the f32 and the mixed-precision paths (engine.c's step, nvme.c's swapped
 * sub-groups). It calls nothing of zero/ above it: only the backend.
 */
#include "ctx.h"

void *zrt__param_base(zrt_ctx *ctx, int layer)
{
    return ctx->layers[layer].param_full.ptr;
}

zrt_status zrt__pin_for(zrt_ctx *ctx, zrt__buf *buf, const zrt_offload_config *owner)
{
    if (buf->tier != ZRT_TIER_HOST || !owner->pin_memory || !buf->ptr)
        return ZRT_OK;
    return ctx->be->ops->pin(ctx->be, buf);
}

void *zrt__owned_param(zrt_ctx *ctx, int l)
{
    zrt__layer_state *ls = &ctx->layers[l];
    return ctx->cfg.stage == 3 ? ls->param_shard.ptr
                               : zrt__elem(ctx, ls->param_full.ptr, ls->range_lo);
}

void *zrt__reduced_grad(zrt_ctx *ctx, int l)
{
    zrt__layer_state *ls = &ctx->layers[l];
    return ctx->cfg.stage < 2 ? zrt__elem(ctx, ls->grad_full.ptr, ls->range_lo)
                              : ls->grad_shard.ptr;
}

void *zrt__owned_grad(zrt_ctx *ctx, int l)
{
    zrt__layer_state *ls = &ctx->layers[l];
    return ls->grad_host.ptr ? ls->grad_host.ptr : zrt__reduced_grad(ctx, l);
}

/* One AdamW over a layer's range, segment by segment (each segment is one
 * tensor's part of the range: weight decay or not). f32: p -> p_out with
 * g, m, v. Mixed: the f32 master -> the 16-bit p_out with 16-bit g times
 * grad_scale. Offsets are in elements, whatever the element size. */
typedef struct adamw_operands {
    int mixed;
    const float *p; /* f32: parameters in */
    void *p_out;    /* f32 or 16-bit parameters out */
    const void *g;  /* f32 or 16-bit gradients */
    float *master;  /* mixed: the f32 master copy, updated in place */
    float *m, *v;
    float grad_scale; /* mixed */
} adamw_operands;

static zrt_status adamw_segments(zrt_ctx *ctx, int l, const adamw_operands *op,
                                 const zrt_adamw_scalars *decay,
                                 const zrt_adamw_scalars *no_decay)
{
    const zrt__layer_state *ls = &ctx->layers[l];
    zrt__backend *be = ctx->be;
    for (int i = 0; i < ls->nsegs; i++) {
        const zrt__segment *sg = &ls->segs[i];
        int64_t at = sg->range_offset;
        size_t n = (size_t)sg->count;
        const zrt_adamw_scalars *s =
            ctx->params[sg->tensor].desc.no_weight_decay ? no_decay : decay;
        zrt_status st = op->mixed
                            ? be->ops->adamw_mixed(
                                  be, op->master + at, (uint16_t *)op->p_out + at,
                                  (const uint16_t *)op->g + at, op->m + at, op->v + at, n,
                                  op->grad_scale, s, zrt__half_of(ctx))
                            : be->ops->adamw_f32(be, op->p + at, (float *)op->p_out + at,
                                                 (const float *)op->g + at, op->m + at,
                                                 op->v + at, n, s);
        ZRT_CHECK(st);
    }
    return ZRT_OK;
}

zrt_status zrt__adamw_layer(zrt_ctx *ctx, int l, const float *p, float *p_out,
                            const float *g, float *m, float *v,
                            const zrt_adamw_scalars *decay,
                            const zrt_adamw_scalars *no_decay)
{
    adamw_operands op = {.p = p, .p_out = p_out, .g = g, .m = m, .v = v};
    return adamw_segments(ctx, l, &op, decay, no_decay);
}

zrt_status zrt__adamw_layer_mixed(zrt_ctx *ctx, int l, float *master, uint16_t *p,
                                  const uint16_t *g, float *m, float *v, float grad_scale,
                                  const zrt_adamw_scalars *decay,
                                  const zrt_adamw_scalars *no_decay)
{
    adamw_operands op = {.mixed = 1,
                         .p_out = p,
                         .g = g,
                         .master = master,
                         .m = m,
                         .v = v,
                         .grad_scale = grad_scale};
    return adamw_segments(ctx, l, &op, decay, no_decay);
}
