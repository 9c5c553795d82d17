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
 *   - a leftover of a crashed save is cleaned; re-saving a step replaces it.
 * Check runs without fork (forked children cannot use MPI).
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zero/ctx.h"
#include "zrt/zrt.h"

/* Layers: 0 = {a 37x5, b 3}, 1 = {} (no parameters), 2 = {c 129, d 2x2},
 * 3 = {e 300}. */
enum { NLAYERS = 4, NTENSORS = 5 };
static const int64_t shapes[NTENSORS][2] = {{37, 5}, {3, 1}, {129, 1}, {2, 2}, {300, 1}};
static const int ndims[NTENSORS] = {2, 1, 1, 2, 1};
static const int layer_of[NTENSORS] = {0, 0, 2, 2, 3};
static const int64_t model_numel = 37 * 5 + 3 + 129 + 4 + 300;

static int world_rank, world_size;

typedef struct model {
    zrt_ctx *ctx;
    zrt_param p[NTENSORS];
} model;

typedef struct tier_case {
    int stage;
    zrt_offload_device optim, param;
} tier_case;

/* A directory every rank sees: rank 0 makes it, all learn its name. */
static void shared_dir(char *dir, size_t size, const char *pattern)
{
    if (world_rank == 0) {
        snprintf(dir, size, "%s", pattern);
        ck_assert_ptr_nonnull(mkdtemp(dir));
    }
    MPI_Bcast(dir, (int)size, MPI_CHAR, 0, MPI_COMM_WORLD);
}

static void remove_tree(const char *dir)
{
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank == 0) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

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

static float initial_value(int tensor, int64_t i)
{
    return (float)sin(0.37 * (double)(i + 1) + tensor) * 0.5f;
}

static zrt_status build_named(model *m, const zrt_config *cfg, const char *prefix,
                              int64_t first_dim)
{
    ZRT_CHECK(zrt_ctx_create(cfg, &m->ctx));
    for (int t = 0; t < NTENSORS; t++) {
        char name[16];
        snprintf(name, sizeof name, "%s%d", t == 0 ? prefix : "t", t);
        zrt_param_desc d = {.name = name, .ndim = ndims[t],
                            .shape = {t == 0 ? first_dim : shapes[t][0], shapes[t][1]},
                            .dtype = ZRT_F32, .layer = layer_of[t],
                            .no_weight_decay = t == 1};
        ZRT_CHECK(zrt_param_register(m->ctx, &d, &m->p[t]));
    }
    ZRT_CHECK(zrt_finalize_params(m->ctx));
    for (int t = 0; t < NTENSORS; t++) {
        int64_t n = (t == 0 ? first_dim : shapes[t][0]) * shapes[t][1];
        float *v = malloc((size_t)n * sizeof *v);
        for (int64_t i = 0; i < n; i++)
            v[i] = initial_value(t, i);
        zrt_status st = zrt_param_write(m->ctx, m->p[t], v);
        free(v);
        ZRT_CHECK(st);
    }
    return ZRT_OK;
}

static zrt_status build(model *m, const zrt_config *cfg)
{
    return build_named(m, cfg, "t", shapes[0][0]);
}

/* grad += f(param, rank): differs per rank, so the reduction matters. */
static zrt_status backward_layer(model *m, int layer)
{
    ZRT_CHECK(zrt_backward_begin(m->ctx, layer));
    for (int t = 0; t < NTENSORS; t++) {
        if (layer_of[t] != layer)
            continue;
        float *p, *g;
        ZRT_CHECK(zrt_param_data(m->ctx, m->p[t], (void **)&p));
        ZRT_CHECK(zrt_grad_data(m->ctx, m->p[t], (void **)&g));
        int64_t n = shapes[t][0] * shapes[t][1];
        for (int64_t i = 0; i < n; i++)
            g[i] += sinf(p[i] * (float)(world_rank + 1)) + 0.01f * (float)i;
    }
    return zrt_backward_end(m->ctx, layer);
}

static zrt_status forward_backward(model *m)
{
    for (int l = 0; l < NLAYERS; l++) {
        ZRT_CHECK(zrt_forward_begin(m->ctx, l));
        ZRT_CHECK(zrt_forward_end(m->ctx, l));
    }
    for (int l = NLAYERS - 1; l >= 0; l--)
        ZRT_CHECK(backward_layer(m, l));
    return ZRT_OK;
}

static void train(model *m, int steps)
{
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    hp.lr = 0.01f;
    for (int s = 0; s < steps; s++) {
        ck_assert_msg(forward_backward(m) == ZRT_OK, "%s", zrt_last_error(m->ctx));
        ck_assert_msg(zrt_step(m->ctx, &hp) == ZRT_OK, "%s", zrt_last_error(m->ctx));
    }
}

