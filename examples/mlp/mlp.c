/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/mlp/mlp.c — a multi-layer perceptron trained through zrt.
 *
 * The smallest training loop that shows the per-layer call pattern: each
 * layer's forward runs between zrt_forward_begin/end, each layer's backward
 * between zrt_backward_begin/end, then zrt_step updates the shards. Whatever
 * the stage, the loop is the same; only where the bytes live changes.
 *
 * Model: depth tanh layers of width `hidden`, then a linear head of width
 * `out`; loss = mean squared error against a fixed random teacher
 * y = tanh(T x). The global batch is split across ranks: rank r takes rows
 * [r * B/N, (r+1) * B/N) of every step's batch, so the run computes the same
 * mathematics for any world size that divides B.
 *
 * Shapes: x (b, in), W_l (out_l, in_l), b_l (out_l), h_l (b, out_l).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/example_args.h"
#include "zrt/zrt.h"

typedef struct mlp_dims {
    int in, hidden, out, depth; /* depth hidden layers, then the head */
    int batch;                  /* global batch */
    float lr;
} mlp_dims;

typedef struct mlp {
    mlp_dims d;
    int nlayers, rank, world, local_batch;
    zrt_param *w, *b;    /* per layer */
    float **act;         /* act[0] = x, act[l+1] = output of layer l: (b, width) */
    float *target;       /* (b, out) */
    float *dact, *dnext; /* (b, max width) scratch for backward */
    float teacher[64 * 64];
} mlp;

static int layer_in(const mlp *m, int l)
{
    return l == 0 ? m->d.in : m->d.hidden;
}

static int layer_out(const mlp *m, int l)
{
    return l == m->nlayers - 1 ? m->d.out : m->d.hidden;
}

static int own_flag(void *user, int argc, char **argv, int *i, char *err, size_t size)
{
    mlp_dims *d = user;
    const char *names[] = {"--hidden", "--depth", "--batch", "--lr", "--in", "--out"};
    int which = -1;
    for (int k = 0; k < 6; k++)
        if (!strcmp(argv[*i], names[k]))
            which = k;
    if (which < 0)
        return 0;
    if (*i + 1 >= argc) {
        snprintf(err, size, "%s needs a value", argv[*i]);
        return -1;
    }
    const char *text = argv[++*i];
    char *end;
    double value = strtod(text, &end);
    int bad = end == text || *end || !(value > 0) ||
              (which != 3 && (value != floor(value) || value > 100000)) ||
              ((which == 4 || which == 5) && value > 64);
    if (bad) {
        snprintf(err, size, "%s: '%s' is not a valid value", names[which], text);
        return -1;
    }
    int *ints[] = {&d->hidden, &d->depth, &d->batch, NULL, &d->in, &d->out};
    if (which == 3)
        d->lr = (float)value;
    else
        *ints[which] = (int)value;
    return 1;
}

/* ---- setup --------------------------------------------------------------- */

static zrt_status register_params(zrt_ctx *ctx, mlp *m)
{
    for (int l = 0; l < m->nlayers; l++) {
        char wname[32], bname[32];
        snprintf(wname, sizeof wname, "fc%d.weight", l);
        snprintf(bname, sizeof bname, "fc%d.bias", l);
        zrt_param_desc w = {.name = wname,
                            .ndim = 2,
                            .shape = {layer_out(m, l), layer_in(m, l)},
                            .dtype = ZRT_F32,
                            .layer = l};
        zrt_param_desc b = {.name = bname,
                            .ndim = 1,
                            .shape = {layer_out(m, l)},
                            .dtype = ZRT_F32,
                            .layer = l,
                            .no_weight_decay = 1};
        EXAMPLE_CHECK(zrt_param_register(ctx, &w, &m->w[l]));
        EXAMPLE_CHECK(zrt_param_register(ctx, &b, &m->b[l]));
    }
    return ZRT_OK;
}

/* Same values on every rank: every rank draws from the same seed. */
static zrt_status init_params(zrt_ctx *ctx, mlp *m, uint64_t seed)
{
    uint64_t rng = seed * 7919u + 17u;
    for (int l = 0; l < m->nlayers; l++) {
        int rows = layer_out(m, l), cols = layer_in(m, l);
        float scale = 1.0f / sqrtf((float)cols);
        float *w = malloc((size_t)rows * cols * sizeof *w);
        float *b = calloc((size_t)rows, sizeof *b);
        if (!w || !b) {
            free(w);
            free(b);
            return ZRT_ERR_OUT_OF_MEMORY;
        }
        for (int i = 0; i < rows * cols; i++)
            w[i] = example_rand_uniform(&rng) * scale;
        zrt_status st = zrt_param_write(ctx, m->w[l], w);
        if (st == ZRT_OK)
            st = zrt_param_write(ctx, m->b[l], b);
        free(w);
        free(b);
        EXAMPLE_CHECK(st);
    }
    for (int i = 0; i < m->d.out * m->d.in; i++)
        m->teacher[i] = example_rand_uniform(&rng) * 2.0f / sqrtf((float)m->d.in);
    return ZRT_OK;
}

