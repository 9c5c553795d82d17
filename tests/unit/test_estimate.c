/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/test_estimate.c — Check suite "estimate": zrt_estimate_memory.
 * The ZeRO paper's model-state column (7.5B parameters, 64 ranks, mixed
 * precision: 120 / 31.4 / 16.6 / 1.9 GB), the f32 table of docs/memory.md,
 * offload moving bytes between tiers without changing the total (except the
 * nvme tier's two slots), the buffer bounds, and bad input refused with a
 * sentence naming the field. main() returns 0 only if all pass.
 */
#include "zrt/zrt.h"

#include "../common/test_check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRBUF    512
#define PAPER_PSI 7500000000LL
#define PAPER_N   64

/* ---- helpers ------------------------------------------------------------- */

static zrt_config config_at(int stage)
{
    zrt_config cfg;
    ck_assert_int_eq(zrt_config_init(&cfg), ZRT_OK);
    cfg.stage = stage;
    return cfg;
}

static zrt_mem_model model_of(int64_t params, int64_t largest, int param_bytes)
{
    zrt_mem_model m;
    ck_assert_int_eq(zrt_mem_model_init(&m), ZRT_OK);
    m.param_count = params;
    m.largest_layer_numel = largest;
    m.param_bytes = param_bytes;
    return m;
}

static zrt_mem_estimate estimate(const zrt_config *cfg, const zrt_mem_model *m, int n)
{
    zrt_mem_estimate e;
    char why[ERRBUF] = "";
    zrt_status st = zrt_estimate_memory(cfg, m, n, &e, why, sizeof why);
    ck_assert_msg(st == ZRT_OK, "estimate failed: %s", why);
    return e;
}

static int64_t sum_tiers(const int64_t *per_tier)
{
    int64_t s = 0;
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        s += per_tier[t];
    return s;
}

/* bytes in tenths of a GB, rounded half up as the paper (and zero-report)
 * round: 1.875 GB is 1.9. */
static int64_t tenths_of_gb(int64_t bytes)
{
    return (bytes + 50000000) / 100000000;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* ---- the ZeRO paper's column --------------------------------------------- */

START_TEST(paper_model_states)
{
    /* Ψ = 7.5e9 divides by 64, so every formula is exact. */
    const int64_t psi = PAPER_PSI, n = PAPER_N;
    const int64_t exact[4] = {16 * psi, 4 * psi + 12 * psi / n, 2 * psi + 14 * psi / n,
                              16 * psi / n};
    const int64_t expect_bytes[4] = {120000000000LL, 31406250000LL, 16640625000LL,
                                     1875000000LL};
    const int64_t paper_tenths[4] = {1200, 314, 166, 19}; /* 120, 31.4, 16.6, 1.9 */
    zrt_mem_model m = model_of(psi, 12LL * 4096 * 4096, 2);
    for (int stage = 0; stage < 4; stage++) {
        zrt_config cfg = config_at(stage);
        zrt_mem_estimate e = estimate(&cfg, &m, (int)n);
        ck_assert_int_eq(exact[stage], expect_bytes[stage]);
        ck_assert_int_eq(e.model_states[ZRT_TIER_DEVICE], expect_bytes[stage]);
        ck_assert_int_eq(e.model_states[ZRT_TIER_HOST], 0);
        ck_assert_int_eq(e.model_states[ZRT_TIER_NVME], 0);
        ck_assert_int_eq(tenths_of_gb(e.model_states[ZRT_TIER_DEVICE]),
                         paper_tenths[stage]);
        /* buffers come on top */
        ck_assert_int_gt(e.buffers[ZRT_TIER_DEVICE], 0);
        ck_assert_int_eq(e.total[ZRT_TIER_DEVICE],
                         e.model_states[ZRT_TIER_DEVICE] + e.buffers[ZRT_TIER_DEVICE]);
    }
}
END_TEST

START_TEST(mixed_precision_categories)
{
    /* stage 2: 2Ψ params, 2Ψ/N grads, 4Ψ/N master, 8Ψ/N moments */
    const int64_t psi = PAPER_PSI, s = psi / PAPER_N;
    zrt_config cfg = config_at(2);
    zrt_mem_model m = model_of(psi, 12LL * 4096 * 4096, 2);
    zrt_mem_estimate e = estimate(&cfg, &m, PAPER_N);
    const int64_t *dev = e.bytes[ZRT_TIER_DEVICE];
    ck_assert_int_eq(dev[ZRT_CAT_PARAM], 2 * psi);
    ck_assert_int_eq(dev[ZRT_CAT_GRAD], 2 * s);
    ck_assert_int_eq(dev[ZRT_CAT_MASTER], 4 * s);
    ck_assert_int_eq(dev[ZRT_CAT_OPTIM], 8 * s);
    ck_assert_int_eq(dev[ZRT_CAT_ACTIVATION], 0);
}
END_TEST

/* docs/memory.md's f32 table: 16Ψ, 8Ψ + 8Ψ/N, 4Ψ + 12Ψ/N, 16Ψ/N, with
 * shards of ceil(Ψ/N) (Ψ = 1000003 does not divide by 3). */
START_TEST(f32_table_with_ceil_shards)
{
    const int64_t psi = 1000003, n = 3, s = ceil_div(psi, n);
    const int64_t expect[4] = {16 * psi, 8 * psi + 8 * s, 4 * psi + 12 * s, 16 * s};
    zrt_mem_model m = model_of(psi, 400000, 4);
    for (int stage = 0; stage < 4; stage++) {
        zrt_config cfg = config_at(stage);
        zrt_mem_estimate e = estimate(&cfg, &m, (int)n);
        ck_assert_int_eq(e.model_states[ZRT_TIER_DEVICE], expect[stage]);
        ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_MASTER], 0);
    }
}
END_TEST

