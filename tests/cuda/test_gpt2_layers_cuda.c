/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/cuda/test_gpt2_layers_cuda.c — every operation of
 * examples/gpt2/cuda/layers_cuda.h, forward and backward, against
 * examples/gpt2/layers.c on random data.
 *
 * Two shapes: small odd sizes (B 2, T 5, C 12, NH 3, V 17, Vp 20), and one
 * past a warp and a block (B 3, T 37, C 80, NH 5, V 301, Vp 320) so the
 * strided loops and the block reductions run more than one round. Gradient
 * buffers start random, not zero, so the "+=" contract is checked too.
 *
 * The measure is max |gpu - cpu| / max |cpu| over a tensor. Bounds, per op:
 *   - exact (0): encoder forward and backward (the same additions in the
 *     same order), residual, the cross-entropy backward, widening and the
 *     16-bit accumulation (kernels.h's rounding, zrt_accumulate's bits);
 *   - 1e-5: layernorm, matmul (CUBLAS_COMPUTE_32F, plain f32: only the
 *     summation order differs), attention, GELU (CUDA's tanhf is within 2
 *     ulp of glibc's), softmax + cross-entropy forward (expf likewise, and
 *     sums in another order). Measured values are printed; f32 rounding
 *     differences over sums this short sit near 1e-7;
 *   - 2e-2: matmul with GPT2_CUDA_MATH_BF16, whose operands cuBLAS rounds to
 *     bf16 (8 significant bits, 2^-9 relative each): an accuracy check that
 *     the tensor-core path computes the same product, not a bit check;
 *   - 5e-3: matmul with GPT2_CUDA_MATH_F16 (fp16 runs; 11 significant bits,
 *     2^-11 relative each; a host emulation measured ~3e-4).
 * Attention: preatt and datt are compared on and below the diagonal only
 * (the GPU writes the masked entries, the CPU leaves them), dpreatt whole.
 * Determinism: the backward reductions run twice from the same state and
 * must give the same bits.
 *
 * Exit status: 0 passed, 1 a check or a CUDA call failed, 77 no CUDA device
 * (cudaGetDeviceCount fails or reports none), which ctest shows as skipped.
 */
#include "layers.h"
#include "layers_cuda.h"
#include "zrt/zrt.h"

#include <cuda_runtime_api.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/test_common.h"

static gpt2_cuda gx;
static test_rng rng = {0x2545f4914f6cdd1dull};

/* A failed CUDA call or layer launch ends the test. */
#define CU(call)                                                                         \
    do {                                                                                 \
        int rc_ = (int)(call);                                                           \
        if (rc_ != 0)                                                                    \
            TEST_FATAL("%s: %s", #call,                                                  \
                       gx.error[0] ? gx.error : cudaGetErrorString((cudaError_t)rc_));   \
    } while (0)

typedef struct shape {
    int B, T, C, NH, V, Vp;
} shape;

/* ---- host and device buffers ------------------------------------------------ */

static float *host_random(size_t n, float scale) /* in [-scale, scale) */
{
    float *h = test_xmalloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = scale * test_rng_unit(&rng);
    return h;
}

static void *dev_of(const void *host, size_t bytes)
{
    void *d = NULL;
    CU(cudaMalloc(&d, bytes ? bytes : 1));
    if (host && bytes)
        CU(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice));
    return d;
}

static float *dev_f(const float *host, size_t n)
{
    return dev_of(host, n * sizeof(float));
}

/* Waits for the stream and copies n floats back into a new host array. */
static float *back(const float *d, size_t n)
{
    float *h = test_xmalloc(n * sizeof *h);
    CU(cudaStreamSynchronize((cudaStream_t)gx.stream));
    CU(cudaMemcpy(h, d, n * sizeof *h, cudaMemcpyDeviceToHost));
    return h;
}

/* ---- comparison ---------------------------------------------------------------- */

/* max |got - want| / max |want| over n elements; NaN anywhere counts as inf. */
static double rel_err(const float *got, const float *want, size_t n)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) != isnan(want[i]))
            return INFINITY;
        double d = fabs((double)got[i] - (double)want[i]);
        diff = d > diff ? d : diff;
        scale = fabs((double)want[i]) > scale ? fabs((double)want[i]) : scale;
    }
    return scale > 0 ? diff / scale : diff;
}