static zrt_status alloc_f32(zrt_ctx *ctx, size_t count, float **out)
{
    return zrt_buffer_alloc(ctx, count * sizeof(float), ZRT_CAT_ACTIVATION, (void **)out);
}

static int widest_layer(const mlp *m)
{
    int widest = m->d.hidden > m->d.in ? m->d.hidden : m->d.in;
    return widest > m->d.out ? widest : m->d.out;
}

/* What alloc_activations will take, declared before zrt_finalize_params so
 * that the memory plan includes it. */
static zrt_status declare_activations(zrt_ctx *ctx, const mlp *m)
{
    size_t b = (size_t)m->local_batch, floats = b * m->d.in;
    for (int l = 0; l < m->nlayers; l++)
        floats += b * layer_out(m, l);
    floats += b * m->d.out + 2 * b * widest_layer(m);
    return zrt_declare_buffer(ctx, ZRT_CAT_ACTIVATION, floats * sizeof(float));
}

static zrt_status alloc_activations(zrt_ctx *ctx, mlp *m)
{
    size_t b = (size_t)m->local_batch;
    m->act = calloc((size_t)m->nlayers + 1, sizeof *m->act);
    if (!m->act)
        return ZRT_ERR_OUT_OF_MEMORY;
    EXAMPLE_CHECK(alloc_f32(ctx, b * m->d.in, &m->act[0]));
    for (int l = 0; l < m->nlayers; l++)
        EXAMPLE_CHECK(alloc_f32(ctx, b * layer_out(m, l), &m->act[l + 1]));
    int widest = widest_layer(m);
    EXAMPLE_CHECK(alloc_f32(ctx, b * m->d.out, &m->target));
    EXAMPLE_CHECK(alloc_f32(ctx, b * widest, &m->dact));
    return alloc_f32(ctx, b * widest, &m->dnext);
}

/* This rank's rows of the step's global batch, and their teacher targets. */
static void load_batch(mlp *m, uint64_t seed, int step)
{
    uint64_t rng = seed ^ (0xA5A5A5A5ull * (uint64_t)(step + 1));
    int first = m->rank * m->local_batch;
    for (int row = 0; row < m->d.batch; row++) {
        float x[64];
        for (int k = 0; k < m->d.in; k++)
            x[k] = example_rand_uniform(&rng);
        if (row < first || row >= first + m->local_batch)
            continue;
        float *dst = m->act[0] + (size_t)(row - first) * m->d.in;
        memcpy(dst, x, (size_t)m->d.in * sizeof *x);
        for (int o = 0; o < m->d.out; o++) {
            float s = 0;
            for (int k = 0; k < m->d.in; k++)
                s += m->teacher[o * m->d.in + k] * x[k];
            m->target[(size_t)(row - first) * m->d.out + o] = tanhf(s);
        }
    }
}

/* ---- forward and backward of one layer ---------------------------------- */

/* y (b, n) = act(x (b, k) W^T + bias); tanh on every layer but the head. */
static void layer_forward(const mlp *m, int l, const float *w, const float *bias)
{
    int k = layer_in(m, l), n = layer_out(m, l), last = l == m->nlayers - 1;
    const float *x = m->act[l];
    float *y = m->act[l + 1];
    for (int r = 0; r < m->local_batch; r++) {
        for (int j = 0; j < n; j++) {
            float s = bias[j];
            for (int i = 0; i < k; i++)
                s += x[(size_t)r * k + i] * w[(size_t)j * k + i];
            y[(size_t)r * n + j] = last ? s : tanhf(s);
        }
    }
}

/* In: dact = dL/dy (b, n). Adds dL/dW and dL/dbias; leaves dL/dx in dnext. */
static void layer_backward(const mlp *m, int l, const float *w, float *dw, float *dbias)
{
    int k = layer_in(m, l), n = layer_out(m, l), last = l == m->nlayers - 1;
    const float *x = m->act[l], *y = m->act[l + 1];
    float *dy = m->dact, *dx = m->dnext;
    for (int r = 0; r < m->local_batch; r++) {
        for (int j = 0; j < n; j++) {
            float yj = y[(size_t)r * n + j];
            if (!last) /* through tanh: dL/ds = dL/dy * (1 - y^2) */
                dy[(size_t)r * n + j] *= 1.0f - yj * yj;
        }
    }
    memset(dx, 0, (size_t)m->local_batch * k * sizeof *dx);
    for (int r = 0; r < m->local_batch; r++) {
        for (int j = 0; j < n; j++) {
            float g = dy[(size_t)r * n + j];
            dbias[j] += g;
            for (int i = 0; i < k; i++) {
                dw[(size_t)j * k + i] += g * x[(size_t)r * k + i];
                dx[(size_t)r * k + i] += g * w[(size_t)j * k + i];
            }
        }
    }
}