/* ---- offload: placement -------------------------------------------------- */

START_TEST(optimizer_cpu_moves_between_tiers)
{
    zrt_mem_model m = model_of(PAPER_PSI, 12LL * 4096 * 4096, 2);
    for (int stage = 1; stage < 4; stage++) {
        zrt_config cfg = config_at(stage), off = cfg;
        off.offload_optimizer.device = ZRT_OFFLOAD_CPU;
        zrt_mem_estimate a = estimate(&cfg, &m, PAPER_N), b = estimate(&off, &m, PAPER_N);
        ck_assert_int_eq(sum_tiers(b.model_states), sum_tiers(a.model_states));
        ck_assert_int_eq(b.bytes[ZRT_TIER_HOST][ZRT_CAT_OPTIM],
                         a.bytes[ZRT_TIER_DEVICE][ZRT_CAT_OPTIM]);
        ck_assert_int_eq(b.bytes[ZRT_TIER_HOST][ZRT_CAT_MASTER],
                         a.bytes[ZRT_TIER_DEVICE][ZRT_CAT_MASTER]);
        /* the gradient shard follows the optimizer at stages 2-3 only */
        ck_assert_int_eq(b.bytes[ZRT_TIER_HOST][ZRT_CAT_GRAD],
                         stage >= 2 ? a.bytes[ZRT_TIER_DEVICE][ZRT_CAT_GRAD] : 0);
        ck_assert_int_eq(b.bytes[ZRT_TIER_DEVICE][ZRT_CAT_OPTIM], 0);
        ck_assert_int_eq(b.bytes[ZRT_TIER_DEVICE][ZRT_CAT_PARAM],
                         a.bytes[ZRT_TIER_DEVICE][ZRT_CAT_PARAM]);
        ck_assert_int_eq(b.bytes[ZRT_TIER_HOST][ZRT_CAT_STAGING], 0);
    }
}
END_TEST

