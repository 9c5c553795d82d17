/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/gpt2/train_gpt2.c — trains GPT-2 through zrt on N MPI ranks.
 *
 *   mpirun -np 2 build/bin/train_gpt2 --model d4 --stage 3
 *
 * Data: a text file read as bytes (vocabulary 256; default: the King James
 * Bible under examples/data) or llm.c token shards (--train-shards). Model:
 * a preset (d4, d6, d12 = GPT-2 124M's shape) or explicit sizes, initialized
 * from the seed or loaded from an llm.c model file (--load). Each step: every
 * rank takes its own (B, T) batch, runs forward and backward through zrt,
 * and zrt averages the gradients and applies AdamW to the shards. The
 * learning rate warms up linearly, then decays along a cosine. With
 * --grad-accum K a step is K micro-batches (batch indices step * K + k of
 * the stream). --save-dir/--save-every write checkpoints and --resume
 * continues one: the data position is the step index, so a resumed run
 * sees the same batches (and, with the same global batch, the same
 * mathematics on any world size). --backend cuda runs the model on a GPU
 * (examples/gpt2/cuda): every flag behaves the same, and the step times in
 * the log include the device's work. --pp P splits the blocks over P
 * pipeline stages (zrt's "pipeline_stages"), each with N / P data-parallel
 * ranks running ZeRO among themselves; a step is --micro-batches M
 * micro-batches (gradient accumulation over M) scheduled by --schedule
 * (gpipe or 1f1b). --recompute keeps only each block's input and
 * recomputes the block in backward.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/example_args.h"
#include "gpt2.h"
#include "model.h"

#ifndef ZRT_DATA_DIR
#define ZRT_DATA_DIR "examples/data"
#endif

typedef struct gpt2_opts {
    const char *preset;
    int layers, channels, heads, max_seq_len, vocab_size; /* 0: preset/data */
    int B, T;
    float lr, min_lr_frac, weight_decay;
    int warmup, val_every, val_batches, sample_len;
    const char *train, *val, *train_shards, *val_shards, *load, *save;
    const char *loss_log;
    int overflow_at; /* optimizer step whose gradients the last rank makes inf */
    int pp, micro_batches, recompute; /* 0: not given */
    int plan_only;                    /* print the memory plan per rank, train nothing */
    const char *schedule;
} gpt2_opts;

typedef struct flag_spec {
    const char *name;
    char kind; /* 'i' int, 'f' float, 's' string */
    void *dst;
} flag_spec;

static int own_flag(void *user, int argc, char **argv, int *i, char *err, size_t size)
{
    gpt2_opts *o = user;
    if (!strcmp(argv[*i], "--recompute") || !strcmp(argv[*i], "--plan-only")) {
        *(!strcmp(argv[*i], "--recompute") ? &o->recompute : &o->plan_only) = 1;
        return 1;
    }
    const flag_spec flags[] = {{"--model", 's', &o->preset},
                               {"--layers", 'i', &o->layers},
                               {"--channels", 'i', &o->channels},
                               {"--heads", 'i', &o->heads},
                               {"--max-seq-len", 'i', &o->max_seq_len},
                               {"--vocab-size", 'i', &o->vocab_size},
                               {"--batch", 'i', &o->B},
                               {"--seq-len", 'i', &o->T},
                               {"--lr", 'f', &o->lr},
                               {"--min-lr-frac", 'f', &o->min_lr_frac},
                               {"--weight-decay", 'f', &o->weight_decay},
                               {"--warmup", 'i', &o->warmup},
                               {"--val-every", 'i', &o->val_every},
                               {"--val-batches", 'i', &o->val_batches},
                               {"--sample-len", 'i', &o->sample_len},
                               {"--train", 's', &o->train},
                               {"--val", 's', &o->val},
                               {"--train-shards", 's', &o->train_shards},
                               {"--val-shards", 's', &o->val_shards},
                               {"--load", 's', &o->load},
                               {"--save", 's', &o->save},
                               {"--loss-log", 's', &o->loss_log},
                               {"--overflow-at", 'i', &o->overflow_at},
                               {"--pp", 'i', &o->pp},
                               {"--micro-batches", 'i', &o->micro_batches},
                               {"--schedule", 's', &o->schedule}};
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) {
        if (strcmp(argv[*i], flags[k].name) != 0)
            continue;
        if (*i + 1 >= argc) {
            snprintf(err, size, "%s needs a value", flags[k].name);
            return -1;
        }
        const char *text = argv[++*i];
        char *end = NULL;
        if (flags[k].kind == 's') {
            *(const char **)flags[k].dst = text;
        } else if (flags[k].kind == 'f') {
            *(float *)flags[k].dst = strtof(text, &end);
        } else {
            long v = strtol(text, &end, 10);
            if (v < 0 || v > 1 << 20)
                end = NULL;
            *(int *)flags[k].dst = (int)v;
        }
        if (end && *end == '\0')
            return 1;
        if (flags[k].kind == 's')
            return 1;
        snprintf(err, size, "%s: '%s' is not a valid value", flags[k].name, text);
        return -1;
    }
    return 0;
}

static int usage(const char *prog)
{
    printf(
        "usage: mpirun -np N %s [options]\n"
        "Trains GPT-2 through zrt.\n%s"
        "  --model d4|d6|d12  preset shape (default d4: 4 layers, 256 channels)\n"
        "  --layers L --channels C --heads H --max-seq-len M  override the preset\n"
        "  --batch B          sequences per rank per step (default 4)\n"
        "  --seq-len T        tokens per sequence (default 64)\n"
        "  --lr LR            peak learning rate (default 1e-3)\n"
        "  --warmup K         warmup steps (default 20)\n"
        "  --min-lr-frac F    final lr as a fraction of the peak (default 0.1)\n"
        "  --weight-decay W   AdamW decay of 2-D tensors (default 0.1)\n"
        "  --train FILE / --val FILE            text read as bytes\n"
        "  --train-shards GLOB / --val-shards GLOB  llm.c token shards\n"
        "  --vocab-size V     with shards (default 50257, GPT-2's)\n"
        "  --val-every K      validation loss every K steps (default 50; 0 off)\n"
        "  --val-batches K    batches per validation (default 4)\n"
        "  --load FILE        start from an llm.c model file\n"
        "  --save FILE        write an llm.c model file at the end\n"
        "  --loss-log FILE    rank 0 writes 'step loss' per step, %%.9g\n"
        "  --overflow-at K    the last rank's gradients are inf in step K (tests the\n"
        "                     fp16 loss scaler: every rank must skip that step)\n"
        "  --sample-len N     tokens to sample at the end (default 200)\n"
        "  --pp P             pipeline stages (default 1): the blocks split over P\n"
        "                     stages of N / P data-parallel ranks each\n"
        "  --micro-batches M  micro-batches per step (= --grad-accum M)\n"
        "  --schedule S       gpipe or 1f1b (default 1f1b)\n"
        "  --recompute        keep only each block's input; recompute in backward\n"
        "  --plan-only        print each rank's planned peak memory, allocate and\n"
        "                     train nothing (exit 3 if a rank's passes --device-mem)\n",
        prog, example_common_usage());
    return 0;
}

/* ---- setup ------------------------------------------------------------------ */

static int preset_config(const gpt2_opts *o, gpt2_config *c, char *err, size_t size)
{
    int depth = 0;
    if (!strcmp(o->preset, "d4"))
        depth = 4;
    else if (!strcmp(o->preset, "d6"))
        depth = 6;
    else if (!strcmp(o->preset, "d12"))
        depth = 12;
    if (!depth) {
        snprintf(err, size, "--model: '%s' is not d4, d6 or d12", o->preset);
        return -1;
    }
    int shards = o->train_shards != NULL;
    c->num_layers = o->layers ? o->layers : depth;
    c->channels = o->channels ? o->channels : 64 * depth;
    c->num_heads = o->heads ? o->heads : depth;
    c->max_seq_len = o->max_seq_len ? o->max_seq_len : 1024;
    c->vocab_size = o->vocab_size ? o->vocab_size : shards ? 50257 : 256;
    c->padded_vocab_size = (c->vocab_size + 127) / 128 * 128;
    if (gpt2_config_check(c, err, size))
        return -1;
    if (o->T > c->max_seq_len) {
        snprintf(err, size, "--seq-len %d exceeds the model's max_seq_len %d", o->T,
                 c->max_seq_len);
        return -1;
    }
    return 0;
}

static int open_data(const char *file, const char *shards, int vocab, gpt2_data **out,
                     char *err, size_t size)
{
    if (shards)
        return gpt2_data_open_shards(shards, vocab, out, err, size);
    return gpt2_data_open_text(file, out, err, size);
}

/* One OpenBLAS thread per core this rank may use. */
static void size_blas_threads(void)
{
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long ranks = local ? atol(local) : 1;
    long threads = ranks > 0 ? cores / ranks : 1;
    openblas_set_num_threads(threads > 0 ? (int)threads : 1);
}

/* ---- training ------------------------------------------------------------------ */

/* Steady-state timing: steps after the first WARM_STEPS. */
enum { WARM_STEPS = 2 };

typedef struct step_timing {
    double seconds;      /* in zero_grad .. zrt_step */
    double wait_seconds; /* of which blocked on communication */
    int steps;
} step_timing;

typedef struct run {
    gpt2_opts o;
    example_args a;
    example_progress prog;
    FILE *loss_log;
    step_timing timing;
    gpt2_model m;
    zrt_ctx *ctx;
    gpt2_data *train, *val;
    int rank, world;
    zrt_pipe_grid grid;  /* the pipeline's stage and data-parallel rank */
    zrt_pipe_kind kind;  /* the training passes' schedule */
    int slots;           /* micro-batches whose activations a stage holds */
    zrt_pipe_stats warm; /* the pipeline's counters after WARM_STEPS */
    int *inputs, *targets;
    long rss_before_kib; /* VmRSS when the parameters were registered */
} run;

static float lr_at(const gpt2_opts *o, int step, int steps)
{
    if (step < o->warmup)
        return o->lr * (float)(step + 1) / (float)o->warmup;
    float progress = (float)(step - o->warmup) / (float)(steps - o->warmup + 1);
    float cosine = 0.5f * (1.0f + cosf(3.14159265f * progress));
    return o->lr * (o->min_lr_frac + (1.0f - o->min_lr_frac) * cosine);
}

/* This rank's part of batch `index` of a set: each data-parallel rank of a
 * stage reads what it would read without a pipeline. */
static zrt_status load_batch(run *r, const gpt2_data *d, long index)
{
    if (gpt2_data_batch(d, index, r->grid.data_rank, r->grid.data_size, r->o.B, r->o.T,
                        r->inputs, r->targets))
        return ZRT_ERR_INVALID_ARG;
    return ZRT_OK;
}

/* The mean over data-parallel ranks of a value the last stage computed
 * (the others add nothing), on every rank. */
static zrt_status mean_of_last_stage(run *r, float *value)
{
    if (!r->m.has_head)
        *value = 0.0f;
    EXAMPLE_CHECK(zrt_allreduce_f32(r->ctx, value, 1, ZRT_SUM));
    *value /= (float)r->grid.data_size;
    return ZRT_OK;
}

static zrt_status validation_loss(run *r, float *out)
{
    if (!r->val || r->o.val_batches <= 0)
        return ZRT_ERR_INVALID_ARG;
    float sum = 0;
    zrt_pipe_op op;
    int done = 0;
    EXAMPLE_CHECK(zrt_pipe_begin(r->ctx, ZRT_PIPE_FORWARD_ONLY, r->o.val_batches));
    while (zrt_pipe_next(r->ctx, &op, &done) == ZRT_OK && !done) {
        EXAMPLE_CHECK(load_batch(r, r->val, op.micro));
        EXAMPLE_CHECK(gpt2_forward_slot(&r->m, 0, r->inputs, r->targets));
        sum += r->m.loss;
    }
    if (!done)
        return ZRT_ERR_STATE;
    *out = sum / (float)r->o.val_batches;
    return mean_of_last_stage(r, out);
}

/* Device MiB in use on every rank, for the progress line. */
static zrt_status device_mib_per_rank(run *r, float *mib)
{
    zrt_mem_stats s;
    zrt_get_mem_stats(r->ctx, &s);
    memset(mib, 0, (size_t)r->world * sizeof *mib);
    mib[r->rank] = (float)s.tier_current[ZRT_TIER_DEVICE] / 1048576.0f;
    return zrt_allreduce_f32(r->ctx, mib, (size_t)r->world, ZRT_SUM);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Tokens an optimizer step trains on: every micro-batch of every
 * data-parallel rank. */
static double tokens_per_step(const run *r)
{
    zrt_config c;
    zrt_get_config(r->ctx, &c);
    return (double)r->grid.data_size * r->o.B * r->o.T * c.gradient_accumulation_steps;
}

static void print_progress(const run *r, int step, float loss, float lr, double seconds,
                           const float *mib)
{
    if (r->rank != 0)
        return;
    double tokens = tokens_per_step(r);
    printf("step %4d/%d | loss %.4f | lr %.2e | %7.1f ms | %8.0f tok/s | device MiB",
           step + 1, r->a.steps, loss, lr, seconds * 1e3, tokens / seconds);
    for (int k = 0; k < r->world; k++)
        printf(" %.1f", mib[k]);
    printf("\n");
    fflush(stdout);
}

/* One pass of the pipeline's schedule (without a pipeline: forward and
 * backward of each micro-batch in turn): K micro-batches, zrt_step after
 * each backward (the K-th applies AdamW); the mean of their losses (on the
 * last stage). */
static zrt_status accumulate(run *r, int step, const zrt_adamw *hp, float *loss)
{
    int K = example_accumulation_steps(r->ctx), done = 0;
    float sum = 0;
    zrt_pipe_op op;
    EXAMPLE_CHECK(zrt_zero_grad(r->ctx));
    r->m.loss_grad_factor =
        step + 1 == r->o.overflow_at && r->rank == r->world - 1 ? INFINITY : 1.0f;
    EXAMPLE_CHECK(zrt_pipe_begin(r->ctx, r->kind, K));
    while (!done) {
        EXAMPLE_CHECK(zrt_pipe_next(r->ctx, &op, &done));
        if (done)
            break;
        int slot = op.micro % r->slots;
        if (op.pass == ZRT_PIPE_BACKWARD) {
            EXAMPLE_CHECK(gpt2_backward_slot(&r->m, slot));
            EXAMPLE_CHECK(zrt_step(r->ctx, hp));
            continue;
        }
        EXAMPLE_CHECK(load_batch(r, r->train, (long)step * K + op.micro));
        EXAMPLE_CHECK(gpt2_forward_slot(&r->m, slot, r->inputs, r->targets));
        sum += r->m.loss;
    }
    *loss = sum / (float)K;
    return ZRT_OK;
}

static void log_loss(run *r, int step, float loss)
{
    if (r->rank != 0 || !r->loss_log)
        return;
    fprintf(r->loss_log, "%d %.9g\n", step + 1, loss);
    fflush(r->loss_log);
}

static zrt_status train_step(run *r, int step, zrt_adamw *hp, float *mib)
{
    double t0 = now_seconds(), wait0, wait1;
    float loss = 0;
    hp->lr = lr_at(&r->o, step, r->a.steps);
    zrt_comm_wait_seconds(r->ctx, &wait0);
    EXAMPLE_CHECK(accumulate(r, step, hp, &loss));
    EXAMPLE_CHECK(gpt2_wait(&r->m)); /* cuda: the step's kernels are done */
    double seconds = now_seconds() - t0;
    zrt_comm_wait_seconds(r->ctx, &wait1);
    if (step + 1 == WARM_STEPS)
        EXAMPLE_CHECK(zrt_get_pipe_stats(r->ctx, &r->warm));
    if (step >= WARM_STEPS) {
        r->timing.seconds += seconds;
        r->timing.wait_seconds += wait1 - wait0;
        r->timing.steps++;
    }
    EXAMPLE_CHECK(mean_of_last_stage(r, &loss));
    EXAMPLE_CHECK(device_mib_per_rank(r, mib));
    print_progress(r, step, loss, hp->lr, seconds, mib);
    log_loss(r, step, loss);
    if (step == r->a.steps - 1 && r->rank == 0)
        printf("final loss %.9g\n", loss);
    r->prog.next_step = step + 1;
    return example_maybe_save(r->ctx, &r->a, &r->prog);
}

/* fp16: what the loss scaler did, on every rank (they must agree). */
static void report_loss_scale(const run *r)
{
    zrt_config c;
    float scale;
    long skipped;
    zrt_get_config(r->ctx, &c);
    if (!c.fp16.enabled || zrt_loss_scale(r->ctx, &scale) != ZRT_OK ||
        zrt_skipped_steps(r->ctx, &skipped) != ZRT_OK)
        return;
    printf("fp16 on rank %d: %ld step(s) skipped for overflow, loss scale %g\n", r->rank,
           skipped, (double)scale);
    fflush(stdout);
}

static zrt_status maybe_validate(run *r, int step)
{
    int last = step == r->a.steps;
    if (!r->val || r->o.val_every <= 0 || (step % r->o.val_every != 0 && !last))
        return ZRT_OK;
    float loss;
    EXAMPLE_CHECK(validation_loss(r, &loss));
    if (r->rank == 0)
        printf("val loss %.4f at step %d\n", loss, step);
    return ZRT_OK;
}

/* The pipeline's measured bubble: the fraction of each stage's passes
 * (steady state) spent waiting for another stage, mean over its
 * data-parallel ranks, beside (P-1)/(M+P-1). */
static zrt_status report_bubble(run *r)
{
    int P = r->grid.stages, M = example_accumulation_steps(r->ctx);
    zrt_pipe_stats now;
    if (P == 1)
        return ZRT_OK;
    EXAMPLE_CHECK(zrt_get_pipe_stats(r->ctx, &now));
    float *idle = calloc((size_t)P, sizeof *idle);
    if (!idle)
        return ZRT_ERR_OUT_OF_MEMORY;
    double pass = now.pass_seconds - r->warm.pass_seconds;
    idle[r->grid.stage] = pass > 0 ? (float)((now.idle_seconds - r->warm.idle_seconds) /
                                             pass / r->grid.data_size)
                                   : 0.0f;
    zrt_status st = zrt_allreduce_f32(r->ctx, idle, (size_t)P, ZRT_SUM);
    if (st == ZRT_OK && r->rank == 0) {
        printf("pipeline: %s, %d stages x %d data-parallel, %d micro-batches; idle "
               "fraction per stage",
               r->kind == ZRT_PIPE_GPIPE ? "gpipe" : "1f1b", P, r->grid.data_size, M);
        for (int s = 0; s < P; s++)
            printf(" %.3f", (double)idle[s]);
        printf(" (bubble (P-1)/(M+P-1) = %.3f)\n", (double)(P - 1) / (M + P - 1));
    }
    free(idle);
    return st;
}

/* Mean over ranks of the steady-state step time and its communication wait. */
static zrt_status report_timing(run *r)
{
    if (r->timing.steps == 0)
        return ZRT_OK;
    float t[2] = {(float)(r->timing.seconds / r->timing.steps),
                  (float)(r->timing.wait_seconds / r->timing.steps)};
    EXAMPLE_CHECK(zrt_allreduce_f32(r->ctx, t, 2, ZRT_AVG));
    if (r->rank == 0)
        printf("timing: %.1f ms/step, %.0f tok/s, waiting on communication "
               "%.1f%% of the step (mean over ranks, steps %d-%d)\n",
               t[0] * 1e3, tokens_per_step(r) / t[0], 100.0 * t[1] / t[0], WARM_STEPS + 1,
               r->a.steps);
    return report_bubble(r);
}

static zrt_status train(run *r)
{
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    hp.weight_decay = r->o.weight_decay;
    float *mib = calloc((size_t)r->world, sizeof *mib);
    if (!mib)
        return ZRT_ERR_OUT_OF_MEMORY;
    zrt_status st = ZRT_OK;
    for (int step = (int)r->prog.next_step; st == ZRT_OK && step < r->a.steps; step++) {
        st = maybe_validate(r, step);
        if (st == ZRT_OK)
            st = train_step(r, step, &hp, mib);
    }
    if (st == ZRT_OK)
        st = maybe_validate(r, r->a.steps);
    if (st == ZRT_OK)
        st = report_timing(r);
    if (st == ZRT_OK)
        report_loss_scale(r);
    free(mib);
    return st;
}

/* ---- sampling ------------------------------------------------------------------- */

/* zrt_pipe_send_to tags of the loop's own transfers (the model's are 1-2). */
enum { SAMPLE_TAG = 8, SAVE_TAG = 9 };

static int sample_token(const float *logits, int V, uint64_t *rng)
{
    float maxv = logits[0];
    for (int v = 1; v < V; v++)
        maxv = logits[v] > maxv ? logits[v] : maxv;
    double sum = 0;
    for (int v = 0; v < V; v++)
        sum += exp(logits[v] - maxv);
    double coin = 0.5 * (example_rand_uniform(rng) + 1.0f) * sum, acc = 0;
    for (int v = 0; v < V; v++) {
        acc += exp(logits[v] - maxv);
        if (acc >= coin)
            return v;
    }
    return V - 1;
}

/* Collective: one forward of the window; the next token on every rank
 * (the last stage samples it and, in a pipeline, sends it to the first). */
static zrt_status next_token(run *r, const int *window, int at, uint64_t *rng, int *tok)
{
    zrt_pipe_op op;
    int done = 0;
    EXAMPLE_CHECK(zrt_pipe_begin(r->ctx, ZRT_PIPE_FORWARD_ONLY, 1));
    while (zrt_pipe_next(r->ctx, &op, &done) == ZRT_OK && !done)
        EXAMPLE_CHECK(gpt2_forward_slot(&r->m, 0, window, NULL));
    if (!done)
        return ZRT_ERR_STATE;
    if (r->m.has_head) {
        const float *logits = gpt2_logits_at(&r->m, at);
        if (!logits)
            return ZRT_ERR_INTERNAL;
        *tok = sample_token(logits, r->m.cfg.vocab_size, rng);
    }
    if (r->grid.stages == 1)
        return ZRT_OK;
    if (r->m.has_head)
        return zrt_pipe_send_to(r->ctx, 0, SAMPLE_TAG, tok, sizeof *tok);
    if (r->m.has_embed)
        return zrt_pipe_recv_from(r->ctx, r->grid.stages - 1, SAMPLE_TAG, tok,
                                  sizeof *tok);
    return ZRT_OK;
}

/* Collective: every rank runs the same forwards; rank 0 prints. */
static zrt_status sample(run *r)
{
    int T = r->o.T, V = r->m.cfg.vocab_size, n = r->o.sample_len;
    if (n <= 0)
        return ZRT_OK;
    const char *prompt = "And God said";
    int len = V == 256 ? (int)strlen(prompt) : 1;
    if (len > T) /* the window holds T tokens: a short --seq-len cuts the prompt */
        len = T;
    int *ctx = calloc((size_t)r->o.B * T, sizeof *ctx);
    if (!ctx)
        return ZRT_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < len; i++)
        ctx[i] = V == 256 ? (unsigned char)prompt[i] : 0;
    uint64_t rng = r->a.seed + 77;
    if (r->rank == 0)
        printf("sample:\n%.*s", V == 256 ? len : 0, prompt);
    zrt_status st = ZRT_OK;
    for (int k = 0; k < n && st == ZRT_OK; k++) {
        int tok = 0;
        st = next_token(r, ctx, len - 1, &rng, &tok);
        if (st != ZRT_OK)
            break;
        if (len == T) { /* slide the window to make room */
            memmove(ctx, ctx + 1, (size_t)(T - 1) * sizeof *ctx);
            len--;
        }
        ctx[len++] = tok;
        if (r->rank == 0 && V == 256) /* bytes; keep the terminal sane */
            putchar(tok == '\n' || (tok >= 32 && tok < 127) ? tok : '?');
        else if (r->rank == 0)
            printf("%d ", tok);
    }
    if (r->rank == 0)
        printf("\n");
    free(ctx);
    return st;
}

/* ---- model files --------------------------------------------------------------------
 */

/* Each rank builds (or reads) only the parameters it keeps: no rank ever
 * holds the whole model here. */
static zrt_status load_or_init(run *r, char *err, size_t size)
{
    if (!r->o.load)
        return gpt2_init_params(&r->m, r->a.seed);
    return gpt2_load_params(&r->m, r->o.load, err, size);
}

/* A pipeline: every stage read its own tensors into params; the first
 * data-parallel rank of each later stage sends them to rank 0, slice by
 * slice in llm.c order, and rank 0 receives each where it belongs. */
static zrt_status collect_stages(run *r, float *params)
{
    size_t sizes[GPT2_NUM_TENSORS], at = 0;
    int P = r->grid.stages, s = r->grid.stage;
    gpt2_tensor_sizes(&r->m.cfg, sizes);
    if (P == 1 || r->grid.data_rank != 0)
        return ZRT_OK;
    for (int i = 0; i < GPT2_NUM_TENSORS; i++) {
        int slices = gpt2_tensor_is_per_layer(i) ? r->m.cfg.num_layers : 1;
        size_t n = sizes[i] / (size_t)slices;
        for (int l = 0; l < slices; l++, at += n) {
            int owner = 0;
            while (!gpt2_stage_holds(&r->m.cfg, P, owner, i, l))
                owner++;
            if (owner != 0 && s == 0)
                EXAMPLE_CHECK(zrt_pipe_recv_from(r->ctx, owner, SAVE_TAG, params + at,
                                                 n * sizeof *params));
            else if (owner != 0 && s == owner)
                EXAMPLE_CHECK(zrt_pipe_send_to(r->ctx, 0, SAVE_TAG, params + at,
                                               n * sizeof *params));
        }
    }
    return ZRT_OK;
}

/* Collective: every rank reads (stage 3 gathers), rank 0 writes. */
static zrt_status save(run *r, char *err, size_t size)
{
    size_t sizes[GPT2_NUM_TENSORS];
    float *params = malloc(gpt2_tensor_sizes(&r->m.cfg, sizes) * sizeof *params);
    if (!params)
        return ZRT_ERR_OUT_OF_MEMORY;
    zrt_status st = gpt2_get_params(&r->m, params);
    if (st == ZRT_OK)
        st = collect_stages(r, params);
    if (st == ZRT_OK && r->rank == 0 &&
        gpt2_model_write(r->o.save, &r->m.cfg, params, err, size))
        st = ZRT_ERR_IO;
    free(params);
    if (st == ZRT_OK && r->rank == 0)
        printf("saved %s\n", r->o.save);
    return st;
}

/* ---- main
 * ------------------------------------------------------------------------------ */

/* A set too small for one batch, named by its flag and its file or pattern,
 * with what it holds: "--train-shards 'dir/x_*.bin': 3 shard files hold 900
 * tokens in all, fewer than --batch x --seq-len + 1 = 1025". */
static int check_enough(const gpt2_data *d, const char *text_flag, const char *text,
                        const char *shard_flag, const char *shards, size_t need,
                        char *err, size_t size)
{
    size_t have = gpt2_data_num_tokens(d);
    if (!d || have >= need)
        return 0;
    if (shards)
        snprintf(err, size,
                 "%s '%s': %zu shard file%s hold%s %zu tokens in all, fewer "
                 "than --batch x --seq-len + 1 = %zu",
                 shard_flag, shards, gpt2_data_num_files(d),
                 gpt2_data_num_files(d) == 1 ? "" : "s",
                 gpt2_data_num_files(d) == 1 ? "s" : "", have, need);
    else
        snprintf(err, size,
                 "%s '%s' holds %zu tokens (bytes), fewer than --batch x "
                 "--seq-len + 1 = %zu",
                 text_flag, text, have, need);
    return -1;
}

/* Catches what would otherwise fail on the first batch, after MPI started. */
static int check_data(const run *r, const gpt2_config *cfg, char *err, size_t size)
{
    size_t need = (size_t)r->o.B * r->o.T + 1;
    if (!r->o.train_shards && cfg->vocab_size < 256) {
        snprintf(err, size,
                 "--vocab-size %d: text is read as bytes, which needs "
                 "a vocabulary of at least 256",
                 cfg->vocab_size);
        return -1;
    }
    if (check_enough(r->train, "--train", r->o.train, "--train-shards", r->o.train_shards,
                     need, err, size))
        return -1;
    return check_enough(r->val, "--val", r->o.val, "--val-shards", r->o.val_shards, need,
                        err, size);
}

static int open_inputs(run *r, const gpt2_config *cfg, char *err, size_t size)
{
    if (open_data(r->o.train, r->o.train_shards, cfg->vocab_size, &r->train, err, size))
        return -1;
    if ((r->o.val || r->o.val_shards) &&
        open_data(r->o.val, r->o.val_shards, cfg->vocab_size, &r->val, err, size))
        return -1;
    return check_data(r, cfg, err, size);
}

/* A model file fixes the shape: a flag that names another value, or a
 * --seq-len past the file's position table, is refused naming both numbers
 * (reading past wpe would corrupt memory; another shape would be another
 * model). */
static int check_loaded_shape(const gpt2_opts *o, const gpt2_config *file, char *err,
                              size_t size)
{
    const struct {
        const char *flag;
        int given, in_file;
    } dims[] = {{"--layers", o->layers, file->num_layers},
                {"--channels", o->channels, file->channels},
                {"--heads", o->heads, file->num_heads},
                {"--max-seq-len", o->max_seq_len, file->max_seq_len},
                {"--vocab-size", o->vocab_size, file->vocab_size}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].given && dims[i].given != dims[i].in_file) {
            snprintf(err, size, "%s %d contradicts --load '%s', whose model has %d",
                     dims[i].flag, dims[i].given, o->load, dims[i].in_file);
            return -1;
        }
    if (o->T > file->max_seq_len) {
        snprintf(err, size,
                 "--seq-len %d exceeds the max_seq_len %d of the model in "
                 "--load '%s'",
                 o->T, file->max_seq_len, o->load);
        return -1;
    }
    return 0;
}

