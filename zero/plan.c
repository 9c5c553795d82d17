/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/plan.c — building the partition plan and cutting shards into tensor
 * segments. See plan.h for the layout.
 */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

static int64_t round_up(int64_t value, int64_t multiple)
{
    return (value + multiple - 1) / multiple * multiple;
}

static zrt_status check_inputs(const int64_t *numel, const int *layer, int n, int world,
                               int alignment, zrt__errbuf *err)
{
    if (n < 0 || world < 1 || alignment < 1 || (n > 0 && (!numel || !layer)))
        return zrt__fail(err, ZRT_ERR_INVALID_ARG,
                         "partition plan: bad arguments (n %d, world %d, "
                         "alignment %d)",
                         n, world, alignment);
    for (int i = 0; i < n; i++) {
        if (numel[i] < 1 || layer[i] < 0)
            return zrt__fail(err, ZRT_ERR_INVALID_ARG,
                             "partition plan: tensor %d has %lld elements in "
                             "layer %d",
                             i, (long long)numel[i], layer[i]);
    }
    return ZRT_OK;
}

static int count_layers(const int *layer, int n)
{
    int nlayers = 0;
    for (int i = 0; i < n; i++)
        if (layer[i] + 1 > nlayers)
            nlayers = layer[i] + 1;
    return nlayers;
}

/* Orders tensors by layer, keeping registration order within a layer, and
 * records each layer's slice of that order. */
static void group_by_layer(zrt__plan *p, const int *layer)
{
    for (int i = 0; i < p->ntensors; i++)
        p->layers[layer[i]].count++;
    int next = 0;
    for (int l = 0; l < p->nlayers; l++) {
        p->layers[l].first = next;
        next += p->layers[l].count;
        p->layers[l].count = 0;
    }
    for (int i = 0; i < p->ntensors; i++) {
        zrt__layer_plan *lp = &p->layers[layer[i]];
        p->tensor_order[lp->first + lp->count++] = i;
    }
}

static void place_layer(zrt__plan *p, int l)
{
    zrt__layer_plan *lp = &p->layers[l];
    int64_t offset = 0;
    for (int k = 0; k < lp->count; k++) {
        zrt__tensor_place *t = &p->tensors[p->tensor_order[lp->first + k]];
        offset = round_up(offset, p->alignment);
        t->offset = offset;
        offset += t->numel;
        lp->numel += t->numel;
    }
    int64_t per_rank = (offset + p->world - 1) / p->world;
    lp->shard_numel = round_up(per_rank, p->alignment);
    lp->flat_numel = lp->shard_numel * p->world;
    p->total_numel += lp->numel;
    p->total_flat_numel += lp->flat_numel;
    if (lp->flat_numel > p->max_flat_numel)
        p->max_flat_numel = lp->flat_numel;
}

zrt_status zrt__plan_build(const int64_t *numel, const int *layer, int n, int world,
                           int alignment, zrt__errbuf *err, zrt__plan *out)
{
    ZRT_CHECK(check_inputs(numel, layer, n, world, alignment, err));
    zrt__plan p = {.world = world,
                   .alignment = alignment,
                   .ntensors = n,
                   .nlayers = count_layers(layer, n)};
    p.layers = calloc((size_t)p.nlayers + 1, sizeof *p.layers);
    p.tensors = calloc((size_t)n + 1, sizeof *p.tensors);
    p.tensor_order = calloc((size_t)n + 1, sizeof *p.tensor_order);
    if (!p.layers || !p.tensors || !p.tensor_order) {
        zrt__plan_free(&p);
        return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                         "partition plan: cannot allocate tables for %d tensors", n);
    }
    for (int i = 0; i < n; i++)
        p.tensors[i] = (zrt__tensor_place){.numel = numel[i], .layer = layer[i]};
    group_by_layer(&p, layer);
    for (int l = 0; l < p.nlayers; l++)
        place_layer(&p, l);
    *out = p;
    return ZRT_OK;
}

void zrt__plan_free(zrt__plan *plan)
{
    free(plan->layers);
    free(plan->tensors);
    free(plan->tensor_order);
    memset(plan, 0, sizeof *plan);
}

int zrt__plan_segments(const zrt__plan *plan, int layer, int64_t lo, int64_t hi,
                       zrt__segment *out)
{
    const zrt__layer_plan *lp = &plan->layers[layer];
    int written = 0;
    for (int k = 0; k < lp->count; k++) {
        int tensor = plan->tensor_order[lp->first + k];
        const zrt__tensor_place *t = &plan->tensors[tensor];
        int64_t begin = t->offset > lo ? t->offset : lo;
        int64_t end = t->offset + t->numel < hi ? t->offset + t->numel : hi;
        if (begin >= end)
            continue;
        out[written++] = (zrt__segment){.tensor = tensor,
                                        .tensor_offset = begin - t->offset,
                                        .range_offset = begin - lo,
                                        .count = end - begin};
    }
    return written;
}

int zrt__plan_owner(const zrt__plan *plan, int layer, int64_t index)
{
    const zrt__layer_plan *lp = &plan->layers[layer];
    if (index < 0 || index >= lp->flat_numel)
        return -1;
    return (int)(index / lp->shard_numel);
}