START_TEST(param_cpu_moves_the_shard)
{
    zrt_mem_model m = model_of(PAPER_PSI, 12LL * 4096 * 4096, 2);
    zrt_config cfg = config_at(3), off = cfg;
    off.offload_param.device = ZRT_OFFLOAD_CPU;
    off.offload_optimizer.device = ZRT_OFFLOAD_CPU;
    zrt_mem_estimate a = estimate(&cfg, &m, PAPER_N), b = estimate(&off, &m, PAPER_N);
    ck_assert_int_eq(sum_tiers(b.model_states), sum_tiers(a.model_states));
    ck_assert_int_eq(b.model_states[ZRT_TIER_DEVICE], 0);
    ck_assert_int_eq(b.model_states[ZRT_TIER_HOST], a.model_states[ZRT_TIER_DEVICE]);
    /* the bounded buffers stay on the device */
    ck_assert_int_eq(b.buffers[ZRT_TIER_DEVICE], a.buffers[ZRT_TIER_DEVICE]);
}
END_TEST

START_TEST(nvme_holds_two_slots)
{
    const int64_t largest = 12LL * 4096 * 4096, sl = ceil_div(largest, PAPER_N);
    zrt_mem_model m = model_of(PAPER_PSI, largest, 2);
    for (int stage = 1; stage < 4; stage++) {
        zrt_config cfg = config_at(stage), off = cfg;
        off.offload_optimizer.device = ZRT_OFFLOAD_NVME; /* no nvme_path needed */
        zrt_mem_estimate a = estimate(&cfg, &m, PAPER_N), b = estimate(&off, &m, PAPER_N);
        int64_t moments = a.bytes[ZRT_TIER_DEVICE][ZRT_CAT_OPTIM];
        int64_t master = a.bytes[ZRT_TIER_DEVICE][ZRT_CAT_MASTER];
        int64_t optimizer = moments + master;
        /* the moments go to disk, the master copy stays in host memory; a
         * failed step applies nothing, so both are held twice */
        ck_assert_int_eq(b.model_states[ZRT_TIER_NVME], 2 * moments);
        ck_assert_int_eq(b.bytes[ZRT_TIER_HOST][ZRT_CAT_MASTER], 2 * master);
        ck_assert_int_eq(sum_tiers(b.model_states),
                         sum_tiers(a.model_states) + optimizer);
        ck_assert_int_eq(b.bytes[ZRT_TIER_HOST][ZRT_CAT_GRAD],
                         stage >= 2 ? a.bytes[ZRT_TIER_DEVICE][ZRT_CAT_GRAD] : 0);
        ck_assert_int_eq(b.bytes[ZRT_TIER_HOST][ZRT_CAT_STAGING], 6 * sl * 4);
    }
    /* stage 3, parameters on nvme too: their two slots, and fetched shards */
    zrt_config cfg = config_at(3), off = cfg;
    off.offload_optimizer.device = ZRT_OFFLOAD_NVME;
    off.offload_param.device = ZRT_OFFLOAD_NVME;
    zrt_mem_estimate a = estimate(&cfg, &m, PAPER_N), b = estimate(&off, &m, PAPER_N);
    ck_assert_int_eq(b.model_states[ZRT_TIER_DEVICE], 0);
    ck_assert_int_eq(sum_tiers(b.model_states),
                     2 * sum_tiers(a.model_states) -
                         a.bytes[ZRT_TIER_DEVICE][ZRT_CAT_GRAD]);
    ck_assert_int_eq(b.bytes[ZRT_TIER_NVME][ZRT_CAT_PARAM],
                     2 * a.bytes[ZRT_TIER_DEVICE][ZRT_CAT_PARAM]);
    int64_t fetched = off.offload_param.buffer_count * sl +
                      ceil_div(off.stage3_prefetch_bucket_size, PAPER_N) + sl;
    /* two (p, m, v) f32 sets, two 16-bit arrays for the new shards, and the
     * shards read ahead of their gathers */
    ck_assert_int_eq(b.bytes[ZRT_TIER_HOST][ZRT_CAT_STAGING],
                     6 * sl * 4 + 2 * sl * 2 + fetched * 2);
}
END_TEST

