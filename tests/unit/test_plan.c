/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/test_plan.c — Check suite "plan" for the partition plan
 * (zero/plan.h): how registered tensors are laid into per-layer flat buffers
 * and cut into one equal, aligned shard per rank.
 *
 * Every plan built here goes through check_plan(), which holds the layout
 * contract: flat = world * shard, shard a multiple of the alignment, tensor
 * offsets aligned, tensors of a layer in registration order without overlap,
 * empty layers empty, totals summed, padding minimal; and the coverage
 * property: cutting the flat buffer into the ranks' shards (and into
 * arbitrary buckets) yields segments that cover every tensor element exactly
 * once, each segment consistent with the tensor's offset. A few cases also
 * pin exact offsets and segments, so a layout that is self-consistent but not
 * the documented one fails too. main() returns 0 only if all pass.
 */
#include "zero/plan.h"

#include "../common/test_check.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------- */

/* One segment: which tensor, where in it, where in the range, how many. */
static void expect_segment(const zrt__segment *seg, int tensor, int64_t tensor_offset,
                           int64_t range_offset, int64_t count)
{
    ck_assert_int_eq(seg->tensor, tensor);
    ck_assert_int_eq(seg->tensor_offset, tensor_offset);
    ck_assert_int_eq(seg->range_offset, range_offset);
    ck_assert_int_eq(seg->count, count);
}

static void build_ok(const int64_t *numel, const int *layer, int n, int world,
                     int alignment, zrt__plan *plan)
{
    zrt__errbuf err = {.rank = -1};
    zrt_status st = zrt__plan_build(numel, layer, n, world, alignment, &err, plan);
    ck_assert_msg(st == ZRT_OK, "plan_build failed (%s): %s", zrt_status_str(st),
                  err.text);
}

/* Cuts [lo, hi) of `layer` into segments and checks each one: it belongs to
 * the layer, lies inside the range and inside its tensor, agrees with the
 * tensor's offset, and follows the previous one in flat order. Adds 1 to
 * cover[tensor][element] for every element it reports; returns the number of
 * elements reported. */
static int64_t cut_range(const zrt__plan *p, int l, int64_t lo, int64_t hi, int **cover)
{
    const zrt__layer_plan *lp = &p->layers[l];
    /* One spare slot with a sentinel: writing past the layer's count fails. */
    zrt__segment *seg = calloc((size_t)lp->count + 1, sizeof *seg);
    ck_assert_ptr_nonnull(seg);
    seg[lp->count].tensor = -12345;
    int nseg = zrt__plan_segments(p, l, lo, hi, seg);
    ck_assert_int_ge(nseg, 0);
    ck_assert_int_le(nseg, lp->count);
    ck_assert_int_eq(seg[lp->count].tensor, -12345);

    int64_t reported = 0, prev_end = -1;
    for (int k = 0; k < nseg; k++) {
        const zrt__segment *s = &seg[k];
        ck_assert_int_ge(s->tensor, 0);
        ck_assert_int_lt(s->tensor, p->ntensors);
        const zrt__tensor_place *t = &p->tensors[s->tensor];
        ck_assert_int_eq(t->layer, l);
        ck_assert_int_ge(s->count, 1);
        ck_assert_int_ge(s->tensor_offset, 0);
        ck_assert_int_le(s->tensor_offset + s->count, t->numel);
        ck_assert_int_ge(s->range_offset, 0);
        ck_assert_int_le(s->range_offset + s->count, hi - lo);
        ck_assert_int_eq(s->range_offset + lo, t->offset + s->tensor_offset);
        ck_assert_int_ge(s->range_offset, prev_end); /* flat order */
        prev_end = s->range_offset + s->count;
        if (cover) {
            for (int64_t e = 0; e < s->count; e++)
                cover[s->tensor][s->tensor_offset + e]++;
        }
        reported += s->count;
    }
    /* Every tensor element inside [lo, hi) is reported: count them. */
    int64_t expected = 0;
    for (int k = 0; k < lp->count; k++) {
        const zrt__tensor_place *t = &p->tensors[p->tensor_order[lp->first + k]];
        int64_t b = t->offset > lo ? t->offset : lo;
        int64_t e = t->offset + t->numel < hi ? t->offset + t->numel : hi;
        if (e > b)
            expected += e - b;
    }
    ck_assert_int_eq(reported, expected);
    free(seg);
    return reported;
}

