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
 * its mismatches and asserts after its last collective. The collective
 * checks are test_comm.c's (tests/common/test_comm.h), here against the
 * reference of the grouping in force. test_quantized checks qgZ's
 * quantized reductions the same way, flat too, against the sum of the
 * quantized contributions computed with the kernels' scalar references.
 */
#include <check.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/test_check.h"
#include "../common/test_comm.h"
#include "kernels/cpu/kernels.h"
#include "runtime/backend.h"
#include "runtime/comm.h"
#include "runtime/memory.h"

static zrt__mem_account g_acct;
static zrt__errbuf g_err = {.rank = -1};
static zrt__comm *g_comm;
/* The communicator, and the group size the current round routes by (the
 * reference sums follow it; 0 when flat). */
static tc_world g_world;

/* ---- routing ------------------------------------------------------------------ */

/* Routes by groups of R (hierarchical, forced) or flat; records a refusal. */
static void route(tally *t, int hierarchy, int R)
{
    char why[256] = "";
    zrt_status st = g_comm->ops->set_hierarchy(g_comm, hierarchy, R, why, sizeof why);
    EXPECT(t, st == ZRT_OK, "set_hierarchy(%d, %d) returned %s: %s", hierarchy, R,
           zrt_status_str(st), g_err.text);
    g_world.group = hierarchy == ZRT_COMM_HIER_FLAT ? 0 : R;
}

/* Runs round(t) once per group size R, 1 < R < N, R dividing N. */
static void each_grouping(tally *t, void (*round)(tally *t))
{
    for (int R = 2; R < g_comm->size; R++) {
        if (g_comm->size % R != 0)
            continue;
        route(t, ZRT_COMM_HIER_HIERARCHICAL, R);
        EXPECT(t, g_comm->hierarchical == 1 && g_comm->group_size == R,
               "groups of %d forced: hierarchical %d, group_size %d", R,
               g_comm->hierarchical, g_comm->group_size);
        round(t);
    }
    route(t, ZRT_COMM_HIER_FLAT, 0);
}

/* A Check test that runs round once per grouping. */
#define GROUPING_TEST(name, round)                                                       \
    START_TEST(name)                                                                     \
    {                                                                                    \
        tally t = {.w = &g_world};                                                       \
        each_grouping(&t, round);                                                        \
        FINISH(&t);                                                                      \
    }                                                                                    \
    END_TEST

/* ---- the data tell the orders apart ------------------------------------------- */

/* For every grouping, the hierarchical order gives other bits than rank
 * order for some elements, and a reduce-scatter's result is the
 * hierarchical one: a flat sum would fail the checks below. */
static void order_round(tally *t)
{
    const tc_world flat = {.comm = g_comm};
    size_t count = 1000, differ = 0, mine = (size_t)g_comm->rank * count;
    float *send = tc_guarded((size_t)g_comm->size * count * sizeof(float));
    float *recv = tc_guarded(count * sizeof(float));
    tc_fill_f32(send, (size_t)g_comm->size * count, 1, g_comm->rank, 0);
    zrt__comm_req *req = NULL;
    tc_complete(t, zrt__comm_reduce_scatter_f32(g_comm, send, recv, count, ZRT_SUM, &req),
                &req, "order reduce_scatter");
    for (size_t j = 0; j < count; j++) {
        float in_rank_order = tc_reduced(&flat, 1, mine + j, ZRT_SUM);
        differ += memcmp(&recv[j], &in_rank_order, sizeof in_rank_order) != 0;
    }
    EXPECT(t, differ > 0, "the result equals the rank-order sum in all %zu elements",
           count);
    tc_expect_reduced(t, recv, count, 1, mine, ZRT_SUM, "order");
    free(send);
    free(recv);
}

GROUPING_TEST(test_order_is_hierarchical, order_round)

/* ---- reduce-scatter and all-reduce, f32 --------------------------------------- */

/* An all-reduce's count not a multiple of N pads; its elements also equal
 * a reduce-scatter's of the same (zero-padded) data, bit for bit. */
