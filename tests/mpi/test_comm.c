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
 * returns 0 only if no test failed on any rank. The checks the hierarchical
 * suite (test_comm_hier.c) runs too, and the scaffolding, are in
 * tests/common/test_comm.h.
 */
#include <check.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/test_check.h"
#include "../common/test_comm.h"
#include "runtime/backend.h"
#include "runtime/comm.h"
#include "runtime/memory.h"

/* The one communicator every test uses (test code: file-static is fine);
 * its reductions run in rank order. */
static zrt__mem_account g_acct;
static zrt__errbuf g_err = {.rank = -1};
static zrt__comm *g_comm;
static tc_world g_world;

/* coll for both ops, every count and both placements, each with its own
 * seed from first_seed up; then no scratch may be left. */
static void check_every_reduction(tc_coll coll, const size_t *counts, size_t ncounts,
                                  unsigned first_seed, const char *what)
{
    tally t = {.w = &g_world};
    tc_each_reduction(&t, coll, counts, ncounts, first_seed);
    tc_expect_comm_idle(&t, what);
    FINISH(&t);
}

/* ---- the test data itself ------------------------------------------------- */

/* With 3 or more ranks, summing in another order must change some bits, or
 * the bit-exact checks below could not see a reduction in the wrong order. */
START_TEST(test_data_is_order_sensitive)
{
    if (g_comm->size < 3)
        return;
    int differ = 0;
    for (size_t i = 0; i < 1000; i++) {
        float backward = tc_input_f32(1, g_comm->size - 1, i);
        for (int k = g_comm->size - 2; k >= 0; k--)
            backward += tc_input_f32(1, k, i);
        float forward = tc_reduced(&g_world, 1, i, ZRT_SUM);
        differ += memcmp(&forward, &backward, sizeof forward) != 0;
    }
    ck_assert_msg(differ > 0, "the inputs sum to the same bits in any order");
}
END_TEST

/* ---- reduce-scatter and all-reduce ------------------------------------------------ */

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const size_t rs_counts[] = {1, 7, 1000, 65537};
static const size_t ar_counts[] = {1, 5, 4096, 10001}; /* some pad to a multiple of N */

START_TEST(test_reduce_scatter)
{
    check_every_reduction(TC_REDUCE_SCATTER, rs_counts, NELEMS(rs_counts), 10,
                          "reduce_scatter");
}
END_TEST

/* Each result also equals a reduce-scatter's of the same data. */
START_TEST(test_all_reduce)
{
    check_every_reduction(TC_ALL_REDUCE, ar_counts, NELEMS(ar_counts), 100, "all_reduce");
}
END_TEST

/* ---- 16-bit reductions ------------------------------------------------------- */

/* Reduce-scatter and all-reduce of bf16 and f16 give, for every element,
 * the ordered f32 sum rounded once, the same bits both ways. */
START_TEST(test_half_reductions)
{
    tally t = {.w = &g_world};
    tc_each_half(&t, 1000, 0);
    tc_expect_comm_idle(&t, "half reductions");
    FINISH(&t);
}
END_TEST

/* ---- all-gather ---------------------------------------------------------------- */

START_TEST(test_all_gather)
{
    tally t = {.w = &g_world};
    tc_each_all_gather(&t, 200);
    tc_expect_comm_idle(&t, "all_gather");
    FINISH(&t);
}
END_TEST

/* ---- broadcast ----------------------------------------------------------------- */

