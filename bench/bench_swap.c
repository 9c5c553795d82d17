/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/bench_swap.c — the NVMe swap file's own speed: sequential write, then
 * read back, through zrt__swap_write / zrt__swap_read (offload/swap.h).
 *
 *   bench_swap [--dir DIR] [--size BYTES] [--block-size BYTES]
 *              [--queue-depth Q] [--buffer-count B] [--chunk BYTES] [--reps R]
 *
 * Each repetition opens a fresh swap of --size bytes in DIR (created and
 * fallocated by zrt__swap_open), writes the whole of it from one host buffer
 * in calls of --chunk bytes (default: the whole size in one call), reads it
 * all back the same way (every block's CRC32C verified), and closes it, which
 * unlinks the file. Sizes take K, M, G suffixes (powers of 2); defaults: DIR
 * /tmp, 1G, block 1M, queue depth 8 and 4 buffers (the swap's own defaults),
 * 1 repetition. The swap keeps min(queue depth, buffer count) blocks in
 * flight: that is the depth to compare with (bench_swap_vs_fio.sh gives it to
 * fio as --iodepth).
 *
 * Printed: a markdown row per repetition (GB = 10^9 bytes; CPU % is the
 * process's user + system CPU time over the pass's wall time, 100 = one core
 * busy throughout), the cost on one core of the CPU work the swap does per
 * block (one memcpy and one CRC32C, serial with the I/O on the same thread),
 * and a last line, for scripts, with the best repetition of each direction:
 *   bench_swap result: write_gbps=W read_gbps=R write_cpu=CW read_cpu=CR
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench_args.h"
#include "bench_common.h"
#include "offload/crc32c.h"
#include "offload/swap.h"

typedef struct opts {
    const char *dir;
    unsigned long long size, block, chunk;
    int queue_depth, buffer_count, reps;
} opts;

/* ---- one repetition ---------------------------------------------------------- */

typedef zrt_status (*swap_io_fn)(zrt__swap *s, uint64_t offset, void *buf, size_t bytes,
                                 zrt__errbuf *err);

static zrt_status write_adapter(zrt__swap *s, uint64_t offset, void *buf, size_t bytes,
                                zrt__errbuf *err)
{
    return zrt__swap_write(s, offset, buf, bytes, err);
}

/* Seconds of CPU this process has used, user and system (io_uring's
 * workers, if any, are threads of the process and count too). */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

typedef struct pass_time {
    double wall, cpu; /* seconds; wall < 0: the pass failed */
} pass_time;

/* The whole swap, chunk by chunk, through one buffer. */
static pass_time pass(zrt__swap *s, const opts *o, swap_io_fn fn, unsigned char *buf,
                      zrt__errbuf *err)
{
    double c0 = cpu_seconds(), t0 = bench_now();
    for (unsigned long long off = 0; off < o->size; off += o->chunk) {
        size_t len = (size_t)(o->size - off < o->chunk ? o->size - off : o->chunk);
        if (fn(s, off, buf, len, err) != ZRT_OK)
            return (pass_time){.wall = -1};
    }
    return (pass_time){.wall = bench_now() - t0, .cpu = cpu_seconds() - c0};
}

/* Fresh swap, write all, read all, close. Returns 0 or -1 (err says why). */
static int one_rep(const opts *o, unsigned char *buf, pass_time *w, pass_time *r,
                   size_t *align, zrt__errbuf *err)
{
    zrt__swap_config cfg = {.dir = o->dir,
                            .rank = 0,
                            .block_size = o->block,
                            .queue_depth = o->queue_depth,
                            .buffer_count = o->buffer_count};
    zrt__swap *s;
    if (zrt__swap_open(&cfg, "bench", o->size, err, &s) != ZRT_OK)
        return -1;
    *align = zrt__swap_alignment(s);
    *w = pass(s, o, write_adapter, buf, err);
    *r = w->wall < 0 ? (pass_time){.wall = -1} : pass(s, o, zrt__swap_read, buf, err);
    zrt__swap_close(s);
    return r->wall < 0 ? -1 : 0;
}

/* ---- the CPU side of a block ------------------------------------------------- */

static volatile uint32_t crc_sink; /* keeps the timed checksums */

/* Microseconds per block for a memcpy and a CRC32C of one block, on this
 * thread, over the host buffer (as the swap copies from it and checksums). */
static void cpu_per_block(const opts *o, const unsigned char *buf, double *copy_us,
                          double *crc_us)
{
    unsigned char *slot = aligned_alloc(4096, (size_t)o->block);
    size_t nblk = (size_t)(o->chunk / o->block);
    uint32_t crc = 0;
    if (!slot || nblk == 0) {
        free(slot);
        *copy_us = *crc_us = -1;
        return;
    }
    nblk = nblk > 256 ? 256 : nblk;
    memcpy(slot, buf, (size_t)o->block); /* fault the slot in */
    double t0 = bench_now();
    for (size_t k = 0; k < nblk; k++)
        memcpy(slot, buf + k * o->block, (size_t)o->block);
    double t1 = bench_now();
    for (size_t k = 0; k < nblk; k++)
        crc = zrt__crc32c(crc, slot, (size_t)o->block);
    double t2 = bench_now();
    *copy_us = (t1 - t0) / (double)nblk * 1e6;
    *crc_us = (t2 - t1) / (double)nblk * 1e6;
    crc_sink = crc;
    free(slot);
}

/* ---- main -------------------------------------------------------------------- */

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){.dir = "/tmp",
                .size = 1ULL << 30,
                .block = 1ULL << 20,
                .chunk = 0,
                .queue_depth = 8,
                .buffer_count = 4,
                .reps = 1};
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            return -1;
        const char *flag = argv[i], *val = argv[i + 1];
        unsigned long long *size = !strcmp(flag, "--size")         ? &o->size
                                   : !strcmp(flag, "--block-size") ? &o->block
                                   : !strcmp(flag, "--chunk")      ? &o->chunk
                                                                   : NULL;
        int *count = !strcmp(flag, "--queue-depth")    ? &o->queue_depth
                     : !strcmp(flag, "--buffer-count") ? &o->buffer_count
                     : !strcmp(flag, "--reps")         ? &o->reps
                                                       : NULL;
        if (!strcmp(flag, "--dir"))
            o->dir = val;
        else if (size && bench_parse_size(val, size) == 0)
            continue;
        else if (count && (*count = atoi(val)) > 0)
            continue;
        else
            return -1;
    }
    if (o->chunk == 0 || o->chunk > o->size)
        o->chunk = o->size;
    /* every call must start on a block boundary */
    if (o->chunk % o->block != 0 && o->chunk != o->size)
        return -1;
    return o->size <= SIZE_MAX ? 0 : -1;
}

