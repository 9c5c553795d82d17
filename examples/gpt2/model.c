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

/* Activations of one forward pass, as in llm.c, for n blocks (the stage's,
 * or one: a recompute workspace and the gradients). encoded is the stage's
 * input (absent in the one-block buffers); lnf .. losses the head's (the
 * last stage's only). */
struct gpt2_acts {
    float *encoded;                   /* (B,T,C) */
    float *ln1, *ln1_mean, *ln1_rstd; /* (n,B,T,C), (n,B,T), (n,B,T) */
    float *qkv;                       /* (n,B,T,3C) */
    float *atty;                      /* (n,B,T,C) */
    float *preatt, *att;              /* (n,B,NH,T,T) */
    float *attproj, *residual2;       /* (n,B,T,C) */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;            /* (n,B,T,4C) */
    float *fcproj, *residual3;        /* (n,B,T,C) */
    float *lnf, *lnf_mean, *lnf_rstd; /* (B,T,C), (B,T), (B,T) */
    float *logits, *probs;            /* (B,T,Vp) */
    float *losses;                    /* (B,T) */
    float *memory;                    /* one block holding all of the above */
    size_t count;                     /* floats in memory */
    size_t block_count;               /* floats of ln1 .. residual3 */
};

#define NUM_ACTS 23

/* One micro-batch's activations. */
struct gpt2_slot {
    gpt2_acts *acts;       /* without recompute: all of the stage's */
    float *keep;           /* with recompute: (num_blocks + 1) x (B,T,C), each
                              block's input, then the stage's output */
    float *dinput;         /* pipeline, not the first stage: the gradient of the
                              stage's input, sent to the previous stage */
    int *inputs, *targets; /* (B,T) each, where the operations read them */
    int has_targets;
};

/* Which parts an activation buffer holds. */
typedef struct acts_shape {
    size_t blocks;
    int encoded, head;
} acts_shape;

/* Element counts of the activations, in struct order. */
static void act_sizes(const gpt2_model *m, acts_shape sh, size_t s[NUM_ACTS])
{
    size_t B = (size_t)m->B, T = (size_t)m->T, C = (size_t)m->cfg.channels;
    size_t L = sh.blocks, NH = (size_t)m->cfg.num_heads;
    size_t Vp = (size_t)m->cfg.padded_vocab_size, BT = B * T;
    size_t E = sh.encoded ? 1 : 0, H = sh.head ? 1 : 0;
    size_t sizes[NUM_ACTS] = {E * BT * C, /* encoded */
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
                              H * BT * C,
                              H * BT,
                              H * BT, /* lnf, mean, rstd */
                              H * BT * Vp,
                              H * BT * Vp, /* logits, probs */
                              H * BT};     /* losses */
    memcpy(s, sizes, sizeof sizes);
}

static size_t acts_floats(const gpt2_model *m, acts_shape sh)
{
    size_t sizes[NUM_ACTS], total = 0;
    act_sizes(m, sh, sizes);
    for (int i = 0; i < NUM_ACTS; i++)
        total += sizes[i];
    return total;
}

