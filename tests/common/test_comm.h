/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/common/test_comm.h — what the communicator tests share instead of
 * copies (tests/mpi/test_comm*.c, tests/cuda/test_comm_cuda.c). Header-only,
 * like test_common.h, which it includes; needs <mpi.h> and the runtime's
 * internal headers.
 *
 * For the Check suites (test_comm.c, test_comm_hier.c), where a test records
 * its mismatches and asserts once after its last collective, so a rank that
 * fails keeps starting the collectives the others start:
 *   - tc_world: the communicator under test and the order its reductions
 *     must follow; a tally of one test's failures, note, EXPECT, FINISH
 *     (FINISH is ck_assert_msg: include <check.h> where it is used);
 *   - inputs that are a hash of (seed, rank, element), so every rank can
 *     compute every other's, and the reference reductions over them, bit
 *     for bit, in rank order or group by group;
 *   - buffers with a guard after them, the comparisons, complete (start,
 *     then wait), and the scratch the communicator holds;
 *   - the checks both suites run: reduce-scatter, all-reduce, all-gather,
 *     the 16-bit reductions, and several collectives in flight at once.
 * Both make their communicator with tc_create_cpu_world. For the plain
 * programs (no Check): tc_ok, tc_mpi_start, tc_exit_status.
 */
#ifndef ZRT_TEST_COMM_H
#define ZRT_TEST_COMM_H

#include <mpi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/backend.h"
#include "runtime/comm.h"
#include "runtime/memory.h"
#include "test_common.h"

#define TC_GUARD_BYTES  64   /* after each guarded buffer */
#define TC_GUARD_BYTE   0xA5 /* fills guards and buffers to be overwritten */
#define TC_POLL_LIMIT_S 60.0 /* test() polling gives up after this long */
#define TC_STUCK_S      20.0 /* one request polled alone: deadlocked after */

/* ---- the world and a test's tally ---------------------------------------------
 * group: the ranks a group when reductions run in two levels (each group's
 * ranks summed in order, then the group sums in group order); 0: rank
 * order. The reference sums follow it, and note names it. The
 * communicator's err and its backend's account are read from comm. */

typedef struct tc_world {
    zrt__comm *comm;
    int group;
} tc_world;

typedef struct tally {
    const tc_world *w;
    int fails;
    char first[512];
} tally;