static int **cover_new(const zrt__plan *p)
{
    int **cover = calloc((size_t)p->ntensors + 1, sizeof *cover);
    ck_assert_ptr_nonnull(cover);
    for (int i = 0; i < p->ntensors; i++) {
        cover[i] = calloc((size_t)p->tensors[i].numel, sizeof **cover);
        ck_assert_ptr_nonnull(cover[i]);
    }
    return cover;
}

static void cover_free(const zrt__plan *p, int **cover)
{
    for (int i = 0; i < p->ntensors; i++)
        free(cover[i]);
    free(cover);
}

/* Every element of every tensor of the plan was reported exactly once. */
static void cover_check_once(const zrt__plan *p, int **cover, const char *how)
{
    for (int i = 0; i < p->ntensors; i++)
        for (int64_t e = 0; e < p->tensors[i].numel; e++)
            ck_assert_msg(cover[i][e] == 1,
                          "%s: tensor %d element %lld covered %d times "
                          "(world %d, alignment %d)",
                          how, i, (long long)e, cover[i][e], p->world, p->alignment);
}

/* The rank shards [r*S, (r+1)*S) cover every element exactly once. */
static void check_shard_coverage(const zrt__plan *p)
{
    int **cover = cover_new(p);
    for (int l = 0; l < p->nlayers; l++) {
        const zrt__layer_plan *lp = &p->layers[l];
        int64_t total = 0;
        for (int r = 0; r < p->world; r++)
            total +=
                cut_range(p, l, r * lp->shard_numel, (r + 1) * lp->shard_numel, cover);
        ck_assert_int_eq(total, lp->numel);
    }
    cover_check_once(p, cover, "rank shards");
    cover_free(p, cover);
}

/* Buckets of arbitrary, unaligned sizes cover every element exactly once. */
static void check_bucket_coverage(const zrt__plan *p, test_rng *r)
{
    int **cover = cover_new(p);
    for (int l = 0; l < p->nlayers; l++) {
        const zrt__layer_plan *lp = &p->layers[l];
        int64_t lo = 0, total = 0;
        while (lo < lp->flat_numel) {
            int64_t hi = lo + 1 + (int)test_rng_below(r, 37);
            if (hi > lp->flat_numel)
                hi = lp->flat_numel;
            total += cut_range(p, l, lo, hi, cover);
            lo = hi;
        }
        ck_assert_int_eq(total, lp->numel);
    }
    cover_check_once(p, cover, "buckets");
    cover_free(p, cover);
}

/* Owner of every flat index is index / shard; -1 outside the flat buffer. */
static void check_owner(const zrt__plan *p)
{
    for (int l = 0; l < p->nlayers; l++) {
        const zrt__layer_plan *lp = &p->layers[l];
        ck_assert_int_eq(zrt__plan_owner(p, l, -1), -1);
        ck_assert_int_eq(zrt__plan_owner(p, l, -1000), -1);
        for (int64_t i = 0; i < lp->flat_numel; i++)
            ck_assert_int_eq(zrt__plan_owner(p, l, i), (int)(i / lp->shard_numel));
        ck_assert_int_eq(zrt__plan_owner(p, l, lp->flat_numel), -1);
        ck_assert_int_eq(zrt__plan_owner(p, l, lp->flat_numel + 7), -1);
        if (lp->flat_numel > 0) {
            ck_assert_int_eq(zrt__plan_owner(p, l, 0), 0);
            ck_assert_int_eq(zrt__plan_owner(p, l, lp->flat_numel - 1), p->world - 1);
        }
    }
}

