/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/mpi/test_pipe_grid.c — pipeline parallelism (pipeline_stages,
 * zero/pipe.c) across ranks (run under mpirun with 4 ranks; other world
 * sizes skip).
 *
 * What users rely on, for P = 2 and P = 4 stages:
 *   - the grid: world rank r is data-parallel rank r % D of stage r / D;
 *   - each stage registers its own parameters, and ZeRO shards them within
 *     the stage's D ranks (stage 3: a rank owns 1/D of each); the memory
 *     report names the grid;
 *   - a pass of GPipe, 1F1B and forward-only with M = 1..8 hands out
 *     zrt_pipe_schedule's ops in order; every forward on a stage > 0
 *     receives what stage s-1 sent for that micro-batch, every backward on a
 *     stage < P-1 what stage s+1 sent (large enough buffers to need the
 *     receiver: no deadlock);
 *   - zrt_pipe_send_to / zrt_pipe_recv_from between the first and last
 *     stage, matched by tag;
 *   - statistics count training passes only, idle within the pass time;
 *   - a gradient is averaged over the stage's ranks, not the world's;
 *   - refusals with a sentence: 3 stages on 4 ranks, with hybrid_shard_size,
 *     a receive with no input, a training pass whose micro-batches differ
 *     from gradient_accumulation_steps (checkpoints of a pipeline:
 *     tests/scripts/gpt2_pipeline.sh).
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/test_check.h"
#include "zrt/zrt.h"

enum { MAX_M = 8, LEN = 50000, UNIT = 128 }; /* LEN ints: past MPI's eager limit */

static int world_rank, world_size;

static void pipe_config(zrt_config *cfg, int P, int stage, int accumulation)
{
    zrt_config_init(cfg);
    cfg->stage = stage;
    cfg->stage3_param_persistence_threshold = 0;
    cfg->pipeline_stages = P;
    cfg->gradient_accumulation_steps = accumulation;
    cfg->comm_timeout_seconds = 60; /* a lost message fails, not hangs */
    cfg->log_level = 0;
}

/* Stage s registers s + 1 parameters of UNIT * (s + 1) elements, one a
 * layer: the stages hold different models. */
static zrt_ctx *built(const zrt_config *cfg, zrt_pipe_grid *grid, zrt_param *params)
{
    zrt_ctx *ctx = NULL;
    ck_assert_int_eq(zrt_ctx_create(cfg, &ctx), ZRT_OK);
    ck_assert_int_eq(zrt_get_pipe_grid(ctx, grid), ZRT_OK);
    for (int i = 0; i <= grid->stage; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d.p%d", grid->stage, i);
        zrt_param_desc d = {.name = name,
                            .ndim = 1,
                            .shape = {UNIT * (grid->stage + 1)},
                            .dtype = ZRT_F32,
                            .layer = i};
        ck_assert_int_eq(zrt_param_register(ctx, &d, &params[i]), ZRT_OK);
    }
    ck_assert_msg(zrt_finalize_params(ctx) == ZRT_OK, "%s", zrt_last_error(ctx));
    return ctx;
}

/* The memory report names the grid. */
static void assert_report_grid(zrt_ctx *ctx, const zrt_pipe_grid *g)
{
    char path[96], want[160], text[8192] = "";
    snprintf(path, sizeof path, "/tmp/zrt-pipe-grid-%d-%d.json", (int)getpid(),
             world_rank);
    ck_assert_msg(zrt_write_mem_report(ctx, path) == ZRT_OK, "%s", zrt_last_error(ctx));
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);
    snprintf(want, sizeof want,
             "\"pipeline_stages\": %d,\n  \"pipeline_stage\": %d,\n"
             "  \"data_parallel_size\": %d,",
             g->stages, g->stage, g->data_size);
    ck_assert_msg(strstr(text, want), "the report lacks %s", want);
}

