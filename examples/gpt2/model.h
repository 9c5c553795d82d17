/* SPDX-License-Identifier: Apache-2.0 */
/*
 * examples/gpt2/model.h — GPT-2 as a zrt training loop sees it.
 *
 * zrt layers: 0 = embeddings (wte, wpe), 1..L = the transformer blocks,
 * L+1 = the final layernorm. Stage 3 therefore gathers one block at a time
 * and prefetches the next. The output head is tied to wte: forward enters
 * layer 0 a second time for the logits, and backward keeps layer 0 open from
 * the head's gradient to the embedding's (one backward per layer per step).
 *
 * Pipeline (zrt's "pipeline_stages" P > 1): each stage registers and runs
 * its own blocks, a contiguous run of L / P (the first L % P stages one
 * more); the first stage also holds the embeddings (zrt layer 0), the last
 * the final layernorm and the output head. zrt layers are numbered per
 * stage: 0 = the embeddings (first stage), then the blocks, then the final
 * layernorm (last stage). The tie crosses stages as two transfers between
 * the first and the last stage's ranks of equal data-parallel rank: before
 * the first forward after an optimizer step the first stage sends wte's
 * values to the last, which computes the head with that copy; the head's
 * part of wte's gradient is accumulated on the last stage over the
 * micro-batches and sent to the first stage in the last backward, which
 * adds it into wte's gradient before the embedding's own. A data-parallel
 * run with gradient accumulation does the same additions in the same order
 * (the head's part in its own buffer), so the bits match.
 *
 * Activation recomputation (gpt2_plan_activations): a micro-batch keeps
 * only each block's input and the stage's output; backward recomputes one
 * block at a time (and the head) into a one-block workspace.
 *
 * Backends: on zrt's cpu backend the operations are layers.c's; on the cuda
 * backend (config "backend": "cuda", a build with CUDA) they are
 * examples/gpt2/cuda's kernels and cuBLAS products, launched on zrt's device
 * stream, and every tensor the step touches (parameters, gradients,
 * activations, the step's inputs) is device memory. The functions below
 * behave the same on both: the host sees the loss, the logits of
 * gpt2_logits_at and llm.c-layout copies of parameters and gradients.
 */
#ifndef ZRT_EXAMPLES_GPT2_MODEL_H
#define ZRT_EXAMPLES_GPT2_MODEL_H

#include "gpt2.h"
#include "zrt/zrt.h"

#define GPT2_BLOCK_TENSORS 12 /* llm.c tensors 2..13, one slice per block */

typedef struct gpt2_acts gpt2_acts; /* activations, see model.c */
typedef struct gpt2_slot gpt2_slot; /* one micro-batch's, see model.c */
struct gpt2_ops;                    /* the step's operations, see model.c */
struct gpt2_cuda;                   /* examples/gpt2/cuda/layers_cuda.h */

typedef struct gpt2_model {
    gpt2_config cfg;
    zrt_ctx *ctx;
    int B, T;                       /* this rank's batch and sequence length */
    zrt_param wte, wpe, lnfw, lnfb; /* -1 where another stage holds them */
    zrt_param *blocks;              /* (num_blocks, GPT2_BLOCK_TENSORS) */
    /* This rank's pipeline stage (one stage holding everything without a
     * pipeline): blocks [first_block, first_block + num_blocks), and the
     * zrt layer numbers of its embeddings, first block and final layernorm. */
    int stage, stages;
    int first_block, num_blocks;
    int has_embed, has_head;
    int zl_block0, zl_lnf;
    /* Activations: nslots micro-batches' (gpt2_plan_activations), each in a
     * slot; with recompute a slot keeps each block's input and the stage's
     * output, and `work` holds one block's (and the head's) activations
     * while backward recomputes them. */
    int recompute, nslots;
    gpt2_slot *slots;
    gpt2_acts *work;
    gpt2_acts *grads; /* one block's gradients (and the head's) */
    float *dres[2];   /* gradient of the residual stream between blocks */
    float *dout_recv; /* pipeline, not the last stage: the next stage's gradient */
    /* The tied head: its part of wte's gradient, summed over the
     * micro-batches when they are several or the head is on another stage
     * than the embedding; the last stage's copy of wte (pipeline). */
    float *head_grad, *wte_copy;
    int tie_stale;          /* wte changed since the last stage's copy was made */
    float loss;             /* this rank's mean loss of the last forward */
    float loss_grad_factor; /* multiplies the loss gradient: 1, or inf to
                               force an fp16 overflow (--overflow-at) */
    /* 16-bit parameters (bf16/fp16 in the config): the math stays f32. A
     * live layer's parameters are widened into an f32 copy, and its
     * gradients accumulate in f32 and are added into zrt's 16-bit buffers
     * when its backward ends. Layer 0 has its own pair (its backward stays
     * open while the others run); the other layers share one. */
    zrt_dtype dtype;
    int nparams;                   /* zrt handles 0 .. nparams-1 */
    int64_t *offset;               /* by handle: where it starts in its layer's copy */
    int64_t *numel;                /* by handle */
    int *layer;                    /* by handle */
    float *wide[2], *wide_grad[2]; /* [0]: layer 0, [1]: the others */
    int64_t wide_numel[2];
    /* Where the step runs (set by gpt2_register from the config). */
    const struct gpt2_ops *ops; /* layers.c's or the CUDA ones */
    struct gpt2_cuda *cuda;     /* cuda backend: stream and cuBLAS handle */
    float *attn_scratch;        /* cuda backend: attention's scratch (device) */
    float *host_view;           /* cuda backend: losses or a row of logits,
                                   copied back (max(B*T, Vp) floats) */
} gpt2_model;