/* --pp, --micro-batches, --schedule into the config and the run; what a
 * pipeline does not do is refused here, before MPI starts. */
static int apply_pipeline_flags(run *r, zrt_config *zc, char *err, size_t size)
{
    const gpt2_opts *o = &r->o;
    r->kind = ZRT_PIPE_1F1B;
    if (o->schedule && !strcmp(o->schedule, "gpipe"))
        r->kind = ZRT_PIPE_GPIPE;
    else if (o->schedule && strcmp(o->schedule, "1f1b") != 0) {
        snprintf(err, size, "--schedule: '%s' is not gpipe or 1f1b", o->schedule);
        return -1;
    }
    if (o->micro_batches > 0 && r->a.grad_accum > 0 &&
        o->micro_batches != r->a.grad_accum) {
        snprintf(err, size,
                 "--micro-batches %d contradicts --grad-accum %d (the same "
                 "thing: give one)",
                 o->micro_batches, r->a.grad_accum);
        return -1;
    }
    if (o->micro_batches > 0)
        zc->gradient_accumulation_steps = o->micro_batches;
    if (o->pp > 0)
        zc->pipeline_stages = o->pp;
    if (zc->pipeline_stages > 1 && r->a.dump_params) {
        snprintf(err, size,
                 "--dump-params with --pp %d: a dump of a pipeline's parameters is not "
                 "built (--save writes the whole model; --save-dir checkpoints it)",
                 zc->pipeline_stages);
        return -1;
    }
    return 0;
}

