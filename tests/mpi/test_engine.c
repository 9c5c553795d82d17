/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/mpi/test_engine.c — the ZeRO engine across ranks (run under mpirun
 * with 1 to 4 ranks).
 *
 * A synthetic model (odd tensor sizes, a tensor smaller than the world, a
 * layer without parameters) is trained a few steps with a gradient that
 * depends on the parameters and the rank. What users rely on:
 *   - stages 0-3, bucket sizes and overlap settings end bit-identical;
 *   - each rank holds the model-state bytes DESIGN.md's formulas say;
 *   - stage 3 prefetches along the recorded trace within its budget;
 *   - misuse and over-budget runs fail with a clear status and sentence.
 * Check runs without fork (forked children cannot use MPI); every rank runs
 * the same tests in the same order.
 */
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../common/test_check.h"
#include "../common/test_model.h"
#include "zero/ctx.h"
#include "zrt/zrt.h"

/* The rank whose next backward puts an inf into a gradient (fp16 tests). */
static int poison_rank = -1;

static int model_overflows(const model *m, int t)
{
    (void)m;
    return poison_rank == world_rank && t == 0;
}

static void base_config(zrt_config *cfg, int stage)
{
    zrt_config_init(cfg);
    cfg->stage = stage;
    cfg->stage3_param_persistence_threshold = 0;
    cfg->log_level = 0;
}

static int call_zero_grad = 1;

static zrt_status forward_backward(model *m)
{
    if (call_zero_grad)
        ZRT_CHECK(zrt_zero_grad(m->ctx));
    return model_forward_backward(m);
}

static zrt_status train_step(model *m)
{
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    hp.lr = 0.01f;
    ZRT_CHECK(forward_backward(m));
    return zrt_step(m->ctx, &hp);
}

/* A model built from cfg; the build must succeed. */
/* A model built from base_config(stage). */
static model built_at_stage(int stage)
{
    zrt_config cfg;
    base_config(&cfg, stage);
    return built(&cfg);
}

