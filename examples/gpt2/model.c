/*
 * examples/gpt2/model.c — GPT-2 forward and backward through zrt (see
 * model.h for the layer mapping, layers.c for the operations).
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/example_args.h"
#include "layers.h"

/* Block tensors, in llm.c order (tensor index = 2 + these). */
enum { LN1W, LN1B, QKVW, QKVB, ATTPROJW, ATTPROJB, LN2W, LN2B, FCW, FCB,
       FCPROJW, FCPROJB };

/* Activations of one forward pass, as in llm.c (L = layers). */
struct gpt2_acts {
    float *encoded;                 /* (B,T,C) */
    float *ln1, *ln1_mean, *ln1_rstd; /* (L,B,T,C), (L,B,T), (L,B,T) */
    float *qkv;                     /* (L,B,T,3C) */
    float *atty;                    /* (L,B,T,C) */
    float *preatt, *att;            /* (L,B,NH,T,T) */
    float *attproj, *residual2;     /* (L,B,T,C) */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;          /* (L,B,T,4C) */
    float *fcproj, *residual3;      /* (L,B,T,C) */
    float *lnf, *lnf_mean, *lnf_rstd; /* (B,T,C), (B,T), (B,T) */
    float *logits, *probs;          /* (B,T,Vp) */
    float *losses;                  /* (B,T) */
    float *memory;                  /* one block holding all of the above */
    size_t count;                   /* floats in memory */
};

#define NUM_ACTS 23

/* Element counts of the activations, in struct order. */
static void act_sizes(const gpt2_model *m, size_t s[NUM_ACTS])
{
    size_t B = (size_t)m->B, T = (size_t)m->T, C = (size_t)m->cfg.channels;
    size_t L = (size_t)m->cfg.num_layers, NH = (size_t)m->cfg.num_heads;
    size_t Vp = (size_t)m->cfg.padded_vocab_size, BT = B * T;
    size_t sizes[NUM_ACTS] = {
        BT * C,                              /* encoded */
        L * BT * C, L * BT, L * BT,          /* ln1, mean, rstd */
        L * BT * 3 * C,                      /* qkv */
        L * BT * C,                          /* atty */
        L * B * NH * T * T, L * B * NH * T * T, /* preatt, att */
        L * BT * C, L * BT * C,              /* attproj, residual2 */
        L * BT * C, L * BT, L * BT,          /* ln2, mean, rstd */
        L * BT * 4 * C, L * BT * 4 * C,      /* fch, fch_gelu */
        L * BT * C, L * BT * C,              /* fcproj, residual3 */
        BT * C, BT, BT,                      /* lnf, mean, rstd */
        BT * Vp, BT * Vp,                    /* logits, probs */
        BT};                                 /* losses */
    memcpy(s, sizes, sizeof sizes);
}

static zrt_status alloc_acts(gpt2_model *m, gpt2_acts **out)
{
    size_t sizes[NUM_ACTS], total = 0;
    act_sizes(m, sizes);
    for (int i = 0; i < NUM_ACTS; i++)
        total += sizes[i];
    gpt2_acts *a = calloc(1, sizeof *a);
    if (!a)
        return ZRT_ERR_OUT_OF_MEMORY;
    zrt_status st = zrt_buffer_alloc(m->ctx, total * sizeof(float),
                                     ZRT_CAT_ACTIVATION, (void **)&a->memory);
    if (st != ZRT_OK) {
        free(a);
        return st;
    }
    float **slots[NUM_ACTS] = {
        &a->encoded, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->atty,
        &a->preatt, &a->att, &a->attproj, &a->residual2, &a->ln2, &a->ln2_mean,
        &a->ln2_rstd, &a->fch, &a->fch_gelu, &a->fcproj, &a->residual3, &a->lnf,
        &a->lnf_mean, &a->lnf_rstd, &a->logits, &a->probs, &a->losses};
    float *next = a->memory;
    for (int i = 0; i < NUM_ACTS; i++) {
        *slots[i] = next;
        next += sizes[i];
    }
    a->count = total;
    *out = a;
    return ZRT_OK;
}