static void expect(const char *what, const shape *s, double err, double tol)
{
    int ok = err <= tol;
    test_checks++;
    printf("%s %-34s B%d T%d C%d: rel err %.3g (bound %.0e)\n", ok ? "ok  " : "FAIL",
           what, s->B, s->T, s->C, err, tol);
    if (!ok)
        test_failures++;
}

/* Compares a device result with the CPU's. */
static void check(const char *what, const shape *s, float *d_got, float *want, size_t n,
                  double tol)
{
    float *got = back(d_got, n);
    expect(what, s, rel_err(got, want, n), tol);
    free(got);
}

/* The lower triangle (t2 <= t) of (B,NH,T,T) score matrices only. */
static void check_causal(const char *what, const shape *s, float *d_got, float *want,
                         double tol)
{
    size_t rows = (size_t)s->B * s->NH * s->T, T = (size_t)s->T;
    float *got = back(d_got, rows * T);
    float *g = malloc(rows * T * sizeof *g), *w = malloc(rows * T * sizeof *w);
    if (!g || !w)
        exit(1);
    size_t k = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t t2 = 0; t2 <= r % T; t2++, k++) {
            g[k] = got[r * T + t2];
            w[k] = want[r * T + t2];
        }
    expect(what, s, rel_err(g, w, k), tol);
    free(g);
    free(w);
    free(got);
}

static int same_bits(const float *d_a, const float *d_b, size_t n)
{
    float *a = back(d_a, n), *b = back(d_b, n);
    int same = memcmp(a, b, n * sizeof *a) == 0;
    free(a);
    free(b);
    return same;
}

static void expect_deterministic(const char *what, const shape *s, int same)
{
    test_checks++;
    printf("%s %-34s B%d T%d C%d: %s\n", same ? "ok  " : "FAIL", what, s->B, s->T, s->C,
           same ? "same bits on a second run" : "a second run differs");
    if (!same)
        test_failures++;
}

static int *random_tokens(size_t n, int below)
{
    int *t = test_xmalloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++)
        t[i] = (int)((test_rng_unit(&rng) + 1.0f) * 0.5f * (float)below) % below;
    return t;
}

/* ---- the operations ------------------------------------------------------------- */

static void test_encoder(const shape *s)
{
    size_t BT = (size_t)s->B * s->T, C = (size_t)s->C;
    int *inp = random_tokens(BT, s->V);
    int *d_inp = dev_of(inp, BT * sizeof *inp);
    float *wte = host_random((size_t)s->Vp * C, 1),
          *wpe = host_random((size_t)s->T * C, 1);
    float *out = host_random(BT * C, 1), *d_wte = dev_f(wte, (size_t)s->Vp * C);
    float *d_wpe = dev_f(wpe, (size_t)s->T * C), *d_out = dev_f(NULL, BT * C);
    encoder_forward(out, inp, wte, wpe, s->B, s->T, s->C);
    CU(gpt2_cuda_encoder_forward(&gx, d_out, d_inp, d_wte, d_wpe, s->B, s->T, s->C));
    check("encoder_forward", s, d_out, out, BT * C, 0);
    /* backward into the (random) tables as gradients */
    float *dout = host_random(BT * C, 1), *d_dout = dev_f(dout, BT * C);
    float *d_wte2 = dev_f(wte, (size_t)s->Vp * C), *d_wpe2 = dev_f(wpe, (size_t)s->T * C);
    CU(gpt2_cuda_encoder_backward(&gx, d_wte, d_wpe, d_dout, d_inp, s->B, s->T, s->C));
    CU(gpt2_cuda_encoder_backward(&gx, d_wte2, d_wpe2, d_dout, d_inp, s->B, s->T, s->C));
    encoder_backward(wte, wpe, dout, inp, s->B, s->T, s->C);
    check("encoder_backward dwte", s, d_wte, wte, (size_t)s->Vp * C, 0);
    check("encoder_backward dwpe", s, d_wpe, wpe, (size_t)s->T * C, 0);
    expect_deterministic("encoder_backward", s,
                         same_bits(d_wte, d_wte2, (size_t)s->Vp * C) &&
                             same_bits(d_wpe, d_wpe2, (size_t)s->T * C));
    free(inp), free(wte), free(wpe), free(out), free(dout);
    cudaFree(d_inp), cudaFree(d_wte), cudaFree(d_wpe), cudaFree(d_out), cudaFree(d_dout);
    cudaFree(d_wte2), cudaFree(d_wpe2);
}