static const char usage[] =
    "usage: bench_swap [--dir DIR] [--size BYTES] [--block-size BYTES] "
    "[--queue-depth Q] [--buffer-count B] [--chunk BYTES] [--reps R]\n"
    "  BYTES take K/M/G suffixes; --chunk must be a multiple of --block-size\n";

int main(int argc, char **argv)
{
    opts o;
    if (parse(argc, argv, &o)) {
        fputs(usage, stderr);
        return 2;
    }
    unsigned char *buf = aligned_alloc(4096, (size_t)((o.chunk + 4095) / 4096 * 4096));
    if (!buf) {
        fprintf(stderr, "bench_swap: cannot allocate %llu bytes\n", o.chunk);
        return 1;
    }
    for (size_t i = 0; i < o.chunk; i++)
        buf[i] = (unsigned char)(i * 2654435761u >> 13);
    double copy_us, crc_us;
    cpu_per_block(&o, buf, &copy_us, &crc_us);

    zrt__errbuf err = {.rank = -1};
    int inflight = o.queue_depth < o.buffer_count ? o.queue_depth : o.buffer_count;
    size_t align = 0;
    double best_w = 0, best_r = 0, cpu_w = 0, cpu_r = 0;
    printf(
        "| rep | write s | write GB/s | write CPU %% | read s | read GB/s | read CPU %% "
        "|\n|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int r = 0; r < o.reps; r++) {
        pass_time w, rd;
        if (one_rep(&o, buf, &w, &rd, &align, &err)) {
            fprintf(stderr, "bench_swap: %s\n", err.text);
            free(buf);
            return 1;
        }
        double wg = (double)o.size / w.wall / 1e9, rg = (double)o.size / rd.wall / 1e9;
        if (wg > best_w) {
            best_w = wg;
            cpu_w = 100 * w.cpu / w.wall;
        }
        if (rg > best_r) {
            best_r = rg;
            cpu_r = 100 * rd.cpu / rd.wall;
        }
        printf("| %d | %.3f | %.3f | %.0f | %.3f | %.3f | %.0f |\n", r + 1, w.wall, wg,
               100 * w.cpu / w.wall, rd.wall, rg, 100 * rd.cpu / rd.wall);
        fflush(stdout);
    }
    printf(
        "\nbench_swap: dir %s, %llu bytes, block %llu, queue_depth %d, buffer_count %d "
        "(%d blocks in flight), %llu bytes per call, direct-I/O alignment %zu, "
        "fresh file each of %d reps\n",
        o.dir, o.size, o.block, o.queue_depth, o.buffer_count, inflight, o.chunk, align,
        o.reps);
    printf("bench_swap: CPU work per block on the swap's one I/O thread: memcpy %.1f us, "
           "crc32c %.1f us (%.2f and %.2f GB/s)\n",
           copy_us, crc_us, (double)o.block / copy_us / 1e3,
           (double)o.block / crc_us / 1e3);
    printf("bench_swap result: write_gbps=%.3f read_gbps=%.3f write_cpu=%.0f "
           "read_cpu=%.0f\n",
           best_w, best_r, cpu_w, cpu_r);
    free(buf);
    return 0;
}