/* The layout contract for a plan built from (numel, layer, n). */
static void check_plan(const zrt__plan *p, const int64_t *numel, const int *layer, int n,
                       int world, int alignment)
{
    ck_assert_int_eq(p->world, world);
    ck_assert_int_eq(p->alignment, alignment);
    ck_assert_int_eq(p->ntensors, n);
    int nlayers = 0;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (layer[i] + 1 > nlayers)
            nlayers = layer[i] + 1;
        total += numel[i];
        ck_assert_int_eq(p->tensors[i].numel, numel[i]);
        ck_assert_int_eq(p->tensors[i].layer, layer[i]);
        ck_assert_int_eq(p->tensors[i].offset % alignment, 0);
    }
    ck_assert_int_eq(p->nlayers, nlayers);
    ck_assert_int_eq(p->total_numel, total);

    int64_t total_flat = 0, max_flat = 0;
    int seen = 0;
    for (int l = 0; l < nlayers; l++) {
        const zrt__layer_plan *lp = &p->layers[l];
        ck_assert_int_eq(lp->flat_numel, (int64_t)world * lp->shard_numel);
        ck_assert_int_eq(lp->shard_numel % alignment, 0);
        ck_assert_int_ge(lp->flat_numel, lp->numel);
        total_flat += lp->flat_numel;
        if (lp->flat_numel > max_flat)
            max_flat = lp->flat_numel;

        /* Its tensors, in registration order, are exactly those of layer l. */
        ck_assert_int_eq(lp->first, seen);
        int k = 0;
        int64_t sum = 0, end = 0;
        for (int i = 0; i < n; i++) {
            if (layer[i] != l)
                continue;
            ck_assert_int_lt(k, lp->count);
            ck_assert_int_eq(p->tensor_order[lp->first + k], i);
            const zrt__tensor_place *t = &p->tensors[i];
            ck_assert_int_ge(t->offset, end); /* after the previous one */
            /* No gap of a whole alignment unit: offsets are packed. */
            ck_assert_int_lt(t->offset - end, alignment);
            end = t->offset + t->numel;
            sum += t->numel;
            k++;
        }
        ck_assert_int_eq(lp->count, k);
        ck_assert_int_eq(lp->numel, sum);
        ck_assert_int_le(end, lp->flat_numel);
        seen += k;
        if (k == 0) {
            ck_assert_int_eq(lp->numel, 0);
            ck_assert_int_eq(lp->flat_numel, 0);
            ck_assert_int_eq(lp->shard_numel, 0);
            zrt__segment none[1] = {{.tensor = -7}};
            ck_assert_int_eq(zrt__plan_segments(p, l, 0, 0, none), 0);
            ck_assert_int_eq(zrt__plan_segments(p, l, 0, 1000, none), 0);
            ck_assert_int_eq(none[0].tensor, -7);
            ck_assert_int_eq(zrt__plan_owner(p, l, 0), -1);
        } else {
            /* Minimal padding: one alignment unit less per rank would not
             * hold the layer. */
            ck_assert_int_lt((lp->shard_numel - alignment) * world, end);
        }
    }
    ck_assert_int_eq(seen, n);
    ck_assert_int_eq(p->total_flat_numel, total_flat);
    ck_assert_int_eq(p->max_flat_numel, max_flat);
    /* The documented padding bound. */
    ck_assert_int_le(p->total_flat_numel - p->total_numel,
                     (int64_t)n * (alignment - 1) + (int64_t)nlayers * world * alignment);

    check_shard_coverage(p);
    check_owner(p);
}

/* A plan built from (numel, layer, n) that holds the layout contract; the
 * caller frees it. */
static zrt__plan build_checked(const int64_t *numel, const int *layer, int n, int world,
                               int alignment)
{
    zrt__plan p;
    build_ok(numel, layer, n, world, alignment, &p);
    check_plan(&p, numel, layer, n, world, alignment);
    return p;
}

/* Layer l's exact layout: its shard and flat sizes, and the offsets of its
 * count tensors in registration order. */