static void test_layernorm(const shape *s)
{
    int N = s->B * s->T, C = s->C;
    size_t NC = (size_t)N * C;
    float *inp = host_random(NC, 2), *w = host_random((size_t)C, 1);
    float *b = host_random((size_t)C, 1), *out = host_random(NC, 1);
    float *mean = host_random((size_t)N, 1), *rstd = host_random((size_t)N, 1);
    float *d_inp = dev_f(inp, NC), *d_w = dev_f(w, (size_t)C), *d_b = dev_f(b, (size_t)C);
    float *d_out = dev_f(NULL, NC), *d_mean = dev_f(NULL, (size_t)N);
    float *d_rstd = dev_f(NULL, (size_t)N);
    layernorm_forward(out, mean, rstd, inp, w, b, N, C);
    CU(gpt2_cuda_layernorm_forward(&gx, d_out, d_mean, d_rstd, d_inp, d_w, d_b, N, C));
    check("layernorm_forward out", s, d_out, out, NC, 1e-5);
    check("layernorm_forward mean", s, d_mean, mean, (size_t)N, 1e-5);
    check("layernorm_forward rstd", s, d_rstd, rstd, (size_t)N, 1e-5);
    /* backward from the CPU's mean and rstd, into random gradients */
    CU(cudaMemcpy(d_mean, mean, (size_t)N * sizeof(float), cudaMemcpyHostToDevice));
    CU(cudaMemcpy(d_rstd, rstd, (size_t)N * sizeof(float), cudaMemcpyHostToDevice));
    float *dout = host_random(NC, 1), *dinp = host_random(NC, 1);
    float *dw = host_random((size_t)C, 1), *db = host_random((size_t)C, 1);
    float *d_dout = dev_f(dout, NC), *d_dinp = dev_f(dinp, NC);
    float *d_dw = dev_f(dw, (size_t)C), *d_db = dev_f(db, (size_t)C);
    float *d_dw2 = dev_f(dw, (size_t)C), *d_db2 = dev_f(db, (size_t)C);
    float *d_dinp2 = dev_f(dinp, NC);
    layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    CU(gpt2_cuda_layernorm_backward(&gx, d_dinp, d_dw, d_db, d_dout, d_inp, d_w, d_mean,
                                    d_rstd, N, C));
    CU(gpt2_cuda_layernorm_backward(&gx, d_dinp2, d_dw2, d_db2, d_dout, d_inp, d_w,
                                    d_mean, d_rstd, N, C));
    check("layernorm_backward dinp", s, d_dinp, dinp, NC, 1e-5);
    check("layernorm_backward dw", s, d_dw, dw, (size_t)C, 1e-5);
    check("layernorm_backward db", s, d_db, db, (size_t)C, 1e-5);
    expect_deterministic("layernorm_backward", s,
                         same_bits(d_dinp, d_dinp2, NC) &&
                             same_bits(d_dw, d_dw2, (size_t)C) &&
                             same_bits(d_db, d_db2, (size_t)C));
    free(inp), free(w), free(b), free(out), free(mean), free(rstd);
    free(dout), free(dinp), free(dw), free(db);
    cudaFree(d_inp), cudaFree(d_w), cudaFree(d_b), cudaFree(d_out), cudaFree(d_mean);
    cudaFree(d_rstd), cudaFree(d_dout), cudaFree(d_dinp), cudaFree(d_dw), cudaFree(d_db);
    cudaFree(d_dw2), cudaFree(d_db2), cudaFree(d_dinp2);
}

/* out (N,OC) = inp (N,C) W^T + bias, and its backward, with and without a
 * bias, under the cuBLAS math `math` and bound `tol`. */
