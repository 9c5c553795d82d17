/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/context.c — creating and destroying a context, and the calls that
 * only read or use what it owns: rank, config, logging, the host all-reduce,
 * training-loop buffers and memory statistics.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../runtime/registry.h"
#include "ctx.h"

/* The helper threads and the device are chosen before MPI starts, so the
 * rank's place on its host comes from the launcher's environment (Open MPI
 * sets these). */
static int env_int(const char *name, int fallback)
{
    const char *text = getenv(name);
    return text && *text ? atoi(text) : fallback;
}

/* What this build and backend cannot do yet, refused with a reason. On a
 * device the host cannot read (cuda), the optimizer may move to host memory:
 * the backend streams device operands through its bounce buffer. Stage 3's
 * shards in host memory would need the all-gather to read host memory, and
 * NVMe needs the I/O thread to read device memory: neither is there yet. */
static zrt_status check_supported(zrt_ctx *ctx)
{
    if (ctx->be->caps.device_is_host)
        return ZRT_OK;
    const zrt_offload_config *optim = &ctx->cfg.offload_optimizer;
    const zrt_offload_config *param = &ctx->cfg.offload_param;
    if (optim->device == ZRT_OFFLOAD_NVME)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "offload_optimizer.device \"nvme\" is not supported by backend "
                         "'%s' yet (\"cpu\" is)",
                         ctx->be->ops->name);
    /* "stage": "auto" picks its offload at zrt_finalize_params
     * (zero/params.c walks zero/fit.c's ladder), after this check, and with an
     * nvme_path its ladder includes NVMe rungs, which this backend cannot run
     * (the swap I/O would read device memory from the host). Refuse here, by
     * name, as for an explicit "nvme". */
    if (ctx->cfg.stage == ZRT_STAGE_AUTO && (optim->nvme_path[0] || param->nvme_path[0]))
        return zrt__fail(
            &ctx->err, ZRT_ERR_UNSUPPORTED,
            "\"stage\": \"auto\" with an nvme_path is not supported by backend "
            "'%s' yet: its ladder may choose NVMe offload (remove the "
            "nvme_path, or name the stage)",
            ctx->be->ops->name);
    if (ctx->cfg.stage == 3 && param->device != ZRT_OFFLOAD_NONE)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "offload_param.device \"%s\" is not supported by backend '%s' "
                         "yet",
                         param->device == ZRT_OFFLOAD_CPU ? "cpu" : "nvme",
                         ctx->be->ops->name);
    return ZRT_OK;
}

static zrt_status create_backend(zrt_ctx *ctx)
{
    zrt__backend_params p = {.acct = &ctx->acct,
                             .err = &ctx->err,
                             .pool = ctx->pool,
                             .local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0),
                             .local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1)};
    return zrt__backend_create_by_name(ctx->cfg.backend, &p, &ctx->be);
}

/* "communicator": auto picks NCCL on a backend with GPUs unless ranks of
 * one host share a GPU (NCCL refuses that), and MPI otherwise. */
static int pick_communicator(const zrt_ctx *ctx)
{
    if (ctx->cfg.communicator != ZRT_COMM_AUTO)
        return ctx->cfg.communicator;
    if (ctx->be->caps.device_is_host)
        return ZRT_COMM_MPI;
    if (env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1) > ctx->be->caps.device_count)
        return ZRT_COMM_MPI;
    return ZRT_COMM_NCCL;
}

/* comm_hierarchy and comm_group_size, for a communicator that routes (mpi;
 * nccl stays flat). A layout that cannot be grouped as asked ends the
 * context's creation: the communicator is destroyed here. */
static zrt_status route_comm(zrt_ctx *ctx)
{
    zrt__comm *c = ctx->comm;
    if (!c->ops->set_hierarchy) {
        if (ctx->cfg.comm_hierarchy == ZRT_COMM_HIER_HIERARCHICAL)
            zrt_log(ctx, 1,
                    "'comm_hierarchy' is \"hierarchical\" but the %s communicator's "
                    "collectives stay flat (the mpi communicator's are hierarchical)",
                    c->ops->name);
        return ZRT_OK;
    }
    char why[256];
    zrt_status st = c->ops->set_hierarchy(c, ctx->cfg.comm_hierarchy,
                                          ctx->cfg.comm_group_size, why, sizeof why);
    if (st != ZRT_OK) {
        c->ops->destroy(c);
        ctx->comm = NULL;
        return st;
    }
    zrt_log(ctx, 2, "collectives: %s", why);
    return ZRT_OK;
}