/* ---- registration ---------------------------------------------------------- */

/* The parameters' type: what the config trains (bf16, fp16 or f32). */
static zrt_dtype trained_dtype(const zrt_ctx *ctx)
{
    zrt_config c;
    zrt_get_config(ctx, &c);
    return c.bf16.enabled ? ZRT_BF16 : c.fp16.enabled ? ZRT_F16 : ZRT_F32;
}

static zrt_status add_param(zrt_ctx *ctx, const char *name, int layer, int ndim,
                            int64_t d0, int64_t d1, zrt_param *out)
{
    zrt_param_desc d = {.name = name, .ndim = ndim, .shape = {d0, d1},
                        .dtype = trained_dtype(ctx), .layer = layer,
                        .no_weight_decay = ndim == 1};
    return zrt_param_register(ctx, &d, out);
}

static zrt_status register_block(gpt2_model *m, int l)
{
    int64_t C = m->cfg.channels;
    static const char *names[GPT2_BLOCK_TENSORS] = {
        "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
        "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb"};
    const int64_t rows[GPT2_BLOCK_TENSORS] = {C, C, 3 * C, 3 * C, C, C,
                                              C, C, 4 * C, 4 * C, C, C};
    const int64_t cols[GPT2_BLOCK_TENSORS] = {0, 0, C, 0, C, 0,
                                              0, 0, C, 0, 4 * C, 0};
    for (int j = 0; j < GPT2_BLOCK_TENSORS; j++) {
        char name[48];
        snprintf(name, sizeof name, "h%d.%s", l, names[j]);
        EXAMPLE_CHECK(add_param(m->ctx, name, 1 + l, cols[j] ? 2 : 1, rows[j],
                                cols[j], &m->blocks[l * GPT2_BLOCK_TENSORS + j]));
    }
    return ZRT_OK;
}

/* 16-bit: where each parameter sits in its layer's f32 copy, and how large
 * the two copies are. */
static zrt_status plan_wide_copies(gpt2_model *m)
{
    EXAMPLE_CHECK(zrt_num_params(m->ctx, &m->nparams));
    int n = m->nparams, L = m->cfg.num_layers;
    m->offset = calloc((size_t)n, sizeof *m->offset);
    m->numel = calloc((size_t)n, sizeof *m->numel);
    m->layer = calloc((size_t)n, sizeof *m->layer);
    int64_t *used = calloc((size_t)L + 2, sizeof *used);
    if (!m->offset || !m->numel || !m->layer || !used) {
        free(used);
        return ZRT_ERR_OUT_OF_MEMORY;
    }
    for (zrt_param p = 0; p < n; p++) { /* registration order: layers ascend */
        EXAMPLE_CHECK(zrt_param_numel(m->ctx, p, &m->numel[p]));
        m->layer[p] = p < 2 ? 0 : p >= n - 2 ? L + 1 : 1 + (p - 2) / GPT2_BLOCK_TENSORS;
        m->offset[p] = used[m->layer[p]];
        used[m->layer[p]] += m->numel[p];
    }
    m->wide_numel[0] = used[0];
    for (int l = 1; l <= L + 1; l++)
        if (used[l] > m->wide_numel[1])
            m->wide_numel[1] = used[l];
    free(used);
    return ZRT_OK;
}

static int64_t wide_bytes(const gpt2_model *m)
{
    return (m->wide_numel[0] + m->wide_numel[1]) * 2 * (int64_t)sizeof(float);
}