static int finish_prepare(run *r, gpt2_config *cfg, zrt_config *zc, char *err,
                          size_t size)
{
    if (r->o.load) {
        gpt2_config file_cfg;
        if (gpt2_model_read_header(r->o.load, &file_cfg, err, size) ||
            check_loaded_shape(&r->o, &file_cfg, err, size))
            return -1;
        *cfg = file_cfg; /* the file's shape wins over the preset */
    }
    if (example_build_config(&r->a, zc, err, size) != ZRT_OK)
        return -1;
    return apply_pipeline_flags(r, zc, err, size);
}

/* Everything that can fail before the first collective, with a message. */
static int prepare(run *r, int argc, char **argv, gpt2_config *cfg, zrt_config *zc,
                   char *err, size_t size)
{
    r->o = (gpt2_opts){.preset = "d4",
                       .B = 4,
                       .T = 64,
                       .lr = 1e-3f,
                       .min_lr_frac = 0.1f,
                       .weight_decay = 0.1f,
                       .warmup = 20,
                       .val_every = 50,
                       .val_batches = 4,
                       .sample_len = 200,
                       .train = ZRT_DATA_DIR "/kjv_train.txt",
                       .val = ZRT_DATA_DIR "/kjv_val.txt"};
    int parsed = example_parse_args(argc, argv, &r->a, own_flag, &r->o, err, size);
    if (parsed != 0)
        return parsed;
    if (r->o.B < 1 || r->o.T < 1 || r->o.warmup < 1) {
        snprintf(err, size, "--batch, --seq-len and --warmup must be at least 1");
        return -1;
    }
    if (preset_config(&r->o, cfg, err, size))
        return -1;
    if (finish_prepare(r, cfg, zc, err, size) || open_inputs(r, cfg, err, size))
        return -1;
    return 0;
}

