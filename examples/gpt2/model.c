/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/gpt2/model.c — GPT-2 forward and backward through zrt (see
 * model.h for the layer mapping, layers.c for the operations).
 *
 * The step calls its operations through a table (struct gpt2_ops): layers.c
 * on the cpu backend, examples/gpt2/cuda on the cuda backend. The logic
 * below is the same for both; only the tables know where memory lives.
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/example_args.h"
#include "layers.h"
#if ZRT_GPT2_CUDA
#include "layers_cuda.h"
#endif

/* Block tensors, in llm.c order (tensor index = 2 + these). */
enum {
    LN1W,
    LN1B,
    QKVW,
    QKVB,
    ATTPROJW,
    ATTPROJB,
    LN2W,
    LN2B,
    FCW,
    FCB,
    FCPROJW,
    FCPROJB
};

/* Activations of one forward pass, as in llm.c (L = layers). */
struct gpt2_acts {
    float *encoded;                   /* (B,T,C) */
    float *ln1, *ln1_mean, *ln1_rstd; /* (L,B,T,C), (L,B,T), (L,B,T) */
    float *qkv;                       /* (L,B,T,3C) */
    float *atty;                      /* (L,B,T,C) */
    float *preatt, *att;              /* (L,B,NH,T,T) */
    float *attproj, *residual2;       /* (L,B,T,C) */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;            /* (L,B,T,4C) */
    float *fcproj, *residual3;        /* (L,B,T,C) */
    float *lnf, *lnf_mean, *lnf_rstd; /* (B,T,C), (B,T), (B,T) */
    float *logits, *probs;            /* (B,T,Vp) */
    float *losses;                    /* (B,T) */
    float *memory;                    /* one block holding all of the above */
    size_t count;                     /* floats in memory */
};

#define NUM_ACTS 23

/* Element counts of the activations, in struct order. */
static void act_sizes(const gpt2_model *m, size_t s[NUM_ACTS])
{
    size_t B = (size_t)m->B, T = (size_t)m->T, C = (size_t)m->cfg.channels;
    size_t L = (size_t)m->cfg.num_layers, NH = (size_t)m->cfg.num_heads;
    size_t Vp = (size_t)m->cfg.padded_vocab_size, BT = B * T;
    size_t sizes[NUM_ACTS] = {BT * C, /* encoded */
                              L * BT * C,
                              L * BT,
                              L * BT,         /* ln1, mean, rstd */
                              L * BT * 3 * C, /* qkv */
                              L * BT * C,     /* atty */
                              L * B * NH * T * T,
                              L * B * NH * T * T, /* preatt, att */
                              L * BT * C,
                              L * BT * C, /* attproj, residual2 */
                              L * BT * C,
                              L * BT,
                              L * BT, /* ln2, mean, rstd */
                              L * BT * 4 * C,
                              L * BT * 4 * C, /* fch, fch_gelu */
                              L * BT * C,
                              L * BT * C, /* fcproj, residual3 */
                              BT * C,
                              BT,
                              BT, /* lnf, mean, rstd */
                              BT * Vp,
                              BT * Vp, /* logits, probs */
                              BT};     /* losses */
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
    zrt_status st = zrt_buffer_alloc(m->ctx, total * sizeof(float), ZRT_CAT_ACTIVATION,
                                     (void **)&a->memory);
    if (st != ZRT_OK) {
        free(a);
        return st;
    }
    float **slots[NUM_ACTS] = {&a->encoded,   &a->ln1,       &a->ln1_mean, &a->ln1_rstd,
                               &a->qkv,       &a->atty,      &a->preatt,   &a->att,
                               &a->attproj,   &a->residual2, &a->ln2,      &a->ln2_mean,
                               &a->ln2_rstd,  &a->fch,       &a->fch_gelu, &a->fcproj,
                               &a->residual3, &a->lnf,       &a->lnf_mean, &a->lnf_rstd,
                               &a->logits,    &a->probs,     &a->losses};
    float *next = a->memory;
    for (int i = 0; i < NUM_ACTS; i++) {
        *slots[i] = next;
        next += sizes[i];
    }
    a->count = total;
    *out = a;
    return ZRT_OK;
}

/* cuda: the device copies of inputs and targets, (B, T) ints each. */
static size_t inputs_bytes(const gpt2_model *m)
{
    return 2 * (size_t)m->B * m->T * sizeof(int);
}

/* ---- the operations of a step, per backend ------------------------------------ */

/* layers.h's functions, plus the memory chores of a step. Pointers are where
 * the backend keeps tensors (device memory on cuda). Each returns ZRT_OK, or
 * a status after printing what failed. */
