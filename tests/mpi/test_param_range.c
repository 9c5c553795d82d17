/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/mpi/test_param_range.c — building a model a rank at a time:
 * zrt_param_owned_range and zrt_param_write_range (run under mpirun with
 * 1 to 4 ranks).
 *
 * What users rely on:
 *   - the owned ranges are the whole tensor at stages 0-2 and, at stage 3,
 *     tile each tensor exactly across the ranks;
 *   - a rank writing only its owned range, in pieces of any size, ends with
 *     the same parameters as zrt_param_write of the full values — at every
 *     stage, with the shards in host memory or on NVMe (where a piece
 *     rewrites only the swap blocks it touches), in f32 and bf16 — and a
 *     layer gathered before the writes sees them;
 *   - a range outside the tensor, a NULL source and a live layer are
 *     refused with a sentence.
 * Check runs without fork (forked children cannot use MPI).
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/test_check.h"
#include "zrt/zrt.h"

/* Layers: 0 = {a 1000x7, b 3}, 1 = {c 129}: a tensor over several 4 KiB
 * swap blocks, one smaller than the world, odd sizes. */
enum { NTENSORS = 3, NLAYERS = 2, PIECE = 97 };
static const int64_t numels[NTENSORS] = {7000, 3, 129};
static const int layer_of[NTENSORS] = {0, 0, 1};

static int world_rank, world_size;

typedef struct model {
    zrt_ctx *ctx;
    zrt_param p[NTENSORS];
    zrt_dtype dtype;
} model;

static float value_of(int t, int64_t i, float salt)
{
    return (float)sin(0.11 * (double)i + t) + salt;
}

static void base_config(zrt_config *cfg, int stage)
{
    zrt_config_init(cfg);
    cfg->stage = stage;
    cfg->log_level = 0;
    cfg->aio.block_size = 4096;
}

static void build(model *m, const zrt_config *cfg)
{
    m->dtype = cfg->bf16.enabled ? ZRT_BF16 : ZRT_F32;
    ck_assert_int_eq(zrt_ctx_create(cfg, &m->ctx), ZRT_OK);
    for (int t = 0; t < NTENSORS; t++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", t);
        zrt_param_desc d = {.name = name,
                            .ndim = 1,
                            .shape = {numels[t]},
                            .dtype = m->dtype,
                            .layer = layer_of[t]};
        ck_assert_int_eq(zrt_param_register(m->ctx, &d, &m->p[t]), ZRT_OK);
    }
    ck_assert_msg(zrt_finalize_params(m->ctx) == ZRT_OK, "%s", zrt_last_error(m->ctx));
}

/* values (n f32) in the model's dtype, into buf (n elements of it). */
static void *typed(const model *m, const float *values, int64_t n, uint16_t *buf)
{
    if (m->dtype == ZRT_F32)
        return (void *)values;
    ck_assert_int_eq(zrt_convert(buf, m->dtype, values, ZRT_F32, (size_t)n), ZRT_OK);
    return buf;
}

/* Every tensor from its owned range, PIECE elements at a time. */
static void write_owned(model *m, float salt)
{
    float v[PIECE];
    uint16_t h[PIECE];
    for (int t = 0; t < NTENSORS; t++) {
        int64_t first, count;
        ck_assert_int_eq(zrt_param_owned_range(m->ctx, m->p[t], &first, &count), ZRT_OK);
        if (count == 0)
            ck_assert_int_eq(zrt_param_write_range(m->ctx, m->p[t], 0, 0, NULL), ZRT_OK);
        for (int64_t k = first; k < first + count; k += PIECE) {
            int64_t n = first + count - k < PIECE ? first + count - k : PIECE;
            for (int64_t i = 0; i < n; i++)
                v[i] = value_of(t, k + i, salt);
            zrt_status st =
                zrt_param_write_range(m->ctx, m->p[t], k, n, typed(m, v, n, h));
            ck_assert_msg(st == ZRT_OK, "%s", zrt_last_error(m->ctx));
        }
    }
}

/* zrt_param_read of every tensor equals value_of(salt), rounded to the dtype. */
static void assert_values(model *m, float salt, const char *what)
{
    for (int t = 0; t < NTENSORS; t++) {
        int64_t n = numels[t];
        float *want = malloc((size_t)n * sizeof *want),
              *got = malloc((size_t)n * sizeof *got);
        uint16_t *h = malloc((size_t)n * sizeof *h);
        for (int64_t i = 0; i < n; i++)
            want[i] = value_of(t, i, salt);
        if (m->dtype != ZRT_F32) { /* what the dtype keeps of them */
            zrt_convert(h, m->dtype, want, ZRT_F32, (size_t)n);
            zrt_convert(want, ZRT_F32, h, m->dtype, (size_t)n);
        }
        ck_assert_int_eq(
            zrt_param_read(m->ctx, m->p[t], m->dtype == ZRT_F32 ? (void *)got : h),
            ZRT_OK);
        if (m->dtype != ZRT_F32)
            zrt_convert(got, ZRT_F32, h, m->dtype, (size_t)n);
        ck_assert_msg(memcmp(got, want, (size_t)n * sizeof *got) == 0,
                      "%s: tensor %d differs from the values written", what, t);
        free(want);
        free(got);
        free(h);
    }
}

/* Enters and leaves every layer in forward: stage 3 gathers them. */
static void touch_layers(model *m)
{
    for (int l = 0; l < NLAYERS; l++) {
        ck_assert_int_eq(zrt_forward_begin(m->ctx, l), ZRT_OK);
        ck_assert_int_eq(zrt_forward_end(m->ctx, l), ZRT_OK);
    }
}

