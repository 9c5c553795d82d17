/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/bench_copy_cuda.c — does zrt's cuda backend move bytes between host
 * and device as fast as CUDA itself does, and what does its mixed-pointer
 * AdamW (the ZeRO-Offload path) cost?
 *
 *   bench_copy_cuda [--sizes 1M,4M,16M,64M,256M,1G] [--adamw-sizes 1M,16M,64M]
 *                   [--reps K] [--json FILE] [--probe]
 *
 * Copies, for each size in bytes (suffixes K, M, G are powers of 2):
 *   zrt   the backend's ops->copy between a host-tier buffer pinned with
 *         ops->pin and a device-tier buffer, both from ops->alloc, then
 *         ops->synchronize;
 *   cuda  cudaMemcpyAsync of the same bytes between cudaHostAlloc'd and
 *         cudaMalloc'd memory on a non-blocking stream of our own, then
 *         cudaStreamSynchronize;
 * host to device (h2d) and device to host (d2h). Each is timed on the wall
 * clock from the call to the end of the synchronization, as a caller waits
 * for it: the best of at least K repetitions (and 0.25 s) after one warm-up,
 * the median beside it. GB/s = bytes / 10^9 / best second.
 *
 * AdamW, for each size in f32 elements, through the backend's adamw_f32:
 *   device  p, g, m, v all in device memory: the CUDA kernel;
 *   mixed   p, g on the device, m, v in pinned host memory (optimizer state
 *           offloaded): the CPU computes, p and g stream through the
 *           backend's pinned bounce buffer, p streams back;
 *   host    all four in pinned host memory: the CPU kernel alone, the
 *           floor of what the mixed path can cost.
 * GB/s counts 28 bytes per element (p, g, m, v read; p, m, v written), as
 * bench_adamw does. Before timing, one mixed step and one device step from the
 * same state are compared bit for bit (the backend promises kernels/cpu's bits
 * on every path).
 *
 * --probe prints the device and exits. With no CUDA device every mode prints
 * "no CUDA device: ..." and exits 77 (skipped). --json FILE writes every row.
 */
#include <cuda_runtime_api.h>
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

enum { MAX_SIZES = 16, CHECK_N = 1000003, MAX_ROWS = 64 };
static const double ADAMW_BYTES = 28.0;

typedef struct opts {
    size_t sizes[MAX_SIZES]; /* copy sizes, bytes */
    int nsizes;
    size_t adamw[MAX_SIZES]; /* AdamW sizes, f32 elements */
    int nadamw;
    int reps;
    const char *json;
    int probe;
} opts;

/* One result row: zrt's figure, the baseline's and what they measured. */
typedef struct row {
    const char *what; /* "h2d", "d2h", "adamw mixed vs device", ... */
    size_t bytes;     /* moved per repetition (AdamW: 28 n) */
    size_t elements;  /* AdamW only */
    const char *zrt_name, *base_name;
    bench_timing zrt, base;
} row;

/* What a timed operation runs on. */
typedef struct bench {
    zrt__backend *be;
    cudaStream_t stream; /* the baseline's */
    void *dst, *src;     /* copies */
    size_t bytes;
    float *p, *g, *m, *v; /* AdamW */
    size_t n;
    zrt_adamw_scalars s;
    int failed; /* set by an operation that failed; the run then stops */
} bench;

/* Times fn(b) (bench_common.h); a failed operation stops the repetitions. */
static bench_timing measure(void (*fn)(void *), bench *b, int reps, double *scratch)
{
    return bench_measure(fn, b, &b->failed, reps, scratch);
}

static int cuda_ok(cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return 1;
    fprintf(stderr, "bench_copy_cuda: %s: %s\n", what, cudaGetErrorString(e));
    return 0;
}

static int zrt_ok(zrt_status st, const zrt__errbuf *err, const char *what)
{
    if (st == ZRT_OK)
        return 1;
    fprintf(stderr, "bench_copy_cuda: %s: %s\n", what,
            err->text[0] ? err->text : zrt_status_str(st));
    return 0;
}

