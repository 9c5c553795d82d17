/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/common/test_model.h — the synthetic model that tests/mpi's engine
 * and checkpoint suites train: odd tensor sizes, a tensor smaller than the
 * world, a layer without parameters, and a gradient that depends on the
 * parameters and the rank (so the reduction matters).
 *
 * Layers: 0 = {t0 37x5, t1 3}, 1 = {} (no parameters), 2 = {t2 129, t3 2x2},
 * 3 = {t4 300}. t1 has no weight decay.
 *
 * The includer sets world_rank and world_size after MPI_Init, and defines
 *   static int model_overflows(const model *m, int t);
 * which says whether tensor t's next gradient gets an inf (the fp16 tests;
 * or define ZRT_TEST_MODEL_NEVER_OVERFLOWS before including this header for
 * never). Everything here is for Check suites: a failed zrt
 * call returns its status (ZRT_CHECK) or fails the test (ck_assert).
 */
#ifndef ZRT_TEST_MODEL_H
#define ZRT_TEST_MODEL_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "zrt/zrt.h"

enum { NLAYERS = 4, NTENSORS = 5 };
static const int64_t shapes[NTENSORS][2] = {{37, 5}, {3, 1}, {129, 1}, {2, 2}, {300, 1}};
static const int ndims[NTENSORS] = {2, 1, 1, 2, 1};
static const int layer_of[NTENSORS] = {0, 0, 2, 2, 3};
static const int64_t model_numel = 37 * 5 + 3 + 129 + 4 + 300;

static int world_rank, world_size;

typedef struct model {
    zrt_ctx *ctx;
    zrt_param p[NTENSORS];
    zrt_dtype dtype; /* of parameters and gradients: f32, or 16-bit (mixed) */
} model;

#ifdef ZRT_TEST_MODEL_NEVER_OVERFLOWS /* no gradient gets an inf */
static int model_overflows(const model *m, int t)
{
    (void)m;
    (void)t;
    return 0;
}
#else
static int model_overflows(const model *m, int t);
#endif

/* The parameters' dtype a config asks for. */
static inline zrt_dtype dtype_of(const zrt_config *cfg)
{
    return cfg->bf16.enabled ? ZRT_BF16 : cfg->fp16.enabled ? ZRT_F16 : ZRT_F32;
}

static inline float initial_value(int tensor, int64_t i)
{
    return (float)sin(0.37 * (double)(i + 1) + tensor) * 0.5f;
}

/* Registers the five tensors in ctx (not finalized); tensor 0 is named
 * <prefix>0 and has first_dim rows (37 in the model above). */
static inline zrt_status register_params(zrt_ctx *ctx, zrt_dtype dtype,
                                         const char *prefix, int64_t first_dim,
                                         zrt_param *p)
{
    for (int t = 0; t < NTENSORS; t++) {
        char name[16];
        snprintf(name, sizeof name, "%s%d", t == 0 ? prefix : "t", t);
        zrt_param_desc d = {.name = name,
                            .ndim = ndims[t],
                            .shape = {t == 0 ? first_dim : shapes[t][0], shapes[t][1]},
                            .dtype = dtype,
                            .layer = layer_of[t],
                            .no_weight_decay = t == 1};
        ZRT_CHECK(zrt_param_register(ctx, &d, &p[t]));
    }
    return ZRT_OK;
}

/* A context for cfg with the model registered, finalized and initialized. */
static inline zrt_status build_named(model *m, const zrt_config *cfg, const char *prefix,
                                     int64_t first_dim)
{
    ZRT_CHECK(zrt_ctx_create(cfg, &m->ctx));
    m->dtype = dtype_of(cfg);
    ZRT_CHECK(register_params(m->ctx, m->dtype, prefix, first_dim, m->p));
    ZRT_CHECK(zrt_finalize_params(m->ctx));
    for (int t = 0; t < NTENSORS; t++) {
        int64_t n = (t == 0 ? first_dim : shapes[t][0]) * shapes[t][1];
        float *v = malloc((size_t)n * sizeof *v);
        ck_assert_ptr_nonnull(v);
        for (int64_t i = 0; i < n; i++)
            v[i] = initial_value(t, i);
        zrt_status st = zrt_convert(v, m->dtype, v, ZRT_F32, (size_t)n); /* in place */
        if (st == ZRT_OK)
            st = zrt_param_write(m->ctx, m->p[t], v);
        free(v);
        ZRT_CHECK(st);
    }
    return ZRT_OK;
}