static void expect_layer(const zrt__plan *p, int l, int64_t shard_numel,
                         int64_t flat_numel, int count, const int64_t *offsets)
{
    const zrt__layer_plan *lp = &p->layers[l];
    ck_assert_int_eq(lp->shard_numel, shard_numel);
    ck_assert_int_eq(lp->flat_numel, flat_numel);
    ck_assert_int_eq(lp->count, count);
    for (int k = 0; k < count; k++)
        ck_assert_msg(p->tensors[p->tensor_order[lp->first + k]].offset == offsets[k],
                      "layer %d tensor %d: offset %lld, want %lld", l, k,
                      (long long)p->tensors[p->tensor_order[lp->first + k]].offset,
                      (long long)offsets[k]);
}

/* ---- fixed cases --------------------------------------------------------- */

START_TEST(test_world3_odd_sizes)
{
    const int64_t numel[] = {5, 17, 1, 33, 16, 7, 100};
    const int layer[] = {0, 0, 0, 1, 1, 2, 2};
    const int n = 7, world = 3, align = 16;
    zrt__plan p = build_checked(numel, layer, n, world, align);

    /* Layer 0: 5 | pad | 17 | pad | 1 -> offsets 0, 16, 48; 49 used,
     * ceil(49 / 3) = 17 -> shard 32, flat 96. */
    expect_layer(&p, 0, 32, 96, 3, (const int64_t[]){0, 16, 48});
    ck_assert_int_eq(p.layers[0].numel, 23);
    /* Layer 1: offsets 0, 48; 64 used -> shard 32, flat 96. */
    expect_layer(&p, 1, 32, 96, 2, (const int64_t[]){0, 48});
    /* Layer 2: offsets 0, 16; 116 used -> ceil(116/3) = 39 -> shard 48. */
    expect_layer(&p, 2, 48, 144, 2, (const int64_t[]){0, 16});
    ck_assert_int_eq(p.total_numel, 179);
    ck_assert_int_eq(p.total_flat_numel, 96 + 96 + 144);
    ck_assert_int_eq(p.max_flat_numel, 144);

    test_rng r = test_rng_seed(42);
    check_bucket_coverage(&p, &r);
    zrt__plan_free(&p);
}
END_TEST

START_TEST(test_tensor_smaller_than_world)
{
    const int64_t numel[] = {3};
    const int layer[] = {0};
    zrt__segment seg[2];

    /* Alignment 16: the whole tensor sits in rank 0's shard. */
    zrt__plan p = build_checked(numel, layer, 1, 4, 16);
    expect_layer(&p, 0, 16, 64, 1, (const int64_t[]){0});
    ck_assert_int_eq(zrt__plan_segments(&p, 0, 0, 16, seg), 1);
    ck_assert_int_eq(seg[0].tensor, 0);
    ck_assert_int_eq(seg[0].count, 3);
    for (int r = 1; r < 4; r++)
        ck_assert_int_eq(zrt__plan_segments(&p, 0, r * 16, (r + 1) * 16, seg), 0);
    zrt__plan_free(&p);

    /* Alignment 1: one element each on ranks 0..2, nothing on rank 3. */
    p = build_checked(numel, layer, 1, 4, 1);
    expect_layer(&p, 0, 1, 4, 1, (const int64_t[]){0});
    for (int r = 0; r < 3; r++) {
        ck_assert_int_eq(zrt__plan_segments(&p, 0, r, r + 1, seg), 1);
        ck_assert_int_eq(seg[0].tensor_offset, r);
        ck_assert_int_eq(seg[0].range_offset, 0);
        ck_assert_int_eq(seg[0].count, 1);
    }
    ck_assert_int_eq(zrt__plan_segments(&p, 0, 3, 4, seg), 0);
    ck_assert_int_eq(zrt__plan_owner(&p, 0, 2), 2);
    ck_assert_int_eq(zrt__plan_owner(&p, 0, 3), 3);
    zrt__plan_free(&p);
}
END_TEST