/* ---- the timed operations --------------------------------------------------- */

static void zrt_copy(void *arg)
{
    bench *b = arg;
    zrt__backend *be = b->be;
    if (be->ops->copy(be, b->dst, b->src, b->bytes) != ZRT_OK ||
        zrt__be_synchronize(be) != ZRT_OK)
        b->failed = 1;
}

static void cuda_copy(void *arg)
{
    bench *b = arg;
    if (cudaMemcpyAsync(b->dst, b->src, b->bytes, cudaMemcpyDefault, b->stream) !=
            cudaSuccess ||
        cudaStreamSynchronize(b->stream) != cudaSuccess)
        b->failed = 1;
}

static void run_adamw_op(void *arg)
{
    bench *b = arg;
    zrt__backend *be = b->be;
    if (be->ops->adamw_f32(be, b->p, b->p, b->g, b->m, b->v, b->n, &b->s) != ZRT_OK ||
        zrt__be_synchronize(be) != ZRT_OK)
        b->failed = 1;
}

/* ---- buffers ---------------------------------------------------------------- */

/* A value in [-1, 1) from an index (a cheap integer hash). */
static float hashed(size_t i)
{
    uint32_t h = (uint32_t)i * 2654435761u;
    h ^= h >> 15;
    return (float)(h & 0xffffff) / 8388608.0f - 1.0f;
}

/* Allocates through the backend; host-tier buffers are pinned. */
static int alloc_buf(zrt__backend *be, zrt__errbuf *err, size_t bytes, zrt_tier tier,
                     zrt__buf *out)
{
    if (!zrt_ok(be->ops->alloc(be, bytes, tier, ZRT_CAT_STAGING, "bench buffer", out),
                err, "alloc"))
        return -1;
    if (tier == ZRT_TIER_HOST && !zrt_ok(be->ops->pin(be, out), err, "pin")) {
        be->ops->free(be, out);
        return -1;
    }
    return 0;
}

/* The four AdamW arrays of n elements: p, g in `pg` tier, m, v in `mv`
 * tier, filled with the same values whatever the tiers. */
typedef struct adamw_set {
    zrt__buf buf[4]; /* p, g, m, v */
} adamw_set;

static void free_set(zrt__backend *be, adamw_set *a)
{
    for (int k = 0; k < 4; k++)
        be->ops->free(be, &a->buf[k]);
}

static int make_set(zrt__backend *be, zrt__errbuf *err, size_t n, zrt_tier pg,
                    zrt_tier mv, adamw_set *a)
{
    memset(a, 0, sizeof *a);
    float *init = malloc(n * sizeof *init);
    if (!init) {
        fprintf(stderr, "bench_copy_cuda: out of host memory\n");
        return -1;
    }
    for (int k = 0; k < 4; k++) {
        zrt_tier tier = k < 2 ? pg : mv;
        if (alloc_buf(be, err, n * sizeof(float), tier, &a->buf[k]))
            goto fail;
        for (size_t i = 0; i < n; i++)
            init[i] = k == 0   ? 1.0f + 0.1f * hashed(i)
                      : k == 1 ? 0.01f * hashed(i + n)
                      : k == 2 ? 0.001f * hashed(i + 2 * n)
                               : 1e-6f * (1.0f + hashed(i + 3 * n));
        if (!zrt_ok(be->ops->copy(be, a->buf[k].ptr, init, n * sizeof(float)), err,
                    "copy") ||
            !zrt_ok(zrt__be_synchronize(be), err, "synchronize"))
            goto fail;
    }
    free(init);
    return 0;
fail:
    free(init);
    free_set(be, a);
    return -1;
}

