/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/bench_crc32c.c — zrt's CRC32C (offload/crc32c.c: the SSE4.2 crc32
 * instruction, three streams interleaved) against ISA-L's crc32_iscsi, the
 * well-kept library the issue names, and memcpy of the same bytes as the
 * memory's own speed, on one thread.
 *
 *   bench_crc32c [--size BYTES] [--reps R]
 *
 * For each buffer size from 4 KiB up to --size (default 64M; K, M, G
 * suffixes), in a buffer that stays in cache at the small sizes and does not
 * at the large ones, it prints a markdown row: GB/s (10^9 bytes) of each,
 * best of at least R repetitions (default 20) and 0.25 s, and zrt's speed as
 * a ratio to ISA-L's. Before timing, it checks that the two compute the same
 * checksum (ISA-L's crc32_iscsi(buf, n, ~0) is the bitwise complement of the
 * standard CRC32C, zrt's zrt__crc32c(0, buf, n)), so both do the same work.
 * Built only where ISA-L is installed (libisal-dev); docs/benchmarks.md.
 */
#include <isa-l/crc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_args.h"
#include "bench_common.h"
#include "offload/crc32c.h"

typedef struct job {
    unsigned char *src, *dst;
    size_t n;
    uint32_t sink;
} job;

static void run_zrt(void *arg)
{
    job *j = arg;
    j->sink ^= zrt__crc32c(0, j->src, j->n);
}

static void run_isal(void *arg)
{
    job *j = arg;
    j->sink ^= crc32_iscsi(j->src, (int)j->n, 0xFFFFFFFFu);
}

static void run_memcpy(void *arg)
{
    job *j = arg;
    memcpy(j->dst, j->src, j->n);
    j->sink ^= j->dst[j->n - 1];
}

static double gbps(void (*fn)(void *), job *j, int reps, double *scratch)
{
    bench_timing t = bench_measure(fn, j, NULL, reps, scratch);
    return t.best > 0 ? (double)j->n / t.best / 1e9 : 0.0;
}

int main(int argc, char **argv)
{
    unsigned long long size = 64ull << 20;
    long reps = 20;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--size") &&
            bench_parse_size(argv[++i], &size) == 0)
            continue;
        char *end = NULL;
        if (i + 1 < argc && !strcmp(argv[i], "--reps") &&
            (reps = strtol(argv[++i], &end, 10)) >= 1 && reps <= 100000 && !*end)
            continue;
        fprintf(stderr, "usage: bench_crc32c [--size BYTES] [--reps R]\n");
        return 2;
    }
    if (size < 4096 || size > (1ull << 30)) {
        fprintf(stderr, "bench_crc32c: --size must be 4K to 1G\n");
        return 2;
    }
    job j = {.src = malloc(size), .dst = malloc(size)};
    double *scratch = malloc(BENCH_MAX_REPS * sizeof *scratch);
    if (!j.src || !j.dst || !scratch)
        return fprintf(stderr, "bench_crc32c: out of memory\n"), 1;
    for (size_t i = 0; i < size; i++)
        j.src[i] = (unsigned char)(i * 2654435761u >> 24);
    printf("| bytes | zrt GB/s | ISA-L GB/s | memcpy GB/s | zrt / ISA-L |\n"
           "|---:|---:|---:|---:|---:|\n");
    for (j.n = 4096; j.n <= size; j.n *= 4) {
        uint32_t ours = zrt__crc32c(0, j.src, j.n);
        uint32_t theirs = ~crc32_iscsi(j.src, (int)j.n, 0xFFFFFFFFu);
        if (ours != theirs) {
            fprintf(stderr, "bench_crc32c: %zu bytes: zrt %08x, ISA-L %08x\n", j.n, ours,
                    theirs);
            return 1;
        }
        double z = gbps(run_zrt, &j, (int)reps, scratch);
        double s = gbps(run_isal, &j, (int)reps, scratch);
        double m = gbps(run_memcpy, &j, (int)reps, scratch);
        printf("| %zu | %.2f | %.2f | %.2f | %.2f |\n", j.n, z, s, m,
               s > 0 ? z / s : 0.0);
    }
    printf("(checksums equal at every size; sink %08x)\n", j.sink);
    free(j.src);
    free(j.dst);
    free(scratch);
    return 0;
}
