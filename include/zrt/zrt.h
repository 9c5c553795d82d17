/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zrt.h — the public API of zrt, a ZeRO runtime for C training loops.
 *
 * A training loop creates a context from a config, registers its parameters
 * (name, shape, dtype, owning layer), calls zrt_finalize_params() to build the
 * partition plan, then wraps each layer's forward and backward in
 * zrt_forward_begin/end and zrt_backward_begin/end. Between those calls the
 * layer's full parameters (and, in backward, its gradient buffer) are live and
 * reachable through zrt_param_data() / zrt_grad_data(); outside them they may
 * not exist on this rank (stage 3 keeps only a shard). zrt_step() runs AdamW on
 * the shards this rank owns.
 *
 * Conventions (every call):
 *   - returns a zrt_status; ZRT_OK is 0;
 *   - out-parameters come last and are left untouched on failure;
 *   - on failure zrt_last_error(ctx) holds one sentence saying what went wrong
 *     and where (rank, sizes, budget, file).
 * Calls that are collective (every rank must make them, in the same order) say
 * so. The library never exits or aborts the process; zrt_abort_job() is the
 * one call that ends the job, and only when the caller asks.
 *
 * Threads and lifetimes (the contract; libuv's and liburing's are the model):
 *   - One thread drives one context: every call on a context comes from the
 *     thread that created it. The runtime asks MPI for MPI_THREAD_FUNNELED
 *     (only the thread that initialized MPI calls it), and collectives must
 *     be started in the same order on every rank, which one driving thread
 *     makes true. Calls on a context are not thread-safe; nothing in zrt
 *     takes a lock for the caller. One context per process is what is tested.
 *   - Threads of zrt's own: a pool of helper threads (optimizer updates, bound
 *     near their memory), one I/O thread per NVMe tier, and with NCCL a
 *     watchdog. They touch only the context's buffers while a call that
 *     started their work is running, never call MPI and never call back into
 *     the loop; zrt_ctx_destroy joins them.
 *   - zrt_config_* and zrt_estimate_memory/zrt_fit_* use no context and no
 *     state of their own: any thread may call them at any time.
 *   - Strings returned by zrt_last_error() and zrt_param_name() are owned by
 *     the context: zrt_last_error's until the next failing call on that
 *     context or zrt_ctx_destroy, zrt_param_name's until zrt_ctx_destroy.
 *     Copy them to keep them longer. zrt_status_str() returns static text.
 *   - Who frees what: memory from zrt_buffer_alloc() is freed with
 *     zrt_buffer_free() (or by zrt_ctx_destroy); pointers from
 *     zrt_param_data()/zrt_grad_data() are the runtime's and valid only while
 *     their layer is live; everything else the caller passes in (configs,
 *     descriptors, names, source arrays) is copied or only read during the
 *     call, and stays the caller's.
 */
#ifndef ZRT_ZRT_H
#define ZRT_ZRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ZRT_API __attribute__((visibility("default")))
#else
#define ZRT_API
#endif

#define ZRT_VERSION_MAJOR 0
#define ZRT_VERSION_MINOR 1
#define ZRT_VERSION_PATCH 0

/* ---- status codes --------------------------------------------------------
 * One list, expanded into the enum and into zrt_status_str(). */
#define ZRT_STATUS_LIST(X)                                                               \
    X(ZRT_OK, 0, "ok")                                                                   \
    X(ZRT_ERR_INVALID_ARG, 1, "invalid argument")                                        \
    X(ZRT_ERR_CONFIG, 2, "invalid configuration")                                        \
    X(ZRT_ERR_OUT_OF_MEMORY, 3, "out of memory")                                         \
    X(ZRT_ERR_STATE, 4, "call not valid in the current state")                           \
    X(ZRT_ERR_COMM, 5, "communication failure")                                          \
    X(ZRT_ERR_IO, 6, "input/output failure")                                             \
    X(ZRT_ERR_UNSUPPORTED, 7, "not supported by this build or backend")                  \
    X(ZRT_ERR_REMOTE, 8, "another rank failed")                                          \
    X(ZRT_ERR_INTERNAL, 9, "internal error")                                             \
    X(ZRT_ERR_NUMERIC, 10, "numerical failure")

typedef enum zrt_status {
#define ZRT_STATUS_ENUM(name, value, text) name = value,
    ZRT_STATUS_LIST(ZRT_STATUS_ENUM)
#undef ZRT_STATUS_ENUM
} zrt_status;

/* Short fixed name of a status code ("ZRT_ERR_CONFIG"); never NULL. */
ZRT_API const char *zrt_status_str(zrt_status status);
/* What a status code means in words ("invalid configuration"); never NULL. */
ZRT_API const char *zrt_status_text(zrt_status status);

/* ---- element types, memory categories and tiers ------------------------- */
typedef enum zrt_dtype {
    ZRT_F32 = 0,
    ZRT_BF16 = 1, /* 16-bit parameters: with bf16.enabled */
    ZRT_F16 = 2,  /* 16-bit parameters: with fp16.enabled */
    ZRT_DTYPE_COUNT
} zrt_dtype;

ZRT_API const char *zrt_dtype_str(zrt_dtype dtype);
ZRT_API size_t zrt_dtype_size(zrt_dtype dtype); /* bytes; 0 for a bad value */

/* What a block of memory holds. Every allocation the runtime makes carries
 * one, and zrt_mem_stats() reports current and peak bytes for each. */
#define ZRT_CATEGORY_LIST(X)                                                             \
    X(ZRT_CAT_PARAM, "param") /* owned params: full (0-2), shard (3) */                  \
    X(ZRT_CAT_PARAM_GATHER,                                                              \
      "param-gather") /* stage 3: gathered layers, live or prefetched */                 \
    X(ZRT_CAT_PARAM_PERSIST, "param-persist") /* stage 3: small layers kept gathered */  \
    X(ZRT_CAT_GRAD, "grad")                   /* owned grads: full (0-1), shard (2-3) */ \
    X(ZRT_CAT_GRAD_BUCKET,                                                               \
      "grad-bucket")                    /* stage 2-3: full layer grads until reduced */  \
    X(ZRT_CAT_MASTER, "master")         /* fp32 master copy of 16-bit params */          \
    X(ZRT_CAT_OPTIM, "optim")           /* Adam moments m and v */                       \
    X(ZRT_CAT_COMM, "comm")             /* communicator scratch */                       \
    X(ZRT_CAT_ACTIVATION, "activation") /* declared by the training loop */              \
    X(ZRT_CAT_STAGING, "staging")       /* offload staging */                            \
    X(ZRT_CAT_HPZ, "hpz")               /* stage 3 hpZ: secondary parameter shards */    \
    X(ZRT_CAT_QWZ, "qwz")               /* stage 3 qwZ: quantized gather buffers */      \
    X(ZRT_CAT_TOPK_RESIDUAL,                                                             \
      "topk-residual") /* stages 0-1 top-k: what was not sent yet */                     \
    X(ZRT_CAT_CKPT_BUFFER,                                                               \
      "ckpt-buffer") /* asynchronous checkpoints: shards on their way to disk */