typedef struct gpt2_ops {
    zrt_status (*encoder_forward)(gpt2_model *m, float *out, const int *inp,
                                  const float *wte, const float *wpe, int B, int T,
                                  int C);
    zrt_status (*encoder_backward)(gpt2_model *m, float *dwte, float *dwpe,
                                   const float *dout, const int *inp, int B, int T,
                                   int C);
    zrt_status (*layernorm_forward)(gpt2_model *m, float *out, float *mean, float *rstd,
                                    const float *inp, const float *w, const float *b,
                                    int N, int C);
    zrt_status (*layernorm_backward)(gpt2_model *m, float *dinp, float *dw, float *db,
                                     const float *dout, const float *inp, const float *w,
                                     const float *mean, const float *rstd, int N, int C);
    zrt_status (*matmul_forward)(gpt2_model *m, float *out, const float *inp,
                                 const float *w, const float *bias, int N, int C, int OC);
    zrt_status (*matmul_backward)(gpt2_model *m, float *dinp, float *dw, float *dbias,
                                  const float *dout, const float *inp, const float *w,
                                  int N, int C, int OC);
    zrt_status (*attention_forward)(gpt2_model *m, float *out, float *preatt, float *att,
                                    const float *inp, int B, int T, int C, int NH);
    zrt_status (*attention_backward)(gpt2_model *m, float *dinp, float *dpreatt,
                                     float *datt, const float *dout, const float *inp,
                                     const float *att, int B, int T, int C, int NH);
    zrt_status (*gelu_forward)(gpt2_model *m, float *out, const float *inp, size_t n);
    zrt_status (*gelu_backward)(gpt2_model *m, float *dinp, const float *inp,
                                const float *dout, size_t n);
    zrt_status (*residual_forward)(gpt2_model *m, float *out, const float *a,
                                   const float *b, size_t n);
    zrt_status (*residual_backward)(gpt2_model *m, float *da, float *db,
                                    const float *dout, size_t n);
    zrt_status (*xent_forward)(gpt2_model *m, float *probs, float *losses,
                               const float *logits, const int *targets, int N, int V,
                               int Vp);
    zrt_status (*xent_backward)(gpt2_model *m, float *dlogits, const float *probs,
                                const int *targets, float scale, int N, int V, int Vp);
    /* dst = 0 */
    zrt_status (*zero)(gpt2_model *m, void *dst, size_t bytes);
    /* dst (backend memory) = host src */
    zrt_status (*upload)(gpt2_model *m, void *dst, const void *src, size_t bytes);
    /* A host view of bytes at src: src itself, or a copy in m->host_view
     * once the queued work is done. NULL if the copy failed. */
    const void *(*host_view)(const gpt2_model *m, const void *src, size_t bytes);
    /* dst (n f32) = widen(src (n of m->dtype)); dst 16-bit += src (n f32) */
    zrt_status (*widen)(gpt2_model *m, float *dst, const void *src, size_t n);
    zrt_status (*accumulate)(gpt2_model *m, void *dst, const float *src, size_t n);
    /* returns when the queued work is done */
    zrt_status (*wait)(gpt2_model *m);
} gpt2_ops;

/* -- cpu: layers.c, on host memory -- */

/* layers.c's functions return nothing and cannot fail: a cpu entry makes the
 * call and returns ZRT_OK. The model is named only to mark it used. */
#define CPU_CALL(m, call) ((void)(m), (call), ZRT_OK)

static zrt_status cpu_encoder_forward(gpt2_model *m, float *out, const int *inp,
                                      const float *wte, const float *wpe, int B, int T,
                                      int C)
{
    return CPU_CALL(m, encoder_forward(out, inp, wte, wpe, B, T, C));
}

static zrt_status cpu_encoder_backward(gpt2_model *m, float *dwte, float *dwpe,
                                       const float *dout, const int *inp, int B, int T,
                                       int C)
{
    return CPU_CALL(m, encoder_backward(dwte, dwpe, dout, inp, B, T, C));
}

static zrt_status cpu_layernorm_forward(gpt2_model *m, float *out, float *mean,
                                        float *rstd, const float *inp, const float *w,
                                        const float *b, int N, int C)
{
    return CPU_CALL(m, layernorm_forward(out, mean, rstd, inp, w, b, N, C));
}

static zrt_status cpu_layernorm_backward(gpt2_model *m, float *dinp, float *dw, float *db,
                                         const float *dout, const float *inp,
                                         const float *w, const float *mean,
                                         const float *rstd, int N, int C)
{
    return CPU_CALL(m, layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C));
}

static zrt_status cpu_matmul_forward(gpt2_model *m, float *out, const float *inp,
                                     const float *w, const float *bias, int N, int C,
                                     int OC)
{
    return CPU_CALL(m, matmul_forward(out, inp, w, bias, N, C, OC));
}

static zrt_status cpu_matmul_backward(gpt2_model *m, float *dinp, float *dw, float *dbias,
                                      const float *dout, const float *inp, const float *w,
                                      int N, int C, int OC)
{
    return CPU_CALL(m, matmul_backward(dinp, dw, dbias, dout, inp, w, N, C, OC));
}

static zrt_status cpu_attention_forward(gpt2_model *m, float *out, float *preatt,
                                        float *att, const float *inp, int B, int T, int C,
                                        int NH)
{
    return CPU_CALL(m, attention_forward(out, preatt, att, inp, B, T, C, NH));
}

static zrt_status cpu_attention_backward(gpt2_model *m, float *dinp, float *dpreatt,
                                         float *datt, const float *dout, const float *inp,
                                         const float *att, int B, int T, int C, int NH)
{
    return CPU_CALL(m,
                    attention_backward(dinp, dpreatt, datt, dout, inp, att, B, T, C, NH));
}

static zrt_status cpu_gelu_forward(gpt2_model *m, float *out, const float *inp, size_t n)
{
    return CPU_CALL(m, gelu_forward(out, inp, (int)n));
}

static zrt_status cpu_gelu_backward(gpt2_model *m, float *dinp, const float *inp,
                                    const float *dout, size_t n)
{
    return CPU_CALL(m, gelu_backward(dinp, inp, dout, (int)n));
}

static zrt_status cpu_residual_forward(gpt2_model *m, float *out, const float *a,
                                       const float *b, size_t n)
{
    return CPU_CALL(m, residual_forward(out, a, b, (int)n));
}

static zrt_status cpu_residual_backward(gpt2_model *m, float *da, float *db,
                                        const float *dout, size_t n)
{
    return CPU_CALL(m, residual_backward(da, db, dout, (int)n));
}

static zrt_status cpu_xent_forward(gpt2_model *m, float *probs, float *losses,
                                   const float *logits, const int *targets, int N, int V,
                                   int Vp)
{
    return CPU_CALL(
        m, softmax_crossentropy_forward(probs, losses, logits, targets, N, V, Vp));
}

static zrt_status cpu_xent_backward(gpt2_model *m, float *dlogits, const float *probs,
                                    const int *targets, float scale, int N, int V, int Vp)
{
    return CPU_CALL(
        m, softmax_crossentropy_backward(dlogits, probs, targets, scale, N, V, Vp));
}

static zrt_status cpu_zero(gpt2_model *m, void *dst, size_t bytes)
{
    return CPU_CALL(m, memset(dst, 0, bytes));
}