START_TEST(grid_and_stage_parameters)
{
    for (int P = 2; P <= 4; P += 2) {
        zrt_config cfg;
        pipe_config(&cfg, P, 3, 1);
        zrt_pipe_grid g;
        zrt_param p[4];
        zrt_ctx *ctx = built(&cfg, &g, p);
        int D = world_size / P;
        ck_assert_int_eq(g.stages, P);
        ck_assert_int_eq(g.data_size, D);
        ck_assert_int_eq(g.stage, world_rank / D);
        ck_assert_int_eq(g.data_rank, world_rank % D);
        int64_t total = 0, numel = UNIT * (g.stage + 1);
        ck_assert_int_eq(zrt_param_count(ctx, &total), ZRT_OK);
        ck_assert_int_eq(total, numel * (g.stage + 1));
        for (int i = 0; i <= g.stage; i++) {
            int64_t first = -1, count = -1;
            ck_assert_int_eq(zrt_param_owned_range(ctx, p[i], &first, &count), ZRT_OK);
            ck_assert_int_eq(first, numel / D * g.data_rank);
            ck_assert_int_eq(count, numel / D);
        }
        assert_report_grid(ctx, &g);
        int rank = -1, size = -1;
        zrt_rank(ctx, &rank);
        zrt_world_size(ctx, &size);
        ck_assert_int_eq(rank, world_rank);
        ck_assert_int_eq(size, world_size);
        ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
    }
}
END_TEST

/* What stage `from` sends for (pass, micro) in pass number `n`. */
static void fill(int *buf, int from, zrt_pipe_pass pass, int micro, int n)
{
    for (int i = 0; i < LEN; i++)
        buf[i] = i;
    buf[0] = from;
    buf[1] = micro;
    buf[2] = (int)pass;
    buf[3] = n;
}

static void check_received(const int *buf, int from, zrt_pipe_pass pass, int micro, int n)
{
    ck_assert_msg(buf[0] == from && buf[1] == micro && buf[2] == (int)pass && buf[3] == n,
                  "received (%d, %d, %d, %d), not stage %d's %s of micro-batch %d in "
                  "pass %d",
                  buf[0], buf[1], buf[2], buf[3], from,
                  pass == ZRT_PIPE_FORWARD ? "forward" : "backward", micro, n);
    ck_assert_int_eq(buf[LEN - 1], LEN - 1);
}

typedef struct pass_bufs {
    int *out[2][MAX_M]; /* [pass][slot] */
    int *in;
} pass_bufs;

/* The current op: receive its input and check it, send its output. */
static void run_op(zrt_ctx *ctx, const zrt_pipe_grid *g, zrt_pipe_op op, int slots, int n,
                   pass_bufs *b)
{
    int forward = op.pass == ZRT_PIPE_FORWARD;
    int from = forward ? g->stage - 1 : g->stage + 1;
    if (from >= 0 && from < g->stages) {
        ck_assert_msg(zrt_pipe_recv(ctx, b->in, LEN * sizeof(int)) == ZRT_OK, "%s",
                      zrt_last_error(ctx));
        check_received(b->in, from, op.pass, op.micro, n);
    } else {
        ck_assert_int_eq(zrt_pipe_recv(ctx, b->in, sizeof(int)), ZRT_ERR_STATE);
    }
    int to = forward ? g->stage + 1 : g->stage - 1;
    if (to >= 0 && to < g->stages) {
        int *out = b->out[op.pass][op.micro % slots];
        fill(out, g->stage, op.pass, op.micro, n);
        ck_assert_msg(zrt_pipe_send(ctx, out, LEN * sizeof(int)) == ZRT_OK, "%s",
                      zrt_last_error(ctx));
    } else {
        ck_assert_int_eq(zrt_pipe_send(ctx, b->in, sizeof(int)), ZRT_ERR_STATE);
    }
}