static float *read_all(model *m)
{
    float *all = malloc((size_t)model_numel * sizeof *all);
    int64_t at = 0;
    for (int t = 0; t < NTENSORS; t++) {
        ck_assert_msg(zrt_param_read(m->ctx, m->p[t], all + at) == ZRT_OK, "%s",
                      zrt_last_error(m->ctx));
        at += shapes[t][0] * shapes[t][1];
    }
    return all;
}

static void assert_same_bits(const float *a, const float *b, const char *what)
{
    for (int64_t i = 0; i < model_numel; i++)
        ck_assert_msg(memcmp(&a[i], &b[i], sizeof(float)) == 0,
                      "%s: element %lld differs (%.9g vs %.9g)", what, (long long)i,
                      a[i], b[i]);
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

/* Trains 5, saves, trains 5: the reference parameters. */
static float *reference_run(const zrt_config *cfg, const char *dir)
{
    model m = {0};
    zrt_ckpt_info info;
    fill_info(&info);
    ck_assert_int_eq(build(&m, cfg), ZRT_OK);
    train(&m, 5);
    save_ok(&m, dir, &info);
    train(&m, 5);
    float *ref = read_all(&m);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    return ref;
}

/* Loads dir into a fresh context, trains 5: the resumed parameters. */
static float *resumed_run(const zrt_config *cfg, const char *dir)
{
    model m = {0};
    zrt_ckpt_info info;
    zrt_ckpt_info_init(&info);
    ck_assert_int_eq(build(&m, cfg), ZRT_OK);
    ck_assert_msg(zrt_load(m.ctx, dir, &info) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    ck_assert_int_eq(info.step, 5);
    ck_assert_int_eq(info.world_size, world_size);
    ck_assert_uint_eq(info.user_bytes, 37);
    for (size_t i = 0; i < info.user_bytes; i++)
        ck_assert_uint_eq(info.user[i], (unsigned char)(i * 7 + 3));
    train(&m, 5);
    float *got = read_all(&m);
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
        float *ref = reference_run(&cfg, dir);
        float *got = resumed_run(&cfg, dir);
        char what[96];
        snprintf(what, sizeof what, "stage %d, optimizer %d, params %d (0 none 1 cpu 2 "
                 "nvme)", c->stage, c->optim, c->param);
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
        {{0, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE}, {3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NVME}},
        {{3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NVME}, {0, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE}},
        {{2, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NONE}, {1, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE}},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        zrt_config saved, loaded;
        config_for(&saved, &pairs[i][0], swap);
        config_for(&loaded, &pairs[i][1], swap);
        float *ref = reference_run(&saved, dir);
        float *got = resumed_run(&loaded, dir);
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

/* ---- damaged checkpoints ---------------------------------------------------- */

/* The file of the last rank in the step directory of the context's step. */
static void last_rank_file(char *out, size_t size, const char *dir, const model *m)
{
    snprintf(out, size, "%s/step-%08ld/rank-%05d.zrtc", dir, m->ctx->step, world_size - 1);
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
    char dir[64];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckpt-XXXXXX");
    zrt_config cfg;
    tier_case c = {1, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE};
    config_for(&cfg, &c, "");
    cfg.gradient_accumulation_steps = 2;
    model m = {0};
    ck_assert_int_eq(build(&m, &cfg), ZRT_OK);
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    ck_assert_int_eq(forward_backward(&m), ZRT_OK);
    ck_assert_int_eq(zrt_step(m.ctx, &hp), ZRT_OK); /* micro-step 1 of 2 */
    ck_assert_int_eq(zrt_save(m.ctx, dir, NULL), ZRT_ERR_STATE);
    ck_assert_msg(strstr(zrt_last_error(m.ctx), "micro-step"), "%s",
                  zrt_last_error(m.ctx));
    ck_assert_int_eq(forward_backward(&m), ZRT_OK);
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

/* A crashed save leaves step-N.tmp (and no `latest` change); the next save
 * of that step removes it. `latest` names the newest save. */
START_TEST(leftovers_are_cleaned_and_latest_follows)
{
    char dir[64], path[200];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckpt-XXXXXX");
    zrt_config cfg;
    tier_case c = {3, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE};
    config_for(&cfg, &c, "");
    model m = {0};
    ck_assert_int_eq(build(&m, &cfg), ZRT_OK);
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

static Suite *checkpoint_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, resume_is_bit_identical_at_every_stage_and_tier);
    tcase_add_test(tc, a_checkpoint_loads_at_another_stage);
    tcase_add_test(tc, damaged_files_are_refused_by_name_and_change_nothing);
    tcase_add_test(tc, misuse_is_refused_with_a_sentence);
    tcase_add_test(tc, leftovers_are_cleaned_and_latest_follows);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    SRunner *sr = srunner_create(checkpoint_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, world_rank == 0 ? CK_NORMAL : CK_SILENT);
    int failed = srunner_ntests_failed(sr), any_failed = 0;
    srunner_free(sr);
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (failed)
        fprintf(stderr, "rank %d: %d checkpoint tests failed\n", world_rank, failed);
    MPI_Finalize();
    return any_failed ? 1 : 0;
}