static inline zrt_status build(model *m, const zrt_config *cfg)
{
    return build_named(m, cfg, "t", shapes[0][0]);
}

/* grad += sin(param * (rank + 1)) + 0.01 i. 16-bit: computed in f32 from
 * the widened parameters, times the loss scale, and accumulated (rounded
 * once) into the 16-bit gradients; an inf in element 0 where
 * model_overflows says so. */
static inline zrt_status backward_tensor(model *m, int t)
{
    void *p, *g;
    ZRT_CHECK(zrt_param_data(m->ctx, m->p[t], &p));
    ZRT_CHECK(zrt_grad_data(m->ctx, m->p[t], &g));
    int64_t n = shapes[t][0] * shapes[t][1];
    if (m->dtype == ZRT_F32) {
        float *pf = p, *gf = g;
        for (int64_t i = 0; i < n; i++)
            gf[i] += sinf(pf[i] * (float)(world_rank + 1)) + 0.01f * (float)i;
        return ZRT_OK;
    }
    float scale, pf[512], gf[512];
    ck_assert_int_le(n, 512);
    ZRT_CHECK(zrt_loss_scale(m->ctx, &scale));
    ZRT_CHECK(zrt_convert(pf, ZRT_F32, p, m->dtype, (size_t)n));
    for (int64_t i = 0; i < n; i++)
        gf[i] = (sinf(pf[i] * (float)(world_rank + 1)) + 0.01f * (float)i) * scale;
    if (model_overflows(m, t))
        gf[0] = INFINITY;
    return zrt_accumulate(g, m->dtype, gf, (size_t)n);
}

static inline zrt_status backward_layer(model *m, int layer)
{
    ZRT_CHECK(zrt_backward_begin(m->ctx, layer));
    for (int t = 0; t < NTENSORS; t++)
        if (layer_of[t] == layer)
            ZRT_CHECK(backward_tensor(m, t));
    return zrt_backward_end(m->ctx, layer);
}

/* Every layer forward (nothing computed: stage 3 gathers), then backward in
 * reverse; gradients accumulate onto what they hold. */
static inline zrt_status model_forward_backward(model *m)
{
    for (int l = 0; l < NLAYERS; l++) {
        ZRT_CHECK(zrt_forward_begin(m->ctx, l));
        ZRT_CHECK(zrt_forward_end(m->ctx, l));
    }
    for (int l = NLAYERS - 1; l >= 0; l--)
        ZRT_CHECK(backward_layer(m, l));
    return ZRT_OK;
}

/* Every parameter, gathered and concatenated, as f32 (16-bit values
 * widened exactly); the caller frees it. */
static inline float *read_all(model *m)
{
    float *all = malloc((size_t)model_numel * sizeof *all);
    uint16_t *h = malloc((size_t)model_numel * sizeof *h);
    ck_assert(all && h);
    int64_t at = 0;
    for (int t = 0; t < NTENSORS; t++) {
        void *dst = m->dtype == ZRT_F32 ? (void *)(all + at) : (void *)(h + at);
        ck_assert_msg(zrt_param_read(m->ctx, m->p[t], dst) == ZRT_OK, "%s",
                      zrt_last_error(m->ctx));
        at += shapes[t][0] * shapes[t][1];
    }
    if (m->dtype != ZRT_F32)
        ck_assert_int_eq(zrt_convert(all, ZRT_F32, h, m->dtype, (size_t)model_numel),
                         ZRT_OK);
    free(h);
    return all;
}

static inline void assert_same_bits(const float *a, const float *b, const char *what)
{
    for (int64_t i = 0; i < model_numel; i++)
        ck_assert_msg(memcmp(&a[i], &b[i], sizeof(float)) == 0,
                      "%s: element %lld differs (%.9g vs %.9g)", what, (long long)i, a[i],
                      b[i]);
}