/* A "Vm...: N kB" line of /proc/self/status, in KiB; -1 where unknown. */
static long proc_status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    size_t n = strlen(field);
    while (f && kib < 0 && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':')
            kib = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

/* Rank 0: what this process held at its peak (VmHWM: every byte, zrt's or
 * not) against what zrt planned for its memory tiers. On the cpu backend
 * both the device and the host tier are this process's memory, so the peak
 * should be their sum plus what it held before the model; on cuda the
 * device tier is GPU memory and the host tier alone compares. */
static zrt_status report_rss(run *r)
{
    zrt_mem_plan plan;
    EXAMPLE_CHECK(zrt_plan_memory(r->ctx, &plan));
    long peak = proc_status_kib("VmHWM");
    double planned =
        (double)(plan.tier_peak[ZRT_TIER_DEVICE] + plan.tier_peak[ZRT_TIER_HOST]) /
        1048576.0;
    if (r->rank == 0 && peak >= 0)
        printf("memory: peak RSS %.1f MiB (%.1f MiB before the model); planned "
               "device %.1f + host %.1f = %.1f MiB\n",
               (double)peak / 1024.0, (double)r->rss_before_kib / 1024.0,
               (double)plan.tier_peak[ZRT_TIER_DEVICE] / 1048576.0,
               (double)plan.tier_peak[ZRT_TIER_HOST] / 1048576.0, planned);
    return ZRT_OK;
}