zrt_status gpt2_register(gpt2_model *m, zrt_ctx *ctx, const gpt2_config *cfg,
                         int B, int T)
{
    memset(m, 0, sizeof *m);
    m->loss_grad_factor = 1.0f;
    m->cfg = *cfg;
    m->ctx = ctx;
    m->B = B;
    m->T = T;
    int L = cfg->num_layers;
    m->blocks = calloc((size_t)L * GPT2_BLOCK_TENSORS, sizeof *m->blocks);
    if (!m->blocks)
        return ZRT_ERR_OUT_OF_MEMORY;
    int64_t C = cfg->channels;
    EXAMPLE_CHECK(add_param(ctx, "wte", 0, 2, cfg->padded_vocab_size, C, &m->wte));
    EXAMPLE_CHECK(add_param(ctx, "wpe", 0, 2, cfg->max_seq_len, C, &m->wpe));
    for (int l = 0; l < L; l++)
        EXAMPLE_CHECK(register_block(m, l));
    EXAMPLE_CHECK(add_param(ctx, "lnfw", L + 1, 1, C, 0, &m->lnfw));
    EXAMPLE_CHECK(add_param(ctx, "lnfb", L + 1, 1, C, 0, &m->lnfb));
    m->dtype = trained_dtype(ctx);
    return m->dtype == ZRT_F32 ? ZRT_OK : plan_wide_copies(m);
}

/* The layer calls of one training step, as gpt2_forward and gpt2_backward
 * make them: layer 0 (the embeddings) is entered again for the tied output
 * head, and stays in backward from the head to the embedding. */
static zrt_status declare_step(gpt2_model *m)
{
    int L = m->cfg.num_layers, k = 0;
    zrt_layer_call *calls = malloc((4 * (size_t)L + 12) * sizeof *calls);
    if (!calls)
        return ZRT_ERR_OUT_OF_MEMORY;
    for (int l = 0; l <= L + 1; l++) { /* embed, blocks, final layernorm */
        calls[k++] = (zrt_layer_call){ZRT_FORWARD_BEGIN, l};
        calls[k++] = (zrt_layer_call){ZRT_FORWARD_END, l};
    }
    calls[k++] = (zrt_layer_call){ZRT_FORWARD_BEGIN, 0}; /* head */
    calls[k++] = (zrt_layer_call){ZRT_FORWARD_END, 0};
    calls[k++] = (zrt_layer_call){ZRT_BACKWARD_BEGIN, 0};
    for (int l = L + 1; l >= 1; l--) {
        calls[k++] = (zrt_layer_call){ZRT_BACKWARD_BEGIN, l};
        calls[k++] = (zrt_layer_call){ZRT_BACKWARD_END, l};
    }
    calls[k++] = (zrt_layer_call){ZRT_BACKWARD_END, 0};
    zrt_status st = zrt_declare_step(m->ctx, calls, k);
    free(calls);
    return st;
}

zrt_status gpt2_declare_memory(gpt2_model *m)
{
    size_t sizes[NUM_ACTS], total = 0;
    act_sizes(m, sizes);
    for (int i = 0; i < NUM_ACTS; i++)
        total += sizes[i];
    /* activations and their gradients: two buffers of this size */
    EXAMPLE_CHECK(zrt_declare_buffer(m->ctx, ZRT_CAT_ACTIVATION, total * sizeof(float)));
    EXAMPLE_CHECK(zrt_declare_buffer(m->ctx, ZRT_CAT_ACTIVATION, total * sizeof(float)));
    if (m->dtype != ZRT_F32) /* the f32 copies of live layers */
        EXAMPLE_CHECK(zrt_declare_buffer(m->ctx, ZRT_CAT_ACTIVATION, (size_t)wide_bytes(m)));
    return declare_step(m);
}

zrt_status gpt2_alloc_activations(gpt2_model *m)
{
    size_t bt = (size_t)m->B * m->T;
    m->inputs = calloc(bt, sizeof *m->inputs);
    m->targets = calloc(bt, sizeof *m->targets);
    if (!m->inputs || !m->targets)
        return ZRT_ERR_OUT_OF_MEMORY;
    EXAMPLE_CHECK(alloc_acts(m, &m->acts));
    EXAMPLE_CHECK(alloc_acts(m, &m->grads));
    if (m->dtype == ZRT_F32)
        return ZRT_OK;
    float *wide;
    EXAMPLE_CHECK(zrt_buffer_alloc(m->ctx, (size_t)wide_bytes(m), ZRT_CAT_ACTIVATION,
                                   (void **)&wide));
    m->wide[0] = wide;
    m->wide[1] = m->wide[0] + m->wide_numel[0];
    m->wide_grad[0] = m->wide[1] + m->wide_numel[1];
    m->wide_grad[1] = m->wide_grad[0] + m->wide_numel[0];
    return ZRT_OK;
}