/* ---- one training step ---------------------------------------------------- */

static zrt_status forward(zrt_ctx *ctx, mlp *m, float *loss)
{
    for (int l = 0; l < m->nlayers; l++) {
        void *w, *b;
        EXAMPLE_CHECK(zrt_forward_begin(ctx, l));
        EXAMPLE_CHECK(zrt_param_data(ctx, m->w[l], &w));
        EXAMPLE_CHECK(zrt_param_data(ctx, m->b[l], &b));
        layer_forward(m, l, w, b);
        EXAMPLE_CHECK(zrt_forward_end(ctx, l));
    }
    /* loss = mean over this rank's rows and outputs of (y - t)^2 */
    size_t count = (size_t)m->local_batch * m->d.out;
    const float *y = m->act[m->nlayers];
    double sum = 0;
    for (size_t i = 0; i < count; i++) {
        float diff = y[i] - m->target[i];
        sum += (double)diff * diff;
        m->dact[i] = 2.0f * diff / (float)count;
    }
    *loss = (float)(sum / (double)count);
    return ZRT_OK;
}

static zrt_status backward(zrt_ctx *ctx, mlp *m)
{
    for (int l = m->nlayers - 1; l >= 0; l--) {
        void *w, *dw, *db;
        EXAMPLE_CHECK(zrt_backward_begin(ctx, l));
        EXAMPLE_CHECK(zrt_param_data(ctx, m->w[l], &w));
        EXAMPLE_CHECK(zrt_grad_data(ctx, m->w[l], &dw));
        EXAMPLE_CHECK(zrt_grad_data(ctx, m->b[l], &db));
        layer_backward(m, l, w, dw, db);
        EXAMPLE_CHECK(zrt_backward_end(ctx, l));
        float *swap = m->dact; /* dL/dx of this layer is dL/dy of the one before */
        m->dact = m->dnext;
        m->dnext = swap;
    }
    return ZRT_OK;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One optimizer step: K micro-batches (K = gradient_accumulation_steps),
 * zrt_step after each (the K-th applies AdamW). Micro-batch k of step s is
 * batch s * K + k of the data stream. Returns the mean loss over ranks. */
static zrt_status optimizer_step(zrt_ctx *ctx, mlp *m, const zrt_adamw *hp,
                                 const example_progress *prog, int step, float *loss)
{
    int K = example_accumulation_steps(ctx);
    float sum = 0;
    EXAMPLE_CHECK(zrt_zero_grad(ctx));
    for (int k = 0; k < K; k++) {
        float micro = 0;
        load_batch(m, prog->seed, step * K + k);
        EXAMPLE_CHECK(forward(ctx, m, &micro));
        EXAMPLE_CHECK(backward(ctx, m));
        EXAMPLE_CHECK(zrt_step(ctx, hp));
        sum += micro;
    }
    *loss = sum / (float)K;
    return zrt_allreduce_f32(ctx, loss, 1, ZRT_AVG);
}

static zrt_status train(zrt_ctx *ctx, mlp *m, const example_args *a,
                        example_progress *prog)
{
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    hp.lr = m->d.lr;
    float loss = 0;
    for (int step = (int)prog->next_step; step < a->steps; step++) {
        double t0 = now_ms();
        EXAMPLE_CHECK(optimizer_step(ctx, m, &hp, prog, step, &loss));
        zrt_mem_stats ms;
        zrt_get_mem_stats(ctx, &ms);
        if (m->rank == 0)
            printf("step %d/%d loss %.6f ms %.2f device_bytes %lld peak %lld\n", step + 1,
                   a->steps, loss, now_ms() - t0,
                   (long long)ms.tier_current[ZRT_TIER_DEVICE],
                   (long long)ms.tier_peak[ZRT_TIER_DEVICE]);
        prog->next_step = step + 1;
        EXAMPLE_CHECK(example_maybe_save(ctx, a, prog));
    }
    if (m->rank == 0)
        printf("final loss %.9g\n", loss);
    return ZRT_OK;
}

/* ---- main ------------------------------------------------------------------ */

static int usage(const char *prog)
{
    printf("usage: mpirun -np N %s [options]\n"
           "Trains a small MLP through zrt on every rank.\n%s"
           "  --hidden H         hidden width (default 200)\n"
           "  --depth D          hidden layers (default 3)\n"
           "  --in K / --out O   input and output widths, at most 64 (32, 3)\n"
           "  --batch B          global batch, divisible by N (default 24)\n"
           "  --lr LR            learning rate (default 0.001)\n",
           prog, example_common_usage());
    return 0;
}

static zrt_status setup(zrt_ctx *ctx, mlp *m, const example_args *a)
{
    zrt_rank(ctx, &m->rank);
    zrt_world_size(ctx, &m->world);
    if (m->d.batch % m->world != 0)
        return ZRT_ERR_INVALID_ARG;
    m->local_batch = m->d.batch / m->world;
    m->nlayers = m->d.depth + 1;
    m->w = calloc((size_t)m->nlayers, sizeof *m->w);
    m->b = calloc((size_t)m->nlayers, sizeof *m->b);
    if (!m->w || !m->b)
        return ZRT_ERR_OUT_OF_MEMORY;
    EXAMPLE_CHECK(register_params(ctx, m));
    EXAMPLE_CHECK(declare_activations(ctx, m));
    EXAMPLE_CHECK(zrt_finalize_params(ctx));
    EXAMPLE_CHECK(init_params(ctx, m, a->seed));
    return alloc_activations(ctx, m);
}

/* The host arrays setup allocates (the buffers they point to are the
 * context's). */
static void free_mlp(mlp *m)
{
    free(m->w);
    free(m->b);
    free(m->act);
}

/* The loop's position; --resume moves it to the checkpoint's. */
static zrt_status start_position(zrt_ctx *ctx, const mlp *m, const example_args *a,
                                 example_progress *prog)
{
    *prog = (example_progress){.next_step = 0,
                               .seed = a->seed,
                               .global_batch =
                                   (int64_t)m->d.batch * example_accumulation_steps(ctx),
                               .steps = a->steps};
    return example_resume(ctx, a, prog);
}

int main(int argc, char **argv)
{
    mlp m = {
        .d = {.in = 32, .hidden = 200, .out = 3, .depth = 3, .batch = 24, .lr = 1e-3f}};
    example_args a;
    char err[1024];
    int parsed = example_parse_args(argc, argv, &a, own_flag, &m.d, err, sizeof err);
    if (parsed != 0) {
        if (parsed > 0)
            return usage(argv[0]);
        fprintf(stderr, "error: %s\n", err);
        return 2;
    }
    zrt_config cfg;
    if (example_build_config(&a, &cfg, err, sizeof err) != ZRT_OK) {
        fprintf(stderr, "error: %s\n", err);
        return 2;
    }
    if (strcmp(cfg.backend, "cpu") != 0) { /* its math reads parameters on the host */
        fprintf(stderr,
                "error: mlp computes on the host and runs on the cpu backend "
                "only (backend '%s'); train_gpt2 runs on cuda\n",
                cfg.backend);
        return 2;
    }
    zrt_ctx *ctx = NULL;
    zrt_status st = zrt_ctx_create(&cfg, &ctx);
    if (st != ZRT_OK)
        return 1; /* zrt_ctx_create printed why */
    st = setup(ctx, &m, &a);
    if (st == ZRT_ERR_INVALID_ARG && m.local_batch == 0) {
        fprintf(stderr, "error: --batch %d is not divisible by %d ranks\n", m.d.batch,
                m.world);
        zrt_ctx_destroy(ctx);
        free_mlp(&m);
        return 2;
    }
    if (st == ZRT_ERR_OUT_OF_MEMORY || st == ZRT_ERR_REMOTE) {
        /* zrt_finalize_params agrees on failure across ranks; the
         * allocations after it are the same on every rank of this example,
         * so every rank is here too. */
        fprintf(stderr, "error: %s\n", zrt_last_error(ctx));
        zrt_ctx_destroy(ctx);
        free_mlp(&m);
        return 1;
    }
    if (st != ZRT_OK)
        return example_fail(ctx, "setup", st);
    example_progress prog;
    if ((st = start_position(ctx, &m, &a, &prog)) != ZRT_OK) {
        free_mlp(&m);
        return example_exit_agreed(ctx, "--resume", st);
    }
    if ((st = train(ctx, &m, &a, &prog)) != ZRT_OK)
        return example_fail(ctx, "training", st);
    if ((st = zrt_save_wait(ctx)) != ZRT_OK) /* an asynchronous save in flight */
        return example_fail(ctx, "checkpoint", st);
    if (a.dump_params && (st = example_dump_params(ctx, a.dump_params)) != ZRT_OK)
        return example_fail(ctx, "--dump-params", st);
    if (a.mem_report && (st = zrt_write_mem_report(ctx, a.mem_report)) != ZRT_OK)
        return example_fail(ctx, "--mem-report", st);
    st = zrt_ctx_destroy(ctx);
    free_mlp(&m);
    return st == ZRT_OK ? 0 : 1;
}
