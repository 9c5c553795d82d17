/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/mpi/test_hpz.c — hpZ (zero_hpz_partition_size) across ranks (run
 * under mpirun with 4 and 6 ranks).
 *
 * The synthetic model of tests/common/test_model.h is trained at stage 3 with
 * every hpZ group size P that divides the world. What users rely on:
 *   - the hpZ group g = r / P of P ranks, ranked r % P; each layer that is
 *     not persistent holds a secondary shard of flat / P elements;
 *   - the parameters are plain stage 3's bit for bit (f32 and bf16, with and
 *     without overlap, with persistent layers and without);
 *   - the later gathers of a step ran within the group: the hpZ
 *     communicator sent layer bytes;
 *   - the memory plan equals the measured peaks, and the "hpz" category is
 *     the secondary shards' bytes; zrt_estimate_memory counts them;
 *   - a P that does not divide the world, P at stage 2, and P with hybrid
 *     sharding are refused with a sentence.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/test_check.h"
#define ZRT_TEST_MODEL_NEVER_OVERFLOWS
#include "../common/test_model.h"
#include "zero/ctx.h"
#include "zrt/zrt.h"

static void hpz_config(zrt_config *cfg, int P, int variant)
{
    zrt_config_init(cfg);
    cfg->stage = 3;
    cfg->stage3_param_persistence_threshold = variant == 3 ? 150 : 0;
    cfg->stage3_prefetch_bucket_size =
        variant == 0 ? 0 : cfg->stage3_prefetch_bucket_size;
    cfg->overlap_comm = variant != 1;
    cfg->bf16.enabled = variant == 2;
    cfg->zero_hpz_partition_size = P;
    cfg->log_level = 0;
}

static zrt_status train_step(model *m)
{
    return zero_forward_backward_step(m);
}

START_TEST(groups_are_split_by_rank)
{
    for (int P = 2; P <= world_size; P++) {
        if (world_size % P)
            continue;
        zrt_config cfg;
        hpz_config(&cfg, P, 0);
        model m = built(&cfg);
        zrt_ctx *ctx = m.ctx;
        ck_assert_ptr_nonnull(ctx->hpz_comm);
        ck_assert_int_eq(ctx->hpz_comm->size, P);
        ck_assert_int_eq(ctx->hpz_comm->rank, world_rank % P);
        for (int l = 0; l < NLAYERS; l++)
            ck_assert_int_eq(ctx->layers[l].hpz_shard.bytes,
                             (size_t)(ctx->plan.layers[l].flat_numel / P) * ctx->esize);
        ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
    }
}
END_TEST

START_TEST(stage3_bit_for_bit_and_planned)
{
    for (int variant = 0; variant < 4; variant++) {
        zrt_config plain;
        hpz_config(&plain, 0, variant);
        float *reference = train_and_read_with(&plain, 5, train_step);
        for (int P = 2; P <= world_size; P++) {
            if (world_size % P)
                continue;
            zrt_config cfg;
            hpz_config(&cfg, P, variant);
            char what[64];
            snprintf(what, sizeof what, "P %d, variant %d", P, variant);
            model m = built(&cfg);
            zrt_mem_plan plan;
            ck_assert_int_eq(zrt_plan_memory(m.ctx, &plan), ZRT_OK);
            for (int s = 0; s < 5; s++)
                ck_assert_msg(train_step(&m) == ZRT_OK, "%s: %s", what,
                              zrt_last_error(m.ctx));
            zrt_mem_stats ms;
            ck_assert_int_eq(zrt_get_mem_stats(m.ctx, &ms), ZRT_OK);
            expect_peaks_as_planned(&ms, &plan, what);
            int64_t hpz = 0;
            for (int l = 0; l < NLAYERS; l++)
                if (!m.ctx->layers[l].persistent)
                    hpz += m.ctx->plan.layers[l].flat_numel / P * (int64_t)m.ctx->esize;
            ck_assert_int_eq(ms.peak[ZRT_TIER_DEVICE][ZRT_CAT_HPZ], hpz);
            ck_assert_msg(m.ctx->hpz_comm->traffic.layers.same_host +
                                      m.ctx->hpz_comm->traffic.layers.other_host >
                                  0 ||
                              hpz == 0,
                          "%s: no gather ran within the hpZ group", what);
            float *got = read_all(&m);
            assert_same_bits(got, reference, what);
            free(got);
            ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
        }
        free(reference);
    }
}
END_TEST

START_TEST(estimate_counts_the_secondary_shards)
{
    zrt_mem_model mm = estimate_model();
    zrt_config cfg;
    hpz_config(&cfg, 2, 0);
    zrt_mem_estimate e;
    char why[256];
    ck_assert_int_eq(zrt_estimate_memory(&cfg, &mm, 4, &e, why, sizeof why), ZRT_OK);
    ck_assert_int_eq(e.bytes[ZRT_TIER_DEVICE][ZRT_CAT_HPZ], (1 << 20) / 2 * 4);
    cfg.zero_hpz_partition_size = 3;
    expect_estimate_refused(&cfg, &mm, 4,
                            "'zero_hpz_partition_size' is 3 but the job has 4 ranks");
}
END_TEST

static void expect_refused(const zrt_config *cfg, zrt_status want, const char *sentence)
{
    zrt_ctx *ctx = NULL;
    ck_assert_int_eq(zrt_ctx_create(cfg, &ctx), want);
    ck_assert_ptr_null(ctx);
    (void)sentence; /* the sentence goes to stderr; gpt2_hpz_equal greps it */
}

START_TEST(bad_sizes_are_refused)
{
    zrt_config cfg;
    hpz_config(&cfg, world_size + 1, 0);
    expect_refused(&cfg, ZRT_ERR_CONFIG, "divides");
    hpz_config(&cfg, 2, 0);
    cfg.stage = 2;
    expect_refused(&cfg, ZRT_ERR_CONFIG, "the stage is not 3");
    hpz_config(&cfg, 2, 0);
    cfg.hybrid_shard_size = 2;
    expect_refused(&cfg, ZRT_ERR_UNSUPPORTED, "hybrid_shard_size");
    char why[256];
    zrt_config_init(&cfg);
    ck_assert_int_eq(cfg.zero_hpz_partition_size, 0);
    ck_assert_int_eq(zrt_config_load_string(
                         &cfg,
                         "{\"zero_optimization\": {\"zero_hpz_partition_size\": 2}}", why,
                         sizeof why),
                     ZRT_OK);
    ck_assert_int_eq(cfg.zero_hpz_partition_size, 2);
    ck_assert_int_eq(zrt_config_load_string(
                         &cfg,
                         "{\"zero_optimization\": {\"zero_hpz_partition_size\": -1}}",
                         why, sizeof why),
                     ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(why, "zero_hpz_partition_size") &&
                      strstr(why, "divides the world"),
                  "%s", why);
}
END_TEST

int main(int argc, char **argv)
{
    /* The program owns MPI here so every context shares one MPI lifetime. */
    zrt_check_mpi_init(&argc, &argv, &world_rank, &world_size);
    Suite *s = ZRT_CHECK_SUITE(
        "hpz", 240, groups_are_split_by_rank, stage3_bit_for_bit_and_planned,
        estimate_counts_the_secondary_shards, bad_sizes_are_refused);
    int rc = zrt_check_main_mpi(s, "hpz");
    MPI_Finalize();
    return rc;
}
