/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/mpi/test_hybrid.c — hybrid sharding (hybrid_shard_size) across ranks
 * (run under mpirun with 4 and 6 ranks).
 *
 * The synthetic model of tests/common/test_model.h is trained with every
 * shard group size S that divides the world (1 .. N). What users rely on:
 *   - the communicators: shard group g = r / S of S ranks, ranked r % S;
 *     replica set r % S of N / S ranks, ranked r / S; the partition plan
 *     spreads each layer over S ranks, so a rank holds 1/S of the states;
 *   - stages 0-3 end bit-identical at a given S, and runs repeat;
 *   - S = N is plain ZeRO, bit for bit; other S agree with it to rounding;
 *   - the gradient norm is the whole gradient's, counted once (not G times);
 *   - the memory plan (the replicas' all-reduce scratch and padding
 *     included) equals the measured peaks;
 *   - the memory report's comm.theory equals the layer bytes each step
 *     sent, on this host and to others (the group's collectives and the
 *     replicas' all-reduce of each padded range), at stages 0-3;
 *   - zrt_estimate_memory shards by S;
 *   - a size that does not divide the world, or a negative one, is refused
 *     with a sentence naming the numbers.
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/test_check.h"
#define ZRT_TEST_MODEL_NEVER_OVERFLOWS
#include "../common/test_model.h"
#include "zero/ctx.h"
#include "zrt/zrt.h"

static void hybrid_config(zrt_config *cfg, int stage, int shard_size)
{
    zrt_config_init(cfg);
    cfg->stage = stage;
    cfg->stage3_param_persistence_threshold = 0;
    cfg->hybrid_shard_size = shard_size;
    cfg->log_level = 0;
}

static zrt_status train_step(model *m)
{
    return zero_forward_backward_step(m);
}

static float *train_and_read(const zrt_config *cfg, int steps)
{
    return train_and_read_with(cfg, steps, train_step);
}

static float *train_at(int stage, int shard_size, int steps)
{
    zrt_config cfg;
    hybrid_config(&cfg, stage, shard_size);
    return train_and_read(&cfg, steps);
}

static double relative_difference(const float *a, const float *b)
{
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < model_numel; i++) {
        diff += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        norm += (double)b[i] * b[i];
    }
    return sqrt(diff / norm);
}

START_TEST(shard_groups_and_replica_sets_are_split_by_rank)
{
    for (int S = 1; S <= world_size; S++) {
        if (world_size % S)
            continue;
        zrt_config cfg;
        hybrid_config(&cfg, 3, S);
        model m = built(&cfg);
        zrt_ctx *ctx = m.ctx;
        int G = world_size / S;
        ck_assert_int_eq(ctx->shard_comm->size, S);
        ck_assert_int_eq(ctx->shard_comm->rank, world_rank % S);
        ck_assert_int_eq(ctx->plan.world, S);
        ck_assert_int_eq(ctx->plan.replicas, G);
        if (G == 1) {
            ck_assert_ptr_eq(ctx->shard_comm, ctx->comm);
            ck_assert_ptr_null(ctx->replica_comm);
        } else {
            ck_assert_int_eq(ctx->replica_comm->size, G);
            ck_assert_int_eq(ctx->replica_comm->rank, world_rank / S);
        }
        /* 1/S of each layer: the shard of a plan over S ranks */
        for (int l = 0; l < NLAYERS; l++)
            ck_assert_int_eq(ctx->plan.layers[l].flat_numel,
                             (int64_t)S * ctx->plan.layers[l].shard_numel);
        ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
    }
}
END_TEST

START_TEST(stages_agree_bit_for_bit_at_each_shard_size)
{
    float *plain = train_at(0, 0, 5);
    for (int S = 1; S <= world_size; S++) {
        if (world_size % S)
            continue;
        float *reference = train_at(0, S, 5);
        for (int stage = 1; stage <= 3; stage++) {
            float *got = train_at(stage, S, 5);
            char what[64];
            snprintf(what, sizeof what, "shard size %d, stage %d vs 0", S, stage);
            assert_same_bits(got, reference, what);
            free(got);
        }
        float *again = train_at(3, S, 5);
        assert_same_bits(again, reference, "a repeated run");
        free(again);
        if (S == world_size)
            assert_same_bits(reference, plain, "one shard group vs plain ZeRO");
        double rel = relative_difference(reference, plain);
        ck_assert_msg(rel < 1e-5, "shard size %d: %.3g relative from plain ZeRO", S, rel);
        free(reference);
    }
    free(plain);
}
END_TEST