/* One pass: the ops are the schedule's, in order. */
static void run_pass(zrt_ctx *ctx, const zrt_pipe_grid *g, zrt_pipe_kind kind, int M,
                     int n, pass_bufs *b)
{
    zrt_pipe_op want[2 * MAX_M], op;
    size_t count = 0, i = 0;
    ck_assert_int_eq(
        zrt_pipe_schedule(kind, g->stages, g->stage, M, want, 2 * MAX_M, &count, NULL, 0),
        ZRT_OK);
    int slots = 0, done = 0;
    ck_assert_int_eq(zrt_pipe_slots(ctx, kind, M, &slots), ZRT_OK);
    int want_slots = kind == ZRT_PIPE_GPIPE ? M
                     : kind == ZRT_PIPE_1F1B
                         ? (g->stages - g->stage < M ? g->stages - g->stage : M)
                         : 1;
    ck_assert_int_eq(slots, want_slots);
    ck_assert_msg(zrt_pipe_begin(ctx, kind, M) == ZRT_OK, "%s", zrt_last_error(ctx));
    ck_assert_int_eq(zrt_pipe_begin(ctx, kind, M), ZRT_ERR_STATE);
    for (;;) {
        ck_assert_int_eq(zrt_pipe_next(ctx, &op, &done), ZRT_OK);
        if (done)
            break;
        ck_assert_uint_lt(i, count);
        ck_assert_int_eq(op.pass, want[i].pass);
        ck_assert_int_eq(op.micro, want[i].micro);
        i++;
        run_op(ctx, g, op, slots, n, b);
    }
    ck_assert_uint_eq(i, count);
}

static void check_stats(zrt_ctx *ctx, long passes)
{
    zrt_pipe_stats st;
    ck_assert_int_eq(zrt_get_pipe_stats(ctx, &st), ZRT_OK);
    ck_assert_int_eq(st.passes, passes);
    ck_assert(st.idle_seconds >= 0.0);
    ck_assert(st.idle_seconds <= st.pass_seconds);
}

START_TEST(passes_move_each_micro_batch)
{
    pass_bufs b;
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < MAX_M; k++)
            b.out[p][k] = malloc(LEN * sizeof(int));
    b.in = malloc(LEN * sizeof(int));
    for (int P = 2; P <= 4; P += 2) {
        for (int M = 1; M <= MAX_M; M++) {
            zrt_config cfg;
            pipe_config(&cfg, P, 2, M);
            zrt_pipe_grid g;
            zrt_param params[4];
            zrt_ctx *ctx = built(&cfg, &g, params);
            run_pass(ctx, &g, ZRT_PIPE_GPIPE, M, 1, &b);
            check_stats(ctx, 1);
            run_pass(ctx, &g, ZRT_PIPE_1F1B, M, 2, &b);
            check_stats(ctx, 2);
            run_pass(ctx, &g, ZRT_PIPE_FORWARD_ONLY, M, 3, &b);
            check_stats(ctx, 2); /* forward-only passes are not counted */
            ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
        }
    }
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < MAX_M; k++)
            free(b.out[p][k]);
    free(b.in);
}
END_TEST

START_TEST(send_to_and_recv_from_match_by_tag)
{
    for (int P = 2; P <= 4; P += 2) {
        zrt_config cfg;
        pipe_config(&cfg, P, 2, 1);
        zrt_pipe_grid g;
        zrt_param params[4];
        zrt_ctx *ctx = built(&cfg, &g, params);
        float a[3] = {1, 2, 3}, z[3] = {7, 8, 9}, got[3];
        if (g.stage == 0) {
            ck_assert_int_eq(zrt_pipe_send_to(ctx, P - 1, 3, a, sizeof a), ZRT_OK);
            ck_assert_int_eq(zrt_pipe_send_to(ctx, P - 1, ZRT_PIPE_TAG_MAX, z, sizeof z),
                             ZRT_OK);
        } else if (g.stage == P - 1) {
            ck_assert_int_eq(zrt_pipe_recv_from(ctx, 0, 3, got, sizeof got), ZRT_OK);
            ck_assert(memcmp(got, a, sizeof a) == 0);
            ck_assert_int_eq(
                zrt_pipe_recv_from(ctx, 0, ZRT_PIPE_TAG_MAX, got, sizeof got), ZRT_OK);
            ck_assert(memcmp(got, z, sizeof z) == 0);
        }
        ck_assert_int_eq(zrt_pipe_send_to(ctx, g.stage, 0, a, sizeof a),
                         ZRT_ERR_INVALID_ARG);
        ck_assert_msg(strstr(zrt_last_error(ctx), "is not another stage"), "%s",
                      zrt_last_error(ctx));
        ck_assert_int_eq(zrt_pipe_send_to(ctx, P, 0, a, sizeof a), ZRT_ERR_INVALID_ARG);
        ck_assert_int_eq(zrt_pipe_recv_from(ctx, (g.stage + 1) % P, ZRT_PIPE_TAG_MAX + 1,
                                            got, sizeof got),
                         ZRT_ERR_INVALID_ARG);
        ck_assert_msg(strstr(zrt_last_error(ctx), "tag 1024 is outside 0..1023"), "%s",
                      zrt_last_error(ctx));
        ck_assert_int_eq(zrt_pipe_send_to(ctx, (g.stage + 1) % P, -1, a, sizeof a),
                         ZRT_ERR_INVALID_ARG);
        ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
    }
}
END_TEST