static void test_matmul(const shape *s, int C, int OC, gpt2_cuda_math math, double tol,
                        const char *tag)
{
    char what[64];
    int N = s->B * s->T;
    size_t NC = (size_t)N * C, NO = (size_t)N * OC, WC = (size_t)OC * C;
    gx.math = math;
    float *inp = host_random(NC, 1), *w = host_random(WC, 1);
    float *bias = host_random((size_t)OC, 1), *out = host_random(NO, 1);
    float *d_inp = dev_f(inp, NC), *d_w = dev_f(w, WC), *d_bias = dev_f(bias, (size_t)OC);
    float *d_out = dev_f(NULL, NO);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        matmul_forward(out, inp, w, with_bias ? bias : NULL, N, C, OC);
        CU(gpt2_cuda_matmul_forward(&gx, d_out, d_inp, d_w, with_bias ? d_bias : NULL, N,
                                    C, OC));
        snprintf(what, sizeof what, "matmul_forward %s%s", tag,
                 with_bias ? "" : " nobias");
        check(what, s, d_out, out, NO, tol);
    }
    float *dout = host_random(NO, 1), *dinp = host_random(NC, 1);
    float *dw = host_random(WC, 1), *dbias = host_random((size_t)OC, 1);
    float *d_dout = dev_f(dout, NO), *d_dinp = dev_f(dinp, NC), *d_dw = dev_f(dw, WC);
    float *d_dbias = dev_f(dbias, (size_t)OC), *d_dbias2 = dev_f(dbias, (size_t)OC);
    float *d_dinp2 = dev_f(dinp, NC), *d_dw2 = dev_f(dw, WC);
    matmul_backward(dinp, dw, dbias, dout, inp, w, N, C, OC);
    CU(gpt2_cuda_matmul_backward(&gx, d_dinp, d_dw, d_dbias, d_dout, d_inp, d_w, N, C,
                                 OC));
    CU(gpt2_cuda_matmul_backward(&gx, d_dinp2, d_dw2, d_dbias2, d_dout, d_inp, d_w, N, C,
                                 OC));
    snprintf(what, sizeof what, "matmul_backward dinp %s", tag);
    check(what, s, d_dinp, dinp, NC, tol);
    snprintf(what, sizeof what, "matmul_backward dw %s", tag);
    check(what, s, d_dw, dw, WC, tol);
    snprintf(what, sizeof what, "matmul_backward dbias %s", tag);
    check(what, s, d_dbias, dbias, (size_t)OC, 1e-5); /* a kernel, f32 always */
    snprintf(what, sizeof what, "matmul_backward %s", tag);
    expect_deterministic(what, s,
                         same_bits(d_dinp, d_dinp2, NC) && same_bits(d_dw, d_dw2, WC) &&
                             same_bits(d_dbias, d_dbias2, (size_t)OC));
    gx.math = GPT2_CUDA_MATH_F32;
    free(inp), free(w), free(bias), free(out), free(dout), free(dinp), free(dw),
        free(dbias);
    cudaFree(d_inp), cudaFree(d_w), cudaFree(d_bias), cudaFree(d_out), cudaFree(d_dout);
    cudaFree(d_dinp), cudaFree(d_dw), cudaFree(d_dbias), cudaFree(d_dbias2);
    cudaFree(d_dinp2), cudaFree(d_dw2);
}

static void test_attention(const shape *s)
{
    int B = s->B, T = s->T, C = s->C, NH = s->NH;
    size_t BT = (size_t)B * T, qkv = BT * 3 * C, att = (size_t)B * NH * T * T;
    float *inp = host_random(qkv, 2), *out = host_random(BT * C, 1);
    float *preatt = calloc(att, sizeof *preatt), *at = calloc(att, sizeof *at);
    float *d_inp = dev_f(inp, qkv), *d_out = dev_f(NULL, BT * C);
    float *d_preatt = dev_f(NULL, att), *d_att = dev_f(NULL, att);
    float *d_scratch = dev_f(NULL, gpt2_cuda_attention_scratch(B, T, C));
    if (!preatt || !at)
        exit(1);
    attention_forward(out, preatt, at, inp, B, T, C, NH);
    CU(gpt2_cuda_attention_forward(&gx, d_out, d_preatt, d_att, d_inp, d_scratch, B, T, C,
                                   NH));
    check("attention_forward out", s, d_out, out, BT * C, 1e-5);
    check_causal("attention_forward preatt", s, d_preatt, preatt, 1e-5);
    check("attention_forward att", s, d_att, at, att, 1e-5);
    /* backward from the CPU's att, into random gradients */
    CU(cudaMemcpy(d_att, at, att * sizeof(float), cudaMemcpyHostToDevice));
    float *dout = host_random(BT * C, 1), *dinp = host_random(qkv, 1);
    float *dpreatt = host_random(att, 1), *datt = host_random(att, 1);
    float *d_dout = dev_f(dout, BT * C), *d_dinp = dev_f(dinp, qkv);
    float *d_dpreatt = dev_f(dpreatt, att), *d_datt = dev_f(datt, att);
    /* above the diagonal the CPU leaves dpreatt as it was; the GPU sets 0:
     * start the CPU's at 0 there, as the model's are */
    for (size_t r = 0; r < (size_t)B * NH * T; r++)
        for (int t2 = (int)(r % T) + 1; t2 < T; t2++)
            dpreatt[r * T + t2] = 0.0f;
    attention_backward(dinp, dpreatt, datt, dout, inp, at, B, T, C, NH);
    CU(gpt2_cuda_attention_backward(&gx, d_dinp, d_dpreatt, d_datt, d_dout, d_inp, d_att,
                                    d_scratch, B, T, C, NH));
    check("attention_backward dinp", s, d_dinp, dinp, qkv, 1e-5);
    check("attention_backward dpreatt", s, d_dpreatt, dpreatt, att, 1e-5);
    check_causal("attention_backward datt", s, d_datt, datt, 1e-5);
    free(inp), free(out), free(preatt), free(at), free(dout), free(dinp), free(dpreatt);
    free(datt);
    cudaFree(d_inp), cudaFree(d_out), cudaFree(d_preatt), cudaFree(d_att);
    cudaFree(d_scratch), cudaFree(d_dout), cudaFree(d_dinp), cudaFree(d_dpreatt);
    cudaFree(d_datt);
}

