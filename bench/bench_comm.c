/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/bench_comm.c — the zrt communicator against bare MPI on the same
 * buffers: reduce-scatter (zrt reduce_scatter_f32 SUM vs
 * MPI_Reduce_scatter_block), all-gather (zrt all_gather vs MPI_Allgather) and
 * all-reduce (zrt all_reduce_f32 SUM vs MPI_Allreduce), for full buffers of
 * 64 KiB .. 64 MiB (size * count floats).
 *
 *   mpirun -np N bench_comm [--max-size BYTES] [--min-time SECONDS]
 *
 * Method, per op and size: 2 warm-up iterations of each side (the second one
 * timed to size the loop); rank 0 picks one iteration count for both sides
 * (at least 5, enough for --min-time on the slower side) and broadcasts it;
 * each timed loop starts after a barrier, and its time is the slowest rank's
 * (MPI_Reduce MAX). The two sides alternate for two rounds and the better
 * round of each is kept, so neither gains from running second. Bus bandwidth
 * follows nccl-tests: bytes of the full buffer / time, times (N-1)/N for
 * reduce-scatter and all-gather and 2(N-1)/N for all-reduce.
 *
 * Rank 0 prints a markdown table; the ratio column is zrt time / MPI time.
 */
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/backend.h"
#include "runtime/comm.h"
#include "runtime/memory.h"

enum { WARMUP = 2, MIN_ITERS = 5, MAX_ITERS = 100000, ROUNDS = 2 };

typedef enum bench_op { OP_REDUCE_SCATTER, OP_ALL_GATHER, OP_ALL_REDUCE } bench_op;

static const char *const op_names[] = {"reduce_scatter", "all_gather", "all_reduce"};

typedef struct bench {
    zrt__comm *comm;
    int rank, size;
    float *send, *recv; /* full buffers: size * count floats each */
    size_t count;       /* floats per rank */
} bench;

typedef struct options {
    int64_t max_size; /* bytes of the full buffer */
    double min_time;  /* seconds per timed loop */
} options;

/* ---- one iteration of each side ------------------------------------------- */

static zrt_status zrt_once(bench *b, bench_op op)
{
    zrt__comm *c = b->comm;
    zrt__comm_req *req = NULL;
    size_t full = (size_t)b->size * b->count;
    switch (op) {
    case OP_REDUCE_SCATTER:
        ZRT_CHECK(
            zrt__comm_reduce_scatter_f32(c, b->send, b->recv, b->count, ZRT_SUM, &req));
        break;
    case OP_ALL_GATHER:
        ZRT_CHECK(c->ops->all_gather(c, b->send, b->recv, b->count, ZRT_F32, &req));
        break;
    case OP_ALL_REDUCE:
        ZRT_CHECK(zrt__comm_all_reduce_f32(c, b->send, b->recv, full, ZRT_SUM, &req));
        break;
    }
    return c->ops->wait(c, req);
}

static int mpi_once(bench *b, bench_op op)
{
    int n = (int)b->count;
    switch (op) {
    case OP_REDUCE_SCATTER:
        return MPI_Reduce_scatter_block(b->send, b->recv, n, MPI_FLOAT, MPI_SUM,
                                        MPI_COMM_WORLD);
    case OP_ALL_GATHER:
        return MPI_Allgather(b->send, n, MPI_FLOAT, b->recv, n, MPI_FLOAT,
                             MPI_COMM_WORLD);
    case OP_ALL_REDUCE:
        return MPI_Allreduce(b->send, b->recv, n * b->size, MPI_FLOAT, MPI_SUM,
                             MPI_COMM_WORLD);
    }
    return MPI_ERR_OTHER;
}

/* A failed collective leaves the ranks out of step: end the job. */
static void run_once(bench *b, bench_op op, int use_zrt)
{
    if (use_zrt) {
        zrt_status st = zrt_once(b, op);
        if (st == ZRT_OK)
            return;
        fprintf(stderr, "bench_comm: rank %d: zrt %s failed: %s\n", b->rank, op_names[op],
                b->comm->err->text);
    } else {
        int rc = mpi_once(b, op);
        if (rc == MPI_SUCCESS)
            return;
        fprintf(stderr, "bench_comm: rank %d: MPI %s failed (%d)\n", b->rank,
                op_names[op], rc);
    }
    b->comm->ops->abort_job(b->comm, 1);
}

/* ---- timing ------------------------------------------------------------------- */

/* Seconds for iters iterations on the slowest rank (valid on rank 0). */
static double timed_loop(bench *b, bench_op op, int use_zrt, int iters)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++)
        run_once(b, op, use_zrt);
    double mine = MPI_Wtime() - t0, slowest = 0.0;
    MPI_Reduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    return slowest;
}

