/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/bench_offload.c — does the NVMe optimizer step overlap its I/O with
 * its compute?
 *
 *   mpirun -np 1 bench_offload [--layers L] [--width W] [--steps K] [--dir DIR]
 *
 * A model of L layers of one W x W weight, stage 1, one rank. Measured in one
 * run, each the mean of K zrt_step calls after one warm-up:
 *   compute  the step with the moments in host memory (offload "cpu");
 *   io       reading and writing every layer's moments through the same swap
 *            file, with nothing else going on (the swap file's own speed);
 *   nvme     the step with the moments on NVMe (offload "nvme").
 * A pipelined step costs about max(io, compute); an unpipelined one costs
 * io + compute. The program prints all three and both ratios.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_args.h"
#include "bench_common.h"
#include "zero/ctx.h"
#include "zrt/zrt.h"

typedef struct opts {
    int layers, width, steps;
    const char *dir;
} opts;

static zrt_ctx *make_ctx(const opts *o, int device)
{
    zrt_config cfg;
    zrt_config_init(&cfg);
    cfg.stage = 1;
    cfg.log_level = 0;
    cfg.offload_optimizer.device = device;
    snprintf(cfg.offload_optimizer.nvme_path, sizeof cfg.offload_optimizer.nvme_path,
             "%s", o->dir);
    zrt_ctx *ctx;
    if (zrt_ctx_create(&cfg, &ctx) != ZRT_OK)
        return NULL;
    if (bench_register_layers(ctx, o->layers, o->width) != ZRT_OK)
        return NULL;
    if (zrt_finalize_params(ctx) != ZRT_OK) {
        fprintf(stderr, "%s\n", zrt_last_error(ctx));
        return NULL;
    }
    return ctx;
}

/* Mean seconds per zrt_step over o->steps steps, after one warm-up. */
static double time_steps(zrt_ctx *ctx, const opts *o)
{
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    if (zrt_step(ctx, &hp) != ZRT_OK)
        return -1;
    double t0 = MPI_Wtime();
    for (int s = 0; s < o->steps; s++)
        if (zrt_step(ctx, &hp) != ZRT_OK) {
            fprintf(stderr, "%s\n", zrt_last_error(ctx));
            return -1;
        }
    return (MPI_Wtime() - t0) / o->steps;
}

/* The same bytes the nvme step moves, read from the current slot and
 * written to the other one, nothing else. */
static double time_io(zrt_ctx *ctx, const opts *o)
{
    float *buf = ctx->step_staging.ptr;
    int cur = ctx->nvme_slot, next = cur ^ 1;
    double t0 = MPI_Wtime();
    for (int s = 0; s < o->steps; s++) {
        for (int l = 0; l < ctx->plan.nlayers; l++) {
            const zrt__layer_state *ls = &ctx->layers[l];
            size_t bytes = (size_t)ls->range_len * sizeof(float);
            zrt__swap *sw = ctx->optim_nvme.swap;
            float *v = buf + ls->range_len;
            if (zrt__swap_read(sw, ls->swap_m[cur], buf, bytes, &ctx->err) ||
                zrt__swap_read(sw, ls->swap_v[cur], v, bytes, &ctx->err) ||
                zrt__swap_write(sw, ls->swap_m[next], buf, bytes, &ctx->err) ||
                zrt__swap_write(sw, ls->swap_v[next], v, bytes, &ctx->err))
                return -1;
        }
    }
    return (MPI_Wtime() - t0) / o->steps;
}

static int parse(int argc, char **argv, opts *o)
{
    bench_model_args a = {.layers = 16, .width = 1024, .steps = 5, .dir = "/tmp"};
    if (bench_parse_model_args(argc, argv, &a))
        return -1;
    *o = (opts){.layers = a.layers, .width = a.width, .steps = a.steps, .dir = a.dir};
    return 0;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    opts o;
    if (parse(argc, argv, &o)) {
        fprintf(stderr, "usage: bench_offload [--layers L] [--width W] [--steps K] "
                        "[--dir DIR]\n");
        MPI_Finalize();
        return 2;
    }
    zrt_ctx *host = make_ctx(&o, ZRT_OFFLOAD_CPU);
    double compute = host ? time_steps(host, &o) : -1;
    zrt_ctx_destroy(host);
    zrt_ctx *nvme = make_ctx(&o, ZRT_OFFLOAD_NVME);
    double step = nvme ? time_steps(nvme, &o) : -1;
    double io = nvme ? time_io(nvme, &o) : -1;
    zrt_ctx_destroy(nvme);
    if (compute < 0 || step < 0 || io < 0) {
        fprintf(stderr, "bench_offload failed\n");
        MPI_Finalize();
        return 1;
    }
    double mib = 2.0 * 2 * o.layers * (double)o.width * o.width * 4 / 1048576.0;
    double best = io > compute ? io : compute;
    printf("bench_offload: %d layers of %dx%d f32, stage 1, 1 rank, swap files in %s; "
           "%.0f MiB of moments read and written per step\n\n",
           o.layers, o.width, o.width, o.dir, mib / 2);
    printf("| compute (host) ms | io (swap read+write) ms | nvme step ms | "
           "step / max(io, compute) | step / (io + compute) |\n");
    printf("|---|---|---|---|---|\n");
    printf("| %.1f | %.1f | %.1f | %.2f | %.2f |\n", compute * 1e3, io * 1e3, step * 1e3,
           step / best, step / (io + compute));
    MPI_Finalize();
    return 0;
}
