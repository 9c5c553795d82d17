/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/estimate.c — what one rank will hold, computed before any run: the
 * model states and the bounded buffers per tier and category, from a config,
 * a summary of the model and a world size. Pure arithmetic: no context, no
 * allocation, no communication. `zero-report --estimate` prints it; the
 * formulas are in docs/zero-report.md as well.
 *
 * Notation (elements unless said otherwise): Ψ parameters, N ranks,
 * S = ceil(Ψ/N) a rank's shard, L the largest layer, S_L = ceil(L/N) its
 * shard, R reduce_bucket_size, P stage3_prefetch_bucket_size, Q the
 * persistent elements (stage 3), b the bytes of a parameter or gradient
 * element (4 or 2), B offload_param.buffer_count.
 *
 * Model states follow the engine's placement (zero/engine.c alloc_layer,
 * zero/nvme.c) and the stage table in zero/ctx.h:
 *   param   b × (Ψ at stages 0-2, S at stage 3)
 *   grad    b × (Ψ at stages 0-1, S at stages 2-3)
 *   master  4 × (Ψ at stage 0, S at stages 1-3), only when b = 2
 *   optim   8 × (Ψ at stage 0, S at stages 1-3)          (Adam's m and v)
 * Tiers: offload_optimizer cpu puts master and optim in host memory, and at
 * stages 2-3 the gradient shard with them (as in ZeRO-Offload; with
 * gradient_accumulation_steps > 1 the shard accumulates on the device and the
 * host holds the optimizer's copy); nvme puts
 * optim in the nvme tier twice (two slots per region, so a failed step
 * applies nothing) and the gradient shard in host memory. At stage 3
 * offload_param cpu puts the parameter shard in host memory, nvme puts it in
 * the nvme tier twice. The master copy of 16-bit parameters stays in memory
 * with the optimizer (host memory when it is offloaded, NVMe included), twice
 * when a step goes through NVMe.
 *
 * Buffers are upper bounds of the peaks (device tier unless said otherwise):
 *   param-gather   stage 3: min(Ψ − Q, L + P) × b; L × b without overlap_comm
 *                  (no prefetch); 0 when every layer is persistent
 *   param-persist  stage 3: Q × b, where Q = Ψ when L is at or under the
 *                  persistence threshold (every layer then is)
 *   grad-bucket    stages 2-3: min(Ψ, max(R, L) + L) × b: reductions in flight
 *                  (at most max(R, L), see make_room_for_reduction) plus the
 *                  layer in backward; L × b without overlap_comm
 *   comm           N > 1: min(Ψ, max(R, L)) × b: an ordered reduction holds
 *                  a scratch as large as the buffer it reduces, and at most
 *                  max(R, L) elements are being reduced; L × b without
 *                  overlap_comm; 0 on one rank (nothing to exchange);
 *                  with qgZ (zero_quantized_gradients) two buffers of those
 *                  elements quantized (int8: 1 byte, int4: 1/2, plus a
 *                  4-byte scale per zero_quantized_block_size)
 *   staging        host, any nvme offload: 6 × S_L × 4 (two (p, m, v) sets
 *                  of the largest range for the streamed step); offload_param
 *                  nvme adds the shards read ahead of their gathers,
 *                  min(S, B × S_L + ceil(P/N) + S_L) × b (B queued reads,
 *                  the prefetched layers' gathers and the current one; S_L × b
 *                  without overlap_comm)
 * Hybrid sharding (hybrid_shard_size H > 0, which must divide the world
 * size): the states are sharded across a group of H ranks and replicated
 * across the N / H groups, so N above is H; the comm row holds with H = 1
 * too when there are replicas (their all-reduce's scratch, at most a
 * layer's range, is within it).
 * hpZ (zero_hpz_partition_size P > 1, stage 3, P divides the world size):
 *   hpz            ceil((Ψ − Q) / P) × b: the secondary shards of the layers
 *                  that are not persistent
 * Not counted: the plan's padding (each tensor aligned to 16 elements, each
 * layer to 16·N: Ψ' − Ψ ≤ 15·tensors + 16·N·layers), the nvme regions'
 * rounding up to aio.block_size, activations (the training loop's own, through
 * zrt_buffer_alloc) and the scratch of the loop's zrt_allreduce_f32 calls.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../runtime/sized.h"
#include "zrt/zrt.h"

#define MAX_PARAMS ((int64_t)1 << 50) /* keeps every product below 2^63 */

/* Writes "zrt_estimate_memory: <sentence>" into errbuf (may be NULL). */
__attribute__((format(printf, 4, 5))) static zrt_status
refuse(char *errbuf, size_t errbuf_size, zrt_status status, const char *fmt, ...)
{
    if (errbuf == NULL || errbuf_size == 0)
        return status;
    int n = snprintf(errbuf, errbuf_size, "zrt_estimate_memory: ");
    if (n < 0 || (size_t)n >= errbuf_size)
        return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf + n, errbuf_size - (size_t)n, fmt, ap);
    va_end(ap);
    return status;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return a / b + (a % b != 0);
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* min(cap, a + b) for non-negative a, b, cap, without overflow. */
static int64_t add_cap(int64_t a, int64_t b, int64_t cap)
{
    if (a >= cap || b >= cap - a)
        return cap;
    return a + b;
}

/* min(cap, a × b) for non-negative a, b, cap, without overflow. */
static int64_t mul_cap(int64_t a, int64_t b, int64_t cap)
{
    if (a == 0 || b == 0)
        return 0;
    if (a > cap / b)
        return cap;
    return min64(cap, a * b);
}

/* ---- validation ---------------------------------------------------------- */

static zrt_status check_model(const zrt_mem_model *m, int world_size, char *why,
                              size_t why_size)
{
    if (m->struct_size != sizeof(zrt_mem_model))
        return refuse(why, why_size, ZRT_ERR_INVALID_ARG,
                      "model.struct_size is %zu but this library's zrt_mem_model "
                      "is %zu bytes; call zrt_mem_model_init() first",
                      m->struct_size, sizeof(zrt_mem_model));
    if (world_size < 1)
        return refuse(why, why_size, ZRT_ERR_INVALID_ARG,
                      "world_size is %d; it must be at least 1", world_size);
    return ZRT_OK;
}

/* hybrid_shard_size and zero_hpz_partition_size: off or a divisor of the
 * world size. */
static zrt_status check_shard_size(const zrt_config *cfg, int world_size, char *why,
                                   size_t why_size)
{
    int S = cfg->hybrid_shard_size;
    if (S < 0 || (S > 0 && world_size % S != 0))
        return refuse(why, why_size, ZRT_ERR_CONFIG,
                      "'hybrid_shard_size' is %d but the job has %d ranks; it must be "
                      "0 (off) or a number of ranks that divides %d",
                      S, world_size, world_size);
    int P = cfg->zero_hpz_partition_size;
    if (P < 0 || (P > 1 && world_size % P != 0))
        return refuse(why, why_size, ZRT_ERR_CONFIG,
                      "'zero_hpz_partition_size' is %d but the job has %d ranks; it must "
                      "be 0 or 1 (off) or a number of ranks that divides %d",
                      P, world_size, world_size);
    return ZRT_OK;
}

static zrt_status check_model_sizes(const zrt_mem_model *m, char *why, size_t why_size)
{
    if (m->param_count < 0 || m->param_count > MAX_PARAMS)
        return refuse(why, why_size, ZRT_ERR_INVALID_ARG,
                      "model.param_count is %lld; it must be 0 to %lld",
                      (long long)m->param_count, (long long)MAX_PARAMS);
    if (m->param_bytes != 2 && m->param_bytes != 4)
        return refuse(why, why_size, ZRT_ERR_INVALID_ARG,
                      "model.param_bytes is %d; it must be 4 (f32 parameters and "
                      "gradients) or 2 (16-bit, with an f32 master copy)",
                      m->param_bytes);
    if (m->largest_layer_numel < 0 || m->largest_layer_numel > m->param_count)
        return refuse(why, why_size, ZRT_ERR_INVALID_ARG,
                      "model.largest_layer_numel is %lld; it must be 0 (unknown) "
                      "to model.param_count (%lld)",
                      (long long)m->largest_layer_numel, (long long)m->param_count);
    if (m->nlayers < 0)
        return refuse(why, why_size, ZRT_ERR_INVALID_ARG,
                      "model.nlayers is %d; it must be 0 (unknown) or more", m->nlayers);
    if (m->persistent_numel < 0 || m->persistent_numel > m->param_count)
        return refuse(why, why_size, ZRT_ERR_INVALID_ARG,
                      "model.persistent_numel is %lld; it must be 0 to "
                      "model.param_count (%lld)",
                      (long long)m->persistent_numel, (long long)m->param_count);
    if (m->param_count > 0 && m->largest_layer_numel == 0 && m->nlayers == 0)
        return refuse(why, why_size, ZRT_ERR_INVALID_ARG,
                      "model.largest_layer_numel and model.nlayers are both 0; "
                      "give the largest layer's element count, or the number of "
                      "layers (then taken as equal in size)");
    return ZRT_OK;
}

/* The config's own range checks and rules between keys; an estimate needs
 * no nvme_path, so an empty one is filled in on a copy. */
static zrt_status check_config(const zrt_config *cfg, char *why, size_t why_size)
{
    if (cfg->struct_size != sizeof(zrt_config))
        return refuse(why, why_size, ZRT_ERR_CONFIG,
                      "cfg->struct_size is %zu but this library's zrt_config is "
                      "%zu bytes; call zrt_config_init() first",
                      cfg->struct_size, sizeof(zrt_config));
    if (cfg->stage == ZRT_STAGE_AUTO)
        return refuse(why, why_size, ZRT_ERR_CONFIG,
                      "stage is \"auto\"; an estimate needs a stage 0-3 "
                      "(zero-report --fit walks the choices auto makes)");
    zrt_config copy;
    memcpy(&copy, cfg, sizeof copy);
    zrt_offload_config *sections[2] = {&copy.offload_optimizer, &copy.offload_param};
    for (int i = 0; i < 2; i++)
        if (sections[i]->device == ZRT_OFFLOAD_NVME && !sections[i]->nvme_path[0])
            strcpy(sections[i]->nvme_path, "(estimate)");
    char text[512];
    zrt_status st = zrt_config_validate(&copy, text, sizeof text);
    if (st != ZRT_OK)
        return refuse(why, why_size, st, "%s", text);
    return ZRT_OK;
}

/* ---- the arithmetic ------------------------------------------------------ */

/* The quantities every row is made of (see the file comment). */
typedef struct dims {
    int stage, overlap;
    int64_t psi, n, shard, largest, largest_shard, persist;
    int64_t replicas; /* hybrid sharding: copies of each shard */
    int64_t b;        /* bytes of a parameter or gradient element */
} dims;

static dims dims_of(const zrt_config *cfg, const zrt_mem_model *m, int world_size)
{
    int S = cfg->hybrid_shard_size;
    dims d = {.stage = cfg->stage,
              .overlap = cfg->overlap_comm != 0,
              .psi = m->param_count,
              .n = S > 0 ? S : world_size, /* the shard group */
              .replicas = S > 0 ? world_size / S : 1,
              .b = m->param_bytes};
    d.shard = ceil_div(d.psi, d.n);
    d.largest = m->largest_layer_numel;
    if (d.largest == 0 && m->nlayers > 0)
        d.largest = ceil_div(d.psi, m->nlayers);
    d.largest_shard = ceil_div(d.largest, d.n);
    d.persist = m->persistent_numel;
    if (d.largest <= cfg->stage3_param_persistence_threshold)
        d.persist = d.psi; /* every layer is at or under the threshold */
    return d;
}

/* Offloaded state: the tier, and 2 for the nvme tier's two slots. */
static zrt_tier offload_tier(int device, int *copies)
{
    *copies = device == ZRT_OFFLOAD_NVME ? 2 : 1;
    return device == ZRT_OFFLOAD_CPU    ? ZRT_TIER_HOST
           : device == ZRT_OFFLOAD_NVME ? ZRT_TIER_NVME
                                        : ZRT_TIER_DEVICE;
}

static void model_states(const zrt_config *cfg, const dims *d, zrt_mem_estimate *e)
{
    int optim_copies, param_copies = 1;
    zrt_tier optim_tier = offload_tier(cfg->offload_optimizer.device, &optim_copies);
    zrt_tier param_tier = ZRT_TIER_DEVICE;
    if (d->stage == 3)
        param_tier = offload_tier(cfg->offload_param.device, &param_copies);
    int offloaded = d->stage >= 2 && cfg->offload_optimizer.device != ZRT_OFFLOAD_NONE;
    int staged = offloaded && cfg->gradient_accumulation_steps > 1;
    zrt_tier grad_tier = offloaded && !staged ? ZRT_TIER_HOST : ZRT_TIER_DEVICE;
    int64_t param = d->stage < 3 ? d->psi : d->shard;
    int64_t grad = d->stage < 2 ? d->psi : d->shard;
    int64_t optim = d->stage == 0 ? d->psi : d->shard;
    int64_t master_bytes = d->b == 2 ? 4 : 0; /* f32 copy of 16-bit params */
    e->bytes[param_tier][ZRT_CAT_PARAM] = param_copies * param * d->b;
    e->bytes[grad_tier][ZRT_CAT_GRAD] = grad * d->b;
    if (staged) /* accumulates on the device, the optimizer reads a host copy */
        e->bytes[ZRT_TIER_HOST][ZRT_CAT_GRAD] = grad * d->b;
    /* the master copy stays in memory with the optimizer (host memory when
     * offloaded, NVMe included), twice when a step goes through NVMe */
    int nvme_step = cfg->offload_optimizer.device == ZRT_OFFLOAD_NVME ||
                    (d->stage == 3 && cfg->offload_param.device == ZRT_OFFLOAD_NVME);
    zrt_tier master_tier = cfg->offload_optimizer.device == ZRT_OFFLOAD_NONE
                               ? ZRT_TIER_DEVICE
                               : ZRT_TIER_HOST;
    e->bytes[master_tier][ZRT_CAT_MASTER] = (nvme_step ? 2 : 1) * optim * master_bytes;
    e->bytes[optim_tier][ZRT_CAT_OPTIM] = optim_copies * optim * 8;
}

/* qwZ: the gathers in flight (`gather` elements) held quantized, received
 * (an int8 byte an element, an f32 scale a block, a short block and 3
 * bytes of padding at most a rank's part) and sent (this rank's 1/N): one
 * layer's part bounds taken for all of them, so an estimate, not a bound,
 * when several layers are in flight (zero/memplan.c has the exact figure). */
static int64_t qwz_buffers(const zrt_config *cfg, const dims *d, int64_t gather)
{
    int64_t B = cfg->zero_quantized_block_size, send = ceil_div(gather, d->n);
    int64_t recv = gather + 4 * ceil_div(gather, B) + 8 * d->n;
    return recv + send + 4 * ceil_div(send, B) + 8;
}

/* Stage 3: the gathered layers (live and prefetched) and the persistent. */
static void gather_buffers(const zrt_config *cfg, const dims *d, zrt_mem_estimate *e)
{
    if (d->stage != 3)
        return;
    int64_t gatherable = d->psi - d->persist;
    int64_t ahead = d->overlap ? cfg->stage3_prefetch_bucket_size : 0;
    int64_t gather = add_cap(min64(d->largest, gatherable), ahead, gatherable);
    e->bytes[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_GATHER] = gather * d->b;
    e->bytes[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_PERSIST] = d->persist * d->b;
    int64_t P = cfg->zero_hpz_partition_size; /* hpZ: a 1/P slice of the rest */
    if (P > 1)
        e->bytes[ZRT_TIER_DEVICE][ZRT_CAT_HPZ] = ceil_div(gatherable, P) * d->b;
    if (cfg->zero_quantized_weights)
        e->bytes[ZRT_TIER_DEVICE][ZRT_CAT_QWZ] = qwz_buffers(cfg, d, gather);
}

/* qgZ: the reductions in flight (`in_flight` elements) held quantized
 * twice, sent and received: per element a byte (int8) or a nibble (int4),
 * per rank block 3 bytes of padding and a short block's scale at most, an
 * f32 scale per block. One layer's rounding taken for all in flight: an
 * estimate (zero/memplan.c has the exact figure). */
static int64_t qgz_buffers(const zrt_config *cfg, const dims *d, int64_t in_flight)
{
    int64_t B = cfg->zero_quantized_block_size, n = d->n;
    int64_t codes =
        cfg->zero_quantized_gradient_bits == 4 ? ceil_div(in_flight, 2) + n : in_flight;
    return 2 * (codes + 3 * n + 4 * (ceil_div(in_flight, B) + n));
}

/* Top-k (stages 0-1): the residual, 4 bytes an element of every layer,
 * and instead of the reductions' scratch the (index, value) pairs of the
 * reductions in flight, sent (2k f32) and received (N times that), with k
 * taken as ceil(ratio * in_flight) for all of them at once: an estimate
 * (zero/memplan.c rounds per layer and has the exact figure). */
static void topk_buffers(const zrt_config *cfg, const dims *d, int64_t in_flight,
                         zrt_mem_estimate *e)
{
    int64_t k = (int64_t)ceil((double)cfg->gradient_topk_ratio * (double)in_flight);
    e->bytes[ZRT_TIER_DEVICE][ZRT_CAT_TOPK_RESIDUAL] = 4 * d->psi;
    e->bytes[ZRT_TIER_DEVICE][ZRT_CAT_COMM] = 8 * (k < 1 ? 1 : k) * (d->n + 1);
}

/* Gradient buckets (stages 2-3) and the reductions' scratch. */
static void reduce_buffers(const zrt_config *cfg, const dims *d, zrt_mem_estimate *e)
{
    int64_t in_flight = d->overlap
                            ? min64(d->psi, max64(cfg->reduce_bucket_size, d->largest))
                            : d->largest;
    if (d->stage >= 2) {
        int64_t bucket = d->overlap ? add_cap(in_flight, d->largest, d->psi) : d->largest;
        e->bytes[ZRT_TIER_DEVICE][ZRT_CAT_GRAD_BUCKET] = bucket * d->b;
    }
    if (cfg->zero_quantized_gradients && d->n > 1 && cfg->gradient_topk_ratio <= 0.0f)
        e->bytes[ZRT_TIER_DEVICE][ZRT_CAT_COMM] = qgz_buffers(cfg, d, in_flight);
    else if (d->n > 1 || d->replicas > 1)
        e->bytes[ZRT_TIER_DEVICE][ZRT_CAT_COMM] = in_flight * d->b;
    if (d->stage < 2 && cfg->gradient_topk_ratio > 0.0f)
        topk_buffers(cfg, d, in_flight, e);
}

/* Host staging for the nvme tiers. */
static void staging_buffers(const zrt_config *cfg, const dims *d, zrt_mem_estimate *e)
{
    int params_on_nvme = d->stage == 3 && cfg->offload_param.device == ZRT_OFFLOAD_NVME;
    if (cfg->offload_optimizer.device != ZRT_OFFLOAD_NVME && !params_on_nvme)
        return;
    int64_t bytes = 6 * d->largest_shard * 4;
    if (params_on_nvme && d->b == 2) /* the new 16-bit shards on their way out */
        bytes += 2 * d->largest_shard * d->b;
    if (params_on_nvme) {
        int64_t fetched = d->largest_shard;
        if (d->overlap) {
            int64_t queued =
                mul_cap(cfg->offload_param.buffer_count, d->largest_shard, d->shard);
            int64_t ahead = ceil_div(cfg->stage3_prefetch_bucket_size, d->n);
            fetched =
                add_cap(add_cap(queued, ahead, d->shard), d->largest_shard, d->shard);
        }
        bytes += fetched * d->b;
    }
    e->bytes[ZRT_TIER_HOST][ZRT_CAT_STAGING] = bytes;
}

static int is_model_state(int cat)
{
    return cat == ZRT_CAT_PARAM || cat == ZRT_CAT_GRAD || cat == ZRT_CAT_MASTER ||
           cat == ZRT_CAT_OPTIM;
}

static void subtotals(zrt_mem_estimate *e)
{
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        for (int c = 0; c < ZRT_CAT_COUNT; c++) {
            if (is_model_state(c))
                e->model_states[t] += e->bytes[t][c];
            else
                e->buffers[t] += e->bytes[t][c];
        }
        e->total[t] = e->model_states[t] + e->buffers[t];
    }
}

/* ---- public calls -------------------------------------------------------- */

zrt_status zrt_mem_model_init(zrt_mem_model *model)
{
    zrt_status st = zrt__sized_init(model, sizeof *model);
    if (st != ZRT_OK)
        return st;
    model->param_bytes = 4;
    return ZRT_OK;
}

/* Asynchronous saves: the host buffer a rank's checkpoint file goes
 * through, its shard's parameters in their type and the f32 moments (and
 * master copy with 16-bit parameters), or async_buffer_size when smaller
 * (zero/memplan.c has the exact, per-layer padded figure). Counted on the
 * ranks that write a file: with hybrid sharding only the first group's. */
static void checkpoint_buffer(const zrt_config *cfg, const dims *d, zrt_mem_estimate *e)
{
    if (!cfg->checkpoint_async)
        return;
    int64_t per_elem = d->b + 4 * (d->b == 4 ? 2 : 3);
    int64_t bytes = d->shard * per_elem, cap = cfg->checkpoint_async_buffer_size;
    e->bytes[ZRT_TIER_HOST][ZRT_CAT_CKPT_BUFFER] = cap > 0 && cap < bytes ? cap : bytes;
}

zrt_status zrt_estimate_memory(const zrt_config *cfg, const zrt_mem_model *model,
                               int world_size, zrt_mem_estimate *out, char *errbuf,
                               size_t errbuf_size)
{
    if (cfg == NULL || model == NULL || out == NULL)
        return refuse(errbuf, errbuf_size, ZRT_ERR_INVALID_ARG, "%s is NULL",
                      cfg == NULL     ? "cfg"
                      : model == NULL ? "model"
                                      : "out");
    zrt_status st = check_config(cfg, errbuf, errbuf_size);
    if (st != ZRT_OK)
        return st;
    st = check_model(model, world_size, errbuf, errbuf_size);
    if (st == ZRT_OK)
        st = check_model_sizes(model, errbuf, errbuf_size);
    if (st == ZRT_OK)
        st = check_shard_size(cfg, world_size, errbuf, errbuf_size);
    if (st != ZRT_OK)
        return st;
    if (errbuf != NULL && errbuf_size > 0)
        errbuf[0] = '\0';
    zrt_mem_estimate e;
    memset(&e, 0, sizeof e);
    dims d = dims_of(cfg, model, world_size);
    model_states(cfg, &d, &e);
    gather_buffers(cfg, &d, &e);
    reduce_buffers(cfg, &d, &e);
    staging_buffers(cfg, &d, &e);
    checkpoint_buffer(cfg, &d, &e);
    subtotals(&e);
    *out = e;
    return ZRT_OK;
}