static void check_broadcast(tally *t, size_t bytes, int root, unsigned seed)
{
    char what[128];
    snprintf(what, sizeof what, "broadcast of %zu bytes from root %d", bytes, root);
    unsigned char *buf = tc_guarded(bytes);
    unsigned char *want = test_xmalloc(bytes);
    tc_fill_bytes(want, bytes, seed, root);
    if (g_comm->rank == root)
        memcpy(buf, want, bytes);
    zrt__comm_req *req = NULL;
    tc_complete(t, g_comm->ops->broadcast(g_comm, buf, bytes, root, &req), &req, what);
    tc_expect_bytes(t, buf, want, bytes, what);
    tc_expect_guard(t, buf + bytes, what);
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
           root, g_comm->size, zrt_status_str(st));
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
    tally t = {.w = &g_world};
    static const size_t sizes[] = {1, 4000, 12345};
    int roots[2] = {0, g_comm->size - 1};
    unsigned seed = 300;
    for (int r = 0; r < 2; r++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            check_broadcast(&t, sizes[s], roots[r], seed++);
    check_bad_root(&t, g_comm->size);
    check_bad_root(&t, -1);
    /* The failed calls started nothing: a broadcast after them still pairs. */
    check_broadcast(&t, 100, g_comm->size - 1, seed++);
    tc_expect_comm_idle(&t, "broadcast");
    FINISH(&t);
}
END_TEST

/* ---- several collectives in flight ------------------------------------------- */

/* The engine's pattern: reduce-scatters and all-reduces interleaved. */
static const tc_flight_plan g_flights[] = {{TC_REDUCE_SCATTER, ZRT_SUM, 1000, 0},
                                           {TC_ALL_REDUCE, ZRT_SUM, 10001, 0},
                                           {TC_REDUCE_SCATTER, ZRT_AVG, 65537, 1},
                                           {TC_ALL_REDUCE, ZRT_AVG, 4096, 1},
                                           {TC_REDUCE_SCATTER, ZRT_SUM, 7, 0}};

/* One round of the five, completed as `how` says (waits in another order
 * than started; odd ranks in the reverse of the even ranks' order; test()
 * until done), then no scratch may be left. */
static void check_in_flight(tc_finish how, unsigned seed, const char *what)
{
    static const int shuffled[] = {3, 1, 4, 0, 2};
    tally t = {.w = &g_world};
    tc_run_flights(&t, g_flights, NELEMS(g_flights), how, shuffled, seed);
    tc_expect_comm_idle(&t, what);
    FINISH(&t);
}

START_TEST(test_in_flight_wait_shuffled)
{
    check_in_flight(TC_WAIT_SHUFFLED, 400, "in flight, shuffled waits");
}
END_TEST

START_TEST(test_in_flight_order_per_rank)
{
    check_in_flight(TC_PER_RANK, 420, "in flight, per-rank wait order");
}
END_TEST

START_TEST(test_in_flight_poll)
{
    check_in_flight(TC_POLL, 440, "in flight, polled");
}
END_TEST

/* ---- agree ----------------------------------------------------------------------- */

static void check_agree(tally *t, int fail_a, int fail_b, int expected)
{
    zrt_status local =
        g_comm->rank == fail_a || g_comm->rank == fail_b ? ZRT_ERR_INTERNAL : ZRT_OK;
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
    tally t = {.w = &g_world};
    check_agree(&t, -1, -1, -1);
    check_agree(&t, g_comm->size - 1, -1, g_comm->size - 1);
    check_agree(&t, 0, -1, 0);
    if (g_comm->size > 2)
        check_agree(&t, g_comm->size - 1, 1, 1);
    check_agree(&t, -1, -1, -1);
    FINISH(&t);
}
END_TEST

/* ---- scratch accounting ------------------------------------------------------------ */