static void reductions_round(tally *t)
{
    static const size_t rs_counts[] = {1, 7, 1000, 65537};
    static const size_t ar_counts[] = {1, 5, 4096, 10001};
    tc_each_reduction(t, TC_REDUCE_SCATTER, rs_counts, 4, 10);
    tc_each_reduction(t, TC_ALL_REDUCE, ar_counts, 4, 30);
    tc_expect_comm_idle(t, "reductions");
}

GROUPING_TEST(test_reductions_f32, reductions_round)

/* ---- 16-bit reductions -------------------------------------------------------- */

/* 999 elements a rank; the all-reduce 3 fewer in all, so it pads. */
static void half_round(tally *t)
{
    tc_each_half(t, 999, 3);
    tc_expect_comm_idle(t, "half reductions");
}

GROUPING_TEST(test_reductions_half, half_round)

/* ---- all-gather --------------------------------------------------------------- */

static void gather_round(tally *t)
{
    tc_each_all_gather(t, 200);
    tc_expect_comm_idle(t, "all_gather");
}

GROUPING_TEST(test_all_gather, gather_round)

/* ---- repeatability ------------------------------------------------------------ */

/* The same reduction twice, and once more with other collectives in flight
 * around it: the same bits every time. */
static void repeat_round(tally *t)
{
    size_t count = 4099;
    float *send = tc_guarded(count * sizeof(float));
    float *first = tc_guarded(count * sizeof(float)),
          *again = tc_guarded(count * sizeof(float));
    float *noise = tc_guarded((size_t)g_comm->size * 64 * sizeof(float));
    tc_fill_f32(send, count, 300, g_comm->rank, 0);
    tc_fill_f32(noise, (size_t)g_comm->size * 64, 301, g_comm->rank, 0);
    zrt__comm_req *req = NULL, *other = NULL;
    tc_complete(t, zrt__comm_all_reduce_f32(g_comm, send, first, count, ZRT_AVG, &req),
                &req, "repeat 1");
    zrt_status st =
        zrt__comm_reduce_scatter_f32(g_comm, noise, noise, 64, ZRT_SUM, &other);
    tc_complete(t, zrt__comm_all_reduce_f32(g_comm, send, again, count, ZRT_AVG, &req),
                &req, "repeat 2");
    tc_complete(t, st, &other, "repeat, in flight around it");
    EXPECT(t, memcmp(first, again, count * sizeof *first) == 0,
           "the same all-reduce gave other bits the second time");
    tc_expect_reduced(t, again, count, 300, 0, ZRT_AVG, "repeat");
    free(noise);
    free(again);
    free(first);
    free(send);
}

GROUPING_TEST(test_repeatable, repeat_round)

/* ---- several collectives in flight -------------------------------------------- */

/* Reduce-scatters, all-reduces and all-gathers interleaved, waited in
 * another order than started, then completed per rank: even ranks in that
 * order, odd ranks in its reverse, each request polled alone (a rank must
 * not hold back a phase another rank waits for). */
static void flights_round(tally *t)
{
    static const tc_flight_plan plan[] = {
        {TC_REDUCE_SCATTER, ZRT_SUM, 1000, 0}, {TC_ALL_REDUCE, ZRT_SUM, 10001, 0},
        {TC_ALL_GATHER, ZRT_SUM, 777, 1},      {TC_REDUCE_SCATTER, ZRT_AVG, 65537, 1},
        {TC_ALL_REDUCE, ZRT_AVG, 4096, 1},     {TC_ALL_GATHER, ZRT_SUM, 5, 0}};
    static const int shuffled[] = {3, 5, 1, 4, 0, 2};
    const int n = sizeof plan / sizeof plan[0];
    tc_run_flights(t, plan, n, TC_WAIT_SHUFFLED, shuffled, 400);
    tc_run_flights(t, plan, n, TC_PER_RANK, shuffled, 410);
    tc_expect_comm_idle(t, "in flight");
}