/* The shape goes into checkpoints: zrt_load refuses another model's (equal
 * tensor shapes, other heads), and zero-ckpt llmc exports from it. */
static zrt_status declare_shape(zrt_ctx *ctx, const gpt2_config *cfg)
{
    EXAMPLE_CHECK(zrt_declare_model_dim(ctx, "layers", cfg->num_layers));
    EXAMPLE_CHECK(zrt_declare_model_dim(ctx, "channels", cfg->channels));
    EXAMPLE_CHECK(zrt_declare_model_dim(ctx, "heads", cfg->num_heads));
    EXAMPLE_CHECK(zrt_declare_model_dim(ctx, "max_seq_len", cfg->max_seq_len));
    EXAMPLE_CHECK(zrt_declare_model_dim(ctx, "vocab_size", cfg->vocab_size));
    return zrt_declare_model_dim(ctx, "padded_vocab_size", cfg->padded_vocab_size);
}

static zrt_status setup_model(run *r, const gpt2_config *cfg, char *err, size_t size)
{
    zrt_rank(r->ctx, &r->rank);
    zrt_world_size(r->ctx, &r->world);
    r->inputs = calloc((size_t)r->o.B * r->o.T, sizeof *r->inputs);
    r->targets = calloc((size_t)r->o.B * r->o.T, sizeof *r->targets);
    if (!r->inputs || !r->targets)
        return ZRT_ERR_OUT_OF_MEMORY;
    r->rss_before_kib = proc_status_kib("VmRSS");
    EXAMPLE_CHECK(zrt_get_pipe_grid(r->ctx, &r->grid));
    EXAMPLE_CHECK(gpt2_register(&r->m, r->ctx, cfg, r->o.B, r->o.T));
    EXAMPLE_CHECK(
        zrt_pipe_slots(r->ctx, r->kind, example_accumulation_steps(r->ctx), &r->slots));
    EXAMPLE_CHECK(gpt2_plan_activations(&r->m, r->slots, r->o.recompute));
    EXAMPLE_CHECK(declare_shape(r->ctx, cfg));
    EXAMPLE_CHECK(gpt2_declare_memory(&r->m));
    if (r->o.plan_only)
        return ZRT_OK;
    EXAMPLE_CHECK(zrt_finalize_params(r->ctx));
    EXAMPLE_CHECK(gpt2_alloc_activations(&r->m));
    EXAMPLE_CHECK(load_or_init(r, err, size));
    r->prog = (example_progress){.seed = r->a.seed,
                                 .steps = r->a.steps,
                                 .global_batch = (int64_t)r->grid.data_size * r->o.B *
                                                 example_accumulation_steps(r->ctx)};
    if (r->rank == 0 && r->o.loss_log && !(r->loss_log = fopen(r->o.loss_log, "w"))) {
        snprintf(err, size, "cannot create --loss-log '%s'", r->o.loss_log);
        return ZRT_ERR_IO;
    }
    int64_t count;
    zrt_param_count(r->ctx, &count);
    zrt_config used;
    zrt_get_config(r->ctx, &used);
    if (r->rank == 0)
        printf("gpt2: %d layers, %d channels, %d heads, vocab %d (padded %d), "
               "%.2f M parameters%s; %d ranks x batch %d x seq %d; stage %d%s\n",
               cfg->num_layers, cfg->channels, cfg->num_heads, cfg->vocab_size,
               cfg->padded_vocab_size, (double)count / 1e6,
               r->grid.stages > 1 ? " on pipeline stage 0" : "", r->grid.data_size,
               r->o.B, r->o.T, used.stage, r->o.recompute ? "; recompute" : "");
    if (r->rank == 0 && r->grid.stages > 1)
        printf("pipeline: %d stages x %d data-parallel ranks, %s schedule, %d "
               "micro-batches, %d activation slot(s) on stage 0\n",
               r->grid.stages, r->grid.data_size,
               r->kind == ZRT_PIPE_GPIPE ? "gpipe" : "1f1b",
               example_accumulation_steps(r->ctx), r->slots);
    return ZRT_OK;
}

