/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/bench_memtrace.c — what the memory timeline and the plan cost.
 *
 *   mpirun -np 1 bench_memtrace [--layers L] [--width W] [--reps K]
 *
 * Measured in one run:
 *   event    one allocation and its free through the cpu backend (a 4 KiB
 *            buffer from its block cache, the engine's common case), with the
 *            timeline recording (the first two steps), with it past its steps
 *            (every later step), and with the account's timeline switched off
 *            entirely (the baseline: what an allocation costs without it);
 *   step     a stage-3 step of L layers of W x W weights on one rank with no
 *            compute in the layers (the engine's own work only, so the
 *            timeline's share is as large as it can be): step 2 of a fresh
 *            context, recorded, against step 2 of one whose timeline is off;
 *   plan     zrt_plan_memory for the same model against zrt_finalize_params.
 * Ratios, not absolute times, are the result: recorded / baseline per event,
 * recorded step / unrecorded step, plan / finalize.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "runtime/backend.h"
#include "zero/ctx.h"
#include "zrt/zrt.h"

enum { EVENT_PAIRS = 2000000, MAX_REPS = 64 };

typedef struct opts {
    int layers, width, reps;
} opts;

static double median(double *v, int n)
{
    bench_sort(v, n);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- per event ------------------------------------------------------------------ */

typedef enum { RECORDING, PAST_ITS_STEPS, TIMELINE_OFF } event_mode;

/* Nanoseconds per alloc + free pair; the timeline restarts whenever it is
 * full, so RECORDING records every event. */
static double ns_per_pair(zrt__backend *be, zrt__mem_account *acct, event_mode mode)
{
    acct->record_off = mode == TIMELINE_OFF;
    acct->phase.step = mode == PAST_ITS_STEPS ? ZRT__TIMELINE_STEPS + 1 : 1;
    zrt__buf b;
    double t0 = bench_now();
    for (int i = 0; i < EVENT_PAIRS; i++) {
        if (acct->nevents + 2 > ZRT__TIMELINE_MAX_EVENTS)
            acct->nevents = 0;
        if (be->ops->alloc(be, 4096, ZRT_TIER_DEVICE, ZRT_CAT_COMM, "bench", &b) !=
            ZRT_OK)
            return -1;
        be->ops->free(be, &b);
    }
    return (bench_now() - t0) * 1e9 / EVENT_PAIRS;
}

static int bench_events(int reps)
{
    zrt__errbuf err = {.rank = -1};
    zrt__mem_account acct;
    zrt__mem_account_init(&acct);
    zrt__backend *be = NULL;
    if (zrt__backend_cpu_create(&acct, &err, NULL, &be) != ZRT_OK) {
        fprintf(stderr, "bench_memtrace: %s\n", err.text);
        return 1;
    }
    double t[3][MAX_REPS];
    for (int r = 0; r < reps; r++)
        for (int m = 0; m < 3; m++)
            t[m][r] = ns_per_pair(be, &acct, (event_mode)m);
    double rec = median(t[RECORDING], reps), past = median(t[PAST_ITS_STEPS], reps);
    double off = median(t[TIMELINE_OFF], reps);
    printf("| alloc + free of 4 KiB (cpu backend, cached block) | ns per pair, median of "
           "%d |\n"
           "|---|---:|\n| timeline off (baseline) | %.1f |\n"
           "| timeline recording (steps 1-2) | %.1f |\n| timeline past its steps (3..) | "
           "%.1f |\n"
           "| **recording / baseline** | **%.2f** |\n| **past its steps / baseline** | "
           "**%.2f** |\n\n",
           reps, off, rec, past, rec / off, past / off);
    be->ops->destroy(be);
    zrt__mem_account_free(&acct);
    return 0;
}

/* ---- per step and the plan ------------------------------------------------------- */

static zrt_ctx *make_ctx(const opts *o, double *finalize_s, double *plan_s)
{
    zrt_config cfg;
    zrt_config_init(&cfg);
    cfg.stage = 3;
    cfg.log_level = 0;
    cfg.stage3_param_persistence_threshold = 0;
    cfg.reduce_bucket_size = 2 * (int64_t)o->width * o->width;
    cfg.stage3_prefetch_bucket_size = 2 * (int64_t)o->width * o->width;
    zrt_ctx *ctx;
    if (zrt_ctx_create(&cfg, &ctx) != ZRT_OK)
        return NULL;
    if (bench_register_layers(ctx, o->layers, o->width) != ZRT_OK)
        return NULL;
    zrt_mem_plan plan;
    double t0 = bench_now();
    zrt_status st = zrt_plan_memory(ctx, &plan);
    double t1 = bench_now();
    if (st == ZRT_OK)
        st = zrt_finalize_params(ctx);
    *plan_s = t1 - t0;
    *finalize_s = bench_now() - t1;
    if (st != ZRT_OK) {
        fprintf(stderr, "bench_memtrace: %s\n", zrt_last_error(ctx));
        return NULL;
    }
    return ctx;
}

/* One step with no compute in the layers. */
static double time_step(zrt_ctx *ctx, int layers)
{
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    double t0 = bench_now();
    for (int l = 0; l < layers; l++)
        if (zrt_forward_begin(ctx, l) != ZRT_OK || zrt_forward_end(ctx, l) != ZRT_OK)
            return -1;
    for (int l = layers - 1; l >= 0; l--)
        if (zrt_backward_begin(ctx, l) != ZRT_OK || zrt_backward_end(ctx, l) != ZRT_OK)
            return -1;
    if (zrt_step(ctx, &hp) != ZRT_OK)
        return -1;
    return bench_now() - t0;
}

/* Step 2 of a fresh context: with the timeline on, it is recorded. */
static double second_step(const opts *o, int timeline_on, double *finalize_s,
                          double *plan_s, int *events)
{
    zrt_ctx *ctx = make_ctx(o, finalize_s, plan_s);
    if (!ctx)
        return -1;
    ctx->acct.record_off = !timeline_on;
    time_step(ctx, o->layers); /* step 1: records the trace, no prefetch */
    int before = ctx->acct.nevents;
    double t = time_step(ctx, o->layers);
    *events = ctx->acct.nevents - before;
    zrt_ctx_destroy(ctx);
    return t;
}

static int bench_steps(const opts *o)
{
    double on[MAX_REPS], off[MAX_REPS], plans[MAX_REPS], finals[MAX_REPS], unused;
    int events = 0, none;
    for (int r = 0; r < o->reps; r++) {
        on[r] = second_step(o, 1, &finals[r], &plans[r], &events);
        off[r] = second_step(o, 0, &unused, &unused, &none);
        if (on[r] < 0 || off[r] < 0)
            return 1;
    }
    double rec = median(on, o->reps), base = median(off, o->reps);
    double plan = median(plans, o->reps), fin = median(finals, o->reps);
    printf(
        "| stage 3, %d layers of %d x %d, 1 rank, no compute | median of %d |\n"
        "|---|---:|\n| events recorded in step 2 | %d |\n"
        "| step 2, timeline recording | %.3f ms |\n| step 2, timeline off | %.3f ms |\n"
        "| **recording / off** | **%.3f** |\n"
        "| zrt_plan_memory | %.3f ms |\n| zrt_finalize_params | %.3f ms |\n"
        "| **plan / finalize** | **%.4f** |\n",
        o->layers, o->width, o->width, o->reps, events, rec * 1e3, base * 1e3, rec / base,
        plan * 1e3, fin * 1e3, plan / fin);
    return 0;
}

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){.layers = 48, .width = 256, .reps = 15};
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--layers") && v > 0)
            o->layers = v;
        else if (!strcmp(argv[i], "--width") && v > 0)
            o->width = v;
        else if (!strcmp(argv[i], "--reps") && v > 0 && v <= MAX_REPS)
            o->reps = v;
        else
            return 1;
    }
    return argc % 2 == 0;
}

int main(int argc, char **argv)
{
    opts o;
    if (parse(argc, argv, &o)) {
        fprintf(stderr,
                "usage: bench_memtrace [--layers L] [--width W] [--reps K (1-%d)]\n",
                MAX_REPS);
        return 2;
    }
    MPI_Init(&argc, &argv);
    int st = bench_events(o.reps) || bench_steps(&o);
    MPI_Finalize();
    return st;
}