/* A model built from cfg and trained one step (which records the trace). */
static model trained_one_step(const zrt_config *cfg)
{
    model m = built(cfg);
    ck_assert_msg(train_step(&m) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    return m;
}

/* A bare context for base_config(stage): nothing registered yet. */
static zrt_ctx *new_ctx(int stage)
{
    zrt_config cfg;
    base_config(&cfg, stage);
    zrt_ctx *ctx;
    ck_assert_int_eq(zrt_ctx_create(&cfg, &ctx), ZRT_OK);
    return ctx;
}

static zrt_mem_stats mem_stats(zrt_ctx *ctx)
{
    zrt_mem_stats st;
    zrt_get_mem_stats(ctx, &st);
    return st;
}

/* The elements of this rank's shards, summed over the layers. */
static int64_t shard_numel(const zrt_ctx *ctx)
{
    int64_t shard = 0;
    for (int l = 0; l < NLAYERS; l++)
        shard += ctx->plan.layers[l].shard_numel;
    return shard;
}

/* Trains `steps` steps and returns every parameter, gathered, concatenated. */
static float *train_and_read(const zrt_config *cfg, int steps)
{
    return train_and_read_with(cfg, steps, train_step);
}

/* train_and_read of base_config(stage): the reference the variants match. */
static float *train_stage(int stage, int steps)
{
    zrt_config cfg;
    base_config(&cfg, stage);
    return train_and_read(&cfg, steps);
}

/* Training cfg `steps` steps ends with the reference's bits exactly; the
 * printf-style arguments name the case in a failure. */
static void expect_trains_to(const float *reference, const zrt_config *cfg, int steps,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void expect_trains_to(const float *reference, const zrt_config *cfg, int steps,
                             const char *fmt, ...)
{
    char what[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    float *got = train_and_read(cfg, steps);
    assert_same_bits(got, reference, what);
    free(got);
}

START_TEST(stages_are_bit_identical)
{
    float *reference = train_stage(0, 5);
    for (int stage = 1; stage <= 3; stage++) {
        zrt_config cfg;
        base_config(&cfg, stage);
        expect_trains_to(reference, &cfg, 5, "stage %d vs 0", stage);
    }
    /* The parameters moved: the test would notice a step that did nothing. */
    ck_assert_float_ne(reference[0], initial_value(0, 0));
    free(reference);
}
END_TEST

/* zrt_step leaves gradients zeroed: a loop that never calls zero_grad gets
 * the same parameters at every stage. */
START_TEST(step_leaves_gradients_zeroed)
{
    float *reference = train_stage(0, 4);
    call_zero_grad = 0;
    for (int stage = 0; stage <= 3; stage++) {
        zrt_config cfg;
        base_config(&cfg, stage);
        expect_trains_to(reference, &cfg, 4, "stage %d without zero_grad", stage);
    }
    call_zero_grad = 1;
    free(reference);
}
END_TEST

/* Optimizer state (stages 1-3) and parameter shards (stage 3) in host
 * memory: the same bits, and the device tier holds none of them. */
START_TEST(host_offload_is_bit_identical_and_leaves_the_device)
{
    float *reference = train_stage(0, 4);
    for (int stage = 1; stage <= 3; stage++) {
        zrt_config cfg;
        base_config(&cfg, stage);
        cfg.offload_optimizer.device = ZRT_OFFLOAD_CPU;
        if (stage == 3)
            cfg.offload_param.device = ZRT_OFFLOAD_CPU;
        model m = trained_one_step(&cfg);
        zrt_mem_stats st = mem_stats(m.ctx);
        int64_t padded = m.ctx->plan.total_flat_numel, n = world_size;
        ck_assert_int_eq(st.peak[ZRT_TIER_DEVICE][ZRT_CAT_OPTIM], 0);
        ck_assert_int_eq(st.peak[ZRT_TIER_HOST][ZRT_CAT_OPTIM], 8 * padded / n);
        if (stage == 3) {
            ck_assert_int_eq(st.peak[ZRT_TIER_DEVICE][ZRT_CAT_PARAM], 0);
            ck_assert_int_eq(st.peak[ZRT_TIER_HOST][ZRT_CAT_PARAM], 4 * padded / n);
        }
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
        expect_trains_to(reference, &cfg, 4, "stage %d with host offload", stage);
    }
    free(reference);
}
END_TEST

/* pin_memory page-locks exactly the host buffers of the sections that ask. */
START_TEST(pin_memory_locks_the_offloaded_buffers)
{
    for (int pin_param = 0; pin_param < 2; pin_param++) {
        zrt_config cfg;
        base_config(&cfg, 3);
        cfg.offload_optimizer.device = ZRT_OFFLOAD_CPU;
        cfg.offload_optimizer.pin_memory = 1;
        cfg.offload_param.device = ZRT_OFFLOAD_CPU;
        cfg.offload_param.pin_memory = pin_param;
        model m = trained_one_step(&cfg);
        zrt_mem_stats st = mem_stats(m.ctx);
        const int64_t *host = st.current[ZRT_TIER_HOST];
        int64_t expect = host[ZRT_CAT_OPTIM] + host[ZRT_CAT_GRAD] +
                         (pin_param ? host[ZRT_CAT_PARAM] : 0);
        ck_assert_int_gt(expect, 0);
        ck_assert_int_eq((int64_t)zrt__backend_cpu_pinned_bytes(m.ctx->be), expect);
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    }
}
END_TEST

/* ---- NVMe tiers ------------------------------------------------------------- */

static void set_nvme(zrt_offload_config *oc, const char *dir)
{
    oc->device = ZRT_OFFLOAD_NVME;
    snprintf(oc->nvme_path, sizeof oc->nvme_path, "%s", dir);
}

static void make_dir(char *dir)
{
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* This rank's swap directory is gone and the test's directory is empty. */
static void assert_nothing_left(const char *dir)
{
    char rank_dir[96];
    snprintf(rank_dir, sizeof rank_dir, "%s/zrt-rank%d", dir, world_rank);
    ck_assert_msg(access(rank_dir, F_OK) != 0, "%s was left behind", rank_dir);
    ck_assert_int_eq(rmdir(dir), 0);
}

typedef struct offload_case {
    int stage;
    zrt_offload_device optim, param;
} offload_case;

static const offload_case nvme_cases[] = {
    {1, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NONE}, {2, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NONE},
    {3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NONE}, {3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NVME},
    {3, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NVME},  {3, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NVME},
};

static int nvme_in_bf16; /* the NVMe tests below, again with bf16 parameters */

static void nvme_config(zrt_config *cfg, const offload_case *c, const char *dir)
{
    base_config(cfg, c->stage);
    cfg->bf16.enabled = nvme_in_bf16;
    cfg->aio.block_size = 4096;
    cfg->offload_optimizer.device = c->optim;
    if (c->optim == ZRT_OFFLOAD_NVME)
        set_nvme(&cfg->offload_optimizer, dir);
    if (c->param == ZRT_OFFLOAD_NVME)
        set_nvme(&cfg->offload_param, dir);
}

/* What each tier holds with state on NVMe: no moments, and (offloaded)
 * no parameter shard, in memory; the gradient shard follows the optimizer
 * to the host; both slots of every region counted in the nvme tier. */
static void check_nvme_tiers(zrt_ctx *ctx, const offload_case *c)
{
    zrt_mem_stats st = mem_stats(ctx);
    int64_t shard = ctx->plan.total_flat_numel / world_size;
    int64_t shard_bytes = (int64_t)ctx->esize * shard; /* parameters, gradients */
    if (c->optim == ZRT_OFFLOAD_NVME) {
        ck_assert_int_eq(st.peak[ZRT_TIER_DEVICE][ZRT_CAT_OPTIM], 0);
        ck_assert_int_eq(st.peak[ZRT_TIER_HOST][ZRT_CAT_OPTIM], 0);
        ck_assert_int_ge(st.current[ZRT_TIER_NVME][ZRT_CAT_OPTIM], 2 * 2 * 4 * shard);
    }
    if (ctx->esize == 2) /* the master copy stays in memory, twice */
        ck_assert_int_eq(
            st.current[c->optim == ZRT_OFFLOAD_NONE ? ZRT_TIER_DEVICE : ZRT_TIER_HOST]
                      [ZRT_CAT_MASTER],
            2 * 4 * shard);
    if (c->optim != ZRT_OFFLOAD_NONE && c->stage >= 2) {
        ck_assert_int_eq(st.peak[ZRT_TIER_DEVICE][ZRT_CAT_GRAD], 0);
        ck_assert_int_eq(st.peak[ZRT_TIER_HOST][ZRT_CAT_GRAD], shard_bytes);
    }
    if (c->param == ZRT_OFFLOAD_NVME) {
        ck_assert_int_eq(st.peak[ZRT_TIER_DEVICE][ZRT_CAT_PARAM], 0);
        ck_assert_int_eq(st.peak[ZRT_TIER_HOST][ZRT_CAT_PARAM], 0);
        ck_assert_int_ge(st.current[ZRT_TIER_NVME][ZRT_CAT_PARAM], 2 * shard_bytes);
    } else if (c->stage == 3) {
        ck_assert_int_eq(st.peak[ZRT_TIER_DEVICE][ZRT_CAT_PARAM], shard_bytes);
    }
}

/* State in swap files: the same bits as without offload, each tier holding
 * what the config leaves there, and no file left afterwards. */
static void check_nvme_bit_identical(void)
{
    zrt_config cfg;
    base_config(&cfg, 0);
    cfg.bf16.enabled = nvme_in_bf16;
    float *reference = train_and_read(&cfg, 4);
    char dir[] = "/tmp/zrt-test-nvme-XXXXXX";
    make_dir(dir);
    for (size_t i = 0; i < sizeof nvme_cases / sizeof nvme_cases[0]; i++) {
        const offload_case *c = &nvme_cases[i];
        nvme_config(&cfg, c, dir);
        cfg.stage3_prefetch_bucket_size = 200; /* so fetches run ahead */
        model m = trained_one_step(&cfg);
        check_nvme_tiers(m.ctx, c);
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
        expect_trains_to(reference, &cfg, 4,
                         "stage %d, optimizer %d, params %d (0 none 1 cpu 2 nvme)",
                         c->stage, (int)c->optim, (int)c->param);
    }
    assert_nothing_left(dir);
    free(reference);
}

START_TEST(nvme_offload_is_bit_identical)
{
    check_nvme_bit_identical();
}
END_TEST

/* Shards on NVMe are read ahead of their gathers along the recorded trace,
 * at most offload_param.buffer_count reads at once. */
START_TEST(nvme_shards_are_fetched_ahead_along_the_trace)
{
    char dir[] = "/tmp/zrt-test-nvme-XXXXXX";
    make_dir(dir);
    for (int buffers = 1; buffers <= 2; buffers++) {
        zrt_config cfg;
        const offload_case c = {3, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NVME};
        nvme_config(&cfg, &c, dir);
        cfg.stage3_prefetch_bucket_size = 0; /* no gathers ahead: reads only */
        cfg.offload_param.buffer_count = buffers;
        model m = trained_one_step(&cfg);
        ck_assert_int_eq(zrt_forward_begin(m.ctx, 0), ZRT_OK);
        const zrt__layer_state *ls = m.ctx->layers;
        /* the trace goes on 1 (no parameters), 2, 3 */
        ck_assert_int_eq(ls[2].fetch_state, ZRT__FETCH_QUEUED);
        ck_assert_int_eq(ls[3].fetch_state,
                         buffers == 2 ? ZRT__FETCH_QUEUED : ZRT__FETCH_NONE);
        ck_assert_int_eq(m.ctx->fetches_queued, buffers);
        ck_assert_int_eq(zrt_forward_end(m.ctx, 0), ZRT_OK);
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    }
    assert_nothing_left(dir);
}
END_TEST

/* ---- NVMe failures: an error naming the file, and nothing applied ------------ */

typedef enum { FLIP_A_BYTE, TRUNCATE_THE_FILE, FILE_SIZE_LIMIT } breakage;

static void flip_byte_at(const char *file, long offset)
{
    FILE *f = fopen(file, "r+b");
    ck_assert_ptr_nonnull(f);
    unsigned char byte = 0;
    ck_assert_int_eq(fseek(f, offset, SEEK_SET), 0);
    ck_assert_int_eq(fread(&byte, 1, 1, f), 1);
    byte ^= 0x40;
    ck_assert_int_eq(fseek(f, offset, SEEK_SET), 0);
    ck_assert_int_eq(fwrite(&byte, 1, 1, f), 1);
    fclose(f);
}

static void (*saved_sigxfsz)(int) = SIG_DFL;

/* Breaks the last layer's region in the named file: its current slot
 * (flip, truncate), or writes to its next slot (file-size limit). The
 * earlier layers are updated first, so a step that applied layer by layer
 * would show. */
static void break_file(model *m, const char *file, int optim_file, breakage how)
{
    const zrt__layer_state *ls = &m->ctx->layers[NLAYERS - 1];
    int slot = m->ctx->nvme_slot;
    uint64_t current = optim_file ? ls->swap_v[slot] : ls->swap_p[slot];
    uint64_t next = optim_file ? ls->swap_m[slot ^ 1] : ls->swap_p[slot ^ 1];
    if (how == FLIP_A_BYTE)
        flip_byte_at(file, (long)current + 5);
    if (how == TRUNCATE_THE_FILE)
        ck_assert_int_eq(truncate(file, (off_t)current), 0);
    if (how == FILE_SIZE_LIMIT) {
        /* Lowered under an open swap, the limit is met by a write: as a loop
         * that ignores SIGXFSZ would, so it shows as EFBIG, not a signal. */
        saved_sigxfsz = signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {.rlim_cur = next, .rlim_max = RLIM_INFINITY};
        ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    }
}

static void lift_file_size_limit(void)
{
    struct rlimit lim = {.rlim_cur = RLIM_INFINITY, .rlim_max = RLIM_INFINITY};
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

/* The swap files have no name: tests reach them through the descriptor. */
static void swap_file_path(const model *m, int optim_file, char *buf, size_t size)
{
    const zrt__nvme_store *store = optim_file ? &m->ctx->optim_nvme : &m->ctx->param_nvme;
    snprintf(buf, size, "/proc/self/fd/%d", zrt__swap_fd(store->swap));
}

static void expect_failed_step(const offload_case *c, int optim_file, breakage how,
                               const char *cause)
{
    char dir[] = "/tmp/zrt-test-nvme-XXXXXX";
    make_dir(dir);
    zrt_config cfg;
    nvme_config(&cfg, c, dir);
    model m = built(&cfg);
    for (int s = 0; s < 2; s++)
        ck_assert_int_eq(train_step(&m), ZRT_OK);
    float *before = read_all(&m);
    ck_assert_int_eq(forward_backward(&m), ZRT_OK);
    char file[128], reach[64];
    snprintf(file, sizeof file, "%s/zrt-rank%d/%s.swap", dir, world_rank,
             optim_file ? "optim" : "param");
    swap_file_path(&m, optim_file, reach, sizeof reach);
    break_file(&m, reach, optim_file, how);
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    hp.lr = 0.01f;
    zrt_status st = zrt_step(m.ctx, &hp);
    if (how == FILE_SIZE_LIMIT) {
        lift_file_size_limit();
        signal(SIGXFSZ, saved_sigxfsz);
    }
    ck_assert_int_eq(st, ZRT_ERR_IO);
    const char *why = zrt_last_error(m.ctx);
    ck_assert_msg(strstr(why, file) && strstr(why, cause) && strstr(why, "offset"),
                  "expected '%s' and '%s' in: %s", file, cause, why);
    float *after = read_all(&m);
    assert_same_bits(after, before, "parameters after a failed step");
    free(after);
    /* Corrupt state keeps failing; with the limit lifted, a retry trains. */
    ck_assert_int_eq(train_step(&m), how == FILE_SIZE_LIMIT ? ZRT_OK : ZRT_ERR_IO);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    free(before);
    assert_nothing_left(dir);
}

START_TEST(broken_optimizer_swap_fails_the_step_and_changes_nothing)
{
    const offload_case both = {3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NVME};
    const offload_case optim_only = {2, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NONE};
    expect_failed_step(&optim_only, 1, FLIP_A_BYTE, "checksum mismatch");
    expect_failed_step(&both, 1, FLIP_A_BYTE, "checksum mismatch");
    expect_failed_step(&optim_only, 1, TRUNCATE_THE_FILE, "short read");
    expect_failed_step(&both, 1, TRUNCATE_THE_FILE, "short read");
    expect_failed_step(&optim_only, 1, FILE_SIZE_LIMIT, strerror(EFBIG));
    expect_failed_step(&both, 1, FILE_SIZE_LIMIT, strerror(EFBIG));
    const offload_case param_only = {3, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NVME};
    expect_failed_step(&param_only, 0, FILE_SIZE_LIMIT, strerror(EFBIG));
}
END_TEST

/* A parameter shard that does not read back fails the gather that needs it,
 * naming the file, rather than training on wrong values. */
START_TEST(broken_parameter_swap_fails_the_gather)
{
    const breakage hows[2] = {FLIP_A_BYTE, TRUNCATE_THE_FILE};
    const char *causes[2] = {"checksum mismatch", "short read"};
    for (int i = 0; i < 2; i++) {
        char dir[] = "/tmp/zrt-test-nvme-XXXXXX";
        make_dir(dir);
        zrt_config cfg;
        const offload_case c = {3, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NVME};
        nvme_config(&cfg, &c, dir);
        model m = trained_one_step(&cfg);
        char file[128], reach[64];
        snprintf(file, sizeof file, "%s/zrt-rank%d/param.swap", dir, world_rank);
        swap_file_path(&m, 0, reach, sizeof reach);
        break_file(&m, reach, 0, hows[i]);
        zrt_status st = train_step(&m);
        ck_assert_int_eq(st, ZRT_ERR_IO);
        const char *why = zrt_last_error(m.ctx);
        ck_assert_msg(strstr(why, file) && strstr(why, causes[i]), "%s", why);
        for (int l = 0; l < NLAYERS; l++) /* leave no layer live */
            zrt_forward_end(m.ctx, l);
        /* entering the layer again reads its shard again and fails again:
         * what a failed read left behind is never gathered */
        ck_assert_int_eq(zrt_zero_grad(m.ctx), ZRT_OK);
        for (int l = 0; l < NLAYERS - 1; l++) {
            ck_assert_int_eq(zrt_forward_begin(m.ctx, l), ZRT_OK);
            ck_assert_int_eq(zrt_forward_end(m.ctx, l), ZRT_OK);
        }
        ck_assert_int_eq(zrt_forward_begin(m.ctx, NLAYERS - 1), ZRT_ERR_IO);
        zrt_forward_end(m.ctx, NLAYERS - 1);
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
        assert_nothing_left(dir);
    }
}
END_TEST

/* Space is reserved when the files are created: a directory that cannot
 * hold a swap file, or a file-size limit below its size, fails
 * zrt_finalize_params on every rank, naming the path, and leaves nothing.
 * SIGXFSZ stays at its default: the limit is an error, never the signal. */
START_TEST(unusable_swap_directory_fails_at_finalize)
{
    char dir[] = "/tmp/zrt-test-nvme-XXXXXX";
    make_dir(dir);
    char not_a_dir[128];
    snprintf(not_a_dir, sizeof not_a_dir, "%s/file-%d", dir, world_rank);
    FILE *f = fopen(not_a_dir, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    for (int param = 0; param < 2; param++) {
        zrt_config cfg;
        const offload_case c = {3, param ? ZRT_OFFLOAD_NONE : ZRT_OFFLOAD_NVME,
                                param ? ZRT_OFFLOAD_NVME : ZRT_OFFLOAD_NONE};
        nvme_config(&cfg, &c, not_a_dir);
        model m = {0};
        ck_assert_int_eq(build(&m, &cfg), ZRT_ERR_IO);
        ck_assert_msg(strstr(zrt_last_error(m.ctx), not_a_dir), "%s",
                      zrt_last_error(m.ctx));
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);

        nvme_config(&cfg, &c, dir);
        struct rlimit lim = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
        ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
        zrt_status st = build(&m, &cfg);
        lift_file_size_limit();
        ck_assert_int_eq(st, ZRT_ERR_IO);
        const char *why = zrt_last_error(m.ctx);
        ck_assert_msg(strstr(why, param ? "param.swap" : "optim.swap") &&
                          strstr(why, "file-size limit"),
                      "%s", why);
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    }
    ck_assert_int_eq(unlink(not_a_dir), 0);
    assert_nothing_left(dir);
}
END_TEST

/* Offload settings zrt_config_validate refuses, and what its reason says. */
static const struct refused_offload {
    int stage;
    int param; /* the setting is offload_param's (else offload_optimizer's) */
    zrt_offload_device device;
    const char *reason;
} refused_offloads[] = {
    {0, 0, ZRT_OFFLOAD_CPU, "needs stage 1, 2 or 3"},
    {2, 1, ZRT_OFFLOAD_CPU, "needs stage 3"},
    {3, 0, ZRT_OFFLOAD_NVME, "nvme_path' is not set"},
    {3, 1, ZRT_OFFLOAD_NVME, "nvme_path' is not set"},
};

START_TEST(offload_rules_are_enforced)
{
    for (size_t i = 0; i < sizeof refused_offloads / sizeof refused_offloads[0]; i++) {
        const struct refused_offload *r = &refused_offloads[i];
        zrt_config cfg;
        base_config(&cfg, r->stage);
        (r->param ? &cfg.offload_param : &cfg.offload_optimizer)->device = r->device;
        char why[512];
        ck_assert_int_eq(zrt_config_validate(&cfg, why, sizeof why), ZRT_ERR_CONFIG);
        ck_assert_msg(strstr(why, r->reason), "case %zu: %s", i, why);
    }
}
END_TEST

START_TEST(buckets_and_overlap_do_not_change_results)
{
    float *reference = train_stage(2, 4);
    for (int stage = 1; stage <= 3; stage++) {
        for (int overlap = 0; overlap <= 1; overlap++) {
            zrt_config cfg;
            base_config(&cfg, stage);
            cfg.overlap_comm = overlap;
            cfg.reduce_bucket_size = 1;
            cfg.allgather_bucket_size = 1;
            cfg.stage3_prefetch_bucket_size = overlap ? 1000 : 0;
            cfg.stage3_param_persistence_threshold = overlap ? 200 : 0;
            expect_trains_to(reference, &cfg, 4, "stage %d overlap %d small buckets",
                             stage, overlap);
        }
    }
    free(reference);
}
END_TEST

/* ---- memory formulas ------------------------------------------------------- */

static int64_t peak_of(const zrt_mem_stats *s, zrt_category c)
{
    return s->peak[ZRT_TIER_DEVICE][c];
}

static void check_formula(int stage)
{
    zrt_config cfg;
    base_config(&cfg, stage);
    cfg.reduce_bucket_size = 200;
    cfg.stage3_prefetch_bucket_size = 200;
    model m = built(&cfg);
    for (int s = 0; s < 3; s++)
        ck_assert_int_eq(train_step(&m), ZRT_OK);
    zrt_mem_stats st = mem_stats(m.ctx);
    const zrt__plan *plan = &m.ctx->plan;
    int64_t n = world_size, padded = plan->total_flat_numel;
    /* Padding: each tensor starts aligned, each layer splits evenly. */
    int64_t pad_bound = NTENSORS * (plan->alignment - 1) + NLAYERS * n * plan->alignment;
    ck_assert_int_ge(padded, model_numel);
    ck_assert_int_le(padded - model_numel, pad_bound);
    ck_assert_int_eq(padded % n, 0);

    /* DESIGN.md with f32 parameters: 4 (param) + 4 (grad) + 8 (m, v) bytes. */
    int64_t param = stage < 3 ? 4 * padded : 4 * padded / n;
    int64_t grad = stage < 2 ? 4 * padded : 4 * padded / n;
    int64_t optim = stage == 0 ? 8 * padded : 8 * padded / n;
    ck_assert_int_eq(peak_of(&st, ZRT_CAT_PARAM), param);
    ck_assert_int_eq(peak_of(&st, ZRT_CAT_GRAD), grad);
    ck_assert_int_eq(peak_of(&st, ZRT_CAT_OPTIM), optim);
    ck_assert_int_eq(peak_of(&st, ZRT_CAT_MASTER), 0);
    ck_assert_int_eq(peak_of(&st, ZRT_CAT_PARAM_PERSIST), 0);

    /* Bounded buffers: one live layer plus the configured bucket. */
    int64_t largest = plan->max_flat_numel;
    int64_t gather = peak_of(&st, ZRT_CAT_PARAM_GATHER);
    int64_t bucket = peak_of(&st, ZRT_CAT_GRAD_BUCKET);
    if (stage < 3)
        ck_assert_int_eq(gather, 0);
    else
        ck_assert_int_le(gather, 4 * (largest + cfg.stage3_prefetch_bucket_size));
    if (stage < 2)
        ck_assert_int_eq(bucket, 0);
    else
        ck_assert_int_le(bucket, 4 * (largest + cfg.reduce_bucket_size));
    if (n > 1 && stage >= 2)
        ck_assert_int_gt(bucket, 0);

    /* The formulas in Ψ, within padding: 16Ψ, 8Ψ+8Ψ/N, 4Ψ+12Ψ/N, 16Ψ/N. */
    double psi = (double)model_numel;
    double formula[4] = {16 * psi, 8 * psi + 8 * psi / n, 4 * psi + 12 * psi / n,
                         16 * psi / n};
    double states = (double)(param + grad + optim);
    ck_assert_double_ge(states, formula[stage] - 1e-9);
    ck_assert_double_le(states, formula[stage] + 16.0 * pad_bound);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
}

START_TEST(model_state_bytes_follow_the_formulas)
{
    for (int stage = 0; stage <= 3; stage++)
        check_formula(stage);
}
END_TEST

/* ---- stage 3 prefetch and persistence ----------------------------------------- */

static int64_t gathered_now(zrt_ctx *ctx)
{
    return mem_stats(ctx).current[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_GATHER];
}

static void check_prefetch(int64_t budget, int expect_prefetch)
{
    zrt_config cfg;
    base_config(&cfg, 3);
    cfg.stage3_prefetch_bucket_size = budget;
    model m = trained_one_step(&cfg);
    int64_t layer0 = 4 * m.ctx->plan.layers[0].flat_numel;
    int64_t layer2 = 4 * m.ctx->plan.layers[2].flat_numel;
    ck_assert_int_eq(zrt_forward_begin(m.ctx, 0), ZRT_OK);
    int64_t expected = layer0 + (expect_prefetch ? layer2 : 0);
    ck_assert_int_eq(gathered_now(m.ctx), expected);
    ck_assert_int_eq(zrt_forward_end(m.ctx, 0), ZRT_OK);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
}

START_TEST(stage3_prefetches_next_layer_within_budget)
{
    check_prefetch(0, 0); /* no budget: only the live layer */
    /* 200 elements hold layer 2 (144-192 padded elements on 1-4 ranks), the
     * next with parameters, but not layer 3 as well (304-336 more). */
    check_prefetch(200, 1);
}
END_TEST

START_TEST(stage3_persistent_layers_stay_gathered)
{
    zrt_config cfg;
    base_config(&cfg, 3);
    cfg.stage3_param_persistence_threshold = 150; /* layer 2 (133), not 0 (188) or 3 */
    model m = trained_one_step(&cfg);
    zrt_mem_stats st = mem_stats(m.ctx);
    ck_assert_int_eq(st.current[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_PERSIST],
                     4 * m.ctx->plan.layers[2].flat_numel);
    ck_assert_int_eq(st.current[ZRT_TIER_DEVICE][ZRT_CAT_PARAM_GATHER], 0);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
}
END_TEST

/* ---- misuse ------------------------------------------------------------------ */

static void expect_error(zrt_ctx *ctx, zrt_status got, zrt_status want,
                         const char *needle)
{
    ck_assert_msg(got == want, "got %s, want %s (%s)", zrt_status_str(got),
                  zrt_status_str(want), zrt_last_error(ctx));
    ck_assert_msg(strstr(zrt_last_error(ctx), needle), "'%s' lacks '%s'",
                  zrt_last_error(ctx), needle);
}

START_TEST(misuse_is_refused_with_a_sentence)
{
    model m = built_at_stage(3);
    zrt_ctx *ctx = m.ctx;
    void *ptr;
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    expect_error(ctx, zrt_param_data(ctx, m.p[0], &ptr), ZRT_ERR_STATE, "not live");
    expect_error(ctx, zrt_forward_begin(ctx, 9), ZRT_ERR_INVALID_ARG, "layer 9");
    zrt_param_desc late = {.name = "late", .ndim = 1, .shape = {4}, .layer = 0};
    zrt_param handle;
    expect_error(ctx, zrt_param_register(ctx, &late, &handle), ZRT_ERR_STATE,
                 "after zrt_finalize_params");
    ck_assert_int_eq(zrt_forward_begin(ctx, 0), ZRT_OK);
    expect_error(ctx, zrt_grad_data(ctx, m.p[0], &ptr), ZRT_ERR_STATE, "not in backward");
    expect_error(ctx, zrt_step(ctx, &hp), ZRT_ERR_STATE, "layer 0 is still live");
    expect_error(ctx, zrt_ctx_destroy(ctx), ZRT_ERR_STATE, "still live");
    ck_assert_int_eq(zrt_forward_end(ctx, 0), ZRT_OK);
    ck_assert_int_eq(backward_layer(&m, 3), ZRT_OK);
    expect_error(ctx, zrt_backward_begin(ctx, 3), ZRT_ERR_STATE, "already ran backward");
    hp.beta1 = 1.5f;
    expect_error(ctx, zrt_step(ctx, &hp), ZRT_ERR_INVALID_ARG, "beta1 1.5");
    ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
}
END_TEST

START_TEST(bad_parameter_descriptions_are_refused)
{
    zrt_ctx *ctx = new_ctx(1);
    zrt_param h = -7;
    zrt_param_desc d = {.name = "w", .ndim = 2, .shape = {3, 0}, .layer = 0};
    expect_error(ctx, zrt_param_register(ctx, &d, &h), ZRT_ERR_INVALID_ARG,
                 "'w' dimension 1 is 0");
    ck_assert_int_eq(h, -7); /* out untouched on failure */
    d.shape[1] = 2;
    d.dtype = ZRT_BF16;
    expect_error(ctx, zrt_param_register(ctx, &d, &h), ZRT_ERR_INVALID_ARG,
                 "'w' is bf16 but this context trains f32 parameters");
    d.dtype = ZRT_F32;
    ck_assert_int_eq(zrt_param_register(ctx, &d, &h), ZRT_OK);
    expect_error(ctx, zrt_param_register(ctx, &d, &h), ZRT_ERR_INVALID_ARG,
                 "already registered");
    ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
}
END_TEST

/* ---- budget ------------------------------------------------------------------- */

START_TEST(stage0_over_budget_fails_on_every_rank_stage3_fits)
{
    /* Stage 0 needs 16 bytes per padded element: 10752 to 12288 bytes for
     * 1 to 4 ranks. Stage 3 needs 16/N of that plus a gathered layer, two
     * gradient buckets and one reduction's scratch: at most 9472 bytes. */
    int64_t budget = 10500;
    zrt_config cfg;
    base_config(&cfg, 0);
    cfg.device_mem_limit = budget;
    model m = {0};
    zrt_status st = build(&m, &cfg);
    /* the plan refuses it on every rank, before anything is allocated */
    ck_assert_msg(st == ZRT_ERR_OUT_OF_MEMORY, "got %s", zrt_status_str(st));
    const char *why = zrt_last_error(m.ctx);
    ck_assert_msg(strstr(why, "device memory budget exceeded by the memory plan: "
                              "stage 0 needs") &&
                      strstr(why, "param ") && strstr(why, "optim ") &&
                      strstr(why, "nothing was allocated"),
                  "%s", why);
    zrt_mem_stats ms = mem_stats(m.ctx);
    ck_assert_int_eq(ms.tier_peak[ZRT_TIER_DEVICE], 0);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    if (world_size == 1)
        return; /* stage 3 on one rank holds everything too */
    base_config(&cfg, 3);
    cfg.device_mem_limit = budget;
    cfg.stage3_prefetch_bucket_size = 0;
    cfg.reduce_bucket_size = 0;
    model m3 = built(&cfg);
    for (int s = 0; s < 2; s++)
        ck_assert_msg(train_step(&m3) == ZRT_OK, "%s", zrt_last_error(m3.ctx));
    ck_assert_int_eq(zrt_ctx_destroy(m3.ctx), ZRT_OK);
}
END_TEST

/* ---- the memory plan ---------------------------------------------------------- */

static void expect_plan_equals_measured(const zrt_config *cfg, const char *what)
{
    model m = {0};
    zrt_mem_plan before, after;
    ck_assert_msg(build(&m, cfg) == ZRT_OK, "%s: %s", what, zrt_last_error(m.ctx));
    ck_assert_int_eq(zrt_plan_memory(m.ctx, &before), ZRT_OK);
    call_zero_grad = 0; /* once per optimizer step, below */
    for (int s = 0; s < 4; s++) {
        ck_assert_int_eq(zrt_zero_grad(m.ctx), ZRT_OK);
        for (int k = 0; k < cfg->gradient_accumulation_steps; k++)
            ck_assert_msg(train_step(&m) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    }
    call_zero_grad = 1;
    ck_assert_int_eq(zrt_plan_memory(m.ctx, &after), ZRT_OK);
    ck_assert_int_eq(memcmp(&before, &after, sizeof before), 0);
    zrt_mem_stats ms = mem_stats(m.ctx);
    expect_peaks_as_planned(&ms, &before, what);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
}

START_TEST(plan_equals_measured_peaks)
{
    char dir[] = "/tmp/zrt-plan-XXXXXX", what[160];
    make_dir(dir);
    for (int stage = 0; stage <= 3; stage++) {
        for (int variant = 0; variant < 14; variant++) {
            zrt_config cfg;
            base_config(&cfg, stage);
            if (variant == 1) { /* small buckets: reductions complete early */
                cfg.reduce_bucket_size = 200;
                cfg.stage3_prefetch_bucket_size = 400;
            }
            if (variant == 2)
                cfg.overlap_comm = 0;
            if (variant == 3 && stage > 0)
                cfg.offload_optimizer.device = ZRT_OFFLOAD_CPU;
            if (variant == 4 && stage == 3) {
                set_nvme(&cfg.offload_param, dir);
                set_nvme(&cfg.offload_optimizer, dir);
                cfg.stage3_param_persistence_threshold = 100; /* layer 0 stays */
            }
            if (variant == 5) { /* micro-steps; small buckets */
                cfg.gradient_accumulation_steps = 3;
                cfg.reduce_bucket_size = 200;
            }
            if (variant == 6) /* micro-steps; reductions outlive a micro-step */
                cfg.gradient_accumulation_steps = 2;
            if (variant == 8 && stage == 3) { /* bf16, both on NVMe */
                cfg.bf16.enabled = 1;
                set_nvme(&cfg.offload_param, dir);
                set_nvme(&cfg.offload_optimizer, dir);
            }
            /* 9-13: the optimizer alone on NVMe, the parameters alone on
             * NVMe (moments in memory), each in f32 and bf16; bf16 in memory */
            cfg.bf16.enabled |= variant >= 11;
            if ((variant == 9 || variant == 12) && stage > 0)
                set_nvme(&cfg.offload_optimizer, dir);
            if ((variant == 10 || variant == 13) && stage == 3)
                set_nvme(&cfg.offload_param, dir);
            if (variant == 7 && stage > 0) { /* micro-steps, optimizer on the host */
                cfg.gradient_accumulation_steps = 2;
                cfg.offload_optimizer.device = ZRT_OFFLOAD_CPU;
            }
            if ((variant == 3 && stage == 0) || (variant == 4 && stage != 3) ||
                (variant == 7 && stage == 0) || (variant == 8 && stage != 3) ||
                ((variant == 9 || variant == 12) && stage == 0) ||
                ((variant == 10 || variant == 13) && stage != 3))
                continue;
            snprintf(what, sizeof what, "stage %d, variant %d", stage, variant);
            expect_plan_equals_measured(&cfg, what);
        }
    }
    assert_nothing_left(dir);
    rmdir(dir);
}
END_TEST

START_TEST(a_declared_step_is_checked_and_followed)
{
    zrt_ctx *ctx = new_ctx(3);
    zrt_layer_call wrong[] = {{ZRT_FORWARD_BEGIN, 0}, {ZRT_BACKWARD_END, 0}};
    ck_assert_int_eq(zrt_declare_step(ctx, wrong, 2), ZRT_OK);
    zrt_param h;
    zrt_param_desc d = {.name = "w", .ndim = 1, .shape = {10}, .layer = 0};
    ck_assert_int_eq(zrt_param_register(ctx, &d, &h), ZRT_OK);
    zrt_mem_plan p;
    expect_error(ctx, zrt_plan_memory(ctx, &p), ZRT_ERR_INVALID_ARG,
                 "declared step: call 1 (backward_end of layer 0): layer 0 is not in "
                 "backward");
    expect_error(ctx, zrt_finalize_params(ctx), ZRT_ERR_INVALID_ARG, "call 1");
    ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
}
END_TEST

/* The plan follows the communicator: on the cuda backend NCCL reduces in
 * place (no scratch of ours on the device), the gradient norm's one-float
 * all-reduce goes through MPI in host memory, MPI for everything keeps its
 * reduction scratch in host memory, and the backend's bounce buffer is a
 * fixed host/staging line. Planned here on the cpu backend's context with a
 * cuda config, which is what finalize does on a GPU. */
START_TEST(the_plan_follows_the_communicator)
{
    model m = built_at_stage(2);
    int world = m.ctx->comm->size;
    zrt_mem_plan cpu, nccl, mpi;
    ck_assert_int_eq(zrt__plan_for(m.ctx, &m.ctx->cfg, &m.ctx->plan, &cpu), ZRT_OK);
    zrt_config gpu = m.ctx->cfg;
    snprintf(gpu.backend, sizeof gpu.backend, "cuda");
    ck_assert_int_eq(zrt__plan_for(m.ctx, &gpu, &m.ctx->plan, &nccl), ZRT_OK);
    gpu.communicator = ZRT_COMM_MPI;
    ck_assert_int_eq(zrt__plan_for(m.ctx, &gpu, &m.ctx->plan, &mpi), ZRT_OK);
    const int D = ZRT_TIER_DEVICE, H = ZRT_TIER_HOST;
    ck_assert_int_eq(nccl.peak[D][ZRT_CAT_COMM], 0);
    ck_assert_int_eq(mpi.peak[D][ZRT_CAT_COMM], 0);
    /* the bounce buffer on top of the checkpoint window both backends hold */
    ck_assert_int_eq(nccl.peak[H][ZRT_CAT_STAGING],
                     (int64_t)ZRT__CUDA_BOUNCE_BYTES + cpu.peak[H][ZRT_CAT_STAGING]);
    ck_assert_int_eq(nccl.peak[D][ZRT_CAT_GRAD_BUCKET], cpu.peak[D][ZRT_CAT_GRAD_BUCKET]);
    if (world > 1) {
        ck_assert_int_gt(cpu.peak[D][ZRT_CAT_COMM], 2 * world * (int64_t)sizeof(float));
        ck_assert_int_eq(nccl.peak[H][ZRT_CAT_COMM], 2 * world * (int64_t)sizeof(float));
        ck_assert_int_eq(mpi.peak[H][ZRT_CAT_COMM], cpu.peak[D][ZRT_CAT_COMM]);
        ck_assert_int_lt(nccl.tier_peak[D], cpu.tier_peak[D]);
    } else {
        ck_assert_int_eq(nccl.peak[H][ZRT_CAT_COMM], 0);
    }
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
}
END_TEST

/* The device peak zrt_plan_memory gives the model at base_config(stage). */
static int64_t planned_device_peak(int stage)
{
    model m = built_at_stage(stage);
    zrt_mem_plan p;
    ck_assert_int_eq(zrt_plan_memory(m.ctx, &p), ZRT_OK);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    return p.tier_peak[ZRT_TIER_DEVICE];
}

/* A buffer the loop did not declare passes the budget: the error says what
 * the plan expected, and what the category holds. */
START_TEST(an_undeclared_buffer_over_budget_quotes_the_plan)
{
    zrt_config cfg;
    base_config(&cfg, 2);
    cfg.device_mem_limit = planned_device_peak(2) + 100;
    model m = built(&cfg);
    zrt_mem_stats ms = mem_stats(m.ctx);
    size_t over = (size_t)(cfg.device_mem_limit - ms.tier_current[ZRT_TIER_DEVICE]) + 1;
    void *buf = NULL;
    expect_error(m.ctx, zrt_buffer_alloc(m.ctx, over, ZRT_CAT_ACTIVATION, &buf),
                 ZRT_ERR_OUT_OF_MEMORY, "The plan expected a device peak of");
    ck_assert_ptr_null(buf);
    ck_assert_msg(strstr(zrt_last_error(m.ctx), "with 'activation' at most 0 bytes"),
                  "%s", zrt_last_error(m.ctx));
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
}
END_TEST

/* ---- accumulation and clipping ------------------------------------------------- */

/* Sample s's gradient of element i: a smooth function of the parameter. */
static float sample_grad(float p, int64_t i, int s)
{
    return sinf(p * (float)(s + 1) * 0.37f) + 0.001f * (float)((i + s) % 7);
}

/* Backward of every layer for samples [first, first + count) of this rank,
 * the mean over them, times `scale`. */
static zrt_status backward_batch(model *m, int first, int count, float scale)
{
    for (int l = NLAYERS - 1; l >= 0; l--) {
        ZRT_CHECK(zrt_backward_begin(m->ctx, l));
        for (int t = 0; t < NTENSORS; t++) {
            if (layer_of[t] != l)
                continue;
            float *p, *g;
            ZRT_CHECK(zrt_param_data(m->ctx, m->p[t], (void **)&p));
            ZRT_CHECK(zrt_grad_data(m->ctx, m->p[t], (void **)&g));
            for (int64_t i = 0; i < shapes[t][0] * shapes[t][1]; i++) {
                float sum = 0;
                for (int s = first; s < first + count; s++)
                    sum += sample_grad(p[i], i, s + 1000 * world_rank);
                g[i] += scale * sum / (float)count;
            }
        }
        ZRT_CHECK(zrt_backward_end(m->ctx, l));
    }
    return ZRT_OK;
}

/* `steps` optimizer steps of `micro` micro-steps of `batch` samples each;
 * scales[k] multiplies step k's gradients (NULL: 1). */
static float *train_batches(const zrt_config *cfg, int steps, int micro, int batch,
                            const float *scales, float *norms)
{
    model m = built(cfg);
    zrt_adamw hp;
    zrt_adamw_init(&hp);
    hp.lr = 0.01f;
    hp.eps = 0.05f; /* comparable to the gradients: the update depends on their scale */
    for (int s = 0; s < steps; s++) {
        ck_assert_int_eq(zrt_zero_grad(m.ctx), ZRT_OK);
        for (int k = 0; k < micro; k++) {
            int boundary = -1;
            ck_assert_int_eq(zrt_is_accumulation_boundary(m.ctx, &boundary), ZRT_OK);
            ck_assert_int_eq(boundary, k == micro - 1);
            for (int l = 0; l < NLAYERS; l++) {
                ck_assert_int_eq(zrt_forward_begin(m.ctx, l), ZRT_OK);
                ck_assert_int_eq(zrt_forward_end(m.ctx, l), ZRT_OK);
            }
            zrt_status st = backward_batch(&m, (s * micro + k) * batch, batch,
                                           scales ? scales[s] : 1.0f);
            ck_assert_msg(st == ZRT_OK, "%s", zrt_last_error(m.ctx));
            ck_assert_msg(zrt_step(m.ctx, &hp) == ZRT_OK, "%s", zrt_last_error(m.ctx));
        }
        if (norms)
            ck_assert_int_eq(zrt_last_grad_norm(m.ctx, &norms[s]), ZRT_OK);
    }
    float *out = read_all(&m);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    return out;
}

/* Norm-wise: ||a - b|| <= rel ||b||. Element-wise would be the wrong test:
 * where Adam's first moment nearly cancels, m / sqrt(v) magnifies a 1e-7
 * difference in the gradient many times, in those few elements only. */
static void assert_close(const float *a, const float *b, double rel, const char *what)
{
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < model_numel; i++) {
        diff += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        norm += (double)b[i] * b[i];
    }
    ck_assert_msg(sqrt(diff) <= rel * sqrt(norm),
                  "%s, %d ranks: relative difference %.3g", what, world_size,
                  sqrt(diff / norm));
}

START_TEST(accumulated_micro_steps_equal_one_large_batch)
{
    for (int stage = 0; stage <= 3; stage++) {
        for (int offload = 0; offload < 3; offload++) {
            if (offload == 1 && stage == 0)
                continue;
            zrt_config cfg;
            base_config(&cfg, stage);
            /* offload 2: default buckets, so reductions outlive micro-steps */
            if (offload < 2)
                cfg.reduce_bucket_size = 300;
            if (offload == 1)
                cfg.offload_optimizer.device = ZRT_OFFLOAD_CPU;
            float *large = train_batches(&cfg, 3, 1, 12, NULL, NULL);
            cfg.gradient_accumulation_steps = 4;
            float *micro = train_batches(&cfg, 3, 4, 3, NULL, NULL);
            char what[64];
            snprintf(what, sizeof what, "stage %d%s, 4 x 3 against 1 x 12", stage,
                     offload == 1   ? ", optimizer on the host"
                     : offload == 2 ? ", default buckets"
                                    : "");
            assert_close(micro, large, 1e-6, what);
            free(large);
            free(micro);
        }
    }
}
END_TEST

/* With the optimizer on the host, stages 2-3 accumulate the gradient shard on
 * the device and the host holds the optimizer's copy; without micro-steps
 * the shard lives on the host alone. */
START_TEST(offloaded_accumulation_keeps_the_shard_on_the_device)
{
    for (int k = 1; k <= 2; k++) {
        zrt_config cfg;
        base_config(&cfg, 2);
        cfg.offload_optimizer.device = ZRT_OFFLOAD_CPU;
        cfg.gradient_accumulation_steps = k;
        model m = built(&cfg);
        int64_t shard = shard_numel(m.ctx);
        zrt_mem_stats ms = mem_stats(m.ctx);
        ck_assert_int_eq(ms.current[ZRT_TIER_DEVICE][ZRT_CAT_GRAD],
                         k == 1 ? 0 : 4 * shard);
        ck_assert_int_eq(ms.current[ZRT_TIER_HOST][ZRT_CAT_GRAD], 4 * shard);
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    }
}
END_TEST

/* The norm is the gradient's (averaged over ranks), and clipping equals
 * the loop scaling its gradients by clip / (norm + 1e-6) when norm > clip. */
static void check_clipping(int stage)
{
    zrt_config cfg;
    base_config(&cfg, stage);
    float norms[3], norms_unclipped[3], scales[3];
    float *plain = train_batches(&cfg, 3, 1, 4, NULL, norms_unclipped);
    cfg.gradient_clipping = 0.5f;
    float *clipped = train_batches(&cfg, 3, 1, 4, NULL, norms);
    ck_assert_msg(fabsf(norms[0] - norms_unclipped[0]) <= 1e-6f * norms[0],
                  "the first norm does not depend on clipping: %g vs %g",
                  (double)norms[0], (double)norms_unclipped[0]);
    for (int s = 0; s < 3; s++) {
        ck_assert_msg(norms[s] > 0.5f, "step %d: norm %g is under the limit", s,
                      (double)norms[s]);
        scales[s] = 0.5f / (norms[s] + 1e-6f);
    }
    cfg.gradient_clipping = 0.0f;
    float *by_hand = train_batches(&cfg, 3, 1, 4, scales, NULL);
    char what[64];
    snprintf(what, sizeof what, "stage %d, clipped against scaled by hand", stage);
    assert_close(clipped, by_hand, 1e-6, what);
    int differs = 0;
    for (int64_t i = 0; i < model_numel; i++)
        differs |= clipped[i] != plain[i];
    ck_assert_msg(differs, "stage %d: clipping changed nothing", stage);
    free(plain);
    free(clipped);
    free(by_hand);
}

START_TEST(clipping_scales_the_gradients_to_the_limit)
{
    for (int stage = 0; stage <= 3; stage++)
        check_clipping(stage);
}
END_TEST

/* The norm against the gradients zrt_grad_read returns. */
START_TEST(grad_norm_is_the_global_norm)
{
    for (int stage = 0; stage <= 3; stage++) {
        model m = built_at_stage(stage);
        ck_assert_int_eq(zrt_zero_grad(m.ctx), ZRT_OK);
        for (int l = 0; l < NLAYERS; l++) {
            ck_assert_int_eq(zrt_forward_begin(m.ctx, l), ZRT_OK);
            ck_assert_int_eq(zrt_forward_end(m.ctx, l), ZRT_OK);
        }
        ck_assert_int_eq(backward_batch(&m, 0, 2, 1.0f), ZRT_OK);
        char what[32];
        snprintf(what, sizeof what, "stage %d", stage);
        expect_step_norm_is_the_gradients(&m, what);
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    }
}
END_TEST

/* ---- mixed precision -------------------------------------------------------- */

START_TEST(bf16_stages_agree_and_track_f32)
{
    float *f32 = train_stage(0, 10);
    float *first = NULL;
    zrt_config cfg;
    for (int stage = 0; stage <= 3; stage++) {
        base_config(&cfg, stage);
        cfg.bf16.enabled = 1;
        cfg.reduce_bucket_size = 300;
        float *got = train_and_read(&cfg, 10);
        char what[64];
        snprintf(what, sizeof what, "bf16 stage %d against stage 0", stage);
        if (first)
            assert_same_bits(got, first, what);
        else
            first = got;
        if (got != first)
            free(got);
    }
    assert_close(first, f32, 2e-2, "bf16 against f32 after 10 steps");
    /* reduce_dtype fp32: the ordered reduction already sums in f32 */
    base_config(&cfg, 2);
    cfg.bf16.enabled = 1;
    cfg.reduce_bucket_size = 300;
    cfg.reduce_dtype = ZRT_F32;
    float *fp32_reduce = train_and_read(&cfg, 10);
    assert_same_bits(fp32_reduce, first, "bf16 with reduce_dtype fp32");
    free(fp32_reduce);
    free(first);
    free(f32);
}
END_TEST

/* Bytes per element: 2 for parameters and gradients, 4 for the master copy
 * and each moment; the plan says the same. */
START_TEST(bf16_holds_two_bytes_a_parameter_and_a_master_copy)
{
    zrt_config cfg;
    base_config(&cfg, 1);
    cfg.bf16.enabled = 1;
    expect_plan_equals_measured(&cfg, "bf16 stage 1");
    cfg.stage = 3;
    cfg.offload_optimizer.device = ZRT_OFFLOAD_CPU;
    expect_plan_equals_measured(&cfg, "bf16 stage 3, optimizer on the host");
    model m = built(&cfg);
    zrt_mem_stats ms = mem_stats(m.ctx);
    int64_t shard = shard_numel(m.ctx);
    ck_assert_int_eq(ms.current[ZRT_TIER_DEVICE][ZRT_CAT_PARAM], 2 * shard);
    ck_assert_int_eq(ms.current[ZRT_TIER_HOST][ZRT_CAT_GRAD], 2 * shard);
    ck_assert_int_eq(ms.current[ZRT_TIER_HOST][ZRT_CAT_MASTER], 4 * shard);
    ck_assert_int_eq(ms.current[ZRT_TIER_HOST][ZRT_CAT_OPTIM], 8 * shard);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
}
END_TEST

/* An inf on one rank skips the step on every rank, parameters untouched;
 * the scale halves once the hysteresis is used up; training then goes on. */
START_TEST(fp16_overflow_skips_the_step_on_every_rank)
{
    for (int hysteresis = 1; hysteresis <= 2; hysteresis++) {
        zrt_config cfg;
        base_config(&cfg, 2);
        cfg.fp16.enabled = 1;
        cfg.fp16.initial_scale_power = 8;
        cfg.fp16.hysteresis = hysteresis;
        model m = trained_one_step(&cfg);
        float *before = read_all(&m), scale;
        long skipped;
        for (int k = 0; k < hysteresis; k++) {
            poison_rank = world_size - 1;
            ck_assert_msg(train_step(&m) == ZRT_OK, "%s", zrt_last_error(m.ctx));
            poison_rank = -1;
            float *after = read_all(&m);
            assert_same_bits(after, before, "parameters after a skipped step");
            free(after);
        }
        ck_assert_int_eq(zrt_skipped_steps(m.ctx, &skipped), ZRT_OK);
        ck_assert_int_eq(skipped, hysteresis);
        ck_assert_int_eq(zrt_loss_scale(m.ctx, &scale), ZRT_OK);
        ck_assert_float_eq(scale, 128.0f);
        ck_assert_int_eq(train_step(&m), ZRT_OK);
        float *trained = read_all(&m);
        int changed = 0;
        for (int64_t i = 0; i < model_numel; i++)
            changed |= trained[i] != before[i];
        ck_assert_msg(changed, "the step after the overflow changed nothing");
        zrt_skipped_steps(m.ctx, &skipped);
        ck_assert_int_eq(skipped, hysteresis);
        free(before);
        free(trained);
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    }
}
END_TEST

/* bf16 with state on NVMe: the same bits as bf16 in memory, and a broken
 * swap file or a failed write changes nothing; once the limit is lifted the
 * retried step trains. (16-bit steps start from the master copy in memory,
 * so they read no parameter shard: a damaged shard fails the next gather,
 * which the f32 tests cover.) */
START_TEST(bf16_nvme_offload_is_bit_identical_and_all_or_nothing)
{
    nvme_in_bf16 = 1;
    check_nvme_bit_identical();
    expect_failed_step(&nvme_cases[1], 1, FLIP_A_BYTE, "checksum mismatch");
    expect_failed_step(&nvme_cases[3], 0, FILE_SIZE_LIMIT, "File too large");
    /* moments in memory: the commit must not have touched them */
    expect_failed_step(&nvme_cases[5], 0, FILE_SIZE_LIMIT, "File too large");
    nvme_in_bf16 = 0;
}
END_TEST

START_TEST(mixed_precision_refusals_name_the_cause)
{
    zrt_config cfg;
    base_config(&cfg, 3);
    cfg.bf16.enabled = 1;
    zrt_ctx *ctx;
    ck_assert_int_eq(zrt_ctx_create(&cfg, &ctx), ZRT_OK);
    zrt_param h;
    zrt_param_desc d = {.name = "w", .ndim = 1, .shape = {8}, .dtype = ZRT_F32};
    expect_error(ctx, zrt_param_register(ctx, &d, &h), ZRT_ERR_INVALID_ARG,
                 "'w' is f32 but this context trains bf16 parameters");
    ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
}
END_TEST

/* "stage": "auto" with a rank that declares more than the others: every
 * rank takes the same rung, the first that fits on all of them. */
START_TEST(stage_auto_agrees_across_ranks)
{
    zrt_config cfg;
    base_config(&cfg, ZRT_STAGE_AUTO);
    cfg.device_mem_limit = planned_device_peak(0) + 64; /* stage 0 fits, 64 bytes spare */
    zrt_ctx *ctx;
    ck_assert_int_eq(zrt_ctx_create(&cfg, &ctx), ZRT_OK);
    zrt_param params[NTENSORS];
    ck_assert_int_eq(register_params(ctx, ZRT_F32, "t", shapes[0][0], params), ZRT_OK);
    if (world_rank == 0) /* only rank 0 is over stage 0's budget */
        ck_assert_int_eq(zrt_declare_buffer(ctx, ZRT_CAT_ACTIVATION, 4096), ZRT_OK);
    zrt_mem_plan p;
    ck_assert_int_eq(zrt_plan_memory(ctx, &p), ZRT_ERR_STATE); /* auto: after finalize */
    ck_assert_msg(zrt_finalize_params(ctx) == ZRT_OK, "%s", zrt_last_error(ctx));
    zrt_config used;
    zrt_get_config(ctx, &used);
    ck_assert_int_gt(used.stage, 0);
    float stage = (float)used.stage, sum = stage;
    ck_assert_int_eq(zrt_allreduce_f32(ctx, &sum, 1, ZRT_SUM), ZRT_OK);
    ck_assert_msg(sum == stage * (float)world_size, "ranks chose different stages");
    ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
}
END_TEST

START_TEST(allreduce_averages_in_rank_order)
{
    zrt_ctx *ctx = new_ctx(0);
    float v[3] = {(float)world_rank, 1.0f, 0.1f * (float)(world_rank + 1)};
    ck_assert_int_eq(zrt_allreduce_f32(ctx, v, 3, ZRT_AVG), ZRT_OK);
    float expect0 = 0, expect2 = 0;
    for (int r = 0; r < world_size; r++) {
        expect0 += (float)r;
        expect2 += 0.1f * (float)(r + 1);
    }
    ck_assert_float_eq(v[0], expect0 / (float)world_size);
    ck_assert_float_eq(v[1], 1.0f);
    ck_assert_float_eq(v[2], expect2 / (float)world_size);
    ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
}
END_TEST

int main(int argc, char **argv)
{
    /* The program owns MPI here so every context shares one MPI lifetime. */
    zrt_check_mpi_init(&argc, &argv, &world_rank, &world_size);
    Suite *s = ZRT_CHECK_SUITE(
        "engine", 240, stages_are_bit_identical, step_leaves_gradients_zeroed,
        host_offload_is_bit_identical_and_leaves_the_device,
        pin_memory_locks_the_offloaded_buffers, nvme_offload_is_bit_identical,
        broken_optimizer_swap_fails_the_step_and_changes_nothing,
        broken_parameter_swap_fails_the_gather,
        nvme_shards_are_fetched_ahead_along_the_trace,
        unusable_swap_directory_fails_at_finalize, offload_rules_are_enforced,
        buckets_and_overlap_do_not_change_results, model_state_bytes_follow_the_formulas,
        stage3_prefetches_next_layer_within_budget,
        stage3_persistent_layers_stay_gathered, misuse_is_refused_with_a_sentence,
        bad_parameter_descriptions_are_refused,
        stage0_over_budget_fails_on_every_rank_stage3_fits,
        allreduce_averages_in_rank_order, plan_equals_measured_peaks,
        a_declared_step_is_checked_and_followed,
        an_undeclared_buffer_over_budget_quotes_the_plan,
        accumulated_micro_steps_equal_one_large_batch,
        offloaded_accumulation_keeps_the_shard_on_the_device,
        clipping_scales_the_gradients_to_the_limit, grad_norm_is_the_global_norm,
        bf16_stages_agree_and_track_f32,
        bf16_holds_two_bytes_a_parameter_and_a_master_copy,
        fp16_overflow_skips_the_step_on_every_rank,
        mixed_precision_refusals_name_the_cause,
        bf16_nvme_offload_is_bit_identical_and_all_or_nothing,
        stage_auto_agrees_across_ranks, the_plan_follows_the_communicator);
    int rc = zrt_check_main_mpi(s, "engine");
    MPI_Finalize();
    return rc;
}