START_TEST(test_comm_accounting)
{
    tally t = {.w = &g_world};
    tc_expect_comm_idle(&t, "before the accounting test");
    size_t count = 4096;
    float *send = tc_guarded((size_t)g_comm->size * count * sizeof(float));
    float *recv = tc_guarded(count * sizeof(float));
    tc_fill_f32(send, (size_t)g_comm->size * count, 500, g_comm->rank, 0);

    zrt__comm_req *req = NULL;
    zrt_status st =
        zrt__comm_reduce_scatter_f32(g_comm, send, recv, count, ZRT_SUM, &req);
    int64_t in_flight = tc_comm_bytes_now(&g_world);
    tc_complete(&t, st, &req, "accounted reduce_scatter");
    int64_t peak = tc_comm_bytes_peak(&g_world);
    if (g_comm->size > 1) {
        EXPECT(&t, in_flight > 0,
               "a reduce-scatter at %d ranks in flight "
               "charges no comm scratch",
               g_comm->size);
        EXPECT(&t, peak >= in_flight && peak > 0,
               "comm peak %lld below the %lld bytes held in flight", (long long)peak,
               (long long)in_flight);
    }
    tc_expect_comm_idle(&t, "reduce_scatter waited");

    /* An all-reduce with padding, completed through test(), then waited. */
    int done = 0;
    st = zrt__comm_all_reduce_f32(g_comm, recv, recv, 1001, ZRT_AVG, &req);
    EXPECT(&t, st == ZRT_OK, "accounted all_reduce: start returned %s",
           zrt_status_str(st));
    double give_up = tc_now() + TC_POLL_LIMIT_S;
    while (st == ZRT_OK && !done && tc_now() < give_up)
        EXPECT(&t, g_comm->ops->test(g_comm, req, &done) == ZRT_OK,
               "accounted all_reduce: test failed: %s", g_err.text);
    tc_complete(&t, st, &req, "accounted all_reduce");
    tc_expect_comm_idle(&t, "all_reduce polled then waited");
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
    tally t = {.w = &g_world};
    float *a = tc_guarded(0), *b = tc_guarded(0);
    zrt__comm_req *req = NULL;
    int done = 0;
    tc_complete(&t, zrt__comm_reduce_scatter_f32(g_comm, a, b, 0, ZRT_SUM, &req), &req,
                "reduce_scatter of 0");
    tc_complete(&t, zrt__comm_reduce_scatter_f32(g_comm, a, a, 0, ZRT_AVG, &req), &req,
                "in-place reduce_scatter of 0");
    tc_complete(&t, zrt__comm_all_reduce_f32(g_comm, a, b, 0, ZRT_SUM, &req), &req,
                "all_reduce of 0");
    tc_complete(&t, g_comm->ops->all_gather(g_comm, a, b, 0, ZRT_F32, &req), &req,
                "all_gather of 0");
    tc_complete(&t, g_comm->ops->all_gather(g_comm, b, b, 0, ZRT_BF16, &req), &req,
                "in-place all_gather of 0");
    tc_complete(&t, g_comm->ops->broadcast(g_comm, a, 0, g_comm->size - 1, &req), &req,
                "broadcast of 0 bytes");

    /* Polling a zero-count request says done at once. */
    zrt_status st = zrt__comm_all_reduce_f32(g_comm, a, a, 0, ZRT_AVG, &req);
    if (st == ZRT_OK) {
        EXPECT(&t, g_comm->ops->test(g_comm, req, &done) == ZRT_OK && done,
               "a zero-count all_reduce is not done at the first test()");
        if (!done) /* in case it is merely slow: do not leave it unpaired */
            g_comm->ops->test(g_comm, req, &done);
    }
    tc_complete(&t, st, &req, "polled all_reduce of 0");
    tc_expect_guard(&t, a, "zero-count collectives, buffer a");
    tc_expect_guard(&t, b, "zero-count collectives, buffer b");

    /* Collectives after them still pair up across ranks. */
    tc_check_one(&t, TC_ALL_REDUCE, ZRT_SUM, 5, 0, 600);
    tc_check_one(&t, TC_REDUCE_SCATTER, ZRT_AVG, 3, 1, 601);
    tc_expect_comm_idle(&t, "zero-count");
    free(a);
    free(b);
    FINISH(&t);
}
END_TEST

/* ---- point-to-point ----------------------------------------------------------------
 * A ring: each rank sends its bytes to the next and receives the previous
 * rank's, with two tags in flight at once, posted in opposite orders on even
 * and odd ranks (only the tags and the per-pair order match them); the
 * bytes arrive whole, the guards hold, the traffic counts what was sent,
 * and a bad peer or tag is refused with its sentence. */

enum { P2P_BYTES = 100003 };

static void fill_from(unsigned char *x, int rank, int tag)
{
    for (size_t i = 0; i < P2P_BYTES; i++)
        x[i] = tc_input_byte(900u + (unsigned)tag, rank, i);
}