typedef enum zrt_category {
#define ZRT_CATEGORY_ENUM(name, text) name,
    ZRT_CATEGORY_LIST(ZRT_CATEGORY_ENUM)
#undef ZRT_CATEGORY_ENUM
        ZRT_CAT_COUNT
} zrt_category;

typedef enum zrt_tier {
    ZRT_TIER_DEVICE = 0, /* the backend's device memory (host memory on cpu) */
    ZRT_TIER_HOST = 1,   /* pinned host memory */
    ZRT_TIER_NVME = 2,   /* swap files */
    ZRT_TIER_COUNT
} zrt_tier;

ZRT_API const char *zrt_category_str(zrt_category category);
ZRT_API const char *zrt_tier_str(zrt_tier tier);

/* ---- configuration -------------------------------------------------------
 * Where offloaded state lives (DeepSpeed's offload_optimizer/offload_param
 * "device"). */
typedef enum zrt_offload_device {
    ZRT_OFFLOAD_NONE = 0, /* on the device */
    ZRT_OFFLOAD_CPU = 1,  /* in host memory; the optimizer runs on the CPU */
    ZRT_OFFLOAD_NVME = 2  /* in swap files under nvme_path */
} zrt_offload_device;

typedef struct zrt_offload_config {
    int device;          /* zrt_offload_device */
    char nvme_path[256]; /* directory for swap files (device nvme) */
    int pin_memory;      /* page-locked host buffers */
    int buffer_count;    /* staging buffers */
} zrt_offload_config;

/* DeepSpeed's "aio" section: how the NVMe tier drives io_uring. */
typedef struct zrt_aio_config {
    int64_t block_size; /* bytes per I/O */
    int queue_depth;    /* I/Os in flight */
    int thread_count;
    int single_submit;
    int overlap_events;
} zrt_aio_config;

/*
 * Fill with zrt_config_init(), then override fields, a JSON file
 * (zrt_config_load_file) or a JSON string. Bucket sizes count elements, as in
 * DeepSpeed's zero_optimization section; memory limits count bytes. */
/* DeepSpeed's "fp16" section: the dynamic loss scaler (loss_scale 0) or a
 * fixed scale. */
typedef struct zrt_fp16_config {
    int enabled;
    float loss_scale;        /* 0: dynamic */
    int initial_scale_power; /* dynamic: start at 2^this (16) */
    int loss_scale_window;   /* double the scale after this many good steps (1000) */
    int hysteresis;          /* overflows tolerated before halving (2) */
    float min_loss_scale;    /* never below (1) */
} zrt_fp16_config;

typedef struct zrt_bf16_config {
    int enabled;
} zrt_bf16_config;

#define ZRT_DTYPE_DEFAULT (-1) /* reduce_dtype: the parameters' type */

/* "stage": "auto": zrt_finalize_params picks the first configuration of
 * zrt_fit_ladder() whose memory plan fits the budgets, and logs why. The
 * offload sections' devices are then the runtime's choice (nvme only where
 * an nvme_path is set); their other fields are kept. */
#define ZRT_STAGE_AUTO (-1)