static void free_acts(zrt_ctx *ctx, gpt2_acts *a)
{
    if (!a)
        return;
    zrt_buffer_free(ctx, a->memory);
    free(a);
}

void gpt2_free(gpt2_model *m)
{
    free_acts(m->ctx, m->acts);
    free_acts(m->ctx, m->grads);
    zrt_buffer_free(m->ctx, m->wide[0]);
    free(m->offset);
    free(m->numel);
    free(m->layer);
    free(m->blocks);
    free(m->inputs);
    free(m->targets);
    memset(m, 0, sizeof *m);
}

/* ---- parameters in llm.c's layout ----------------------------------------- */

/* The zrt handle holding llm.c tensor `index`, layer `l` (if per layer). */
static zrt_param handle_of(const gpt2_model *m, int index, int l)
{
    switch (index) {
    case 0: return m->wte;
    case 1: return m->wpe;
    case 14: return m->lnfw;
    case 15: return m->lnfb;
    default: return m->blocks[l * GPT2_BLOCK_TENSORS + (index - 2)];
    }
}

typedef zrt_status (*slice_fn)(gpt2_model *m, zrt_param p, float *slice);

/* A 16-bit copy of parameter p's numel elements, for writes and reads. */
static uint16_t *half_buffer(const gpt2_model *m, zrt_param p)
{
    int64_t n = 0;
    zrt_param_numel(m->ctx, p, &n);
    return malloc((size_t)n * sizeof(uint16_t));
}

static zrt_status write_slice(gpt2_model *m, zrt_param p, float *slice)
{
    if (m->dtype == ZRT_F32)
        return zrt_param_write(m->ctx, p, slice);
    uint16_t *h = half_buffer(m, p);
    if (!h)
        return ZRT_ERR_OUT_OF_MEMORY;
    zrt_status st = zrt_convert(h, m->dtype, slice, ZRT_F32, (size_t)m->numel[p]);
    if (st == ZRT_OK)
        st = zrt_param_write(m->ctx, p, h);
    free(h);
    return st;
}

typedef zrt_status (*read_fn)(zrt_ctx *ctx, zrt_param p, void *dst);

/* Reads p's values (or gradients) as f32, widening 16-bit ones. */
static zrt_status read_widened(gpt2_model *m, zrt_param p, float *slice, read_fn read)
{
    if (m->dtype == ZRT_F32)
        return read(m->ctx, p, slice);
    uint16_t *h = half_buffer(m, p);
    if (!h)
        return ZRT_ERR_OUT_OF_MEMORY;
    zrt_status st = read(m->ctx, p, h);
    if (st == ZRT_OK)
        st = zrt_convert(slice, ZRT_F32, h, m->dtype, (size_t)m->numel[p]);
    free(h);
    return st;
}

static zrt_status read_slice(gpt2_model *m, zrt_param p, float *slice)
{
    return read_widened(m, p, slice, zrt_param_read);
}

/* Visits every (zrt parameter, slice of the llm.c array) pair in llm.c order. */
static zrt_status for_each_slice(gpt2_model *m, float *params, slice_fn fn)
{
    size_t sizes[GPT2_NUM_TENSORS], offset = 0;
    gpt2_tensor_sizes(&m->cfg, sizes);
    int L = m->cfg.num_layers;
    for (int i = 0; i < GPT2_NUM_TENSORS; i++) {
        int slices = gpt2_tensor_is_per_layer(i) ? L : 1;
        size_t per_slice = sizes[i] / (size_t)slices;
        for (int l = 0; l < slices; l++)
            EXAMPLE_CHECK(fn(m, handle_of(m, i, l), params + offset + (size_t)l * per_slice));
        offset += sizes[i];
    }
    return ZRT_OK;
}

zrt_status gpt2_set_params(gpt2_model *m, const float *params)
{
    return for_each_slice(m, (float *)params, write_slice);
}