static zrt_status cpu_upload(gpt2_model *m, void *dst, const void *src, size_t bytes)
{
    return CPU_CALL(m, memcpy(dst, src, bytes));
}

static const void *cpu_host_view(const gpt2_model *m, const void *src, size_t bytes)
{
    (void)m;
    (void)bytes;
    return src;
}

static zrt_status cpu_widen(gpt2_model *m, float *dst, const void *src, size_t n)
{
    return zrt_convert(dst, ZRT_F32, src, m->dtype, n);
}

static zrt_status cpu_accumulate(gpt2_model *m, void *dst, const float *src, size_t n)
{
    return zrt_accumulate(dst, m->dtype, src, n);
}

static zrt_status cpu_wait(gpt2_model *m)
{
    (void)m;
    return ZRT_OK;
}

static const gpt2_ops cpu_ops = {
    .encoder_forward = cpu_encoder_forward,
    .encoder_backward = cpu_encoder_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .gelu_forward = cpu_gelu_forward,
    .gelu_backward = cpu_gelu_backward,
    .residual_forward = cpu_residual_forward,
    .residual_backward = cpu_residual_backward,
    .xent_forward = cpu_xent_forward,
    .xent_backward = cpu_xent_backward,
    .zero = cpu_zero,
    .upload = cpu_upload,
    .host_view = cpu_host_view,
    .widen = cpu_widen,
    .accumulate = cpu_accumulate,
    .wait = cpu_wait,
};

#if ZRT_GPT2_CUDA
/* -- cuda: examples/gpt2/cuda on zrt's device stream --
 * Compiled only where that library is built (ZRT_GPT2_CUDA=1, with zrt's
 * cuda backend). The table sits here rather than in the library because its
 * entries need the model (the state, attention's scratch, zrt_status); the
 * library stays a leaf of plain functions, as kernels/cuda is. */

/* A failed CUDA call: its sentence on stderr (zrt's last error is about
 * zrt's own calls), and a status for the caller. */
static zrt_status cuda_status(const gpt2_model *m, int rc)
{
    if (rc == 0)
        return ZRT_OK;
    int rank = 0;
    zrt_rank(m->ctx, &rank);
    fprintf(stderr, "[gpt2 rank %d] cuda: %s\n", rank, m->cuda->error);
    return ZRT_ERR_INTERNAL;
}

static zrt_status cuda_encoder_forward(gpt2_model *m, float *out, const int *inp,
                                       const float *wte, const float *wpe, int B, int T,
                                       int C)
{
    return cuda_status(m,
                       gpt2_cuda_encoder_forward(m->cuda, out, inp, wte, wpe, B, T, C));
}

static zrt_status cuda_encoder_backward(gpt2_model *m, float *dwte, float *dwpe,
                                        const float *dout, const int *inp, int B, int T,
                                        int C)
{
    return cuda_status(
        m, gpt2_cuda_encoder_backward(m->cuda, dwte, dwpe, dout, inp, B, T, C));
}

static zrt_status cuda_layernorm_forward(gpt2_model *m, float *out, float *mean,
                                         float *rstd, const float *inp, const float *w,
                                         const float *b, int N, int C)
{
    return cuda_status(
        m, gpt2_cuda_layernorm_forward(m->cuda, out, mean, rstd, inp, w, b, N, C));
}

static zrt_status cuda_layernorm_backward(gpt2_model *m, float *dinp, float *dw,
                                          float *db, const float *dout, const float *inp,
                                          const float *w, const float *mean,
                                          const float *rstd, int N, int C)
{
    return cuda_status(m, gpt2_cuda_layernorm_backward(m->cuda, dinp, dw, db, dout, inp,
                                                       w, mean, rstd, N, C));
}

static zrt_status cuda_matmul_forward(gpt2_model *m, float *out, const float *inp,
                                      const float *w, const float *bias, int N, int C,
                                      int OC)
{
    return cuda_status(m, gpt2_cuda_matmul_forward(m->cuda, out, inp, w, bias, N, C, OC));
}

static zrt_status cuda_matmul_backward(gpt2_model *m, float *dinp, float *dw,
                                       float *dbias, const float *dout, const float *inp,
                                       const float *w, int N, int C, int OC)
{
    return cuda_status(
        m, gpt2_cuda_matmul_backward(m->cuda, dinp, dw, dbias, dout, inp, w, N, C, OC));
}

static zrt_status cuda_attention_forward(gpt2_model *m, float *out, float *preatt,
                                         float *att, const float *inp, int B, int T,
                                         int C, int NH)
{
    return cuda_status(m, gpt2_cuda_attention_forward(m->cuda, out, preatt, att, inp,
                                                      m->attn_scratch, B, T, C, NH));
}

static zrt_status cuda_attention_backward(gpt2_model *m, float *dinp, float *dpreatt,
                                          float *datt, const float *dout,
                                          const float *inp, const float *att, int B,
                                          int T, int C, int NH)
{
    return cuda_status(m, gpt2_cuda_attention_backward(m->cuda, dinp, dpreatt, datt, dout,
                                                       inp, att, m->attn_scratch, B, T, C,
                                                       NH));
}

static zrt_status cuda_gelu_forward(gpt2_model *m, float *out, const float *inp, size_t n)
{
    return cuda_status(m, gpt2_cuda_gelu_forward(m->cuda, out, inp, n));
}

static zrt_status cuda_gelu_backward(gpt2_model *m, float *dinp, const float *inp,
                                     const float *dout, size_t n)
{
    return cuda_status(m, gpt2_cuda_gelu_backward(m->cuda, dinp, inp, dout, n));
}

static zrt_status cuda_residual_forward(gpt2_model *m, float *out, const float *a,
                                        const float *b, size_t n)
{
    return cuda_status(m, gpt2_cuda_residual_forward(m->cuda, out, a, b, n));
}

static zrt_status cuda_residual_backward(gpt2_model *m, float *da, float *db,
                                         const float *dout, size_t n)
{
    return cuda_status(m, gpt2_cuda_residual_backward(m->cuda, da, db, dout, n));
}