static zrt_status create_comm(zrt_ctx *ctx)
{
    int which = pick_communicator(ctx);
    if (which == ZRT_COMM_NCCL && ctx->be->caps.device_is_host)
        return zrt__fail(&ctx->err, ZRT_ERR_CONFIG,
                         "'communicator' is \"nccl\" but backend '%s' has no GPU; "
                         "NCCL needs \"backend\": \"cuda\"",
                         ctx->be->ops->name);
    zrt__comm_params p = {.be = ctx->be,
                          .err = &ctx->err,
                          .timeout_seconds = (double)ctx->cfg.comm_timeout_seconds};
    ZRT_CHECK(
        zrt__comm_create_by_name(which == ZRT_COMM_MPI ? "mpi" : "nccl", &p, &ctx->comm));
    ctx->comm->timeout_seconds = p.timeout_seconds; /* bounds the mpi waits too */
    return route_comm(ctx);
}

/* The communicators a context holds, newest first (a split communicator
 * must go before the one it came from, which may finalize MPI). */
static void destroy_comms(zrt_ctx *ctx)
{
    if (ctx->pipe_comm)
        ctx->pipe_comm->ops->destroy(ctx->pipe_comm);
    ctx->pipe_comm = NULL;
    if (ctx->hpz_comm)
        ctx->hpz_comm->ops->destroy(ctx->hpz_comm);
    ctx->hpz_comm = NULL;
    if (ctx->replica_comm)
        ctx->replica_comm->ops->destroy(ctx->replica_comm);
    if (ctx->shard_comm && ctx->shard_comm != ctx->comm)
        ctx->shard_comm->ops->destroy(ctx->shard_comm);
    if (ctx->comm)
        ctx->comm->ops->destroy(ctx->comm);
    ctx->replica_comm = ctx->shard_comm = ctx->comm = NULL;
}

/* hybrid_shard_size S against the world size N: 0 (off) or a divisor. */
static zrt_status check_shard_size(zrt_ctx *ctx, int S, int N)
{
    if (S < 0 || (S > 0 && N % S != 0))
        return zrt__fail(&ctx->err, ZRT_ERR_CONFIG,
                         "'hybrid_shard_size' is %d but the job has %d ranks; it must "
                         "be 0 (off) or a number of ranks that divides %d (the world "
                         "size must be a multiple of the shard group size)",
                         S, N, N);
    if (S > 0 && S < N && strcmp(ctx->comm->ops->name, "mpi") != 0)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "'hybrid_shard_size' is %d but the %s communicator cannot form "
                         "shard groups; hybrid sharding needs \"communicator\": "
                         "\"mpi\"",
                         S, ctx->comm->ops->name);
    return ZRT_OK;
}

/* Hybrid sharding: rank r = g * S + k is member k of shard group g (the S
 * ranks g * S .. g * S + S - 1) and member g of replica set k (the G = N / S
 * ranks k, S + k, 2S + k, ...). Both are split from the world communicator
 * and flat, whatever comm_hierarchy routes the world's own collectives: the
 * two features are independent. Summing a gradient within the group in
 * member order, then across the replicas in group order, is the
 * hierarchical order over groups of S. Off, or S = N: the world's
 * communicator serves as the shard group and there are no replicas, so the
 * run is plain ZeRO, bit for bit. */
static zrt_status create_shard_groups(zrt_ctx *ctx)
{
    zrt__comm *c = ctx->comm;
    int S = ctx->cfg.hybrid_shard_size, N = c->size;
    if (ctx->pipe_comm)
        return ZRT_OK; /* the stage is the shard group (create_pipe_grid) */
    ctx->shard_comm = c;
    ZRT_CHECK(check_shard_size(ctx, S, N));
    if (S == 0 || S == N)
        return ZRT_OK;
    ZRT_CHECK(c->ops->split(c, c->rank / S, c->rank % S, &ctx->shard_comm));
    ZRT_CHECK(c->ops->split(c, c->rank % S, c->rank / S, &ctx->replica_comm));
    zrt_log(ctx, 2,
            "hybrid sharding: %d shard groups of %d ranks (hybrid_shard_size %d); "
            "gradients reduce within the group, then across the %d replicas "
            "of each shard",
            N / S, S, S, N / S);
    return ZRT_OK;
}

