/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/mpi/test_comm.c — Check suite "comm" for runtime/comm_mpi.c, run by
 * ctest under `mpirun -np N` for N = 1..4.
 *
 * Inputs are a hash of (seed, rank, element), so every rank can compute every
 * other rank's contribution and check its own results against a sequential
 * reference, ((x0 + x1) + x2) + ..., bit for bit. The values span 25 binary
 * orders of magnitude, so a sum taken in another order gives other bits
 * (checked by the first test at N >= 3).
 *
 * MPI and Check: the suite runs with CK_NOFORK (a forked child cannot use
 * MPI), the communicator is created once in main, and every rank runs the
 * same tests in the same order. A test records its mismatches and asserts
 * only after its last collective, so a rank that fails keeps starting the
 * same collectives as the others instead of leaving them hanging. main
 * returns 0 only if no test failed on any rank.
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
#include "runtime/backend.h"
#include "runtime/comm.h"
#include "runtime/memory.h"

#define GUARD        16   /* elements or bytes after each buffer */
#define GUARD_BYTE   0xA5 /* fills guards and buffers to be overwritten */
#define POLL_LIMIT_S 60.0 /* test() polling gives up after this long */
#define STUCK_S      20.0 /* one request polled alone: deadlocked after */

/* The one communicator every test uses (test code: file-static is fine). */
static zrt__mem_account g_acct;
static zrt__errbuf g_err = {.rank = -1};
static zrt__backend *g_be;
static zrt__comm *g_comm;
static int g_rank, g_size;

/* ---- recording failures without leaving the test early ----------------- */

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
        fprintf(stderr, "rank %d/%d: %s\n", g_rank, g_size, text);
    t->fails++;
}

#define EXPECT(t, cond, ...)                                                             \
    do {                                                                                 \
        if (!(cond))                                                                     \
            note((t), __VA_ARGS__);                                                      \
    } while (0)

/* Asserts at the end of a test, after its last collective. */
#define FINISH(t)                                                                        \
    ck_assert_msg((t)->fails == 0,                                                       \
                  "rank %d/%d: %d failed expectation(s), "                               \
                  "first: %s",                                                           \
                  g_rank, g_size, (t)->fails, (t)->first)

static int64_t comm_bytes_now(void)
{
    return g_acct.stats.current[ZRT_TIER_DEVICE][ZRT_CAT_COMM];
}

static int64_t comm_bytes_peak(void)
{
    return g_acct.stats.peak[ZRT_TIER_DEVICE][ZRT_CAT_COMM];
}

/* Every test ends with no scratch held: all its requests were waited. */
static void expect_comm_idle(tally *t, const char *what)
{
    EXPECT(t, comm_bytes_now() == 0,
           "%s: %lld bytes of comm scratch still "
           "charged after every request was waited",
           what, (long long)comm_bytes_now());
}

/* One f32 reduction checked: count elements per rank's result, op, in place
 * or out of place, inputs from seed. */
typedef void reduction_check(tally *t, size_t count, zrt_reduce_op op, int in_place,
                             unsigned seed);

/* check() for both ops, every count and both placements, each with its own
 * seed from first_seed up; then no scratch may be left. */
static void check_every_reduction(reduction_check *check, const size_t *counts,
                                  size_t ncounts, unsigned first_seed, const char *what)
{
    tally t = {0};
    unsigned seed = first_seed;
    for (int op = ZRT_SUM; op <= ZRT_AVG; op++)
        for (size_t c = 0; c < ncounts; c++)
            for (int in_place = 0; in_place <= 1; in_place++)
                check(&t, counts[c], (zrt_reduce_op)op, in_place, seed++);
    expect_comm_idle(&t, what);
    FINISH(&t);
}

/* ---- deterministic inputs and the sequential reference ----------------- */

static uint64_t mix(uint64_t x) /* splitmix64's finalizer */
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static uint64_t hash3(unsigned seed, int rank, size_t i)
{
    return mix(((uint64_t)seed << 48) ^ ((uint64_t)(unsigned)rank << 40) ^ i);
}

