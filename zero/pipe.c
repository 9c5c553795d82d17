/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/pipe.c — pipeline parallelism (issue 20): the grid, one pass of the
 * pipeline and the activations' point-to-point traffic.
 *
 * With pipeline_stages P > 1, zero/context.c splits the world of N ranks
 * into P stages of D = N / P consecutive ranks (shard_comm, where ZeRO runs)
 * and D pipelines of P ranks of equal data-parallel rank d (pipe_comm,
 * ranked by stage). A pass walks this stage's schedule (runtime/pipe.c):
 *
 *   zrt_pipe_begin(kind, M)       the schedule, M micro-batches
 *   zrt_pipe_next -> op           forward or backward of micro-batch m
 *     zrt_pipe_recv               forward: from stage s-1 (tag 0);
 *                                 backward: from stage s+1 (tag 1)
 *     zrt_pipe_send               forward: to s+1 (tag 0); backward: to
 *                                 s-1 (tag 1); non-blocking
 *   ... until zrt_pipe_next says done
 *
 * A send's buffer is the loop's activation slot m % slots, so the send of
 * micro-batch m is completed before zrt_pipe_next hands out an op of m +
 * slots (the slot's next use), and every send before the pass ends. Sends
 * are kept per (pass, micro-batch). zrt_pipe_send_to / zrt_pipe_recv_from
 * are blocking transfers outside that path, on comm tags 2 + tag.
 *
 * Time blocked in receives and in completing sends is the pass's idle time:
 * the bubble, measured. Training passes (GPipe, 1F1B) add theirs to the
 * statistics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ctx.h"

enum { TAG_FORWARD = 0, TAG_BACKWARD = 1, TAG_USER = 2 };

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int kind_known(zrt_pipe_kind kind)
{
    return kind == ZRT_PIPE_GPIPE || kind == ZRT_PIPE_1F1B ||
           kind == ZRT_PIPE_FORWARD_ONLY;
}

static const char *pass_name(zrt_pipe_pass pass)
{
    return pass == ZRT_PIPE_FORWARD ? "forward" : "backward";
}

zrt_status zrt_get_pipe_grid(const zrt_ctx *ctx, zrt_pipe_grid *out)
{
    if (!ctx || !out)
        return ZRT_ERR_INVALID_ARG;
    zrt__comm *p = ctx->pipe_comm, *w = ctx->comm;
    if (!p) {
        *out = (zrt_pipe_grid){
            .stages = 1, .stage = 0, .data_size = w->size, .data_rank = w->rank};
        return ZRT_OK;
    }
    *out = (zrt_pipe_grid){.stages = p->size,
                           .stage = p->rank,
                           .data_size = ctx->shard_comm->size,
                           .data_rank = ctx->shard_comm->rank};
    return ZRT_OK;
}

static int slots_of(const zrt_ctx *ctx, zrt_pipe_kind kind, int micro_batches)
{
    if (!ctx->pipe_comm || kind == ZRT_PIPE_FORWARD_ONLY)
        return 1;
    if (kind == ZRT_PIPE_GPIPE)
        return micro_batches;
    int left = ctx->pipe_comm->size - ctx->pipe_comm->rank;
    return left < micro_batches ? left : micro_batches;
}

zrt_status zrt_pipe_slots(const zrt_ctx *ctx, zrt_pipe_kind kind, int micro_batches,
                          int *slots)
{
    if (!ctx || !slots || !kind_known(kind) || micro_batches < 1)
        return ZRT_ERR_INVALID_ARG;
    *slots = slots_of(ctx, kind, micro_batches);
    return ZRT_OK;
}

zrt_status zrt_get_pipe_stats(const zrt_ctx *ctx, zrt_pipe_stats *out)
{
    if (!ctx || !out)
        return ZRT_ERR_INVALID_ARG;
    *out = ctx->pipe.stats;
    return ZRT_OK;
}

/* ---- a pass ----------------------------------------------------------- */

static zrt_status check_begin(zrt_ctx *ctx, zrt_pipe_kind kind, int micro_batches)
{
    ZRT_CHECK(zrt__require_finalized(ctx, "zrt_pipe_begin"));
    if (!kind_known(kind) || micro_batches < 1)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_pipe_begin: kind %d with %d micro-batches; the kind must "
                         "be ZRT_PIPE_GPIPE, ZRT_PIPE_1F1B or ZRT_PIPE_FORWARD_ONLY and "
                         "micro-batches 1 or more",
                         (int)kind, micro_batches);
    if (ctx->pipe.running)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "zrt_pipe_begin: a pass of %d micro-batches is still running; "
                         "call zrt_pipe_next until it reports done",
                         ctx->pipe.micro_batches);
    int steps = ctx->cfg.gradient_accumulation_steps;
    if (kind != ZRT_PIPE_FORWARD_ONLY && micro_batches != steps)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_pipe_begin: a training pass of %d micro-batches needs "
                         "'gradient_accumulation_steps' %d to equal it (each backward "
                         "is a micro-step of the optimizer step)",
                         micro_batches, steps);
    return ZRT_OK;
}