/* Warms both sides up and returns the iteration count rank 0 chose. */
static int choose_iters(bench *b, bench_op op, double min_time)
{
    double slowest_iter = 0.0;
    for (int use_zrt = 0; use_zrt <= 1; use_zrt++) {
        for (int w = 0; w < WARMUP - 1; w++)
            run_once(b, op, use_zrt);
        double t = timed_loop(b, op, use_zrt, 1);
        if (t > slowest_iter)
            slowest_iter = t;
    }
    int iters = MIN_ITERS;
    if (b->rank == 0 && slowest_iter > 0.0) {
        double want = ceil(min_time / slowest_iter);
        if (want > iters)
            iters = want > MAX_ITERS ? MAX_ITERS : (int)want;
    }
    MPI_Bcast(&iters, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return iters;
}

/* ---- reporting -------------------------------------------------------------- */

static double bus_factor(bench_op op, int n)
{
    double f = (double)(n - 1) / (double)n;
    return op == OP_ALL_REDUCE ? 2.0 * f : f;
}

static const char *fmt_size(size_t bytes, char *buf, size_t len)
{
    if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
        snprintf(buf, len, "%zu MiB", bytes >> 20);
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf(buf, len, "%zu KiB", bytes >> 10);
    else
        snprintf(buf, len, "%zu B", bytes);
    return buf;
}

static void print_header(const bench *b, const options *o)
{
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    char lib[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int len = 0;
    MPI_Get_library_version(lib, &len);
    char *nl = strchr(lib, '\n');
    if (nl)
        *nl = '\0';
    char *comma = strchr(lib, ',');
    if (comma)
        *comma = '\0';
    double load[1] = {-1.0};
    getloadavg(load, 1); /* other work on the machine skews the times */
    printf("bench_comm: world size %d, host %s, nproc %ld, load %.2f, %s; "
           "max size %lld bytes, min time %.3g s per loop, best of %d rounds\n\n",
           b->size, host, sysconf(_SC_NPROCESSORS_ONLN), load[0], lib,
           (long long)o->max_size, o->min_time, ROUNDS);
    printf("| op | size | floats/rank | iters | zrt us | mpi us "
           "| zrt busbw GB/s | mpi busbw GB/s | zrt/mpi |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
}

static void print_row(const bench *b, bench_op op, int iters, double t_zrt, double t_mpi)
{
    size_t bytes = (size_t)b->size * b->count * sizeof(float);
    double us_zrt = 1e6 * t_zrt / iters, us_mpi = 1e6 * t_mpi / iters;
    double bus = bus_factor(op, b->size) * (double)bytes * 1e-3; /* GB/s * us */
    char size[32];
    printf("| %s | %s | %zu | %d | %.1f | %.1f | %.2f | %.2f | %.3f |\n", op_names[op],
           fmt_size(bytes, size, sizeof size), b->count, iters, us_zrt, us_mpi,
           bus / us_zrt, bus / us_mpi, us_zrt / us_mpi);
    fflush(stdout);
}

/* ---- driver ------------------------------------------------------------------ */

static void bench_op_size(bench *b, bench_op op, const options *o)
{
    int iters = choose_iters(b, op, o->min_time);
    double best[2] = {INFINITY, INFINITY}; /* [0] mpi, [1] zrt */
    for (int round = 0; round < ROUNDS; round++) {
        for (int use_zrt = 1; use_zrt >= 0; use_zrt--) {
            double t = timed_loop(b, op, use_zrt, iters);
            if (t < best[use_zrt])
                best[use_zrt] = t;
        }
    }
    if (b->rank == 0)
        print_row(b, op, iters, best[1], best[0]);
}

static int bench_size(bench *b, size_t bytes, const options *o)
{
    b->count = bytes / sizeof(float) / (size_t)b->size;
    size_t full = (size_t)b->size * b->count;
    if (b->count == 0 || full > INT_MAX)
        return 0; /* nothing to move, or more than one MPI count can say */
    b->send = malloc(full * sizeof(float));
    b->recv = malloc(full * sizeof(float));
    int ok = b->send && b->recv;
    int all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all_ok) {
        for (size_t i = 0; i < full; i++) {
            b->send[i] = (float)((i + (size_t)b->rank) % 1000) * 0.001f;
            b->recv[i] = 0.0f;
        }
        for (int op = OP_REDUCE_SCATTER; op <= OP_ALL_REDUCE; op++)
            bench_op_size(b, (bench_op)op, o);
    } else if (b->rank == 0) {
        fprintf(stderr, "bench_comm: cannot allocate 2 x %zu bytes\n",
                full * sizeof(float));
    }
    free(b->send);
    free(b->recv);
    return all_ok ? 0 : -1;
}

static int parse_options(int argc, char **argv, options *o)
{
    *o = (options){.max_size = 64ll << 20, .min_time = 0.2};
    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--max-size") == 0 && next) {
            if (zrt_parse_size(next, &o->max_size) != ZRT_OK || o->max_size <= 0) {
                fprintf(stderr, "bench_comm: bad --max-size '%s'\n", next);
                return -1;
            }
            i++;
        } else if (strcmp(argv[i], "--min-time") == 0 && next) {
            char *end = NULL;
            o->min_time = strtod(next, &end);
            if (end == next || *end || !(o->min_time >= 0.0)) {
                fprintf(stderr, "bench_comm: bad --min-time '%s'\n", next);
                return -1;
            }
            i++;
        } else {
            fprintf(stderr, "usage: bench_comm [--max-size BYTES (64M)] "
                            "[--min-time SECONDS (0.2)]\n");
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    options o;
    int bad = parse_options(argc, argv, &o) != 0;
    zrt__mem_account acct;
    zrt__errbuf err = {.rank = -1};
    zrt__backend *be = NULL;
    bench b = {0};
    zrt__mem_account_init(&acct);
    if (!bad && (zrt__backend_cpu_create(&acct, &err, NULL, &be) != ZRT_OK ||
                 zrt__comm_mpi_create(be, &err, &b.comm) != ZRT_OK)) {
        fprintf(stderr, "bench_comm: %s\n", err.text);
        bad = 1;
    }
    int any_bad = bad;
    MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    int rc = any_bad ? 1 : 0;
    if (!any_bad) {
        b.rank = b.comm->rank;
        b.size = b.comm->size;
        err.rank = b.rank;
        if (b.rank == 0)
            print_header(&b, &o);
        for (size_t bytes = 64u << 10; (int64_t)bytes <= o.max_size; bytes *= 4)
            if (bench_size(&b, bytes, &o) != 0)
                rc = 1;
    }
    if (b.comm)
        b.comm->ops->destroy(b.comm);
    if (be)
        be->ops->destroy(be);
    MPI_Finalize();
    return rc;
}