GROUPING_TEST(test_in_flight, flights_round)

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
    const int R = g_world.group;
    const size_t B = 1024, N = (size_t)g_comm->size, G = N / (size_t)R;
    const uint64_t block = B * sizeof(float);
    float *buf = tc_guarded(N * B * sizeof(float)), *mine = tc_guarded(B * sizeof(float));
    tc_fill_f32(buf, N * B, 500, g_comm->rank, 0);
    zrt__comm_req *req = NULL;

    sent before = sent_now();
    zrt__comm_for_layer(g_comm, 3);
    zrt_status st = zrt__comm_reduce_scatter_f32(g_comm, buf, mine, B, ZRT_SUM, &req);
    EXPECT(t, tc_comm_bytes_now(&g_world) == (int64_t)(N * block),
           "a hierarchical reduce-scatter holds %lld bytes of scratch, flat %llu",
           (long long)tc_comm_bytes_now(&g_world), (unsigned long long)(N * block));
    tc_complete(t, st, &req, "counted reduce_scatter");
    expect_sent(t, before, 3, (N - 1) * block, (G - 1) * block, "reduce_scatter");

    before = sent_now();
    tc_complete(t, zrt__comm_all_reduce_f32(g_comm, buf, buf, N * B, ZRT_SUM, &req), &req,
                "counted all_reduce");
    expect_sent(t, before, -1, 2 * (N - 1) * block, 2 * (G - 1) * block, "all_reduce");

    before = sent_now();
    zrt__comm_for_layer(g_comm, 4);
    tc_complete(t, g_comm->ops->all_gather(g_comm, mine, buf, B, ZRT_F32, &req), &req,
                "counted all_gather");
    expect_sent(t, before, 4, (N - 1) * block, (G - 1) * block, "all_gather");

    /* Flat, by the same groups: R times the bytes across groups. */
    route(t, ZRT_COMM_HIER_FLAT, R);
    before = sent_now();
    tc_complete(t, zrt__comm_reduce_scatter_f32(g_comm, buf, mine, B, ZRT_SUM, &req),
                &req, "flat reduce_scatter");
    expect_sent(t, before, -1, (N - 1) * block, (N - (size_t)R) * block,
                "flat reduce_scatter");
    route(t, ZRT_COMM_HIER_HIERARCHICAL, R);
    tc_expect_comm_idle(t, "traffic");
    free(mine);
    free(buf);
}

GROUPING_TEST(test_traffic, traffic_round)

/* ---- choosing the routing ----------------------------------------------------- */

/* pick_topology on an invented layout of 4 ranks: st, hierarchical, group
 * size and a phrase of the sentence (the error, or why). */
typedef struct pick_case {
    const int *hosts; /* the host of each rank */
    int hierarchy, group;
    zrt_status st;
    int hierarchical, group_size;
    const char *phrase;
} pick_case;

static void expect_pick(tally *t, const pick_case *want)
{
    const int size = 4, hierarchy = want->hierarchy, group = want->group;
    zrt__errbuf err = {.rank = -1};
    zrt__comm_topology top = {.hierarchical = -1, .group_size = -1};
    zrt_status st =
        zrt__comm_pick_topology(want->hosts, size, hierarchy, group, &err, &top);
    const char *text = st == ZRT_OK ? top.why : err.text;
    EXPECT(t, st == want->st, "pick(%d ranks, %d, %d): %s, expected %s (%s)", size,
           hierarchy, group, zrt_status_str(st), zrt_status_str(want->st), text);
    if (st == ZRT_OK && want->st == ZRT_OK)
        EXPECT(t,
               top.hierarchical == want->hierarchical &&
                   top.group_size == want->group_size,
               "pick(%d ranks, %d, %d): hierarchical %d, groups of %d; expected %d, %d",
               size, hierarchy, group, top.hierarchical, top.group_size,
               want->hierarchical, want->group_size);
    EXPECT(t, strstr(text, want->phrase) != NULL,
           "pick(%d ranks, %d, %d): \"%s\" lacks \"%s\"", size, hierarchy, group, text,
           want->phrase);
}

