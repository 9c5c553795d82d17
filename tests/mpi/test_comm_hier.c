/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/mpi/test_comm_hier.c — Check suite "comm_hier" for the MPI
 * communicator's hierarchical collectives (runtime/comm_mpi.c), run by
 * ctest under `mpirun -np N` for N = 4 and 6 on one host, the groups forced
 * by comm_group_size: every divisor R of N with 1 < R < N (4: R = 2; 6: R =
 * 2 and 3).
 *
 * With G groups of R consecutive ranks, a reduction sums each group's ranks
 * in order and then the G group sums in group order; 16-bit partials are
 * rounded to their type between the two levels. Inputs are a hash of (seed,
 * rank, element), so every rank computes that reference for every element
 * and checks its results bit for bit. The first test shows the reference
 * differs from rank order for these inputs, so a flat sum would fail.
 *
 * MPI and Check, as in test_comm.c: CK_NOFORK, one communicator created in
 * main, every rank runs the same tests in the same order, a test records
 * its mismatches and asserts after its last collective.
 */
#include <check.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/test_check.h"
#include "kernels/cpu/kernels.h"
#include "runtime/backend.h"
#include "runtime/comm.h"
#include "runtime/memory.h"

#define GUARD        16   /* elements after each buffer */
#define GUARD_BYTE   0xA5 /* fills guards */
#define STUCK_S      20.0 /* one request polled alone: deadlocked after */
#define POLL_LIMIT_S 60.0

static zrt__mem_account g_acct;
static zrt__errbuf g_err = {.rank = -1};
static zrt__backend *g_be;
static zrt__comm *g_comm;
static int g_rank, g_size;
static int g_R; /* the group size the current round routes by */

/* ---- recording failures without leaving the test early ------------------------ */

typedef struct tally {
    int fails;
    char first[512];
} tally;

