/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/bench_adamw.c — is zrt's fused AdamW as fast as memory lets it be?
 *
 *   bench_adamw [--sizes 1M,16M,64M] [--reps K] [--threads T]
 *
 * For each size n (f32 elements; suffixes K, M, G are powers of 2), in one
 * run, single-threaded and on a pool of T threads (0, the default: one per
 * core of the process's binding, as a zrt context would start):
 *   fused  zrt's AdamW: zrt_adamw_f32 on one thread; the cpu backend's
 *          adamw_f32 (the same kernel split across the pool) on T;
 *   triad  a[i] = b[i] + s * c[i] (STREAM's triad) over three arrays holding
 *          together the same bytes as AdamW's p, g, m, v (16 n bytes), split
 *          across the same threads the same way;
 *   pattern AdamW's access pattern with cheap arithmetic: the same 4 loads
 *          and 3 in-place stores per element, the sqrt and the divide
 *          replaced by a multiply; it separates what the access pattern
 *          costs from what the compute costs;
 *   naive  AdamW written as one loop per term with a temporary array (8
 *          passes over memory), split the same way.
 * The baselines are split across the pool as the backend splits AdamW (not
 * at all below 2^16 elements).
 * Each figure is the best of at least K repetitions (and at least 0.25 s of
 * them) after one warm-up; the median is printed beside it.
 *
 * Bytes counted (STREAM's convention: write-allocate reads not counted):
 *   AdamW 28 bytes/element: p, g, m, v read, p, m, v written (pattern too);
 *         the naive loop's GB/s uses the same 28 (effective), though its
 *         passes really move 80 bytes/element;
 *   triad 12 bytes/element: b, c read, a written (f32; STREAM's 24 is for
 *         doubles).
 * Printed: a markdown table per size and thread count, then the ratios
 * fused GB/s / triad GB/s (target >= 0.8), fused / pattern, pattern / triad
 * and fused speed / naive speed.
 *
 * Nothing is elided: every kernel writes arrays that are summed and printed
 * at the end, and the naive loop is checked against zrt_adamw_f32 first.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_args.h"
#include "bench_common.h"
#include "kernels/cpu/kernels.h"
#include "runtime/backend.h"
#include "runtime/memory.h"
#include "runtime/threads.h"

enum { MAX_SIZES = 16, CHECK_N = 100003 };
/* The cpu backend's split rule (runtime/backend_cpu.c), copied: parts are
 * rounded up to 16 elements, and arrays below 2^16 elements are not split. */
enum { SPLIT_ALIGN = 16, SPLIT_MIN_ELEMENTS = 1 << 16 };
static const double ADAMW_BYTES = 28.0;
static const double TRIAD_BYTES = 12.0;
static const double NAIVE_REAL_BYTES = 80.0;

typedef struct opts {
    size_t sizes[MAX_SIZES];
    int nsizes;
    int reps;    /* at least this many timed repetitions */
    int threads; /* pool size asked; 0: one per core */
} opts;

/* The arrays of one size. */
typedef struct arrays {
    size_t n;                   /* AdamW elements */
    float *p, *g, *m, *v, *tmp; /* (n) each; tmp is the naive loop's */
    size_t nt;                  /* triad elements: 3 nt * 4 bytes = 16 n bytes */
    float *a, *b, *c;           /* (nt) each */
    zrt_adamw_scalars s;
} arrays;

typedef enum kernel { FUSED, TRIAD, PATTERN, NAIVE, KERNELS } kernel;

/* One kernel and what it runs on: one thread (pool NULL) or the pool. */
typedef struct bench {
    arrays *x;
    kernel k;
    zrt__pool *pool;
    zrt__backend *be; /* the cpu backend over pool */
} bench;

/* Worker `worker`'s part [lo, hi) of n elements, cut as the cpu backend cuts
 * AdamW (runtime/backend_cpu.c): equal parts rounded up to 16 elements. */
static void part(size_t n, int worker, int nworkers, size_t *lo, size_t *hi)
{
    size_t per = (n / (size_t)nworkers + SPLIT_ALIGN - 1) / SPLIT_ALIGN * SPLIT_ALIGN;
    *lo = per * (size_t)worker < n ? per * (size_t)worker : n;
    *hi = *lo + per < n ? *lo + per : n;
}

/* n: the elements fn covers, for the backend's no-split threshold. */
static void run_split(zrt__pool *pool, size_t n, zrt__task_fn fn, void *arg)
{
    if (pool && n >= SPLIT_MIN_ELEMENTS)
        zrt__pool_run(pool, fn, arg);
    else
        fn(arg, 0, 1);
}

/* ---- the baselines ---------------------------------------------------------
 * Compiled for AVX2 and for the baseline ISA (chosen at load time), like
 * zrt's kernels, so the comparison is about passes over memory, not vector
 * width. No FMA: neither side contracts. */

#define BASELINE __attribute__((noinline, target_clones("avx2", "default")))

BASELINE static void triad_f32(float *a, const float *b, const float *c, size_t n,
                               float s)
{
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] + s * c[i];
}

BASELINE static void pass_scale(float *x, size_t n, float alpha)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= alpha;
}

BASELINE static void pass_axpy(float *y, const float *x, size_t n, float alpha)
{
    for (size_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

BASELINE static void pass_square(float *out, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] * x[i];
}

BASELINE static void pass_denom(float *out, const float *v, size_t n, float inv_sqrt_bc2,
                                float eps)
{
    for (size_t i = 0; i < n; i++)
        out[i] = sqrtf(v[i]) * inv_sqrt_bc2 + eps;
}

BASELINE static void pass_update(float *p, const float *m, const float *denom, size_t n,
                                 float step_size)
{
    for (size_t i = 0; i < n; i++)
        p[i] -= step_size * m[i] / denom[i];
}

/* AdamW's loads, stores, m and v updates, with p's sqrt and divide replaced
 * by a multiply. v stays >= 0, so the AdamW kernels that run on the same
 * arrays afterwards see valid moments. */
BASELINE static void pattern_f32(float *p, const float *g, float *m, float *v, size_t n,
                                 const zrt_adamw_scalars *s)
{
    for (size_t i = 0; i < n; i++) {
        float mi = s->beta1 * m[i] + s->one_minus_beta1 * g[i];
        float vi = s->beta2 * v[i] + s->one_minus_beta2 * g[i] * g[i];
        p[i] = p[i] * s->decay_factor - s->step_size * (mi * vi);
        m[i] = mi;
        v[i] = vi;
    }
}

/* AdamW one term at a time, as an unfused framework runs it. */
static void naive_adamw(float *p, const float *g, float *m, float *v, float *tmp,
                        size_t n, const zrt_adamw_scalars *s)
{
    pass_scale(p, n, s->decay_factor);              /* p *= decay */
    pass_scale(m, n, s->beta1);                     /* m *= b1 */
    pass_axpy(m, g, n, s->one_minus_beta1);         /* m += (1 - b1) g */
    pass_scale(v, n, s->beta2);                     /* v *= b2 */
    pass_square(tmp, g, n);                         /* tmp = g * g */
    pass_axpy(v, tmp, n, s->one_minus_beta2);       /* v += (1 - b2) tmp */
    pass_denom(tmp, v, n, s->inv_sqrt_bc2, s->eps); /* tmp = sqrt(v)/.. + eps */
    pass_update(p, m, tmp, n, s->step_size);        /* p -= step m / tmp */
}

/* ---- the kernels, as pool tasks --------------------------------------------- */

/* Worker `worker`'s part of b->k over b->x (the triad over its own nt). */
static void kernel_task(void *arg, int worker, int nworkers)
{
    const bench *b = arg;
    arrays *x = b->x;
    size_t lo, hi;
    part(b->k == TRIAD ? x->nt : x->n, worker, nworkers, &lo, &hi);
    switch (b->k) {
    case FUSED:
        zrt_adamw_f32(x->p + lo, x->g + lo, x->m + lo, x->v + lo, hi - lo, &x->s);
        break;
    case TRIAD:
        triad_f32(x->a + lo, x->b + lo, x->c + lo, hi - lo, 0.5f);
        break;
    case PATTERN:
        pattern_f32(x->p + lo, x->g + lo, x->m + lo, x->v + lo, hi - lo, &x->s);
        break;
    case NAIVE:
        naive_adamw(x->p + lo, x->g + lo, x->m + lo, x->v + lo, x->tmp + lo, hi - lo,
                    &x->s);
        break;
    case KERNELS:
        break;
    }
}

/* The baselines split as the backend splits; fused: zrt_adamw_f32 itself on
 * one thread, the cpu backend's op on the pool. */
static void run_kernel(void *arg)
{
    bench *b = arg;
    arrays *x = b->x;
    if (b->k == FUSED && b->pool)
        b->be->ops->adamw_f32(b->be, x->p, x->p, x->g, x->m, x->v, x->n, &x->s);
    else
        run_split(b->pool, b->k == TRIAD ? x->nt : x->n, kernel_task, b);
}

/* ---- arrays ----------------------------------------------------------------- */

static float *alloc_f32(size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

static void free_arrays(arrays *x)
{
    float *all[] = {x->p, x->g, x->m, x->v, x->tmp, x->a, x->b, x->c};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    memset(x, 0, sizeof *x);
}

/* A value in [-1, 1) from an index (a cheap integer hash). */
static float hashed(size_t i)
{
    uint32_t h = (uint32_t)i * 2654435761u;
    h ^= h >> 15;
    return (float)(h & 0xffffff) / 8388608.0f - 1.0f;
}

/* Triad elements whose three arrays hold the bytes of AdamW's four arrays of
 * n elements (16 n bytes), rounded up to the split alignment. */
static size_t triad_elems(size_t n)
{
    return (16 * n / 12 + SPLIT_ALIGN - 1) / SPLIT_ALIGN * SPLIT_ALIGN;
}

/* Allocates and touches every page, so no page fault is timed. */
static int make_arrays(size_t n, arrays *x)
{
    memset(x, 0, sizeof *x);
    x->n = n;
    x->nt = triad_elems(n);
    float **adamw[] = {&x->p, &x->g, &x->m, &x->v, &x->tmp};
    float **triad[] = {&x->a, &x->b, &x->c};
    for (int i = 0; i < 5; i++)
        *adamw[i] = alloc_f32(n);
    for (int i = 0; i < 3; i++)
        *triad[i] = alloc_f32(x->nt);
    if (!x->p || !x->g || !x->m || !x->v || !x->tmp || !x->a || !x->b || !x->c) {
        free_arrays(x);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        x->p[i] = 1.0f + 0.1f * hashed(i);
        x->g[i] = 0.01f * hashed(i + n);
        x->m[i] = x->v[i] = x->tmp[i] = 0.0f;
    }
    for (size_t i = 0; i < x->nt; i++) {
        x->a[i] = 0.0f;
        x->b[i] = hashed(i);
        x->c[i] = hashed(i + x->nt);
    }
    x->s = zrt_adamw_scalars_make(1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1);
    return 0;
}

static double sum_f32(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s;
}

/* The naive loop must compute what zrt_adamw_f32 computes (to rounding:
 * v's terms are grouped differently), or the comparison means nothing. */
static int check_naive(void)
{
    arrays f, n;
    if (make_arrays(CHECK_N, &f))
        return -1;
    if (make_arrays(CHECK_N, &n)) {
        free_arrays(&f);
        return -1;
    }
    float worst = 0;
    for (int step = 0; step < 3; step++) {
        kernel_task(&(bench){.x = &f, .k = FUSED}, 0, 1);
        kernel_task(&(bench){.x = &n, .k = NAIVE}, 0, 1);
    }
    for (size_t i = 0; i < CHECK_N; i++) {
        float d[3] = {fabsf(f.p[i] - n.p[i]), fabsf(f.m[i] - n.m[i]),
                      fabsf(f.v[i] - n.v[i]) / (fabsf(f.v[i]) + 1e-30f)};
        for (int k = 0; k < 3; k++)
            worst = d[k] > worst ? d[k] : worst;
    }
    free_arrays(&f);
    free_arrays(&n);
    if (worst > 1e-5f) {
        fprintf(stderr, "bench_adamw: the naive loop differs from zrt_adamw_f32 by %g\n",
                (double)worst);
        return -1;
    }
    return 0;
}

/* ---- report ----------------------------------------------------------------- */

typedef struct row {
    bench_timing t[KERNELS];
} row;

static double gbps(bench_timing t, double bytes_per_elem, size_t elems)
{
    return bytes_per_elem * (double)elems / t.best / 1e9;
}

/* params: print parameters/s (the AdamW implementations) or "-". */
static void print_row(const arrays *x, int threads, const char *name, bench_timing t,
                      double bytes_per_elem, size_t elems, int params)
{
    char mps[32] = "-";
    if (params)
        snprintf(mps, sizeof mps, "%.0f", (double)x->n / t.best / 1e6);
    printf("| %zu | %d | %s | %d | %.3f | %.3f | %s | %.2f |\n", x->n, threads, name,
           t.reps, t.best * 1e3, t.median * 1e3, mps, gbps(t, bytes_per_elem, elems));
}

static void print_size(const arrays *x, int threads, const row *r)
{
    print_row(x, threads, threads == 1 ? "fused: zrt_adamw_f32" : "fused: cpu backend",
              r->t[FUSED], ADAMW_BYTES, x->n, 1);
    print_row(x, threads, "triad", r->t[TRIAD], TRIAD_BYTES, x->nt, 0);
    print_row(x, threads, "pattern: no sqrt/div", r->t[PATTERN], ADAMW_BYTES, x->n, 0);
    print_row(x, threads, "naive: 8 passes", r->t[NAIVE], ADAMW_BYTES, x->n, 1);
}

/* ---- main ------------------------------------------------------------------- */

static int parse_sizes(const char *list, opts *o)
{
    o->nsizes = bench_parse_size_list(list, o->sizes, MAX_SIZES);
    return o->nsizes > 0 ? 0 : -1;
}

static const char usage[] =
    "usage: bench_adamw [--sizes N[,N...]] [--reps K] [--threads T]\n"
    "  N: f32 elements, suffix K/M/G (powers of 2); default 1M,16M,64M\n"
    "  K: at least K timed reps (default 10)\n"
    "  T: pool threads, 0 = one per core (default)\n";

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){.reps = 10, .threads = 0};
    if (parse_sizes("1M,16M,64M", o))
        return -1;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            return -1;
        const char *val = argv[i + 1];
        if (!strcmp(argv[i], "--sizes")) {
            if (parse_sizes(val, o))
                return -1;
        } else if (!strcmp(argv[i], "--reps")) {
            o->reps = atoi(val);
            if (o->reps <= 0 || o->reps > BENCH_MAX_REPS)
                return -1;
        } else if (!strcmp(argv[i], "--threads")) {
            o->threads = atoi(val);
            if (o->threads < 0 || (o->threads == 0 && strcmp(val, "0")))
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

static void print_header(const opts *o, int pool_size)
{
    char host[64] = "?";
    double load[1] = {0};
    gethostname(host, sizeof host);
    getloadavg(load, 1);
    printf("bench_adamw: host %s, nproc %ld, load %.2f, kernel path %s, pool of %d "
           "threads; best of >= %d reps (and >= %.2f s) after 1 warm-up; GB/s counts "
           "%.0f B/element for AdamW (fused and naive; the naive really moves %.0f), "
           "%.0f B/element for triad; triad arrays hold the same bytes as p,g,m,v\n\n",
           host, sysconf(_SC_NPROCESSORS_ONLN), load[0], zrt_kernels_cpu_path(),
           pool_size, o->reps, BENCH_MIN_TIME, ADAMW_BYTES, NAIVE_REAL_BYTES,
           TRIAD_BYTES);
}

/* Runs every kernel of one size at each thread count; fills r[0] (1 thread)
 * and r[1] (the pool). */
static void bench_size(arrays *x, zrt__pool *pool, zrt__backend *be, int reps,
                       double *scratch, row r[2])
{
    for (int t = 0; t < 2; t++)
        for (kernel k = FUSED; k < KERNELS; k++) {
            bench b = {.x = x, .k = k, .pool = t ? pool : NULL, .be = be};
            r[t].t[k] = bench_measure(run_kernel, &b, NULL, reps, scratch);
        }
}

int main(int argc, char **argv)
{
    opts o;
    if (parse(argc, argv, &o)) {
        fputs(usage, stderr);
        return 2;
    }
    if (check_naive())
        return 1;
    zrt__errbuf err = {.rank = -1};
    zrt__mem_account acct;
    zrt__mem_account_init(&acct);
    zrt__pool *pool = NULL;
    zrt__backend *be = NULL;
    double *scratch = malloc(BENCH_MAX_REPS * sizeof *scratch);
    if (!scratch || zrt__pool_create(o.threads, 0, 1, &err, &pool) != ZRT_OK ||
        zrt__backend_cpu_create(&acct, &err, pool, &be) != ZRT_OK) {
        fprintf(stderr, "bench_adamw: %s\n", err.text[0] ? err.text : "out of memory");
        return 1;
    }
    int threads = zrt__pool_size(pool);
    row rows[MAX_SIZES][2];
    double checksum = 0;
    print_header(&o, threads);
    printf("| elements | threads | kernel | reps | best ms | median ms | Mparam/s | GB/s "
           "|\n|---:|---:|---|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < o.nsizes; k++) {
        arrays x;
        if (make_arrays(o.sizes[k], &x)) {
            fprintf(stderr, "bench_adamw: cannot allocate %zu elements\n", o.sizes[k]);
            return 1;
        }
        bench_size(&x, pool, be, o.reps, scratch, rows[k]);
        print_size(&x, 1, &rows[k][0]);
        print_size(&x, threads, &rows[k][1]);
        fflush(stdout);
        checksum += sum_f32(x.p, x.n) + sum_f32(x.m, x.n) + sum_f32(x.v, x.n) +
                    sum_f32(x.a, x.nt);
        free_arrays(&x);
    }
    printf(
        "\n| elements | threads | fused / triad (GB/s) | fused / pattern | "
        "pattern / triad | fused / naive (speed) |\n|---:|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < o.nsizes; k++)
        for (int t = 0; t < 2; t++) {
            const row *r = &rows[k][t];
            size_t n = o.sizes[k];
            double triad = gbps(r->t[TRIAD], TRIAD_BYTES, triad_elems(n));
            printf("| %zu | %d | %.2f | %.2f | %.2f | %.2f |\n", n, t ? threads : 1,
                   gbps(r->t[FUSED], ADAMW_BYTES, n) / triad,
                   r->t[PATTERN].best / r->t[FUSED].best,
                   gbps(r->t[PATTERN], ADAMW_BYTES, n) / triad,
                   r->t[NAIVE].best / r->t[FUSED].best);
        }
    printf("\nchecksum %.6e\n", checksum);
    be->ops->destroy(be);
    zrt__pool_destroy(pool);
    free(scratch);
    return 0;
}
