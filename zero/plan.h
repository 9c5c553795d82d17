/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero/plan.h — the partition plan: where every parameter element lives.
 *
 * Parameters are grouped by layer into one flat buffer per layer. Each tensor
 * starts at a multiple of `alignment` elements; the flat buffer is padded to
 * world * shard_numel elements, where shard_numel is a multiple of
 * `alignment`, so it splits into `world` equal, aligned shards and rank r owns
 * elements [r * shard_numel, (r + 1) * shard_numel). A tensor may cross shard
 * borders, a tensor may be smaller than the world, a layer may have no
 * parameters (its flat buffer is empty): all are ordinary cases.
 *
 * Padding is bounded: total_flat_numel - total_numel is at most
 * ntensors * (alignment - 1) + nlayers * world * alignment.
 *
 * The plan is pure arithmetic over (numel, layer) pairs: no memory beyond its
 * own tables, no communication. Everything else (which rank updates which
 * element, what a checkpoint holds) derives from it.
 */
#ifndef ZRT_ZERO_PLAN_H
#define ZRT_ZERO_PLAN_H

#include <stdint.h>

#include "../runtime/error.h"

typedef struct zrt__tensor_place {
    int64_t numel;
    int layer;
    int64_t offset; /* first element in the layer's flat buffer */
} zrt__tensor_place;

typedef struct zrt__layer_plan {
    int64_t numel;      /* parameter elements, no padding */
    int64_t flat_numel; /* world * shard_numel */
    int64_t shard_numel;
    int first; /* its tensors: tensor_order[first .. first+count) */
    int count;
} zrt__layer_plan;

typedef struct zrt__plan {
    int world;     /* ranks the shards are spread over: the shard group */
    int replicas;  /* hybrid sharding: copies of each shard (world / group
                      size); 0 or 1: none (zero/memplan.c plans their
                      all-reduce) */
    int alignment; /* elements */
    int nlayers;   /* highest layer id + 1 */
    int ntensors;
    zrt__layer_plan *layers;
    zrt__tensor_place *tensors; /* by tensor index (registration order) */
    int *tensor_order;          /* tensor indices grouped by layer */
    int64_t total_numel;
    int64_t total_flat_numel;
    int64_t max_flat_numel; /* largest layer */
    int writes_ckpt;        /* this rank writes a checkpoint file (zrt_save:
                               every rank, but with hybrid sharding only the
                               first shard group's) */
} zrt__plan;

/* A run of one tensor's elements inside a range of its layer's flat buffer. */
typedef struct zrt__segment {
    int tensor;
    int64_t tensor_offset; /* first element, counted within the tensor */
    int64_t range_offset;  /* first element, counted within the range */
    int64_t count;
} zrt__segment;

/* Builds the plan for n tensors; numel[i] >= 1 and layer[i] >= 0. */
zrt_status zrt__plan_build(const int64_t *numel, const int *layer, int n, int world,
                           int alignment, zrt__errbuf *err, zrt__plan *out);
void zrt__plan_free(zrt__plan *plan);

/* Layer ids passed below must be in [0, nlayers). */

/* Segments of the tensors of `layer` that fall in [lo, hi) of its flat
 * buffer, in flat order. `out` has room for the layer's tensor count; the
 * number written is returned. */
int zrt__plan_segments(const zrt__plan *plan, int layer, int64_t lo, int64_t hi,
                       zrt__segment *out);

/* The rank whose shard holds flat element `index` of `layer`; -1 when the
 * index is outside the flat buffer. */
int zrt__plan_owner(const zrt__plan *plan, int layer, int64_t index);

#endif /* ZRT_ZERO_PLAN_H */
