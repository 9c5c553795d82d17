/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/mpi/test_gpt2_reference.c — the GPT-2 example against PyTorch.
 *
 * tests/reference/gpt2_reference.py built a tiny GPT-2 (2 layers, 32
 * channels, vocabulary 250 padded to 256), wrote its initial parameters as an
 * llm.c model file, and recorded for one batch: the logits, the loss, every
 * parameter gradient, and the losses of 10 AdamW steps. This program loads
 * the same model into the C implementation through zrt and compares, at
 * stages 0-3, on 1 rank (the whole batch) or 2 (one row each; zrt averages
 * the gradients back to the batch mean):
 *   logits and loss within 1e-4 (absolute);
 *   each tensor's gradient within 1e-3 relative (norm-wise, per tensor);
 *   the 10 losses within 1e-4.
 * Usage: test_gpt2_reference MODEL.bin REF.bin
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2.h"
#include "model.h"

enum { REF_MAGIC = 20261122 };

typedef struct reference {
    int B, T, nsteps, P, Vp, V;
    int *inputs, *targets;
    float *logits, loss, *grads, *losses;
    float *params; /* the initial model, llm.c layout */
    gpt2_config cfg;
} reference;

static int rank, world, failures;

/* The largest differences seen at the current stage, for the report. */
static struct {
    float logits, loss, step_loss;
    double grad;
    const char *grad_tensor;
} worst;

#define EXPECT(cond, ...)                                                                \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "rank %d: FAIL: ", rank);                                    \
            fprintf(stderr, __VA_ARGS__);                                                \
            fprintf(stderr, "\n");                                                       \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

static int read_exact(FILE *f, void *dst, size_t bytes)
{
    return fread(dst, 1, bytes, f) == bytes ? 0 : -1;
}