/* pipeline_stages P against the config, the communicator and the world
 * size N: one sentence each for what a pipeline cannot run with. */
static zrt_status check_pipe_grid(zrt_ctx *ctx, int P, int N)
{
    const zrt_config *cfg = &ctx->cfg;
    const zrt__comm_ops *ops = ctx->comm->ops;
    if (N % P != 0)
        return zrt__fail(&ctx->err, ZRT_ERR_CONFIG,
                         "'pipeline_stages' is %d but the job has %d ranks; the world "
                         "size must be a multiple of the number of stages",
                         P, N);
    if (cfg->hybrid_shard_size > 0 && cfg->hybrid_shard_size < N)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "'pipeline_stages' %d with 'hybrid_shard_size' %d is not "
                         "supported: ZeRO already shards within each stage's %d ranks "
                         "(use one of the two)",
                         P, cfg->hybrid_shard_size, N / P);
    if (cfg->zero_hpz_partition_size > 1)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "'pipeline_stages' %d with 'zero_hpz_partition_size' %d is not "
                         "supported: use one of the two",
                         P, cfg->zero_hpz_partition_size);
    if (cfg->stage == ZRT_STAGE_AUTO)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "'pipeline_stages' %d with \"stage\": \"auto\" is not "
                         "supported: the ladder does not plan a stage's share (name a "
                         "stage, 0 to 3)",
                         P);
    if (!ops->split || !ops->send || !ops->recv)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "'pipeline_stages' is %d but the %s communicator cannot form "
                         "stage groups or send point to point; pipeline parallelism "
                         "needs \"communicator\": \"mpi\" or \"nccl\"",
                         P, ops->name);
    return ZRT_OK;
}

/* Pipeline parallelism: world rank r = s * D + d is data-parallel rank d of
 * stage s (D = N / P). The stage's D ranks become shard_comm, so every ZeRO
 * collective of the engine runs within the stage; the P ranks of equal d
 * form pipe_comm, ranked by stage, for the activations (zero/pipe.c). Both
 * are split from the world and flat. Off (P 0 or 1): nothing to do. */
static zrt_status create_pipe_grid(zrt_ctx *ctx)
{
    zrt__comm *c = ctx->comm;
    int P = ctx->cfg.pipeline_stages, N = c->size;
    if (P <= 1)
        return ZRT_OK;
    ZRT_CHECK(check_pipe_grid(ctx, P, N));
    int D = N / P, s = c->rank / D, d = c->rank % D;
    ZRT_CHECK(c->ops->split(c, s, d, &ctx->shard_comm));
    ZRT_CHECK(c->ops->split(c, d, s, &ctx->pipe_comm));
    zrt_log(ctx, 2,
            "pipeline: %d stages x %d data-parallel ranks (pipeline_stages %d); this "
            "rank is data-parallel rank %d of stage %d, ZeRO runs within the stage",
            P, D, P, d, s);
    return ZRT_OK;
}

/* zero_hpz_partition_size P against the config and the world size N. */
static zrt_status check_hpz_size(zrt_ctx *ctx, int P, int N)
{
    const zrt_config *cfg = &ctx->cfg;
    if (P < 0 || (P > 1 && N % P != 0))
        return zrt__fail(&ctx->err, ZRT_ERR_CONFIG,
                         "'zero_hpz_partition_size' is %d but the job has %d ranks; it "
                         "must be 0 or 1 (off) or a number of ranks that divides %d",
                         P, N, N);
    if (P <= 1)
        return ZRT_OK;
    if (cfg->stage != 3)
        return zrt__fail(&ctx->err, ZRT_ERR_CONFIG,
                         "'zero_hpz_partition_size' is %d but the stage is not 3; hpZ "
                         "keeps secondary shards of the parameters that stage 3 "
                         "gathers (set \"stage\": 3, or drop the key)",
                         P);
    if (cfg->hybrid_shard_size > 0 && cfg->hybrid_shard_size < N)
        return zrt__fail(
            &ctx->err, ZRT_ERR_UNSUPPORTED,
            "'zero_hpz_partition_size' %d with 'hybrid_shard_size' %d is not "
            "supported: use one of the two",
            P, cfg->hybrid_shard_size);
    if (cfg->offload_param.device == ZRT_OFFLOAD_NVME)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "'zero_hpz_partition_size' %d with offload_param.device "
                         "\"nvme\" is not supported: hpZ keeps its secondary shards in "
                         "memory",
                         P);
    if (strcmp(ctx->comm->ops->name, "mpi") != 0)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "'zero_hpz_partition_size' is %d but the %s communicator cannot "
                         "form hpZ groups; hpZ needs \"communicator\": \"mpi\"",
                         P, ctx->comm->ops->name);
    return ZRT_OK;
}

