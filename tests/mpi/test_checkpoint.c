/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/mpi/test_checkpoint.c — zrt_save / zrt_load across ranks (run under
 * mpirun with 1 to 4 ranks).
 *
 * A synthetic model (odd tensor sizes, a tensor smaller than the world, a
 * layer without parameters) with a gradient that depends on the parameters
 * and the rank. What users rely on:
 *   - train 5, save, train 5 equals load-at-5, train 5, bit for bit, at
 *     stages 0-3 and with the optimizer on the host or NVMe and stage-3
 *     parameters on NVMe; the caller's blob and the step come back;
 *   - a checkpoint saved at one stage loads at another;
 *   - a truncated or flipped-byte rank file, or a damaged meta.json, is
 *     refused on every rank with a sentence naming the file, and the
 *     parameters are unchanged;
 *   - misuse (mid-accumulation, a bad info struct, a missing or different
 *     parameter, no checkpoint) is refused with a sentence;
 *   - a leftover of a crashed save is cleaned; re-saving a step replaces it;
 *   - bf16 and fp16 parameters (with their f32 master copy) resume bit for bit
 *     at stages 0-3 and with the optimizer on the host: the parameters and
 *     every byte of the next checkpoint's rank files; fp16's loss scale, its
 *     counters and the skipped steps (two injected overflows) come back;
 *   - a checkpoint loads into another precision: f32 <-> bf16 <-> fp16, the
 *     f32 values (params or master) becoming the master, rounded into the
 *     16-bit params, and the master surviving an f32 -> bf16 -> f32 trip.
 * Check runs without fork (forked children cannot use MPI).
 */
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/test_check.h"
#include "../common/test_model.h"
#include "../common/test_shared_dir.h"
#include "zero/checkpoint.h"
#include "zero/ctx.h"
#include "zrt/zrt.h"

/* x rounded to dtype and widened back: what a 16-bit parameter holds. */
static float rounded(float x, zrt_dtype dtype)
{
    uint16_t h;
    float back = x;
    if (dtype != ZRT_F32) {
        ck_assert_int_eq(zrt_convert(&h, dtype, &x, ZRT_F32, 1), ZRT_OK);
        ck_assert_int_eq(zrt_convert(&back, ZRT_F32, &h, dtype, 1), ZRT_OK);
    }
    return back;
}

typedef struct tier_case {
    int stage;
    zrt_offload_device optim, param;
} tier_case;

static void config_for(zrt_config *cfg, const tier_case *c, const char *swap)
{
    zrt_config_init(cfg);
    cfg->stage = c->stage;
    cfg->stage3_param_persistence_threshold = 150; /* layer 2 (133) stays gathered */
    cfg->log_level = 0;
    cfg->aio.block_size = 4096;
    cfg->offload_optimizer.device = c->optim;
    cfg->offload_param.device = c->param;
    snprintf(cfg->offload_optimizer.nvme_path, sizeof cfg->offload_optimizer.nvme_path,
             "%s", swap);
    snprintf(cfg->offload_param.nvme_path, sizeof cfg->offload_param.nvme_path, "%s",
             swap);
}

/* config_for a stage with nothing offloaded. */
static void config_at(zrt_config *cfg, int stage)
{
    tier_case c = {stage, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE};
    config_for(cfg, &c, "");
}

/* A model built from config_at(stage), which stays in cfg for the test to
 * build again. */
