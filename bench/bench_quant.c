/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/bench_quant.c — how close do the int8 / int4 quantization kernels
 * come to the memory roofline?
 *
 *   bench_quant [--sizes 16M,64M] [--block B] [--reps K]
 *
 * For each size n (f32 elements; suffixes K, M, G are powers of 2), on one
 * thread, in one run:
 *   copy   a[i] = b[i] over n floats (STREAM's copy: 8 B/element);
 *   triad  a[i] = b[i] + s * c[i] over n floats (12 B/element);
 *   the six kernels of kernels.h (quantize, dequantize, dequantize_add; int8
 *   and int4) on every path this CPU has (dispatch first, then the AVX2 and
 *   scalar paths called directly), block B (default 256).
 * Bytes counted per element: every array a kernel touches, once, whether
 * it is read, written or both (STREAM's convention for copy and triad, which
 * touch each array once; no write-allocate), with s = 4 / B the scale bytes:
 *   quantize_i8        4 + 1 + s     dequantize_i8     1 + s + 4
 *   quantize_i4        4 + 0.5 + s   dequantize_i4     0.5 + s + 4
 *   dequantize_add_i8  1 + s + 4     dequantize_add_i4 0.5 + s + 4
 * dequantize_add reads x and writes it back in place: its lines come in once
 * (the read) and the write-back costs no further miss, so one thread streams
 * it at the rate of the other kernels; counting x twice would put it at
 * twice the roofline. The roofline of a kernel is the copy's GB/s: a kernel
 * that moved its bytes at the rate copy moves its own reaches 1.00. Printed:
 * one markdown table, GB/s, Gelem/s (f32 elements in or out) and the
 * fractions of copy and triad.
 * Each figure is the best of at least K repetitions (and at least 0.25 s of
 * them) after one warm-up; the median is printed beside it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_args.h"
#include "bench_common.h"
#include "kernels/cpu/quant_paths.h"

enum { MAX_SIZES = 8 };

typedef struct opts {
    size_t sizes[MAX_SIZES];
    int nsizes;
    size_t block;
    int reps;
} opts;

/* The arrays of one size: x the f32 input, y the f32 output (and the copy
 * and triad arrays), q and scale the quantized form. */
typedef struct arrays {
    size_t n, block;
    float *x, *y, *c, *scale;
    uint8_t *q;
} arrays;

typedef enum kernel { COPY, TRIAD, Q8, D8, DA8, Q4, D4, DA4, KERNELS } kernel;

static const char *const kernel_names[KERNELS] = {"copy",
                                                  "triad",
                                                  "quantize_i8",
                                                  "dequantize_i8",
                                                  "dequantize_add_i8",
                                                  "quantize_i4",
                                                  "dequantize_i4",
                                                  "dequantize_add_i4"};

/* Bytes read plus written per element. */
static double kernel_bytes(kernel k, size_t block)
{
    double s = 4.0 / (double)block;
    static const double base[KERNELS] = {8, 12, 5, 5, 5, 4.5, 4.5, 4.5};

    return base[k] + (k >= Q8 ? s : 0.0);
}

typedef struct bench {
    arrays *a;
    kernel k;
    const zrt_quant_path *p;
} bench;

/* The baselines, compiled for AVX2 and the baseline ISA like bench_adamw's
 * (without its noinline, which clang refuses beside target_clones; the
 * dispatch through the clones keeps them out of line anyway). */
#define BASELINE __attribute__((target_clones("avx2", "default")))

BASELINE static void copy_f32(float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = b[i];
}

BASELINE static void triad_f32(float *a, const float *b, const float *c, size_t n,
                               float s)
{
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] + s * c[i];
}

static void run_kernel(void *arg)
{
    const bench *b = arg;
    arrays *a = b->a;

    switch (b->k) {
    case COPY:
        copy_f32(a->y, a->x, a->n);
        break;
    case TRIAD:
        triad_f32(a->y, a->x, a->c, a->n, 0.5f);
        break;
    case Q8:
        b->p->quant8(a->x, a->n, a->block, (int8_t *)a->q, a->scale);
        break;
    case D8:
        b->p->deq8((const int8_t *)a->q, a->scale, a->n, a->block, a->y);
        break;
    case DA8:
        b->p->deq_add8((const int8_t *)a->q, a->scale, a->n, a->block, a->y);
        break;
    case Q4:
        b->p->quant4(a->x, a->n, a->block, a->q, a->scale);
        break;
    case D4:
        b->p->deq4(a->q, a->scale, a->n, a->block, a->y);
        break;
    case DA4:
        b->p->deq_add4(a->q, a->scale, a->n, a->block, a->y);
        break;
    case KERNELS:
        break;
    }
}

static void free_arrays(arrays *a)
{
    free(a->x);
    free(a->y);
    free(a->c);
    free(a->scale);
    free(a->q);
    memset(a, 0, sizeof *a);
}