/* One step with zero gradients and lr 0: parameters stay, and at stage 3 on
 * NVMe the shards written block by block are read and rewritten. */
static void zero_step(model *m)
{
    for (int l = 0; l < NLAYERS; l++) {
        ck_assert_int_eq(zrt_forward_begin(m->ctx, l), ZRT_OK);
        ck_assert_int_eq(zrt_forward_end(m->ctx, l), ZRT_OK);
    }
    for (int l = NLAYERS - 1; l >= 0; l--) {
        ck_assert_int_eq(zrt_backward_begin(m->ctx, l), ZRT_OK);
        ck_assert_int_eq(zrt_backward_end(m->ctx, l), ZRT_OK);
    }
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    hp.lr = 0;
    hp.weight_decay = 0;
    ck_assert_msg(zrt_step(m->ctx, &hp) == ZRT_OK, "%s", zrt_last_error(m->ctx));
}

/* The owned ranges of all ranks tile each tensor (stage 3) or are all of
 * it (stages 0-2). */
static void assert_ranges(model *m, int stage)
{
    for (int t = 0; t < NTENSORS; t++) {
        int64_t mine[2], all[8];
        ck_assert_int_eq(zrt_param_owned_range(m->ctx, m->p[t], &mine[0], &mine[1]),
                         ZRT_OK);
        MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, MPI_COMM_WORLD);
        int64_t covered = 0;
        for (int r = 0; r < world_size; r++) {
            if (stage < 3) {
                ck_assert_int_eq(all[2 * r], 0);
                ck_assert_int_eq(all[2 * r + 1], numels[t]);
                continue;
            }
            if (all[2 * r + 1] == 0)
                continue;
            ck_assert_int_eq(all[2 * r], covered); /* rank order, no gap */
            covered += all[2 * r + 1];
        }
        if (stage == 3)
            ck_assert_int_eq(covered, numels[t]);
    }
}

static void check_case(int stage, int nvme, int bf16, const char *dir)
{
    zrt_config cfg;
    base_config(&cfg, stage);
    cfg.bf16.enabled = bf16;
    if (nvme) {
        cfg.offload_optimizer.device = ZRT_OFFLOAD_NVME;
        cfg.offload_param.device = ZRT_OFFLOAD_NVME;
        snprintf(cfg.offload_optimizer.nvme_path, sizeof cfg.offload_optimizer.nvme_path,
                 "%s", dir);
        snprintf(cfg.offload_param.nvme_path, sizeof cfg.offload_param.nvme_path, "%s",
                 dir);
    }
    char what[64];
    snprintf(what, sizeof what, "stage %d%s%s", stage, nvme ? ", nvme" : "",
             bf16 ? ", bf16" : "");
    model m = {0};
    build(&m, &cfg);
    assert_ranges(&m, stage);
    write_owned(&m, 0.0f);
    assert_values(&m, 0.0f, what);
    touch_layers(&m); /* gathered copies, which the next writes make stale */
    write_owned(&m, 0.5f);
    assert_values(&m, 0.5f, what);
    zero_step(&m);
    assert_values(&m, 0.5f, what);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
}

START_TEST(owned_ranges_written_piecewise_give_the_full_values)
{
    char dir[] = "/tmp/zrt-test-range-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    for (int stage = 0; stage <= 3; stage++)
        check_case(stage, 0, 0, dir);
    check_case(3, 1, 0, dir);
    check_case(3, 1, 1, dir);
    check_case(2, 0, 1, dir);
    MPI_Barrier(MPI_COMM_WORLD);
    rmdir(dir);
}
END_TEST

START_TEST(bad_ranges_are_refused_with_a_sentence)
{
    zrt_config cfg;
    base_config(&cfg, 3);
    model m = {0};
    build(&m, &cfg);
    float v[4] = {0};
    ck_assert_int_eq(zrt_param_write_range(m.ctx, m.p[1], 2, 2, v), ZRT_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(zrt_last_error(m.ctx), "outside 't1'"));
    ck_assert_int_eq(zrt_param_write_range(m.ctx, m.p[1], -1, 1, v), ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_param_write_range(m.ctx, m.p[1], 0, 1, NULL),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_param_write_range(m.ctx, 7, 0, 1, v), ZRT_ERR_INVALID_ARG);
    int64_t first, count;
    ck_assert_int_eq(zrt_param_owned_range(m.ctx, m.p[0], NULL, &count),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_param_owned_range(m.ctx, m.p[0], &first, NULL),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_forward_begin(m.ctx, 1), ZRT_OK);
    ck_assert_int_eq(zrt_param_write_range(m.ctx, m.p[2], 0, 1, v), ZRT_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(zrt_last_error(m.ctx), "is live"));
    ck_assert_int_eq(zrt_forward_end(m.ctx, 1), ZRT_OK);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
}
END_TEST

int main(int argc, char **argv)
{
    zrt_check_mpi_init(&argc, &argv, &world_rank, &world_size);
    if (world_size > 4) {
        MPI_Finalize();
        return ZRT_TEST_SKIP;
    }
    Suite *s = ZRT_CHECK_SUITE("param_range", 120,
                               owned_ranges_written_piecewise_give_the_full_values,
                               bad_ranges_are_refused_with_a_sentence);
    int rc = zrt_check_main_mpi(s, "param_range");
    MPI_Finalize();
    return rc;
}