static bench set_bench(zrt__backend *be, adamw_set *a, size_t n)
{
    return (bench){.be = be,
                   .p = a->buf[0].ptr,
                   .g = a->buf[1].ptr,
                   .m = a->buf[2].ptr,
                   .v = a->buf[3].ptr,
                   .n = n,
                   .s = zrt_adamw_scalars_make(1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1)};
}

/* ---- the check: mixed and device AdamW give the same bits --------------------- */

/* 0: the same bits; 1: they differ (printed; the timings still run);
 * -1: an allocation, copy or kernel failed. */
static int check_adamw(zrt__backend *be, zrt__errbuf *err)
{
    adamw_set dev, mix;
    int bad = -1;
    if (make_set(be, err, CHECK_N, ZRT_TIER_DEVICE, ZRT_TIER_DEVICE, &dev))
        return -1;
    if (make_set(be, err, CHECK_N, ZRT_TIER_DEVICE, ZRT_TIER_HOST, &mix)) {
        free_set(be, &dev);
        return -1;
    }
    bench bd = set_bench(be, &dev, CHECK_N), bm = set_bench(be, &mix, CHECK_N);
    for (int step = 0; step < 2; step++) {
        run_adamw_op(&bd);
        run_adamw_op(&bm);
    }
    size_t bytes = CHECK_N * sizeof(float);
    uint32_t *a = malloc(bytes), *b = malloc(bytes);
    if (!bd.failed && !bm.failed && a && b) {
        static const int compared[3] = {0, 2, 3}; /* p, m, v */
        bad = 0;
        for (int c = 0; c < 3 && !bad; c++) {
            int k = compared[c];
            if (!zrt_ok(be->ops->copy(be, a, dev.buf[k].ptr, bytes), err, "copy") ||
                !zrt_ok(be->ops->copy(be, b, mix.buf[k].ptr, bytes), err, "copy") ||
                !zrt_ok(zrt__be_synchronize(be), err, "synchronize")) {
                bad = -1;
                break;
            }
            for (size_t i = 0; i < CHECK_N; i++)
                if (a[i] != b[i]) {
                    fprintf(stderr,
                            "bench_copy_cuda: mixed and device AdamW differ: %s[%zu] "
                            "0x%08x vs 0x%08x\n",
                            k == 0   ? "p"
                            : k == 2 ? "m"
                                     : "v",
                            i, b[i], a[i]);
                    bad = 1;
                    break;
                }
        }
    }
    free(a);
    free(b);
    free_set(be, &dev);
    free_set(be, &mix);
    return bad;
}

/* ---- the runs --------------------------------------------------------------- */

/* h2d and d2h of `bytes` through zrt and through cudaMemcpyAsync. */
static int run_copies(zrt__backend *be, zrt__errbuf *err, cudaStream_t stream,
                      size_t bytes, int reps, double *scratch, row *out)
{
    zrt__buf host = {0}, dev = {0};
    void *c_host = NULL, *c_dev = NULL;
    int rc = -1;
    if (alloc_buf(be, err, bytes, ZRT_TIER_HOST, &host) ||
        alloc_buf(be, err, bytes, ZRT_TIER_DEVICE, &dev) ||
        !cuda_ok(cudaHostAlloc(&c_host, bytes, cudaHostAllocDefault), "cudaHostAlloc") ||
        !cuda_ok(cudaMalloc(&c_dev, bytes), "cudaMalloc"))
        goto done;
    memset(host.ptr, 0x5a, bytes);
    memset(c_host, 0x5a, bytes);
    for (int dir = 0; dir < 2; dir++) {
        bench z = {.be = be,
                   .bytes = bytes,
                   .dst = dir ? host.ptr : dev.ptr,
                   .src = dir ? dev.ptr : host.ptr};
        bench c = {.stream = stream,
                   .bytes = bytes,
                   .dst = dir ? c_host : c_dev,
                   .src = dir ? c_dev : c_host};
        row *r = &out[dir];
        if (dir) /* the device holds the 0x5a bytes now: d2h must bring them back */
            memset(host.ptr, 0, bytes);
        *r = (row){.what = dir ? "d2h" : "h2d",
                   .bytes = bytes,
                   .zrt_name = "zrt copy",
                   .base_name = "cudaMemcpyAsync"};
        /* zrt first, then CUDA: each side's warm-up settles the link. */
        r->zrt = measure(zrt_copy, &z, reps, scratch);
        r->base = measure(cuda_copy, &c, reps, scratch);
        if (z.failed || c.failed) {
            fprintf(stderr, "bench_copy_cuda: a %s copy of %zu bytes failed%s%s\n",
                    r->what, bytes, err->text[0] ? ": " : "", err->text);
            goto done;
        }
    }
    /* The round trip moved the bytes: host -> device -> host. */
    const unsigned char *h = host.ptr;
    if (h[0] != 0x5a || h[bytes / 2] != 0x5a || h[bytes - 1] != 0x5a) {
        fprintf(stderr, "bench_copy_cuda: zrt's round trip lost the data\n");
        goto done;
    }
    rc = 0;
done:
    be->ops->free(be, &host);
    be->ops->free(be, &dev);
    cudaFreeHost(c_host);
    cudaFree(c_dev);
    return rc;
}