/* Lays the activations of shape sh out over memory (acts_floats floats). */
static zrt_status place_acts(const gpt2_model *m, acts_shape sh, float *memory,
                             gpt2_acts **out)
{
    size_t sizes[NUM_ACTS];
    act_sizes(m, sh, sizes);
    gpt2_acts *a = calloc(1, sizeof *a);
    if (!a)
        return ZRT_ERR_OUT_OF_MEMORY;
    float **slots[NUM_ACTS] = {&a->encoded,   &a->ln1,       &a->ln1_mean, &a->ln1_rstd,
                               &a->qkv,       &a->atty,      &a->preatt,   &a->att,
                               &a->attproj,   &a->residual2, &a->ln2,      &a->ln2_mean,
                               &a->ln2_rstd,  &a->fch,       &a->fch_gelu, &a->fcproj,
                               &a->residual3, &a->lnf,       &a->lnf_mean, &a->lnf_rstd,
                               &a->logits,    &a->probs,     &a->losses};
    a->memory = memory;
    float *next = memory;
    for (int i = 0; i < NUM_ACTS; i++) {
        *slots[i] = next;
        next += sizes[i];
        if (i >= 1 && i <= 16)
            a->block_count += sizes[i];
    }
    a->count = acts_floats(m, sh);
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

/* Block l of the model (b = l - first_block of the stage's). */
static zrt_status register_block(gpt2_model *m, int b)
{
    int64_t C = m->cfg.channels;
    int l = m->first_block + b;
    static const char *names[GPT2_BLOCK_TENSORS] = {
        "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
        "ln2w", "ln2b", "fcw",  "fcb",  "fcprojw",  "fcprojb"};
    const int64_t rows[GPT2_BLOCK_TENSORS] = {C, C, 3 * C, 3 * C, C, C,
                                              C, C, 4 * C, 4 * C, C, C};
    const int64_t cols[GPT2_BLOCK_TENSORS] = {0, 0, C, 0, C, 0, 0, 0, C, 0, 4 * C, 0};
    for (int j = 0; j < GPT2_BLOCK_TENSORS; j++) {
        char name[48];
        snprintf(name, sizeof name, "h%d.%s", l, names[j]);
        EXAMPLE_CHECK(add_param(m->ctx, name, m->zl_block0 + b, cols[j] ? 2 : 1, rows[j],
                                cols[j], &m->blocks[b * GPT2_BLOCK_TENSORS + j]));
    }
    return ZRT_OK;
}

/* The zrt layer of parameter p, from the registration order: embeddings,
 * blocks, final layernorm (each where the stage holds them). */
static int layer_of_param(const gpt2_model *m, zrt_param p)
{
    int first_block_param = m->has_embed ? 2 : 0;
    if (m->has_embed && p < 2)
        return 0;
    if (p - first_block_param >= m->num_blocks * GPT2_BLOCK_TENSORS)
        return m->zl_lnf;
    return m->zl_block0 + (p - first_block_param) / GPT2_BLOCK_TENSORS;
}

/* 16-bit: where each parameter sits in its layer's f32 copy, and how large
 * the two copies are. */
static zrt_status plan_wide_copies(gpt2_model *m)
{
    EXAMPLE_CHECK(zrt_num_params(m->ctx, &m->nparams));
    int n = m->nparams, layers = m->zl_lnf + 1;
    m->offset = calloc((size_t)n, sizeof *m->offset);
    m->numel = calloc((size_t)n, sizeof *m->numel);
    m->layer = calloc((size_t)n, sizeof *m->layer);
    int64_t *used = calloc((size_t)layers, sizeof *used);
    if (!m->offset || !m->numel || !m->layer || !used) {
        free(used);
        return ZRT_ERR_OUT_OF_MEMORY;
    }
    for (zrt_param p = 0; p < n; p++) {
        EXAMPLE_CHECK(zrt_param_numel(m->ctx, p, &m->numel[p]));
        m->layer[p] = layer_of_param(m, p);
        m->offset[p] = used[m->layer[p]];
        used[m->layer[p]] += m->numel[p];
    }
    m->wide_numel[0] = m->has_embed ? used[0] : 0;
    for (int l = m->has_embed ? 1 : 0; l < layers; l++)
        if (used[l] > m->wide_numel[1])
            m->wide_numel[1] = used[l];
    free(used);
    return ZRT_OK;
}

static int64_t wide_bytes(const gpt2_model *m)
{
    return (m->wide_numel[0] + m->wide_numel[1]) * 2 * (int64_t)sizeof(float);
}

/* Blocks [*first, *first + *count) of L on stage s of P: L / P each, the
 * first L % P stages one more. */
static void stage_blocks(int L, int P, int s, int *first, int *count)
{
    int base = L / P, extra = L % P;
    *count = base + (s < extra ? 1 : 0);
    *first = s * base + (s < extra ? s : extra);
}

int gpt2_stage_holds(const gpt2_config *cfg, int stages, int stage, int index, int l)
{
    if (index <= 1)
        return stage == 0;
    if (index >= 14)
        return stage == stages - 1;
    int first, count;
    stage_blocks(cfg->num_layers, stages, stage, &first, &count);
    return l >= first && l < first + count;
}

/* This rank's stage, its blocks and its zrt layer numbers. */
static zrt_status place_stage(gpt2_model *m)
{
    zrt_pipe_grid g;
    EXAMPLE_CHECK(zrt_get_pipe_grid(m->ctx, &g));
    m->stage = g.stage;
    m->stages = g.stages;
    if (m->cfg.num_layers < g.stages) {
        fprintf(stderr,
                "gpt2: a pipeline of %d stages needs at least %d layers; the model has "
                "%d\n",
                g.stages, g.stages, m->cfg.num_layers);
        return ZRT_ERR_INVALID_ARG;
    }
    stage_blocks(m->cfg.num_layers, g.stages, g.stage, &m->first_block, &m->num_blocks);
    m->has_embed = g.stage == 0;
    m->has_head = g.stage == g.stages - 1;
    m->zl_block0 = m->has_embed ? 1 : 0;
    m->zl_lnf = m->zl_block0 + m->num_blocks;
    m->wte = m->wpe = m->lnfw = m->lnfb = -1;
    m->tie_stale = 1;
    return ZRT_OK;
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
    m->nslots = 1;
    EXAMPLE_CHECK(place_stage(m));
    m->blocks = calloc((size_t)m->num_blocks * GPT2_BLOCK_TENSORS, sizeof *m->blocks);
    if (!m->blocks)
        return ZRT_ERR_OUT_OF_MEMORY;
    int64_t C = cfg->channels;
    if (m->has_embed) {
        EXAMPLE_CHECK(add_param(ctx, "wte", 0, 2, cfg->padded_vocab_size, C, &m->wte));
        EXAMPLE_CHECK(add_param(ctx, "wpe", 0, 2, cfg->max_seq_len, C, &m->wpe));
    }
    for (int b = 0; b < m->num_blocks; b++)
        EXAMPLE_CHECK(register_block(m, b));
    if (m->has_head) {
        EXAMPLE_CHECK(add_param(ctx, "lnfw", m->zl_lnf, 1, C, 0, &m->lnfw));
        EXAMPLE_CHECK(add_param(ctx, "lnfb", m->zl_lnf, 1, C, 0, &m->lnfb));
    }
    m->dtype = trained_dtype(ctx);
    m->ops = ops_for(ctx);
    if (!m->ops) {
        fprintf(stderr, "gpt2: the cuda backend needs the GPT-2 CUDA layers, which this "
                        "build lacks (configure with CUDA and NCCL found)\n");
        return ZRT_ERR_UNSUPPORTED;
    }
    if (m->stages > 1 && on_device(m)) {
        fprintf(stderr, "gpt2: a pipeline on the cuda backend is not built in this "
                        "example yet (zrt's nccl communicator moves device buffers "
                        "between stages, but no pipeline has run on GPUs)\n");
        return ZRT_ERR_UNSUPPORTED;
    }
    return m->dtype == ZRT_F32 ? ZRT_OK : plan_wide_copies(m);
}

zrt_status gpt2_plan_activations(gpt2_model *m, int slots, int recompute)
{
    if (slots < 1)
        return ZRT_ERR_INVALID_ARG;
    m->nslots = slots;
    m->recompute = recompute != 0;
    return ZRT_OK;
}

/* The layer calls of one training step without a pipeline, as gpt2_forward
 * and gpt2_backward make them: layer 0 (the embeddings) is entered again
 * for the tied output head, and stays in backward from the head to the
 * embedding. */
static int whole_model_calls(const gpt2_model *m, zrt_layer_call *calls)
{
    int L = m->cfg.num_layers, k = 0;
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
    return k;
}

/* A pipeline stage's: its layers forward, then backward, one micro-batch. */
static int stage_calls(const gpt2_model *m, zrt_layer_call *calls)
{
    int first = m->has_embed ? 0 : m->zl_block0;
    int last = m->has_head ? m->zl_lnf : m->zl_lnf - 1, k = 0;
    for (int l = first; l <= last; l++) {
        calls[k++] = (zrt_layer_call){ZRT_FORWARD_BEGIN, l};
        calls[k++] = (zrt_layer_call){ZRT_FORWARD_END, l};
    }
    for (int l = last; l >= first; l--) {
        calls[k++] = (zrt_layer_call){ZRT_BACKWARD_BEGIN, l};
        calls[k++] = (zrt_layer_call){ZRT_BACKWARD_END, l};
    }
    return k;
}

static zrt_status declare_step(gpt2_model *m)
{
    zrt_layer_call *calls = malloc((4 * (size_t)m->cfg.num_layers + 12) * sizeof *calls);
    if (!calls)
        return ZRT_ERR_OUT_OF_MEMORY;
    int k = m->stages > 1 ? stage_calls(m, calls) : whole_model_calls(m, calls);
    zrt_status st = zrt_declare_step(m->ctx, calls, k);
    free(calls);
    return st;
}

/* The head's part of wte's gradient has a buffer of its own when several
 * micro-batches add into wte's gradient, or the head is on another stage
 * (where the first stage receives it into its own). */
static int head_grad_apart(const gpt2_model *m)
{
    if (m->stages > 1) /* the last stage sums, the first receives */
        return m->has_head || m->has_embed;
    return example_accumulation_steps(m->ctx) > 1;
}

/* Every activation buffer, in allocation order: a byte count each, and
 * where gpt2_alloc_activations puts it (NULL: a gpt2_acts or a slot's). */
typedef struct act_buffer {
    size_t bytes;
    void **where;
} act_buffer;

enum { MAX_ACT_BUFFERS = 16 };

static size_t btc_bytes(const gpt2_model *m)
{
    return (size_t)m->B * m->T * m->cfg.channels * sizeof(float);
}

static acts_shape slot_shape(const gpt2_model *m)
{
    return (acts_shape){(size_t)m->num_blocks, 1, m->has_head};
}

static acts_shape one_block_shape(const gpt2_model *m)
{
    return (acts_shape){1, 0, m->has_head};
}

/* A slot: its activations (or kept inputs), and the gradient it sends back. */
static size_t slot_bytes(const gpt2_model *m)
{
    size_t bytes = m->recompute ? (size_t)(m->num_blocks + 1) * btc_bytes(m)
                                : acts_floats(m, slot_shape(m)) * sizeof(float);
    if (m->stages > 1 && !m->has_embed)
        bytes += btc_bytes(m);
    return bytes;
}

/* The gradient workspace: one block's (and the head's), the residual
 * stream's two, and the next stage's gradient. */
static size_t grads_bytes(const gpt2_model *m)
{
    size_t bytes = acts_floats(m, one_block_shape(m)) * sizeof(float) + 2 * btc_bytes(m);
    if (m->stages > 1 && !m->has_head)
        bytes += btc_bytes(m);
    return bytes;
}

static size_t wte_bytes(const gpt2_model *m)
{
    return (size_t)m->cfg.padded_vocab_size * m->cfg.channels * sizeof(float);
}

/* The buffers beside the slots and the gradient workspace. */
static int extra_buffers(gpt2_model *m, act_buffer *out)
{
    int n = 0;
    if (m->recompute)
        out[n++] = (act_buffer){acts_floats(m, one_block_shape(m)) * sizeof(float), NULL};
    if (head_grad_apart(m))
        out[n++] = (act_buffer){wte_bytes(m), (void **)&m->head_grad};
    if (m->stages > 1 && m->has_head)
        out[n++] = (act_buffer){wte_bytes(m), (void **)&m->wte_copy};
    return n;
}

zrt_status gpt2_declare_memory(gpt2_model *m)
{
    for (int k = 0; k < m->nslots; k++) {
        EXAMPLE_CHECK(zrt_declare_buffer(m->ctx, ZRT_CAT_ACTIVATION, slot_bytes(m)));
        if (on_device(m)) /* the micro-batch's inputs and targets */
            EXAMPLE_CHECK(
                zrt_declare_buffer(m->ctx, ZRT_CAT_ACTIVATION, inputs_bytes(m)));
    }
    EXAMPLE_CHECK(zrt_declare_buffer(m->ctx, ZRT_CAT_ACTIVATION, grads_bytes(m)));
    act_buffer extra[MAX_ACT_BUFFERS];
    int n = extra_buffers(m, extra);
    for (int i = 0; i < n; i++)
        EXAMPLE_CHECK(zrt_declare_buffer(m->ctx, ZRT_CAT_ACTIVATION, extra[i].bytes));
    if (m->dtype != ZRT_F32) /* the f32 copies of live layers */
        EXAMPLE_CHECK(
            zrt_declare_buffer(m->ctx, ZRT_CAT_ACTIVATION, (size_t)wide_bytes(m)));
    if (on_device(m)) /* attention's scratch */
        EXAMPLE_CHECK(zrt_declare_buffer(m->ctx, ZRT_CAT_ACTIVATION, scratch_bytes(m)));
    return declare_step(m);
}

/* One slot, in gpt2_declare_memory's order: its buffer, then (cuda) its
 * inputs and targets on the device; on the cpu backend those are host
 * memory. */
static zrt_status alloc_slot(gpt2_model *m, gpt2_slot *s)
{
    size_t bt = (size_t)m->B * m->T;
    float *rest;
    if (m->recompute) {
        EXAMPLE_CHECK(zrt_buffer_alloc(m->ctx, slot_bytes(m), ZRT_CAT_ACTIVATION,
                                       (void **)&s->keep));
        rest = s->keep + (size_t)(m->num_blocks + 1) * (btc_bytes(m) / sizeof(float));
    } else {
        /* the slot's gpt2_acts, then its dinput in the same allocation */
        EXAMPLE_CHECK(
            zrt_buffer_alloc(m->ctx, slot_bytes(m), ZRT_CAT_ACTIVATION, (void **)&rest));
        EXAMPLE_CHECK(place_acts(m, slot_shape(m), rest, &s->acts));
        rest += s->acts->count;
    }
    s->dinput = m->stages > 1 && !m->has_embed ? rest : NULL;
    if (on_device(m)) {
        EXAMPLE_CHECK(zrt_buffer_alloc(m->ctx, inputs_bytes(m), ZRT_CAT_ACTIVATION,
                                       (void **)&s->inputs));
        s->targets = s->inputs + bt;
        return ZRT_OK;
    }
    s->inputs = calloc(2 * bt, sizeof *s->inputs);
    s->targets = s->inputs ? s->inputs + bt : NULL;
    return s->inputs ? ZRT_OK : ZRT_ERR_OUT_OF_MEMORY;
}

static zrt_status alloc_grads(gpt2_model *m)
{
    float *g;
    size_t btc = btc_bytes(m) / sizeof(float);
    EXAMPLE_CHECK(
        zrt_buffer_alloc(m->ctx, grads_bytes(m), ZRT_CAT_ACTIVATION, (void **)&g));
    EXAMPLE_CHECK(place_acts(m, one_block_shape(m), g, &m->grads));
    m->dres[0] = g + m->grads->count;
    m->dres[1] = m->dres[0] + btc;
    m->dout_recv = m->stages > 1 && !m->has_head ? m->dres[1] + btc : NULL;
    return ZRT_OK;
}

static zrt_status alloc_extra(gpt2_model *m)
{
    act_buffer extra[MAX_ACT_BUFFERS];
    int n = extra_buffers(m, extra);
    for (int i = 0; i < n; i++) {
        void *p;
        EXAMPLE_CHECK(zrt_buffer_alloc(m->ctx, extra[i].bytes, ZRT_CAT_ACTIVATION, &p));
        if (extra[i].where)
            *extra[i].where = p;
        else
            EXAMPLE_CHECK(place_acts(m, one_block_shape(m), p, &m->work));
    }
    if (m->head_grad) /* sums from zero */
        EXAMPLE_CHECK(m->ops->zero(m, m->head_grad, wte_bytes(m)));
    return ZRT_OK;
}

/* cuda: the backend's state, then attention's scratch. */
static zrt_status start_device(gpt2_model *m)
{
    EXAMPLE_CHECK(cuda_start(m));
    return zrt_buffer_alloc(m->ctx, scratch_bytes(m), ZRT_CAT_ACTIVATION,
                            (void **)&m->attn_scratch);
}

static void stop_device(gpt2_model *m)
{
    zrt_buffer_free(m->ctx, m->attn_scratch);
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
    m->slots = calloc((size_t)m->nslots, sizeof *m->slots);
    if (!m->slots)
        return ZRT_ERR_OUT_OF_MEMORY;
    for (int k = 0; k < m->nslots; k++)
        EXAMPLE_CHECK(alloc_slot(m, &m->slots[k]));
    EXAMPLE_CHECK(alloc_grads(m));
    EXAMPLE_CHECK(alloc_extra(m));
    if (m->dtype != ZRT_F32)
        EXAMPLE_CHECK(alloc_wide(m));
    return on_device(m) ? start_device(m) : ZRT_OK;
}

static void free_slot(gpt2_model *m, gpt2_slot *s)
{
    zrt_buffer_free(m->ctx, m->recompute ? (void *)s->keep
                                         : (void *)(s->acts ? s->acts->memory : NULL));
    free(s->acts);
    if (on_device(m))
        zrt_buffer_free(m->ctx, s->inputs);
    else
        free(s->inputs);
}

void gpt2_free(gpt2_model *m)
{
    for (int k = 0; m->slots && k < m->nslots; k++)
        free_slot(m, &m->slots[k]);
    free(m->slots);
    if (m->grads)
        zrt_buffer_free(m->ctx, m->grads->memory);
    free(m->grads);
    if (m->work)
        zrt_buffer_free(m->ctx, m->work->memory);
    free(m->work);
    zrt_buffer_free(m->ctx, m->head_grad);
    zrt_buffer_free(m->ctx, m->wte_copy);
    zrt_buffer_free(m->ctx, m->wide[0]);
    free(m->offset);
    free(m->numel);
    free(m->layer);
    free(m->blocks);
    if (on_device(m))
        stop_device(m);
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
        return m->blocks[(l - m->first_block) * GPT2_BLOCK_TENSORS + (index - 2)];
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

/* Calls fn for every parameter this rank's stage holds, in llm.c order. */
static zrt_status for_each_slice(gpt2_model *m, slice_fn fn, void *user)
{
    size_t sizes[GPT2_NUM_TENSORS], start = 0;
    gpt2_tensor_sizes(&m->cfg, sizes);
    int L = m->cfg.num_layers;
    for (int i = 0; i < GPT2_NUM_TENSORS; i++) {
        int slices = gpt2_tensor_is_per_layer(i) ? L : 1;
        size_t per_slice = sizes[i] / (size_t)slices;
        for (int l = 0; l < slices; l++) {
            if (!gpt2_stage_holds(&m->cfg, m->stages, m->stage, i, l))
                continue;
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

/* ---- one block ------------------------------------------------------------- */

/* Pointers to one block's parameters (or gradients), valid while live. */
static zrt_status param_ptr(gpt2_model *m, zrt_param p, float **out);
static zrt_status grad_ptr(gpt2_model *m, zrt_param p, float **out);

/* Block b of the stage (model block first_block + b). */
static zrt_status block_tensors(gpt2_model *m, int b, int grads, float **t)
{
    for (int j = 0; j < GPT2_BLOCK_TENSORS; j++) {
        zrt_param p = m->blocks[b * GPT2_BLOCK_TENSORS + j];
        EXAMPLE_CHECK(grads ? grad_ptr(m, p, &t[j]) : param_ptr(m, p, &t[j]));
    }
    return ZRT_OK;
}

/* One block's activations: entry i of a gpt2_acts' per-block arrays. */
typedef struct block_acts {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *preatt, *att, *attproj;
    float *residual2, *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *fcproj;
} block_acts;

static block_acts block_at(const gpt2_model *m, const gpt2_acts *a, int i)
{
    size_t btc = (size_t)m->B * m->T * m->cfg.channels, bt = (size_t)m->B * m->T;
    size_t att = (size_t)m->B * m->cfg.num_heads * m->T * m->T, k = (size_t)i;
    return (block_acts){.ln1 = a->ln1 + k * btc,
                        .ln1_mean = a->ln1_mean + k * bt,
                        .ln1_rstd = a->ln1_rstd + k * bt,
                        .qkv = a->qkv + k * 3 * btc,
                        .atty = a->atty + k * btc,
                        .preatt = a->preatt + k * att,
                        .att = a->att + k * att,
                        .attproj = a->attproj + k * btc,
                        .residual2 = a->residual2 + k * btc,
                        .ln2 = a->ln2 + k * btc,
                        .ln2_mean = a->ln2_mean + k * bt,
                        .ln2_rstd = a->ln2_rstd + k * bt,
                        .fch = a->fch + k * 4 * btc,
                        .fch_gelu = a->fch_gelu + k * 4 * btc,
                        .fcproj = a->fcproj + k * btc};
}

/* out = block b (residual stream in -> out), its activations into x. */
static zrt_status block_forward(gpt2_model *m, int b, const block_acts *x,
                                const float *in, float *out)
{
    int B = m->B, T = m->T, C = m->cfg.channels, NH = m->cfg.num_heads;
    int BT = B * T;
    size_t btc = (size_t)BT * C;
    float *w[GPT2_BLOCK_TENSORS];
    EXAMPLE_CHECK(block_tensors(m, b, 0, w));
    EXAMPLE_CHECK(m->ops->layernorm_forward(m, x->ln1, x->ln1_mean, x->ln1_rstd, in,
                                            w[LN1W], w[LN1B], BT, C));
    EXAMPLE_CHECK(
        m->ops->matmul_forward(m, x->qkv, x->ln1, w[QKVW], w[QKVB], BT, C, 3 * C));
    EXAMPLE_CHECK(
        m->ops->attention_forward(m, x->atty, x->preatt, x->att, x->qkv, B, T, C, NH));
    EXAMPLE_CHECK(m->ops->matmul_forward(m, x->attproj, x->atty, w[ATTPROJW], w[ATTPROJB],
                                         BT, C, C));
    EXAMPLE_CHECK(m->ops->residual_forward(m, x->residual2, in, x->attproj, btc));
    EXAMPLE_CHECK(m->ops->layernorm_forward(m, x->ln2, x->ln2_mean, x->ln2_rstd,
                                            x->residual2, w[LN2W], w[LN2B], BT, C));
    EXAMPLE_CHECK(
        m->ops->matmul_forward(m, x->fch, x->ln2, w[FCW], w[FCB], BT, C, 4 * C));
    EXAMPLE_CHECK(m->ops->gelu_forward(m, x->fch_gelu, x->fch, 4 * btc));
    EXAMPLE_CHECK(m->ops->matmul_forward(m, x->fcproj, x->fch_gelu, w[FCPROJW],
                                         w[FCPROJB], BT, 4 * C, C));
    return m->ops->residual_forward(m, out, x->residual2, x->fcproj, btc);
}

/* Block b's backward: dout is the gradient of its output, din (zero on
 * entry) receives its input's; g (zero on entry) its activations'. */
static zrt_status block_backward(gpt2_model *m, int b, const block_acts *x,
                                 const block_acts *g, const float *in, const float *dout,
                                 float *din)
{
    int B = m->B, T = m->T, C = m->cfg.channels, NH = m->cfg.num_heads;
    int BT = B * T;
    size_t btc = (size_t)BT * C;
    float *w[GPT2_BLOCK_TENSORS], *dw[GPT2_BLOCK_TENSORS];
    EXAMPLE_CHECK(block_tensors(m, b, 0, w));
    EXAMPLE_CHECK(block_tensors(m, b, 1, dw));
    EXAMPLE_CHECK(m->ops->residual_backward(m, g->residual2, g->fcproj, dout, btc));
    EXAMPLE_CHECK(m->ops->matmul_backward(m, g->fch_gelu, dw[FCPROJW], dw[FCPROJB],
                                          g->fcproj, x->fch_gelu, w[FCPROJW], BT, 4 * C,
                                          C));
    EXAMPLE_CHECK(m->ops->gelu_backward(m, g->fch, x->fch, g->fch_gelu, 4 * btc));
    EXAMPLE_CHECK(m->ops->matmul_backward(m, g->ln2, dw[FCW], dw[FCB], g->fch, x->ln2,
                                          w[FCW], BT, C, 4 * C));
    EXAMPLE_CHECK(m->ops->layernorm_backward(m, g->residual2, dw[LN2W], dw[LN2B], g->ln2,
                                             x->residual2, w[LN2W], x->ln2_mean,
                                             x->ln2_rstd, BT, C));
    EXAMPLE_CHECK(m->ops->residual_backward(m, din, g->attproj, g->residual2, btc));
    EXAMPLE_CHECK(m->ops->matmul_backward(m, g->atty, dw[ATTPROJW], dw[ATTPROJB],
                                          g->attproj, x->atty, w[ATTPROJW], BT, C, C));
    EXAMPLE_CHECK(m->ops->attention_backward(m, g->qkv, g->preatt, g->att, g->atty,
                                             x->qkv, x->att, B, T, C, NH));
    EXAMPLE_CHECK(m->ops->matmul_backward(m, g->ln1, dw[QKVW], dw[QKVB], g->qkv, x->ln1,
                                          w[QKVW], BT, C, 3 * C));
    return m->ops->layernorm_backward(m, din, dw[LN1W], dw[LN1B], g->ln1, in, w[LN1W],
                                      x->ln1_mean, x->ln1_rstd, BT, C);
}

/* ---- layer calls, and the f32 view of 16-bit parameters ---------------------- */

static int copy_of(const gpt2_model *m, int layer)
{
    return layer == 0 && m->has_embed ? 0 : 1;
}

/* 16-bit: widens every parameter of the layer into its f32 copy. */
static zrt_status widen_layer(gpt2_model *m, int layer)
{
    for (zrt_param p = 0; p < m->nparams; p++) {
        if (m->layer[p] != layer)
            continue;
        void *data;
        EXAMPLE_CHECK(zrt_param_data(m->ctx, p, &data));
        EXAMPLE_CHECK(m->ops->widen(m, m->wide[copy_of(m, layer)] + m->offset[p], data,
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
        EXAMPLE_CHECK(m->ops->accumulate(m, grad,
                                         m->wide_grad[copy_of(m, layer)] + m->offset[p],
                                         (size_t)m->numel[p]));
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
            m->ops->zero(m, m->wide_grad[copy_of(m, layer)],
                         (size_t)m->wide_numel[copy_of(m, layer)] * sizeof(float)));
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
        *out = m->wide[copy_of(m, m->layer[p])] + m->offset[p];
        return ZRT_OK;
    }
    return zrt_param_data(m->ctx, p, (void **)out);
}

static zrt_status grad_ptr(gpt2_model *m, zrt_param p, float **out)
{
    if (m->dtype != ZRT_F32) {
        *out = m->wide_grad[copy_of(m, m->layer[p])] + m->offset[p];
        return ZRT_OK;
    }
    return zrt_grad_data(m->ctx, p, (void **)out);
}

/* ---- where a micro-batch's activations are ------------------------------------ */

static size_t btc_floats(const gpt2_model *m)
{
    return (size_t)m->B * m->T * m->cfg.channels;
}

/* The input of block b (b = num_blocks: the stage's output). */
static float *block_input(const gpt2_model *m, const gpt2_slot *s, int b)
{
    if (m->recompute)
        return s->keep + (size_t)b * btc_floats(m);
    return b == 0 ? s->acts->encoded
                  : s->acts->residual3 + (size_t)(b - 1) * btc_floats(m);
}

static float *stage_output(const gpt2_model *m, const gpt2_slot *s)
{
    return block_input(m, s, m->num_blocks);
}

/* The head's activations (lnf .. losses). */
static gpt2_acts *head_acts(const gpt2_model *m, const gpt2_slot *s)
{
    return m->recompute ? m->work : s->acts;
}

/* The weights the head multiplies by: wte, or the last stage's copy. */
static zrt_status head_weights(gpt2_model *m, float **wte)
{
    if (m->stages > 1) {
        *wte = m->wte_copy;
        return ZRT_OK;
    }
    return param_ptr(m, m->wte, wte);
}

/* ---- forward ----------------------------------------------------------------- */

/* Pipeline tags of zrt_pipe_send_to / zrt_pipe_recv_from. */
enum { TAG_WTE = 1, TAG_HEAD_GRAD = 2 };

/* The first stage's part of the tie: wte's values to the last stage, once
 * after every optimizer step (inside layer 0, where stage 3 has gathered
 * them). */
static zrt_status send_tied_weights(gpt2_model *m)
{
    if (m->stages == 1 || !m->tie_stale)
        return ZRT_OK;
    float *wte;
    EXAMPLE_CHECK(param_ptr(m, m->wte, &wte));
    EXAMPLE_CHECK(zrt_pipe_send_to(m->ctx, m->stages - 1, TAG_WTE, wte, wte_bytes(m)));
    m->tie_stale = 0;
    return ZRT_OK;
}

/* The last stage's: receives them before anything else of the pass (the
 * first stage sends them first). */
static zrt_status receive_tied_weights(gpt2_model *m)
{
    if (m->stages == 1 || !m->tie_stale)
        return ZRT_OK;
    EXAMPLE_CHECK(zrt_pipe_recv_from(m->ctx, 0, TAG_WTE, m->wte_copy, wte_bytes(m)));
    m->tie_stale = 0;
    return ZRT_OK;
}

static zrt_status embed(gpt2_model *m, gpt2_slot *s)
{
    float *wte, *wpe;
    EXAMPLE_CHECK(enter(m, 0, 0));
    EXAMPLE_CHECK(send_tied_weights(m));
    EXAMPLE_CHECK(param_ptr(m, m->wte, &wte));
    EXAMPLE_CHECK(param_ptr(m, m->wpe, &wpe));
    EXAMPLE_CHECK(m->ops->encoder_forward(m, block_input(m, s, 0), s->inputs, wte, wpe,
                                          m->B, m->T, m->cfg.channels));
    return leave(m, 0, 0);
}

/* The final layernorm, the head's logits and (with targets) the softmax and
 * losses, from the stage's output, into a. Layer zl_lnf is live. */
static zrt_status head_forward(gpt2_model *m, gpt2_slot *s, gpt2_acts *a)
{
    int BT = m->B * m->T, C = m->cfg.channels;
    float *w, *b, *wte;
    EXAMPLE_CHECK(param_ptr(m, m->lnfw, &w));
    EXAMPLE_CHECK(param_ptr(m, m->lnfb, &b));
    EXAMPLE_CHECK(m->ops->layernorm_forward(m, a->lnf, a->lnf_mean, a->lnf_rstd,
                                            stage_output(m, s), w, b, BT, C));
    EXAMPLE_CHECK(head_weights(m, &wte));
    EXAMPLE_CHECK(m->ops->matmul_forward(m, a->logits, a->lnf, wte, NULL, BT, C,
                                         m->cfg.padded_vocab_size));
    if (!s->has_targets)
        return ZRT_OK;
    return m->ops->xent_forward(m, a->probs, a->losses, a->logits, s->targets, BT,
                                m->cfg.vocab_size, m->cfg.padded_vocab_size);
}

/* The mean of the per-position losses, on the host. */
static zrt_status mean_loss(gpt2_model *m, const gpt2_acts *a)
{
    int BT = m->B * m->T;
    const float *losses = m->ops->host_view(m, a->losses, (size_t)BT * sizeof(float));
    if (!losses)
        return ZRT_ERR_INTERNAL;
    double sum = 0;
    for (int i = 0; i < BT; i++)
        sum += losses[i];
    m->loss = (float)(sum / BT);
    return ZRT_OK;
}

/* The head, without a pipeline as llm.c orders it: the final layernorm in
 * its layer, the logits in layer 0 (wte) entered again. */
static zrt_status whole_model_head(gpt2_model *m, gpt2_slot *s, gpt2_acts *a)
{
    int BT = m->B * m->T, C = m->cfg.channels;
    float *w, *b, *wte;
    EXAMPLE_CHECK(enter(m, m->zl_lnf, 0));
    EXAMPLE_CHECK(param_ptr(m, m->lnfw, &w));
    EXAMPLE_CHECK(param_ptr(m, m->lnfb, &b));
    EXAMPLE_CHECK(m->ops->layernorm_forward(m, a->lnf, a->lnf_mean, a->lnf_rstd,
                                            stage_output(m, s), w, b, BT, C));
    EXAMPLE_CHECK(leave(m, m->zl_lnf, 0));
    EXAMPLE_CHECK(enter(m, 0, 0));
    EXAMPLE_CHECK(param_ptr(m, m->wte, &wte));
    EXAMPLE_CHECK(m->ops->matmul_forward(m, a->logits, a->lnf, wte, NULL, BT, C,
                                         m->cfg.padded_vocab_size));
    EXAMPLE_CHECK(leave(m, 0, 0));
    if (!s->has_targets)
        return ZRT_OK;
    return m->ops->xent_forward(m, a->probs, a->losses, a->logits, s->targets, BT,
                                m->cfg.vocab_size, m->cfg.padded_vocab_size);
}

static zrt_status head(gpt2_model *m, gpt2_slot *s)
{
    gpt2_acts *a = head_acts(m, s);
    if (m->stages == 1)
        EXAMPLE_CHECK(whole_model_head(m, s, a));
    else {
        EXAMPLE_CHECK(enter(m, m->zl_lnf, 0));
        EXAMPLE_CHECK(head_forward(m, s, a));
        EXAMPLE_CHECK(leave(m, m->zl_lnf, 0));
    }
    return s->has_targets ? mean_loss(m, a) : ZRT_OK;
}

static zrt_status forward_blocks(gpt2_model *m, gpt2_slot *s)
{
    for (int b = 0; b < m->num_blocks; b++) {
        block_acts x =
            block_at(m, m->recompute ? m->work : s->acts, m->recompute ? 0 : b);
        EXAMPLE_CHECK(enter(m, m->zl_block0 + b, 0));
        EXAMPLE_CHECK(
            block_forward(m, b, &x, block_input(m, s, b), block_input(m, s, b + 1)));
        EXAMPLE_CHECK(leave(m, m->zl_block0 + b, 0));
    }
    return ZRT_OK;
}

static gpt2_slot *slot_at(gpt2_model *m, int slot)
{
    return slot >= 0 && slot < m->nslots && m->slots ? &m->slots[slot] : NULL;
}

zrt_status gpt2_forward_slot(gpt2_model *m, int slot, const int *inputs,
                             const int *targets)
{
    gpt2_slot *s = slot_at(m, slot);
    size_t bt = (size_t)m->B * m->T;
    if (!s)
        return ZRT_ERR_INVALID_ARG;
    s->has_targets = targets != NULL && m->has_head;
    if (m->has_embed)
        EXAMPLE_CHECK(m->ops->upload(m, s->inputs, inputs, bt * sizeof *inputs));
    if (s->has_targets)
        EXAMPLE_CHECK(m->ops->upload(m, s->targets, targets, bt * sizeof *targets));
    if (m->has_head)
        EXAMPLE_CHECK(receive_tied_weights(m));
    if (m->has_embed)
        EXAMPLE_CHECK(embed(m, s));
    else
        EXAMPLE_CHECK(zrt_pipe_recv(m->ctx, block_input(m, s, 0), btc_bytes(m)));
    EXAMPLE_CHECK(forward_blocks(m, s));
    if (m->has_head)
        return head(m, s);
    return zrt_pipe_send(m->ctx, stage_output(m, s), btc_bytes(m));
}

zrt_status gpt2_forward(gpt2_model *m, const int *inputs, const int *targets)
{
    return gpt2_forward_slot(m, 0, inputs, targets);
}

const float *gpt2_logits_at(const gpt2_model *m, int t)
{
    size_t Vp = (size_t)m->cfg.padded_vocab_size;
    if (!m->has_head || !m->slots)
        return NULL;
    const gpt2_acts *a = head_acts(m, &m->slots[0]);
    return m->ops->host_view(m, a->logits + (size_t)t * Vp, Vp * sizeof(float));
}

zrt_status gpt2_wait(gpt2_model *m)
{
    return m->ops->wait(m);
}

/* ---- backward ----------------------------------------------------------------- */

/* Where the head's part of wte's gradient goes: wte's gradient itself, or
 * the buffer of its own (head_grad_apart). */
static zrt_status head_dweights(gpt2_model *m, float **out)
{
    if (m->head_grad) {
        *out = m->head_grad;
        return ZRT_OK;
    }
    return grad_ptr(m, m->wte, out);
}

/* The head's backward, from the loss to the gradient of the stage's output
 * (into *dout, zero on entry). Layer zl_lnf is live (and, without a
 * pipeline, layer 0). */
static zrt_status head_backward(gpt2_model *m, gpt2_slot *s, float *dout)
{
    int BT = m->B * m->T, C = m->cfg.channels;
    gpt2_acts *a = head_acts(m, s), *g = m->grads;
    float scale; /* fp16: the loss is scaled, so every gradient is */
    float *w, *dw, *db, *wte, *dwte;
    if (m->recompute)
        EXAMPLE_CHECK(head_forward(m, s, a));
    EXAMPLE_CHECK(zrt_loss_scale(m->ctx, &scale));
    EXAMPLE_CHECK(m->ops->xent_backward(m, g->logits, a->probs, s->targets,
                                        scale * m->loss_grad_factor / (float)BT, BT,
                                        m->cfg.vocab_size, m->cfg.padded_vocab_size));
    EXAMPLE_CHECK(head_weights(m, &wte));
    EXAMPLE_CHECK(head_dweights(m, &dwte));
    EXAMPLE_CHECK(m->ops->matmul_backward(m, g->lnf, dwte, NULL, g->logits, a->lnf, wte,
                                          BT, C, m->cfg.padded_vocab_size));
    EXAMPLE_CHECK(param_ptr(m, m->lnfw, &w));
    EXAMPLE_CHECK(grad_ptr(m, m->lnfw, &dw));
    EXAMPLE_CHECK(grad_ptr(m, m->lnfb, &db));
    return m->ops->layernorm_backward(m, dout, dw, db, g->lnf, stage_output(m, s), w,
                                      a->lnf_mean, a->lnf_rstd, BT, C);
}

/* Backward through the stage's blocks, last first: *dout holds the gradient
 * of the stage's output on entry, of its input on return (the slot's
 * dinput on a stage that sends it back). */
static zrt_status backward_blocks(gpt2_model *m, gpt2_slot *s, float **dout)
{
    size_t bytes = btc_bytes(m);
    block_acts g = block_at(m, m->grads, 0);
    for (int b = m->num_blocks - 1; b >= 0; b--) {
        float *din = *dout == m->dres[0] ? m->dres[1] : m->dres[0];
        if (b == 0 && s->dinput)
            din = s->dinput;
        EXAMPLE_CHECK(m->ops->zero(m, din, bytes));
        EXAMPLE_CHECK(
            m->ops->zero(m, m->grads->ln1, m->grads->block_count * sizeof(float)));
        EXAMPLE_CHECK(enter(m, m->zl_block0 + b, 1));
        const float *in = block_input(m, s, b);
        block_acts x =
            block_at(m, m->recompute ? m->work : s->acts, m->recompute ? 0 : b);
        if (m->recompute) /* the output goes to scratch: the slot keeps it */
            EXAMPLE_CHECK(block_forward(m, b, &x, in, m->work->residual3));
        EXAMPLE_CHECK(block_backward(m, b, &x, &g, in, *dout, din));
        EXAMPLE_CHECK(leave(m, m->zl_block0 + b, 1));
        *dout = din;
    }
    return ZRT_OK;
}

/* True in the last micro-batch of an optimizer step. */
static zrt_status at_boundary(gpt2_model *m, int *out)
{
    return zrt_is_accumulation_boundary(m->ctx, out);
}

/* The head's part of wte's gradient joins the embedding's in the last
 * micro-batch, before the embedding's own: the same additions in the same
 * order with and without a pipeline. Layer 0 is live. */
static zrt_status add_head_grad(gpt2_model *m, float *dwte)
{
    int boundary;
    size_t n = wte_bytes(m) / sizeof(float);
    EXAMPLE_CHECK(at_boundary(m, &boundary));
    if (!m->head_grad || !boundary) /* or the head added into dwte itself */
        return ZRT_OK;
    if (m->stages > 1)
        EXAMPLE_CHECK(zrt_pipe_recv_from(m->ctx, m->stages - 1, TAG_HEAD_GRAD,
                                         m->head_grad, wte_bytes(m)));
    EXAMPLE_CHECK(m->ops->residual_forward(m, dwte, dwte, m->head_grad, n));
    return m->ops->zero(m, m->head_grad, wte_bytes(m));
}

/* The last stage's part: its sum goes to the first stage, after the
 * backward's own transfer (which the first stage waits for first). */
static zrt_status send_head_grad(gpt2_model *m)
{
    int boundary;
    EXAMPLE_CHECK(at_boundary(m, &boundary));
    if (!boundary)
        return ZRT_OK;
    EXAMPLE_CHECK(zrt_pipe_send_to(m->ctx, 0, TAG_HEAD_GRAD, m->head_grad, wte_bytes(m)));
    m->tie_stale = 1; /* the optimizer step follows */
    return m->ops->zero(m, m->head_grad, wte_bytes(m));
}

static zrt_status embedding_backward(gpt2_model *m, gpt2_slot *s, const float *dinput)
{
    float *dwte, *dwpe;
    int boundary;
    if (m->stages > 1) /* without a pipeline layer 0 is open since the head */
        EXAMPLE_CHECK(enter(m, 0, 1));
    EXAMPLE_CHECK(grad_ptr(m, m->wte, &dwte));
    EXAMPLE_CHECK(grad_ptr(m, m->wpe, &dwpe));
    EXAMPLE_CHECK(add_head_grad(m, dwte));
    EXAMPLE_CHECK(m->ops->encoder_backward(m, dwte, dwpe, dinput, s->inputs, m->B, m->T,
                                           m->cfg.channels));
    EXAMPLE_CHECK(at_boundary(m, &boundary));
    if (boundary && m->stages > 1)
        m->tie_stale = 1; /* the optimizer step follows */
    return leave(m, 0, 1);
}

/* The gradient of the stage's output: from the loss on the last stage, else
 * from the next stage. */
static zrt_status output_gradient(gpt2_model *m, gpt2_slot *s, float **dout)
{
    if (!m->has_head) {
        *dout = m->dout_recv;
        return zrt_pipe_recv(m->ctx, *dout, btc_bytes(m));
    }
    *dout = m->dres[0];
    EXAMPLE_CHECK(m->ops->zero(m, *dout, btc_bytes(m)));
    if (m->stages == 1) /* layer 0 stays open from the head to the embedding */
        EXAMPLE_CHECK(enter(m, 0, 1));
    EXAMPLE_CHECK(enter(m, m->zl_lnf, 1));
    EXAMPLE_CHECK(head_backward(m, s, *dout));
    return leave(m, m->zl_lnf, 1);
}

zrt_status gpt2_backward_slot(gpt2_model *m, int slot)
{
    gpt2_slot *s = slot_at(m, slot);
    if (!s)
        return ZRT_ERR_INVALID_ARG;
    if (m->has_head && !s->has_targets)
        return ZRT_ERR_STATE;
    float *dout;
    EXAMPLE_CHECK(m->ops->zero(m, m->grads->memory, m->grads->count * sizeof(float)));
    EXAMPLE_CHECK(output_gradient(m, s, &dout));
    EXAMPLE_CHECK(backward_blocks(m, s, &dout));
    if (m->has_embed)
        EXAMPLE_CHECK(embedding_backward(m, s, dout));
    else
        EXAMPLE_CHECK(zrt_pipe_send(m->ctx, dout, btc_bytes(m)));
    if (m->stages > 1 && m->has_head)
        EXAMPLE_CHECK(send_head_grad(m));
    return ZRT_OK;
}

zrt_status gpt2_backward(gpt2_model *m)
{
    return gpt2_backward_slot(m, 0);
}