/* Checks zrt_step's gradient norm (zrt_last_grad_norm) against the norm of
 * the whole gradient as zrt_grad_read returns it, tensor by tensor, within
 * 1e-5 relative: call after the backward pass; it takes the step. */
static inline void expect_step_norm_is_the_gradients(model *m, const char *what)
{
    double sum = 0;
    for (int t = 0; t < NTENSORS; t++) {
        int64_t n = shapes[t][0] * shapes[t][1];
        float *g = malloc((size_t)n * sizeof *g);
        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(zrt_grad_read(m->ctx, m->p[t], g), ZRT_OK);
        for (int64_t i = 0; i < n; i++)
            sum += (double)g[i] * g[i];
        free(g);
    }
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    ck_assert_int_eq(zrt_step(m->ctx, &hp), ZRT_OK);
    float norm;
    ck_assert_int_eq(zrt_last_grad_norm(m->ctx, &norm), ZRT_OK);
    ck_assert_msg(fabs(norm - sqrt(sum)) <= 1e-5 * sqrt(sum),
                  "%s: norm %.9g, from the gradients %.9g", what, (double)norm,
                  sqrt(sum));
}

/* Checks each tier's and each category's measured peak against the plan. */
static inline void expect_peaks_as_planned(const zrt_mem_stats *ms,
                                           const zrt_mem_plan *plan, const char *what)
{
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        ck_assert_msg(ms->tier_peak[t] == plan->tier_peak[t],
                      "%s, %d ranks: %s peak %lld measured, %lld planned", what,
                      world_size, zrt_tier_str((zrt_tier)t), (long long)ms->tier_peak[t],
                      (long long)plan->tier_peak[t]);
        for (int c = 0; c < ZRT_CAT_COUNT; c++)
            ck_assert_msg(ms->peak[t][c] == plan->peak[t][c],
                          "%s, %d ranks: %s/%s peak %lld measured, %lld planned", what,
                          world_size, zrt_tier_str((zrt_tier)t),
                          zrt_category_str((zrt_category)c), (long long)ms->peak[t][c],
                          (long long)plan->peak[t][c]);
    }
}

/* Builds the model for cfg, failing the test with the context's error. */
static inline model built(const zrt_config *cfg)
{
    model m = {0};
    ck_assert_msg(build(&m, cfg) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    return m;
}

/* Trains `steps` steps of step(m) and returns every parameter, gathered,
 * concatenated (free it). */
static inline float *train_and_read_with(const zrt_config *cfg, int steps,
                                         zrt_status (*step)(model *m))
{
    model m = built(cfg);
    for (int s = 0; s < steps; s++)
        ck_assert_msg(step(&m) == ZRT_OK, "step %d: %s", s, zrt_last_error(m.ctx));
    float *all = read_all(&m);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    return all;
}

/* One training step: zero the gradients, forward and backward, AdamW with
 * lr 0.01. */
static inline zrt_status zero_forward_backward_step(model *m)
{
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    hp.lr = 0.01f;
    ZRT_CHECK(zrt_zero_grad(m->ctx));
    ZRT_CHECK(model_forward_backward(m));
    return zrt_step(m->ctx, &hp);
}

/* A model for zrt_estimate_memory: 2^20 parameters in 8 equal layers. */
static inline zrt_mem_model estimate_model(void)
{
    zrt_mem_model mm;
    ck_assert_int_eq(zrt_mem_model_init(&mm), ZRT_OK);
    mm.param_count = 1 << 20;
    mm.nlayers = 8;
    return mm;
}

/* zrt_estimate_memory refuses cfg on `world` ranks with ZRT_ERR_CONFIG and a
 * sentence holding `sentence`. */
static inline void expect_estimate_refused(const zrt_config *cfg, const zrt_mem_model *mm,
                                           int world, const char *sentence)
{
    zrt_mem_estimate e;
    char why[256];
    ck_assert_int_eq(zrt_estimate_memory(cfg, mm, world, &e, why, sizeof why),
                     ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(why, sentence), "%s", why);
}

#endif