typedef struct zrt_config {
    size_t struct_size;            /* sizeof(zrt_config) as the caller compiled it */
    int stage;                     /* ZeRO stage 0, 1, 2 or 3, or ZRT_STAGE_AUTO */
    int64_t reduce_bucket_size;    /* elements of full-size gradients that may
                                      wait for their reduction at once */
    int64_t allgather_bucket_size; /* elements of parameter all-gathers in
                                      flight after a step (stages 1-2) */
    int64_t stage3_prefetch_bucket_size;        /* elements gathered ahead */
    int64_t stage3_param_persistence_threshold; /* layers with at most this
                                                   many elements stay gathered */
    int overlap_comm;                /* 1: collectives run while compute goes on;
                                        0: each collective is waited at once */
    int64_t device_mem_limit;        /* bytes of device memory this rank may use;
                                        0 means no limit */
    int64_t host_mem_limit;          /* bytes of (pinned) host memory this rank may
                                        use for offloaded state; 0 means no limit */
    int gradient_accumulation_steps; /* micro-steps per optimizer step (1) */
    float gradient_clipping;         /* clip the global gradient norm to this; 0: off */
    zrt_bf16_config bf16;            /* bf16 parameters and gradients, f32 master */
    zrt_fp16_config fp16;            /* fp16 parameters and gradients, f32 master */
    int reduce_dtype;                /* gradients reduce in: ZRT_F32, or
                                        ZRT_DTYPE_DEFAULT (the parameters' type) */
    char backend[16];                /* "cpu" or "cuda" (a build with CUDA and NCCL) */
    int log_level;                   /* 0 error, 1 warn, 2 info, 3 debug */
    zrt_offload_config offload_optimizer; /* m, v: stages 1-3 */
    zrt_offload_config offload_param;     /* parameter shards: stage 3 */
    zrt_aio_config aio;
    int communicator;           /* zrt_communicator: how ranks exchange data */
    float comm_timeout_seconds; /* mpi and nccl: a wait on a collective (and
                                    agree, barrier) that has not completed after
                                    this long (a lost peer) fails with
                                    ZRT_ERR_REMOTE and a sentence naming it,
                                    instead of a hang; 0: never; else >= 0.001 */
    int comm_hierarchy;         /* zrt_comm_hierarchy: how the mpi communicator routes
                                   reductions and all-gathers (nccl: always flat) */
    int comm_group_size;        /* ranks per group for comm_hierarchy: 0 one group per
                                   host; N groups of N consecutive ranks (0) */
    int hybrid_shard_size;      /* hybrid sharding (FSDP2's HSDP, MiCS): model
                                   states are sharded across each group of S
                                   consecutive ranks and replicated across the
                                   world / S groups; S must divide the world
                                   size; 0 (default) off: one group of every
                                   rank. The mpi communicator only */
    int pipeline_stages;        /* pipeline parallelism (zero/pipe.c): the world
                                   is P stages x N / P data-parallel ranks and
                                   ZeRO runs within each stage; P must divide
                                   the world size; 0 or 1 (default) off. The
                                   mpi communicator only */
    /* Stage 3, ZeRO++'s hpZ: each rank also keeps its 1/P slice of every
     * layer that a forward gathers (not the persistent ones), and the
     * backward gathers it within its group of P consecutive ranks; P must
     * divide the world size; 0 or 1 (default) off. Refused at stages 0-2,
     * "auto", with hybrid_shard_size, with NVMe parameters, and on nccl. */
    int zero_hpz_partition_size;
    /* Stage 3, ZeRO++'s qwZ (docs/compression.md): the parameter gathers
     * move each shard as blockwise int8 (an f32 scale a block of
     * zero_quantized_block_size elements, default 256, >= 1) and every rank
     * computes with the dequantized copy; the f32 shards, gradients and
     * optimizer are exact. 0 (default) off. Refused at stages 0-2, with
     * bf16/fp16 parameters, NVMe parameters, hpZ, and on nccl. */
    int zero_quantized_weights;
    int zero_quantized_block_size;
    /* ZeRO++'s qgZ (docs/compression.md): the gradient reductions (stages
     * 1-3 reduce-scatter, stage 0 all-reduce) move every contribution as
     * blockwise int8, or int4 with zero_quantized_gradient_bits 4, in
     * blocks of zero_quantized_block_size (even for int4), summed in f32 in
     * rank order on the receiver; hierarchical routing quantizes once per
     * hop. 0 (default) off. Refused with bf16/fp16, hybrid_shard_size, and
     * on nccl. */
    int zero_quantized_gradients;
    int zero_quantized_gradient_bits;
    /* Stages 0-1, top-k sparsified gradients with error feedback
     * (docs/compression.md): at the accumulation boundary each layer sends
     * the k = ceil(ratio * n) elements of largest |gradient + residual| as
     * (index, value) pairs, all-gathered, and keeps the rest in an f32
     * residual (category topk-residual) for the next step. 0 (default) off,
     * else 0 < ratio < 1. Refused at stages 2-3, with bf16/fp16 parameters,
     * hybrid sharding, and on the cuda backend or nccl. */
    float gradient_topk_ratio;
    /* "checkpoint": {"async_save": true} (docs/checkpoints.md): zrt_save
     * copies this rank's shards into a host buffer (the memory category
     * ckpt-buffer, allocated at zrt_finalize_params) and returns; a thread
     * writes them while training goes on, and the checkpoint is published
     * (meta.json, then `latest`) at the first zrt_step after every rank's
     * file is durable, or at zrt_save_wait. 0 (default): zrt_save writes
     * before it returns. */
    int checkpoint_async;
    /* "checkpoint": {"async_buffer_size": bytes}: the host buffer's size; 0
     * (default): this rank's whole checkpoint file, so zrt_save never waits
     * for the disk. Smaller: zrt_save returns once all but the last buffer
     * of it is written (the buffer is a ring). */
    int64_t checkpoint_async_buffer_size;
} zrt_config;

/* "communicator" in the config. auto: nccl on the cuda backend when every
 * rank of a host has a GPU of its own, else mpi (the cpu backend, or ranks
 * sharing a GPU: device buffers are staged through pinned host memory). */
typedef enum zrt_communicator {
    ZRT_COMM_AUTO = 0,
    ZRT_COMM_MPI = 1,
    ZRT_COMM_NCCL = 2
} zrt_communicator;

/* "comm_hierarchy" in the config. hierarchical: a reduction sums within
 * each group of comm_group_size consecutive ranks, then across the groups,
 * so only 1/R of the bytes cross between groups (R ranks a group), and the
 * summation order is fixed by the groups; all-gathers run across, then
 * within. auto: hierarchical when the job spans 2 or more groups of 2 or
 * more ranks, flat otherwise (and when the hosts hold different rank
 * counts). flat: every rank exchanges with every rank, summing in rank
 * order. The mpi communicator only: nccl stays flat. */
typedef enum zrt_comm_hierarchy {
    ZRT_COMM_HIER_AUTO = 0,
    ZRT_COMM_HIER_FLAT = 1,
    ZRT_COMM_HIER_HIERARCHICAL = 2
} zrt_comm_hierarchy;

/* Fills *cfg with defaults. */
ZRT_API zrt_status zrt_config_init(zrt_config *cfg);
/* Overrides fields of *cfg from a JSON file or text. Keys: an object
 * "zero_optimization" holding stage, reduce_bucket_size,
 * allgather_bucket_size, stage3_prefetch_bucket_size,
 * stage3_param_persistence_threshold, zero_hpz_partition_size,
 * zero_quantized_weights, zero_quantized_block_size, zero_quantized_gradients,
 * zero_quantized_gradient_bits, gradient_topk_ratio, overlap_comm,
 * and the objects
 * offload_optimizer and offload_param {device: "none"|"cpu"|"nvme",
 * nvme_path, pin_memory, buffer_count}; at the top level device_mem_limit,
 * host_mem_limit, gradient_accumulation_steps, gradient_clipping,
 * reduce_dtype ("fp32", "bf16", "fp16"), the objects bf16 {enabled} and fp16
 * {enabled, loss_scale, initial_scale_power, loss_scale_window, hysteresis,
 * min_loss_scale},
 * backend, communicator ("auto", "mpi", "nccl"), comm_timeout_seconds,
 * comm_hierarchy ("auto", "flat", "hierarchical"), comm_group_size,
 * hybrid_shard_size, pipeline_stages, log_level, and an object aio {block_size,
 * queue_depth, thread_count, single_submit, overlap_events}. Sizes are integers, or
 * strings with a K/M/G/T suffix (powers of 1024). An unknown key, a value of the wrong
 * type or range, or malformed JSON fails with ZRT_ERR_CONFIG and writes a sentence naming
 * the key or the line and column into errbuf (may be NULL). *cfg is left unchanged on
 * failure. */
ZRT_API zrt_status zrt_config_load_file(zrt_config *cfg, const char *path, char *errbuf,
                                        size_t errbuf_size);
ZRT_API zrt_status zrt_config_load_string(zrt_config *cfg, const char *json, char *errbuf,
                                          size_t errbuf_size);
/* Loads the file named by the environment variable ZRT_CONFIG, if set (what
 * zero-launch --config passes to every rank); same rules and errors as
 * zrt_config_load_file. ZRT_NVME_PATH (zero-launch --nvme-path) then fills
 * the offload sections' nvme_path where it is empty. Neither set: *cfg
 * unchanged, ZRT_OK. */
