/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/test_pipe.c — Check suite "pipe": zrt_pipe_schedule
 * (runtime/pipe.c) for GPipe and 1F1B on every stage of pipelines of 1 to 6
 * stages with 1 to 16 micro-batches:
 *   - each micro-batch's forward and backward once, forward first, both in
 *     micro-batch order (the order gradient accumulation adds them);
 *   - GPipe runs every forward before any backward and holds M micro-batches'
 *     activations; 1F1B holds at most min(P - s, M);
 *   - simulated with a forward taking 1 time unit and a backward 2 on every
 *     stage (a stage's forward waits for the previous stage's, its backward
 *     for the next stage's), both schedules finish without deadlock in
 *     (M + P - 1)(1 + 2) units: the bubble (P - 1)/(M + P - 1) of the step;
 *   - forward only: M forwards in order on every stage, no backward, and a
 *     capacity of M is enough;
 *   - bad arguments refused, each named in one sentence.
 */
#include "zrt/zrt.h"

#include "../common/test_check.h"
#include <stdlib.h>
#include <string.h>

enum { MAX_STAGES = 6, MAX_MICRO = 16, TF = 1, TB = 2 };

typedef struct schedule {
    zrt_pipe_op ops[MAX_STAGES][2 * MAX_MICRO];
    size_t count[MAX_STAGES];
} schedule;

static void make(zrt_pipe_kind kind, int P, int M, schedule *s)
{
    for (int st = 0; st < P; st++)
        ck_assert_int_eq(zrt_pipe_schedule(kind, P, st, M, s->ops[st], 2 * MAX_MICRO,
                                           &s->count[st], NULL, 0),
                         ZRT_OK);
}

/* Each micro-batch once each way, forward first, both in order; returns the
 * most micro-batches whose forward ran and backward has not. */
static int check_order(const zrt_pipe_op *ops, size_t n, int M)
{
    int next_f = 0, next_b = 0, live = 0, peak = 0;
    ck_assert_uint_eq(n, 2 * (size_t)M);
    for (size_t i = 0; i < n; i++) {
        if (ops[i].pass == ZRT_PIPE_FORWARD) {
            ck_assert_int_eq(ops[i].micro, next_f++);
            live++;
        } else {
            ck_assert_int_eq(ops[i].micro, next_b++);
            ck_assert_int_lt(ops[i].micro, next_f);
            live--;
        }
        peak = live > peak ? live : peak;
    }
    ck_assert_int_eq(next_f, M);
    ck_assert_int_eq(next_b, M);
    return peak;
}

/* The time the last pass of the pipeline ends, each pass starting when its
 * stage's previous pass and its dependency have ended; -1 on a deadlock. */
static long simulate(const schedule *s, int P, int M)
{
    long f_end[MAX_STAGES][MAX_MICRO], b_end[MAX_STAGES][MAX_MICRO], free_at[MAX_STAGES];
    size_t next[MAX_STAGES] = {0};
    memset(f_end, -1, sizeof f_end);
    memset(b_end, -1, sizeof b_end);
    memset(free_at, 0, sizeof free_at);
    for (size_t done = 0, total = 2 * (size_t)M * (size_t)P; done < total;) {
        int progressed = 0;
        for (int st = 0; st < P; st++) {
            if (next[st] == s->count[st])
                continue;
            zrt_pipe_op op = s->ops[st][next[st]];
            long dep = op.pass == ZRT_PIPE_FORWARD
                           ? (st > 0 ? f_end[st - 1][op.micro] : 0)
                           : (st < P - 1 ? b_end[st + 1][op.micro] : f_end[st][op.micro]);
            if (dep < 0)
                continue;
            long start = dep > free_at[st] ? dep : free_at[st];
            free_at[st] = start + (op.pass == ZRT_PIPE_FORWARD ? TF : TB);
            (op.pass == ZRT_PIPE_FORWARD ? f_end : b_end)[st][op.micro] = free_at[st];
            next[st]++;
            done++;
            progressed = 1;
        }
        if (!progressed)
            return -1;
    }
    long end = 0;
    for (int st = 0; st < P; st++)
        end = free_at[st] > end ? free_at[st] : end;
    return end;
}

static void check_kind(zrt_pipe_kind kind)
{
    schedule *s = malloc(sizeof *s);
    for (int P = 1; P <= MAX_STAGES; P++) {
        for (int M = 1; M <= MAX_MICRO; M++) {
            make(kind, P, M, s);
            for (int st = 0; st < P; st++) {
                int peak = check_order(s->ops[st], s->count[st], M);
                int want = kind == ZRT_PIPE_GPIPE ? M : (P - st < M ? P - st : M);
                ck_assert_msg(peak == want, "P %d M %d stage %d: peak %d, not %d", P, M,
                              st, peak, want);
            }
            long end = simulate(s, P, M);
            ck_assert_msg(end == (long)(M + P - 1) * (TF + TB),
                          "kind %d, P %d, M %d: the step ends at %ld, not %d", (int)kind,
                          P, M, end, (M + P - 1) * (TF + TB));
        }
    }
    free(s);
}

START_TEST(test_gpipe)
{
    check_kind(ZRT_PIPE_GPIPE);
    zrt_pipe_op ops[8];
    size_t n = 0;
    ck_assert_int_eq(zrt_pipe_schedule(ZRT_PIPE_GPIPE, 4, 1, 4, ops, 8, &n, NULL, 0),
                     ZRT_OK);
    for (int i = 0; i < 4; i++) /* every forward before any backward */
        ck_assert_int_eq(ops[i].pass, ZRT_PIPE_FORWARD);
}
END_TEST

START_TEST(test_1f1b)
{
    check_kind(ZRT_PIPE_1F1B);
    /* stage 0 of 4 with 6 micro-batches: 3 forwards, then alternating */
    zrt_pipe_op ops[12];
    size_t n = 0;
    ck_assert_int_eq(zrt_pipe_schedule(ZRT_PIPE_1F1B, 4, 0, 6, ops, 12, &n, NULL, 0),
                     ZRT_OK);
    static const char want[] = "FFFFBFBFBBBB";
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(ops[i].pass == ZRT_PIPE_FORWARD ? 'F' : 'B', want[i]);
}
END_TEST

START_TEST(test_forward_only)
{
    zrt_pipe_op ops[MAX_MICRO];
    for (int P = 1; P <= MAX_STAGES; P++) {
        for (int M = 1; M <= MAX_MICRO; M++) {
            for (int st = 0; st < P; st++) {
                size_t n = 0;
                ck_assert_int_eq(zrt_pipe_schedule(ZRT_PIPE_FORWARD_ONLY, P, st, M, ops,
                                                   (size_t)M, &n, NULL, 0),
                                 ZRT_OK);
                ck_assert_uint_eq(n, (size_t)M);
                for (int i = 0; i < M; i++) {
                    ck_assert_int_eq(ops[i].pass, ZRT_PIPE_FORWARD);
                    ck_assert_int_eq(ops[i].micro, i);
                }
            }
        }
    }
    char why[256];
    size_t n = 0;
    ck_assert_int_eq(
        zrt_pipe_schedule(ZRT_PIPE_FORWARD_ONLY, 2, 1, 3, ops, 2, &n, why, sizeof why),
        ZRT_ERR_INVALID_ARG);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(why, "zrt_pipe_schedule: capacity 2 is below the 3 passes of 3 "
                          "micro-batches");
}
END_TEST

START_TEST(test_refusals)
{
    zrt_pipe_op ops[4];
    size_t n = 0;
    ck_assert_int_eq(zrt_pipe_schedule(ZRT_PIPE_1F1B, 2, 0, 2, NULL, 4, &n, NULL, 0),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_pipe_schedule(ZRT_PIPE_1F1B, 2, 0, 2, ops, 4, NULL, NULL, 0),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_pipe_schedule((zrt_pipe_kind)7, 2, 0, 2, ops, 4, &n, NULL, 0),
                     ZRT_ERR_INVALID_ARG);
    char kind_why[256];
    ck_assert_int_eq(zrt_pipe_schedule((zrt_pipe_kind)7, 2, 0, 2, ops, 4, &n, kind_why,
                                       sizeof kind_why),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_str_eq(kind_why, "zrt_pipe_schedule: kind 7 is not ZRT_PIPE_GPIPE, "
                               "ZRT_PIPE_1F1B or ZRT_PIPE_FORWARD_ONLY");
    ck_assert_int_eq(zrt_pipe_schedule(ZRT_PIPE_GPIPE, 0, 0, 2, ops, 4, &n, NULL, 0),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_pipe_schedule(ZRT_PIPE_GPIPE, 2, 2, 2, ops, 4, &n, NULL, 0),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_pipe_schedule(ZRT_PIPE_GPIPE, 2, -1, 2, ops, 4, &n, NULL, 0),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_pipe_schedule(ZRT_PIPE_GPIPE, 2, 0, 0, ops, 4, &n, NULL, 0),
                     ZRT_ERR_INVALID_ARG);
    /* every bad argument named in one sentence */
    char why[256];
    ck_assert_int_eq(
        zrt_pipe_schedule(ZRT_PIPE_1F1B, 4, 4, 0, ops, 4, &n, why, sizeof why),
        ZRT_ERR_INVALID_ARG);
    ck_assert_str_eq(why,
                     "zrt_pipe_schedule: stage 4 is outside 0..3; micro_batches is 0, "
                     "not 1 or more");
    ck_assert_int_eq(
        zrt_pipe_schedule(ZRT_PIPE_GPIPE, 2, 0, 3, ops, 4, &n, why, sizeof why),
        ZRT_ERR_INVALID_ARG);
    ck_assert_str_eq(why, "zrt_pipe_schedule: capacity 4 is below the 6 passes of 3 "
                          "micro-batches");
    /* too small: refused, and *count says how many are needed */
    ck_assert_int_eq(zrt_pipe_schedule(ZRT_PIPE_GPIPE, 2, 0, 3, ops, 4, &n, NULL, 0),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_uint_eq(n, 6);
}
END_TEST

int main(void)
{
    return zrt_check_main(ZRT_CHECK_SUITE("pipe", 0, test_gpipe, test_1f1b,
                                          test_forward_only, test_refusals));
}