/* ---- buffers ------------------------------------------------------------- */

START_TEST(buffer_bounds)
{
    const int64_t psi = 1000000, largest = 100000;
    zrt_mem_model m = model_of(psi, largest, 4);
    zrt_config cfg = config_at(3);
    cfg.reduce_bucket_size = 250000;
    cfg.stage3_prefetch_bucket_size = 300000;
    cfg.stage3_param_persistence_threshold = 0;
    zrt_mem_estimate e = estimate(&cfg, &m, 4);
    const int64_t *dev = e.bytes[ZRT_TIER_DEVICE];
    ck_assert_int_eq(dev[ZRT_CAT_PARAM_GATHER], 4 * (largest + 300000));
    ck_assert_int_eq(dev[ZRT_CAT_GRAD_BUCKET], 4 * (250000 + largest));
    ck_assert_int_eq(dev[ZRT_CAT_COMM], 4 * 250000);
    ck_assert_int_eq(dev[ZRT_CAT_PARAM_PERSIST], 0);
    /* a bucket smaller than a layer: one layer in flight plus one in backward */
    cfg.reduce_bucket_size = 10;
    e = estimate(&cfg, &m, 4);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_GRAD_BUCKET], 4 * 2 * largest);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_COMM], 4 * largest);
    /* no overlap: every collective waited at once, no prefetch */
    cfg.overlap_comm = 0;
    e = estimate(&cfg, &m, 4);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_GATHER], 4 * largest);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_GRAD_BUCKET], 4 * largest);
    /* one rank: nothing to exchange, no scratch */
    e = estimate(&cfg, &m, 1);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_COMM], 0);
    /* buckets larger than the model: capped by it */
    cfg = config_at(2);
    e = estimate(&cfg, &m, 4);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_GRAD_BUCKET], 4 * psi);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_GATHER], 0);
    /* stages 0-1: no bucket, the reductions' scratch only */
    cfg = config_at(1);
    e = estimate(&cfg, &m, 4);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_GRAD_BUCKET], 0);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_COMM], 4 * psi);
}
END_TEST

/* qwZ: the gathers in flight held quantized, received and sent: about
 * (1 + 1/N)(1 + 4/B) bytes an element gathered, nothing without the key. */
START_TEST(qwz_buffers)
{
    const int64_t largest = 100000;
    zrt_mem_model m = model_of(1000000, largest, 4);
    zrt_config cfg = config_at(3);
    cfg.stage3_param_persistence_threshold = 0;
    cfg.stage3_prefetch_bucket_size = 0;
    zrt_mem_estimate e = estimate(&cfg, &m, 4);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_QWZ], 0);
    cfg.zero_quantized_weights = 1;
    cfg.zero_quantized_block_size = 100;
    e = estimate(&cfg, &m, 4);
    int64_t send = largest / 4;
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_QWZ],
                     largest + 4 * (largest / 100) + 8 * 4 + send + 4 * (send / 100) + 8);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_GATHER], 4 * largest);
}
END_TEST

/* Top-k (stages 0-1): the residual, 4 bytes an element of the model, and
 * the (index, value) lists of the reductions in flight in place of their
 * scratch, sent (2k f32) and received (N times that); nothing without the
 * key, nothing at stage 2. */