static zrt_status cuda_xent_forward(gpt2_model *m, float *probs, float *losses,
                                    const float *logits, const int *targets, int N, int V,
                                    int Vp)
{
    return cuda_status(m, gpt2_cuda_softmax_crossentropy_forward(
                              m->cuda, probs, losses, logits, targets, N, V, Vp));
}

static zrt_status cuda_xent_backward(gpt2_model *m, float *dlogits, const float *probs,
                                     const int *targets, float scale, int N, int V,
                                     int Vp)
{
    return cuda_status(m, gpt2_cuda_softmax_crossentropy_backward(
                              m->cuda, dlogits, probs, targets, scale, N, V, Vp));
}

static zrt_status cuda_zero(gpt2_model *m, void *dst, size_t bytes)
{
    return cuda_status(m, gpt2_cuda_zero(m->cuda, dst, bytes));
}

static zrt_status cuda_upload(gpt2_model *m, void *dst, const void *src, size_t bytes)
{
    return cuda_status(m, gpt2_cuda_upload(m->cuda, dst, src, bytes));
}

static const void *cuda_host_view(const gpt2_model *m, const void *src, size_t bytes)
{
    if (cuda_status(m, gpt2_cuda_download(m->cuda, m->host_view, src, bytes)) != ZRT_OK)
        return NULL;
    return m->host_view;
}

static zrt_status cuda_widen(gpt2_model *m, float *dst, const void *src, size_t n)
{
    return cuda_status(m, gpt2_cuda_widen(m->cuda, dst, src, n, m->dtype == ZRT_BF16));
}

static zrt_status cuda_accumulate(gpt2_model *m, void *dst, const float *src, size_t n)
{
    return cuda_status(
        m, gpt2_cuda_accumulate_half(m->cuda, dst, src, n, m->dtype == ZRT_BF16));
}

static zrt_status cuda_wait(gpt2_model *m)
{
    return cuda_status(m, gpt2_cuda_sync(m->cuda));
}

static const gpt2_ops cuda_ops = {
    .encoder_forward = cuda_encoder_forward,
    .encoder_backward = cuda_encoder_backward,
    .layernorm_forward = cuda_layernorm_forward,
    .layernorm_backward = cuda_layernorm_backward,
    .matmul_forward = cuda_matmul_forward,
    .matmul_backward = cuda_matmul_backward,
    .attention_forward = cuda_attention_forward,
    .attention_backward = cuda_attention_backward,
    .gelu_forward = cuda_gelu_forward,
    .gelu_backward = cuda_gelu_backward,
    .residual_forward = cuda_residual_forward,
    .residual_backward = cuda_residual_backward,
    .xent_forward = cuda_xent_forward,
    .xent_backward = cuda_xent_backward,
    .zero = cuda_zero,
    .upload = cuda_upload,
    .host_view = cuda_host_view,
    .widen = cuda_widen,
    .accumulate = cuda_accumulate,
    .wait = cuda_wait,
};
static const gpt2_ops *const cuda_table = &cuda_ops;

/* Bytes of attention's scratch. */
static size_t scratch_bytes(const gpt2_model *m)
{
    return gpt2_cuda_attention_scratch(m->B, m->T, m->cfg.channels) * sizeof(float);
}

/* The stream, the cuBLAS handle on it, and the host view. */
static zrt_status cuda_start(gpt2_model *m)
{
    void *stream;
    EXAMPLE_CHECK(zrt_device_stream(m->ctx, &stream));
    m->cuda = calloc(1, sizeof *m->cuda);
    size_t view = (size_t)m->B * m->T;
    if ((size_t)m->cfg.padded_vocab_size > view)
        view = (size_t)m->cfg.padded_vocab_size;
    m->host_view = malloc(view * sizeof *m->host_view);
    if (!m->cuda || !m->host_view)
        return ZRT_ERR_OUT_OF_MEMORY;
    gpt2_cuda_math math = m->dtype == ZRT_BF16  ? GPT2_CUDA_MATH_BF16
                          : m->dtype == ZRT_F16 ? GPT2_CUDA_MATH_F16
                                                : GPT2_CUDA_MATH_F32;
    if (gpt2_cuda_init(m->cuda, stream, math) != 0) {
        zrt_status st = cuda_status(m, -1);
        free(m->cuda);
        m->cuda = NULL;
        return st;
    }
    return ZRT_OK;
}

static void cuda_stop(gpt2_model *m)
{
    if (m->cuda)
        gpt2_cuda_deinit(m->cuda);
    free(m->cuda);
    free(m->host_view);
    m->cuda = NULL;
    m->host_view = NULL;
}
#else
static const gpt2_ops *const cuda_table = NULL; /* this build has no CUDA layers */

static size_t scratch_bytes(const gpt2_model *m)
{
    (void)m;
    return 0;
}

static zrt_status cuda_start(gpt2_model *m)
{
    (void)m;
    return ZRT_ERR_UNSUPPORTED;
}

static void cuda_stop(gpt2_model *m)
{
    (void)m;
}
#endif /* ZRT_GPT2_CUDA */

/* The table for the context's backend: NULL when this build lacks it. */
static const gpt2_ops *ops_for(const zrt_ctx *ctx)
{
    zrt_config c;
    zrt_get_config(ctx, &c);
    return strcmp(c.backend, "cuda") == 0 ? cuda_table : &cpu_ops;
}

static int on_device(const gpt2_model *m)
{
    return m->ops && m->ops != &cpu_ops;
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
    zrt_param_desc d = {.name = name,
                        .ndim = ndim,
                        .shape = {d0, d1},
                        .dtype = trained_dtype(ctx),
                        .layer = layer,
                        .no_weight_decay = ndim == 1};
    return zrt_param_register(ctx, &d, out);
}