/* hpZ (ZeRO++): rank r = g * P + k is member k of hpZ group g (the P ranks
 * g * P .. g * P + P - 1; with P the ranks per host, a host). Its secondary
 * shard of a layer is slice k of P of the gathered flat parameters, so the
 * group's all-gather of the secondary shards rebuilds the flat buffer in
 * place, bit for bit. Split from the world communicator, flat. */
static zrt_status create_hpz_groups(zrt_ctx *ctx)
{
    zrt__comm *c = ctx->comm;
    int P = ctx->cfg.zero_hpz_partition_size, N = c->size;
    ZRT_CHECK(check_hpz_size(ctx, P, N));
    if (P <= 1)
        return ZRT_OK;
    ZRT_CHECK(c->ops->split(c, c->rank / P, c->rank % P, &ctx->hpz_comm));
    zrt_log(ctx, 2,
            "hpZ: %d groups of %d ranks (zero_hpz_partition_size %d); backward "
            "gathers run within the group from secondary shards",
            N / P, P, P);
    return ZRT_OK;
}

/* zero_quantized_weights (qwZ, docs/compression.md) against the config:
 * it quantizes stage 3's f32 gathers, on the mpi communicator. */
static const char *qwz_conflict(const zrt_ctx *ctx)
{
    const zrt_config *cfg = &ctx->cfg;
    if (cfg->stage != 3)
        return "the stage is not 3; qwZ quantizes the parameter gathers of stage 3 "
               "(set \"stage\": 3, or drop the key)";
    if (cfg->bf16.enabled || cfg->fp16.enabled)
        return "the parameters are 16-bit (bf16/fp16); the int8 kernels quantize f32 "
               "shards only";
    if (cfg->offload_param.device == ZRT_OFFLOAD_NVME)
        return "offload_param.device is \"nvme\"; the NVMe path is not quantized";
    if (cfg->zero_hpz_partition_size > 1)
        return "'zero_hpz_partition_size' is set; qwZ with hpZ is not supported (the "
               "secondary shards would have to keep the quantized bytes)";
    if (!ctx->be->ops->quantize_i8 || !ctx->be->ops->dequantize_i8)
        return "the backend has no int8 quantization kernels; qwZ runs on the cpu "
               "backend";
    if (strcmp(ctx->comm->ops->name, "mpi") != 0)
        return "the communicator is not mpi; qwZ needs \"communicator\": \"mpi\"";
    return NULL;
}

static zrt_status check_qwz(zrt_ctx *ctx)
{
    const char *why = ctx->cfg.zero_quantized_weights ? qwz_conflict(ctx) : NULL;
    if (why)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "'zero_quantized_weights' is true but %s", why);
    if (ctx->cfg.zero_quantized_weights)
        zrt_log(ctx, 2, "qwZ: stage 3 gathers move int8 blocks of %d elements",
                ctx->cfg.zero_quantized_block_size);
    return ZRT_OK;
}

/* zero_quantized_gradients (qgZ, docs/compression.md) against the config:
 * it quantizes the f32 gradient reductions of the mpi communicator. */
static const char *qgz_conflict(const zrt_ctx *ctx)
{
    const zrt_config *cfg = &ctx->cfg;
    if (cfg->stage == ZRT_STAGE_AUTO)
        return "the stage is \"auto\"; the stage ladder does not price qgZ (set a "
               "stage, 0 to 3)";
    if (cfg->bf16.enabled || cfg->fp16.enabled)
        return "the parameters are 16-bit (bf16/fp16); the kernels quantize f32 "
               "gradients only";
    if (cfg->hybrid_shard_size > 0)
        return "'hybrid_shard_size' is set; the replicas' all-reduce is not quantized";
    if (!ctx->comm->ops->reduce_scatter_quantized)
        return "the communicator is not mpi; qgZ needs \"communicator\": \"mpi\"";
    if (!ctx->be->caps.device_is_host)
        return "the backend's device is not the host; qgZ runs on the cpu backend";
    return NULL;
}