zrt_status gpt2_get_params(gpt2_model *m, float *params)
{
    return for_each_slice(m, params, read_slice);
}

static zrt_status read_grad_slice(gpt2_model *m, zrt_param p, float *slice)
{
    return read_widened(m, p, slice, zrt_grad_read);
}

zrt_status gpt2_get_grads(gpt2_model *m, float *grads)
{
    return for_each_slice(m, grads, read_grad_slice);
}

/* Standard normal from two uniforms (Box-Muller). */
static float randn(uint64_t *rng)
{
    float u1 = 0.5f * (example_rand_uniform(rng) + 1.0f);
    float u2 = 0.5f * (example_rand_uniform(rng) + 1.0f);
    if (u1 < 1e-7f)
        u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

zrt_status gpt2_init_params(gpt2_model *m, uint64_t seed)
{
    size_t sizes[GPT2_NUM_TENSORS];
    size_t total = gpt2_tensor_sizes(&m->cfg, sizes);
    float *params = malloc(total * sizeof *params);
    if (!params)
        return ZRT_ERR_OUT_OF_MEMORY;
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;
    float residual_scale = 1.0f / sqrtf(2.0f * (float)m->cfg.num_layers);
    size_t offset = 0;
    for (int i = 0; i < GPT2_NUM_TENSORS; i++) {
        int is_layernorm_weight = i == 2 || i == 8 || i == 14;
        int is_matrix = i == 0 || i == 1 || i == 4 || i == 6 || i == 10 || i == 12;
        float std = 0.02f * (i == 6 || i == 12 ? residual_scale : 1.0f);
        for (size_t k = 0; k < sizes[i]; k++)
            params[offset + k] = is_layernorm_weight ? 1.0f
                                 : is_matrix         ? std * randn(&rng)
                                                     : 0.0f;
        offset += sizes[i];
    }
    zrt_status st = gpt2_set_params(m, params);
    free(params);
    return st;
}

/* ---- forward ----------------------------------------------------------------- */

/* Pointers to one block's parameters (or gradients), valid while live. */
static zrt_status param_ptr(gpt2_model *m, zrt_param p, float **out);
static zrt_status grad_ptr(gpt2_model *m, zrt_param p, float **out);

static zrt_status block_tensors(gpt2_model *m, int l, int grads, float **t)
{
    for (int j = 0; j < GPT2_BLOCK_TENSORS; j++) {
        zrt_param p = m->blocks[l * GPT2_BLOCK_TENSORS + j];
        EXAMPLE_CHECK(grads ? grad_ptr(m, p, &t[j]) : param_ptr(m, p, &t[j]));
    }
    return ZRT_OK;
}

static zrt_status block_forward(gpt2_model *m, int l)
{
    int B = m->B, T = m->T, C = m->cfg.channels, NH = m->cfg.num_heads;
    int BT = B * T;
    size_t btc = (size_t)BT * C, bt = (size_t)BT, att = (size_t)B * NH * T * T;
    gpt2_acts *a = m->acts;
    float *w[GPT2_BLOCK_TENSORS];
    EXAMPLE_CHECK(block_tensors(m, l, 0, w));
    const float *residual = l == 0 ? a->encoded : a->residual3 + (l - 1) * btc;
    float *ln1 = a->ln1 + l * btc, *qkv = a->qkv + l * 3 * btc;
    float *atty = a->atty + l * btc, *attproj = a->attproj + l * btc;
    float *residual2 = a->residual2 + l * btc, *ln2 = a->ln2 + l * btc;
    float *fch = a->fch + l * 4 * btc, *fch_gelu = a->fch_gelu + l * 4 * btc;
    float *fcproj = a->fcproj + l * btc, *residual3 = a->residual3 + l * btc;
    layernorm_forward(ln1, a->ln1_mean + l * bt, a->ln1_rstd + l * bt, residual,
                      w[LN1W], w[LN1B], BT, C);
    matmul_forward(qkv, ln1, w[QKVW], w[QKVB], BT, C, 3 * C);
    attention_forward(atty, a->preatt + l * att, a->att + l * att, qkv, B, T, C, NH);
    matmul_forward(attproj, atty, w[ATTPROJW], w[ATTPROJB], BT, C, C);
    residual_forward(residual2, residual, attproj, (int)btc);
    layernorm_forward(ln2, a->ln2_mean + l * bt, a->ln2_rstd + l * bt, residual2,
                      w[LN2W], w[LN2B], BT, C);
    matmul_forward(fch, ln2, w[FCW], w[FCB], BT, C, 4 * C);
    gelu_forward(fch_gelu, fch, (int)(4 * btc));
    matmul_forward(fcproj, fch_gelu, w[FCPROJW], w[FCPROJB], BT, 4 * C, C);
    residual_forward(residual3, residual2, fcproj, (int)btc);
    return ZRT_OK;
}

/* ---- layer calls, and the f32 view of 16-bit parameters ---------------------- */

static int copy_of(int layer)
{
    return layer == 0 ? 0 : 1;
}

/* 16-bit: widens every parameter of the layer into its f32 copy. */
static zrt_status widen_layer(gpt2_model *m, int layer)
{
    for (zrt_param p = 0; p < m->nparams; p++) {
        if (m->layer[p] != layer)
            continue;
        void *data;
        EXAMPLE_CHECK(zrt_param_data(m->ctx, p, &data));
        EXAMPLE_CHECK(zrt_convert(m->wide[copy_of(layer)] + m->offset[p], ZRT_F32, data,
                                  m->dtype, (size_t)m->numel[p]));
    }
    return ZRT_OK;
}

/* 16-bit: adds the layer's f32 gradients into zrt's buffers, rounding once. */
static zrt_status flush_grads(gpt2_model *m, int layer)
{
    for (zrt_param p = 0; p < m->nparams; p++) {
        if (m->layer[p] != layer)
            continue;
        void *grad;
        EXAMPLE_CHECK(zrt_grad_data(m->ctx, p, &grad));
        EXAMPLE_CHECK(zrt_accumulate(grad, m->dtype, m->wide_grad[copy_of(layer)] +
                                     m->offset[p], (size_t)m->numel[p]));
    }
    return ZRT_OK;
}

static zrt_status enter(gpt2_model *m, int layer, int backward)
{
    EXAMPLE_CHECK(backward ? zrt_backward_begin(m->ctx, layer)
                           : zrt_forward_begin(m->ctx, layer));
    if (m->dtype == ZRT_F32)
        return ZRT_OK;
    if (backward)
        memset(m->wide_grad[copy_of(layer)], 0,
               (size_t)m->wide_numel[copy_of(layer)] * sizeof(float));
    return widen_layer(m, layer);
}

static zrt_status leave(gpt2_model *m, int layer, int backward)
{
    if (backward && m->dtype != ZRT_F32)
        EXAMPLE_CHECK(flush_grads(m, layer));
    return backward ? zrt_backward_end(m->ctx, layer) : zrt_forward_end(m->ctx, layer);
}

static zrt_status param_ptr(gpt2_model *m, zrt_param p, float **out)
{
    if (m->dtype != ZRT_F32) {
        *out = m->wide[copy_of(m->layer[p])] + m->offset[p];
        return ZRT_OK;
    }
    return zrt_param_data(m->ctx, p, (void **)out);
}

static zrt_status grad_ptr(gpt2_model *m, zrt_param p, float **out)
{
    if (m->dtype != ZRT_F32) {
        *out = m->wide_grad[copy_of(m->layer[p])] + m->offset[p];
        return ZRT_OK;
    }
    return zrt_grad_data(m->ctx, p, (void **)out);
}

static zrt_status embed(gpt2_model *m)
{
    float *wte, *wpe;
    EXAMPLE_CHECK(enter(m, 0, 0));
    EXAMPLE_CHECK(param_ptr(m, m->wte, &wte));
    EXAMPLE_CHECK(param_ptr(m, m->wpe, &wpe));
    encoder_forward(m->acts->encoded, m->inputs, wte, wpe, m->B, m->T,
                    m->cfg.channels);
    return leave(m, 0, 0);
}

static zrt_status final_layernorm(gpt2_model *m)
{
    int L = m->cfg.num_layers, BT = m->B * m->T, C = m->cfg.channels;
    gpt2_acts *a = m->acts;
    float *w, *b;
    EXAMPLE_CHECK(enter(m, L + 1, 0));
    EXAMPLE_CHECK(param_ptr(m, m->lnfw, &w));
    EXAMPLE_CHECK(param_ptr(m, m->lnfb, &b));
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd,
                      a->residual3 + (size_t)(L - 1) * BT * C, w, b, BT, C);
    return leave(m, L + 1, 0);
}