static void test_elementwise(const shape *s)
{
    size_t n = (size_t)s->B * s->T * 4 * s->C;
    float *inp = host_random(n, 4), *out = host_random(n, 1), *b = host_random(n, 1);
    float *d_inp = dev_f(inp, n), *d_out = dev_f(NULL, n), *d_b = dev_f(b, n);
    gelu_forward(out, inp, (int)n);
    CU(gpt2_cuda_gelu_forward(&gx, d_out, d_inp, n));
    check("gelu_forward", s, d_out, out, n, 1e-5);
    float *dout = host_random(n, 1), *dinp = host_random(n, 1);
    float *d_dout = dev_f(dout, n), *d_dinp = dev_f(dinp, n);
    gelu_backward(dinp, inp, dout, (int)n);
    CU(gpt2_cuda_gelu_backward(&gx, d_dinp, d_inp, d_dout, n));
    check("gelu_backward", s, d_dinp, dinp, n, 1e-5);
    residual_forward(out, inp, b, (int)n);
    CU(gpt2_cuda_residual_forward(&gx, d_out, d_inp, d_b, n));
    check("residual_forward", s, d_out, out, n, 0);
    CU(cudaMemcpy(d_dinp, dinp, n * sizeof(float), cudaMemcpyHostToDevice));
    residual_backward(dinp, b, dout, (int)n);
    CU(gpt2_cuda_residual_backward(&gx, d_dinp, d_b, d_dout, n));
    check("residual_backward da", s, d_dinp, dinp, n, 0);
    check("residual_backward db", s, d_b, b, n, 0);
    free(inp), free(out), free(b), free(dout), free(dinp);
    cudaFree(d_inp), cudaFree(d_out), cudaFree(d_b), cudaFree(d_dout), cudaFree(d_dinp);
}

static void test_crossentropy(const shape *s)
{
    int N = s->B * s->T, V = s->V, Vp = s->Vp;
    size_t NV = (size_t)N * Vp;
    float *logits = host_random(NV, 4), *probs = host_random(NV, 1);
    float *losses = host_random((size_t)N, 1);
    int *targets = random_tokens((size_t)N, V);
    float *d_logits = dev_f(logits, NV), *d_probs = dev_f(NULL, NV);
    float *d_losses = dev_f(NULL, (size_t)N);
    int *d_targets = dev_of(targets, (size_t)N * sizeof *targets);
    softmax_crossentropy_forward(probs, losses, logits, targets, N, V, Vp);
    CU(gpt2_cuda_softmax_crossentropy_forward(&gx, d_probs, d_losses, d_logits, d_targets,
                                              N, V, Vp));
    check("softmax_crossentropy_forward probs", s, d_probs, probs, NV, 1e-5);
    check("softmax_crossentropy_forward losses", s, d_losses, losses, (size_t)N, 1e-5);
    CU(cudaMemcpy(d_probs, probs, NV * sizeof(float), cudaMemcpyHostToDevice));
    float *dlogits = host_random(NV, 1), *d_dlogits = dev_f(dlogits, NV);
    softmax_crossentropy_backward(dlogits, probs, targets, 0.37f, N, V, Vp);
    CU(gpt2_cuda_softmax_crossentropy_backward(&gx, d_dlogits, d_probs, d_targets, 0.37f,
                                               N, V, Vp));
    check("softmax_crossentropy_backward", s, d_dlogits, dlogits, NV, 0);
    free(logits), free(probs), free(losses), free(targets), free(dlogits);
    cudaFree(d_logits), cudaFree(d_probs), cudaFree(d_losses), cudaFree(d_targets);
    cudaFree(d_dlogits);
}