/* The format of qgZ's blocks, named when it is not one. */
static const char *qgz_format_error(const zrt_config *cfg)
{
    if (cfg->zero_quantized_gradient_bits != 8 && cfg->zero_quantized_gradient_bits != 4)
        return "'zero_quantized_gradient_bits' must be 8 or 4";
    if (cfg->zero_quantized_gradient_bits == 4 && cfg->zero_quantized_block_size % 2)
        return "'zero_quantized_block_size' must be even for 4-bit gradients (two "
               "elements a byte, each block starting on a byte)";
    return NULL;
}

static zrt_status check_qgz(zrt_ctx *ctx)
{
    const zrt_config *cfg = &ctx->cfg;
    if (!cfg->zero_quantized_gradients)
        return ZRT_OK;
    const char *why = qgz_conflict(ctx);
    if (why)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "'zero_quantized_gradients' is true but %s", why);
    why = qgz_format_error(cfg);
    if (why)
        return zrt__fail(&ctx->err, ZRT_ERR_CONFIG, "%s (it is %d, block %d)", why,
                         cfg->zero_quantized_gradient_bits,
                         cfg->zero_quantized_block_size);
    zrt_log(ctx, 2,
            "qgZ: stage %d gradient reductions move int%d blocks of %d elements, summed "
            "in f32 in rank order%s",
            cfg->stage, cfg->zero_quantized_gradient_bits, cfg->zero_quantized_block_size,
            ctx->comm->hierarchical ? ", quantized again between the two hops" : "");
    return ZRT_OK;
}

/* gradient_topk_ratio (top-k with error feedback, docs/compression.md)
 * against the config: it replaces the f32 all-reduce or reduce-scatter of
 * stages 0-1 on the cpu backend's mpi communicator. */
static const char *topk_conflict(const zrt_ctx *ctx)
{
    const zrt_config *cfg = &ctx->cfg;
    if (cfg->stage != 0 && cfg->stage != 1)
        return "the stage is not 0 or 1; top-k replaces the gradient all-reduce of "
               "stages 0-1 (set \"stage\": 0 or 1, or drop the key)";
    if (cfg->bf16.enabled || cfg->fp16.enabled)
        return "the parameters are 16-bit (bf16/fp16); top-k sums f32 gradients only";
    if (cfg->hybrid_shard_size > 0)
        return "'hybrid_shard_size' is set; top-k with hybrid sharding is not supported";
    if (cfg->zero_quantized_gradients)
        return "'zero_quantized_gradients' is true; top-k sends exact values of its "
               "own (use one or the other)";
    if (!ctx->be->ops->topk_take_f32 || !ctx->be->ops->topk_sum_f32)
        return "the backend has no top-k kernels; top-k runs on the cpu backend";
    if (strcmp(ctx->comm->ops->name, "mpi") != 0)
        return "the communicator is not mpi; top-k needs \"communicator\": \"mpi\"";
    return NULL;
}

static zrt_status check_topk(zrt_ctx *ctx)
{
    float ratio = ctx->cfg.gradient_topk_ratio;
    const char *why = ratio > 0.0f ? topk_conflict(ctx) : NULL;
    if (why)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "'gradient_topk_ratio' is set but %s", why);
    if (ratio > 0.0f)
        zrt_log(ctx, 2,
                "top-k: stage %d reductions send the k = ceil(%g n) largest |g + "
                "residual| of each layer (n elements) as (index, value) pairs, "
                "all-gathered and summed in rank order; the rest stays in the "
                "residual (topk-residual)",
                ctx->cfg.stage, (double)ratio);
    return ZRT_OK;
}

/* Config errors found before a context exists have nowhere to be stored:
 * they go to stderr once, with the rank if Open MPI told us. */
/* zero-launch --max-restarts: ZRT_RESTART is this attempt's number and
 * ZRT_ELASTIC_WORLD the first attempt's rank count. On another number of
 * data-parallel ranks than the first attempt's, gradient accumulation
 * makes up the difference, so every step still trains on the first
 * attempt's global batch (the examples' data position is a function of
 * the step and the global batch: the same samples, summed in another
 * order). */