ZRT_API zrt_status zrt_config_load_env(zrt_config *cfg, char *errbuf, size_t errbuf_size);
/* Checks the ranges of every field (also done by zrt_ctx_create). */
ZRT_API zrt_status zrt_config_validate(const zrt_config *cfg, char *errbuf,
                                       size_t errbuf_size);
/* Parses "123", "64K", "1.5G" (powers of 1024) into bytes. */
ZRT_API zrt_status zrt_parse_size(const char *text, int64_t *out);

/* ---- context ------------------------------------------------------------- */
typedef struct zrt_ctx zrt_ctx;

/* Collective. Creates a context on every rank of the job. Initializes MPI if
 * the program has not (and then finalizes it in zrt_ctx_destroy). */
ZRT_API zrt_status zrt_ctx_create(const zrt_config *cfg, zrt_ctx **out);
/* Collective. Frees everything the context owns. Refuses with ZRT_ERR_STATE
 * (and frees nothing) while a layer is live. NULL is a no-op. */
ZRT_API zrt_status zrt_ctx_destroy(zrt_ctx *ctx);
/* The sentence describing the last failure on this context ("" if none). */
ZRT_API const char *zrt_last_error(const zrt_ctx *ctx);
/* Ends every rank of the job (MPI_Abort) after printing the last error with
 * the rank. Returns only if that fails. */
ZRT_API zrt_status zrt_abort_job(zrt_ctx *ctx, int exit_code);