START_TEST(test_pick_topology)
{
    static const int two_hosts[4] = {0, 0, 2, 2}, one_host[4] = {0, 0, 0, 0};
    static const int uneven[4] = {0, 0, 0, 3}, scattered[4] = {0, 1, 0, 1};
    enum {
        AUTO = ZRT_COMM_HIER_AUTO,
        FLAT = ZRT_COMM_HIER_FLAT,
        HIER = ZRT_COMM_HIER_HIERARCHICAL
    };
    static const pick_case picks[] = {
        {two_hosts, AUTO, 0, ZRT_OK, 1, 2, "2 groups of 2 ranks"},
        {two_hosts, FLAT, 0, ZRT_OK, 0, 2, "flat"},
        {one_host, AUTO, 0, ZRT_OK, 0, 4, "1 group of 4 ranks"},
        {one_host, HIER, 0, ZRT_OK, 0, 4, "rank order"},
        {one_host, AUTO, 2, ZRT_OK, 1, 2, "comm_group_size"},
        {one_host, HIER, 1, ZRT_OK, 0, 1, "4 groups of 1 rank"},
        {uneven, AUTO, 0, ZRT_OK, 0, 0, "hold 3, 1 ranks"},
        {uneven, HIER, 2, ZRT_OK, 1, 2, "hierarchical"},
        {uneven, HIER, 0, ZRT_ERR_CONFIG, 0, 0,
         "'comm_hierarchy' is \"hierarchical\" with 'comm_group_size' 0 (a group "
         "per host), but the 4 ranks' hosts hold 3, 1 ranks"},
        {scattered, HIER, 0, ZRT_ERR_CONFIG, 0, 0, "not consecutive"},
        {scattered, AUTO, 0, ZRT_OK, 0, 0, "not consecutive"},
        {one_host, HIER, 3, ZRT_ERR_CONFIG, 0, 0,
         "'comm_group_size' is 3 but the job has 4 ranks; the world size must be a "
         "multiple of the group size"},
        {one_host, 7, 0, ZRT_ERR_CONFIG, 0, 0, "'comm_hierarchy' is 7"},
        {one_host, AUTO, -2, ZRT_ERR_CONFIG, 0, 0, "'comm_group_size' is -2"},
    };
    tally t = {.w = &g_world};
    for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++)
        expect_pick(&t, &picks[i]);
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
    int bad = g_comm->size - 1; /* divides neither 4 nor 6 */
    zrt_status st = g_comm->ops->set_hierarchy(g_comm, ZRT_COMM_HIER_HIERARCHICAL, bad,
                                               why, sizeof why);
    snprintf(phrase, sizeof phrase, "'comm_group_size' is %d but the job has %d ranks",
             bad, g_comm->size);
    expect_refused(t, st, ZRT_ERR_CONFIG, g_err.text, phrase, "group size not dividing");
    EXPECT(t, g_comm->hierarchical == 0, "a refused routing changed the communicator");
    float x[64] = {0};
    zrt__comm_req *req = NULL;
    st = zrt__comm_all_reduce_f32(g_comm, x, x, 64, ZRT_SUM, &req);
    zrt_status busy =
        g_comm->ops->set_hierarchy(g_comm, ZRT_COMM_HIER_FLAT, 0, why, sizeof why);
    expect_refused(t, busy, ZRT_ERR_STATE, g_err.text, "in flight", "change in flight");
    tc_complete(t, st, &req, "all_reduce during a refused change");
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
    static const struct {
        const char *json, *phrase, *what;
    } bad[] = {{"{\"comm_hierarchy\": \"tree\"}",
                "it must be \"auto\", \"flat\" or \"hierarchical\"",
                "comm_hierarchy tree"},
               {"{\"comm_group_size\": -1}", "'comm_group_size'", "comm_group_size -1"},
               {"{\"comm_group_size\": \"2\"}", "0 (a group per host)",
                "comm_group_size \"2\""}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = zrt_config_load_string(&cfg, bad[i].json, err, sizeof err);
        expect_refused(t, st, ZRT_ERR_CONFIG, err, bad[i].phrase, bad[i].what);
    }
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
    cfg.comm_group_size = g_comm->size - 1;
    cfg.log_level = 0;
    zrt_ctx *ctx = NULL;
    zrt_status st = zrt_ctx_create(&cfg, &ctx);
    EXPECT(t, st == ZRT_ERR_CONFIG && ctx == NULL,
           "a context with groups of %d on %d ranks: %s", g_comm->size - 1, g_comm->size,
           zrt_status_str(st));
    if (ctx)
        zrt_ctx_destroy(ctx);
}