static zrt_status apply_restart(zrt_ctx *ctx)
{
    const char *text = getenv("ZRT_RESTART");
    char *end = NULL;
    long attempt = text ? strtol(text, &end, 10) : 0;
    if (text && (end == text || *end || attempt < 0 || attempt > (1 << 20)))
        return zrt__fail(&ctx->err, ZRT_ERR_CONFIG,
                         "ZRT_RESTART is '%s', not an attempt number of 0 or more "
                         "(zero-launch --max-restarts sets it)",
                         text);
    ctx->restart = (int)attempt;
    text = getenv("ZRT_ELASTIC_WORLD");
    if (!text)
        return ZRT_OK;
    long first = strtol(text, &end, 10);
    if (end == text || *end || first < 1 || first > (1 << 20))
        return zrt__fail(&ctx->err, ZRT_ERR_CONFIG,
                         "ZRT_ELASTIC_WORLD is '%s', not a rank count (zero-launch "
                         "--max-restarts sets it to the first attempt's)",
                         text);
    int world = ctx->comm->size, stages = ctx->pipe_comm ? ctx->pipe_comm->size : 1;
    int64_t k = ctx->cfg.gradient_accumulation_steps;
    if (first == world)
        return ZRT_OK;
    if (first % stages != 0 || (k * (first / stages)) % (world / stages) != 0)
        return zrt__fail(&ctx->err, ZRT_ERR_CONFIG,
                         "restart %d on %d ranks cannot keep the global batch of the "
                         "first attempt's %ld ranks: gradient_accumulation_steps %lld "
                         "would become %lld x %ld / %d, not a whole number (choose a "
                         "gradient_accumulation_steps that makes it one)",
                         ctx->restart, world, first, (long long)k, (long long)k,
                         first / stages, world / stages);
    int64_t scaled = k * (first / stages) / (world / stages);
    ctx->cfg.gradient_accumulation_steps = (int)scaled;
    if (ctx->comm->rank == 0)
        zrt_log(ctx, 1,
                "restart %d: %d ranks instead of the first attempt's %ld: "
                "gradient_accumulation_steps %lld -> %lld keeps the global batch of "
                "%lld micro-batches a step",
                ctx->restart, world, first, (long long)k, (long long)scaled,
                (long long)(k * (first / stages)));
    return ZRT_OK;
}

static void report_early_error(const char *text)
{
    const char *rank = getenv("OMPI_COMM_WORLD_RANK");
    fprintf(stderr, "[zrt rank %s] %s\n", rank ? rank : "?", text);
}

zrt_status zrt_ctx_create(const zrt_config *cfg, zrt_ctx **out)
{
    if (!cfg || !out)
        return ZRT_ERR_INVALID_ARG;
    char why[ZRT__ERRBUF_SIZE];
    zrt_status st = zrt_config_validate(cfg, why, sizeof why);
    if (st != ZRT_OK) {
        report_early_error(why);
        return st;
    }
    zrt_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return ZRT_ERR_OUT_OF_MEMORY;
    ctx->cfg = *cfg;
    ctx->err.rank = -1;
    ctx->pdtype = cfg->bf16.enabled ? ZRT_BF16 : cfg->fp16.enabled ? ZRT_F16 : ZRT_F32;
    ctx->esize = zrt_dtype_size(ctx->pdtype);
    zrt__loss_scaler_init(&ctx->scaler, &cfg->fp16);
    /* zero-launch tags every output line with the rank (Open MPI's
     * --tag-output) and says so, so the runtime does not tag it again. */
    const char *prefix = getenv("ZRT_LOG_RANK_PREFIX");
    ctx->log_rank_prefix = !(prefix && strcmp(prefix, "0") == 0);
    zrt__mem_account_init(&ctx->acct);
    zrt__mem_set_limit(&ctx->acct, ZRT_TIER_DEVICE, cfg->device_mem_limit);
    zrt__mem_set_limit(&ctx->acct, ZRT_TIER_HOST, cfg->host_mem_limit);
    ZRT_CHECK_GOTO(zrt__pool_create(0, env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0),
                                    env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1), &ctx->err,
                                    &ctx->pool),
                   st, fail);
    ZRT_CHECK_GOTO(create_backend(ctx), st, fail);
    ZRT_CHECK_GOTO(check_supported(ctx), st, fail);
    ZRT_CHECK_GOTO(create_comm(ctx), st, fail);
    ctx->err.rank = ctx->comm->rank;
    ZRT_CHECK_GOTO(create_pipe_grid(ctx), st, fail);
    ZRT_CHECK_GOTO(apply_restart(ctx), st, fail);
    ZRT_CHECK_GOTO(create_shard_groups(ctx), st, fail);
    ZRT_CHECK_GOTO(create_hpz_groups(ctx), st, fail);
    ZRT_CHECK_GOTO(check_qwz(ctx), st, fail);
    ZRT_CHECK_GOTO(check_qgz(ctx), st, fail);
    ZRT_CHECK_GOTO(check_topk(ctx), st, fail);
    char stage[16] = "auto";
    if (cfg->stage != ZRT_STAGE_AUTO)
        snprintf(stage, sizeof stage, "%d", cfg->stage);
    char where[32] = "";
    if (ctx->be->caps.device_ordinal >= 0)
        snprintf(where, sizeof where, " on device %d", ctx->be->caps.device_ordinal);
    zrt_log(ctx, 2,
            "context created: stage %s, %d ranks (local %d of %d), backend %s%s, "
            "communicator %s, kernels %s, %d core(s) for helper threads",
            stage, ctx->comm->size, ctx->comm->local_rank, ctx->comm->local_size,
            ctx->be->ops->name, where, ctx->comm->ops->name, zrt_kernels_cpu_path(),
            zrt__pool_size(ctx->pool));
    *out = ctx;
    return ZRT_OK;