/* The output head, tied to wte: layer 0 again. */
static zrt_status head(gpt2_model *m)
{
    float *wte;
    EXAMPLE_CHECK(enter(m, 0, 0));
    EXAMPLE_CHECK(param_ptr(m, m->wte, &wte));
    matmul_forward(m->acts->logits, m->acts->lnf, wte, NULL, m->B * m->T,
                   m->cfg.channels, m->cfg.padded_vocab_size);
    return leave(m, 0, 0);
}

static void compute_loss(gpt2_model *m)
{
    int BT = m->B * m->T;
    gpt2_acts *a = m->acts;
    softmax_crossentropy_forward(a->probs, a->losses, a->logits, m->targets, BT,
                                 m->cfg.vocab_size, m->cfg.padded_vocab_size);
    double sum = 0;
    for (int i = 0; i < BT; i++)
        sum += a->losses[i];
    m->loss = (float)(sum / BT);
}

zrt_status gpt2_forward(gpt2_model *m, const int *inputs, const int *targets)
{
    size_t bt = (size_t)m->B * m->T;
    memcpy(m->inputs, inputs, bt * sizeof *inputs);
    m->has_targets = targets != NULL;
    if (targets)
        memcpy(m->targets, targets, bt * sizeof *targets);
    EXAMPLE_CHECK(embed(m));
    for (int l = 0; l < m->cfg.num_layers; l++) {
        EXAMPLE_CHECK(enter(m, 1 + l, 0));
        EXAMPLE_CHECK(block_forward(m, l));
        EXAMPLE_CHECK(leave(m, 1 + l, 0));
    }
    EXAMPLE_CHECK(final_layernorm(m));
    EXAMPLE_CHECK(head(m));
    if (targets)
        compute_loss(m);
    return ZRT_OK;
}