START_TEST(test_tensor_across_shards)
{
    /* World 3, alignment 4: tensor 0 (3) at 0, tensor 1 (30) at 4; 34 used,
     * ceil(34/3) = 12 -> shard 12. Tensor 1 spans all three shards. */
    const int64_t numel[] = {3, 30};
    const int layer[] = {0, 0};
    zrt__segment seg[3];
    zrt__plan p = build_checked(numel, layer, 2, 3, 4);
    expect_layer(&p, 0, 12, 36, 2, (const int64_t[]){0, 4});

    ck_assert_int_eq(zrt__plan_segments(&p, 0, 0, 12, seg), 2);
    expect_segment(&seg[0], 0, 0, 0, 3);
    expect_segment(&seg[1], 1, 0, 4, 8);

    ck_assert_int_eq(zrt__plan_segments(&p, 0, 12, 24, seg), 1);
    expect_segment(&seg[0], 1, 8, 0, 12);

    ck_assert_int_eq(zrt__plan_segments(&p, 0, 24, 36, seg), 1);
    expect_segment(&seg[0], 1, 20, 0, 10);

    /* A range cut inside the padding and inside the tensor. */
    ck_assert_int_eq(zrt__plan_segments(&p, 0, 3, 6, seg), 1);
    expect_segment(&seg[0], 1, 0, 1, 2);

    test_rng r = test_rng_seed(7);
    check_bucket_coverage(&p, &r);
    zrt__plan_free(&p);
}
END_TEST

START_TEST(test_interleaved_registration)
{
    /* Layer 1, layer 0, layer 1: each layer keeps registration order. */
    const int64_t numel[] = {10, 20, 30};
    const int layer[] = {1, 0, 1};
    zrt__plan p = build_checked(numel, layer, 3, 2, 16);
    ck_assert_int_eq(p.nlayers, 2);
    ck_assert_int_eq(p.layers[0].count, 1);
    ck_assert_int_eq(p.tensor_order[p.layers[0].first], 1);
    ck_assert_int_eq(p.layers[1].count, 2);
    ck_assert_int_eq(p.tensor_order[p.layers[1].first], 0);
    ck_assert_int_eq(p.tensor_order[p.layers[1].first + 1], 2);
    ck_assert_int_eq(p.tensors[1].offset, 0);
    ck_assert_int_eq(p.tensors[0].offset, 0);
    ck_assert_int_eq(p.tensors[2].offset, 16);
    ck_assert_int_eq(p.layers[1].numel, 40);

    zrt__segment seg[2];
    ck_assert_int_eq(zrt__plan_segments(&p, 1, 0, p.layers[1].flat_numel, seg), 2);
    ck_assert_int_eq(seg[0].tensor, 0);
    ck_assert_int_eq(seg[1].tensor, 2);
    ck_assert_int_eq(seg[1].range_offset, 16);
    zrt__plan_free(&p);
}
END_TEST

START_TEST(test_empty_layers)
{
    /* Layers 0, 2 and 4 have no parameters. */
    const int64_t numel[] = {9, 40};
    const int layer[] = {3, 1};
    zrt__plan p = build_checked(numel, layer, 2, 3, 16);
    ck_assert_int_eq(p.nlayers, 4);
    for (int l = 0; l < 4; l += 2) {
        ck_assert_int_eq(p.layers[l].count, 0);
        ck_assert_int_eq(p.layers[l].flat_numel, 0);
        for (int64_t i = 0; i < 5; i++)
            ck_assert_int_eq(zrt__plan_owner(&p, l, i), -1);
    }
    zrt__plan_free(&p);
}
END_TEST

