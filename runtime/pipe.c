/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/pipe.c — pipeline schedules (issue 20): the order in which one
 * stage of a P-stage pipeline runs the forward and backward passes of M
 * micro-batches, for the training loop to follow.
 *
 * GPipe: every forward (micro-batches 0 .. M-1), then every backward; a stage
 * holds the activations of all M micro-batches at its peak.
 * 1F1B (PipeDream-flush, Megatron's non-interleaved schedule): stage s runs
 * w = min(P - s - 1, M) forwards to fill the pipeline, then alternates one
 * forward and one backward until the forwards are done, then the w
 * backwards left; it holds at most w + 1 = min(P - s, M) micro-batches'
 * activations. Both give the same bubble, (P-1)/(M+P-1) of the step with
 * equal stage times (tests/unit/test_pipe.c simulates them).
 *
 * Forward only (validation, sampling): forwards 0 .. M-1 and no backward;
 * a stage holds one micro-batch's activations.
 *
 * Backwards run in micro-batch order 0 .. M-1 in both, so a stage adds the
 * micro-batches' gradients in the order a data-parallel run with gradient
 * accumulation over M adds them: the bits can match.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "zrt/zrt.h"

static void put(zrt_pipe_op *ops, size_t *n, zrt_pipe_pass pass, int micro)
{
    ops[*n].pass = pass;
    ops[*n].micro = micro;
    (*n)++;
}

static void gpipe(int micro_batches, zrt_pipe_op *ops)
{
    size_t n = 0;
    for (int m = 0; m < micro_batches; m++)
        put(ops, &n, ZRT_PIPE_FORWARD, m);
    for (int m = 0; m < micro_batches; m++)
        put(ops, &n, ZRT_PIPE_BACKWARD, m);
}

static void forward_only(int micro_batches, zrt_pipe_op *ops)
{
    size_t n = 0;
    for (int m = 0; m < micro_batches; m++)
        put(ops, &n, ZRT_PIPE_FORWARD, m);
}

static void one_f_one_b(int stages, int stage, int micro_batches, zrt_pipe_op *ops)
{
    int warmup = stages - stage - 1 < micro_batches ? stages - stage - 1 : micro_batches;
    size_t n = 0;
    int forward = 0, backward = 0;
    while (forward < warmup)
        put(ops, &n, ZRT_PIPE_FORWARD, forward++);
    while (forward < micro_batches) {
        put(ops, &n, ZRT_PIPE_FORWARD, forward++);
        put(ops, &n, ZRT_PIPE_BACKWARD, backward++);
    }
    while (backward < micro_batches)
        put(ops, &n, ZRT_PIPE_BACKWARD, backward++);
}

/* Appends one problem to the sentence in errbuf (may be NULL). */
static void note(char *errbuf, size_t size, int *problems, const char *fmt, ...)
{
    int first = (*problems)++ == 0;
    if (!errbuf || size == 0)
        return;
    size_t used = strlen(errbuf);
    if (used + 1 >= size)
        return;
    snprintf(errbuf + used, size - used, "%s", first ? "zrt_pipe_schedule: " : "; ");
    used = strlen(errbuf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf + used, size - used, fmt, ap);
    va_end(ap);
}

/* Every bad argument named in one sentence; 0 when there is none. */
static int check_args(zrt_pipe_kind kind, int stages, int stage, int micro_batches,
                      char *errbuf, size_t size)
{
    int problems = 0;
    if (errbuf && size)
        errbuf[0] = '\0';
    if (kind != ZRT_PIPE_GPIPE && kind != ZRT_PIPE_1F1B && kind != ZRT_PIPE_FORWARD_ONLY)
        note(errbuf, size, &problems,
             "kind %d is not ZRT_PIPE_GPIPE, ZRT_PIPE_1F1B or ZRT_PIPE_FORWARD_ONLY",
             (int)kind);
    if (stages < 1)
        note(errbuf, size, &problems, "stages is %d, not 1 or more", stages);
    else if (stage < 0 || stage >= stages)
        note(errbuf, size, &problems, "stage %d is outside 0..%d", stage, stages - 1);
    if (micro_batches < 1)
        note(errbuf, size, &problems, "micro_batches is %d, not 1 or more",
             micro_batches);
    return problems;
}

zrt_status zrt_pipe_schedule(zrt_pipe_kind kind, int stages, int stage, int micro_batches,
                             zrt_pipe_op *ops, size_t capacity, size_t *count,
                             char *errbuf, size_t errbuf_size)
{
    if (!ops || !count) {
        if (errbuf && errbuf_size)
            snprintf(errbuf, errbuf_size,
                     "zrt_pipe_schedule: ops and count must not be NULL");
        return ZRT_ERR_INVALID_ARG;
    }
    if (check_args(kind, stages, stage, micro_batches, errbuf, errbuf_size))
        return ZRT_ERR_INVALID_ARG;
    size_t need = (kind == ZRT_PIPE_FORWARD_ONLY ? 1 : 2) * (size_t)micro_batches;
    *count = need;
    if (capacity < need) {
        if (errbuf && errbuf_size)
            snprintf(errbuf, errbuf_size,
                     "zrt_pipe_schedule: capacity %zu is below the %zu passes of %d "
                     "micro-batches",
                     capacity, need, micro_batches);
        return ZRT_ERR_INVALID_ARG;
    }
    if (kind == ZRT_PIPE_GPIPE)
        gpipe(micro_batches, ops);
    else if (kind == ZRT_PIPE_FORWARD_ONLY)
        forward_only(micro_batches, ops);
    else
        one_f_one_b(stages, stage, micro_batches, ops);
    return ZRT_OK;
}