/* AdamW of n elements: mixed and host against device. */
static int run_adamw(zrt__backend *be, zrt__errbuf *err, size_t n, int reps,
                     double *scratch, row *out)
{
    static const struct {
        const char *name;
        zrt_tier pg, mv;
    } cfgs[3] = {{"device", ZRT_TIER_DEVICE, ZRT_TIER_DEVICE},
                 {"mixed", ZRT_TIER_DEVICE, ZRT_TIER_HOST},
                 {"host", ZRT_TIER_HOST, ZRT_TIER_HOST}};
    bench_timing t[3];
    for (int c = 0; c < 3; c++) {
        adamw_set a;
        if (make_set(be, err, n, cfgs[c].pg, cfgs[c].mv, &a))
            return -1;
        bench b = set_bench(be, &a, n);
        t[c] = measure(run_adamw_op, &b, reps, scratch);
        free_set(be, &a);
        if (b.failed) {
            fprintf(stderr, "bench_copy_cuda: %s AdamW of %zu elements failed: %s\n",
                    cfgs[c].name, n, err->text);
            return -1;
        }
    }
    size_t bytes = (size_t)(ADAMW_BYTES * (double)n);
    for (int k = 0; k < 2; k++) /* mixed against device, then against host */
        out[k] = (row){.what = "adamw",
                       .bytes = bytes,
                       .elements = n,
                       .zrt_name = "mixed (m, v on host)",
                       .base_name = k ? "host (CPU only)" : "device",
                       .zrt = t[1],
                       .base = t[k ? 2 : 0]};
    return 0;
}

/* ---- report ----------------------------------------------------------------- */

static double gbps(size_t bytes, bench_timing t)
{
    return t.best > 0 ? (double)bytes / t.best / 1e9 : 0;
}

static void fmt_size(size_t bytes, char *buf, size_t size)
{
    if (bytes >= (1u << 30) && bytes % (1u << 30) == 0)
        snprintf(buf, size, "%zu GiB", bytes >> 30);
    else if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
        snprintf(buf, size, "%zu MiB", bytes >> 20);
    else
        snprintf(buf, size, "%zu B", bytes);
}

static void print_row(const row *r)
{
    char size[32];
    if (r->elements && r->elements % (1u << 20) == 0)
        snprintf(size, sizeof size, "%zuM elements", r->elements >> 20);
    else if (r->elements)
        snprintf(size, sizeof size, "%zu elements", r->elements);
    else
        fmt_size(r->bytes, size, sizeof size);
    printf("| %s | %s | %s | %d | %.4f | %.4f | %.2f | %s | %d | %.4f | %.4f | %.2f | "
           "%.3f |\n",
           r->what, size, r->zrt_name, r->zrt.reps, r->zrt.best * 1e3,
           r->zrt.median * 1e3, gbps(r->bytes, r->zrt), r->base_name, r->base.reps,
           r->base.best * 1e3, r->base.median * 1e3, gbps(r->bytes, r->base),
           r->base.best / r->zrt.best);
}

