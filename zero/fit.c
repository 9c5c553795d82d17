/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/fit.c — which configuration to train with: the ladder of stages and
 * offload tiers, cheapest in traffic first, that `"stage": "auto"` and
 * `zero-report --fit` walk until one fits the memory budgets.
 *
 * Traffic of one rank in one step, Ψ parameters of b bytes, N ranks:
 *   comm   what the collectives send: stages 0-2 2(N−1)/N·Ψ·b (all-reduce, or
 *          reduce-scatter then all-gather), stage 3 3(N−1)/N·Ψ·b (a gather in
 *          forward and in backward, a reduce-scatter); 0 on one rank
 *   host   host↔device copies: 2Ψ/N·b with the optimizer off the device
 *          (gradient shard out, new parameters back), 2Ψ/N·b more with the
 *          parameter shards off the device (read for both gathers)
 *   nvme   bytes read and written: the moments read and written once,
 *          2·8·Ψ/N (the f32 master copy of 16-bit parameters stays in memory);
 *          parameter shards read for both gathers and rewritten by the step,
 *          4·Ψ/N·b
 * The ladder orders by nvme bytes, then host bytes, then comm bytes, then
 * stage: a disk is slower than the host link, which is slower than the
 * network, so a configuration that moves less over a slower path comes
 * first. The order depends only on N (on one rank no comm at all), so it is
 * the same for every model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zrt/zrt.h"

enum { MAX_CANDIDATES = 32 };

zrt_status zrt_fit_cost_of(const zrt_config *cfg, int64_t param_count, int param_bytes,
                           int world_size, zrt_fit_cost *out)
{
    if (!cfg || !out || world_size < 1 || param_count < 0 ||
        (param_bytes != 2 && param_bytes != 4) || cfg->stage < 0 || cfg->stage > 3)
        return ZRT_ERR_INVALID_ARG;
    int64_t n = world_size, b = param_bytes;
    int64_t shard = (param_count + n - 1) / n;
    int64_t per_rank_sends = param_count / n * (n - 1); /* (N−1)/N·Ψ */
    int stage = cfg->stage;
    int optim_off = cfg->offload_optimizer.device != ZRT_OFFLOAD_NONE;
    int params_off = stage == 3 && cfg->offload_param.device != ZRT_OFFLOAD_NONE;
    zrt_fit_cost c = {0};
    c.comm_bytes = (stage == 3 ? 3 : 2) * per_rank_sends * b;
    int64_t P = cfg->zero_hpz_partition_size;
    if (stage == 3 && P > 1 && n % P == 0) /* hpZ: the backward gathers in groups */
        c.comm_bytes = (2 * per_rank_sends + param_count / P * (P - 1)) * b;
    c.host_bytes = (optim_off ? 2 * shard * b : 0) + (params_off ? 2 * shard * b : 0);
    if (cfg->offload_optimizer.device == ZRT_OFFLOAD_NVME) /* the master copy stays */
        c.nvme_bytes += 2 * 8 * shard;                     /* in memory */
    if (params_off && cfg->offload_param.device == ZRT_OFFLOAD_NVME)
        c.nvme_bytes += 4 * shard * b;
    *out = c;
    return ZRT_OK;
}

static int compare_cost(const zrt_fit_cost *a, int stage_a, const zrt_fit_cost *b,
                        int stage_b)
{
    if (a->nvme_bytes != b->nvme_bytes)
        return a->nvme_bytes < b->nvme_bytes ? -1 : 1;
    if (a->host_bytes != b->host_bytes)
        return a->host_bytes < b->host_bytes ? -1 : 1;
    if (a->comm_bytes != b->comm_bytes)
        return a->comm_bytes < b->comm_bytes ? -1 : 1;
    return stage_a - stage_b;
}

typedef struct candidate {
    zrt_config cfg;
    zrt_fit_cost cost;
    int index; /* enumeration order: the last tie-break, for a stable sort */
} candidate;

static int by_cost(const void *pa, const void *pb)
{
    const candidate *a = pa, *b = pb;
    int c = compare_cost(&a->cost, a->cfg.stage, &b->cost, b->cfg.stage);
    return c ? c : a->index - b->index;
}

/* The offload devices a ladder may use for a section. */
static int devices_allowed(int allow_nvme, int *devices)
{
    int n = 0;
    devices[n++] = ZRT_OFFLOAD_NONE;
    devices[n++] = ZRT_OFFLOAD_CPU;
    if (allow_nvme)
        devices[n++] = ZRT_OFFLOAD_NVME;
    return n;
}

static int enumerate(const zrt_config *base, int allow_nvme, int world_size,
                     candidate *out)
{
    int devices[3], ndev = devices_allowed(allow_nvme, devices), n = 0;
    for (int stage = 0; stage <= 3; stage++) {
        for (int o = 0; o < ndev; o++) {
            for (int p = 0; p < ndev; p++) {
                if ((stage == 0 && devices[o] != ZRT_OFFLOAD_NONE) ||
                    (stage != 3 && devices[p] != ZRT_OFFLOAD_NONE))
                    continue;
                candidate *c = &out[n];
                c->cfg = *base;
                c->cfg.stage = stage;
                c->cfg.offload_optimizer.device = devices[o];
                c->cfg.offload_param.device = devices[p];
                c->index = n;
                /* the order is the same for every model size: price a nominal one */
                zrt_fit_cost_of(&c->cfg, (int64_t)1 << 30, 4, world_size, &c->cost);
                n++;
            }
        }
    }
    return n;
}

zrt_status zrt_fit_ladder(const zrt_config *base, int world_size, int allow_nvme,
                          zrt_config *out, int capacity, int *count)
{
    if (!base || !count || world_size < 1 || capacity < 0 || (capacity > 0 && !out))
        return ZRT_ERR_INVALID_ARG;
    candidate all[MAX_CANDIDATES];
    int n = enumerate(base, allow_nvme, world_size, all);
    qsort(all, (size_t)n, sizeof all[0], by_cost);
    for (int i = 0; i < n && i < capacity; i++)
        out[i] = all[i].cfg;
    *count = n;
    return ZRT_OK;
}