const float *gpt2_logits_at(const gpt2_model *m, int t)
{
    return m->acts->logits + (size_t)t * m->cfg.padded_vocab_size;
}

/* ---- backward ----------------------------------------------------------------- */

static zrt_status block_backward(gpt2_model *m, int l)
{
    int B = m->B, T = m->T, C = m->cfg.channels, NH = m->cfg.num_heads;
    int BT = B * T;
    size_t btc = (size_t)BT * C, bt = (size_t)BT, att = (size_t)B * NH * T * T;
    gpt2_acts *a = m->acts, *g = m->grads;
    float *w[GPT2_BLOCK_TENSORS], *dw[GPT2_BLOCK_TENSORS];
    EXAMPLE_CHECK(block_tensors(m, l, 0, w));
    EXAMPLE_CHECK(block_tensors(m, l, 1, dw));
    const float *residual = l == 0 ? a->encoded : a->residual3 + (l - 1) * btc;
    float *dresidual = l == 0 ? g->encoded : g->residual3 + (l - 1) * btc;
    size_t o1 = l * btc, o3 = l * 3 * btc, o4 = l * 4 * btc, on = l * bt;
    residual_backward(g->residual2 + o1, g->fcproj + o1, g->residual3 + o1, (int)btc);
    matmul_backward(g->fch_gelu + o4, dw[FCPROJW], dw[FCPROJB], g->fcproj + o1,
                    a->fch_gelu + o4, w[FCPROJW], BT, 4 * C, C);
    gelu_backward(g->fch + o4, a->fch + o4, g->fch_gelu + o4, (int)(4 * btc));
    matmul_backward(g->ln2 + o1, dw[FCW], dw[FCB], g->fch + o4, a->ln2 + o1, w[FCW],
                    BT, C, 4 * C);
    layernorm_backward(g->residual2 + o1, dw[LN2W], dw[LN2B], g->ln2 + o1,
                       a->residual2 + o1, w[LN2W], a->ln2_mean + on,
                       a->ln2_rstd + on, BT, C);
    residual_backward(dresidual, g->attproj + o1, g->residual2 + o1, (int)btc);
    matmul_backward(g->atty + o1, dw[ATTPROJW], dw[ATTPROJB], g->attproj + o1,
                    a->atty + o1, w[ATTPROJW], BT, C, C);
    attention_backward(g->qkv + o3, g->preatt + l * att, g->att + l * att,
                       g->atty + o1, a->qkv + o3, a->att + l * att, B, T, C, NH);
    matmul_backward(g->ln1 + o1, dw[QKVW], dw[QKVB], g->qkv + o3, a->ln1 + o1,
                    w[QKVW], BT, C, 3 * C);
    layernorm_backward(dresidual, dw[LN1W], dw[LN1B], g->ln1 + o1, residual,
                       w[LN1W], a->ln1_mean + on, a->ln1_rstd + on, BT, C);
    return ZRT_OK;
}