static int load_reference(const char *model, const char *ref, reference *r)
{
    char err[512];
    if (gpt2_model_read_header(model, &r->cfg, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    size_t sizes[GPT2_NUM_TENSORS];
    size_t P = gpt2_tensor_sizes(&r->cfg, sizes);
    r->params = malloc(P * sizeof(float));
    if (!r->params || gpt2_model_read(model, &r->cfg, r->params, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    FILE *f = fopen(ref, "rb");
    int h[256];
    if (!f || read_exact(f, h, sizeof h) || h[0] != REF_MAGIC || h[1] != 1 ||
        (size_t)h[5] != P) {
        fprintf(stderr, "%s: not a reference file for %s\n", ref, model);
        return -1;
    }
    *r = (reference){.B = h[2],
                     .T = h[3],
                     .nsteps = h[4],
                     .P = h[5],
                     .Vp = h[6],
                     .V = h[7],
                     .cfg = r->cfg,
                     .params = r->params};
    size_t bt = (size_t)r->B * r->T;
    r->inputs = malloc(bt * sizeof(int));
    r->targets = malloc(bt * sizeof(int));
    r->logits = malloc(bt * r->Vp * sizeof(float));
    r->grads = malloc(P * sizeof(float));
    r->losses = malloc((size_t)r->nsteps * sizeof(float));
    int bad = !r->inputs || !r->targets || !r->logits || !r->grads || !r->losses ||
              read_exact(f, r->inputs, bt * sizeof(int)) ||
              read_exact(f, r->targets, bt * sizeof(int)) ||
              read_exact(f, r->logits, bt * r->Vp * sizeof(float)) ||
              read_exact(f, &r->loss, sizeof(float)) ||
              read_exact(f, r->grads, P * sizeof(float)) ||
              read_exact(f, r->losses, (size_t)r->nsteps * sizeof(float));
    fclose(f);
    if (bad)
        fprintf(stderr, "%s: truncated\n", ref);
    return bad ? -1 : 0;
}

static void free_reference(reference *r)
{
    free(r->params);
    free(r->inputs);
    free(r->targets);
    free(r->logits);
    free(r->grads);
    free(r->losses);
}

static void compare_logits(const reference *r, const gpt2_model *m, int row0)
{
    float largest = 0;
    for (int b = 0; b < m->B; b++)
        for (int t = 0; t < m->T; t++) {
            const float *mine = gpt2_logits_at(m, b * m->T + t);
            const float *ref = r->logits + ((size_t)(row0 + b) * r->T + t) * r->Vp;
            for (int v = 0; v < r->Vp; v++)
                largest = fmaxf(largest, fabsf(mine[v] - ref[v]));
        }
    EXPECT(largest <= 1e-4f, "logits differ by %g (> 1e-4)", largest);
    worst.logits = largest;
}

static void compare_grads(const reference *r, const float *grads, int stage)
{
    size_t sizes[GPT2_NUM_TENSORS], at = 0;
    gpt2_tensor_sizes(&r->cfg, sizes);
    for (int i = 0; i < GPT2_NUM_TENSORS; i++) {
        double diff = 0, norm = 0;
        for (size_t k = 0; k < sizes[i]; k++) {
            double d = (double)grads[at + k] - r->grads[at + k];
            diff += d * d;
            norm += (double)r->grads[at + k] * r->grads[at + k];
        }
        double rel = norm > 0 ? sqrt(diff / norm) : sqrt(diff);
        EXPECT(rel <= 1e-3, "stage %d: gradient of %s differs by %.3g relative", stage,
               gpt2_tensor_name(i), rel);
        if (rel >= worst.grad) {
            worst.grad = rel;
            worst.grad_tensor = gpt2_tensor_name(i);
        }
        at += sizes[i];
    }
}

static float mean_loss(gpt2_model *m)
{
    float loss = m->loss;
    zrt_allreduce_f32(m->ctx, &loss, 1, ZRT_AVG);
    return loss;
}

static int run_stage(const reference *r, int stage)
{
    zrt_config cfg;
    zrt_config_init(&cfg);
    cfg.stage = stage;
    cfg.log_level = 0;
    cfg.stage3_param_persistence_threshold = 0;
    zrt_ctx *ctx;
    gpt2_model m;
    int rows = r->B / world, row0 = rank * rows;
    if (zrt_ctx_create(&cfg, &ctx) != ZRT_OK ||
        gpt2_register(&m, ctx, &r->cfg, rows, r->T) != ZRT_OK ||
        zrt_finalize_params(ctx) != ZRT_OK || gpt2_alloc_activations(&m) != ZRT_OK ||
        gpt2_set_params(&m, r->params) != ZRT_OK)
        return -1;
    const int *in = r->inputs + (size_t)row0 * r->T;
    const int *tg = r->targets + (size_t)row0 * r->T;
    float *grads = malloc((size_t)r->P * sizeof(float));
    zrt_adamw hp = {
        .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f};
    for (int step = 0; step < r->nsteps; step++) {
        if (gpt2_forward(&m, in, tg) != ZRT_OK || gpt2_backward(&m) != ZRT_OK) {
            fprintf(stderr, "rank %d: %s\n", rank, zrt_last_error(ctx));
            return -1;
        }
        float loss = mean_loss(&m);
        if (step == 0) {
            compare_logits(r, &m, row0);
            EXPECT(fabsf(loss - r->loss) <= 1e-4f, "stage %d: loss %.7f vs %.7f", stage,
                   loss, r->loss);
            worst.loss = fabsf(loss - r->loss);
            if (gpt2_get_grads(&m, grads) != ZRT_OK)
                return -1;
            compare_grads(r, grads, stage);
        }
        EXPECT(fabsf(loss - r->losses[step]) <= 1e-4f,
               "stage %d: loss of step %d is %.7f, PyTorch's %.7f", stage, step, loss,
               r->losses[step]);
        worst.step_loss = fmaxf(worst.step_loss, fabsf(loss - r->losses[step]));
        if (zrt_step(ctx, &hp) != ZRT_OK)
            return -1;
    }
    free(grads);
    gpt2_free(&m);
    if (rank == 0)
        printf("stage %d, %d rank(s): logits within %.2g, loss within %.2g, "
               "gradients within %.2g relative (worst: %s), %d step losses "
               "within %.2g\n",
               stage, world, worst.logits, worst.loss, worst.grad, worst.grad_tensor,
               r->nsteps, worst.step_loss);
    memset(&worst, 0, sizeof worst);
    return zrt_ctx_destroy(ctx) == ZRT_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    reference r = {0};
    int broken = argc != 3 || load_reference(argv[1], argv[2], &r) || r.B % world != 0;
    for (int stage = 0; stage <= 3 && !broken; stage++)
        broken = run_stage(&r, stage);
    int local = failures + (broken ? 1 : 0), total = 0;
    MPI_Allreduce(&local, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%d passed, %d failed\n", total == 0 ? 4 : 0, total == 0 ? 0 : 4);
    free_reference(&r);
    MPI_Finalize();
    return total == 0 ? 0 : 1;
}