/* Widening and the 16-bit accumulation against zrt_convert / zrt_accumulate. */
static void test_half(const shape *s)
{
    size_t n = 1000 + (size_t)s->C;
    for (int is_bf16 = 0; is_bf16 < 2; is_bf16++) {
        zrt_dtype dt = is_bf16 ? ZRT_BF16 : ZRT_F16;
        float *src = host_random(n, 3), *add = host_random(n, 1);
        uint16_t *half = malloc(n * sizeof *half);
        float *wide = malloc(n * sizeof *wide), *after = malloc(n * sizeof *after);
        if (!half || !wide || !after ||
            zrt_convert(half, dt, src, ZRT_F32, n) != ZRT_OK ||
            zrt_convert(wide, ZRT_F32, half, dt, n) != ZRT_OK)
            exit(1);
        uint16_t *d_half = dev_of(half, n * sizeof *half);
        float *d_wide = dev_f(NULL, n), *d_add = dev_f(add, n);
        CU(gpt2_cuda_widen(&gx, d_wide, d_half, n, is_bf16));
        check(is_bf16 ? "widen bf16" : "widen fp16", s, d_wide, wide, n, 0);
        if (zrt_accumulate(half, dt, add, n) != ZRT_OK ||
            zrt_convert(after, ZRT_F32, half, dt, n) != ZRT_OK)
            exit(1);
        CU(gpt2_cuda_accumulate_half(&gx, d_half, d_add, n, is_bf16));
        CU(gpt2_cuda_widen(&gx, d_wide, d_half, n, is_bf16));
        check(is_bf16 ? "accumulate_half bf16" : "accumulate_half fp16", s, d_wide, after,
              n, 0);
        free(src), free(add), free(half), free(wide), free(after);
        cudaFree(d_half), cudaFree(d_wide), cudaFree(d_add);
    }
}

static void run_shape(const shape *s)
{
    test_encoder(s);
    test_layernorm(s);
    test_matmul(s, s->C, 3 * s->C, GPT2_CUDA_MATH_F32, 1e-5, "f32");
    test_matmul(s, 4 * s->C, s->C, GPT2_CUDA_MATH_F32, 1e-5, "f32");
    test_matmul(s, s->C, 3 * s->C, GPT2_CUDA_MATH_BF16, 2e-2, "bf16");
    /* the fp16 runs' products (CUBLAS_COMPUTE_32F_FAST_16F, which model.c
     * picks for fp16 and nothing else tested), and the output head's shape
     * (OC = Vp, the tied wte as W) */
    test_matmul(s, s->C, 3 * s->C, GPT2_CUDA_MATH_F16, 5e-3, "f16");
    test_matmul(s, s->C, s->Vp, GPT2_CUDA_MATH_F32, 1e-5, "f32 head");
    test_attention(s);
    test_elementwise(s);
    test_crossentropy(s);
    test_half(s);
}

int main(void)
{
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        printf("no CUDA device: skipped\n");
        return ZRT_TEST_SKIP;
    }
    cudaStream_t stream;
    CU(cudaStreamCreate(&stream));
    CU(gpt2_cuda_init(&gx, stream, GPT2_CUDA_MATH_F32));
    const shape shapes[] = {{2, 5, 12, 3, 17, 20}, {3, 37, 80, 5, 301, 320}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        run_shape(&shapes[i]);
    CU(cudaStreamSynchronize(stream));
    gpt2_cuda_deinit(&gx);
    cudaStreamDestroy(stream);
    return test_exit_code("test_gpt2_layers_cuda");
}