static int write_json(const char *path, const char *device, int differ, const row *rows,
                      int nrows)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    /* The headline: the largest h2d copy. */
    const row *h = NULL;
    for (int i = 0; i < nrows; i++)
        if (!strcmp(rows[i].what, "h2d"))
            h = &rows[i];
    fprintf(f,
            "{\n  \"bench\": \"bench_copy_cuda\",\n  \"device\": \"%s\",\n"
            "  \"adamw_mixed_equals_device\": %s,\n",
            device, differ ? "false" : "true");
    if (h) {
        char size[32];
        fmt_size(h->bytes, size, sizeof size);
        fprintf(f,
                "  \"headline\": \"h2d %s: zrt %.1f GB/s, cudaMemcpyAsync %.1f GB/s "
                "(zrt/cuda %.2f)\",\n",
                size, gbps(h->bytes, h->zrt), gbps(h->bytes, h->base),
                gbps(h->bytes, h->zrt) / gbps(h->bytes, h->base));
    }
    fprintf(f, "  \"rows\": [\n");
    for (int i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        fprintf(
            f,
            "    {\"what\": \"%s\", \"bytes\": %zu, \"elements\": %zu, \"zrt\": \"%s\", "
            "\"zrt_reps\": %d, \"zrt_best_s\": %.9f, \"zrt_median_s\": %.9f, "
            "\"zrt_gbps\": %.3f, \"baseline\": \"%s\", \"baseline_reps\": %d, "
            "\"baseline_best_s\": %.9f, \"baseline_median_s\": %.9f, "
            "\"baseline_gbps\": %.3f, \"zrt_speed_ratio\": %.4f}%s\n",
            r->what, r->bytes, r->elements, r->zrt_name, r->zrt.reps, r->zrt.best,
            r->zrt.median, gbps(r->bytes, r->zrt), r->base_name, r->base.reps,
            r->base.best, r->base.median, gbps(r->bytes, r->base),
            r->base.best / r->zrt.best, i + 1 < nrows ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    return fclose(f) ? -1 : 0;
}

/* ---- main ------------------------------------------------------------------- */

static int parse_list(const char *list, size_t *out, int *count)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    *count = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        unsigned long long v;
        if (*count == MAX_SIZES || bench_parse_size(tok, &v) || v > SIZE_MAX / 64)
            return -1;
        out[(*count)++] = (size_t)v;
    }
    return *count > 0 ? 0 : -1;
}

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){.reps = 20};
    if (parse_list("1M,4M,16M,64M,256M,1G", o->sizes, &o->nsizes) ||
        parse_list("1M,16M,64M", o->adamw, &o->nadamw))
        return -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--probe")) {
            o->probe = 1;
            continue;
        }
        if (i + 1 >= argc)
            return -1;
        const char *val = argv[++i];
        if (!strcmp(argv[i - 1], "--sizes")) {
            if (parse_list(val, o->sizes, &o->nsizes))
                return -1;
        } else if (!strcmp(argv[i - 1], "--adamw-sizes")) {
            if (parse_list(val, o->adamw, &o->nadamw))
                return -1;
        } else if (!strcmp(argv[i - 1], "--reps")) {
            o->reps = atoi(val);
            if (o->reps <= 0 || o->reps > BENCH_MAX_REPS)
                return -1;
        } else if (!strcmp(argv[i - 1], "--json")) {
            o->json = val;
        } else {
            return -1;
        }
    }
    return 0;
}

