/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/bench_stages.c — step time of ZeRO stages 1-3 against stage 0, in one
 * run, on the same model and the same ranks.
 *
 *   mpirun -np N bench_stages [--layers L] [--width W] [--steps K]
 *
 * The model is L layers of one W x W weight each. Each layer's "compute" is
 * a fixed number of passes over its weights (forward: one read; backward:
 * grad += f(w)), standing in for a training loop's arithmetic so that there
 * is something for communication to overlap with. Each stage gets a fresh
 * context, 2 warm-up steps, then K timed steps; the time is the slowest
 * rank's. Rank 0 prints one table row per stage with the ratio to stage 0
 * and the device peak bytes.
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_args.h"
#include "zrt/zrt.h"

typedef struct bench_opts {
    int layers, width, steps;
} bench_opts;

#define TRY(expr)                                                                        \
    do {                                                                                 \
        zrt_status st_ = (expr);                                                         \
        if (st_ != ZRT_OK) {                                                             \
            fprintf(stderr, "%s failed: %s\n", #expr, zrt_last_error(ctx));              \
            return -1;                                                                   \
        }                                                                                \
    } while (0)

static float layer_forward(const float *w, size_t n)
{
    float acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += w[i] * 0.5f;
    return acc;
}

static void layer_backward(const float *w, float *g, size_t n, int rank)
{
    for (size_t i = 0; i < n; i++)
        g[i] += w[i] * (0.001f * (float)(rank + 1)) + 1e-4f;
}

static int run_step(zrt_ctx *ctx, const zrt_param *p, const bench_opts *o, int rank,
                    float *sink)
{
    size_t n = (size_t)o->width * o->width;
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    TRY(zrt_zero_grad(ctx));
    for (int l = 0; l < o->layers; l++) {
        void *w;
        TRY(zrt_forward_begin(ctx, l));
        TRY(zrt_param_data(ctx, p[l], &w));
        *sink += layer_forward(w, n);
        TRY(zrt_forward_end(ctx, l));
    }
    for (int l = o->layers - 1; l >= 0; l--) {
        void *w, *g;
        TRY(zrt_backward_begin(ctx, l));
        TRY(zrt_param_data(ctx, p[l], &w));
        TRY(zrt_grad_data(ctx, p[l], &g));
        layer_backward(w, g, n, rank);
        TRY(zrt_backward_end(ctx, l));
    }
    TRY(zrt_step(ctx, &hp));
    return 0;
}

static int setup(zrt_ctx *ctx, zrt_param *p, const bench_opts *o)
{
    size_t n = (size_t)o->width * o->width;
    float *init = malloc(n * sizeof *init);
    if (!init)
        return -1;
    for (size_t i = 0; i < n; i++)
        init[i] = (float)sin((double)i) * 0.02f;
    for (int l = 0; l < o->layers; l++) {
        char name[32];
        snprintf(name, sizeof name, "layer%d.weight", l);
        zrt_param_desc d = {.name = name,
                            .ndim = 2,
                            .shape = {o->width, o->width},
                            .dtype = ZRT_F32,
                            .layer = l};
        TRY(zrt_param_register(ctx, &d, &p[l]));
    }
    TRY(zrt_finalize_params(ctx));
    for (int l = 0; l < o->layers; l++)
        TRY(zrt_param_write(ctx, p[l], init));
    free(init);
    return 0;
}

/* Seconds per step (slowest rank) and this rank's device peak. */
static int time_stage(int stage, const bench_opts *o, double *sec_per_step,
                      long long *peak)
{
    zrt_config cfg;
    zrt_config_init(&cfg);
    cfg.stage = stage;
    cfg.log_level = 0;
    /* One layer ahead, and gradients reduced one layer behind. */
    cfg.stage3_prefetch_bucket_size = (int64_t)o->width * o->width;
    cfg.reduce_bucket_size = (int64_t)o->width * o->width;
    cfg.stage3_param_persistence_threshold = 0;
    zrt_ctx *ctx = NULL;
    if (zrt_ctx_create(&cfg, &ctx) != ZRT_OK)
        return -1;
    int rank;
    zrt_rank(ctx, &rank);
    zrt_param *p = calloc((size_t)o->layers, sizeof *p);
    float sink = 0;
    if (!p || setup(ctx, p, o))
        return -1;
    for (int s = 0; s < 2; s++)
        if (run_step(ctx, p, o, rank, &sink))
            return -1;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int s = 0; s < o->steps; s++)
        if (run_step(ctx, p, o, rank, &sink))
            return -1;
    double mine = (MPI_Wtime() - t0) / o->steps, slowest = 0;
    MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    zrt_mem_stats ms;
    zrt_get_mem_stats(ctx, &ms);
    *peak = (long long)ms.tier_peak[ZRT_TIER_DEVICE];
    *sec_per_step = slowest;
    free(p);
    if (sink == 12345.0f) /* keeps the forward pass from being optimized out */
        printf(" ");
    return zrt_ctx_destroy(ctx) == ZRT_OK ? 0 : -1;
}

static int parse(int argc, char **argv, bench_opts *o)
{
    bench_model_args a = {.layers = 12, .width = 1024, .steps = 10};
    if (bench_parse_model_args(argc, argv, &a))
        return -1;
    *o = (bench_opts){.layers = a.layers, .width = a.width, .steps = a.steps};
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o;
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (parse(argc, argv, &o)) {
        if (rank == 0)
            fprintf(stderr, "usage: bench_stages [--layers L] [--width W] [--steps K]\n");
        MPI_Finalize();
        return 2;
    }
    char host[256] = "?";
    gethostname(host, sizeof host);
    if (rank == 0) {
        printf("bench_stages: %d ranks on %s (%ld cores), %d layers of %dx%d f32 "
               "(%.1f M parameters), %d timed steps\n\n",
               world, host, sysconf(_SC_NPROCESSORS_ONLN), o.layers, o.width, o.width,
               o.layers * (double)o.width * o.width / 1e6, o.steps);
        printf("| stage | ms/step | vs stage 0 | device peak per rank (MiB) |\n");
        printf("|---|---|---|---|\n");
    }
    double base = 0;
    for (int stage = 0; stage <= 3; stage++) {
        double sec = 0;
        long long peak = 0;
        if (time_stage(stage, &o, &sec, &peak)) {
            fprintf(stderr, "rank %d: stage %d failed\n", rank, stage);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        if (stage == 0)
            base = sec;
        if (rank == 0)
            printf("| %d | %.2f | %.2fx | %.1f |\n", stage, sec * 1e3, sec / base,
                   peak / 1048576.0);
    }
    MPI_Finalize();
    return 0;
}