START_TEST(test_large_tensors)
{
    /* Element counts past 2^31: offsets and shards are 64-bit. */
    const int64_t big = 3000000001LL;
    const int64_t numel[] = {big, 5};
    const int layer[] = {0, 0};
    zrt__plan p;
    build_ok(numel, layer, 2, 4, 16, &p);
    int64_t off1 = (big + 15) / 16 * 16;
    ck_assert_int_eq(p.tensors[1].offset, off1);
    int64_t used = off1 + 5;
    int64_t shard = ((used + 3) / 4 + 15) / 16 * 16;
    ck_assert_int_eq(p.layers[0].shard_numel, shard);
    ck_assert_int_eq(p.layers[0].flat_numel, 4 * shard);
    ck_assert_int_eq(p.total_numel, big + 5);

    int64_t got[2] = {0, 0};
    zrt__segment seg[2];
    for (int r = 0; r < 4; r++) {
        int nseg = zrt__plan_segments(&p, 0, r * shard, (r + 1) * shard, seg);
        for (int k = 0; k < nseg; k++) {
            ck_assert_int_eq(seg[k].range_offset + r * shard,
                             p.tensors[seg[k].tensor].offset + seg[k].tensor_offset);
            got[seg[k].tensor] += seg[k].count;
        }
    }
    ck_assert_int_eq(got[0], big);
    ck_assert_int_eq(got[1], 5);
    ck_assert_int_eq(zrt__plan_owner(&p, 0, big - 1), (int)((big - 1) / shard));
    ck_assert_int_eq(zrt__plan_owner(&p, 0, 4 * shard - 1), 3);
    ck_assert_int_eq(zrt__plan_owner(&p, 0, 4 * shard), -1);
    zrt__plan_free(&p);
}
END_TEST

/* ---- property test ------------------------------------------------------- */

START_TEST(test_random_plans)
{
    static const int aligns[] = {1, 4, 16};
    test_rng r = test_rng_seed(0x5eed2024ULL);
    int plans = 0;
    for (int world = 1; world <= 5; world++) {
        for (int ai = 0; ai < 3; ai++) {
            for (int trial = 0; trial < 8; trial++) {
                int64_t numel[12];
                int layer[12];
                int n = (int)test_rng_below(&r, 13);   /* 0..12 */
                int skip = (int)test_rng_below(&r, 4); /* a layer id left empty */
                for (int i = 0; i < n; i++) {
                    static const int scale[] = {3, 40, 200};
                    numel[i] = 1 + (int)test_rng_below(&r, scale[test_rng_below(&r, 3)]);
                    int l = (int)test_rng_below(&r, 4);
                    layer[i] = l >= skip ? l + 1 : l; /* ids 0..4 but skip */
                }
                zrt__plan p = build_checked(numel, layer, n, world, aligns[ai]);
                if (skip < p.nlayers) {
                    ck_assert_int_eq(p.layers[skip].count, 0);
                    ck_assert_int_eq(p.layers[skip].numel, 0);
                }
                check_bucket_coverage(&p, &r);
                zrt__plan_free(&p);
                plans++;
            }
        }
    }
    ck_assert_int_eq(plans, 5 * 3 * 8);
}
END_TEST

START_TEST(test_padding_bound_worst_case)
{
    /* Many one-element tensors: each pays alignment - 1 of padding, and the
     * layers pay the round-up to world aligned shards. */
    int64_t numel[12];
    int layer[12];
    for (int i = 0; i < 12; i++) {
        numel[i] = 1;
        layer[i] = i % 3;
    }
    zrt__plan p = build_checked(numel, layer, 12, 5, 16);
    ck_assert_int_eq(p.total_numel, 12);
    /* 4 tensors per layer: 49 used -> ceil(49/5) = 10 -> shard 16 -> 80. */
    ck_assert_int_eq(p.layers[0].flat_numel, 80);
    ck_assert_int_eq(p.total_flat_numel, 240);
    ck_assert_int_le(p.total_flat_numel - p.total_numel, 12 * 15 + 3 * 5 * 16);
    zrt__plan_free(&p);
}
END_TEST

/* ---- bad inputs and lifetimes -------------------------------------------- */