/* Rank `rank`'s element i: random sign and mantissa, exponent 2^-12..2^12. */
static float input_f32(unsigned seed, int rank, size_t i)
{
    uint64_t h = hash3(seed, rank, i);
    uint32_t bits = (uint32_t)(h >> 63) << 31 |
                    (uint32_t)(127 - 12 + (h >> 32) % 25) << 23 |
                    ((uint32_t)h & 0x7FFFFFu);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* x[j] = rank's element offset + j. */
static void fill_input(float *x, size_t n, unsigned seed, int rank, size_t offset)
{
    for (size_t j = 0; j < n; j++)
        x[j] = input_f32(seed, rank, offset + j);
}

static void fill_bytes(unsigned char *x, size_t n, unsigned seed, int rank)
{
    for (size_t j = 0; j < n; j++)
        x[j] = (unsigned char)(hash3(seed, rank, j) >> 24);
}

/* Element i reduced over ranks 0..size-1 in rank order. */
static float reduced(unsigned seed, size_t i, zrt_reduce_op op)
{
    float acc = input_f32(seed, 0, i);
    for (int k = 1; k < g_size; k++)
        acc += input_f32(seed, k, i);
    if (op == ZRT_AVG)
        acc /= (float)g_size;
    return acc;
}

static void fill_reduced(float *want, size_t n, unsigned seed, size_t offset,
                         zrt_reduce_op op)
{
    for (size_t j = 0; j < n; j++)
        want[j] = reduced(seed, offset + j, op);
}

static const char *op_name(zrt_reduce_op op)
{
    return op == ZRT_AVG ? "avg" : "sum";
}

/* ---- comparisons ---------------------------------------------------------- */

static void expect_bits(tally *t, const float *got, const float *want, size_t n,
                        const char *what)
{
    if (n == 0 || memcmp(got, want, n * sizeof *got) == 0)
        return;
    size_t i = 0;
    while (i < n && memcmp(got + i, want + i, sizeof *got) == 0)
        i++;
    note(t, "%s: element %zu of %zu is %a, expected %a", what, i, n, (double)got[i],
         (double)want[i]);
}

static void expect_bytes(tally *t, const void *got, const void *want, size_t n,
                         const char *what)
{
    const unsigned char *g = got, *w = want;
    if (n == 0 || memcmp(g, w, n) == 0)
        return;
    size_t i = 0;
    while (i < n && g[i] == w[i])
        i++;
    note(t, "%s: byte %zu of %zu is 0x%02x, expected 0x%02x", what, i, n, g[i], w[i]);
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

/* The rank's input regenerated: an out-of-place collective left send alone. */
static void expect_input(tally *t, const float *send, size_t n, unsigned seed,
                         const char *what)
{
    float *want = malloc((n ? n : 1) * sizeof *want);
    fill_input(want, n, seed, g_rank, 0);
    expect_bits(t, send, want, n, what);
    free(want);
}

/* A float buffer of n elements plus a guard, every byte GUARD_BYTE. */
static float *guarded_floats(size_t n)
{
    size_t bytes = (n + GUARD) * sizeof(float);
    float *x = malloc(bytes);
    ck_assert_ptr_nonnull(x);
    memset(x, GUARD_BYTE, bytes);
    return x;
}

/* Waits a started collective; records a failed start or wait. req is read
 * here, after the start call in the argument list has written it. */
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

/* ---- the test data itself ------------------------------------------------- */

/* With 3 or more ranks, summing in another order must change some bits, or
 * the bit-exact checks below could not see a reduction in the wrong order. */
START_TEST(test_data_is_order_sensitive)
{
    if (g_size < 3)
        return;
    int differ = 0;
    for (size_t i = 0; i < 1000; i++) {
        float backward = input_f32(1, g_size - 1, i);
        for (int k = g_size - 2; k >= 0; k--)
            backward += input_f32(1, k, i);
        float forward = reduced(1, i, ZRT_SUM);
        differ += memcmp(&forward, &backward, sizeof forward) != 0;
    }
    ck_assert_msg(differ > 0, "the inputs sum to the same bits in any order");
}
END_TEST

/* ---- reduce-scatter --------------------------------------------------------- */

static const size_t rs_counts[] = {1, 7, 1000, 65537};

static void check_reduce_scatter(tally *t, size_t count, zrt_reduce_op op, int in_place,
                                 unsigned seed)
{
    char what[128];
    snprintf(what, sizeof what, "reduce_scatter %s count %zu %s", op_name(op), count,
             in_place ? "in-place" : "out-of-place");
    size_t full = (size_t)g_size * count;
    float *send = guarded_floats(full);
    float *out = guarded_floats(count);
    float *want = malloc(count * sizeof *want);
    fill_input(send, full, seed, g_rank, 0);
    float *recv = in_place ? send + (size_t)g_rank * count : out;

    zrt__comm_req *req = NULL;
    complete(t, zrt__comm_reduce_scatter_f32(g_comm, send, recv, count, op, &req), &req,
             what);
    fill_reduced(want, count, seed, (size_t)g_rank * count, op);
    expect_bits(t, recv, want, count, what);
    expect_guard(t, send + full, what);
    if (!in_place) {
        expect_guard(t, out + count, what);
        expect_input(t, send, full, seed, what);
    }
    free(want);
    free(out);
    free(send);
}

START_TEST(test_reduce_scatter)
{
    check_every_reduction(check_reduce_scatter, rs_counts,
                          sizeof rs_counts / sizeof rs_counts[0], 10, "reduce_scatter");
}
END_TEST

/* ---- all-reduce -------------------------------------------------------------- */

/* ---- 16-bit reductions ------------------------------------------------------- */

/* Rank `rank`'s element i as a 16-bit value. */
static uint16_t input_half(unsigned seed, int rank, size_t i, zrt_half h)
{
    return zrt_f32_to_half(input_f32(seed, rank, i) * 0.01f, h);
}

/* The ordered f32 sum of the widened values, divided, rounded once. */
static uint16_t reduced_half(unsigned seed, size_t i, zrt_reduce_op op, zrt_half h)
{
    float acc = zrt_half_to_f32(input_half(seed, 0, i, h), h);
    for (int k = 1; k < g_size; k++)
        acc += zrt_half_to_f32(input_half(seed, k, i, h), h);
    if (op == ZRT_AVG)
        acc /= (float)g_size;
    return zrt_f32_to_half(acc, h);
}

/* Reduce-scatter and all-reduce of bf16 and f16 give, for every element,
 * the ordered f32 sum rounded once, the same bits both ways. */
START_TEST(test_half_reductions)
{
    tally t = {0};
    const zrt_dtype types[2] = {ZRT_BF16, ZRT_F16};
    for (int k = 0; k < 2; k++) {
        zrt_half h = types[k] == ZRT_BF16 ? ZRT_HALF_BF16 : ZRT_HALF_F16;
        for (int op = ZRT_SUM; op <= ZRT_AVG; op++) {
            size_t count = 1000, n = count * (size_t)g_size;
            unsigned seed = 70 + (unsigned)(k * 2 + op);
            uint16_t *send = malloc(n * sizeof *send), *all = malloc(n * sizeof *all);
            uint16_t *mine = malloc(count * sizeof *mine);
            for (size_t j = 0; j < n; j++)
                send[j] = all[j] = input_half(seed, g_rank, j, h);
            zrt__comm_req *req = NULL;
            complete(&t,
                     g_comm->ops->reduce_scatter(g_comm, send, mine, count, types[k],
                                                 (zrt_reduce_op)op, &req),
                     &req, "half reduce-scatter");
            complete(&t,
                     g_comm->ops->all_reduce(g_comm, all, all, n, types[k],
                                             (zrt_reduce_op)op, &req),
                     &req, "half all-reduce");
            for (size_t j = 0; j < n; j++) {
                uint16_t want = reduced_half(seed, j, (zrt_reduce_op)op, h);
                EXPECT(&t, all[j] == want, "%s all-reduce element %zu: %04x, want %04x",
                       zrt_dtype_str(types[k]), j, all[j], want);
                size_t mine_at = j - (size_t)g_rank * count;
                if (j / count == (size_t)g_rank)
                    EXPECT(&t, mine[mine_at] == want,
                           "%s reduce-scatter element %zu: %04x, want %04x",
                           zrt_dtype_str(types[k]), j, mine[mine_at], want);
            }
            free(send);
            free(all);
            free(mine);
        }
    }
    expect_comm_idle(&t, "half reductions");
    FINISH(&t);
}
END_TEST

static const size_t ar_counts[] = {1, 5, 4096, 10001};

/* The engine relies on this: reducing the same data with a reduce-scatter
 * (zero-padded to a multiple of the world size) gives this rank's slice of
 * the all-reduce's result, bit for bit. */
static void expect_same_as_reduce_scatter(tally *t, const float *all_reduced,
                                          size_t count, zrt_reduce_op op, unsigned seed,
                                          const char *what)
{
    size_t n = (size_t)g_size;
    size_t block = (count + n - 1) / n;
    float *send = calloc(block * n, sizeof *send);
    float *recv = guarded_floats(block);
    fill_input(send, count, seed, g_rank, 0);
    zrt__comm_req *req = NULL;
    complete(t, zrt__comm_reduce_scatter_f32(g_comm, send, recv, block, op, &req), &req,
             what);
    size_t lo = (size_t)g_rank * block;
    size_t hi = lo + block < count ? lo + block : count;
    if (lo < hi) {
        char label[160];
        snprintf(label, sizeof label, "%s vs reduce_scatter", what);
        expect_bits(t, all_reduced + lo, recv, hi - lo, label);
    }
    free(recv);
    free(send);
}

static void check_all_reduce(tally *t, size_t count, zrt_reduce_op op, int in_place,
                             unsigned seed)
{
    char what[128];
    snprintf(what, sizeof what, "all_reduce %s count %zu %s", op_name(op), count,
             in_place ? "in-place" : "out-of-place");
    float *send = guarded_floats(count);
    float *out = guarded_floats(count);
    float *want = malloc(count * sizeof *want);
    fill_input(send, count, seed, g_rank, 0);
    float *recv = in_place ? send : out;

    zrt__comm_req *req = NULL;
    complete(t, zrt__comm_all_reduce_f32(g_comm, send, recv, count, op, &req), &req,
             what);
    fill_reduced(want, count, seed, 0, op);
    expect_bits(t, recv, want, count, what);
    expect_guard(t, recv + count, what);
    if (!in_place)
        expect_input(t, send, count, seed, what);
    expect_same_as_reduce_scatter(t, recv, count, op, seed, what);
    free(want);
    free(out);
    free(send);
}

START_TEST(test_all_reduce)
{
    check_every_reduction(check_all_reduce, ar_counts,
                          sizeof ar_counts / sizeof ar_counts[0], 100, "all_reduce");
}
END_TEST

/* ---- all-gather ---------------------------------------------------------------- */

static void check_all_gather(tally *t, size_t count, zrt_dtype dtype, int in_place,
                             unsigned seed)
{
    char what[128];
    snprintf(what, sizeof what, "all_gather %s count %zu %s", zrt_dtype_str(dtype), count,
             in_place ? "in-place" : "out-of-place");
    size_t bytes = count * zrt_dtype_size(dtype);
    size_t full = (size_t)g_size * bytes;
    unsigned char *recv = (unsigned char *)guarded_floats((full + 3) / 4);
    unsigned char *own = malloc(bytes + 1);
    unsigned char *want = malloc(bytes + 1);
    fill_bytes(own, bytes, seed, g_rank);
    unsigned char *send = in_place ? recv + (size_t)g_rank * bytes : own;
    if (in_place)
        memcpy(send, own, bytes);

    zrt__comm_req *req = NULL;
    complete(t, g_comm->ops->all_gather(g_comm, send, recv, count, dtype, &req), &req,
             what);
    for (int r = 0; r < g_size; r++) {
        char label[160];
        snprintf(label, sizeof label, "%s, block of rank %d", what, r);
        fill_bytes(want, bytes, seed, r);
        expect_bytes(t, recv + (size_t)r * bytes, want, bytes, label);
    }
    for (size_t i = full; i < (full + 3) / 4 * 4; i++)
        EXPECT(t, recv[i] == GUARD_BYTE, "%s: wrote past the end (byte %zu)", what, i);
    expect_guard(t, recv + (full + 3) / 4 * 4, what);
    if (!in_place) {
        fill_bytes(want, bytes, seed, g_rank);
        expect_bytes(t, own, want, bytes, what);
    }
    free(want);
    free(own);
    free(recv);
}

START_TEST(test_all_gather)
{
    static const size_t counts[] = {1, 7, 1000, 65537};
    static const zrt_dtype dtypes[] = {ZRT_F32, ZRT_BF16};
    tally t = {0};
    unsigned seed = 200;
    for (int d = 0; d < 2; d++)
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
            for (int in_place = 0; in_place <= 1; in_place++)
                check_all_gather(&t, counts[c], dtypes[d], in_place, seed++);
    expect_comm_idle(&t, "all_gather");
    FINISH(&t);
}
END_TEST

/* ---- broadcast ----------------------------------------------------------------- */

static void check_broadcast(tally *t, size_t bytes, int root, unsigned seed)
{
    char what[128];
    snprintf(what, sizeof what, "broadcast of %zu bytes from root %d", bytes, root);
    unsigned char *buf = (unsigned char *)guarded_floats((bytes + 3) / 4);
    unsigned char *want = malloc(bytes + 1);
    fill_bytes(want, bytes, seed, root);
    if (g_rank == root)
        memcpy(buf, want, bytes);
    zrt__comm_req *req = NULL;
    complete(t, g_comm->ops->broadcast(g_comm, buf, bytes, root, &req), &req, what);
    expect_bytes(t, buf, want, bytes, what);
    expect_guard(t, buf + (bytes + 3) / 4 * 4, what);
    free(want);
    free(buf);
}

/* A root outside the world fails on every rank before any message moves. */
static void check_bad_root(tally *t, int root)
{
    unsigned char buf[16] = {0};
    zrt__comm_req *untouched = (zrt__comm_req *)(void *)buf;
    zrt__comm_req *req = untouched;
    g_err.text[0] = '\0';
    zrt_status st = g_comm->ops->broadcast(g_comm, buf, sizeof buf, root, &req);
    EXPECT(t, st == ZRT_ERR_INVALID_ARG,
           "broadcast root %d of %d ranks "
           "returned %s, expected ZRT_ERR_INVALID_ARG",
           root, g_size, zrt_status_str(st));
    char needle[32];
    snprintf(needle, sizeof needle, "root %d", root);
    EXPECT(t, strstr(g_err.text, needle) != NULL,
           "error for broadcast root %d does not name it: \"%s\"", root, g_err.text);
    EXPECT(t, req == untouched, "failed broadcast wrote its request out");
    if (st == ZRT_OK && req != untouched)
        g_comm->ops->wait(g_comm, req);
}

START_TEST(test_broadcast)
{
    tally t = {0};
    static const size_t sizes[] = {1, 4000, 12345};
    int roots[2] = {0, g_size - 1};
    unsigned seed = 300;
    for (int r = 0; r < 2; r++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            check_broadcast(&t, sizes[s], roots[r], seed++);
    check_bad_root(&t, g_size);
    check_bad_root(&t, -1);
    /* The failed calls started nothing: a broadcast after them still pairs. */
    check_broadcast(&t, 100, g_size - 1, seed++);
    expect_comm_idle(&t, "broadcast");
    FINISH(&t);
}
END_TEST

/* ---- several collectives in flight ------------------------------------------- */

typedef struct flight {
    int all_reduce; /* 0: reduce-scatter */
    zrt_reduce_op op;
    size_t count; /* per rank for reduce-scatter, total for all-reduce */
    int in_place;
    unsigned seed;
    float *send, *out, *recv;
    zrt__comm_req *req;
    int started, done;
    char what[96];
} flight;

enum { NFLIGHT = 5 };

/* The engine's pattern: reduce-scatters and all-reduces interleaved. */
static void plan_flights(flight f[NFLIGHT], unsigned seed)
{
    static const struct {
        int ar;
        zrt_reduce_op op;
        size_t count;
        int in_place;
    } plan[NFLIGHT] = {{0, ZRT_SUM, 1000, 0},
                       {1, ZRT_SUM, 10001, 0},
                       {0, ZRT_AVG, 65537, 1},
                       {1, ZRT_AVG, 4096, 1},
                       {0, ZRT_SUM, 7, 0}};
    for (int i = 0; i < NFLIGHT; i++) {
        f[i] = (flight){.all_reduce = plan[i].ar,
                        .op = plan[i].op,
                        .count = plan[i].count,
                        .in_place = plan[i].in_place,
                        .seed = seed + (unsigned)i};
        snprintf(f[i].what, sizeof f[i].what, "in flight #%d: %s %s count %zu", i,
                 f[i].all_reduce ? "all_reduce" : "reduce_scatter", op_name(f[i].op),
                 f[i].count);
    }
}

static size_t flight_send_len(const flight *f)
{
    return f->all_reduce ? f->count : (size_t)g_size * f->count;
}

static void start_flight(tally *t, flight *f)
{
    size_t n = flight_send_len(f);
    f->send = guarded_floats(n);
    f->out = guarded_floats(f->count);
    fill_input(f->send, n, f->seed, g_rank, 0);
    if (f->all_reduce) {
        f->recv = f->in_place ? f->send : f->out;
    } else {
        f->recv = f->in_place ? f->send + (size_t)g_rank * f->count : f->out;
    }
    zrt_status st =
        f->all_reduce
            ? zrt__comm_all_reduce_f32(g_comm, f->send, f->recv, f->count, f->op, &f->req)
            : zrt__comm_reduce_scatter_f32(g_comm, f->send, f->recv, f->count, f->op,
                                           &f->req);
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
    size_t offset = f->all_reduce ? 0 : (size_t)g_rank * f->count;
    float *want = malloc(f->count * sizeof *want);
    fill_reduced(want, f->count, f->seed, offset, f->op);
    expect_bits(t, f->recv, want, f->count, f->what);
    if (!f->in_place) {
        expect_guard(t, f->out + f->count, f->what);
        expect_input(t, f->send, flight_send_len(f), f->seed, f->what);
    }
    free(want);
    free(f->out);
    free(f->send);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Polls every open request with test() until all are done, waiting each as
 * soon as test() says it would not block (the engine's layer-boundary
 * pattern). A done request must stay done. */
static void poll_flights(tally *t, flight f[NFLIGHT])
{
    double give_up = now_s() + POLL_LIMIT_S;
    int open = NFLIGHT;
    while (open > 0 && now_s() < give_up) {
        open = 0;
        for (int i = NFLIGHT - 1; i >= 0; i--) {
            if (!f[i].started || f[i].done)
                continue;
            int done = 0;
            zrt_status st = g_comm->ops->test(g_comm, f[i].req, &done);
            EXPECT(t, st == ZRT_OK, "%s: test returned %s: %s", f[i].what,
                   zrt_status_str(st), g_err.text);
            if (done) {
                int again = 0;
                g_comm->ops->test(g_comm, f[i].req, &again);
                EXPECT(t, again == 1, "%s: test said done, then not done", f[i].what);
                wait_flight(t, &f[i]);
            } else {
                open++;
            }
        }
    }
    EXPECT(t, open == 0, "%d requests not done after %.0f s of test() polling", open,
           POLL_LIMIT_S);
    for (int i = 0; i < NFLIGHT; i++)
        wait_flight(t, &f[i]);
}

/* Completes one request by polling it alone; 0 if it is still not done
 * after STUCK_S (another rank holds what it needs and waits for us). */
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

/* Odd ranks complete the requests in the reverse of the even ranks' order.
 * MPI's own non-blocking collectives allow that, and the header asks only
 * that collectives start in one order. A request that makes no progress for
 * STUCK_S is reported, and the rest are then waited in start order on every
 * rank, which resolves the standoff so the job goes on to the next test. */
static void complete_per_rank(tally *t, flight f[NFLIGHT], const int *order)
{
    int reverse = g_rank % 2 == 1;
    for (int i = 0; i < NFLIGHT; i++) {
        flight *next = &f[order[reverse ? NFLIGHT - 1 - i : i]];
        if (!poll_one(t, next)) {
            note(t,
                 "%s: no progress in %.0f s while ranks complete their "
                 "requests in different orders (deadlock)",
                 next->what, STUCK_S);
            break;
        }
    }
    for (int i = 0; i < NFLIGHT; i++)
        wait_flight(t, &f[i]);
}

/* How a round completes its requests once all five are started. */
typedef enum finish_mode {
    FINISH_WAIT_SHUFFLED, /* wait in an order other than started */
    FINISH_PER_RANK,      /* odd ranks in the reverse order of even ones */
    FINISH_POLL           /* test() until done */
} finish_mode;

static void run_flights(tally *t, finish_mode mode, unsigned seed)
{
    static const int shuffled[NFLIGHT] = {3, 1, 4, 0, 2};
    flight f[NFLIGHT];
    plan_flights(f, seed);
    for (int i = 0; i < NFLIGHT; i++)
        start_flight(t, &f[i]);
    if (mode == FINISH_POLL) {
        poll_flights(t, f);
    } else if (mode == FINISH_PER_RANK) {
        complete_per_rank(t, f, shuffled);
    } else {
        for (int i = 0; i < NFLIGHT; i++)
            wait_flight(t, &f[shuffled[i]]);
    }
    for (int i = 0; i < NFLIGHT; i++)
        verify_flight(t, &f[i]);
}

/* One round of run_flights, then no scratch may be left. */
static void check_in_flight(finish_mode mode, unsigned seed, const char *what)
{
    tally t = {0};
    run_flights(&t, mode, seed);
    expect_comm_idle(&t, what);
    FINISH(&t);
}

START_TEST(test_in_flight_wait_shuffled)
{
    check_in_flight(FINISH_WAIT_SHUFFLED, 400, "in flight, shuffled waits");
}
END_TEST

START_TEST(test_in_flight_order_per_rank)
{
    check_in_flight(FINISH_PER_RANK, 420, "in flight, per-rank wait order");
}
END_TEST

START_TEST(test_in_flight_poll)
{
    check_in_flight(FINISH_POLL, 440, "in flight, polled");
}
END_TEST

/* ---- agree ----------------------------------------------------------------------- */

static void check_agree(tally *t, int fail_a, int fail_b, int expected)
{
    zrt_status local = g_rank == fail_a || g_rank == fail_b ? ZRT_ERR_INTERNAL : ZRT_OK;
    int first = -2;
    zrt_status st = g_comm->ops->agree(g_comm, local, &first);
    EXPECT(t, st == ZRT_OK, "agree returned %s: %s", zrt_status_str(st), g_err.text);
    EXPECT(t, first == expected,
           "agree with ranks %d and %d failing: "
           "first_failed %d, expected %d",
           fail_a, fail_b, first, expected);
}

START_TEST(test_agree)
{
    tally t = {0};
    check_agree(&t, -1, -1, -1);
    check_agree(&t, g_size - 1, -1, g_size - 1);
    check_agree(&t, 0, -1, 0);
    if (g_size > 2)
        check_agree(&t, g_size - 1, 1, 1);
    check_agree(&t, -1, -1, -1);
    FINISH(&t);
}
END_TEST

/* ---- scratch accounting ------------------------------------------------------------ */

START_TEST(test_comm_accounting)
{
    tally t = {0};
    expect_comm_idle(&t, "before the accounting test");
    size_t count = 4096;
    float *send = guarded_floats((size_t)g_size * count);
    float *recv = guarded_floats(count);
    fill_input(send, (size_t)g_size * count, 500, g_rank, 0);

    zrt__comm_req *req = NULL;
    zrt_status st =
        zrt__comm_reduce_scatter_f32(g_comm, send, recv, count, ZRT_SUM, &req);
    int64_t in_flight = comm_bytes_now();
    complete(&t, st, &req, "accounted reduce_scatter");
    if (g_size > 1) {
        EXPECT(&t, in_flight > 0,
               "a reduce-scatter at %d ranks in flight "
               "charges no comm scratch",
               g_size);
        EXPECT(&t, comm_bytes_peak() >= in_flight && comm_bytes_peak() > 0,
               "comm peak %lld below the %lld bytes held in flight",
               (long long)comm_bytes_peak(), (long long)in_flight);
    }
    expect_comm_idle(&t, "reduce_scatter waited");

    /* An all-reduce with padding, completed through test(), then waited. */
    int done = 0;
    st = zrt__comm_all_reduce_f32(g_comm, recv, recv, 1001, ZRT_AVG, &req);
    EXPECT(&t, st == ZRT_OK, "accounted all_reduce: start returned %s",
           zrt_status_str(st));
    double give_up = now_s() + POLL_LIMIT_S;
    while (st == ZRT_OK && !done && now_s() < give_up)
        EXPECT(&t, g_comm->ops->test(g_comm, req, &done) == ZRT_OK,
               "accounted all_reduce: test failed: %s", g_err.text);
    complete(&t, st, &req, "accounted all_reduce");
    expect_comm_idle(&t, "all_reduce polled then waited");
    EXPECT(&t, g_acct.stats.tier_current[ZRT_TIER_DEVICE] == 0,
           "%lld device bytes still charged",
           (long long)g_acct.stats.tier_current[ZRT_TIER_DEVICE]);
    free(recv);
    free(send);
    FINISH(&t);
}
END_TEST

/* ---- zero elements ------------------------------------------------------------------
 */

START_TEST(test_zero_count)
{
    tally t = {0};
    float *a = guarded_floats(0), *b = guarded_floats(0);
    zrt__comm_req *req = NULL;
    int done = 0;
    complete(&t, zrt__comm_reduce_scatter_f32(g_comm, a, b, 0, ZRT_SUM, &req), &req,
             "reduce_scatter of 0");
    complete(&t, zrt__comm_reduce_scatter_f32(g_comm, a, a, 0, ZRT_AVG, &req), &req,
             "in-place reduce_scatter of 0");
    complete(&t, zrt__comm_all_reduce_f32(g_comm, a, b, 0, ZRT_SUM, &req), &req,
             "all_reduce of 0");
    complete(&t, g_comm->ops->all_gather(g_comm, a, b, 0, ZRT_F32, &req), &req,
             "all_gather of 0");
    complete(&t, g_comm->ops->all_gather(g_comm, b, b, 0, ZRT_BF16, &req), &req,
             "in-place all_gather of 0");
    complete(&t, g_comm->ops->broadcast(g_comm, a, 0, g_size - 1, &req), &req,
             "broadcast of 0 bytes");

    /* Polling a zero-count request says done at once. */
    zrt_status st = zrt__comm_all_reduce_f32(g_comm, a, a, 0, ZRT_AVG, &req);
    if (st == ZRT_OK) {
        EXPECT(&t, g_comm->ops->test(g_comm, req, &done) == ZRT_OK && done,
               "a zero-count all_reduce is not done at the first test()");
        if (!done) /* in case it is merely slow: do not leave it unpaired */
            g_comm->ops->test(g_comm, req, &done);
    }
    complete(&t, st, &req, "polled all_reduce of 0");
    expect_guard(&t, a, "zero-count collectives, buffer a");
    expect_guard(&t, b, "zero-count collectives, buffer b");

    /* Collectives after them still pair up across ranks. */
    check_all_reduce(&t, 5, ZRT_SUM, 0, 600);
    check_reduce_scatter(&t, 3, ZRT_AVG, 1, 601);
    expect_comm_idle(&t, "zero-count");
    free(a);
    free(b);
    FINISH(&t);
}
END_TEST

/* ---- runner ---------------------------------------------------------------------------
 */

static Suite *comm_suite(void)
{
    return ZRT_CHECK_SUITE("comm", 0, test_data_is_order_sensitive, test_reduce_scatter,
                           test_all_reduce, test_half_reductions, test_all_gather,
                           test_broadcast, test_in_flight_wait_shuffled,
                           test_in_flight_order_per_rank, test_in_flight_poll, test_agree,
                           test_comm_accounting, test_zero_count);
}

static int setup_comm(void)
{
    zrt__mem_account_init(&g_acct);
    if (zrt__backend_cpu_create(&g_acct, &g_err, NULL, &g_be) != ZRT_OK ||
        zrt__comm_mpi_create(g_be, &g_err, &g_comm) != ZRT_OK) {
        fprintf(stderr, "test_comm: cannot create the communicator: %s\n", g_err.text);
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
    SRunner *sr = srunner_create(comm_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int local = srunner_ntests_failed(sr);
    srunner_free(sr);

    int total = 0;
    if (MPI_Allreduce(&local, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        total = local > 0 ? local : 1;
    if (local > 0)
        fprintf(stderr, "test_comm: rank %d/%d: %d test(s) failed\n", g_rank, g_size,
                local);
    if (g_rank == 0)
        printf("test_comm: %d rank(s), %d failed test(s) summed over ranks\n", g_size,
               total);
    g_comm->ops->destroy(g_comm);
    g_be->ops->destroy(g_be);
    return total == 0 ? 0 : 1;
}