/* Registers the parameters with ctx (before zrt_finalize_params) and
 * allocates activations for (B, T) from zrt's budget (after). */
zrt_status gpt2_register(gpt2_model *m, zrt_ctx *ctx, const gpt2_config *cfg, int B,
                         int T);
/* Before gpt2_declare_memory (else 1 slot, no recompute): how many
 * micro-batches' activations the stage holds (zrt_pipe_slots), and whether
 * backward recomputes each block from its input. */
zrt_status gpt2_plan_activations(gpt2_model *m, int slots, int recompute);
/* Declares, before zrt_finalize_params, what the memory plan needs from the
 * model: the layer calls of a training step and the activation buffers. */
zrt_status gpt2_declare_memory(gpt2_model *m);
zrt_status gpt2_alloc_activations(gpt2_model *m);
void gpt2_free(gpt2_model *m);

/* Produces elements [first, first + count) of llm.c tensor `index` (the
 * whole tensor: every layer's slice, in order) into dst, host memory. */
typedef zrt_status (*gpt2_fill_fn)(void *user, int index, size_t first, size_t count,
                                   float *dst);
/* Sets every parameter without holding the model: for each zrt parameter,
 * this rank's owned range (zrt_param_owned_range; stage 3: its shard) is
 * asked from fill in pieces of at most 1 Mi elements and written with
 * zrt_param_write_range. Host memory beyond zrt's: one piece (4 MiB, and
 * 2 MiB more for 16-bit parameters). Every rank calls it (at stage 3 every
 * rank writes every parameter, possibly nothing of it). */
zrt_status gpt2_fill_params(gpt2_model *m, gpt2_fill_fn fill, void *user);
/* Initializes every parameter from seed: N(0, 0.02) weights, residual
 * projections scaled by 1/sqrt(2L), layernorm weights 1, biases 0. Each
 * normal is a function of (seed, tensor, element index) alone — a
 * counter-based generator (splitmix64 of the counter, Box-Muller) — so
 * the values are the same for any world size and stage, and a rank
 * computes only the elements it keeps (gpt2_fill_params). */
zrt_status gpt2_init_params(gpt2_model *m, uint64_t seed);
/* Loads an llm.c model file of m's shape, each rank reading (pread) only
 * the parameters it keeps, a piece at a time. ZRT_ERR_IO with a sentence
 * naming the file in err when it cannot be read or has another shape. */
zrt_status gpt2_load_params(gpt2_model *m, const char *path, char *err, size_t err_size);
/* Loads / saves all parameters in llm.c's layout (host array of
 * gpt2_tensor_sizes floats). Collective at stage 3. */
zrt_status gpt2_set_params(gpt2_model *m, const float *params);
zrt_status gpt2_get_params(gpt2_model *m, float *params);
/* After backward, before zrt_step: the gradients averaged over ranks, in
 * llm.c's layout. Collective at stages 1-3. */
zrt_status gpt2_get_grads(gpt2_model *m, float *grads);

/* Collective. Forward over inputs (B,T); with targets, also the loss
 * (m->loss, mean over this rank's B*T positions). */
zrt_status gpt2_forward(gpt2_model *m, const int *inputs, const int *targets);
/* Collective. Backward of the last forward (which had targets); gradients
 * go to zrt, averaged over ranks when the reductions complete. */
zrt_status gpt2_backward(gpt2_model *m);
/* The same for micro-batch activations in slot `slot`, inside a zrt
 * pipeline pass (zrt_pipe_next's op): a stage after the first receives its
 * input, one before the last sends its output (and in backward the other
 * way). inputs are read on the first stage, targets on the last (the loss:
 * m->loss there). gpt2_forward and gpt2_backward are slot 0. */
zrt_status gpt2_forward_slot(gpt2_model *m, int slot, const int *inputs,
                             const int *targets);
zrt_status gpt2_backward_slot(gpt2_model *m, int slot);
/* 1 when llm.c tensor `index` (its slice of layer l, if per layer) is on
 * pipeline stage `stage` of `stages` (the block partition of model.h). */
int gpt2_stage_holds(const gpt2_config *cfg, int stages, int stage, int index, int l);
/* Logits of position t (the last stage of a pipeline) (b * T + t for batch row b) after a
 * forward: Vp floats in host memory. On the cuda backend they are copied back, into a
 * buffer the next call (or the next forward's loss) overwrites; NULL if
 * that copy fails. */
const float *gpt2_logits_at(const gpt2_model *m, int t);
/* Returns when the work queued so far has finished on the device (at once on
 * the cpu backend): for step timings. */
zrt_status gpt2_wait(gpt2_model *m);

#endif