/* --plan-only: every rank's planned device peak and activations, in rank
 * order on rank 0; *fits = 0 when one passes device_mem_limit. */
static zrt_status print_plan(run *r, int *fits)
{
    zrt_mem_plan plan;
    zrt_config c;
    EXAMPLE_CHECK(zrt_plan_memory(r->ctx, &plan));
    zrt_get_config(r->ctx, &c);
    float *mib = calloc(2 * (size_t)r->world, sizeof *mib);
    if (!mib)
        return ZRT_ERR_OUT_OF_MEMORY;
    mib[2 * r->rank] = (float)(plan.tier_peak[ZRT_TIER_DEVICE] / 1048576.0);
    mib[2 * r->rank + 1] =
        (float)(plan.peak[ZRT_TIER_DEVICE][ZRT_CAT_ACTIVATION] / 1048576.0);
    zrt_status st = zrt_allreduce_f32(r->ctx, mib, 2 * (size_t)r->world, ZRT_SUM);
    *fits = 1;
    for (int k = 0; st == ZRT_OK && k < r->world; k++) {
        if (c.device_mem_limit > 0 && mib[2 * k] * 1048576.0 > (double)c.device_mem_limit)
            *fits = 0;
        if (r->rank == 0)
            printf("plan: rank %d device peak %.1f MiB, activations %.1f MiB\n", k,
                   (double)mib[2 * k], (double)mib[2 * k + 1]);
    }
    if (st == ZRT_OK && r->rank == 0)
        printf("plan: %s\n", *fits ? "fits" : "does not fit --device-mem");
    free(mib);
    return st;
}