START_TEST(test_bad_config_refused)
{
    tally t = {.w = &g_world};
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
    tally t = {.w = &g_world};
    route(&t, ZRT_COMM_HIER_AUTO, 0);
    EXPECT(&t, g_comm->hierarchical == 0 && g_comm->group_size == g_comm->size,
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
    zrt_status st =
        zrt__comm_all_reduce_f32(c, x, x, (size_t)g_comm->size * 2, ZRT_SUM, &req);
    if (st == ZRT_OK) {
        g_lost_req = req;
        st = c->ops->wait(c, req);
    }
    EXPECT(t, st == ZRT_ERR_REMOTE, "the all-reduce with rank 1 silent: %s (%s)",
           zrt_status_str(st), err->text);
    /* rank 0 waits for rank 1 in its group; the other even ranks for rank 0
     * (stuck there) across groups; the odd ranks for rank 1 across groups */
    const char *phrases[] = {"all-reduce of", "for layer 5",
                             g_comm->rank == 0 ? "(hierarchical, within the group)"
                                               : "(hierarchical, across groups)",
                             g_comm->rank % 2 || g_comm->rank == 0
                                 ? "no answer from rank 1 "
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
    tally t = {.w = &g_world};
    zrt__errbuf err = {.rank = g_comm->rank};
    zrt__comm *c = NULL;
    char why[256];
    if (zrt__comm_mpi_create(g_comm->be, &err, &c) != ZRT_OK ||
        c->ops->set_hierarchy(c, ZRT_COMM_HIER_HIERARCHICAL, 2, why, sizeof why) !=
            ZRT_OK)
        note(&t, "cannot make the communicator: %s", err.text);
    if (c && t.fails == 0 && g_comm->rank != 1) {
        c->timeout_seconds = 1.0;
        expect_named(&t, c, &err);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (c)
        c->ops->destroy(c); /* the failed one: neither freed in MPI nor finalized */
    FINISH(&t);
}
END_TEST

/* ---- quantized reductions (qgZ) --------------------------------------------- */

/* out (n elements) = deq(q(x)), written (add 0) or added (add 1), with the
 * kernels' scalar references: one contribution as qgZ moves it. */
static void qgz_contribution(const float *x, size_t n, zrt__quant q, float *out, int add)
{
    size_t bytes = zrt__quant_part_bytes(n, q), codes = q.bits == 4 ? (n + 1) / 2 : n;
    char *part = calloc(1, bytes + 4);
    float *scale = (float *)(part + (codes + 3) / 4 * 4);
    if (q.bits == 8) {
        zrt_quantize_i8_scalar(x, n, q.block, (int8_t *)part, scale);
        (add ? zrt_dequantize_add_i8_scalar
             : zrt_dequantize_i8_scalar)((const int8_t *)part, scale, n, q.block, out);
    } else {
        zrt_quantize_i4_scalar(x, n, q.block, (uint8_t *)part, scale);
        (add ? zrt_dequantize_add_i4_scalar
             : zrt_dequantize_i4_scalar)((const uint8_t *)part, scale, n, q.block, out);
    }
    free(part);
}

/* Rank r's block b of the inputs (zero past `count`, the padding). */
static void qgz_input(float *x, size_t block, int r, size_t b, size_t count)
{
    for (size_t j = 0; j < block; j++) {
        size_t i = b * block + j;
        x[j] = i < count ? tc_input_f32(7, r, i) : 0.0f;
    }
}

/* The reference of block b, summed in f32 as qgZ does: flat, every rank's
 * block quantized, in rank order; in groups of R, each group's members in
 * order, that partial quantized again, the partials in group order. */
static void qgz_reference(size_t b, size_t block, size_t count, zrt__quant q, float *out)
{
    int N = g_comm->size, R = g_world.group > 0 ? g_world.group : N;
    float *x = malloc(block * sizeof(float)), *partial = malloc(block * sizeof(float));
    for (int gi = 0; gi < N / R; gi++) {
        for (int m = 0; m < R; m++) {
            qgz_input(x, block, gi * R + m, b, count);
            if (g_world.group > 0) /* a new partial for each group */
                qgz_contribution(x, block, q, partial, m > 0);
            else
                qgz_contribution(x, block, q, out, m > 0 || gi > 0);
        }
        if (g_world.group > 0)
            qgz_contribution(partial, block, q, out, gi > 0);
    }
    for (size_t j = 0; j < block; j++)
        out[j] /= (float)N;
    free(x);
    free(partial);
}

static void qgz_expect(tally *t, const float *got, size_t b, size_t block, size_t n,
                       size_t count, zrt__quant q, const char *what)
{
    float *want = malloc(block * sizeof(float));
    qgz_reference(b, block, count, q, want);
    size_t i = tc_first_diff(got, want, n, sizeof(float));
    if (i < n)
        note(t, "%s: block %zu element %zu is %a, expected %a", what, b, i,
             (double)got[i], (double)want[i]);
    free(want);
}

/* One quantized reduce-scatter (count a rank) and all-reduce (count in
 * all), averaged, against the reference bit for bit, guards intact. */
static void qgz_one(tally *t, size_t count, zrt__quant q)
{
    size_t N = (size_t)g_comm->size, rank = (size_t)g_comm->rank;
    char what[96];
    snprintf(what, sizeof what, "quantized reduce_scatter int%d block %zu count %zu",
             q.bits, q.block, count);
    float *send = tc_guarded(N * count * sizeof(float)), *recv;
    recv = tc_guarded(count * sizeof(float));
    tc_fill_f32(send, N * count, 7, g_comm->rank, 0);
    zrt__comm_req *req = NULL;
    tc_complete(t,
                g_comm->ops->reduce_scatter_quantized(g_comm, send, recv, count, q,
                                                      ZRT_AVG, &req),
                &req, what);
    qgz_expect(t, recv, rank, count, count, N * count, q, what);
    tc_expect_guard(t, recv + count, what);
    free(recv);
    snprintf(what, sizeof what, "quantized all_reduce int%d block %zu count %zu", q.bits,
             q.block, count);
    size_t block = (count + N - 1) / N;
    tc_fill_f32(send, count, 7, g_comm->rank, 0);
    tc_complete(
        t, g_comm->ops->all_reduce_quantized(g_comm, send, send, count, q, ZRT_AVG, &req),
        &req, what);
    for (size_t b = 0; b < N && b * block < count; b++) {
        size_t n = count - b * block < block ? count - b * block : block;
        qgz_expect(t, send + b * block, b, block, n, count, q, what);
    }
    free(send);
}

/* int8 and int4, blocks that divide a rank block and blocks that do not,
 * counts that pad; then nothing is left allocated. */
static void quantized_round(tally *t)
{
    static const size_t counts[] = {1, 7, 1000, 4099};
    static const zrt__quant formats[] = {{8, 64}, {8, 7}, {4, 64}, {4, 2}};
    for (size_t f = 0; f < 4; f++)
        for (size_t i = 0; i < 4; i++)
            qgz_one(t, counts[i], formats[f]);
    tc_expect_comm_idle(t, "quantized reductions");
}

/* Every grouping, then flat (each_grouping leaves the routing flat). */
START_TEST(test_quantized)
{
    tally t = {.w = &g_world};
    each_grouping(&t, quantized_round);
    quantized_round(&t);
    FINISH(&t);
}
END_TEST

/* ---- runner ------------------------------------------------------------------- */

static Suite *hier_suite(void)
{
    return ZRT_CHECK_SUITE("comm_hier", 120, test_pick_topology,
                           test_order_is_hierarchical, test_reductions_f32,
                           test_reductions_half, test_quantized, test_all_gather,
                           test_repeatable, test_in_flight, test_traffic, test_auto,
                           test_bad_config_refused, test_timeout_names_peers);
}

int main(void)
{
    if (tc_create_cpu_world("test_comm_hier", &g_acct, &g_err, &g_comm, &g_world) != 0)
        return 1;
    int status = ZRT_TEST_SKIP;
    if (g_comm->size >= 4 && g_comm->size <= 32)
        status = zrt_check_main_mpi(hier_suite(), "comm_hier");
    else if (g_comm->rank == 0)
        printf("test_comm_hier: runs on 4 to 32 ranks (2 groups of 2 or more)\n");
    tc_destroy_cpu_world(&g_world);
    return status;
}