/* The stage's ops: zrt_pipe_schedule's; without a pipeline forward m,
 * backward m in turn (1F1B on one stage) or the forwards alone. */
static zrt_status make_schedule(zrt_ctx *ctx, zrt_pipe_kind kind, int M)
{
    zrt__pipe *p = &ctx->pipe;
    int P = ctx->pipe_comm ? ctx->pipe_comm->size : 1;
    int s = ctx->pipe_comm ? ctx->pipe_comm->rank : 0;
    zrt_pipe_kind order = P == 1 && kind == ZRT_PIPE_GPIPE ? ZRT_PIPE_1F1B : kind;
    size_t capacity = 2 * (size_t)M;
    p->ops = malloc(capacity * sizeof *p->ops);
    p->sends = calloc(capacity, sizeof *p->sends);
    if (!p->ops || !p->sends)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                         "zrt_pipe_begin: cannot allocate the schedule of %d "
                         "micro-batches",
                         M);
    char why[256];
    if (zrt_pipe_schedule(order, P, s, M, p->ops, capacity, &p->count, why, sizeof why))
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_pipe_begin: %s", why);
    return ZRT_OK;
}

static void free_schedule(zrt__pipe *p)
{
    free(p->ops);
    free(p->sends);
    p->ops = NULL;
    p->sends = NULL;
}

zrt_status zrt_pipe_begin(zrt_ctx *ctx, zrt_pipe_kind kind, int micro_batches)
{
    ZRT_CHECK(check_begin(ctx, kind, micro_batches));
    zrt__pipe *p = &ctx->pipe;
    zrt_status st = make_schedule(ctx, kind, micro_batches);
    if (st != ZRT_OK) {
        free_schedule(p);
        return st;
    }
    p->kind = kind;
    p->micro_batches = micro_batches;
    p->slots = slots_of(ctx, kind, micro_batches);
    p->next = 0;
    p->idle = 0.0;
    p->started = now_seconds();
    p->running = 1;
    return ZRT_OK;
}

/* Blocks on a request of pipe_comm, counting the time as idle. */
static zrt_status wait_idle(zrt_ctx *ctx, zrt__comm_req *req)
{
    double start = now_seconds();
    zrt_status st = zrt__comm_wait_in(ctx, ctx->pipe_comm, req);
    if (ctx->pipe.running)
        ctx->pipe.idle += now_seconds() - start;
    return st;
}

/* Completes this rank's sends of micro-batch m, both passes. */
static zrt_status complete_sends(zrt_ctx *ctx, int m)
{
    zrt__pipe *p = &ctx->pipe;
    zrt_status st = ZRT_OK;
    for (int pass = 0; pass < 2; pass++) {
        zrt__comm_req **req = &p->sends[pass * p->micro_batches + m];
        if (!*req)
            continue;
        zrt_status one = wait_idle(ctx, *req);
        *req = NULL;
        st = st == ZRT_OK ? one : st;
    }
    return st;
}

/* The last op was handed out: every send completes, the pass ends. */
static zrt_status end_pass(zrt_ctx *ctx)
{
    zrt__pipe *p = &ctx->pipe;
    zrt_status st = ZRT_OK;
    for (int m = 0; m < p->micro_batches; m++) {
        zrt_status one = complete_sends(ctx, m);
        st = st == ZRT_OK ? one : st;
    }
    if (p->kind != ZRT_PIPE_FORWARD_ONLY) {
        p->stats.pass_seconds += now_seconds() - p->started;
        p->stats.idle_seconds += p->idle;
        p->stats.passes++;
    }
    p->running = 0;
    free_schedule(p);
    return st;
}

zrt_status zrt_pipe_next(zrt_ctx *ctx, zrt_pipe_op *op, int *done)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!op || !done)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_pipe_next: op and done must not be NULL");
    zrt__pipe *p = &ctx->pipe;
    if (!p->running)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "zrt_pipe_next: no pass is running; call zrt_pipe_begin first");
    if (p->next == p->count) {
        *done = 1;
        return end_pass(ctx);
    }
    zrt_pipe_op next = p->ops[p->next];
    if (next.micro >= p->slots)
        ZRT_CHECK(complete_sends(ctx, next.micro - p->slots));
    p->op = next;
    p->next++;
    p->op_received = p->op_sent = 0;
    *op = next;
    *done = 0;
    return ZRT_OK;
}

/* ---- the activations' path -------------------------------------------- */

/* The stage the current op exchanges with (`input`: receives from), or -1
 * where there is none: forward from s-1 to s+1, backward from s+1 to s-1. */
static int neighbour(const zrt_ctx *ctx, int input)
{
    int P = ctx->pipe_comm ? ctx->pipe_comm->size : 1;
    int s = ctx->pipe_comm ? ctx->pipe_comm->rank : 0;
    int step = ctx->pipe.op.pass == ZRT_PIPE_FORWARD ? 1 : -1;
    int peer = input ? s - step : s + step;
    return peer >= 0 && peer < P ? peer : -1;
}