/* Backward with gradient world_rank + 1 everywhere: stage s's ranks s*D ..
 * s*D + D-1 average to s*D + (D+1)/2, the world would to (N+1)/2. */
START_TEST(gradients_average_within_the_stage)
{
    int P = 2, D = world_size / 2;
    zrt_config cfg;
    pipe_config(&cfg, P, 2, 1);
    zrt_pipe_grid g;
    zrt_param params[4];
    zrt_ctx *ctx = built(&cfg, &g, params);
    int64_t numel = UNIT * (g.stage + 1);
    for (int l = g.stage; l >= 0; l--) {
        ck_assert_int_eq(zrt_backward_begin(ctx, l), ZRT_OK);
        float *grad = NULL;
        ck_assert_int_eq(zrt_grad_data(ctx, params[l], (void **)&grad), ZRT_OK);
        for (int64_t i = 0; i < numel; i++)
            grad[i] += (float)(world_rank + 1);
        ck_assert_int_eq(zrt_backward_end(ctx, l), ZRT_OK);
    }
    float *got = malloc((size_t)numel * sizeof *got);
    float want = (float)(g.stage * D) + (float)(D + 1) / 2.0f;
    for (int l = 0; l <= g.stage; l++) {
        ck_assert_msg(zrt_grad_read(ctx, params[l], got) == ZRT_OK, "%s",
                      zrt_last_error(ctx));
        for (int64_t i = 0; i < numel; i++)
            ck_assert_msg(got[i] == want, "stage %d: gradient %g, not the stage's %g",
                          g.stage, (double)got[i], (double)want);
    }
    free(got);
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    ck_assert_msg(zrt_step(ctx, &hp) == ZRT_OK, "%s", zrt_last_error(ctx));
    ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
}
END_TEST

/* zrt_ctx_create refused with `want`; the sentence (on stderr, as there is
 * no context) contains `text`. */
static void assert_create_refused(const zrt_config *cfg, zrt_status want,
                                  const char *text)
{
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    zrt_ctx *ctx = NULL;
    zrt_status st = zrt_ctx_create(cfg, &ctx);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char said[1024] = "";
    rewind(tmp);
    size_t n = fread(said, 1, sizeof said - 1, tmp);
    said[n] = '\0';
    fclose(tmp);
    ck_assert_int_eq(st, want);
    ck_assert_ptr_null(ctx);
    ck_assert_msg(strstr(said, text), "'%s' is not in: %s", text, said);
}