static zrt_status finish(run *r, char *err, size_t size)
{
    EXAMPLE_CHECK(sample(r));
    if (r->o.save)
        EXAMPLE_CHECK(save(r, err, size));
    if (r->a.dump_params)
        EXAMPLE_CHECK(example_dump_params(r->ctx, r->a.dump_params));
    if (r->a.mem_report)
        EXAMPLE_CHECK(zrt_write_mem_report(r->ctx, r->a.mem_report));
    return report_rss(r);
}

int main(int argc, char **argv)
{
    run r = {0};
    gpt2_config cfg;
    zrt_config zc;
    char err[1024] = "";
    int prep = prepare(&r, argc, argv, &cfg, &zc, err, sizeof err);
    if (prep != 0) {
        if (prep > 0)
            return usage(argv[0]);
        fprintf(stderr, "error: %s\n", err);
        return 2;
    }
    size_blas_threads();
    zrt_status created = zrt_ctx_create(&zc, &r.ctx);
    if (created != ZRT_OK) { /* zrt printed the reason (no GPU, say) */
        fprintf(stderr, "error: cannot start zrt with backend '%s' (%s)\n", zc.backend,
                zrt_status_str(created));
        return 1;
    }
    zrt_status st = setup_model(&r, &cfg, err, sizeof err);
    if (st == ZRT_OK && r.o.plan_only) {
        int fits = 0;
        st = print_plan(&r, &fits);
        if (st == ZRT_OK) {
            zrt_ctx_destroy(r.ctx);
            return fits ? 0 : 3;
        }
    }
    if (st == ZRT_OK) { /* every rank fails alike: zrt_load agrees on outcomes */
        zrt_status resumed = example_resume(r.ctx, &r.a, &r.prog);
        if (resumed != ZRT_OK)
            return example_exit_agreed(r.ctx, "--resume", resumed);
    }
    if (st == ZRT_OK)
        st = train(&r);
    if (st == ZRT_OK) /* an asynchronous save in flight, published */
        st = zrt_save_wait(r.ctx);
    if (st == ZRT_OK)
        st = finish(&r, err, sizeof err);
    if (st != ZRT_OK) {
        if (err[0])
            fprintf(stderr, "error: %s\n", err);
        return example_fail(r.ctx, "train_gpt2", st);
    }
    gpt2_free(&r.m);
    st = zrt_ctx_destroy(r.ctx);
    gpt2_data_close(r.train);
    gpt2_data_close(r.val);
    if (r.loss_log)
        fclose(r.loss_log);
    free(r.inputs);
    free(r.targets);
    return st == ZRT_OK ? 0 : 1;
}