static inline void note(tally *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records a failure: the first is kept for FINISH, the first five printed. */
static inline void note(tally *t, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (t->fails == 0)
        snprintf(t->first, sizeof t->first, "%s", text);
    const zrt__comm *c = t->w->comm;
    if (t->fails < 5 && t->w->group > 0)
        fprintf(stderr, "rank %d/%d (groups of %d): %s\n", c->rank, c->size, t->w->group,
                text);
    else if (t->fails < 5)
        fprintf(stderr, "rank %d/%d: %s\n", c->rank, c->size, text);
    t->fails++;
}

#define EXPECT(t, cond, ...)                                                             \
    do {                                                                                 \
        if (!(cond))                                                                     \
            note((t), __VA_ARGS__);                                                      \
    } while (0)

/* Asserts at the end of a test, after its last collective. */
#define FINISH(t)                                                                        \
    ck_assert_msg((t)->fails == 0, "rank %d/%d: %d failed expectation(s), first: %s",    \
                  (t)->w->comm->rank, (t)->w->comm->size, (t)->fails, (t)->first)

/* Seconds on a monotonic clock. */
static inline double tc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Bytes of comm scratch charged to the device tier: now, and at the most. */
static inline int64_t tc_comm_bytes_now(const tc_world *w)
{
    return w->comm->be->acct->stats.current[ZRT_TIER_DEVICE][ZRT_CAT_COMM];
}

static inline int64_t tc_comm_bytes_peak(const tc_world *w)
{
    return w->comm->be->acct->stats.peak[ZRT_TIER_DEVICE][ZRT_CAT_COMM];
}

/* Every test ends with no scratch held: all its requests were waited. */
static inline void tc_expect_comm_idle(tally *t, const char *what)
{
    EXPECT(t, tc_comm_bytes_now(t->w) == 0,
           "%s: %lld bytes of comm scratch still charged after every request was "
           "waited",
           what, (long long)tc_comm_bytes_now(t->w));
}

/* ---- deterministic inputs and the reference reductions ------------------------ */

/* The first splitmix64 output seeded with (seed, rank, element). */
static inline uint64_t tc_hash(unsigned seed, int rank, size_t i)
{
    test_rng r =
        test_rng_seed(((uint64_t)seed << 48) ^ ((uint64_t)(unsigned)rank << 40) ^ i);
    return test_rng_next(&r);
}

/* Rank `rank`'s element i: random sign and mantissa, exponent 2^-12..2^12
 * (25 binary orders: sums in other orders give other bits). */
static inline float tc_input_f32(unsigned seed, int rank, size_t i)
{
    uint64_t h = tc_hash(seed, rank, i);
    return test_f32_of((uint32_t)(h >> 63) << 31 |
                       (uint32_t)(127 - 12 + (h >> 32) % 25) << 23 |
                       ((uint32_t)h & 0x7FFFFFu));
}

/* The same element as a 16-bit value. */
static inline uint16_t tc_input_half(unsigned seed, int rank, size_t i, zrt_half h)
{
    return zrt_f32_to_half(tc_input_f32(seed, rank, i) * 0.01f, h);
}

static inline unsigned char tc_input_byte(unsigned seed, int rank, size_t i)
{
    return (unsigned char)(tc_hash(seed, rank, i) >> 24);
}

/* x[j] = rank's element offset + j. */
static inline void tc_fill_f32(float *x, size_t n, unsigned seed, int rank, size_t offset)
{
    for (size_t j = 0; j < n; j++)
        x[j] = tc_input_f32(seed, rank, offset + j);
}

static inline void tc_fill_bytes(unsigned char *x, size_t n, unsigned seed, int rank)
{
    for (size_t j = 0; j < n; j++)
        x[j] = tc_input_byte(seed, rank, j);
}

/* Element i reduced over every rank in w's order (one group: rank order),
 * divided once for ZRT_AVG. */
static inline float tc_reduced(const tc_world *w, unsigned seed, size_t i,
                               zrt_reduce_op op)
{
    int n = w->comm->size, R = w->group > 0 ? w->group : n;
    float total = 0.0f;
    for (int g = 0; g < n / R; g++) {
        float part = tc_input_f32(seed, g * R, i);
        for (int m = 1; m < R; m++)
            part += tc_input_f32(seed, g * R + m, i);
        total = g == 0 ? part : total + part;
    }
    return op == ZRT_AVG ? total / (float)n : total;
}

/* 16-bit: the widened values summed in f32 in w's order, each group's
 * partial rounded to the type between the two levels (when there are
 * two), then divided and rounded once. */
static inline uint16_t tc_reduced_half(const tc_world *w, unsigned seed, size_t i,
                                       zrt_reduce_op op, zrt_half h)
{
    int n = w->comm->size, R = w->group > 0 ? w->group : n;
    float total = 0.0f;
    for (int g = 0; g < n / R; g++) {
        float part = zrt_half_to_f32(tc_input_half(seed, g * R, i, h), h);
        for (int m = 1; m < R; m++)
            part += zrt_half_to_f32(tc_input_half(seed, g * R + m, i, h), h);
        if (R < n)
            part = zrt_half_to_f32(zrt_f32_to_half(part, h), h);
        total = g == 0 ? part : total + part;
    }
    if (op == ZRT_AVG)
        total /= (float)n;
    return zrt_f32_to_half(total, h);
}

static inline const char *tc_op_name(zrt_reduce_op op)
{
    return op == ZRT_AVG ? "avg" : "sum";
}

/* ---- buffers and comparisons -------------------------------------------------- */

/* bytes plus a guard after them, every byte TC_GUARD_BYTE. */
static inline void *tc_guarded(size_t bytes)
{
    unsigned char *x = test_xmalloc(bytes + TC_GUARD_BYTES);
    memset(x, TC_GUARD_BYTE, bytes + TC_GUARD_BYTES);
    return x;
}

static inline void tc_expect_guard(tally *t, const void *end, const char *what)
{
    const unsigned char *g = end;
    for (size_t i = 0; i < TC_GUARD_BYTES; i++) {
        if (g[i] != TC_GUARD_BYTE) {
            note(t, "%s: wrote past the end of the buffer (byte +%zu)", what, i);
            return;
        }
    }
}

/* The first of n elements of `size` bytes where a and b differ, or n. */
static inline size_t tc_first_diff(const void *a, const void *b, size_t n, size_t size)
{
    const unsigned char *x = a, *y = b;
    if (n == 0 || memcmp(x, y, n * size) == 0)
        return n;
    size_t i = 0;
    while (memcmp(x + i * size, y + i * size, size) == 0)
        i++;
    return i;
}

static inline void tc_expect_bytes(tally *t, const void *got, const void *want, size_t n,
                                   const char *what)
{
    const unsigned char *g = got, *w = want;
    size_t i = tc_first_diff(got, want, n, 1);
    if (i < n)
        note(t, "%s: byte %zu of %zu is 0x%02x, expected 0x%02x", what, i, n, g[i], w[i]);
}

/* got is elements offset.. of the reduction of seed's inputs in w's order. */
static inline void tc_expect_reduced(tally *t, const float *got, size_t n, unsigned seed,
                                     size_t offset, zrt_reduce_op op, const char *what)
{
    for (size_t j = 0; j < n; j++) {
        float want = tc_reduced(t->w, seed, offset + j, op);
        if (memcmp(&got[j], &want, sizeof want) != 0) {
            note(t, "%s: element %zu of %zu is %a, expected %a (the %s sum)", what, j, n,
                 (double)got[j], (double)want,
                 t->w->group > 0 ? "hierarchical" : "rank-order");
            return;
        }
    }
}

/* This rank's input regenerated: an out-of-place collective left send alone. */
static inline void tc_expect_input(tally *t, const float *send, size_t n, unsigned seed,
                                   const char *what)
{
    for (size_t j = 0; j < n; j++) {
        float want = tc_input_f32(seed, t->w->comm->rank, j);
        if (memcmp(&send[j], &want, sizeof want) != 0) {
            note(t, "%s: the input changed at element %zu of %zu: %a, expected %a", what,
                 j, n, (double)send[j], (double)want);
            return;
        }
    }
}

/* Waits a started collective; records a failed start or wait. req is read
 * here, after the start call in the argument list has written it. */
static inline void tc_complete(tally *t, zrt_status started, zrt__comm_req *const *req,
                               const char *what)
{
    zrt__comm *c = t->w->comm;
    if (started != ZRT_OK) {
        note(t, "%s: start returned %s: %s", what, zrt_status_str(started), c->err->text);
        return;
    }
    zrt_status st = c->ops->wait(c, *req);
    EXPECT(t, st == ZRT_OK, "%s: wait returned %s: %s", what, zrt_status_str(st),
           c->err->text);
}

/* ---- a collective checked -----------------------------------------------------
 * A reduce-scatter, all-reduce or all-gather of f32 with inputs from a
 * seed, named in `what` ("reduce_scatter sum count 7 in-place"), started,
 * completed, then checked: its result against the reference bit for bit,
 * the guard after every buffer, and an out-of-place call's input left
 * alone. Several may be in flight at once (tc_run_flights). */

typedef enum tc_coll { TC_REDUCE_SCATTER, TC_ALL_REDUCE, TC_ALL_GATHER } tc_coll;

typedef struct tc_flight_plan {
    tc_coll coll;
    zrt_reduce_op op; /* reductions */
    size_t count;     /* reduce-scatter, all-gather: per rank; all-reduce: total */
    int in_place;
} tc_flight_plan;

typedef struct tc_flight {
    tc_flight_plan p;
    unsigned seed;
    float *send, *recv, *out; /* recv: out, or in send (reductions in place) */
    zrt__comm_req *req;
    int started, done;
    char what[112];
} tc_flight;

/* A flight of p with inputs from seed, named prefix (may be "") and then
 * what it does. */
static inline tc_flight tc_flight_of(tc_flight_plan p, unsigned seed, const char *prefix)
{
    static const char *const names[] = {"reduce_scatter", "all_reduce", "all_gather"};
    tc_flight f = {.p = p, .seed = seed};
    snprintf(f.what, sizeof f.what, "%s%s %s count %zu %s", prefix, names[p.coll],
             tc_op_name(p.op), p.count, p.in_place ? "in-place" : "out-of-place");
    return f;
}

/* Elements of send: the world's blocks, but an all-reduce's count. */
static inline size_t tc_flight_full(const tc_world *w, const tc_flight *f)
{
    return f->p.coll == TC_ALL_REDUCE ? f->p.count : (size_t)w->comm->size * f->p.count;
}

/* The buffers, then the start. In place, a reduce-scatter's recv and an
 * all-gather's send are this rank's block of the other buffer. */
static inline zrt_status tc_start_one(const tc_world *w, tc_flight *f)
{
    zrt__comm *c = w->comm;
    size_t mine = (size_t)c->rank * f->p.count, full = tc_flight_full(w, f);
    if (f->p.coll == TC_ALL_GATHER) {
        f->send = tc_guarded(f->p.count * sizeof(float));
        f->out = f->recv = tc_guarded(full * sizeof(float));
        tc_fill_f32(f->send, f->p.count, f->seed, c->rank, 0);
        if (f->p.in_place)
            memcpy(f->out + mine, f->send, f->p.count * sizeof(float));
        return c->ops->all_gather(c, f->p.in_place ? f->out + mine : f->send, f->out,
                                  f->p.count, ZRT_F32, &f->req);
    }
    f->send = tc_guarded(full * sizeof(float));
    f->out = tc_guarded(f->p.count * sizeof(float));
    tc_fill_f32(f->send, full, f->seed, c->rank, 0);
    if (f->p.coll == TC_ALL_REDUCE) {
        f->recv = f->p.in_place ? f->send : f->out;
        return zrt__comm_all_reduce_f32(c, f->send, f->recv, f->p.count, f->p.op,
                                        &f->req);
    }
    f->recv = f->p.in_place ? f->send + mine : f->out;
    return zrt__comm_reduce_scatter_f32(c, f->send, f->recv, f->p.count, f->p.op,
                                        &f->req);
}

static inline void tc_start_flight(tally *t, tc_flight *f)
{
    zrt_status st = tc_start_one(t->w, f);
    f->started = st == ZRT_OK;
    EXPECT(t, f->started, "%s: start returned %s: %s", f->what, zrt_status_str(st),
           t->w->comm->err->text);
}

static inline void tc_wait_flight(tally *t, tc_flight *f)
{
    zrt__comm *c = t->w->comm;
    if (!f->started || f->done)
        return;
    zrt_status st = c->ops->wait(c, f->req);
    EXPECT(t, st == ZRT_OK, "%s: wait returned %s: %s", f->what, zrt_status_str(st),
           c->err->text);
    f->done = 1;
}

static inline void tc_verify_flight(tally *t, const tc_flight *f)
{
    const zrt__comm *c = t->w->comm;
    size_t full = tc_flight_full(t->w, f);
    if (f->p.coll == TC_ALL_GATHER) {
        for (int r = 0; r < c->size; r++) {
            const float *got = f->out + (size_t)r * f->p.count;
            size_t j = 0;
            while (j < f->p.count &&
                   test_bits_of(got[j]) == test_bits_of(tc_input_f32(f->seed, r, j)))
                j++;
            if (j < f->p.count) {
                note(t, "%s: rank %d's element %zu is wrong", f->what, r, j);
                break;
            }
        }
        tc_expect_guard(t, f->out + full, f->what);
        if (!f->p.in_place)
            tc_expect_input(t, f->send, f->p.count, f->seed, f->what);
        return;
    }
    size_t offset = f->p.coll == TC_ALL_REDUCE ? 0 : (size_t)c->rank * f->p.count;
    tc_expect_reduced(t, f->recv, f->p.count, f->seed, offset, f->p.op, f->what);
    tc_expect_guard(t, f->send + full, f->what);
    if (!f->p.in_place) {
        tc_expect_guard(t, f->out + f->p.count, f->what);
        tc_expect_input(t, f->send, full, f->seed, f->what);
    }
}

static inline void tc_free_flight(tc_flight *f)
{
    free(f->out);
    free(f->send);
}

/* The engine relies on this: reducing the same data with a reduce-scatter
 * (zero-padded to a multiple of the world size) gives this rank's slice of
 * the all-reduce's result, bit for bit. */
static inline void tc_expect_same_as_reduce_scatter(tally *t, const float *all_reduced,
                                                    size_t count, zrt_reduce_op op,
                                                    unsigned seed, const char *what)
{
    zrt__comm *c = t->w->comm;
    size_t n = (size_t)c->size, block = (count + n - 1) / n;
    float *padded = test_xmalloc(block * n * sizeof *padded);
    float *mine = tc_guarded(block * sizeof(float));
    memset(padded, 0, block * n * sizeof *padded);
    tc_fill_f32(padded, count, seed, c->rank, 0);
    zrt__comm_req *req = NULL;
    tc_complete(t, zrt__comm_reduce_scatter_f32(c, padded, mine, block, op, &req), &req,
                what);
    size_t lo = (size_t)c->rank * block, hi = lo + block < count ? lo + block : count;
    size_t i = lo < hi ? tc_first_diff(all_reduced + lo, mine, hi - lo, sizeof *mine) : 0;
    if (lo + i < hi)
        note(t,
             "%s: differs from the reduce-scatter of the same data: element %zu of %zu "
             "is %a, the reduce-scatter gave %a",
             what, lo + i, count, (double)all_reduced[lo + i], (double)mine[i]);
    free(mine);
    free(padded);
}

/* One collective started, waited and checked; an all-reduce's result also
 * equals a reduce-scatter's of the same data. */
static inline void tc_check_one(tally *t, tc_coll coll, zrt_reduce_op op, size_t count,
                                int in_place, unsigned seed)
{
    tc_flight f = tc_flight_of((tc_flight_plan){coll, op, count, in_place}, seed, "");
    tc_start_flight(t, &f);
    tc_wait_flight(t, &f);
    tc_verify_flight(t, &f);
    if (coll == TC_ALL_REDUCE)
        tc_expect_same_as_reduce_scatter(t, f.recv, count, op, seed, f.what);
    tc_free_flight(&f);
}

/* coll for both ops, every count and both placements, each with its own
 * seed from first_seed up. */
static inline void tc_each_reduction(tally *t, tc_coll coll, const size_t *counts,
                                     size_t ncounts, unsigned first_seed)
{
    unsigned seed = first_seed;
    for (int op = ZRT_SUM; op <= ZRT_AVG; op++)
        for (size_t c = 0; c < ncounts; c++)
            for (int in_place = 0; in_place <= 1; in_place++)
                tc_check_one(t, coll, (zrt_reduce_op)op, counts[c], in_place, seed++);
}

/* count elements of dtype per rank, gathered bytewise; in place, send is
 * this rank's block of recv. */
static inline void tc_check_all_gather(tally *t, size_t count, zrt_dtype dtype,
                                       int in_place, unsigned seed)
{
    zrt__comm *c = t->w->comm;
    char what[128];
    snprintf(what, sizeof what, "all_gather %s count %zu %s", zrt_dtype_str(dtype), count,
             in_place ? "in-place" : "out-of-place");
    size_t bytes = count * zrt_dtype_size(dtype), full = (size_t)c->size * bytes;
    unsigned char *recv = tc_guarded(full);
    unsigned char *own = test_xmalloc(bytes), *want = test_xmalloc(bytes);
    tc_fill_bytes(own, bytes, seed, c->rank);
    unsigned char *send = in_place ? recv + (size_t)c->rank * bytes : own;
    if (in_place)
        memcpy(send, own, bytes);
    zrt__comm_req *req = NULL;
    tc_complete(t, c->ops->all_gather(c, send, recv, count, dtype, &req), &req, what);
    for (int r = 0; r < c->size; r++) {
        char label[160];
        snprintf(label, sizeof label, "%s, block of rank %d", what, r);
        tc_fill_bytes(want, bytes, seed, r);
        tc_expect_bytes(t, recv + (size_t)r * bytes, want, bytes, label);
    }
    tc_expect_guard(t, recv + full, what);
    if (!in_place) {
        tc_fill_bytes(want, bytes, seed, c->rank);
        tc_expect_bytes(t, own, want, bytes, what);
    }
    free(want);
    free(own);
    free(recv);
}

/* f32 and bf16, four counts, both placements, seeds from first_seed up. */
static inline void tc_each_all_gather(tally *t, unsigned first_seed)
{
    static const size_t counts[] = {1, 7, 1000, 65537};
    static const zrt_dtype dtypes[] = {ZRT_F32, ZRT_BF16};
    unsigned seed = first_seed;
    for (int d = 0; d < 2; d++)
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
            for (int in_place = 0; in_place <= 1; in_place++)
                tc_check_all_gather(t, counts[c], dtypes[d], in_place, seed++);
}

/* A 16-bit reduce-scatter of count elements per rank and an in-place
 * all-reduce of the first ar_count of the same data give, for every
 * element, the reference in w's order (tc_reduced_half). */
static inline void tc_check_half(tally *t, zrt_dtype type, zrt_reduce_op op, size_t count,
                                 size_t ar_count, unsigned seed)
{
    zrt__comm *c = t->w->comm;
    zrt_half h = type == ZRT_BF16 ? ZRT_HALF_BF16 : ZRT_HALF_F16;
    size_t n = count * (size_t)c->size, mine_at = (size_t)c->rank * count;
    uint16_t *send = test_xmalloc(n * sizeof *send), *all = test_xmalloc(n * sizeof *all);
    uint16_t *mine = test_xmalloc(count * sizeof *mine);
    for (size_t j = 0; j < n; j++)
        send[j] = all[j] = tc_input_half(seed, c->rank, j, h);
    zrt__comm_req *req = NULL;
    tc_complete(t, c->ops->reduce_scatter(c, send, mine, count, type, op, &req), &req,
                "half reduce-scatter");
    tc_complete(t, c->ops->all_reduce(c, all, all, ar_count, type, op, &req), &req,
                "half all-reduce");
    for (size_t j = 0; j < count; j++) {
        uint16_t want = tc_reduced_half(t->w, seed, mine_at + j, op, h);
        EXPECT(t, mine[j] == want,
               "%s %s reduce-scatter element %zu (%zu of this rank's block): %04x, "
               "want %04x",
               zrt_dtype_str(type), tc_op_name(op), mine_at + j, j, mine[j], want);
    }
    for (size_t j = 0; j < ar_count; j++) {
        uint16_t want = tc_reduced_half(t->w, seed, j, op, h);
        EXPECT(t, all[j] == want, "%s %s all-reduce element %zu: %04x, want %04x",
               zrt_dtype_str(type), tc_op_name(op), j, all[j], want);
    }
    free(mine);
    free(all);
    free(send);
}

/* bf16 and f16, both ops, seeds 70..73; the all-reduce pad elements short
 * of the reduce-scatter's data. */
static inline void tc_each_half(tally *t, size_t count, size_t pad)
{
    static const zrt_dtype types[2] = {ZRT_BF16, ZRT_F16};
    size_t n = count * (size_t)t->w->comm->size;
    for (int k = 0; k < 2; k++)
        for (int op = ZRT_SUM; op <= ZRT_AVG; op++)
            tc_check_half(t, types[k], (zrt_reduce_op)op, count, n - pad,
                          70 + (unsigned)(2 * k + op));
}

/* ---- several collectives in flight --------------------------------------------
 * The engine's pattern: collectives started one after another, then
 * completed in another order, by wait or by polling test(). */

/* How a round completes its requests once all are started. */
typedef enum tc_finish {
    TC_WAIT_SHUFFLED, /* wait in the order given, not the order started */
    TC_PER_RANK,      /* odd ranks in the reverse of the even ranks' order */
    TC_POLL           /* test() until done */
} tc_finish;

enum { TC_MAX_FLIGHTS = 8 };

/* Polls every open request with test() until all are done, waiting each as
 * soon as test() says it would not block (the engine's layer-boundary
 * pattern). A done request must stay done. */
static inline void tc_poll_flights(tally *t, tc_flight *f, int n)
{
    zrt__comm *c = t->w->comm;
    double give_up = tc_now() + TC_POLL_LIMIT_S;
    int open = n;
    while (open > 0 && tc_now() < give_up) {
        open = 0;
        for (int i = n - 1; i >= 0; i--) {
            if (!f[i].started || f[i].done)
                continue;
            int done = 0;
            zrt_status st = c->ops->test(c, f[i].req, &done);
            EXPECT(t, st == ZRT_OK, "%s: test returned %s: %s", f[i].what,
                   zrt_status_str(st), c->err->text);
            if (done) {
                int again = 0;
                c->ops->test(c, f[i].req, &again);
                EXPECT(t, again == 1, "%s: test said done, then not done", f[i].what);
                tc_wait_flight(t, &f[i]);
            } else {
                open++;
            }
        }
    }
    EXPECT(t, open == 0, "%d requests not done after %.0f s of test() polling", open,
           TC_POLL_LIMIT_S);
}

/* Completes one request by polling it alone; 0 if it is still not done
 * after TC_STUCK_S (another rank holds what it needs and waits for us). */
static inline int tc_poll_one(tally *t, tc_flight *f)
{
    zrt__comm *c = t->w->comm;
    double give_up = tc_now() + TC_STUCK_S;
    int done = 0;
    while (f->started && !done && tc_now() < give_up) {
        zrt_status st = c->ops->test(c, f->req, &done);
        if (st != ZRT_OK) {
            note(t, "%s: test returned %s: %s", f->what, zrt_status_str(st),
                 c->err->text);
            break;
        }
    }
    if (!done)
        return !f->started;
    tc_wait_flight(t, f);
    return 1;
}

/* Even ranks complete the requests in `order`, odd ranks in its reverse,
 * each polled alone: MPI's own non-blocking collectives allow that, and
 * runtime/comm.h asks only that collectives start in one order, so a rank
 * must not hold back a phase another rank waits for. A request that makes
 * no progress for TC_STUCK_S is reported, and the rest are then waited in
 * start order on every rank, which resolves the standoff so the job goes
 * on to the next test. */
static inline void tc_complete_per_rank(tally *t, tc_flight *f, int n, const int *order)
{
    int reverse = t->w->comm->rank % 2 == 1;
    for (int i = 0; i < n; i++) {
        tc_flight *next = &f[order[reverse ? n - 1 - i : i]];
        if (!tc_poll_one(t, next)) {
            note(t,
                 "%s: no progress in %.0f s while ranks complete their requests in "
                 "different orders (deadlock)",
                 next->what, TC_STUCK_S);
            break;
        }
    }
}

/* Starts plan[0..n) in order (n <= TC_MAX_FLIGHTS), flight i with inputs
 * from seed + i; completes them as `how` says (order: a permutation of
 * 0..n-1, for TC_WAIT_SHUFFLED and TC_PER_RANK); checks every result. */
static inline void tc_run_flights(tally *t, const tc_flight_plan *plan, int n,
                                  tc_finish how, const int *order, unsigned seed)
{
    tc_flight f[TC_MAX_FLIGHTS];
    if (n > TC_MAX_FLIGHTS) {
        note(t, "%d collectives in flight planned, at most %d", n, TC_MAX_FLIGHTS);
        return;
    }
    for (int i = 0; i < n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "in flight #%d: ", i);
        f[i] = tc_flight_of(plan[i], seed + (unsigned)i, prefix);
        tc_start_flight(t, &f[i]);
    }
    if (how == TC_POLL) {
        tc_poll_flights(t, f, n);
    } else if (how == TC_PER_RANK) {
        tc_complete_per_rank(t, f, n, order);
    } else {
        for (int i = 0; i < n; i++)
            tc_wait_flight(t, &f[order[i]]);
    }
    for (int i = 0; i < n; i++)
        tc_wait_flight(t, &f[i]);
    for (int i = 0; i < n; i++) {
        tc_verify_flight(t, &f[i]);
        tc_free_flight(&f[i]);
    }
}