static model built_at(zrt_config *cfg, int stage)
{
    config_at(cfg, stage);
    model m = {0};
    ck_assert_msg(build(&m, cfg) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    return m;
}

/* fp16: rank 0's gradients overflow in the optimizer steps the scaler
 * counts as 2 and 7 (skipped steps count), so a resume that lost the
 * scaler's counter would inject them at other steps. */
static int model_overflows(const model *m, int t)
{
    long iter = m->ctx->scaler.iter;
    return t == 4 && m->dtype == ZRT_F16 && world_rank == 0 && (iter == 2 || iter == 7);
}

static void train(model *m, int steps)
{
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    hp.lr = 0.01f;
    for (int s = 0; s < steps; s++) {
        ck_assert_msg(model_forward_backward(m) == ZRT_OK, "%s", zrt_last_error(m->ctx));
        ck_assert_msg(zrt_step(m->ctx, &hp) == ZRT_OK, "%s", zrt_last_error(m->ctx));
    }
}

static void fill_info(zrt_ckpt_info *info)
{
    zrt_ckpt_info_init(info);
    info->user_bytes = 37;
    for (size_t i = 0; i < info->user_bytes; i++)
        info->user[i] = (unsigned char)(i * 7 + 3);
}

static void save_ok(model *m, const char *dir, const zrt_ckpt_info *info)
{
    ck_assert_msg(zrt_save(m->ctx, dir, info) == ZRT_OK, "%s", zrt_last_error(m->ctx));
}

/* What a run ended with besides its parameters. */
typedef struct run_end {
    long step, saved_step; /* optimizer steps at the end, at the first save */
    float loss_scale;
    long skipped;
} run_end;

static void end_of(model *m, run_end *out)
{
    out->step = m->ctx->step;
    ck_assert_int_eq(zrt_loss_scale(m->ctx, &out->loss_scale), ZRT_OK);
    ck_assert_int_eq(zrt_skipped_steps(m->ctx, &out->skipped), ZRT_OK);
}

/* Trains 5, saves, trains 5 (and saves into end_dir unless NULL): the
 * reference parameters. */
static float *reference_run(const zrt_config *cfg, const char *dir, const char *end_dir,
                            run_end *end)
{
    model m = {0};
    zrt_ckpt_info info;
    fill_info(&info);
    ck_assert_int_eq(build(&m, cfg), ZRT_OK);
    train(&m, 5);
    save_ok(&m, dir, &info);
    long saved_step = m.ctx->step;
    train(&m, 5);
    if (end_dir)
        save_ok(&m, end_dir, NULL);
    float *ref = read_all(&m);
    if (end) {
        end_of(&m, end);
        end->saved_step = saved_step;
    }
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    return ref;
}

/* Loads dir into a fresh context, trains 5 (and saves into end_dir unless
 * NULL): the resumed parameters. The checkpoint is of step `saved_step`. */
static float *resumed_run(const zrt_config *cfg, const char *dir, const char *end_dir,
                          long saved_step, run_end *end)
{
    model m = {0};
    zrt_ckpt_info info;
    zrt_ckpt_info_init(&info);
    ck_assert_int_eq(build(&m, cfg), ZRT_OK);
    ck_assert_msg(zrt_load(m.ctx, dir, &info) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    ck_assert_int_eq(info.step, saved_step);
    ck_assert_int_eq(info.world_size, world_size);
    ck_assert_uint_eq(info.user_bytes, 37);
    for (size_t i = 0; i < info.user_bytes; i++)
        ck_assert_uint_eq(info.user[i], (unsigned char)(i * 7 + 3));
    train(&m, 5);
    if (end_dir)
        save_ok(&m, end_dir, NULL);
    float *got = read_all(&m);
    if (end)
        end_of(&m, end);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    return got;
}

static const tier_case resume_cases[] = {
    {0, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE}, {1, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE},
    {2, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE}, {3, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE},
    {1, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NONE},  {3, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_CPU},
    {2, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NONE}, {3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NONE},
    {3, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NVME}, {3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NVME},
};

START_TEST(resume_is_bit_identical_at_every_stage_and_tier)
{
    char dir[64], swap[64];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckpt-XXXXXX");
    shared_dir(swap, sizeof swap, "/tmp/zrt-ckpt-swap-XXXXXX");
    for (size_t i = 0; i < sizeof resume_cases / sizeof resume_cases[0]; i++) {
        const tier_case *c = &resume_cases[i];
        zrt_config cfg;
        config_for(&cfg, c, swap);
        float *ref = reference_run(&cfg, dir, NULL, NULL);
        float *got = resumed_run(&cfg, dir, NULL, 5, NULL);
        char what[96];
        snprintf(what, sizeof what,
                 "stage %d, optimizer %d, params %d (0 none 1 cpu 2 "
                 "nvme)",
                 c->stage, c->optim, c->param);
        assert_same_bits(got, ref, what);
        ck_assert_float_ne(ref[0], initial_value(0, 0));
        free(ref);
        free(got);
    }
    remove_tree(dir);
    remove_tree(swap);
}
END_TEST

/* Saved at stage 0 (optimizer state replicated), loaded at stage 3 with
 * everything on NVMe, and back: stages are bit-identical, so continuing at
 * another stage equals continuing at the first. */
START_TEST(a_checkpoint_loads_at_another_stage)
{
    char dir[64], swap[64];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckpt-XXXXXX");
    shared_dir(swap, sizeof swap, "/tmp/zrt-ckpt-swap-XXXXXX");
    const tier_case pairs[][2] = {
        {{0, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE},
         {3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NVME}},
        {{3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NVME},
         {0, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE}},
        {{2, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NONE}, {1, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE}},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        zrt_config saved, loaded;
        config_for(&saved, &pairs[i][0], swap);
        config_for(&loaded, &pairs[i][1], swap);
        float *ref = reference_run(&saved, dir, NULL, NULL);
        float *got = resumed_run(&loaded, dir, NULL, 5, NULL);
        char what[64];
        snprintf(what, sizeof what, "saved at stage %d, loaded at stage %d",
                 pairs[i][0].stage, pairs[i][1].stage);
        assert_same_bits(got, ref, what);
        free(ref);
        free(got);
    }
    remove_tree(dir);
    remove_tree(swap);
}
END_TEST

/* ---- 16-bit parameters ------------------------------------------------------- */

static void config_mixed(zrt_config *cfg, const tier_case *c, zrt_dtype dtype)
{
    config_for(cfg, c, "");
    cfg->bf16.enabled = dtype == ZRT_BF16;
    cfg->fp16.enabled = dtype == ZRT_F16;
    cfg->fp16.initial_scale_power = 4; /* the scale moves within 10 steps: */
    cfg->fp16.loss_scale_window = 3;   /* doubles after 3 good steps, */
    cfg->fp16.hysteresis = 1;          /* halves at each overflow */
}

/* This rank's file of step `step` in a and b holds the same bytes. */
static void assert_same_rank_file(const char *a, const char *b, long step)
{
    char pa[160], pb[160];
    snprintf(pa, sizeof pa, "%s/step-%08ld/rank-%05d.zrtc", a, step, world_rank);
    snprintf(pb, sizeof pb, "%s/step-%08ld/rank-%05d.zrtc", b, step, world_rank);
    FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
    ck_assert_ptr_nonnull(fa);
    ck_assert_ptr_nonnull(fb);
    long at = 0;
    for (int ca, cb;; at++) {
        ca = fgetc(fa);
        cb = fgetc(fb);
        ck_assert_msg(ca == cb, "%s and %s differ at byte %ld", pa, pb, at);
        if (ca == EOF)
            break;
    }
    fclose(fa);
    fclose(fb);
}

static const tier_case mixed_cases[] = {
    {0, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE}, {1, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE},
    {2, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE}, {3, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE},
    {1, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NONE},
};

/* Train 10 saving at 5 and 10 against load at 5, train 5, save: the
 * parameters and the step-10 rank files (16-bit params, f32 master, both
 * moments) are identical, and so are fp16's loss scale and skipped steps. */
START_TEST(mixed_precision_resumes_bit_identical)
{
    char dir[64], end_ref[64], end_got[64];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckpt-XXXXXX");
    shared_dir(end_ref, sizeof end_ref, "/tmp/zrt-ckpt-ref-XXXXXX");
    shared_dir(end_got, sizeof end_got, "/tmp/zrt-ckpt-got-XXXXXX");
    const zrt_dtype dtypes[] = {ZRT_BF16, ZRT_F16};
    for (size_t d = 0; d < 2; d++) {
        for (size_t i = 0; i < sizeof mixed_cases / sizeof mixed_cases[0]; i++) {
            const tier_case *c = &mixed_cases[i];
            zrt_config cfg;
            config_mixed(&cfg, c, dtypes[d]);
            run_end want, got_end;
            float *ref = reference_run(&cfg, dir, end_ref, &want);
            float *got = resumed_run(&cfg, dir, end_got, want.saved_step, &got_end);
            char what[96];
            snprintf(what, sizeof what, "%s, stage %d, optimizer %d, params %d",
                     zrt_dtype_str(dtypes[d]), c->stage, c->optim, c->param);
            assert_same_bits(got, ref, what);
            ck_assert_float_ne(ref[0], rounded(initial_value(0, 0), dtypes[d]));
            ck_assert_int_eq(got_end.step, want.step);
            ck_assert_msg(got_end.loss_scale == want.loss_scale &&
                              got_end.skipped == want.skipped,
                          "%s: loss scale %g, %ld skipped; uninterrupted %g, %ld", what,
                          (double)got_end.loss_scale, got_end.skipped,
                          (double)want.loss_scale, want.skipped);
            if (dtypes[d] == ZRT_F16) { /* the overflows at 2 and 7 were skipped */
                ck_assert_int_eq(want.skipped, 2);
                ck_assert_int_eq(want.saved_step, 4);
                ck_assert_float_ne(want.loss_scale, 16.0f);
            }
            assert_same_rank_file(end_ref, end_got, want.step);
            free(ref);
            free(got);
        }
    }
    remove_tree(dir);
    remove_tree(end_ref);
    remove_tree(end_got);
}
END_TEST

static void assert_rounded_from(const float *got, const float *f32, zrt_dtype dtype,
                                const char *what)
{
    for (int64_t i = 0; i < model_numel; i++) {
        float want = rounded(f32[i], dtype);
        ck_assert_msg(memcmp(&got[i], &want, sizeof want) == 0,
                      "%s: element %lld is %.9g, expected %.9g (%.9g rounded to %s)",
                      what, (long long)i, got[i], want, f32[i], zrt_dtype_str(dtype));
    }
}

/* A fresh context of `dtype` at `stage`, loaded from dir unless NULL. */
static void load_into(model *m, zrt_dtype dtype, int stage, const char *dir)
{
    zrt_config cfg;
    tier_case c = {stage, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE};
    config_mixed(&cfg, &c, dtype);
    ck_assert_int_eq(build(m, &cfg), ZRT_OK);
    if (dir)
        ck_assert_msg(zrt_load(m->ctx, dir, NULL) == ZRT_OK, "%s",
                      zrt_last_error(m->ctx));
}

static void assert_format(const char *dir, int version, zrt_dtype dtype)
{
    zrt__ckpt ck;
    zrt__errbuf err = {.rank = -1};
    ck_assert_msg(zrt__ckpt_open(dir, &ck, &err) == ZRT_OK, "%s", err.text);
    ck_assert_int_eq(ck.meta.version, version);
    ck_assert_int_eq(ck.meta.dtype, dtype);
    ck_assert_int_eq(ck.meta.has_scaler, dtype != ZRT_F32);
    ck_assert_int_eq(ck.meta.nkinds, dtype == ZRT_F32 ? 3 : 4);
    zrt__ckpt_close(&ck);
}

/* A fresh context of `dtype` at `stage` loads `from`: its parameters are
 * the f32 values rounded to dtype (exactly them for f32). It saves into
 * `to` unless NULL, a checkpoint of format `version`, then trains a step. */
static void expect_loaded_rounded(zrt_dtype dtype, int stage, const char *from,
                                  const float *f32, const char *what, const char *to,
                                  int version)
{
    model m = {0};
    load_into(&m, dtype, stage, from);
    float *got = read_all(&m);
    assert_rounded_from(got, f32, dtype, what);
    free(got);
    if (to)
        save_ok(&m, to, NULL);
    train(&m, 1);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    if (to)
        assert_format(to, version, dtype);
}

/* f32 -> bf16: the f32 params become the master and, rounded, the params;
 * bf16 -> f32: the master becomes the params (the f32 values came through
 * exactly); bf16 -> fp16 and fp16 -> bf16: the master, rounded to the new
 * type. Every loaded context trains on. */
START_TEST(a_checkpoint_loads_into_another_precision)
{
    char a[64], b[64], c[64];
    shared_dir(a, sizeof a, "/tmp/zrt-ckpt-XXXXXX");
    shared_dir(b, sizeof b, "/tmp/zrt-ckpt-XXXXXX");
    shared_dir(c, sizeof c, "/tmp/zrt-ckpt-XXXXXX");
    model m = {0};
    load_into(&m, ZRT_F32, 3, NULL);
    train(&m, 3);
    save_ok(&m, a, NULL);
    float *f32 = read_all(&m);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    assert_format(a, 1, ZRT_F32);

    expect_loaded_rounded(ZRT_BF16, 1, a, f32, "f32 checkpoint into bf16", b, 2);
    expect_loaded_rounded(ZRT_F32, 2, b, f32, "f32 -> bf16 -> f32: the master copy", NULL,
                          0);
    expect_loaded_rounded(ZRT_F16, 0, b, f32, "bf16 checkpoint into fp16", c, 2);
    expect_loaded_rounded(ZRT_BF16, 3, c, f32, "fp16 checkpoint into bf16", NULL, 0);
    free(f32);
    remove_tree(a);
    remove_tree(b);
    remove_tree(c);
}
END_TEST

/* ---- damaged checkpoints ---------------------------------------------------- */

/* The file of the last rank in the step directory of the context's step. */
static void last_rank_file(char *out, size_t size, const char *dir, const model *m)
{
    snprintf(out, size, "%s/step-%08ld/rank-%05d.zrtc", dir, m->ctx->step,
             world_size - 1);
}

/* Rank 0 damages `path`: truncates it by `cut` bytes, or flips the byte at
 * `flip` bytes before its end. */
static void damage(const char *path, long cut, long flip)
{
    if (world_rank == 0) {
        struct stat sb;
        ck_assert_int_eq(stat(path, &sb), 0);
        if (cut)
            ck_assert_int_eq(truncate(path, sb.st_size - cut), 0);
        if (flip) {
            FILE *f = fopen(path, "r+b");
            ck_assert_ptr_nonnull(f);
            fseek(f, sb.st_size - flip, SEEK_SET);
            int c = fgetc(f);
            fseek(f, sb.st_size - flip, SEEK_SET);
            fputc(c ^ 0x10, f);
            ck_assert_int_eq(fclose(f), 0);
        }
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

/* The load is refused on every rank naming `needle`; nothing changed. */
static void assert_refused(model *m, const char *dir, const char *needle,
                           const char *needle2)
{
    float *before = read_all(m);
    long step_before = m->ctx->step;
    zrt_ckpt_info info;
    zrt_ckpt_info_init(&info);
    info.step = -7;
    zrt_status st = zrt_load(m->ctx, dir, &info);
    ck_assert_int_ne(st, ZRT_OK);
    const char *why = zrt_last_error(m->ctx);
    ck_assert_msg(strstr(why, needle), "'%s' not named in: %s", needle, why);
    if (needle2)
        ck_assert_msg(strstr(why, needle2), "'%s' not named in: %s", needle2, why);
    ck_assert_int_eq(info.step, -7); /* untouched on failure */
    ck_assert_int_eq(m->ctx->step, step_before);
    float *after = read_all(m);
    assert_same_bits(after, before, "after a refused load");
    free(before);
    free(after);
}

START_TEST(damaged_files_are_refused_by_name_and_change_nothing)
{
    char dir[64], swap[64], path[160], meta[160];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckpt-XXXXXX");
    shared_dir(swap, sizeof swap, "/tmp/zrt-ckpt-swap-XXXXXX");
    for (int stage = 0; stage <= 3; stage += 3) {
        zrt_config cfg;
        tier_case c = {stage, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE};
        config_for(&cfg, &c, swap);
        model m = {0};
        ck_assert_int_eq(build(&m, &cfg), ZRT_OK);
        train(&m, 2);
        save_ok(&m, dir, NULL);
        last_rank_file(path, sizeof path, dir, &m);
        train(&m, 1); /* the context now differs from the checkpoint */
        damage(path, 100, 0);
        assert_refused(&m, dir, path, "truncated");

        ck_assert_int_eq(zrt_load(m.ctx, "/nonexistent/zrt", NULL), ZRT_ERR_IO);
        train(&m, 1); /* failed loads leave a context that trains */
        save_ok(&m, dir, NULL);
        last_rank_file(path, sizeof path, dir, &m);
        train(&m, 1);
        damage(path, 0, 50); /* inside the last section */
        assert_refused(&m, dir, path, "section");

        save_ok(&m, dir, NULL);
        snprintf(meta, sizeof meta, "%s/step-%08ld/meta.json", dir, m.ctx->step);
        damage(meta, 0, 200);
        assert_refused(&m, dir, meta, "CRC32C");
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    }
    remove_tree(dir);
    remove_tree(swap);
}
END_TEST

/* ---- misuse and leftovers ------------------------------------------------------ */

START_TEST(misuse_is_refused_with_a_sentence)
{
    zrt_config cfg;
    config_at(&cfg, 1);
    cfg.gradient_accumulation_steps = 2;
    model m = {0};
    ck_assert_int_eq(build(&m, &cfg), ZRT_OK);
    char dir[64];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckpt-XXXXXX");
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    ck_assert_int_eq(model_forward_backward(&m), ZRT_OK);
    ck_assert_int_eq(zrt_step(m.ctx, &hp), ZRT_OK); /* micro-step 1 of 2 */
    ck_assert_int_eq(zrt_save(m.ctx, dir, NULL), ZRT_ERR_STATE);
    ck_assert_msg(strstr(zrt_last_error(m.ctx), "micro-step"), "%s",
                  zrt_last_error(m.ctx));
    ck_assert_int_eq(model_forward_backward(&m), ZRT_OK);
    ck_assert_int_eq(zrt_step(m.ctx, &hp), ZRT_OK); /* the optimizer step */
    zrt_ckpt_info info = {.struct_size = 8};
    ck_assert_int_eq(zrt_save(m.ctx, dir, &info), ZRT_ERR_INVALID_ARG);
    ck_assert_msg(strstr(zrt_last_error(m.ctx), "struct_size"), "%s",
                  zrt_last_error(m.ctx));
    ck_assert_int_eq(zrt_load(m.ctx, dir, NULL), ZRT_ERR_IO); /* nothing saved yet */
    ck_assert_msg(strstr(zrt_last_error(m.ctx), "no checkpoint"), "%s",
                  zrt_last_error(m.ctx));
    save_ok(&m, dir, NULL);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);

    /* a model whose first tensor is named or shaped differently */
    cfg.gradient_accumulation_steps = 1;
    ck_assert_int_eq(build_named(&m, &cfg, "renamed", shapes[0][0]), ZRT_OK);
    ck_assert_int_eq(zrt_load(m.ctx, dir, NULL), ZRT_ERR_INVALID_ARG);
    ck_assert_msg(strstr(zrt_last_error(m.ctx), "'renamed0'"), "%s",
                  zrt_last_error(m.ctx));
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    ck_assert_int_eq(build_named(&m, &cfg, "t", 36), ZRT_OK);
    ck_assert_int_eq(zrt_load(m.ctx, dir, NULL), ZRT_ERR_INVALID_ARG);
    ck_assert_msg(strstr(zrt_last_error(m.ctx), "(37, 5)") &&
                      strstr(zrt_last_error(m.ctx), "(36, 5)"),
                  "%s", zrt_last_error(m.ctx));
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    remove_tree(dir);
}
END_TEST

/* Declared model dimensions go into meta.json; a load into a context that
 * declares another value for one of them is refused naming every difference
 * and changes nothing; an undeclared name, or a checkpoint without it, loads. */
START_TEST(a_checkpoint_of_another_model_shape_is_refused)
{
    zrt_config cfg;
    model m = built_at(&cfg, 2);
    ck_assert_int_eq(zrt_declare_model_dim(m.ctx, "heads", 4), ZRT_OK);
    ck_assert_int_eq(zrt_declare_model_dim(m.ctx, "vocab_size", 250), ZRT_OK);
    ck_assert_int_eq(zrt_declare_model_dim(m.ctx, "Heads", 4), ZRT_ERR_INVALID_ARG);
    ck_assert_msg(strstr(zrt_last_error(m.ctx), "'Heads'"), "%s", zrt_last_error(m.ctx));
    train(&m, 1);
    char dir[64];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckpt-XXXXXX");
    save_ok(&m, dir, NULL);
    train(&m, 1);
    ck_assert_int_eq(zrt_declare_model_dim(m.ctx, "heads", 8), ZRT_OK); /* replaces */
    ck_assert_int_eq(zrt_declare_model_dim(m.ctx, "vocab_size", 256), ZRT_OK);
    assert_refused(&m, dir, "heads 4 (this run: 8)", "vocab_size 250 (this run: 256)");
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);

    ck_assert_int_eq(build(&m, &cfg), ZRT_OK); /* declares nothing: loads */
    ck_assert_msg(zrt_load(m.ctx, dir, NULL) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    ck_assert_int_eq(build(&m, &cfg), ZRT_OK); /* same values, one more name */
    ck_assert_int_eq(zrt_declare_model_dim(m.ctx, "heads", 4), ZRT_OK);
    ck_assert_int_eq(zrt_declare_model_dim(m.ctx, "layers", 3), ZRT_OK);
    ck_assert_msg(zrt_load(m.ctx, dir, NULL) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    remove_tree(dir);
}
END_TEST

/* A crashed save leaves step-N.tmp (and no `latest` change); the next save
 * of that step removes it. `latest` names the newest save. */
START_TEST(leftovers_are_cleaned_and_latest_follows)
{
    char dir[64], path[200];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckpt-XXXXXX");
    zrt_config cfg;
    model m = built_at(&cfg, 3);
    train(&m, 1);
    save_ok(&m, dir, NULL);
    if (world_rank == 0) { /* what a save killed half-way leaves */
        snprintf(path, sizeof path, "%s/step-00000002.tmp", dir);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        snprintf(path, sizeof path, "%s/step-00000002.tmp/rank-00000.zrtc.tmp", dir);
        FILE *f = fopen(path, "w");
        fputs("half", f);
        fclose(f);
    }
    train(&m, 1);
    save_ok(&m, dir, NULL);
    if (world_rank == 0) {
        snprintf(path, sizeof path, "%s/step-00000002.tmp", dir);
        ck_assert_int_ne(access(path, F_OK), 0);
        snprintf(path, sizeof path, "%s/latest", dir);
        FILE *f = fopen(path, "r");
        char name[64] = "";
        ck_assert_ptr_nonnull(fgets(name, sizeof name, f));
        fclose(f);
        ck_assert_str_eq(name, "step-00000002\n");
        snprintf(path, sizeof path, "%s/step-00000001/meta.json", dir);
        ck_assert_int_eq(access(path, F_OK), 0); /* older ones stay */
    }
    zrt_ckpt_info info;
    zrt_ckpt_info_init(&info);
    snprintf(path, sizeof path, "%s/step-00000001", dir); /* a step directory */
    ck_assert_msg(zrt_load(m.ctx, path, &info) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    ck_assert_int_eq(info.step, 1);
    ck_assert_int_eq(m.ctx->step, 1);
    /* resumed from step 1, step 2 is saved again: the old step-2 is replaced */
    train(&m, 1);
    float *mine = read_all(&m);
    save_ok(&m, dir, NULL);
    train(&m, 2);
    ck_assert_msg(zrt_load(m.ctx, dir, &info) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    ck_assert_int_eq(info.step, 2);
    float *back = read_all(&m);
    assert_same_bits(back, mine, "the replaced step 2");
    free(mine);
    free(back);
    if (world_rank == 0) {
        snprintf(path, sizeof path, "%s/step-00000002.tmp", dir);
        ck_assert_int_ne(access(path, F_OK), 0);
    }
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    remove_tree(dir);
}
END_TEST

int main(int argc, char **argv)
{
    zrt_check_mpi_init(&argc, &argv, &world_rank, &world_size);
    Suite *s = ZRT_CHECK_SUITE(
        "checkpoint", 240, resume_is_bit_identical_at_every_stage_and_tier,
        a_checkpoint_loads_at_another_stage, mixed_precision_resumes_bit_identical,
        a_checkpoint_loads_into_another_precision,
        damaged_files_are_refused_by_name_and_change_nothing,
        misuse_is_refused_with_a_sentence, leftovers_are_cleaned_and_latest_follows,
        a_checkpoint_of_another_model_shape_is_refused);
    int rc = zrt_check_main_mpi(s, "checkpoint");
    MPI_Finalize();
    return rc;
}