ZRT_API zrt_status zrt_rank(const zrt_ctx *ctx, int *out);
ZRT_API zrt_status zrt_world_size(const zrt_ctx *ctx, int *out);
ZRT_API zrt_status zrt_get_config(const zrt_ctx *ctx, zrt_config *out);
/* Logs one line to stderr, prefixed with the rank, if level <= log_level. */
ZRT_API zrt_status zrt_log(const zrt_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- parameters ---------------------------------------------------------- */
#define ZRT_MAX_DIMS 4

typedef struct zrt_param_desc {
    const char *name; /* copied; unique within the context */
    int ndim;         /* 1..ZRT_MAX_DIMS */
    int64_t shape[ZRT_MAX_DIMS];
    zrt_dtype dtype;     /* ZRT_F32, or the config's 16-bit type */
    int layer;           /* owning layer, 0..; layers run in any order */
    int no_weight_decay; /* 1: AdamW skips decay (biases, norms) */
} zrt_param_desc;

typedef int32_t zrt_param; /* handle: index in registration order */

/* Registers a parameter. Only before zrt_finalize_params(). */
ZRT_API zrt_status zrt_param_register(zrt_ctx *ctx, const zrt_param_desc *desc,
                                      zrt_param *out);
/* Collective. Builds the partition plan and allocates parameters, gradients
 * and optimizer state as the stage says. Parameters start at zero: set them
 * with zrt_param_write(). If any rank fails, every rank returns an error. */
ZRT_API zrt_status zrt_finalize_params(zrt_ctx *ctx);

ZRT_API zrt_status zrt_param_count(const zrt_ctx *ctx, int64_t *out);
ZRT_API zrt_status zrt_param_numel(const zrt_ctx *ctx, zrt_param param, int64_t *out);
ZRT_API zrt_status zrt_param_name(const zrt_ctx *ctx, zrt_param param, const char **out);
ZRT_API zrt_status zrt_num_params(const zrt_ctx *ctx, int *out);

/* Sets a parameter from host memory holding its full value (numel elements of
 * its dtype). Every rank passes the same values; each keeps what it owns.
 * Not while the parameter's layer is live. At stage 3 every rank must make
 * the same zrt_param_write calls (the next use of the layer gathers it). */
ZRT_API zrt_status zrt_param_write(zrt_ctx *ctx, zrt_param param, const void *src);
/* After zrt_finalize_params: the elements [*first, *first + *count) of the
 * parameter (row-major over its shape) whose values this rank keeps — all
 * numel at stages 0-2, the part inside this rank's shard at stage 3
 * (*count is 0 when the shard holds none of it; then *first is 0). Not
 * collective. With zrt_param_write_range a rank can build its part of a
 * model that no rank could hold whole (DeepSpeed's zero.Init). */
ZRT_API zrt_status zrt_param_owned_range(zrt_ctx *ctx, zrt_param param, int64_t *first,
                                         int64_t *count);
/* Sets elements [first, first + count) of a parameter from host memory
 * holding just those (count elements of its dtype; src may be NULL when
 * count is 0). The rank keeps the part inside its owned range and ignores
 * the rest, so it need only pass that range, in pieces of any size; the
 * other elements keep their values. Elements outside [0, numel) are
 * refused with ZRT_ERR_INVALID_ARG. As zrt_param_write: not while the
 * parameter's layer is live; the values a rank passes for an element it
 * keeps must be the same on every rank that keeps it (stages 0-2: all);
 * at stage 3 every rank must call it at least once for each parameter
 * written (count 0 will do), before the layer is used again, because each
 * call drops this rank's gathered copy of the layer. With 16-bit
 * parameters the master copy of the range is set from the same bits. On
 * NVMe a call reads and rewrites only the swap blocks the range touches. */
ZRT_API zrt_status zrt_param_write_range(zrt_ctx *ctx, zrt_param param, int64_t first,
                                         int64_t count, const void *src);
/* Collective at stage 3 (every rank calls it for the same parameter): copies
 * the full current value into dst. */
ZRT_API zrt_status zrt_param_read(zrt_ctx *ctx, zrt_param param, void *dst);

/* ---- the per-layer protocol -----------------------------------------------
 * Collective, in the same order on every rank. forward_begin makes the
 * layer's parameters live (stage 3: all-gathered, the next layers prefetched);
 * forward_end lets them go. backward_begin makes parameters live and gives the
 * layer a zeroed gradient buffer to accumulate (+=) into; backward_end starts
 * the gradient reduction. A layer may be entered in forward any number of
 * times in a step, in backward once. Layer ids run from 0 to the highest id
 * a parameter was registered with; ids in between without parameters are
 * valid and cost nothing. */
ZRT_API zrt_status zrt_forward_begin(zrt_ctx *ctx, int layer);
ZRT_API zrt_status zrt_forward_end(zrt_ctx *ctx, int layer);
ZRT_API zrt_status zrt_backward_begin(zrt_ctx *ctx, int layer);
ZRT_API zrt_status zrt_backward_end(zrt_ctx *ctx, int layer);

/* The parameter's full value, valid while its layer is live. */
ZRT_API zrt_status zrt_param_data(zrt_ctx *ctx, zrt_param param, void **out);
/* The parameter's gradient buffer (full size), valid while its layer is in
 * backward. Backward code adds into it. */
ZRT_API zrt_status zrt_grad_data(zrt_ctx *ctx, zrt_param param, void **out);
/* Collective at stages 1-3 (every rank calls it for the same parameter).
 * After backward and before zrt_step: copies the parameter's gradient,
 * averaged over ranks, into dst (numel elements). For checks and logging;
 * it gathers the shards, so it costs a full-size buffer and an all-gather. */
ZRT_API zrt_status zrt_grad_read(zrt_ctx *ctx, zrt_param param, void *dst);

/* ---- optimizer ------------------------------------------------------------ */
typedef struct zrt_adamw {
    float lr;
    float beta1;        /* 0.9 */
    float beta2;        /* 0.999 */
    float eps;          /* 1e-8 */
    float weight_decay; /* decoupled, as in PyTorch's AdamW */
} zrt_adamw;

/* Fills *hp with PyTorch's AdamW defaults (lr 1e-3, wd 0.01). */
ZRT_API zrt_status zrt_adamw_init(zrt_adamw *hp);
/* Collective. Waits for pending gradient reductions (gradients are averaged
 * over ranks), applies AdamW to the shard this rank owns, starts sharing the
 * updated parameters, and leaves the gradients zeroed for the next step (as
 * DeepSpeed's engine.step() does). Not while a layer is live. */
ZRT_API zrt_status zrt_step(zrt_ctx *ctx, const zrt_adamw *hp);
/* With gradient_accumulation_steps = K > 1, call zrt_step after every
 * micro-step, as with DeepSpeed's engine.step(): the first K - 1 calls end
 * the micro-step (gradients keep accumulating: stages 0-1 in the full
 * buffers, reduced once at the K-th; stages 2-3 reduce-scattered into the
 * shard every micro-step) and the K-th applies AdamW to the sum divided by K.
 * *out becomes 1 when the next zrt_step applies the optimizer. */
ZRT_API zrt_status zrt_is_accumulation_boundary(const zrt_ctx *ctx, int *out);
/* Mixed precision (bf16 or fp16 in the config): parameters and gradients are
 * 16-bit (register them with that dtype; zrt_param_data/zrt_grad_data point
 * at 16-bit values), and each rank keeps an f32 master copy of its range
 * with the f32 moments. With fp16 the loop multiplies its loss (so its
 * gradients) by zrt_loss_scale(); zrt_step divides it out, and when any
 * rank's gradients overflowed it skips the step on every rank and updates
 * the scale as DeepSpeed's dynamic scaler does. Without fp16 the scale is 1. */
ZRT_API zrt_status zrt_loss_scale(const zrt_ctx *ctx, float *out);
/* Optimizer steps skipped for an fp16 overflow so far. */
ZRT_API zrt_status zrt_skipped_steps(const zrt_ctx *ctx, long *out);
/* The global gradient norm (over all ranks, after the division by K and
 * before clipping) of the last zrt_step that applied the optimizer. */
ZRT_API zrt_status zrt_last_grad_norm(const zrt_ctx *ctx, float *out);
/* Collective. Waits for pending reductions and zeroes the gradients this
 * rank holds: discards the backward passes since the last step. Gradients
 * are already zero after zrt_finalize_params and zrt_step. */
ZRT_API zrt_status zrt_zero_grad(zrt_ctx *ctx);

/* ---- host-side helpers for the training loop ----------------------------- */
typedef enum zrt_reduce_op { ZRT_SUM = 0, ZRT_AVG = 1 } zrt_reduce_op;
/* Collective, blocking. Reduces count floats across ranks in rank order, so
 * the result is the same bits on every rank and every run. */
ZRT_API zrt_status zrt_allreduce_f32(zrt_ctx *ctx, float *buf, size_t count,
                                     zrt_reduce_op op);

/* Allocates memory the training loop uses (activations, say) from the same
 * accounted device budget. */
ZRT_API zrt_status zrt_buffer_alloc(zrt_ctx *ctx, size_t bytes, zrt_category category,
                                    void **out);
ZRT_API zrt_status zrt_buffer_free(zrt_ctx *ctx, void *ptr);

/* On the cuda backend, device-tier pointers (parameters, gradients,
 * zrt_buffer_alloc's device buffers) are device memory. The loop launches its
 * kernels on the backend's stream (a cudaStream_t), so the collectives and
 * copies the runtime queues after a layer call see its results without the
 * host waiting. ZRT_ERR_UNSUPPORTED on the cpu backend. */
ZRT_API zrt_status zrt_device_stream(zrt_ctx *ctx, void **stream);
/* The CUDA device ordinal this rank uses (cudaSetDevice has been called on
 * the creating thread). ZRT_ERR_UNSUPPORTED on the cpu backend. */
ZRT_API zrt_status zrt_device_ordinal(zrt_ctx *ctx, int *ordinal);

/* Converts n elements between f32 and a 16-bit type (or copies when the
 * types match), rounding to nearest even: for a loop whose math is f32 and
 * whose parameters are bf16/f16. bf16 <-> f16 directly: ZRT_ERR_UNSUPPORTED. */
ZRT_API zrt_status zrt_convert(void *dst, zrt_dtype dst_type, const void *src,
                               zrt_dtype src_type, size_t n);
/* dst[i] += src[i] for a dst of dst_type, rounded once: adds a loop's f32
 * gradients into the 16-bit buffer zrt_grad_data gives. */
ZRT_API zrt_status zrt_accumulate(void *dst, zrt_dtype dst_type, const float *src,
                                  size_t n);

/* ---- memory statistics ---------------------------------------------------- */
typedef struct zrt_mem_stats {
    int64_t current[ZRT_TIER_COUNT][ZRT_CAT_COUNT]; /* bytes now */
    int64_t peak[ZRT_TIER_COUNT][ZRT_CAT_COUNT];    /* most bytes ever */
    int64_t tier_current[ZRT_TIER_COUNT];
    int64_t tier_peak[ZRT_TIER_COUNT];
    int64_t tier_limit[ZRT_TIER_COUNT]; /* 0: no limit */
} zrt_mem_stats;

ZRT_API zrt_status zrt_get_mem_stats(const zrt_ctx *ctx, zrt_mem_stats *out);
/* Seconds this rank has spent blocked waiting for collectives to complete
 * (gathers, gradient reductions, zrt_allreduce_f32) since the context was
 * created: the part of communication that compute did not hide. */
ZRT_API zrt_status zrt_comm_wait_seconds(const zrt_ctx *ctx, double *out);
/* Writes this rank's memory report as JSON: rank, world size, stage,
 * parameter count, and current/peak bytes per tier and category. "%r" in
 * path becomes the rank. The file is written to a temporary name, fsynced and
 * renamed. */
ZRT_API zrt_status zrt_write_mem_report(zrt_ctx *ctx, const char *path);

/* ==== the memory plan (zero/memplan.c) =====================================
 * What this rank will hold, per tier and category, at every layer call of a
 * training step, computed from the config, the registered parameters and the
 * world size before anything is allocated. zrt_finalize_params computes it,
 * refuses to allocate when it does not fit a budget (device_mem_limit,
 * host_mem_limit; naming what was expected where), and zrt_write_mem_report writes it
 * next to what was measured. The plan assumes the layer calls of the declared step (or,
 * by default, forward 0..n-1 then backward n-1..0) and includes the buffers the loop
 * declares. docs/memory.md says what it does not include. */
typedef enum zrt_layer_call_kind {
    ZRT_FORWARD_BEGIN = 0,
    ZRT_FORWARD_END = 1,
    ZRT_BACKWARD_BEGIN = 2,
    ZRT_BACKWARD_END = 3
} zrt_layer_call_kind;

typedef struct zrt_layer_call {
    int kind; /* zrt_layer_call_kind */
    int layer;
} zrt_layer_call;

/* Declares the layer calls one training step makes, in order (copied). Call
 * before zrt_finalize_params; a later call replaces it. A sequence the
 * engine would refuse (a layer ended that is not live, backward twice, a
 * layer left live) fails the plan with a sentence naming the call. */
ZRT_API zrt_status zrt_declare_step(zrt_ctx *ctx, const zrt_layer_call *calls, int count);
/* Declares a device buffer the training loop will allocate with
 * zrt_buffer_alloc and keep through training (activations, say), so the
 * plan includes it. Declarations add up. */
ZRT_API zrt_status zrt_declare_buffer(zrt_ctx *ctx, zrt_category category, size_t bytes);

typedef struct zrt_mem_plan {
    int stage;                                           /* the stage planned */
    int declared_step;                                   /* 1: zrt_declare_step's calls */
    int64_t peak[ZRT_TIER_COUNT][ZRT_CAT_COUNT];         /* each category's own peak */
    int64_t tier_peak[ZRT_TIER_COUNT];                   /* most bytes at one moment */
    int64_t at_tier_peak[ZRT_TIER_COUNT][ZRT_CAT_COUNT]; /* held at that moment */
    char tier_peak_phase[ZRT_TIER_COUNT][48];            /* "backward layer 3", "init" */
    long tier_peak_step[ZRT_TIER_COUNT];                 /* from 1 */
} zrt_mem_plan;

/* The plan for this context's config and parameters (before or after
 * zrt_finalize_params). Local: no communication. */
ZRT_API zrt_status zrt_plan_memory(zrt_ctx *ctx, zrt_mem_plan *out);
/* ==== end of the memory plan =============================================== */

/* ==== fitting a configuration (zero/fit.c) ================================
 * The configurations "stage": "auto" and `zero-report --fit` choose from:
 * stages 0-3 with the optimizer and (at stage 3) the parameter shards on the
 * device, in host memory or on NVMe, cheapest in traffic first. */
typedef struct zrt_fit_cost {
    int64_t comm_bytes; /* sent by one rank's collectives in one step */
    int64_t host_bytes; /* host<->device copies of one rank in one step */
    int64_t nvme_bytes; /* read and written by one rank in one step */
} zrt_fit_cost;

/* One rank's traffic in one step with cfg (stage 0-3) for param_count
 * parameters of param_bytes (4 or 2) bytes on world_size ranks; the formulas
 * are in zero/fit.c and docs/zero-report.md. */
ZRT_API zrt_status zrt_fit_cost_of(const zrt_config *cfg, int64_t param_count,
                                   int param_bytes, int world_size, zrt_fit_cost *out);
/* The ladder: base with stage and offload devices varied (nvme only when
 * allow_nvme), ordered by NVMe bytes, then host bytes, then communication,
 * then stage. Writes the first `capacity` into out (may be NULL when capacity
 * is 0) and the ladder's length into *count (at most 32). */
ZRT_API zrt_status zrt_fit_ladder(const zrt_config *base, int world_size, int allow_nvme,
                                  zrt_config *out, int capacity, int *count);
/* ==== end of fitting ========================================================= */

/* ==== memory estimates (zero/estimate.c) ===================================
 * What one rank will hold, computed from a config, a summary of the model and
 * a world size, before any run: no context, no allocation, no communication.
 * `zero-report --estimate` prints it; docs/zero-report.md gives the formula
 * of every row. Model states follow the engine's placement exactly, except
 * that the plan's padding is ignored (shards are ceil(param_count / N));
 * buffers are upper bounds of their peaks. Activations (the training loop's
 * own) are not estimated: their row is 0. */

/* A summary of the model. Fill with zrt_mem_model_init(), then set fields. */
typedef struct zrt_mem_model {
    size_t struct_size;          /* sizeof(zrt_mem_model) as the caller compiled it */
    int64_t param_count;         /* parameter elements, 0 .. 2^50 */
    int64_t largest_layer_numel; /* elements of the largest layer (the unit
                                    that is gathered and reduced); 0: unknown,
                                    then ceil(param_count / nlayers) */
    int nlayers;                 /* layers; read only when largest_layer_numel
                                    is 0 (layers taken as equal in size) */
    int param_bytes;             /* 4: f32 parameters and gradients, what the
                                    engine trains today (4 + 4 + 8 bytes a
                                    parameter); 2: 16-bit parameters and
                                    gradients with an f32 master copy and
                                    moments (2 + 2 + 4 + 8) */
    int64_t persistent_numel;    /* stage 3: elements of the layers at or under
                                    stage3_param_persistence_threshold, kept
                                    gathered; 0: none or unknown. When the
                                    largest layer is under the threshold every
                                    layer is, and param_count is used. */
} zrt_mem_model;

/* Bytes per rank. model_states sums param, grad, master and optim; buffers
 * the other categories; total both, per tier. */
typedef struct zrt_mem_estimate {
    int64_t bytes[ZRT_TIER_COUNT][ZRT_CAT_COUNT];
    int64_t model_states[ZRT_TIER_COUNT];
    int64_t buffers[ZRT_TIER_COUNT];
    int64_t total[ZRT_TIER_COUNT];
} zrt_mem_estimate;

/* Zeroes *model, sets struct_size and param_bytes = 4. */
ZRT_API zrt_status zrt_mem_model_init(zrt_mem_model *model);
/* ---- pipeline schedules (runtime/pipe.c) --------------------------------
 * The order in which stage `stage` of a pipeline of `stages` stages runs the
 * forward and backward passes of `micro_batches` micro-batches: GPipe (all
 * forwards, then all backwards) or 1F1B (min(stages - stage - 1, M)
 * forwards, then one forward and one backward at a time, then the
 * backwards left: at most min(stages - stage, M) micro-batches' activations
 * live). Backwards run in micro-batch order in both, as gradient
 * accumulation adds them. */
typedef enum zrt_pipe_kind {
    ZRT_PIPE_GPIPE = 0,
    ZRT_PIPE_1F1B = 1,
    ZRT_PIPE_FORWARD_ONLY = 2 /* M forwards, no backward (validation, sampling) */
} zrt_pipe_kind;
typedef enum zrt_pipe_pass { ZRT_PIPE_FORWARD = 0, ZRT_PIPE_BACKWARD = 1 } zrt_pipe_pass;
typedef struct zrt_pipe_op {
    zrt_pipe_pass pass;
    int micro; /* 0 .. micro_batches - 1 */
} zrt_pipe_op;

/* Writes the 2 * micro_batches passes of the stage (micro_batches forwards
 * for ZRT_PIPE_FORWARD_ONLY) into ops and their number into *count.
 * ZRT_ERR_INVALID_ARG for NULL pointers, an unknown kind, stages < 1, a
 * stage outside 0 .. stages - 1, micro_batches < 1, or a capacity below
 * that number (*count then says how many are needed); one
 * sentence naming every bad argument goes into errbuf (may be NULL):
 * "zrt_pipe_schedule: stage 4 is outside 0..3; micro_batches is 0, ...". */
ZRT_API zrt_status zrt_pipe_schedule(zrt_pipe_kind kind, int stages, int stage,
                                     int micro_batches, zrt_pipe_op *ops, size_t capacity,
                                     size_t *count, char *errbuf, size_t errbuf_size);

/* ---- pipeline parallelism (zero/pipe.c) ----------------------------------
 * With "pipeline_stages" P > 1 in the config, the N ranks form a grid of P
 * pipeline stages x D = N / P data-parallel ranks: world rank r is
 * data-parallel rank d = r % D of stage s = r / D (a stage's ranks are
 * consecutive, so a host holds whole data-parallel groups). Each stage
 * registers only its own layers' parameters, and ZeRO (stages 0-3) runs
 * within the stage's D ranks: gradient reductions, parameter gathers, the
 * gradient norm and the memory plan are the stage's. zrt_rank,
 * zrt_world_size, zrt_allreduce_f32 and agreement on failures stay the
 * world's. Activations move between the ranks of equal d on neighbouring
 * stages. */
typedef struct zrt_pipe_grid {
    int stages, stage;        /* P and s; 1 and 0 without a pipeline */
    int data_size, data_rank; /* D and d; the world without a pipeline */
} zrt_pipe_grid;
ZRT_API zrt_status zrt_get_pipe_grid(const zrt_ctx *ctx, zrt_pipe_grid *out);

/* How many micro-batches' activations this stage holds at most under kind:
 * M (GPipe), min(P - s, M) (1F1B), 1 (forward only). The loop keeps that
 * many activation slots; micro-batch m uses slot m % slots. */
ZRT_API zrt_status zrt_pipe_slots(const zrt_ctx *ctx, zrt_pipe_kind kind,
                                  int micro_batches, int *slots);

/* One pass of the pipeline: zrt_pipe_begin, then zrt_pipe_next until *done.
 * A training pass (GPipe, 1F1B) has micro_batches equal to
 * gradient_accumulation_steps, and the loop calls zrt_step after each
 * backward, as it would with gradient accumulation. Without a pipeline
 * (P = 1) the same calls hand out forward m, backward m for m = 0 .. M-1. */
ZRT_API zrt_status zrt_pipe_begin(zrt_ctx *ctx, zrt_pipe_kind kind, int micro_batches);
/* The next (pass, micro-batch) to run, or *done = 1 when the pass is over
 * (every send of this rank has then completed). */
ZRT_API zrt_status zrt_pipe_next(zrt_ctx *ctx, zrt_pipe_op *op, int *done);
/* The current op's input: a forward on a stage > 0 receives the previous
 * stage's output for the op's micro-batch; a backward on a stage < P - 1
 * receives the gradient of this stage's output from the next stage. Blocks
 * until it has arrived (counted as idle time); bytes must equal the
 * sender's. ZRT_ERR_STATE where the op has no such input. */
ZRT_API zrt_status zrt_pipe_recv(zrt_ctx *ctx, void *buf, size_t bytes);
/* The current op's output: a forward on a stage < P - 1 sends its output to
 * the next stage; a backward on a stage > 0 sends the gradient of its input
 * to the previous stage. Returns at once: buf must stay unchanged until
 * zrt_pipe_next hands out an op of micro-batch m + slots (the slot's next
 * use) or reports the pass done. ZRT_ERR_STATE where the op has no such
 * output. */
ZRT_API zrt_status zrt_pipe_send(zrt_ctx *ctx, const void *buf, size_t bytes);
/* A tensor to or from the rank of equal d on another stage, outside the
 * activations' path (the tied embedding's values and gradient): blocking,
 * tag 0 .. ZRT_PIPE_TAG_MAX, matched in call order per tag. */
#define ZRT_PIPE_TAG_MAX 1023
ZRT_API zrt_status zrt_pipe_send_to(zrt_ctx *ctx, int stage, int tag, const void *buf,
                                    size_t bytes);
ZRT_API zrt_status zrt_pipe_recv_from(zrt_ctx *ctx, int stage, int tag, void *buf,
                                      size_t bytes);
/* Training passes only (GPipe, 1F1B), summed since the context was made:
 * seconds from zrt_pipe_begin to done, and of them the seconds blocked in
 * zrt_pipe_recv, zrt_pipe_recv_from, zrt_pipe_send_to and in completing
 * sends: the measured bubble. */
typedef struct zrt_pipe_stats {
    double pass_seconds, idle_seconds;
    long passes;
} zrt_pipe_stats;
ZRT_API zrt_status zrt_get_pipe_stats(const zrt_ctx *ctx, zrt_pipe_stats *out);

/* Estimates what each rank holds with this config (stage, bucket sizes,
 * overlap_comm, offload sections; an nvme offload needs no nvme_path here)
 * for this model on world_size ranks. A config that zrt_config_validate()
 * refuses (stage outside 0-3, optimizer offload at stage 0, parameter
 * offload below stage 3, ...) fails with ZRT_ERR_CONFIG; a bad model or
 * world_size (world_size < 1, param_count < 0, param_bytes not 2 or 4, the
 * largest layer and the layer count both unknown, ...) with
 * ZRT_ERR_INVALID_ARG; NULL pointers with ZRT_ERR_INVALID_ARG. Each failure
 * writes one sentence naming the field and its value into errbuf (may be
 * NULL) and leaves *out untouched. */
ZRT_API zrt_status zrt_estimate_memory(const zrt_config *cfg, const zrt_mem_model *model,
                                       int world_size, zrt_mem_estimate *out,
                                       char *errbuf, size_t errbuf_size);
/* ==== end of memory estimates ============================================= */

/* ==== checkpoints (zero/checkpoint.c) ======================================
 * Resumable, sharded checkpoints. zrt_save writes DIR/step-NNNNNNNN/ (one
 * file per rank with its shard of every layer's parameters and Adam
 * moments, and meta.json with the partition plan, the config, the step and
 * the caller's blob), then points DIR/latest at it. zrt_load reads one back
 * on any world size and stage: each rank takes the elements of its own
 * range from whichever files hold them, matched by parameter name.
 * docs/checkpoints.md describes the format and why a crash at any moment
 * leaves `latest` naming a complete checkpoint. DIR must be one directory
 * every rank sees (a shared file system on several hosts). */
#define ZRT_CKPT_USER_MAX 4096

/* What the runtime does not own but a resumed run needs: the training
 * loop's RNG state and data position, as bytes of its own layout. Fill with
 * zrt_ckpt_info_init(). */
typedef struct zrt_ckpt_info {
    size_t struct_size; /* sizeof(zrt_ckpt_info) as the caller compiled it */
    int64_t step;       /* zrt_load: optimizer steps taken when saved
                           (zrt_save writes the context's own count) */
    int world_size;     /* zrt_load: the world size that saved it */
    int stage;          /* zrt_load: the stage that saved it */
    size_t user_bytes;  /* bytes of user[] in use, 0..ZRT_CKPT_USER_MAX */
    unsigned char user[ZRT_CKPT_USER_MAX]; /* zrt_save: rank 0's is stored */
} zrt_ckpt_info;

/* Zeroes *info and sets struct_size. */
ZRT_API zrt_status zrt_ckpt_info_init(zrt_ckpt_info *info);
/* Collective. After zrt_finalize_params, between optimizer steps (not in
 * the middle of gradient accumulation, no layer live). Writes
 * dir/step-<ctx step, 8 digits>/ and then dir/latest; each file goes to a
 * temporary name, is fsynced and renamed, and its directory fsynced;
 * `latest` changes only after every rank's file is durable. A step
 * directory of the same name is replaced whole. info may be NULL (no blob).
 * Any rank failing makes every rank return an error naming it; `latest`
 * then still names the previous checkpoint. */
ZRT_API zrt_status zrt_save(zrt_ctx *ctx, const char *dir, const zrt_ckpt_info *info);
/* Collective. Same moments as zrt_save. dir is a step directory (holding
 * meta.json) or a directory whose `latest` names one. Restores parameters,
 * Adam moments and the step count, resharding when the world size or stage
 * differs, and fills *info (may be NULL). Every checksum of what a rank
 * reads is verified before anything changes: a truncated or damaged file,
 * a parameter missing or shaped differently, is refused on every rank with
 * a sentence naming the file (and section, byte range) or the parameter,
 * and the context is left as it was. */
ZRT_API zrt_status zrt_load(zrt_ctx *ctx, const char *dir, zrt_ckpt_info *info);
/* Collective. With "checkpoint": {"async_save": true}: waits until this
 * rank's file of the pending asynchronous save is durable, then publishes
 * it as zrt_save would have (every rank's file durable, then meta.json,
 * then `latest`). Returns the failure of an asynchronous save that failed
 * since the last call (naming the step, the rank and the cause; `latest`
 * then still names the one before), else ZRT_OK, also when nothing is
 * pending. zrt_save and zrt_load call it first; call it before
 * zrt_ctx_destroy, which publishes nothing. */
ZRT_API zrt_status zrt_save_wait(zrt_ctx *ctx);
/* Collective. The training loop's one call for coming back after a
 * failure, the same on a first start and on a restart: when zero-launch
 * restarted the job (--max-restarts: the environment has ZRT_RESTART > 0)
 * and dir holds a `latest`, it loads it as zrt_load does and fills *info
 * (info->step: the step the run continues from; info->world_size: the
 * ranks that saved it); otherwise it changes nothing and sets info->step and
 * info->world_size to 0 (info may be NULL). */
ZRT_API zrt_status zrt_resume(zrt_ctx *ctx, const char *dir, zrt_ckpt_info *info);
/* How many times zero-launch restarted this job before this attempt
 * (ZRT_RESTART; 0 on a first start). When the job restarted on fewer ranks
 * than its first attempt (ZRT_ELASTIC_WORLD), zrt_ctx_create multiplied
 * gradient_accumulation_steps by first-world / world (per stage's
 * data-parallel size with a pipeline) so the global batch stays the same,
 * and logged it; zrt_get_config returns the value in use. */
ZRT_API zrt_status zrt_restart_count(const zrt_ctx *ctx, int *out);

#define ZRT_MODEL_DIMS_MAX 32
/* Declares one number of the model's shape under a name ("layers", "heads",
 * "vocab_size", ...), at any time before zrt_save or zrt_load; a later value
 * for the same name replaces it. zrt_save stores the declared numbers in
 * meta.json's "model" object (tools such as `zero-ckpt llmc` read them);
 * zrt_load refuses, on every rank and before anything changes, a checkpoint
 * that stores another value under a name this context declares, naming every
 * difference: tensors of equal shapes can belong to different models (the
 * head count, say). A checkpoint without the name (older, or saved by a loop
 * that did not declare it) loads. name: 1 to 31 characters of [a-z0-9_];
 * at most ZRT_MODEL_DIMS_MAX names; value >= 0. */
ZRT_API zrt_status zrt_declare_model_dim(zrt_ctx *ctx, const char *name, int64_t value);
/* ==== end of checkpoints =================================================== */

#ifdef __cplusplus
}
#endif
#endif /* ZRT_ZRT_H */