static void *alloc64(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

/* Allocates and touches every page, so no page fault is timed. */
static int make_arrays(size_t n, size_t block, arrays *a)
{
    size_t nblocks = (n + block - 1) / block;

    memset(a, 0, sizeof *a);
    a->n = n;
    a->block = block;
    a->x = alloc64(n * 4);
    a->y = alloc64(n * 4);
    a->c = alloc64(n * 4);
    a->scale = alloc64(nblocks * 4);
    a->q = alloc64(n);
    if (!a->x || !a->y || !a->c || !a->scale || !a->q) {
        free_arrays(a);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t h = (uint32_t)i * 2654435761u;

        h ^= h >> 15;
        a->x[i] = (float)(h & 0xffffff) / 8388608.0f - 1.0f;
        a->c[i] = a->y[i] = 0.0f;
    }
    memset(a->q, 0, n);
    memset(a->scale, 0, nblocks * 4);
    return 0;
}

/* ---- main ------------------------------------------------------------------- */

static int parse_sizes(const char *list, opts *o)
{
    o->nsizes = bench_parse_size_list(list, o->sizes, MAX_SIZES);
    return o->nsizes > 0 ? 0 : -1;
}

static const char usage[] =
    "usage: bench_quant [--sizes N[,N...]] [--block B] [--reps K]\n"
    "  N: f32 elements, suffix K/M/G (powers of 2); default 16M,64M\n"
    "  B: elements per block, even (int4), default 256\n"
    "  K: at least K timed reps (default 10)\n";

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){.block = 256, .reps = 10};
    if (parse_sizes("16M,64M", o))
        return -1;
    for (int i = 1; i < argc; i += 2) {
        const char *val;

        if (i + 1 >= argc)
            return -1;
        val = argv[i + 1];
        if (!strcmp(argv[i], "--sizes")) {
            if (parse_sizes(val, o))
                return -1;
        } else if (!strcmp(argv[i], "--block")) {
            long b = atol(val);

            if (b < 2 || b % 2)
                return -1;
            o->block = (size_t)b;
        } else if (!strcmp(argv[i], "--reps")) {
            o->reps = atoi(val);
            if (o->reps <= 0 || o->reps > BENCH_MAX_REPS)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

static void print_row(const arrays *a, const char *kname, const char *path,
                      bench_timing t, double copy_gbps, double triad_gbps)
{
    kernel k = COPY;
    double gbps;

    while (strcmp(kernel_names[k], kname))
        k++;
    gbps = kernel_bytes(k, a->block) * (double)a->n / t.best / 1e9;
    printf("| %zu | %s | %s | %.1f | %d | %.3f | %.3f | %.2f | %.2f | %.2f | %.2f |\n",
           a->n, kname, path, kernel_bytes(k, a->block), t.reps, t.best * 1e3,
           t.median * 1e3, (double)a->n / t.best / 1e9, gbps, gbps / copy_gbps,
           gbps / triad_gbps);
}

int main(int argc, char **argv)
{
    opts o;
    char host[64] = "?";
    double *scratch = malloc(BENCH_MAX_REPS * sizeof *scratch), checksum = 0;

    if (parse(argc, argv, &o)) {
        fputs(usage, stderr);
        return 2;
    }
    if (!scratch)
        return 1;
    gethostname(host, sizeof host);
    printf(
        "bench_quant: host %s, nproc %ld, kernel path %s, 1 thread, block %zu; best of "
        ">= %d reps (and >= %.2f s) after 1 warm-up; GB/s counts reads + writes "
        "(column B/el); roofline = copy's GB/s\n\n",
        host, sysconf(_SC_NPROCESSORS_ONLN), zrt_kernels_cpu_path(), o.block, o.reps,
        BENCH_MIN_TIME);
    printf(
        "| elements | kernel | path | B/el | reps | best ms | median ms | Gelem/s | GB/s "
        "| "
        "/ copy | / triad |\n|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int s = 0; s < o.nsizes; s++) {
        arrays a;
        bench_timing tc, tt;
        double copy_gbps, triad_gbps;

        if (make_arrays(o.sizes[s], o.block, &a)) {
            fprintf(stderr, "bench_quant: cannot allocate %zu elements\n", o.sizes[s]);
            return 1;
        }
        tc = bench_measure(run_kernel, &(bench){&a, COPY, NULL}, NULL, o.reps, scratch);
        tt = bench_measure(run_kernel, &(bench){&a, TRIAD, NULL}, NULL, o.reps, scratch);
        copy_gbps = kernel_bytes(COPY, o.block) * (double)a.n / tc.best / 1e9;
        triad_gbps = kernel_bytes(TRIAD, o.block) * (double)a.n / tt.best / 1e9;
        print_row(&a, "copy", "-", tc, copy_gbps, triad_gbps);
        print_row(&a, "triad", "-", tt, copy_gbps, triad_gbps);
        for (kernel k = Q8; k < KERNELS; k++)
            for (int p = 0; p < (int)ZRT_QUANT_PATHS; p++) {
                bench b = {&a, k, &zrt_quant_paths[p]};

                if (!zrt_quant_paths[p].present())
                    continue;
                print_row(&a, kernel_names[k], zrt_quant_paths[p].name,
                          bench_measure(run_kernel, &b, NULL, o.reps, scratch), copy_gbps,
                          triad_gbps);
                fflush(stdout);
            }
        for (size_t i = 0; i < a.n; i += 4093)
            checksum += a.y[i] + a.q[i];
        free_arrays(&a);
    }
    printf("\nchecksum %.6e\n", checksum);
    free(scratch);
    return 0;
}