START_TEST(topk_buffers)
{
    const int64_t psi = 1000000;
    zrt_mem_model m = model_of(psi, 100000, 4);
    for (int stage = 0; stage < 2; stage++) {
        zrt_config cfg = config_at(stage);
        zrt_mem_estimate e = estimate(&cfg, &m, 4);
        ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_TOPK_RESIDUAL], 0);
        ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_COMM], 4 * psi);
        cfg.gradient_topk_ratio = 0.01f; /* the whole model in flight: k = 10,000 */
        e = estimate(&cfg, &m, 4);
        ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_TOPK_RESIDUAL], 4 * psi);
        ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_COMM], 8 * 10000 * (4 + 1));
    }
    zrt_config cfg = config_at(2);
    cfg.gradient_topk_ratio = 0.01f;
    zrt_mem_estimate e = estimate(&cfg, &m, 4);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_TOPK_RESIDUAL], 0);
}
END_TEST

/* Asynchronous saves: the host buffer holds the rank's shard in the
 * parameters' type plus the f32 moments (12 bytes an element), 14 with
 * bf16 (2 + the f32 master and moments), capped by async_buffer_size;
 * nothing without the key. */
START_TEST(checkpoint_buffer)
{
    const int64_t psi = 1000000;
    zrt_mem_model m = model_of(psi, 100000, 4);
    zrt_config cfg = config_at(3);
    zrt_mem_estimate e = estimate(&cfg, &m, 4);
    ck_assert_int_eq(e.bytes[ZRT_TIER_HOST][ZRT_CAT_CKPT_BUFFER], 0);
    cfg.checkpoint_async = 1;
    e = estimate(&cfg, &m, 4);
    ck_assert_int_eq(e.bytes[ZRT_TIER_HOST][ZRT_CAT_CKPT_BUFFER], 12 * psi / 4);
    cfg.checkpoint_async_buffer_size = 1 << 20;
    e = estimate(&cfg, &m, 4);
    ck_assert_int_eq(e.bytes[ZRT_TIER_HOST][ZRT_CAT_CKPT_BUFFER], 1 << 20);
    zrt_mem_model half = model_of(psi, 100000, 2);
    cfg.checkpoint_async_buffer_size = 0;
    cfg.bf16.enabled = 1;
    e = estimate(&cfg, &half, 4);
    ck_assert_int_eq(e.bytes[ZRT_TIER_HOST][ZRT_CAT_CKPT_BUFFER], 14 * psi / 4);
}
END_TEST

START_TEST(persistent_layers)
{
    zrt_mem_model m = model_of(1000000, 100000, 4);
    zrt_config cfg = config_at(3); /* threshold 1e5: the largest layer persists */
    zrt_mem_estimate e = estimate(&cfg, &m, 4);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_PERSIST], 4 * 1000000);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_GATHER], 0);
    cfg.stage3_param_persistence_threshold = 1000;
    m.persistent_numel = 2000; /* two small layers */
    e = estimate(&cfg, &m, 4);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_PERSIST], 4 * 2000);
    ck_assert_int_gt(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_GATHER], 0);
}
END_TEST

START_TEST(largest_from_layer_count)
{
    zrt_mem_model m = model_of(1000000, 0, 4);
    m.nlayers = 8; /* 125000 each */
    zrt_config cfg = config_at(3);
    cfg.stage3_prefetch_bucket_size = 0;
    cfg.stage3_param_persistence_threshold = 0;
    zrt_mem_estimate e = estimate(&cfg, &m, 2);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_GATHER], 4 * 125000);
}
END_TEST

/* ---- bad input ----------------------------------------------------------- */

/* Expects the call to fail with `status`, leave *out as it was, and write a
 * sentence containing `needle`. */
static void expect_refused(const zrt_config *cfg, const zrt_mem_model *m, int n,
                           zrt_status status, const char *needle)
{
    zrt_mem_estimate e, before;
    memset(&e, 0x5a, sizeof e);
    before = e;
    char why[ERRBUF] = "";
    ck_assert_int_eq(zrt_estimate_memory(cfg, m, n, &e, why, sizeof why), status);
    ck_assert_int_eq(memcmp(&e, &before, sizeof e), 0);
    ck_assert_msg(strncmp(why, "zrt_estimate_memory: ", 21) == 0, "got: %s", why);
    ck_assert_msg(strstr(why, needle) != NULL, "'%s' not in: %s", needle, why);
}