static void expect_from(tally *t, const unsigned char *got, int rank, int tag)
{
    unsigned char *want = malloc(P2P_BYTES);
    fill_from(want, rank, tag);
    char what[64];
    snprintf(what, sizeof what, "recv from rank %d, tag %d", rank, tag);
    tc_expect_bytes(t, got, want, P2P_BYTES, what);
    tc_expect_guard(t, got + P2P_BYTES, what);
    free(want);
}

static void ring_round(tally *t)
{
    int n = g_comm->size, next = (g_comm->rank + 1) % n,
        prev = (g_comm->rank + n - 1) % n;
    unsigned char *out[2], *in[2];
    zrt__comm_req *req[4] = {NULL};
    for (int k = 0; k < 2; k++) {
        out[k] = tc_guarded(P2P_BYTES);
        in[k] = tc_guarded(P2P_BYTES);
        fill_from(out[k], g_comm->rank, k + 1);
    }
    uint64_t before = g_comm->traffic.other.same_host + g_comm->traffic.other.other_host;
    for (int i = 0; i < 2; i++) {
        int k = g_comm->rank % 2 ? 1 - i : i; /* odd ranks post tag 2 first */
        EXPECT(t,
               g_comm->ops->recv(g_comm, in[k], P2P_BYTES, prev, k + 1, &req[k]) ==
                   ZRT_OK,
               "recv tag %d: %s", k + 1, g_err.text);
        EXPECT(t,
               g_comm->ops->send(g_comm, out[k], P2P_BYTES, next, k + 1, &req[2 + k]) ==
                   ZRT_OK,
               "send tag %d: %s", k + 1, g_err.text);
    }
    for (int i = 3; i >= 0; i--) /* waited in another order again */
        if (req[i])
            tc_complete(t, ZRT_OK, &req[i], "point-to-point wait");
    for (int k = 0; k < 2; k++) {
        expect_from(t, in[k], prev, k + 1);
        free(out[k]);
        free(in[k]);
    }
    uint64_t sent = g_comm->traffic.other.same_host + g_comm->traffic.other.other_host;
    EXPECT(t, sent - before == 2 * (uint64_t)P2P_BYTES,
           "the traffic counted %llu bytes sent, not %d",
           (unsigned long long)(sent - before), 2 * P2P_BYTES);
}

static void expect_p2p_refused(tally *t, zrt_status st, const char *text)
{
    EXPECT(t, st == ZRT_ERR_INVALID_ARG && strstr(g_err.text, text),
           "expected a refusal naming '%s', got %s: %s", text, zrt_status_str(st),
           g_err.text);
}

START_TEST(test_point_to_point)
{
    tally t = {.w = &g_world};
    unsigned char byte = 0;
    zrt__comm_req *req = NULL;
    expect_p2p_refused(&t, g_comm->ops->send(g_comm, &byte, 1, g_comm->rank, 0, &req),
                       "is not another rank");
    expect_p2p_refused(&t, g_comm->ops->recv(g_comm, &byte, 1, g_comm->size, 0, &req),
                       "is not another rank");
    if (g_comm->size > 1) {
        int next = (g_comm->rank + 1) % g_comm->size;
        expect_p2p_refused(&t, g_comm->ops->send(g_comm, &byte, 1, next, -1, &req),
                           "tag -1 is outside 0..2767");
        expect_p2p_refused(
            &t, g_comm->ops->recv(g_comm, &byte, 1, next, ZRT__P2P_TAG_MAX + 1, &req),
            "tag 2768 is outside");
        ring_round(&t);
    }
    tc_expect_comm_idle(&t, "point-to-point");
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
                           test_comm_accounting, test_zero_count, test_point_to_point);
}

int main(void)
{
    if (tc_create_cpu_world("test_comm", &g_acct, &g_err, &g_comm, &g_world) != 0)
        return 1;
    int failed = zrt_check_main_mpi(comm_suite(), "comm");
    tc_destroy_cpu_world(&g_world);
    return failed;
}