fail:
    report_early_error(ctx->err.text);
    destroy_comms(ctx);
    if (ctx->be)
        ctx->be->ops->destroy(ctx->be);
    zrt__pool_destroy(ctx->pool);
    free(ctx);
    return st;
}

static int any_layer_live(const zrt_ctx *ctx, int *which)
{
    for (int l = 0; ctx->layers && l < ctx->plan.nlayers; l++) {
        if (ctx->layers[l].fwd_live || ctx->layers[l].bwd_live) {
            *which = l;
            return 1;
        }
    }
    return 0;
}

static void free_params(zrt_ctx *ctx)
{
    for (int i = 0; i < ctx->nparams; i++)
        free(ctx->params[i].name);
    free(ctx->params);
    free(ctx->declared_calls);
}

static void free_user_buffers(zrt_ctx *ctx)
{
    while (ctx->user_bufs) {
        zrt__user_buf *next = ctx->user_bufs->next;
        ctx->be->ops->free(ctx->be, &ctx->user_bufs->buf);
        free(ctx->user_bufs);
        ctx->user_bufs = next;
    }
}

zrt_status zrt_ctx_destroy(zrt_ctx *ctx)
{
    if (!ctx)
        return ZRT_OK;
    int live;
    if (any_layer_live(ctx, &live))
        return zrt__fail(&ctx->err, ZRT_ERR_STATE,
                         "zrt_ctx_destroy: layer %d is still live; end its "
                         "forward or backward first",
                         live);
    zrt_status st = ZRT_OK;
    if (ctx->finalized)
        st = zrt__engine_drain(ctx);
    zrt__pipe_release(ctx);
    if (ctx->ckpt_release) /* its writer reads the buffer released below */
        ctx->ckpt_release(ctx);
    zrt__engine_release(ctx);
    free_user_buffers(ctx);
    free_params(ctx);
    destroy_comms(ctx);
    ctx->be->ops->destroy(ctx->be);
    zrt__pool_destroy(ctx->pool);
    zrt__mem_account_free(&ctx->acct);
    free(ctx);
    return st;
}

zrt_status zrt_abort_job(zrt_ctx *ctx, int exit_code)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    fprintf(stderr, "[zrt rank %d] ending the job: %s\n", ctx->comm->rank,
            ctx->err.text[0] ? ctx->err.text : "requested by the program");
    fflush(stderr);
    return ctx->comm->ops->abort_job(ctx->comm, exit_code);
}

zrt_status zrt_rank(const zrt_ctx *ctx, int *out)
{
    if (!ctx || !out)
        return ZRT_ERR_INVALID_ARG;
    *out = ctx->comm->rank;
    return ZRT_OK;
}