/* good with model field `field` set to `value`: refused as invalid, with a
 * sentence naming "model.<field> is <value>". */
#define expect_bad_model(cfg, good, field, value)                                        \
    do {                                                                                 \
        zrt_mem_model bad_ = *(good);                                                    \
        bad_.field = value;                                                              \
        expect_refused((cfg), &bad_, 2, ZRT_ERR_INVALID_ARG,                             \
                       "model." #field " is " #value);                                   \
    } while (0)

START_TEST(bad_input_refused)
{
    zrt_config cfg = config_at(2);
    zrt_mem_model good = model_of(1000, 100, 4), m;
    expect_refused(&cfg, &good, 0, ZRT_ERR_INVALID_ARG, "world_size is 0");
    expect_bad_model(&cfg, &good, param_count, -1);
    expect_bad_model(&cfg, &good, param_bytes, 3);
    expect_bad_model(&cfg, &good, largest_layer_numel, 2000);
    m = good, m.largest_layer_numel = 0; /* and nlayers left 0 */
    expect_refused(&cfg, &m, 2, ZRT_ERR_INVALID_ARG, "model.nlayers are both 0");
    expect_bad_model(&cfg, &good, nlayers, -2);
    expect_bad_model(&cfg, &good, persistent_numel, 5000);
    expect_bad_model(&cfg, &good, struct_size, 8);
    zrt_config bad = cfg;
    bad.stage = 5;
    expect_refused(&bad, &good, 2, ZRT_ERR_CONFIG, "'zero_optimization.stage' is 5");
    bad = config_at(0);
    bad.offload_optimizer.device = ZRT_OFFLOAD_CPU;
    expect_refused(&bad, &good, 2, ZRT_ERR_CONFIG, "offload_optimizer.device");
    bad = config_at(2);
    bad.offload_param.device = ZRT_OFFLOAD_NVME;
    expect_refused(&bad, &good, 2, ZRT_ERR_CONFIG, "needs stage 3");
    bad = cfg;
    bad.reduce_bucket_size = -1;
    expect_refused(&bad, &good, 2, ZRT_ERR_CONFIG, "reduce_bucket_size");
    bad = cfg;
    bad.struct_size = 4;
    expect_refused(&bad, &good, 2, ZRT_ERR_CONFIG, "struct_size is 4");
    expect_refused(NULL, &good, 2, ZRT_ERR_INVALID_ARG, "cfg is NULL");
    expect_refused(&cfg, NULL, 2, ZRT_ERR_INVALID_ARG, "model is NULL");
    char why[ERRBUF];
    ck_assert_int_eq(zrt_estimate_memory(&cfg, &good, 2, NULL, why, sizeof why),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(why, "out is NULL"));
    /* errbuf may be NULL */
    ck_assert_int_eq(zrt_estimate_memory(&cfg, &good, 0, NULL, NULL, 0),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_mem_model_init(NULL), ZRT_ERR_INVALID_ARG);
}
END_TEST

START_TEST(empty_model)
{
    zrt_mem_model m = model_of(0, 0, 4);
    zrt_config cfg = config_at(3);
    zrt_mem_estimate e = estimate(&cfg, &m, 4);
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        ck_assert_int_eq(e.total[t], 0);
}
END_TEST

int main(void)
{
    return zrt_check_main(
        ZRT_CHECK_SUITE("estimate", 0, paper_model_states, mixed_precision_categories,
                        f32_table_with_ceil_shards, optimizer_cpu_moves_between_tiers,
                        param_cpu_moves_the_shard, nvme_holds_two_slots, buffer_bounds,
                        qwz_buffers, topk_buffers, checkpoint_buffer, persistent_layers,
                        largest_from_layer_count, bad_input_refused, empty_model));
}