static void note(tally *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(tally *t, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (t->fails == 0)
        snprintf(t->first, sizeof t->first, "%s", text);
    if (t->fails < 5)
        fprintf(stderr, "rank %d/%d (groups of %d): %s\n", g_rank, g_size, g_R, text);
    t->fails++;
}

#define EXPECT(t, cond, ...)                                                             \
    do {                                                                                 \
        if (!(cond))                                                                     \
            note((t), __VA_ARGS__);                                                      \
    } while (0)

#define FINISH(t)                                                                        \
    ck_assert_msg((t)->fails == 0, "rank %d/%d: %d failed expectation(s), first: %s",    \
                  g_rank, g_size, (t)->fails, (t)->first)

static int64_t comm_bytes_now(void)
{
    return g_acct.stats.current[ZRT_TIER_DEVICE][ZRT_CAT_COMM];
}

static void expect_comm_idle(tally *t, const char *what)
{
    EXPECT(t, comm_bytes_now() == 0, "%s: %lld bytes of comm scratch still charged", what,
           (long long)comm_bytes_now());
}

/* ---- routing ------------------------------------------------------------------ */

/* Routes by groups of R (hierarchical, forced); records a refusal. */
static void route(tally *t, int hierarchy, int R)
{
    char why[256] = "";
    zrt_status st = g_comm->ops->set_hierarchy(g_comm, hierarchy, R, why, sizeof why);
    EXPECT(t, st == ZRT_OK, "set_hierarchy(%d, %d) returned %s: %s", hierarchy, R,
           zrt_status_str(st), g_err.text);
    g_R = R;
}

/* Runs round(t) once per group size R, 1 < R < N, R dividing N. */
static void each_grouping(tally *t, void (*round)(tally *t))
{
    for (int R = 2; R < g_size; R++) {
        if (g_size % R != 0)
            continue;
        route(t, ZRT_COMM_HIER_HIERARCHICAL, R);
        EXPECT(t, g_comm->hierarchical == 1 && g_comm->group_size == R,
               "groups of %d forced: hierarchical %d, group_size %d", R,
               g_comm->hierarchical, g_comm->group_size);
        round(t);
    }
    route(t, ZRT_COMM_HIER_FLAT, 0);
}

/* ---- deterministic inputs and the hierarchical reference ---------------------- */

static uint64_t mix(uint64_t x) /* splitmix64's finalizer */
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Rank `rank`'s element i: random sign and mantissa, exponent 2^-12..2^12. */
static float input_f32(unsigned seed, int rank, size_t i)
{
    uint64_t h = mix(((uint64_t)seed << 48) ^ ((uint64_t)(unsigned)rank << 40) ^ i);
    uint32_t bits = (uint32_t)(h >> 63) << 31 |
                    (uint32_t)(127 - 12 + (h >> 32) % 25) << 23 |
                    ((uint32_t)h & 0x7FFFFFu);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void fill_input(float *x, size_t n, unsigned seed, int rank)
{
    for (size_t j = 0; j < n; j++)
        x[j] = input_f32(seed, rank, j);
}

/* Element i: each group's ranks summed in order, the group sums in group
 * order, divided once. */
static float hier_reduced(unsigned seed, size_t i, zrt_reduce_op op)
{
    float total = 0.0f;
    for (int g = 0; g < g_size / g_R; g++) {
        float part = input_f32(seed, g * g_R, i);
        for (int m = 1; m < g_R; m++)
            part += input_f32(seed, g * g_R + m, i);
        total = g == 0 ? part : total + part;
    }
    return op == ZRT_AVG ? total / (float)g_size : total;
}

/* The same element in rank order (flat). */
static float flat_reduced(unsigned seed, size_t i)
{
    float acc = input_f32(seed, 0, i);
    for (int r = 1; r < g_size; r++)
        acc += input_f32(seed, r, i);
    return acc;
}

static uint16_t input_half(unsigned seed, int rank, size_t i, zrt_half h)
{
    return zrt_f32_to_half(input_f32(seed, rank, i) * 0.01f, h);
}

/* 16-bit: the group partials summed in f32 and rounded to the type, then
 * the partials widened, summed in f32, divided, rounded once. */
static uint16_t hier_reduced_half(unsigned seed, size_t i, zrt_reduce_op op, zrt_half h)
{
    float total = 0.0f;
    for (int g = 0; g < g_size / g_R; g++) {
        float part = zrt_half_to_f32(input_half(seed, g * g_R, i, h), h);
        for (int m = 1; m < g_R; m++)
            part += zrt_half_to_f32(input_half(seed, g * g_R + m, i, h), h);
        float rounded = zrt_half_to_f32(zrt_f32_to_half(part, h), h);
        total = g == 0 ? rounded : total + rounded;
    }
    if (op == ZRT_AVG)
        total /= (float)g_size;
    return zrt_f32_to_half(total, h);
}

static const char *op_name(zrt_reduce_op op)
{
    return op == ZRT_AVG ? "avg" : "sum";
}

/* ---- comparisons -------------------------------------------------------------- */

static void expect_bits(tally *t, const float *got, size_t n, unsigned seed,
                        size_t offset, zrt_reduce_op op, const char *what)
{
    for (size_t j = 0; j < n; j++) {
        float want = hier_reduced(seed, offset + j, op);
        if (memcmp(&got[j], &want, sizeof want) != 0) {
            note(t, "%s: element %zu of %zu is %a, the hierarchical sum is %a", what, j,
                 n, (double)got[j], (double)want);
            return;
        }
    }
}

static void expect_guard(tally *t, const void *end, const char *what)
{
    const unsigned char *g = end;
    for (size_t i = 0; i < GUARD * sizeof(float); i++) {
        if (g[i] != GUARD_BYTE) {
            note(t, "%s: wrote past the end of the buffer (byte +%zu)", what, i);
            return;
        }
    }
}

static void expect_input(tally *t, const float *send, size_t n, unsigned seed,
                         const char *what)
{
    for (size_t j = 0; j < n; j++) {
        float want = input_f32(seed, g_rank, j);
        if (memcmp(&send[j], &want, sizeof want) != 0) {
            note(t, "%s: the input changed at element %zu", what, j);
            return;
        }
    }
}

static void *guarded(size_t bytes)
{
    unsigned char *x = malloc(bytes + GUARD * sizeof(float));
    ck_assert_ptr_nonnull(x);
    memset(x, GUARD_BYTE, bytes + GUARD * sizeof(float));
    return x;
}

static void complete(tally *t, zrt_status started, zrt__comm_req *const *req,
                     const char *what)
{
    if (started != ZRT_OK) {
        note(t, "%s: start returned %s: %s", what, zrt_status_str(started), g_err.text);
        return;
    }
    zrt_status st = g_comm->ops->wait(g_comm, *req);
    EXPECT(t, st == ZRT_OK, "%s: wait returned %s: %s", what, zrt_status_str(st),
           g_err.text);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the data tell the orders apart ------------------------------------------- */

/* For every grouping, the hierarchical order gives other bits than rank
 * order for some elements, and a reduce-scatter's result is the
 * hierarchical one: a flat sum would fail the checks below. */
static void order_round(tally *t)
{
    size_t count = 1000, differ = 0;
    float *send = guarded((size_t)g_size * count * sizeof(float));
    float *recv = guarded(count * sizeof(float));
    fill_input(send, (size_t)g_size * count, 1, g_rank);
    zrt__comm_req *req = NULL;
    complete(t, zrt__comm_reduce_scatter_f32(g_comm, send, recv, count, ZRT_SUM, &req),
             &req, "order reduce_scatter");
    for (size_t j = 0; j < count; j++) {
        float flat = flat_reduced(1, (size_t)g_rank * count + j);
        differ += memcmp(&recv[j], &flat, sizeof flat) != 0;
    }
    EXPECT(t, differ > 0, "the result equals the rank-order sum in all %zu elements",
           count);
    expect_bits(t, recv, count, 1, (size_t)g_rank * count, ZRT_SUM, "order");
    free(send);
    free(recv);
}

START_TEST(test_order_is_hierarchical)
{
    tally t = {0};
    each_grouping(&t, order_round);
    FINISH(&t);
}
END_TEST

/* ---- reduce-scatter and all-reduce, f32 --------------------------------------- */

static void check_reduce_scatter(tally *t, size_t count, zrt_reduce_op op, int in_place,
                                 unsigned seed)
{
    char what[128];
    snprintf(what, sizeof what, "reduce_scatter %s count %zu %s", op_name(op), count,
             in_place ? "in-place" : "out-of-place");
    size_t full = (size_t)g_size * count;
    float *send = guarded(full * sizeof(float));
    float *out = guarded(count * sizeof(float));
    fill_input(send, full, seed, g_rank);
    float *recv = in_place ? send + (size_t)g_rank * count : out;
    zrt__comm_req *req = NULL;
    complete(t, zrt__comm_reduce_scatter_f32(g_comm, send, recv, count, op, &req), &req,
             what);
    expect_bits(t, recv, count, seed, (size_t)g_rank * count, op, what);
    expect_guard(t, send + full, what);
    if (!in_place) {
        expect_guard(t, out + count, what);
        expect_input(t, send, full, seed, what);
    }
    free(out);
    free(send);
}

/* count not a multiple of N: the all-reduce pads. Its elements equal a
 * reduce-scatter's of the same (zero-padded) data, bit for bit. */
static void check_all_reduce(tally *t, size_t count, zrt_reduce_op op, int in_place,
                             unsigned seed)
{
    char what[128];
    snprintf(what, sizeof what, "all_reduce %s count %zu %s", op_name(op), count,
             in_place ? "in-place" : "out-of-place");
    float *send = guarded(count * sizeof(float));
    float *out = guarded(count * sizeof(float));
    fill_input(send, count, seed, g_rank);
    float *recv = in_place ? send : out;
    zrt__comm_req *req = NULL;
    complete(t, zrt__comm_all_reduce_f32(g_comm, send, recv, count, op, &req), &req,
             what);
    expect_bits(t, recv, count, seed, 0, op, what);
    expect_guard(t, recv + count, what);
    if (!in_place)
        expect_input(t, send, count, seed, what);
    size_t block = (count + (size_t)g_size - 1) / (size_t)g_size;
    float *padded = calloc(block * (size_t)g_size, sizeof *padded);
    float *mine = guarded(block * sizeof(float));
    fill_input(padded, count, seed, g_rank);
    complete(t, zrt__comm_reduce_scatter_f32(g_comm, padded, mine, block, op, &req), &req,
             what);
    size_t lo = (size_t)g_rank * block, hi = lo + block < count ? lo + block : count;
    if (lo < hi && memcmp(recv + lo, mine, (hi - lo) * sizeof *mine) != 0)
        note(t, "%s: differs from the reduce-scatter of the same data", what);
    free(mine);
    free(padded);
    free(out);
    free(send);
}

static void reductions_round(tally *t)
{
    static const size_t rs_counts[] = {1, 7, 1000, 65537};
    static const size_t ar_counts[] = {1, 5, 4096, 10001};
    unsigned seed = 10;
    for (int op = ZRT_SUM; op <= ZRT_AVG; op++) {
        for (size_t c = 0; c < 4; c++) {
            for (int in_place = 0; in_place <= 1; in_place++) {
                check_reduce_scatter(t, rs_counts[c], (zrt_reduce_op)op, in_place,
                                     seed++);
                check_all_reduce(t, ar_counts[c], (zrt_reduce_op)op, in_place, seed++);
            }
        }
    }
    expect_comm_idle(t, "reductions");
}

START_TEST(test_reductions_f32)
{
    tally t = {0};
    each_grouping(&t, reductions_round);
    FINISH(&t);
}
END_TEST

/* ---- 16-bit reductions -------------------------------------------------------- */

static void check_half(tally *t, zrt_dtype type, zrt_reduce_op op, unsigned seed)
{
    zrt_half h = type == ZRT_BF16 ? ZRT_HALF_BF16 : ZRT_HALF_F16;
    size_t count = 999, n = count * (size_t)g_size, ar_n = n - 3; /* pads */
    uint16_t *send = malloc(n * sizeof *send), *all = malloc(n * sizeof *all);
    uint16_t *mine = malloc(count * sizeof *mine);
    for (size_t j = 0; j < n; j++)
        send[j] = all[j] = input_half(seed, g_rank, j, h);
    zrt__comm_req *req = NULL;
    complete(t, g_comm->ops->reduce_scatter(g_comm, send, mine, count, type, op, &req),
             &req, "half reduce-scatter");
    complete(t, g_comm->ops->all_reduce(g_comm, all, all, ar_n, type, op, &req), &req,
             "half all-reduce");
    for (size_t j = 0; j < count; j++) {
        uint16_t want = hier_reduced_half(seed, (size_t)g_rank * count + j, op, h);
        EXPECT(t, mine[j] == want, "%s %s reduce-scatter element %zu: %04x, want %04x",
               zrt_dtype_str(type), op_name(op), j, mine[j], want);
    }
    for (size_t j = 0; j < ar_n; j++) {
        uint16_t want = hier_reduced_half(seed, j, op, h);
        EXPECT(t, all[j] == want, "%s %s all-reduce element %zu: %04x, want %04x",
               zrt_dtype_str(type), op_name(op), j, all[j], want);
    }
    free(send);
    free(all);
    free(mine);
}

static void half_round(tally *t)
{
    static const zrt_dtype types[2] = {ZRT_BF16, ZRT_F16};
    for (int k = 0; k < 2; k++)
        for (int op = ZRT_SUM; op <= ZRT_AVG; op++)
            check_half(t, types[k], (zrt_reduce_op)op, 70 + (unsigned)(2 * k + op));
    expect_comm_idle(t, "half reductions");
}

START_TEST(test_reductions_half)
{
    tally t = {0};
    each_grouping(&t, half_round);
    FINISH(&t);
}
END_TEST

/* ---- all-gather --------------------------------------------------------------- */

static unsigned char byte_of(unsigned seed, int rank, size_t j)
{
    return (unsigned char)(mix(((uint64_t)seed << 48) ^ ((uint64_t)rank << 40) ^ j) >>
                           24);
}

static void check_all_gather(tally *t, size_t count, zrt_dtype dtype, int in_place,
                             unsigned seed)
{
    char what[128];
    snprintf(what, sizeof what, "all_gather %s count %zu %s", zrt_dtype_str(dtype), count,
             in_place ? "in-place" : "out-of-place");
    size_t bytes = count * zrt_dtype_size(dtype), full = (size_t)g_size * bytes;
    unsigned char *recv = guarded(full), *own = malloc(bytes);
    for (size_t j = 0; j < bytes; j++)
        own[j] = byte_of(seed, g_rank, j);
    unsigned char *send = in_place ? recv + (size_t)g_rank * bytes : own;
    if (in_place)
        memcpy(send, own, bytes);
    zrt__comm_req *req = NULL;
    complete(t, g_comm->ops->all_gather(g_comm, send, recv, count, dtype, &req), &req,
             what);
    size_t bad = full;
    for (size_t j = 0; j < full && bad == full; j++)
        if (recv[j] != byte_of(seed, (int)(j / bytes), j % bytes))
            bad = j;
    EXPECT(t, bad == full, "%s: byte %zu (rank %zu's block) is wrong", what, bad,
           bytes ? bad / bytes : 0);
    expect_guard(t, recv + full, what);
    free(own);
    free(recv);
}

static void gather_round(tally *t)
{
    static const size_t counts[] = {1, 7, 1000, 65537};
    static const zrt_dtype dtypes[] = {ZRT_F32, ZRT_BF16};
    unsigned seed = 200;
    for (int d = 0; d < 2; d++)
        for (size_t c = 0; c < 4; c++)
            for (int in_place = 0; in_place <= 1; in_place++)
                check_all_gather(t, counts[c], dtypes[d], in_place, seed++);
    expect_comm_idle(t, "all_gather");
}

START_TEST(test_all_gather)
{
    tally t = {0};
    each_grouping(&t, gather_round);
    FINISH(&t);
}
END_TEST

/* ---- repeatability ------------------------------------------------------------ */

/* The same reduction twice, and once more with other collectives in flight
 * around it: the same bits every time. */
static void repeat_round(tally *t)
{
    size_t count = 4099;
    float *send = guarded(count * sizeof(float));
    float *first = guarded(count * sizeof(float)),
          *again = guarded(count * sizeof(float));
    float *noise = guarded((size_t)g_size * 64 * sizeof(float));
    fill_input(send, count, 300, g_rank);
    fill_input(noise, (size_t)g_size * 64, 301, g_rank);
    zrt__comm_req *req = NULL, *other = NULL;
    complete(t, zrt__comm_all_reduce_f32(g_comm, send, first, count, ZRT_AVG, &req), &req,
             "repeat 1");
    zrt_status st =
        zrt__comm_reduce_scatter_f32(g_comm, noise, noise, 64, ZRT_SUM, &other);
    complete(t, zrt__comm_all_reduce_f32(g_comm, send, again, count, ZRT_AVG, &req), &req,
             "repeat 2");
    complete(t, st, &other, "repeat, in flight around it");
    EXPECT(t, memcmp(first, again, count * sizeof *first) == 0,
           "the same all-reduce gave other bits the second time");
    expect_bits(t, again, count, 300, 0, ZRT_AVG, "repeat");
    free(noise);
    free(again);
    free(first);
    free(send);
}

START_TEST(test_repeatable)
{
    tally t = {0};
    each_grouping(&t, repeat_round);
    FINISH(&t);
}
END_TEST

/* ---- several collectives in flight -------------------------------------------- */

typedef enum flight_kind { F_RS, F_AR, F_AG } flight_kind;

typedef struct flight {
    flight_kind kind;
    zrt_reduce_op op;
    size_t count; /* reduce-scatter, all-gather: per rank; all-reduce: total */
    int in_place;
    unsigned seed;
    float *send, *recv, *out;
    zrt__comm_req *req;
    int started, done;
    char what[96];
} flight;

enum { NFLIGHT = 6 };

static void plan_flights(flight f[NFLIGHT], unsigned seed)
{
    static const struct {
        flight_kind kind;
        zrt_reduce_op op;
        size_t count;
        int in_place;
    } plan[NFLIGHT] = {{F_RS, ZRT_SUM, 1000, 0}, {F_AR, ZRT_SUM, 10001, 0},
                       {F_AG, ZRT_SUM, 777, 1},  {F_RS, ZRT_AVG, 65537, 1},
                       {F_AR, ZRT_AVG, 4096, 1}, {F_AG, ZRT_SUM, 5, 0}};
    static const char *const names[] = {"reduce_scatter", "all_reduce", "all_gather"};
    for (int i = 0; i < NFLIGHT; i++) {
        f[i] = (flight){.kind = plan[i].kind,
                        .op = plan[i].op,
                        .count = plan[i].count,
                        .in_place = plan[i].in_place,
                        .seed = seed + (unsigned)i};
        snprintf(f[i].what, sizeof f[i].what, "in flight #%d: %s %s count %zu", i,
                 names[f[i].kind], op_name(f[i].op), f[i].count);
    }
}

static size_t full_len(const flight *f)
{
    return f->kind == F_AR ? f->count : (size_t)g_size * f->count;
}

static zrt_status start_one(flight *f)
{
    size_t mine = (size_t)g_rank * f->count;
    if (f->kind == F_AG) {
        f->send = guarded(f->count * sizeof(float));
        f->out = guarded(full_len(f) * sizeof(float));
        fill_input(f->send, f->count, f->seed, g_rank);
        if (f->in_place)
            memcpy(f->out + mine, f->send, f->count * sizeof(float));
        return g_comm->ops->all_gather(g_comm, f->in_place ? f->out + mine : f->send,
                                       f->out, f->count, ZRT_F32, &f->req);
    }
    f->send = guarded(full_len(f) * sizeof(float));
    f->out = guarded(f->count * sizeof(float));
    fill_input(f->send, full_len(f), f->seed, g_rank);
    if (f->kind == F_AR) {
        f->recv = f->in_place ? f->send : f->out;
        return zrt__comm_all_reduce_f32(g_comm, f->send, f->recv, f->count, f->op,
                                        &f->req);
    }
    f->recv = f->in_place ? f->send + mine : f->out;
    return zrt__comm_reduce_scatter_f32(g_comm, f->send, f->recv, f->count, f->op,
                                        &f->req);
}

static void start_flight(tally *t, flight *f)
{
    zrt_status st = start_one(f);
    f->started = st == ZRT_OK;
    EXPECT(t, f->started, "%s: start returned %s: %s", f->what, zrt_status_str(st),
           g_err.text);
}

static void wait_flight(tally *t, flight *f)
{
    if (!f->started || f->done)
        return;
    zrt_status st = g_comm->ops->wait(g_comm, f->req);
    EXPECT(t, st == ZRT_OK, "%s: wait returned %s: %s", f->what, zrt_status_str(st),
           g_err.text);
    f->done = 1;
}

static void verify_flight(tally *t, flight *f)
{
    if (f->kind == F_AG) {
        for (int r = 0; r < g_size; r++)
            for (size_t j = 0; j < f->count; j++) {
                float want = input_f32(f->seed, r, j);
                float got = f->out[(size_t)r * f->count + j];
                if (memcmp(&got, &want, sizeof got) != 0) {
                    note(t, "%s: rank %d's element %zu is wrong", f->what, r, j);
                    r = g_size;
                    break;
                }
            }
    } else {
        size_t offset = f->kind == F_AR ? 0 : (size_t)g_rank * f->count;
        expect_bits(t, f->recv, f->count, f->seed, offset, f->op, f->what);
    }
    free(f->out);
    free(f->send);
}

/* Completes one request by polling it alone; 0 if it is stuck (another
 * rank holds what it needs and waits for us). */
static int poll_one(tally *t, flight *f)
{
    double give_up = now_s() + STUCK_S;
    int done = 0;
    while (f->started && !done && now_s() < give_up) {
        zrt_status st = g_comm->ops->test(g_comm, f->req, &done);
        if (st != ZRT_OK) {
            note(t, "%s: test returned %s: %s", f->what, zrt_status_str(st), g_err.text);
            break;
        }
    }
    if (!done)
        return !f->started;
    wait_flight(t, f);
    return 1;
}

/* Even ranks complete the requests in `order`, odd ranks in its reverse,
 * each request polled alone: a rank must not hold back a phase another
 * rank waits for. A standoff is reported, then resolved by waiting in
 * start order. */
static void complete_per_rank(tally *t, flight f[NFLIGHT], const int *order)
{
    int reverse = g_rank % 2 == 1;
    for (int i = 0; i < NFLIGHT; i++) {
        flight *next = &f[order[reverse ? NFLIGHT - 1 - i : i]];
        if (!poll_one(t, next)) {
            note(t, "%s: no progress in %.0f s with per-rank wait orders (deadlock)",
                 next->what, STUCK_S);
            break;
        }
    }
    for (int i = 0; i < NFLIGHT; i++)
        wait_flight(t, &f[i]);
}

static void flights_round(tally *t)
{
    static const int shuffled[NFLIGHT] = {3, 5, 1, 4, 0, 2};
    for (int per_rank = 0; per_rank <= 1; per_rank++) {
        flight f[NFLIGHT];
        plan_flights(f, 400 + 10 * (unsigned)per_rank);
        for (int i = 0; i < NFLIGHT; i++)
            start_flight(t, &f[i]);
        if (per_rank) {
            complete_per_rank(t, f, shuffled);
        } else {
            for (int i = 0; i < NFLIGHT; i++)
                wait_flight(t, &f[shuffled[i]]);
        }
        for (int i = 0; i < NFLIGHT; i++)
            verify_flight(t, &f[i]);
    }
    expect_comm_idle(t, "in flight");
}

START_TEST(test_in_flight)
{
    tally t = {0};
    each_grouping(&t, flights_round);
    FINISH(&t);
}
END_TEST

/* ---- traffic and scratch ------------------------------------------------------ */

typedef struct sent {
    uint64_t layers_same, layers_other, other_same, other_other, other_group, colls;
} sent;

static sent sent_now(void)
{
    const zrt__comm_traffic *tr = &g_comm->traffic;
    return (sent){tr->layers.same_host, tr->layers.other_host, tr->other.same_host,
                  tr->other.other_host, tr->other_group,       tr->collectives};
}

/* What one collective added: all to this host (one host), the part to
 * other groups as expected. */
static void expect_sent(tally *t, sent before, int layer, uint64_t total,
                        uint64_t to_other_groups, const char *what)
{
    sent now = sent_now();
    uint64_t same = layer >= 0 ? now.layers_same - before.layers_same
                               : now.other_same - before.other_same;
    uint64_t unlabeled = layer >= 0 ? now.other_same - before.other_same
                                    : now.layers_same - before.layers_same;
    EXPECT(t, same == total, "%s: %llu bytes to this host, expected %llu", what,
           (unsigned long long)same, (unsigned long long)total);
    EXPECT(t, unlabeled == 0, "%s: %llu bytes counted under the wrong label", what,
           (unsigned long long)unlabeled);
    EXPECT(t,
           now.layers_other == before.layers_other &&
               now.other_other == before.other_other,
           "%s: bytes to another host, but every rank is on this one", what);
    EXPECT(t, now.other_group - before.other_group == to_other_groups,
           "%s: %llu bytes to other groups, expected %llu", what,
           (unsigned long long)(now.other_group - before.other_group),
           (unsigned long long)to_other_groups);
    EXPECT(t, now.colls == before.colls + 1, "%s: counted %llu collectives, expected 1",
           what, (unsigned long long)(now.colls - before.colls));
}

/* A reduce-scatter of B floats per rank: N - 1 blocks sent, G - 1 of them
 * to other groups (flat: N - R), and a scratch of N blocks in flight, as
 * flat. An all-reduce sends twice that, an all-gather the same. */
static void traffic_round(tally *t)
{
    const size_t B = 1024, N = (size_t)g_size, G = N / (size_t)g_R;
    const uint64_t block = B * sizeof(float);
    float *buf = guarded(N * B * sizeof(float)), *mine = guarded(B * sizeof(float));
    fill_input(buf, N * B, 500, g_rank);
    zrt__comm_req *req = NULL;

    sent before = sent_now();
    zrt__comm_for_layer(g_comm, 3);
    zrt_status st = zrt__comm_reduce_scatter_f32(g_comm, buf, mine, B, ZRT_SUM, &req);
    EXPECT(t, comm_bytes_now() == (int64_t)(N * block),
           "a hierarchical reduce-scatter holds %lld bytes of scratch, flat %llu",
           (long long)comm_bytes_now(), (unsigned long long)(N * block));
    complete(t, st, &req, "counted reduce_scatter");
    expect_sent(t, before, 3, (N - 1) * block, (G - 1) * block, "reduce_scatter");

    before = sent_now();
    complete(t, zrt__comm_all_reduce_f32(g_comm, buf, buf, N * B, ZRT_SUM, &req), &req,
             "counted all_reduce");
    expect_sent(t, before, -1, 2 * (N - 1) * block, 2 * (G - 1) * block, "all_reduce");

    before = sent_now();
    zrt__comm_for_layer(g_comm, 4);
    complete(t, g_comm->ops->all_gather(g_comm, mine, buf, B, ZRT_F32, &req), &req,
             "counted all_gather");
    expect_sent(t, before, 4, (N - 1) * block, (G - 1) * block, "all_gather");

    /* Flat, by the same groups: R times the bytes across groups. */
    route(t, ZRT_COMM_HIER_FLAT, g_R);
    before = sent_now();
    complete(t, zrt__comm_reduce_scatter_f32(g_comm, buf, mine, B, ZRT_SUM, &req), &req,
             "flat reduce_scatter");
    expect_sent(t, before, -1, (N - 1) * block, (N - (size_t)g_R) * block,
                "flat reduce_scatter");
    route(t, ZRT_COMM_HIER_HIERARCHICAL, g_R);
    expect_comm_idle(t, "traffic");
    free(mine);
    free(buf);
}

START_TEST(test_traffic)
{
    tally t = {0};
    each_grouping(&t, traffic_round);
    FINISH(&t);
}
END_TEST

/* ---- choosing the routing ----------------------------------------------------- */

/* pick_topology on invented host layouts: st, hierarchical, group size and
 * a phrase of the sentence (the error, or why). */
static void expect_pick(tally *t, const int *hosts, int size, int hierarchy, int group,
                        zrt_status want_st, int want_hier, int want_group,
                        const char *phrase)
{
    zrt__errbuf err = {.rank = -1};
    zrt__comm_topology top = {.hierarchical = -1, .group_size = -1};
    zrt_status st = zrt__comm_pick_topology(hosts, size, hierarchy, group, &err, &top);
    const char *text = st == ZRT_OK ? top.why : err.text;
    EXPECT(t, st == want_st, "pick(%d ranks, %d, %d): %s, expected %s (%s)", size,
           hierarchy, group, zrt_status_str(st), zrt_status_str(want_st), text);
    if (st == ZRT_OK && want_st == ZRT_OK)
        EXPECT(t, top.hierarchical == want_hier && top.group_size == want_group,
               "pick(%d ranks, %d, %d): hierarchical %d, groups of %d; expected %d, %d",
               size, hierarchy, group, top.hierarchical, top.group_size, want_hier,
               want_group);
    EXPECT(t, strstr(text, phrase) != NULL, "pick(%d ranks, %d, %d): \"%s\" lacks \"%s\"",
           size, hierarchy, group, text, phrase);
}

START_TEST(test_pick_topology)
{
    tally t = {0};
    const int two_hosts[4] = {0, 0, 2, 2}, one_host[4] = {0, 0, 0, 0};
    const int uneven[4] = {0, 0, 0, 3}, scattered[4] = {0, 1, 0, 1};
    const int AUTO = ZRT_COMM_HIER_AUTO, FLAT = ZRT_COMM_HIER_FLAT,
              HIER = ZRT_COMM_HIER_HIERARCHICAL;
    expect_pick(&t, two_hosts, 4, AUTO, 0, ZRT_OK, 1, 2, "2 groups of 2 ranks");
    expect_pick(&t, two_hosts, 4, FLAT, 0, ZRT_OK, 0, 2, "flat");
    expect_pick(&t, one_host, 4, AUTO, 0, ZRT_OK, 0, 4, "1 group of 4 ranks");
    expect_pick(&t, one_host, 4, HIER, 0, ZRT_OK, 0, 4, "rank order");
    expect_pick(&t, one_host, 4, AUTO, 2, ZRT_OK, 1, 2, "comm_group_size");
    expect_pick(&t, one_host, 4, HIER, 1, ZRT_OK, 0, 1, "4 groups of 1 rank");
    expect_pick(&t, uneven, 4, AUTO, 0, ZRT_OK, 0, 0, "hold 3, 1 ranks");
    expect_pick(&t, uneven, 4, HIER, 2, ZRT_OK, 1, 2, "hierarchical");
    expect_pick(&t, uneven, 4, HIER, 0, ZRT_ERR_CONFIG, 0, 0,
                "'comm_hierarchy' is \"hierarchical\" with 'comm_group_size' 0 (a group "
                "per host), but the 4 ranks' hosts hold 3, 1 ranks");
    expect_pick(&t, scattered, 4, HIER, 0, ZRT_ERR_CONFIG, 0, 0, "not consecutive");
    expect_pick(&t, scattered, 4, AUTO, 0, ZRT_OK, 0, 0, "not consecutive");
    expect_pick(&t, one_host, 4, HIER, 3, ZRT_ERR_CONFIG, 0, 0,
                "'comm_group_size' is 3 but the job has 4 ranks; the world size must be "
                "a multiple of the group size");
    expect_pick(&t, one_host, 4, 7, 0, ZRT_ERR_CONFIG, 0, 0, "'comm_hierarchy' is 7");
    expect_pick(&t, one_host, 4, AUTO, -2, ZRT_ERR_CONFIG, 0, 0,
                "'comm_group_size' is -2");
    FINISH(&t);
}
END_TEST

/* ---- a bad configuration is refused ------------------------------------------- */

static void expect_refused(tally *t, zrt_status st, zrt_status want, const char *text,
                           const char *phrase, const char *what)
{
    EXPECT(t, st == want, "%s: %s, expected %s", what, zrt_status_str(st),
           zrt_status_str(want));
    EXPECT(t, strstr(text, phrase) != NULL, "%s: \"%s\" lacks \"%s\"", what, text,
           phrase);
}

/* The communicator refuses groups that do not divide the world, and a
 * change while a collective is in flight; the config refuses bad values. */
static void check_comm_refusals(tally *t)
{
    char why[256], phrase[96];
    int bad = g_size - 1; /* divides neither 4 nor 6 */
    zrt_status st = g_comm->ops->set_hierarchy(g_comm, ZRT_COMM_HIER_HIERARCHICAL, bad,
                                               why, sizeof why);
    snprintf(phrase, sizeof phrase, "'comm_group_size' is %d but the job has %d ranks",
             bad, g_size);
    expect_refused(t, st, ZRT_ERR_CONFIG, g_err.text, phrase, "group size not dividing");
    EXPECT(t, g_comm->hierarchical == 0, "a refused routing changed the communicator");
    float x[64] = {0};
    zrt__comm_req *req = NULL;
    st = zrt__comm_all_reduce_f32(g_comm, x, x, 64, ZRT_SUM, &req);
    zrt_status busy =
        g_comm->ops->set_hierarchy(g_comm, ZRT_COMM_HIER_FLAT, 0, why, sizeof why);
    expect_refused(t, busy, ZRT_ERR_STATE, g_err.text, "in flight", "change in flight");
    complete(t, st, &req, "all_reduce during a refused change");
}

static void check_config_refusals(tally *t)
{
    zrt_config cfg;
    char err[512] = "";
    zrt_config_init(&cfg);
    EXPECT(t, cfg.comm_hierarchy == ZRT_COMM_HIER_AUTO && cfg.comm_group_size == 0,
           "defaults: comm_hierarchy %d, comm_group_size %d", cfg.comm_hierarchy,
           cfg.comm_group_size);
    zrt_status st = zrt_config_load_string(
        &cfg, "{\"comm_hierarchy\": \"hierarchical\", \"comm_group_size\": 3}", err,
        sizeof err);
    EXPECT(t,
           st == ZRT_OK && cfg.comm_hierarchy == ZRT_COMM_HIER_HIERARCHICAL &&
               cfg.comm_group_size == 3,
           "reading the keys: %s (%s)", zrt_status_str(st), err);
    st = zrt_config_load_string(&cfg, "{\"comm_hierarchy\": \"tree\"}", err, sizeof err);
    expect_refused(t, st, ZRT_ERR_CONFIG, err,
                   "it must be \"auto\", \"flat\" or \"hierarchical\"",
                   "comm_hierarchy tree");
    st = zrt_config_load_string(&cfg, "{\"comm_group_size\": -1}", err, sizeof err);
    expect_refused(t, st, ZRT_ERR_CONFIG, err, "'comm_group_size'", "comm_group_size -1");
    st = zrt_config_load_string(&cfg, "{\"comm_group_size\": \"2\"}", err, sizeof err);
    expect_refused(t, st, ZRT_ERR_CONFIG, err, "0 (a group per host)",
                   "comm_group_size \"2\"");
    cfg.comm_hierarchy = 5;
    st = zrt_config_validate(&cfg, err, sizeof err);
    expect_refused(t, st, ZRT_ERR_CONFIG, err, "'comm_hierarchy' is 5", "validate");
}

/* A context whose groups do not divide the world is not created. */
static void check_context_refusal(tally *t)
{
    zrt_config cfg;
    zrt_config_init(&cfg);
    cfg.comm_hierarchy = ZRT_COMM_HIER_HIERARCHICAL;
    cfg.comm_group_size = g_size - 1;
    cfg.log_level = 0;
    zrt_ctx *ctx = NULL;
    zrt_status st = zrt_ctx_create(&cfg, &ctx);
    EXPECT(t, st == ZRT_ERR_CONFIG && ctx == NULL,
           "a context with groups of %d on %d ranks: %s", g_size - 1, g_size,
           zrt_status_str(st));
    if (ctx)
        zrt_ctx_destroy(ctx);
}

START_TEST(test_bad_config_refused)
{
    tally t = {0};
    check_comm_refusals(&t);
    check_config_refusals(&t);
    check_context_refusal(&t);
    route(&t, ZRT_COMM_HIER_FLAT, 0);
    FINISH(&t);
}
END_TEST

/* ---- auto on one host --------------------------------------------------------- */

/* One host: auto is flat (one group); auto with comm_group_size is
 * hierarchical. */
START_TEST(test_auto)
{
    tally t = {0};
    route(&t, ZRT_COMM_HIER_AUTO, 0);
    EXPECT(&t, g_comm->hierarchical == 0 && g_comm->group_size == g_size,
           "auto on one host: hierarchical %d, group_size %d", g_comm->hierarchical,
           g_comm->group_size);
    route(&t, ZRT_COMM_HIER_AUTO, 2);
    EXPECT(&t, g_comm->hierarchical == 1 && g_comm->group_size == 2,
           "auto with groups of 2: hierarchical %d, group_size %d", g_comm->hierarchical,
           g_comm->group_size);
    order_round(&t);
    route(&t, ZRT_COMM_HIER_FLAT, 0);
    FINISH(&t);
}
END_TEST

/* ---- a lost peer is named ----------------------------------------------------- */

/* The failed request, kept reachable (a leak checker's view): MPI may still
 * write into its buffers, so nothing frees it. */
static zrt__comm_req *g_lost_req;
static float g_lost_buf[64]; /* 2 floats a rank, up to 32 ranks */

static void expect_named(tally *t, zrt__comm *c, zrt__errbuf *err)
{
    float *x = g_lost_buf;
    zrt__comm_req *req = NULL;
    zrt__comm_for_layer(c, 5);
    zrt_status st = zrt__comm_all_reduce_f32(c, x, x, (size_t)g_size * 2, ZRT_SUM, &req);
    if (st == ZRT_OK) {
        g_lost_req = req;
        st = c->ops->wait(c, req);
    }
    EXPECT(t, st == ZRT_ERR_REMOTE, "the all-reduce with rank 1 silent: %s (%s)",
           zrt_status_str(st), err->text);
    /* rank 0 waits for rank 1 in its group; the other even ranks for rank 0
     * (stuck there) across groups; the odd ranks for rank 1 across groups */
    const char *phrases[] = {"all-reduce of", "for layer 5",
                             g_rank == 0 ? "(hierarchical, within the group)"
                                         : "(hierarchical, across groups)",
                             g_rank % 2 || g_rank == 0 ? "no answer from rank 1 "
                                                       : "no answer from rank 0 "};
    for (int i = 0; i < 4; i++)
        EXPECT(t, strstr(err->text, phrases[i]) != NULL,
               "timeout sentence \"%s\" lacks \"%s\"", err->text, phrases[i]);
}

/* Rank 1 never starts an all-reduce the others start on a communicator of
 * their own (groups of 2, a 1 s timeout). Each sentence names the
 * collective, its layer, its phase and the peer that did not answer. Last
 * in the suite: the failed request keeps its scratch, and its messages stay
 * posted. */
START_TEST(test_timeout_names_peers)
{
    tally t = {0};
    zrt__errbuf err = {.rank = g_rank};
    zrt__comm *c = NULL;
    char why[256];
    if (zrt__comm_mpi_create(g_be, &err, &c) != ZRT_OK ||
        c->ops->set_hierarchy(c, ZRT_COMM_HIER_HIERARCHICAL, 2, why, sizeof why) !=
            ZRT_OK)
        note(&t, "cannot make the communicator: %s", err.text);
    if (c && t.fails == 0 && g_rank != 1) {
        c->timeout_seconds = 1.0;
        expect_named(&t, c, &err);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (c)
        c->ops->destroy(c); /* the failed one: neither freed in MPI nor finalized */
    FINISH(&t);
}
END_TEST

/* ---- runner ------------------------------------------------------------------- */

static Suite *hier_suite(void)
{
    return ZRT_CHECK_SUITE("comm_hier", 120, test_pick_topology,
                           test_order_is_hierarchical, test_reductions_f32,
                           test_reductions_half, test_all_gather, test_repeatable,
                           test_in_flight, test_traffic, test_auto,
                           test_bad_config_refused, test_timeout_names_peers);
}

static int setup_comm(void)
{
    zrt__mem_account_init(&g_acct);
    if (zrt__backend_cpu_create(&g_acct, &g_err, NULL, &g_be) != ZRT_OK ||
        zrt__comm_mpi_create(g_be, &g_err, &g_comm) != ZRT_OK) {
        fprintf(stderr, "test_comm_hier: cannot create the communicator: %s\n",
                g_err.text);
        return -1;
    }
    g_rank = g_comm->rank;
    g_size = g_comm->size;
    g_err.rank = g_rank;
    return 0;
}

int main(void)
{
    if (setup_comm() != 0)
        return 1;
    if (g_size < 4 || g_size > 32) {
        if (g_rank == 0)
            printf("test_comm_hier: runs on 4 to 32 ranks (2 groups of 2 or more)\n");
        g_comm->ops->destroy(g_comm);
        g_be->ops->destroy(g_be);
        return 77;
    }
    int failed = zrt_check_main_mpi(hier_suite(), "comm_hier");
    g_comm->ops->destroy(g_comm);
    g_be->ops->destroy(g_be);
    return failed;
}