/* ---- setup, and the plain programs -------------------------------------------- */

/* The cpu backend on acct, the MPI communicator on it (which starts MPI)
 * into *comm, and w over it in rank order; err names this rank. 0, or -1
 * after saying why on stderr. */
static inline int tc_create_cpu_world(const char *prog, zrt__mem_account *acct,
                                      zrt__errbuf *err, zrt__comm **comm, tc_world *w)
{
    zrt__backend *be = NULL;
    zrt__mem_account_init(acct);
    if (zrt__backend_cpu_create(acct, err, NULL, &be) != ZRT_OK ||
        zrt__comm_mpi_create(be, err, comm) != ZRT_OK) {
        fprintf(stderr, "%s: cannot create the communicator: %s\n", prog, err->text);
        return -1;
    }
    err->rank = (*comm)->rank;
    *w = (tc_world){.comm = *comm};
    return 0;
}

/* Destroys what tc_create_cpu_world made: the communicator, then its
 * backend. */
static inline void tc_destroy_cpu_world(tc_world *w)
{
    zrt__backend *be = w->comm->be;
    w->comm->ops->destroy(w->comm);
    be->ops->destroy(be);
    w->comm = NULL;
}

/* A zrt call in a plain program: 1 if st is ZRT_OK, else a failure
 * (TEST_FAIL, with err's sentence) and 0, so the caller skips what depended
 * on it. */
static inline int tc_ok(const zrt__errbuf *err, const char *what, zrt_status st)
{
    if (st == ZRT_OK)
        return 1;
    TEST_FAIL("%s: %s: %s", what, zrt_status_str(st), err->text);
    return 0;
}

/* MPI started for a program whose helper threads do not call MPI, then
 * this rank and the world's size. */
static inline void tc_mpi_start(int *rank, int *size)
{
    int provided = 0;
    MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
}

/* local summed over every rank; if MPI cannot sum, local (at least 1): a
 * rank that cannot learn the others' count must not pass. */
static inline int tc_failures_everywhere(int local)
{
    int total = 0;
    if (MPI_Allreduce(&local, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        total = local > 0 ? local : 1;
    return total;
}

/* A plain program's exit status: 0 if no rank counted a failure
 * (test_failures), else 1, after rank 0 prints the sum. */
static inline int tc_exit_status(const char *prog)
{
    int rank = 0, size = 1, total = tc_failures_everywhere(test_failures);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank == 0)
        printf("%s: %d failure(s) summed over %d rank(s)\n", prog, total, size);
    return total == 0 ? 0 : 1;
}

#endif
