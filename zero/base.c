/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/base.c — the leaf of zero/: the checks every call starts with, the
 * timed wait on a collective, and logging. It calls nothing else of zero/,
 * so any file may call it without being called back.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "ctx.h"

zrt_status zrt__require_ctx(const zrt_ctx *ctx)
{
    return ctx ? ZRT_OK : ZRT_ERR_INVALID_ARG;
}

zrt_status zrt_log(const zrt_ctx *ctx, int level, const char *fmt, ...)
{
    if (!ctx || !fmt)
        return ZRT_ERR_INVALID_ARG;
    if (level > ctx->cfg.log_level)
        return ZRT_OK;
    char line[ZRT__ERRBUF_SIZE + 256]; /* a last-error sentence with a prefix */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (ctx->log_rank_prefix)
        fprintf(stderr, "[zrt rank %d/%d] %s\n", ctx->comm->rank, ctx->comm->size, line);
    else
        fprintf(stderr, "[zrt] %s\n", line);
    return ZRT_OK;
}

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

zrt_status zrt__comm_wait_in(zrt_ctx *ctx, zrt__comm *c, zrt__comm_req *req)
{
    double start = monotonic_seconds();
    zrt_status st = c->ops->wait(c, req);
    ctx->comm_wait_seconds += monotonic_seconds() - start;
    return st;
}

zrt_status zrt__comm_wait(zrt_ctx *ctx, zrt__comm_req *req)
{
    return zrt__comm_wait_in(ctx, ctx->comm, req);
}

zrt_status zrt__require_finalized(zrt_ctx *ctx, const char *call)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!ctx->finalized)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE, "%s: call zrt_finalize_params first",
                         call);
    return ZRT_OK;
}

zrt_status zrt__require_layer(zrt_ctx *ctx, int layer, const char *call)
{
    ZRT_CHECK(zrt__require_finalized(ctx, call));
    if (layer < 0 || layer >= ctx->plan.nlayers)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "%s: layer %d does not exist (layers 0..%d)", call, layer,
                         ctx->plan.nlayers - 1);
    return ZRT_OK;
}

zrt_status zrt__require_param(zrt_ctx *ctx, zrt_param param, const char *call)
{
    ZRT_CHECK(zrt__require_finalized(ctx, call));
    if (param < 0 || param >= ctx->nparams)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "%s: parameter handle %d is not registered (0..%d)", call,
                         (int)param, ctx->nparams - 1);
    return ZRT_OK;
}

const char *zrt_last_error(const zrt_ctx *ctx)
{
    return ctx ? ctx->err.text : "no context";
}

/* A pipeline's pending sends move while the loop computes: a large send is
 * a rendezvous that MPI advances only inside its calls, so between two
 * zrt_pipe calls the next stage could wait for data that is ready. One test
 * advances every request of the communicator; nothing is completed here
 * (zero/pipe.c completes sends where the slots say). */
zrt_status zrt__pipe_progress(zrt_ctx *ctx)
{
    const zrt__pipe *p = &ctx->pipe;
    if (!p->running || !p->sends || !ctx->pipe_comm)
        return ZRT_OK;
    for (int i = 0; i < 2 * p->micro_batches; i++) {
        int done = 0;
        if (p->sends[i])
            return ctx->pipe_comm->ops->test(ctx->pipe_comm, p->sends[i], &done);
    }
    return ZRT_OK;
}