/* Names the stage for a refusal: first, last, or its number. */
static const char *stage_name(const zrt_ctx *ctx, char *buf, size_t size)
{
    int P = ctx->pipe_comm ? ctx->pipe_comm->size : 1;
    int s = ctx->pipe_comm ? ctx->pipe_comm->rank : 0;
    if (P == 1)
        snprintf(buf, size, "the only stage (no pipeline)");
    else
        snprintf(buf, size, "%s stage (%d of 0..%d)",
                 s == 0       ? "the first"
                 : s == P - 1 ? "the last"
                              : "a middle",
                 s, P - 1);
    return buf;
}

/* Refuses, with a sentence, a receive (input) or send the current op
 * cannot make; *peer becomes the stage it exchanges with. */
static zrt_status check_path(zrt_ctx *ctx, const char *call, int input, int *peer)
{
    zrt__pipe *p = &ctx->pipe;
    if (!p->running || p->next == 0)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "%s: no op is current; call zrt_pipe_begin and zrt_pipe_next "
                         "first",
                         call);
    char where[64];
    *peer = neighbour(ctx, input);
    if (*peer < 0)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "%s: %s of micro-batch %d on %s has %s another stage", call,
                         pass_name(p->op.pass), p->op.micro,
                         stage_name(ctx, where, sizeof where),
                         input ? "no input from" : "no output to");
    if (input ? p->op_received : p->op_sent)
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "%s: %s of micro-batch %d has %s already", call,
                         pass_name(p->op.pass), p->op.micro,
                         input ? "received its input" : "sent its output");
    return ZRT_OK;
}

zrt_status zrt_pipe_recv(zrt_ctx *ctx, void *buf, size_t bytes)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!buf && bytes)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_pipe_recv: buf is NULL");
    int peer;
    ZRT_CHECK(check_path(ctx, "zrt_pipe_recv", 1, &peer));
    int tag = ctx->pipe.op.pass == ZRT_PIPE_FORWARD ? TAG_FORWARD : TAG_BACKWARD;
    zrt__comm *c = ctx->pipe_comm;
    zrt__comm_req *req;
    ZRT_CHECK(c->ops->recv(c, buf, bytes, peer, tag, &req));
    ctx->pipe.op_received = 1;
    return wait_idle(ctx, req);
}

zrt_status zrt_pipe_send(zrt_ctx *ctx, const void *buf, size_t bytes)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!buf && bytes)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_pipe_send: buf is NULL");
    int peer;
    ZRT_CHECK(check_path(ctx, "zrt_pipe_send", 0, &peer));
    zrt__pipe *p = &ctx->pipe;
    int tag = p->op.pass == ZRT_PIPE_FORWARD ? TAG_FORWARD : TAG_BACKWARD;
    zrt__comm *c = ctx->pipe_comm;
    ZRT_CHECK(c->ops->send(c, buf, bytes, peer, tag,
                           &p->sends[(int)p->op.pass * p->micro_batches + p->op.micro]));
    p->op_sent = 1;
    return ZRT_OK;
}

/* ---- transfers outside the path ---------------------------------------- */

static zrt_status check_peer(zrt_ctx *ctx, const char *call, int stage, int tag,
                             const void *buf, size_t bytes)
{
    int P = ctx->pipe_comm ? ctx->pipe_comm->size : 1;
    int s = ctx->pipe_comm ? ctx->pipe_comm->rank : 0;
    if (!buf && bytes)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "%s: buf is NULL", call);
    if (tag < 0 || tag > ZRT_PIPE_TAG_MAX)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "%s: tag %d is outside 0..%d (ZRT_PIPE_TAG_MAX)", call, tag,
                         ZRT_PIPE_TAG_MAX);
    if (stage < 0 || stage >= P || stage == s)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "%s: stage %d is not another stage of the pipeline (stages "
                         "0..%d, this rank's is %d)",
                         call, stage, P - 1, s);
    return ZRT_OK;
}

zrt_status zrt_pipe_send_to(zrt_ctx *ctx, int stage, int tag, const void *buf,
                            size_t bytes)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    ZRT_CHECK(check_peer(ctx, "zrt_pipe_send_to", stage, tag, buf, bytes));
    zrt__comm *c = ctx->pipe_comm;
    zrt__comm_req *req;
    ZRT_CHECK(c->ops->send(c, buf, bytes, stage, TAG_USER + tag, &req));
    return wait_idle(ctx, req);
}

zrt_status zrt_pipe_recv_from(zrt_ctx *ctx, int stage, int tag, void *buf, size_t bytes)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    ZRT_CHECK(check_peer(ctx, "zrt_pipe_recv_from", stage, tag, buf, bytes));
    zrt__comm *c = ctx->pipe_comm;
    zrt__comm_req *req;
    ZRT_CHECK(c->ops->recv(c, buf, bytes, stage, TAG_USER + tag, &req));
    return wait_idle(ctx, req);
}

void zrt__pipe_release(zrt_ctx *ctx)
{
    zrt__pipe *p = &ctx->pipe;
    if (p->running && p->sends)
        for (int m = 0; m < p->micro_batches; m++)
            (void)complete_sends(ctx, m);
    p->running = 0;
    free_schedule(p);
}
