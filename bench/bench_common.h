/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/bench_common.h — what the benchmarks share: a monotonic clock, the
 * best-and-median timing loop, and the synthetic model's square layers.
 */
#ifndef ZRT_BENCH_COMMON_H
#define ZRT_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "zrt/zrt.h"

enum { BENCH_MAX_REPS = 10000 };
#define BENCH_MIN_TIME 0.25 /* seconds of timed repetitions, at least */

/* Seconds on the monotonic clock. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts n seconds ascending. */
static inline void bench_sort(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
}

typedef struct bench_timing {
    int reps;
    double best, median; /* seconds; median: the upper middle for even reps */
} bench_timing;

/* One warm-up of fn(arg), then repetitions until both `reps` and
 * BENCH_MIN_TIME are reached, at most BENCH_MAX_REPS (scratch holds that
 * many); stops early when *failed (may be NULL) turns nonzero. All zero when
 * no repetition ran. */
static inline bench_timing bench_measure(void (*fn)(void *), void *arg, const int *failed,
                                         int reps, double *scratch)
{
    fn(arg);
    int r = 0;
    double total = 0;
    while (!(failed && *failed) && r < BENCH_MAX_REPS &&
           (r < reps || total < BENCH_MIN_TIME)) {
        double t0 = bench_now();
        fn(arg);
        scratch[r] = bench_now() - t0;
        total += scratch[r++];
    }
    if (!r)
        return (bench_timing){0};
    bench_sort(scratch, r);
    return (bench_timing){.reps = r, .best = scratch[0], .median = scratch[r / 2]};
}

/* Registers `layers` layers of one width x width f32 tensor each ("w0",
 * "w1", ...). */
static inline zrt_status bench_register_layers(zrt_ctx *ctx, int layers, int width)
{
    for (int l = 0; l < layers; l++) {
        char name[32];
        zrt_param p;
        snprintf(name, sizeof name, "w%d", l);
        zrt_param_desc d = {.name = name,
                            .ndim = 2,
                            .shape = {width, width},
                            .dtype = ZRT_F32,
                            .layer = l};
        zrt_status st = zrt_param_register(ctx, &d, &p);
        if (st != ZRT_OK)
            return st;
    }
    return ZRT_OK;
}

#endif