/* 0 with the device's name, or 77 with the reason printed. */
static int find_device(char *name, size_t size)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        printf("no CUDA device: %s\n",
               e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount reports 0");
        return 77;
    }
    struct cudaDeviceProp prop;
    if (!cuda_ok(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties"))
        return 1;
    snprintf(name, size, "%s", prop.name);
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    if (parse(argc, argv, &o)) {
        fprintf(stderr,
                "usage: bench_copy_cuda [--sizes B[,B...]] [--adamw-sizes N[,N...]] "
                "[--reps K] [--json FILE] [--probe]\n"
                "  B: bytes per copy, suffix K/M/G (default 1M,4M,16M,64M,256M,1G)\n"
                "  N: f32 elements per AdamW array (default 1M,16M,64M)\n"
                "  K: at least K timed reps (default 20)\n");
        return 2;
    }
    char device[256] = "?";
    int rc = find_device(device, sizeof device);
    if (rc || o.probe) {
        if (!rc)
            printf("CUDA device 0: %s\n", device);
        return rc;
    }
    zrt__errbuf err = {.rank = -1};
    zrt__mem_account acct;
    zrt__mem_account_init(&acct);
    zrt__pool *pool = NULL;
    zrt__backend *be = NULL;
    cudaStream_t stream = NULL;
    double *scratch = malloc(BENCH_MAX_REPS * sizeof *scratch);
    row *rows = calloc(MAX_ROWS, sizeof *rows);
    int nrows = 0;
    rc = 1;
    if (!scratch || !rows ||
        !zrt_ok(zrt__pool_create(0, 0, 1, &err, &pool), &err, "pool") ||
        !zrt_ok(zrt__backend_cuda_create(&acct, &err, pool, 0, 1, &be), &err,
                "the cuda backend") ||
        !cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream"))
        goto done;
    char host[64] = "?";
    gethostname(host, sizeof host);
    printf("bench_copy_cuda: host %s, device %s, nproc %ld, pool of %d threads; best of "
           ">= %d reps (and >= %.2f s) after 1 warm-up, wall clock to the end of the "
           "synchronization; GB/s = 10^9 bytes/s; AdamW counts %.0f B/element\n\n",
           host, device, sysconf(_SC_NPROCESSORS_ONLN), zrt__pool_size(pool), o.reps,
           BENCH_MIN_TIME, ADAMW_BYTES);
    int differ = check_adamw(be, &err);
    if (differ < 0) {
        fprintf(stderr, "bench_copy_cuda: the mixed-pointer AdamW check could not run\n");
        goto done;
    }
    printf("check: mixed-pointer and device AdamW %s (%d elements, 2 steps)\n\n",
           differ ? "DIFFER (see above; timing anyway, exit 1 at the end)"
                  : "agree bit for bit",
           CHECK_N);
    printf("| op | size | zrt | reps | best ms | median ms | GB/s | baseline | reps | "
           "best ms "
           "| median ms | GB/s | speed zrt/baseline |\n"
           "|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < o.nsizes; k++) {
        if (run_copies(be, &err, stream, o.sizes[k], o.reps, scratch, &rows[nrows]))
            goto done;
        print_row(&rows[nrows]);
        print_row(&rows[nrows + 1]);
        nrows += 2;
        fflush(stdout);
    }
    for (int k = 0; k < o.nadamw; k++) {
        if (run_adamw(be, &err, o.adamw[k], o.reps, scratch, &rows[nrows]))
            goto done;
        print_row(&rows[nrows]);
        print_row(&rows[nrows + 1]);
        nrows += 2;
        fflush(stdout);
    }
    printf("\nspeed zrt/baseline = baseline best time / zrt best time (1 = as fast; for "
           "AdamW, how much of the device kernel's or the CPU's speed the mixed path "
           "keeps)\n");
    rc = (o.json && write_json(o.json, device, differ, rows, nrows)) || differ ? 1 : 0;
done:
    if (stream)
        cudaStreamDestroy(stream);
    if (be)
        be->ops->destroy(be);
    zrt__pool_destroy(pool);
    zrt__mem_account_free(&acct);
    free(rows);
    free(scratch);
    return rc;
}