static zrt_status register_block(gpt2_model *m, int l)
{
    int64_t C = m->cfg.channels;
    static const char *names[GPT2_BLOCK_TENSORS] = {
        "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
        "ln2w", "ln2b", "fcw",  "fcb",  "fcprojw",  "fcprojb"};
    const int64_t rows[GPT2_BLOCK_TENSORS] = {C, C, 3 * C, 3 * C, C, C,
                                              C, C, 4 * C, 4 * C, C, C};
    const int64_t cols[GPT2_BLOCK_TENSORS] = {0, 0, C, 0, C, 0, 0, 0, C, 0, 4 * C, 0};
    for (int j = 0; j < GPT2_BLOCK_TENSORS; j++) {
        char name[48];
        snprintf(name, sizeof name, "h%d.%s", l, names[j]);
        EXAMPLE_CHECK(add_param(m->ctx, name, 1 + l, cols[j] ? 2 : 1, rows[j], cols[j],
                                &m->blocks[l * GPT2_BLOCK_TENSORS + j]));
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

zrt_status gpt2_register(gpt2_model *m, zrt_ctx *ctx, const gpt2_config *cfg, int B,
                         int T)
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
    m->ops = ops_for(ctx);
    if (!m->ops) {
        fprintf(stderr, "gpt2: the cuda backend needs the GPT-2 CUDA layers, which this "
                        "build lacks (configure with CUDA and NCCL found)\n");
        return ZRT_ERR_UNSUPPORTED;
    }
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
        EXAMPLE_CHECK(
            zrt_declare_buffer(m->ctx, ZRT_CAT_ACTIVATION, (size_t)wide_bytes(m)));
    if (on_device(m)) /* the step's inputs and targets; attention's scratch */
        EXAMPLE_CHECK(zrt_declare_buffer(m->ctx, ZRT_CAT_ACTIVATION, inputs_bytes(m)));
    if (on_device(m))
        EXAMPLE_CHECK(zrt_declare_buffer(m->ctx, ZRT_CAT_ACTIVATION, scratch_bytes(m)));
    return declare_step(m);
}

/* cuda: the backend's state, then the device buffers gpt2_declare_memory
 * declared (in its order). */
static zrt_status start_device(gpt2_model *m)
{
    EXAMPLE_CHECK(cuda_start(m));
    EXAMPLE_CHECK(zrt_buffer_alloc(m->ctx, inputs_bytes(m), ZRT_CAT_ACTIVATION,
                                   (void **)&m->inputs));
    m->targets = m->inputs + (size_t)m->B * m->T;
    return zrt_buffer_alloc(m->ctx, scratch_bytes(m), ZRT_CAT_ACTIVATION,
                            (void **)&m->attn_scratch);
}

static void stop_device(gpt2_model *m)
{
    zrt_buffer_free(m->ctx, m->inputs);
    zrt_buffer_free(m->ctx, m->attn_scratch);
    m->inputs = m->targets = NULL;
    cuda_stop(m);
}

/* 16-bit: the f32 copies of the live layers' parameters and gradients. */
static zrt_status alloc_wide(gpt2_model *m)
{
    float *wide;
    EXAMPLE_CHECK(zrt_buffer_alloc(m->ctx, (size_t)wide_bytes(m), ZRT_CAT_ACTIVATION,
                                   (void **)&wide));
    m->wide[0] = wide;
    m->wide[1] = m->wide[0] + m->wide_numel[0];
    m->wide_grad[0] = m->wide[1] + m->wide_numel[1];
    m->wide_grad[1] = m->wide_grad[0] + m->wide_numel[0];
    return ZRT_OK;
}

/* In gpt2_declare_memory's order. */
zrt_status gpt2_alloc_activations(gpt2_model *m)
{
    size_t bt = (size_t)m->B * m->T;
    if (!on_device(m)) { /* on cuda, start_device puts them on the device */
        m->inputs = calloc(bt, sizeof *m->inputs);
        m->targets = calloc(bt, sizeof *m->targets);
        if (!m->inputs || !m->targets)
            return ZRT_ERR_OUT_OF_MEMORY;
    }
    EXAMPLE_CHECK(alloc_acts(m, &m->acts));
    EXAMPLE_CHECK(alloc_acts(m, &m->grads));
    if (m->dtype != ZRT_F32)
        EXAMPLE_CHECK(alloc_wide(m));
    return on_device(m) ? start_device(m) : ZRT_OK;
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
    if (on_device(m)) {
        stop_device(m);
    } else {
        free(m->inputs);
        free(m->targets);
    }
    memset(m, 0, sizeof *m);
}

/* ---- parameters in llm.c's layout ----------------------------------------- */

/* The zrt handle holding llm.c tensor `index`, layer `l` (if per layer). */
static zrt_param handle_of(const gpt2_model *m, int index, int l)
{
    switch (index) {
    case 0:
        return m->wte;
    case 1:
        return m->wpe;
    case 14:
        return m->lnfw;
    case 15:
        return m->lnfb;
    default:
        return m->blocks[l * GPT2_BLOCK_TENSORS + (index - 2)];
    }
}

/* Where parameter p sits in llm.c's layout: elements [base, base + numel)
 * of tensor `index`, which are [flat, flat + numel) of the one array that
 * holds every tensor in llm.c order. */
typedef struct tensor_slice {
    zrt_param p;
    int index;
    size_t base;
    size_t flat;
} tensor_slice;

typedef zrt_status (*slice_fn)(gpt2_model *m, const tensor_slice *s, void *user);

/* Calls fn for every parameter, in llm.c order. */
static zrt_status for_each_slice(gpt2_model *m, slice_fn fn, void *user)
{
    size_t sizes[GPT2_NUM_TENSORS], start = 0;
    gpt2_tensor_sizes(&m->cfg, sizes);
    int L = m->cfg.num_layers;
    for (int i = 0; i < GPT2_NUM_TENSORS; i++) {
        int slices = gpt2_tensor_is_per_layer(i) ? L : 1;
        size_t per_slice = sizes[i] / (size_t)slices;
        for (int l = 0; l < slices; l++) {
            size_t base = (size_t)l * per_slice;
            tensor_slice s = {handle_of(m, i, l), i, base, start + base};
            EXAMPLE_CHECK(fn(m, &s, user));
        }
        start += sizes[i];
    }
    return ZRT_OK;
}

/* A 16-bit copy of parameter p's numel elements, for writes and reads. */
static uint16_t *half_buffer(const gpt2_model *m, zrt_param p)
{
    int64_t n = 0;
    zrt_param_numel(m->ctx, p, &n);
    return malloc((size_t)n * sizeof(uint16_t));
}

/* params: llm.c's array of every tensor (gpt2_set_params's const one: only
 * read here). */
static zrt_status write_slice(gpt2_model *m, const tensor_slice *s, void *params)
{
    zrt_param p = s->p;
    const float *slice = (const float *)params + s->flat;
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

/* params: llm.c's array of every tensor. */
static zrt_status read_slice(gpt2_model *m, const tensor_slice *s, void *params)
{
    return read_widened(m, s->p, (float *)params + s->flat, zrt_param_read);
}

/* grads: as params, for the gradients. */
static zrt_status read_grad_slice(gpt2_model *m, const tensor_slice *s, void *grads)
{
    return read_widened(m, s->p, (float *)grads + s->flat, zrt_grad_read);
}

zrt_status gpt2_set_params(gpt2_model *m, const float *params)
{
    return for_each_slice(m, write_slice, (void *)params);
}

zrt_status gpt2_get_params(gpt2_model *m, float *params)
{
    return for_each_slice(m, read_slice, params);
}

zrt_status gpt2_get_grads(gpt2_model *m, float *grads)
{
    return for_each_slice(m, read_grad_slice, grads);
}

/* ---- building the parameters where they live ---------------------------------
 * No rank holds the model: each asks zrt which part of every tensor it keeps
 * (zrt_param_owned_range: all of it at stages 0-2, its shard at stage 3) and
 * produces just that, GPT2_FILL_CHUNK elements at a time, as DeepSpeed's
 * zero.Init and FSDP's meta-device init do. The values depend only on the
 * element (the seed, the tensor and the position in it, or the file), never
 * on the world size, the stage or the order of the pieces. */

#define GPT2_FILL_CHUNK ((int64_t)1 << 20) /* elements: 4 MiB of f32 */

typedef struct fill_job {
    gpt2_fill_fn fill;
    void *user;
    float *piece;   /* (GPT2_FILL_CHUNK) f32 */
    uint16_t *half; /* (GPT2_FILL_CHUNK) the piece in 16 bits; NULL for f32 */
} fill_job;

static zrt_status write_piece(gpt2_model *m, fill_job *job, zrt_param p, int64_t first,
                              int64_t n)
{
    if (m->dtype == ZRT_F32)
        return zrt_param_write_range(m->ctx, p, first, n, job->piece);
    EXAMPLE_CHECK(zrt_convert(job->half, m->dtype, job->piece, ZRT_F32, (size_t)n));
    return zrt_param_write_range(m->ctx, p, first, n, job->half);
}

/* Writes the part of s->p that this rank owns; user is the fill_job. */
static zrt_status fill_slice(gpt2_model *m, const tensor_slice *s, void *user)
{
    fill_job *job = user;
    zrt_param p = s->p;
    int64_t first, count;
    EXAMPLE_CHECK(zrt_param_owned_range(m->ctx, p, &first, &count));
    if (count == 0) /* stage 3: every rank writes every parameter */
        return zrt_param_write_range(m->ctx, p, 0, 0, NULL);
    for (int64_t k = first; k < first + count; k += GPT2_FILL_CHUNK) {
        int64_t n =
            first + count - k < GPT2_FILL_CHUNK ? first + count - k : GPT2_FILL_CHUNK;
        EXAMPLE_CHECK(
            job->fill(job->user, s->index, s->base + (size_t)k, (size_t)n, job->piece));
        EXAMPLE_CHECK(write_piece(m, job, p, k, n));
    }
    return ZRT_OK;
}

zrt_status gpt2_fill_params(gpt2_model *m, gpt2_fill_fn fill, void *user)
{
    fill_job job = {fill, user, malloc((size_t)GPT2_FILL_CHUNK * sizeof(float)), NULL};
    if (m->dtype != ZRT_F32)
        job.half = malloc((size_t)GPT2_FILL_CHUNK * sizeof(uint16_t));
    zrt_status st = ZRT_ERR_OUT_OF_MEMORY;
    if (job.piece && (m->dtype == ZRT_F32 || job.half))
        st = for_each_slice(m, fill_slice, &job);
    free(job.piece);
    free(job.half);
    return st;
}

/* -- the initial values: a counter-based generator -- */

static uint64_t mix64(uint64_t z) /* splitmix64's finalizer */
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Two standard normals for pair j of a tensor's elements (2j and 2j+1):
 * splitmix64 at counter j of the tensor's stream gives two 32-bit uniforms,
 * Box-Muller turns them into a cosine and a sine normal. */
static void normal_pair(uint64_t key, uint64_t j, float z[2])
{
    uint64_t h = mix64(key + (j + 1) * 0x9E3779B97F4A7C15ull);
    double u1 = ((double)(h >> 32) + 1.0) * 0x1p-32; /* (0, 1] */
    double u2 = (double)(h & 0xFFFFFFFFu) * 0x1p-32; /* [0, 1) */
    double r = sqrt(-2.0 * log(u1)), theta = 6.283185307179586 * u2;
    z[0] = (float)(r * cos(theta));
    z[1] = (float)(r * sin(theta));
}

typedef struct init_values {
    uint64_t seed;
    float residual_scale; /* 1/sqrt(2L) */
} init_values;

/* N(0, std) for elements [first, first + count) of tensor `index`. */
static void fill_normal(uint64_t key, float std, size_t first, size_t count, float *dst)
{
    float z[2];
    for (size_t k = 0; k < count;) {
        uint64_t e = (uint64_t)(first + k);
        normal_pair(key, e >> 1, z);
        dst[k++] = std * z[e & 1];
        if ((e & 1) == 0 && k < count)
            dst[k++] = std * z[1];
    }
}

/* GPT-2's initialization: N(0, 0.02) matrices (wte, wpe and the four block
 * weights), the residual projections (attprojw, fcprojw) scaled by
 * 1/sqrt(2L), layernorm weights 1, biases 0. */
static zrt_status init_fill(void *user, int index, size_t first, size_t count, float *dst)
{
    const init_values *v = user;
    int is_layernorm_weight = index == 2 || index == 8 || index == 14;
    int is_matrix = index == 0 || index == 1 || index == 4 || index == 6 || index == 10 ||
                    index == 12;
    if (!is_matrix) {
        for (size_t k = 0; k < count; k++)
            dst[k] = is_layernorm_weight ? 1.0f : 0.0f;
        return ZRT_OK;
    }
    float std = 0.02f * (index == 6 || index == 12 ? v->residual_scale : 1.0f);
    uint64_t key = mix64(mix64(v->seed) + (uint64_t)(index + 1) * 0xD1B54A32D192ED03ull);
    fill_normal(key, std, first, count, dst);
    return ZRT_OK;
}

zrt_status gpt2_init_params(gpt2_model *m, uint64_t seed)
{
    init_values v = {seed, 1.0f / sqrtf(2.0f * (float)m->cfg.num_layers)};
    return gpt2_fill_params(m, init_fill, &v);
}

/* -- values from an llm.c model file, read where this rank keeps them -- */

typedef struct file_values {
    gpt2_model_file *file;
    size_t start[GPT2_NUM_TENSORS]; /* each tensor's first element in the file */
    char *err;
    size_t err_size;
} file_values;

static zrt_status file_fill(void *user, int index, size_t first, size_t count, float *dst)
{
    file_values *v = user;
    if (gpt2_model_read_at(v->file, v->start[index] + first, count, dst, v->err,
                           v->err_size))
        return ZRT_ERR_IO;
    return ZRT_OK;
}

zrt_status gpt2_load_params(gpt2_model *m, const char *path, char *err, size_t err_size)
{
    file_values v = {.err = err, .err_size = err_size};
    size_t sizes[GPT2_NUM_TENSORS], at = 0;
    gpt2_tensor_sizes(&m->cfg, sizes);
    for (int i = 0; i < GPT2_NUM_TENSORS; i++) {
        v.start[i] = at;
        at += sizes[i];
    }
    if (gpt2_model_open(path, &m->cfg, &v.file, err, err_size))
        return ZRT_ERR_IO;
    zrt_status st = gpt2_fill_params(m, file_fill, &v);
    gpt2_model_close(v.file);
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
    EXAMPLE_CHECK(m->ops->layernorm_forward(m, ln1, a->ln1_mean + l * bt,
                                            a->ln1_rstd + l * bt, residual, w[LN1W],
                                            w[LN1B], BT, C));
    EXAMPLE_CHECK(m->ops->matmul_forward(m, qkv, ln1, w[QKVW], w[QKVB], BT, C, 3 * C));
    EXAMPLE_CHECK(m->ops->attention_forward(m, atty, a->preatt + l * att,
                                            a->att + l * att, qkv, B, T, C, NH));
    EXAMPLE_CHECK(
        m->ops->matmul_forward(m, attproj, atty, w[ATTPROJW], w[ATTPROJB], BT, C, C));
    EXAMPLE_CHECK(m->ops->residual_forward(m, residual2, residual, attproj, btc));
    EXAMPLE_CHECK(m->ops->layernorm_forward(m, ln2, a->ln2_mean + l * bt,
                                            a->ln2_rstd + l * bt, residual2, w[LN2W],
                                            w[LN2B], BT, C));
    EXAMPLE_CHECK(m->ops->matmul_forward(m, fch, ln2, w[FCW], w[FCB], BT, C, 4 * C));
    EXAMPLE_CHECK(m->ops->gelu_forward(m, fch_gelu, fch, 4 * btc));
    EXAMPLE_CHECK(m->ops->matmul_forward(m, fcproj, fch_gelu, w[FCPROJW], w[FCPROJB], BT,
                                         4 * C, C));
    EXAMPLE_CHECK(m->ops->residual_forward(m, residual3, residual2, fcproj, btc));
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
        EXAMPLE_CHECK(m->ops->widen(m, m->wide[copy_of(layer)] + m->offset[p], data,
                                    (size_t)m->numel[p]));
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
        EXAMPLE_CHECK(m->ops->accumulate(
            m, grad, m->wide_grad[copy_of(layer)] + m->offset[p], (size_t)m->numel[p]));
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
        EXAMPLE_CHECK(
            m->ops->zero(m, m->wide_grad[copy_of(layer)],
                         (size_t)m->wide_numel[copy_of(layer)] * sizeof(float)));
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
    EXAMPLE_CHECK(m->ops->encoder_forward(m, m->acts->encoded, m->inputs, wte, wpe, m->B,
                                          m->T, m->cfg.channels));
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
    EXAMPLE_CHECK(m->ops->layernorm_forward(m, a->lnf, a->lnf_mean, a->lnf_rstd,
                                            a->residual3 + (size_t)(L - 1) * BT * C, w, b,
                                            BT, C));
    return leave(m, L + 1, 0);
}

/* The output head, tied to wte: layer 0 again. */
static zrt_status head(gpt2_model *m)
{
    float *wte;
    EXAMPLE_CHECK(enter(m, 0, 0));
    EXAMPLE_CHECK(param_ptr(m, m->wte, &wte));
    EXAMPLE_CHECK(m->ops->matmul_forward(m, m->acts->logits, m->acts->lnf, wte, NULL,
                                         m->B * m->T, m->cfg.channels,
                                         m->cfg.padded_vocab_size));
    return leave(m, 0, 0);
}

/* The per-position losses on the backend, their mean on the host. */
static zrt_status compute_loss(gpt2_model *m)
{
    int BT = m->B * m->T;
    gpt2_acts *a = m->acts;
    EXAMPLE_CHECK(m->ops->xent_forward(m, a->probs, a->losses, a->logits, m->targets, BT,
                                       m->cfg.vocab_size, m->cfg.padded_vocab_size));
    const float *losses = m->ops->host_view(m, a->losses, (size_t)BT * sizeof(float));
    if (!losses)
        return ZRT_ERR_INTERNAL;
    double sum = 0;
    for (int i = 0; i < BT; i++)
        sum += losses[i];
    m->loss = (float)(sum / BT);
    return ZRT_OK;
}

zrt_status gpt2_forward(gpt2_model *m, const int *inputs, const int *targets)
{
    size_t bt = (size_t)m->B * m->T;
    EXAMPLE_CHECK(m->ops->upload(m, m->inputs, inputs, bt * sizeof *inputs));
    m->has_targets = targets != NULL;
    if (targets)
        EXAMPLE_CHECK(m->ops->upload(m, m->targets, targets, bt * sizeof *targets));
    EXAMPLE_CHECK(embed(m));
    for (int l = 0; l < m->cfg.num_layers; l++) {
        EXAMPLE_CHECK(enter(m, 1 + l, 0));
        EXAMPLE_CHECK(block_forward(m, l));
        EXAMPLE_CHECK(leave(m, 1 + l, 0));
    }
    EXAMPLE_CHECK(final_layernorm(m));
    EXAMPLE_CHECK(head(m));
    if (targets)
        EXAMPLE_CHECK(compute_loss(m));
    return ZRT_OK;
}

const float *gpt2_logits_at(const gpt2_model *m, int t)
{
    size_t Vp = (size_t)m->cfg.padded_vocab_size;
    return m->ops->host_view(m, m->acts->logits + (size_t)t * Vp, Vp * sizeof(float));
}

zrt_status gpt2_wait(gpt2_model *m)
{
    return m->ops->wait(m);
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
    EXAMPLE_CHECK(m->ops->residual_backward(m, g->residual2 + o1, g->fcproj + o1,
                                            g->residual3 + o1, btc));
    EXAMPLE_CHECK(m->ops->matmul_backward(m, g->fch_gelu + o4, dw[FCPROJW], dw[FCPROJB],
                                          g->fcproj + o1, a->fch_gelu + o4, w[FCPROJW],
                                          BT, 4 * C, C));
    EXAMPLE_CHECK(
        m->ops->gelu_backward(m, g->fch + o4, a->fch + o4, g->fch_gelu + o4, 4 * btc));
    EXAMPLE_CHECK(m->ops->matmul_backward(m, g->ln2 + o1, dw[FCW], dw[FCB], g->fch + o4,
                                          a->ln2 + o1, w[FCW], BT, C, 4 * C));
    EXAMPLE_CHECK(m->ops->layernorm_backward(m, g->residual2 + o1, dw[LN2W], dw[LN2B],
                                             g->ln2 + o1, a->residual2 + o1, w[LN2W],
                                             a->ln2_mean + on, a->ln2_rstd + on, BT, C));
    EXAMPLE_CHECK(
        m->ops->residual_backward(m, dresidual, g->attproj + o1, g->residual2 + o1, btc));
    EXAMPLE_CHECK(m->ops->matmul_backward(m, g->atty + o1, dw[ATTPROJW], dw[ATTPROJB],
                                          g->attproj + o1, a->atty + o1, w[ATTPROJW], BT,
                                          C, C));
    EXAMPLE_CHECK(m->ops->attention_backward(m, g->qkv + o3, g->preatt + l * att,
                                             g->att + l * att, g->atty + o1, a->qkv + o3,
                                             a->att + l * att, B, T, C, NH));
    EXAMPLE_CHECK(m->ops->matmul_backward(m, g->ln1 + o1, dw[QKVW], dw[QKVB], g->qkv + o3,
                                          a->ln1 + o1, w[QKVW], BT, C, 3 * C));
    EXAMPLE_CHECK(m->ops->layernorm_backward(m, dresidual, dw[LN1W], dw[LN1B],
                                             g->ln1 + o1, residual, w[LN1W],
                                             a->ln1_mean + on, a->ln1_rstd + on, BT, C));
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
    EXAMPLE_CHECK(m->ops->layernorm_backward(m, g->residual3 + last, dw, db, g->lnf,
                                             a->residual3 + last, w, a->lnf_mean,
                                             a->lnf_rstd, BT, C));
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
    EXAMPLE_CHECK(m->ops->matmul_backward(m, g->lnf, dwte, NULL, g->logits, a->lnf, wte,
                                          BT, C, m->cfg.padded_vocab_size));
    EXAMPLE_CHECK(final_layernorm_backward(m));
    for (int l = m->cfg.num_layers - 1; l >= 0; l--) {
        EXAMPLE_CHECK(enter(m, 1 + l, 1));
        EXAMPLE_CHECK(block_backward(m, l));
        EXAMPLE_CHECK(leave(m, 1 + l, 1));
    }
    EXAMPLE_CHECK(
        m->ops->encoder_backward(m, dwte, dwpe, g->encoded, m->inputs, m->B, m->T, C));
    return leave(m, 0, 1);
}

zrt_status gpt2_backward(gpt2_model *m)
{
    if (!m->has_targets)
        return ZRT_ERR_STATE;
    int BT = m->B * m->T;
    float scale; /* fp16: the loss is scaled, so every gradient is */
    EXAMPLE_CHECK(zrt_loss_scale(m->ctx, &scale));
    EXAMPLE_CHECK(m->ops->zero(m, m->grads->memory, m->grads->count * sizeof(float)));
    EXAMPLE_CHECK(m->ops->xent_backward(m, m->grads->logits, m->acts->probs, m->targets,
                                        scale * m->loss_grad_factor / (float)BT, BT,
                                        m->cfg.vocab_size, m->cfg.padded_vocab_size));
    return backward_through_model(m);
}