START_TEST(bad_grids_and_calls_are_refused)
{
    zrt_config cfg;
    pipe_config(&cfg, 3, 2, 1);
    assert_create_refused(&cfg, ZRT_ERR_CONFIG,
                          "'pipeline_stages' is 3 but the job has 4 ranks");
    pipe_config(&cfg, 2, 2, 1);
    cfg.hybrid_shard_size = 2;
    assert_create_refused(&cfg, ZRT_ERR_UNSUPPORTED,
                          "'pipeline_stages' 2 with 'hybrid_shard_size' 2");
    pipe_config(&cfg, 2, ZRT_STAGE_AUTO, 1);
    assert_create_refused(&cfg, ZRT_ERR_UNSUPPORTED, "\"stage\": \"auto\"");

    pipe_config(&cfg, 2, 2, 2);
    zrt_pipe_grid g;
    zrt_param params[4];
    zrt_ctx *ctx = built(&cfg, &g, params);
    ck_assert_int_eq(zrt_pipe_begin(ctx, ZRT_PIPE_1F1B, 3), ZRT_ERR_INVALID_ARG);
    ck_assert_msg(strstr(zrt_last_error(ctx), "3 micro-batches") &&
                      strstr(zrt_last_error(ctx), "'gradient_accumulation_steps' 2"),
                  "%s", zrt_last_error(ctx));
    int buf[4] = {0}, done = 0;
    zrt_pipe_op op;
    ck_assert_int_eq(zrt_pipe_next(ctx, &op, &done), ZRT_ERR_STATE);
    ck_assert_int_eq(zrt_pipe_begin(ctx, ZRT_PIPE_FORWARD_ONLY, 1), ZRT_OK);
    ck_assert_int_eq(zrt_pipe_next(ctx, &op, &done), ZRT_OK);
    ck_assert_int_eq(zrt_pipe_next(ctx, NULL, &done), ZRT_ERR_INVALID_ARG);
    if (g.stage == 0) {
        ck_assert_int_eq(zrt_pipe_recv(ctx, buf, sizeof buf), ZRT_ERR_STATE);
        ck_assert_msg(strstr(zrt_last_error(ctx), "zrt_pipe_recv: forward of micro-batch "
                                                  "0 on the first stage"),
                      "%s", zrt_last_error(ctx));
        ck_assert_int_eq(zrt_pipe_send(ctx, buf, sizeof buf), ZRT_OK);
        ck_assert_int_eq(zrt_pipe_send(ctx, buf, sizeof buf), ZRT_ERR_STATE);
    } else {
        ck_assert_int_eq(zrt_pipe_recv(ctx, buf, sizeof buf), ZRT_OK);
        ck_assert_int_eq(zrt_pipe_send(ctx, buf, sizeof buf), ZRT_ERR_STATE);
        ck_assert_msg(strstr(zrt_last_error(ctx), "on the last stage") &&
                          strstr(zrt_last_error(ctx), "no output to another stage"),
                      "%s", zrt_last_error(ctx));
    }
    ck_assert_int_eq(zrt_pipe_next(ctx, &op, &done), ZRT_OK);
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(zrt_get_pipe_grid(ctx, NULL), ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_pipe_slots(ctx, ZRT_PIPE_GPIPE, 0, &done), ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
}
END_TEST

/* Without a pipeline the same calls hand out forward m, backward m. */
START_TEST(one_stage_alternates)
{
    zrt_config cfg;
    pipe_config(&cfg, 0, 2, 3);
    zrt_pipe_grid g;
    zrt_param params[4];
    zrt_ctx *ctx = built(&cfg, &g, params);
    ck_assert_int_eq(g.stages, 1);
    ck_assert_int_eq(g.data_size, world_size);
    ck_assert_int_eq(g.data_rank, world_rank);
    int slots = 0, done = 0, n = 0;
    ck_assert_int_eq(zrt_pipe_slots(ctx, ZRT_PIPE_GPIPE, 3, &slots), ZRT_OK);
    ck_assert_int_eq(slots, 1);
    ck_assert_int_eq(zrt_pipe_begin(ctx, ZRT_PIPE_GPIPE, 3), ZRT_OK);
    zrt_pipe_op op;
    while (zrt_pipe_next(ctx, &op, &done) == ZRT_OK && !done) {
        ck_assert_int_eq(op.micro, n / 2);
        ck_assert_int_eq(op.pass, n % 2 ? ZRT_PIPE_BACKWARD : ZRT_PIPE_FORWARD);
        n++;
    }
    ck_assert_int_eq(n, 6);
    check_stats(ctx, 1);
    ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
}
END_TEST

int main(int argc, char **argv)
{
    zrt_check_mpi_init(&argc, &argv, &world_rank, &world_size);
    if (world_size != 4) {
        if (world_rank == 0)
            fprintf(stderr, "test_pipe_grid: needs 4 ranks, not %d; skipped\n",
                    world_size);
        MPI_Finalize();
        return 77;
    }
    Suite *s = ZRT_CHECK_SUITE(
        "pipe_grid", 240, grid_and_stage_parameters, passes_move_each_micro_batch,
        send_to_and_recv_from_match_by_tag, gradients_average_within_the_stage,
        bad_grids_and_calls_are_refused, one_stage_alternates);
    int rc = zrt_check_main_mpi(s, "pipe_grid");
    MPI_Finalize();
    return rc;
}