START_TEST(bf16_stages_agree_at_each_shard_size)
{
    for (int S = 1; S < world_size; S++) {
        if (world_size % S)
            continue;
        float *first = NULL;
        for (int stage = 0; stage <= 3; stage += 3) {
            zrt_config cfg;
            hybrid_config(&cfg, stage, S);
            cfg.bf16.enabled = 1;
            float *got = train_and_read(&cfg, 5);
            if (first) {
                assert_same_bits(got, first, "bf16 stage 3 vs 0");
                free(got);
            } else {
                first = got;
            }
        }
        free(first);
    }
}
END_TEST

/* The norm zrt_step clips with is the whole averaged gradient's: the sum of
 * the squares read back through zrt_grad_read, which equals plain ZeRO's. */
START_TEST(grad_norm_counts_each_shard_once)
{
    for (int stage = 0; stage <= 3; stage++) {
        for (int S = 1; S <= world_size; S++) {
            if (world_size % S)
                continue;
            zrt_config cfg;
            hybrid_config(&cfg, stage, S);
            model m = built(&cfg);
            ck_assert_int_eq(zrt_zero_grad(m.ctx), ZRT_OK);
            ck_assert_int_eq(model_forward_backward(&m), ZRT_OK);
            char what[48];
            snprintf(what, sizeof what, "stage %d, shard size %d", stage, S);
            expect_step_norm_is_the_gradients(&m, what);
            ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
        }
    }
}
END_TEST

static void expect_plan_equals_measured(const zrt_config *cfg, const char *what)
{
    model m = built(cfg);
    zrt_mem_plan plan;
    ck_assert_int_eq(zrt_plan_memory(m.ctx, &plan), ZRT_OK);
    for (int s = 0; s < 4; s++)
        ck_assert_msg(train_step(&m) == ZRT_OK, "%s: %s", what, zrt_last_error(m.ctx));
    zrt_mem_stats ms;
    ck_assert_int_eq(zrt_get_mem_stats(m.ctx, &ms), ZRT_OK);
    expect_peaks_as_planned(&ms, &plan, what);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
}

START_TEST(plan_equals_measured_peaks)
{
    for (int stage = 0; stage <= 3; stage++) {
        for (int S = 1; S < world_size; S++) {
            if (world_size % S)
                continue;
            for (int variant = 0; variant < 3; variant++) {
                zrt_config cfg;
                hybrid_config(&cfg, stage, S);
                cfg.overlap_comm = variant != 1;
                cfg.bf16.enabled = variant == 2;
                char what[96];
                snprintf(what, sizeof what, "stage %d, shard size %d, variant %d", stage,
                         S, variant);
                expect_plan_equals_measured(&cfg, what);
            }
        }
    }
}
END_TEST

/* The "layers" bytes of the report's "theory", written to a file of this
 * rank's and read back. */