zrt_status zrt_world_size(const zrt_ctx *ctx, int *out)
{
    if (!ctx || !out)
        return ZRT_ERR_INVALID_ARG;
    *out = ctx->comm->size;
    return ZRT_OK;
}

zrt_status zrt_get_config(const zrt_ctx *ctx, zrt_config *out)
{
    if (!ctx || !out)
        return ZRT_ERR_INVALID_ARG;
    *out = ctx->cfg;
    return ZRT_OK;
}

zrt_status zrt_comm_wait_seconds(const zrt_ctx *ctx, double *out)
{
    if (!ctx || !out)
        return ZRT_ERR_INVALID_ARG;
    *out = ctx->comm_wait_seconds;
    return ZRT_OK;
}

zrt_status zrt_allreduce_f32(zrt_ctx *ctx, float *buf, size_t count, zrt_reduce_op op)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!buf && count)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_allreduce_f32: buffer is NULL");
    if (op != ZRT_SUM && op != ZRT_AVG)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_allreduce_f32: unknown reduce op %d", (int)op);
    zrt__comm_req *req;
    ZRT_CHECK(zrt__comm_all_reduce_f32(ctx->comm, buf, buf, count, op, &req));
    ZRT_CHECK(zrt__comm_wait(ctx, req));
    /* The API calls this blocking, but on a device buffer the
     * NCCL communicator's wait only orders the backend's stream after the
     * collective (a non-blocking stream, which the legacy default stream
     * does not wait for): wait for it here, so the result is there for the
     * host and for any stream once this returns. Host buffers (MPI) and the
     * cpu backend are complete already and skip this. */
    if (!ctx->be->caps.device_is_host && count && zrt__be_on_device(ctx->be, buf))
        return zrt__be_synchronize(ctx->be);
    return ZRT_OK;
}

zrt_status zrt_buffer_alloc(zrt_ctx *ctx, size_t bytes, zrt_category category, void **out)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!out || (unsigned)category >= ZRT_CAT_COUNT)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_buffer_alloc: bad category %d or NULL out", (int)category);
    zrt__user_buf *node = calloc(1, sizeof *node);
    if (!node)
        return zrt__fail(&ctx->err, ZRT_ERR_OUT_OF_MEMORY,
                         "zrt_buffer_alloc: cannot allocate bookkeeping");
    zrt_status st = ctx->be->ops->alloc(ctx->be, bytes, ZRT_TIER_DEVICE, category,
                                        "a training-loop buffer", &node->buf);
    if (st != ZRT_OK) {
        free(node);
        return st;
    }
    node->next = ctx->user_bufs;
    ctx->user_bufs = node;
    *out = node->buf.ptr;
    return ZRT_OK;
}

zrt_status zrt_device_stream(zrt_ctx *ctx, void **stream)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!stream)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_device_stream: NULL out");
    if (ctx->be->caps.device_is_host)
        return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                         "zrt_device_stream: backend '%s' has no device stream",
                         ctx->be->ops->name);
    *stream = ctx->be->stream;
    return ZRT_OK;
}

zrt_status zrt_device_ordinal(zrt_ctx *ctx, int *ordinal)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!ordinal)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG, "zrt_device_ordinal: NULL out");
    if (ctx->be->caps.device_ordinal >= 0) {
        *ordinal = ctx->be->caps.device_ordinal;
        return ZRT_OK;
    }
    return zrt__fail(&ctx->err, ZRT_ERR_UNSUPPORTED,
                     "zrt_device_ordinal: backend '%s' has no CUDA device",
                     ctx->be->ops->name);
}

zrt_status zrt_buffer_free(zrt_ctx *ctx, void *ptr)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!ptr)
        return ZRT_OK;
    for (zrt__user_buf **link = &ctx->user_bufs; *link; link = &(*link)->next) {
        if ((*link)->buf.ptr != ptr)
            continue;
        zrt__user_buf *node = *link;
        *link = node->next;
        ctx->be->ops->free(ctx->be, &node->buf);
        free(node);
        return ZRT_OK;
    }
    return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                     "zrt_buffer_free: %p was not allocated by zrt_buffer_alloc", ptr);
}

zrt_status zrt_get_mem_stats(const zrt_ctx *ctx, zrt_mem_stats *out)
{
    if (!ctx || !out)
        return ZRT_ERR_INVALID_ARG;
    *out = ctx->acct.stats;
    return ZRT_OK;
}