static zrt_status final_layernorm_backward(gpt2_model *m)
{
    int L = m->cfg.num_layers, BT = m->B * m->T, C = m->cfg.channels;
    size_t last = (size_t)(L - 1) * BT * C;
    gpt2_acts *a = m->acts, *g = m->grads;
    float *w, *dw, *db;
    EXAMPLE_CHECK(enter(m, L + 1, 1));
    EXAMPLE_CHECK(param_ptr(m, m->lnfw, &w));
    EXAMPLE_CHECK(grad_ptr(m, m->lnfw, &dw));
    EXAMPLE_CHECK(grad_ptr(m, m->lnfb, &db));
    layernorm_backward(g->residual3 + last, dw, db, g->lnf, a->residual3 + last, w,
                       a->lnf_mean, a->lnf_rstd, BT, C);
    return leave(m, L + 1, 1);
}

/* Layer 0 stays in backward from the head to the embedding. */
static zrt_status backward_through_model(gpt2_model *m)
{
    int BT = m->B * m->T, C = m->cfg.channels;
    gpt2_acts *a = m->acts, *g = m->grads;
    float *wte, *dwte, *dwpe;
    EXAMPLE_CHECK(enter(m, 0, 1));
    EXAMPLE_CHECK(param_ptr(m, m->wte, &wte));
    EXAMPLE_CHECK(grad_ptr(m, m->wte, &dwte));
    EXAMPLE_CHECK(grad_ptr(m, m->wpe, &dwpe));
    matmul_backward(g->lnf, dwte, NULL, g->logits, a->lnf, wte, BT, C,
                    m->cfg.padded_vocab_size);
    EXAMPLE_CHECK(final_layernorm_backward(m));
    for (int l = m->cfg.num_layers - 1; l >= 0; l--) {
        EXAMPLE_CHECK(enter(m, 1 + l, 1));
        EXAMPLE_CHECK(block_backward(m, l));
        EXAMPLE_CHECK(leave(m, 1 + l, 1));
    }
    encoder_backward(dwte, dwpe, g->encoded, m->inputs, m->B, m->T, C);
    return leave(m, 0, 1);
}

zrt_status gpt2_backward(gpt2_model *m)
{
    if (!m->has_targets)
        return ZRT_ERR_STATE;
    int BT = m->B * m->T;
    float scale; /* fp16: the loss is scaled, so every gradient is */
    EXAMPLE_CHECK(zrt_loss_scale(m->ctx, &scale));
    memset(m->grads->memory, 0, m->grads->count * sizeof(float));
    softmax_crossentropy_backward(m->grads->logits, m->acts->probs, m->targets,
                                  scale * m->loss_grad_factor / (float)BT, BT,
                                  m->cfg.vocab_size,
                                  m->cfg.padded_vocab_size);
    return backward_through_model(m);
}