static zrt__comm_bytes theory_of(zrt_ctx *ctx)
{
    char path[256];
    snprintf(path, sizeof path, "%s/zrt-test-hybrid-%ld.json",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
    ck_assert_int_eq(zrt_write_mem_report(ctx, path), ZRT_OK);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *text = calloc(1, (size_t)size + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(fread(text, 1, (size_t)size, f), size);
    fclose(f);
    unlink(path);
    const char *t = strstr(text, "\"theory\"");
    const char *layers = t ? strstr(t, "\"layers\"") : NULL;
    unsigned long long same = 0, other = 0;
    int read = layers ? sscanf(layers,
                               "\"layers\": {\"same_host\": %llu, "
                               "\"other_host\": %llu}",
                               &same, &other)
                      : 0;
    free(text);
    ck_assert_msg(read == 2, "no comm.theory.layers in %s", path);
    return (zrt__comm_bytes){same, other};
}

START_TEST(theory_equals_the_bytes_sent)
{
    for (int stage = 0; stage <= 3; stage++) {
        for (int S = 1; S < world_size; S++) {
            if (world_size % S)
                continue;
            zrt_config cfg;
            hybrid_config(&cfg, stage, S);
            cfg.stage3_prefetch_bucket_size = 0; /* each layer gathered twice */
            model m = built(&cfg);
            for (int s = 0; s < 2; s++)
                ck_assert_int_eq(train_step(&m), ZRT_OK);
            zrt__comm_bytes want = theory_of(m.ctx);
            ck_assert_int_eq(m.ctx->traffic_nsteps, 2);
            for (int s = 0; s < m.ctx->traffic_nsteps; s++) {
                zrt__comm_bytes got = m.ctx->traffic_steps[s].layers;
                ck_assert_msg(got.same_host == want.same_host &&
                                  got.other_host == want.other_host,
                              "stage %d, S %d, step %d: sent %llu + %llu, theory %llu + "
                              "%llu (same host + other)",
                              stage, S, s + 1, (unsigned long long)got.same_host,
                              (unsigned long long)got.other_host,
                              (unsigned long long)want.same_host,
                              (unsigned long long)want.other_host);
            }
            ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
        }
    }
}
END_TEST

START_TEST(estimate_shards_by_the_group)
{
    zrt_mem_model mm = estimate_model();
    for (int stage = 0; stage <= 3; stage++) {
        zrt_config hybrid, plain;
        hybrid_config(&hybrid, stage, 2);
        hybrid_config(&plain, stage, 0);
        zrt_mem_estimate h, p;
        char why[256];
        ck_assert_int_eq(zrt_estimate_memory(&hybrid, &mm, 8, &h, why, sizeof why),
                         ZRT_OK);
        ck_assert_int_eq(zrt_estimate_memory(&plain, &mm, 2, &p, why, sizeof why),
                         ZRT_OK);
        for (int t = 0; t < ZRT_TIER_COUNT; t++)
            ck_assert_int_eq(h.model_states[t], p.model_states[t]);
        hybrid.hybrid_shard_size = 3;
        expect_estimate_refused(&hybrid, &mm, 8,
                                "'hybrid_shard_size' is 3 but the job has 8 ranks");
    }
}
END_TEST

START_TEST(bad_shard_sizes_are_refused)
{
    zrt_config cfg;
    hybrid_config(&cfg, 2, world_size + 1);
    zrt_ctx *ctx = NULL;
    ck_assert_int_eq(zrt_ctx_create(&cfg, &ctx), ZRT_ERR_CONFIG);
    ck_assert_ptr_null(ctx);
    hybrid_config(&cfg, 2, -1);
    char why[256];
    ck_assert_int_eq(zrt_config_validate(&cfg, why, sizeof why), ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(why, "'hybrid_shard_size' is -1"), "%s", why);
    zrt_config_init(&cfg);
    ck_assert_int_eq(cfg.hybrid_shard_size, 0);
    ck_assert_int_eq(
        zrt_config_load_string(&cfg, "{\"hybrid_shard_size\": 2}", why, sizeof why),
        ZRT_OK);
    ck_assert_int_eq(cfg.hybrid_shard_size, 2);
    ck_assert_int_eq(
        zrt_config_load_string(&cfg, "{\"hybrid_shard_size\": -3}", why, sizeof why),
        ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(why, "hybrid_shard_size") && strstr(why, "divides the world"),
                  "%s", why);
}
END_TEST

int main(int argc, char **argv)
{
    /* The program owns MPI here so every context shares one MPI lifetime. */
    zrt_check_mpi_init(&argc, &argv, &world_rank, &world_size);
    Suite *s = ZRT_CHECK_SUITE(
        "hybrid", 240, shard_groups_and_replica_sets_are_split_by_rank,
        stages_agree_bit_for_bit_at_each_shard_size, bf16_stages_agree_at_each_shard_size,
        grad_norm_counts_each_shard_once, plan_equals_measured_peaks,
        theory_equals_the_bytes_sent, estimate_shards_by_the_group,
        bad_shard_sizes_are_refused);
    int rc = zrt_check_main_mpi(s, "hybrid");
    MPI_Finalize();
    return rc;
}