/* Expects INVALID_ARG, *out untouched, and a message holding each needle. */
static void expect_invalid(const int64_t *numel, const int *layer, int n, int world,
                           int alignment, const char *needle1, const char *needle2)
{
    zrt__errbuf err = {.rank = -1};
    zrt__plan p, before;
    memset(&p, 0xA5, sizeof p);
    memcpy(&before, &p, sizeof p);
    zrt_status st = zrt__plan_build(numel, layer, n, world, alignment, &err, &p);
    ck_assert_int_eq(st, ZRT_ERR_INVALID_ARG);
    ck_assert_msg(memcmp(&p, &before, sizeof p) == 0, "plan_build wrote *out on failure");
    ck_assert_msg(strstr(err.text, needle1) != NULL, "error '%s' does not mention '%s'",
                  err.text, needle1);
    if (needle2)
        ck_assert_msg(strstr(err.text, needle2) != NULL,
                      "error '%s' does not mention '%s'", err.text, needle2);
    ck_assert_msg(strncmp(err.text, "rank", 4) != 0,
                  "rank -1 yet the error names a rank: '%s'", err.text);
    /* No errbuf: same status, no crash. */
    ck_assert_int_eq(zrt__plan_build(numel, layer, n, world, alignment, NULL, &p),
                     ZRT_ERR_INVALID_ARG);
}

START_TEST(test_bad_inputs)
{
    const int64_t numel_zero[] = {4, 8, 0};
    const int layer_ok[] = {0, 0, 1};
    expect_invalid(numel_zero, layer_ok, 3, 2, 16, "tensor 2", "0 elements");

    const int64_t numel_neg[] = {4, -5};
    expect_invalid(numel_neg, layer_ok, 2, 2, 16, "tensor 1", "-5");

    const int64_t numel_ok[] = {4, 8, 16};
    const int layer_neg[] = {0, -3, 1};
    expect_invalid(numel_ok, layer_neg, 3, 2, 16, "tensor 1", "-3");

    expect_invalid(numel_ok, layer_ok, 3, 0, 16, "world 0", NULL);
    expect_invalid(numel_ok, layer_ok, 3, -2, 16, "world -2", NULL);
    expect_invalid(numel_ok, layer_ok, 3, 2, 0, "alignment 0", NULL);
    expect_invalid(numel_ok, layer_ok, -1, 2, 16, "n -1", NULL);
    expect_invalid(NULL, layer_ok, 3, 2, 16, "partition plan", NULL);
    expect_invalid(numel_ok, NULL, 3, 2, 16, "partition plan", NULL);
}
END_TEST

START_TEST(test_empty_plan_and_free)
{
    zrt__plan p;
    memset(&p, 0, sizeof p);
    zrt__plan_free(&p); /* zeroed plan: safe */

    zrt__errbuf err = {.rank = -1};
    ck_assert_int_eq(zrt__plan_build(NULL, NULL, 0, 3, 16, &err, &p), ZRT_OK);
    ck_assert_int_eq(p.ntensors, 0);
    ck_assert_int_eq(p.nlayers, 0);
    ck_assert_int_eq(p.world, 3);
    ck_assert_int_eq(p.total_numel, 0);
    ck_assert_int_eq(p.total_flat_numel, 0);
    ck_assert_int_eq(p.max_flat_numel, 0);
    zrt__plan_free(&p);

    /* Freed plans are zeroed, so freeing twice is safe too. */
    const int64_t numel[] = {5};
    const int layer[] = {2};
    build_ok(numel, layer, 1, 2, 16, &p);
    zrt__plan_free(&p);
    ck_assert_ptr_null(p.layers);
    ck_assert_ptr_null(p.tensors);
    ck_assert_ptr_null(p.tensor_order);
    ck_assert_int_eq(p.ntensors, 0);
    zrt__plan_free(&p);
}
END_TEST

int main(void)
{
    return zrt_check_main(ZRT_CHECK_SUITE(
        "plan", 60, test_world3_odd_sizes, test_tensor_smaller_than_world,
        test_tensor_across_shards, test_interleaved_registration, test_empty_layers,
        test_large_tensors, test_random_plans, test_padding_bound_worst_case,
        test_bad_inputs, test_empty_plan_and_free));
}
