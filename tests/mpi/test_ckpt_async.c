/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/mpi/test_ckpt_async.c — asynchronous checkpoints ("checkpoint":
 * {"async_save": true}) and the restart calls (zrt_resume,
 * zrt_restart_count, ZRT_ELASTIC_WORLD), run under mpirun on 2 and 3 ranks.
 *
 * The synthetic model of test_model.h. What users rely on:
 *   - an asynchronous save writes the same bytes as a synchronous one
 *     (every rank file and meta.json), at stages 1 and 3, f32 and bf16,
 *     with NVMe state, and with a ring smaller than the file (1000 and 7
 *     bytes: pieces wrap inside elements);
 *   - once zrt_save returns, later steps do not change what is written:
 *     the checkpoint loads back to the parameters of the save's moment;
 *   - `latest` moves only at publication (zrt_save_wait, or a later
 *     zrt_step once every writer is done), never right after zrt_save; a
 *     context destroyed with a save pending publishes nothing;
 *   - a failed save (a file-size limit on one rank, found as the save
 *     starts; a full tmpfs, found by the writer thread) fails on every
 *     rank naming the cause, `latest` keeps the previous checkpoint, and
 *     the next save works;
 *   - the memory plan charges the ring (ckpt-buffer, host tier) as
 *     measured: the file's data bytes, or async_buffer_size when smaller;
 *     nothing without async_save;
 *   - zrt_resume loads `latest` only on a restart (ZRT_RESTART > 0, read
 *     at zrt_ctx_create), and starts from 0 when there is none;
 *   - ZRT_ELASTIC_WORLD scales gradient_accumulation_steps by first /
 *     world, and a ratio that is not whole, or a malformed value, is
 *     refused with a sentence.
 * Check runs without fork (forked children cannot use MPI).
 */
#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZRT_TEST_MODEL_NEVER_OVERFLOWS
#include "../common/test_check.h"
#include "../common/test_model.h"
#include "../common/test_shared_dir.h"
#include "zrt/zrt.h"

/* ---- helpers --------------------------------------------------------------- */

/* stage, dtype, async_save and async_buffer_size; NVMe state under swap
 * when swap is not NULL. */
static void config_of(zrt_config *cfg, int stage, zrt_dtype dtype, int async,
                      int64_t ring, const char *swap)
{
    zrt_config_init(cfg);
    cfg->stage = stage;
    cfg->stage3_param_persistence_threshold = 150; /* layer 2 (133) stays gathered */
    cfg->log_level = 0;
    cfg->aio.block_size = 4096;
    cfg->bf16.enabled = dtype == ZRT_BF16;
    cfg->checkpoint_async = async;
    cfg->checkpoint_async_buffer_size = ring;
    if (swap) {
        cfg->offload_optimizer.device = ZRT_OFFLOAD_NVME;
        cfg->offload_param.device = ZRT_OFFLOAD_NVME;
        snprintf(cfg->offload_optimizer.nvme_path,
                 sizeof cfg->offload_optimizer.nvme_path, "%s", swap);
        snprintf(cfg->offload_param.nvme_path, sizeof cfg->offload_param.nvme_path, "%s",
                 swap);
    }
}

static void train(model *m, int steps)
{
    for (int s = 0; s < steps; s++)
        ck_assert_msg(zero_forward_backward_step(m) == ZRT_OK, "%s",
                      zrt_last_error(m->ctx));
}

static void save_ok(model *m, const char *dir)
{
    ck_assert_msg(zrt_save(m->ctx, dir, NULL) == ZRT_OK, "%s", zrt_last_error(m->ctx));
}

static void wait_ok(model *m)
{
    ck_assert_msg(zrt_save_wait(m->ctx) == ZRT_OK, "%s", zrt_last_error(m->ctx));
}

/* dir/name as a path. */
static const char *path_of(char *buf, size_t size, const char *dir, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
    return buf;
}

/* What dir/latest names ("" when there is none). */
static void latest_of(const char *dir, char *out, size_t size)
{
    char path[160];
    out[0] = '\0';
    FILE *f = fopen(path_of(path, sizeof path, dir, "latest"), "r");
    if (!f)
        return;
    if (!fgets(out, (int)size, f))
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
}

static void expect_latest(const char *dir, const char *want, const char *when)
{
    char got[64];
    latest_of(dir, got, sizeof got);
    ck_assert_msg(!strcmp(got, want), "%s: latest names '%s', expected '%s'", when, got,
                  want);
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* The files a and b hold the same bytes. */
static void assert_same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    ck_assert_msg(fa && fb, "cannot open %s or %s", a, b);
    long at = 0;
    for (int ca, cb;; at++) {
        ca = fgetc(fa);
        cb = fgetc(fb);
        ck_assert_msg(ca == cb, "%s and %s differ at byte %ld", a, b, at);
        if (ca == EOF)
            break;
    }
    ck_assert_int_gt(at, 0);
    fclose(fa);
    fclose(fb);
}

/* This rank's file and (rank 0) meta.json of step `step` in a and b are
 * the same bytes. */
static void assert_same_checkpoint(const char *a, const char *b, long step)
{
    const char *names[2] = {NULL, "meta.json"};
    char rank_file[32], pa[200], pb[200];
    snprintf(rank_file, sizeof rank_file, "rank-%05d.zrtc", world_rank);
    names[0] = rank_file;
    for (int i = 0; i < (world_rank == 0 ? 2 : 1); i++) {
        snprintf(pa, sizeof pa, "%s/step-%08ld/%s", a, step, names[i]);
        snprintf(pb, sizeof pb, "%s/step-%08ld/%s", b, step, names[i]);
        assert_same_file(pa, pb);
    }
}

/* The data bytes of this rank's file of dir/step-N (file bytes minus the
 * data offset, from the header: checkpoint.h). */
static int64_t rank_file_data_bytes(const char *dir, long step)
{
    char path[200];
    snprintf(path, sizeof path, "%s/step-%08ld/rank-%05d.zrtc", dir, step, world_rank);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    unsigned char h[64];
    ck_assert_uint_eq(fread(h, 1, sizeof h, f), sizeof h);
    fclose(f);
    uint64_t offset = 0, bytes = 0;
    for (int i = 7; i >= 0; i--) {
        offset = offset << 8 | h[40 + i];
        bytes = bytes << 8 | h[48 + i];
    }
    return (int64_t)(bytes - offset);
}

static int64_t planned_ring(model *m)
{
    zrt_mem_plan plan;
    ck_assert_int_eq(zrt_plan_memory(m->ctx, &plan), ZRT_OK);
    return plan.peak[ZRT_TIER_HOST][ZRT_CAT_CKPT_BUFFER];
}

/* ---- the same bytes as a synchronous save ------------------------------------ */

/* Builds cfg's model, trains `steps`, saves into dir (and waits); returns
 * the ring's planned bytes. */
static int64_t save_after(const zrt_config *cfg, int steps, const char *dir)
{
    model m = built(cfg);
    train(&m, steps);
    save_ok(&m, dir);
    wait_ok(&m);
    int64_t ring = planned_ring(&m);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    return ring;
}

START_TEST(async_files_equal_sync_files)
{
    char sync_dir[64], async_dir[64], swap[64];
    shared_dir(sync_dir, sizeof sync_dir, "/tmp/zrt-ckasync-XXXXXX");
    shared_dir(async_dir, sizeof async_dir, "/tmp/zrt-ckasync-XXXXXX");
    shared_dir(swap, sizeof swap, "/tmp/zrt-ckasync-swap-XXXXXX");
    /* each against the whole file in the ring (0) and a ring smaller than
     * the file: 1000 bytes, or 7 (pieces wrap inside elements) */
    const struct {
        int stage;
        zrt_dtype dtype;
        int nvme;
        int64_t small_ring;
    } cases[] = {
        {1, ZRT_F32, 0, 7},  {3, ZRT_F32, 0, 1000}, {1, ZRT_BF16, 0, 1000},
        {3, ZRT_BF16, 0, 7}, {3, ZRT_F32, 1, 1000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *sw = cases[i].nvme ? swap : NULL;
        zrt_config cfg;
        config_of(&cfg, cases[i].stage, cases[i].dtype, 0, 0, sw);
        ck_assert_int_eq(save_after(&cfg, 3, sync_dir), 0); /* no ring when sync */
        int64_t data = rank_file_data_bytes(sync_dir, 3);
        const int64_t rings[] = {0, cases[i].small_ring};
        for (size_t r = 0; r < 2; r++) {
            config_of(&cfg, cases[i].stage, cases[i].dtype, 1, rings[r], sw);
            int64_t ring = save_after(&cfg, 3, async_dir);
            /* the ring: the whole file's data, or smaller than it */
            ck_assert_int_eq(ring, rings[r] ? rings[r] : data);
            ck_assert_int_lt(ring, rings[r] ? data : data + 1);
            assert_same_checkpoint(sync_dir, async_dir, 3);
        }
    }
    remove_tree(sync_dir);
    remove_tree(async_dir);
    remove_tree(swap);
}
END_TEST

/* ---- what is written is the save's moment ------------------------------------- */

START_TEST(later_steps_do_not_change_what_is_written)
{
    char dir[64], step_dir[200];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckasync-XXXXXX");
    const struct {
        int stage;
        zrt_dtype dtype;
        int64_t ring;
    } cases[] = {{3, ZRT_F32, 1000}, {1, ZRT_BF16, 0}, {3, ZRT_BF16, 7}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        zrt_config cfg;
        config_of(&cfg, cases[i].stage, cases[i].dtype, 1, cases[i].ring, NULL);
        model m = built(&cfg);
        train(&m, 3);
        save_ok(&m, dir);
        float *at_save = read_all(&m);
        train(&m, 3); /* the pending save may be published in these */
        float *later = read_all(&m);
        ck_assert_msg(memcmp(at_save, later, sizeof(float) * (size_t)model_numel) != 0,
                      "training did not change the parameters");
        wait_ok(&m);
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);

        config_of(&cfg, cases[i].stage, cases[i].dtype, 0, 0, NULL);
        m = built(&cfg);
        zrt_ckpt_info info;
        zrt_ckpt_info_init(&info);
        snprintf(step_dir, sizeof step_dir, "%s/step-00000003", dir);
        ck_assert_msg(zrt_load(m.ctx, step_dir, &info) == ZRT_OK, "%s",
                      zrt_last_error(m.ctx));
        ck_assert_int_eq(info.step, 3);
        float *loaded = read_all(&m);
        assert_same_bits(loaded, at_save, "loaded from the asynchronous save");
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
        free(at_save);
        free(later);
        free(loaded);
    }
    remove_tree(dir);
}
END_TEST

/* ---- publication ------------------------------------------------------------ */

START_TEST(latest_moves_only_at_publication)
{
    char dir[64], path[200];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckasync-XXXXXX");
    zrt_config cfg;
    config_of(&cfg, 3, ZRT_F32, 1, 0, NULL);
    model m = built(&cfg);
    train(&m, 1);
    save_ok(&m, dir);
    expect_latest(dir, "", "right after the first asynchronous zrt_save");
    ck_assert(!exists(path_of(path, sizeof path, dir, "step-00000001")));
    wait_ok(&m);
    expect_latest(dir, "step-00000001", "after zrt_save_wait");
    ck_assert(exists(path_of(path, sizeof path, dir, "step-00000001/meta.json")));
    ck_assert(!exists(path_of(path, sizeof path, dir, "step-00000001.tmp")));
    MPI_Barrier(MPI_COMM_WORLD);

    train(&m, 1);
    save_ok(&m, dir);
    expect_latest(dir, "step-00000001", "right after zrt_save of step 2");
    ck_assert(!exists(path_of(path, sizeof path, dir, "step-00000002")));
    ck_assert(exists(path_of(path, sizeof path, dir, "step-00000002.tmp")));
    wait_ok(&m);
    expect_latest(dir, "step-00000002", "after zrt_save_wait");
    wait_ok(&m); /* nothing pending: ZRT_OK */
    MPI_Barrier(MPI_COMM_WORLD);

    /* without zrt_save_wait: a later zrt_step publishes once every writer
     * is done (here within 50 steps 20 ms apart) */
    train(&m, 1);
    save_ok(&m, dir);
    expect_latest(dir, "step-00000002", "right after zrt_save of step 3");
    char got[64] = "";
    for (int s = 0; s < 50 && strcmp(got, "step-00000003"); s++) {
        usleep(20000);
        train(&m, 1);
        latest_of(dir, got, sizeof got);
        int here = !strcmp(got, "step-00000003"), all = 0;
        MPI_Allreduce(&here, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (!all)
            got[0] = '\0';
    }
    ck_assert_msg(!strcmp(got, "step-00000003"),
                  "50 steps after an asynchronous save, latest names '%s'", got);
    wait_ok(&m);

    /* destroyed with a save pending: nothing published, nothing left */
    train(&m, 1);
    save_ok(&m, dir);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    MPI_Barrier(MPI_COMM_WORLD);
    expect_latest(dir, "step-00000003", "after zrt_ctx_destroy with a save pending");
    if (world_rank == 0) {
        char cmd[256];
        snprintf(cmd, sizeof cmd,
                 "ls %s | grep -v -x -e latest -e step-00000001 "
                 "-e step-00000002 -e step-00000003",
                 dir);
        FILE *p = popen(cmd, "r");
        char extra[128] = "";
        ck_assert_ptr_nonnull(p);
        if (!fgets(extra, sizeof extra, p))
            extra[0] = '\0';
        pclose(p);
        ck_assert_msg(extra[0] == '\0', "left in %s after destroy: %s", dir, extra);
    }
    remove_tree(dir);
}
END_TEST

/* ---- failures ----------------------------------------------------------------- */

/* The save failed on every rank naming `cause`; latest is unchanged. */
static void expect_failed(model *m, zrt_status st, const char *cause, const char *dir,
                          const char *latest, const char *what)
{
    int failed = st != ZRT_OK, all = 0;
    MPI_Allreduce(&failed, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    ck_assert_msg(all, "%s: not every rank failed (this one: %s)", what,
                  zrt_status_str(st));
    const char *why = zrt_last_error(m->ctx);
    ck_assert_msg(strstr(why, cause), "%s: '%s' not named in: %s", what, cause, why);
    ck_assert_msg(strstr(why, "latest"),
                  "%s: the sentence does not say what became of "
                  "latest: %s",
                  what, why);
    expect_latest(dir, latest, what);
}

/* A file-size limit (SIGXFSZ ignored) on the last rank only: found as the
 * asynchronous save starts, in the training thread. */
START_TEST(a_file_size_limit_fails_the_save_on_every_rank)
{
    char dir[64], path[200];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckasync-XXXXXX");
    zrt_config cfg;
    config_of(&cfg, 3, ZRT_F32, 1, 0, NULL);
    model m = built(&cfg);
    train(&m, 1);
    save_ok(&m, dir);
    wait_ok(&m);
    train(&m, 1);

    struct rlimit saved;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    void (*old)(int) = signal(SIGXFSZ, SIG_IGN);
    if (world_rank == world_size - 1) {
        struct rlimit low = {.rlim_cur = 100, .rlim_max = saved.rlim_max};
        ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &low), 0);
    }
    zrt_status st = zrt_save(m.ctx, dir, NULL);
    zrt_status waited = zrt_save_wait(m.ctx);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old);
    if (st == ZRT_OK) /* a writer found it: zrt_save_wait says so */
        st = waited;
    expect_failed(&m, st, "file-size limit", dir, "step-00000001", "a file-size limit");
    MPI_Barrier(MPI_COMM_WORLD);
    ck_assert(!exists(path_of(path, sizeof path, dir, "step-00000002")));

    save_ok(&m, dir); /* the limit lifted: the next save works */
    wait_ok(&m);
    expect_latest(dir, "step-00000002", "the save after the failure");
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    remove_tree(dir);
}
END_TEST

/* Rank 0 fills the file system of path (ENOSPC): a file as large as it
 * will grow. */
static void fill(const char *path)
{
    if (world_rank == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ck_assert_int_ge(fd, 0);
        static char block[4096];
        while (write(fd, block, sizeof block) > 0)
            ;
        ck_assert_int_eq(errno, ENOSPC);
        close(fd);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

/* The tmpfs rank 0 mounted, unmounted at exit if a failed check skipped
 * the test's own umount. */
static char mounted_at[64];

static void unmount_at_exit(void)
{
    if (mounted_at[0])
        umount2(mounted_at, MNT_DETACH);
}

/* What one full-disk trial saw, checked after the tmpfs is unmounted (a
 * failed check must not leave it mounted). */
typedef struct full_disk_outcome {
    zrt_status st;        /* of the failed save */
    int in_save;          /* 1: zrt_save returned it, 0: zrt_save_wait */
    int all_failed;       /* every rank saw it fail */
    zrt_status then_wait; /* zrt_save_wait after zrt_save failed */
    char why[ZRT__ERRBUF_SIZE];
    char latest[64], latest_after[64];
    int left_step, left_tmp; /* step-2 or step-2.tmp exists */
    zrt_status next_save;    /* with room again */
    char next_why[ZRT__ERRBUF_SIZE];
} full_disk_outcome;

static void full_disk_trial(const char *mnt, int64_t ring, full_disk_outcome *o)
{
    char dir[128], filler[128], path[200];
    snprintf(dir, sizeof dir, "%s/ckpt", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    zrt_config cfg;
    config_of(&cfg, 3, ZRT_F32, 1, ring, NULL);
    model m = built(&cfg);
    train(&m, 1);
    save_ok(&m, dir);
    wait_ok(&m);
    train(&m, 1);
    fill(filler);
    o->st = zrt_save(m.ctx, dir, NULL);
    o->in_save = o->st != ZRT_OK;
    o->then_wait = ZRT_OK;
    if (o->st == ZRT_OK) {
        o->st = zrt_save_wait(m.ctx);
        snprintf(o->why, sizeof o->why, "%s", zrt_last_error(m.ctx));
    } else { /* nothing is left for zrt_save_wait to report */
        snprintf(o->why, sizeof o->why, "%s", zrt_last_error(m.ctx));
        o->then_wait = zrt_save_wait(m.ctx);
    }
    int failed = o->st != ZRT_OK;
    MPI_Allreduce(&failed, &o->all_failed, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    latest_of(dir, o->latest, sizeof o->latest);
    o->left_step = exists(path_of(path, sizeof path, dir, "step-00000002"));
    o->left_tmp = exists(path_of(path, sizeof path, dir, "step-00000002.tmp"));
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank == 0)
        unlink(filler);
    MPI_Barrier(MPI_COMM_WORLD);
    train(&m, 1);
    o->next_save = zrt_save(m.ctx, dir, NULL);
    if (o->next_save == ZRT_OK)
        o->next_save = zrt_save_wait(m.ctx);
    snprintf(o->next_why, sizeof o->next_why, "%s", zrt_last_error(m.ctx));
    latest_of(dir, o->latest_after, sizeof o->latest_after);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank == 0)
        test_remove_tree(dir);
    MPI_Barrier(MPI_COMM_WORLD);
}

/* A full disk, found by the writer threads while they write (a tmpfs with
 * no room left); rank 0 mounts it, so this needs root (skipped otherwise).
 * With the whole file in the ring zrt_save usually returns first and
 * zrt_save_wait reports the failure; with a small ring the writer fails
 * while zrt_save is still pushing, and zrt_save reports it: both must name
 * the cause (ENOSPC), on every rank, with `latest` unchanged. */
START_TEST(a_full_disk_fails_the_save_on_every_rank)
{
    char mnt[64];
    shared_dir(mnt, sizeof mnt, "/tmp/zrt-ckasync-mnt-XXXXXX");
    int mounted =
        world_rank != 0 || mount("zrt-test-tmpfs", mnt, "tmpfs", 0, "size=1m") == 0;
    int all = 0;
    MPI_Allreduce(&mounted, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (world_rank == 0 && mounted) {
        snprintf(mounted_at, sizeof mounted_at, "%s", mnt);
        atexit(unmount_at_exit);
    }
    if (!all) {
        if (world_rank == 0)
            printf("skipped the full disk: cannot mount a tmpfs here (%s)\n",
                   strerror(errno));
        remove_tree(mnt);
        return;
    }
    const int64_t rings[] = {0, 1000};
    full_disk_outcome o[2];
    memset(o, 0, sizeof o);
    for (size_t r = 0; r < 2; r++)
        full_disk_trial(mnt, rings[r], &o[r]);
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank == 0) {
        ck_assert_msg(umount2(mnt, MNT_DETACH) == 0, "umount %s: %s", mnt,
                      strerror(errno));
        mounted_at[0] = '\0';
    }
    remove_tree(mnt);
    for (size_t r = 0; r < 2 && world_rank == 0; r++)
        printf("full disk, ring %lld: failed in %s: %s\n", (long long)rings[r],
               o[r].in_save ? "zrt_save" : "zrt_save_wait", o[r].why);
    for (size_t r = 0; r < 2; r++) {
        char what[96];
        snprintf(what, sizeof what, "a full disk, ring %lld, failed in %s",
                 (long long)rings[r], o[r].in_save ? "zrt_save" : "zrt_save_wait");
        ck_assert_msg(o[r].all_failed, "%s: not every rank failed (this one: %s)", what,
                      zrt_status_str(o[r].st));
        ck_assert_msg(strstr(o[r].why, "latest"),
                      "%s: the sentence does not say what became of latest: %s", what,
                      o[r].why);
        ck_assert_msg(!strcmp(o[r].latest, "step-00000001"), "%s: latest names '%s'",
                      what, o[r].latest);
        ck_assert_msg(!o[r].left_step && !o[r].left_tmp, "%s: step-00000002%s left", what,
                      o[r].left_step ? "" : ".tmp");
        ck_assert_msg(o[r].then_wait == ZRT_OK, "%s: zrt_save_wait then returned %s",
                      what, zrt_status_str(o[r].then_wait));
        ck_assert_msg(o[r].next_save == ZRT_OK &&
                          !strcmp(o[r].latest_after, "step-00000003"),
                      "%s: the next save: %s (latest '%s')", what, o[r].next_why,
                      o[r].latest_after);
        ck_assert_msg(strstr(o[r].why, "No space left"), "%s: the cause not named in: %s",
                      what, o[r].why);
    }
}
END_TEST

/* ---- memory ----------------------------------------------------------------- */

START_TEST(the_plan_charges_the_ring_as_measured)
{
    char dir[64];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckasync-XXXXXX");
    const struct {
        int async;
        int64_t ring;
        zrt_dtype dtype;
    } cases[] = {{0, 0, ZRT_F32}, {1, 0, ZRT_F32}, {1, 0, ZRT_BF16}, {1, 1000, ZRT_F32}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        zrt_config cfg;
        config_of(&cfg, 3, cases[i].dtype, cases[i].async, cases[i].ring, NULL);
        model m = built(&cfg);
        train(&m, 2);
        save_ok(&m, dir);
        train(&m, 1);
        wait_ok(&m);
        zrt_mem_plan plan;
        zrt_mem_stats ms;
        ck_assert_int_eq(zrt_plan_memory(m.ctx, &plan), ZRT_OK);
        ck_assert_int_eq(zrt_get_mem_stats(m.ctx, &ms), ZRT_OK);
        char what[64];
        snprintf(what, sizeof what, "async %d, ring %lld, %s", cases[i].async,
                 (long long)cases[i].ring, zrt_dtype_str(cases[i].dtype));
        expect_peaks_as_planned(&ms, &plan, what);
        int64_t ring = plan.peak[ZRT_TIER_HOST][ZRT_CAT_CKPT_BUFFER];
        int64_t data = rank_file_data_bytes(dir, 2);
        int64_t want = !cases[i].async ? 0 : cases[i].ring ? cases[i].ring : data;
        ck_assert_msg(ring == want, "%s: ckpt-buffer planned %lld, expected %lld", what,
                      (long long)ring, (long long)want);
        ck_assert_int_eq(ms.current[ZRT_TIER_HOST][ZRT_CAT_CKPT_BUFFER], want);
        for (int t = 0; t < ZRT_TIER_COUNT; t++) /* host only */
            ck_assert_int_eq(plan.peak[t][ZRT_CAT_CKPT_BUFFER],
                             t == ZRT_TIER_HOST ? want : 0);
        ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    }
    remove_tree(dir);
}
END_TEST

/* ---- restarts ---------------------------------------------------------------- */

/* A context for cfg created with `name` set to `value` in the environment
 * (unset again at once). */
static model built_with_env(const zrt_config *cfg, const char *name, const char *value)
{
    ck_assert_int_eq(setenv(name, value, 1), 0);
    model m = {0};
    zrt_status st = build(&m, cfg);
    unsetenv(name);
    ck_assert_msg(st == ZRT_OK, "%s", zrt_last_error(m.ctx));
    return m;
}

START_TEST(resume_loads_only_on_a_restart)
{
    char dir[64], empty[64];
    shared_dir(dir, sizeof dir, "/tmp/zrt-ckasync-XXXXXX");
    shared_dir(empty, sizeof empty, "/tmp/zrt-ckasync-XXXXXX");
    unsetenv("ZRT_RESTART");
    zrt_config cfg;
    config_of(&cfg, 3, ZRT_F32, 1, 0, NULL);
    model m = built(&cfg);
    train(&m, 3);
    save_ok(&m, dir);
    wait_ok(&m);
    float *saved = read_all(&m);
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);

    /* a first start: latest exists but nothing is loaded */
    m = built(&cfg);
    int restarts = -1;
    ck_assert_int_eq(zrt_restart_count(m.ctx, &restarts), ZRT_OK);
    ck_assert_int_eq(restarts, 0);
    train(&m, 1);
    float *before = read_all(&m);
    zrt_ckpt_info info;
    zrt_ckpt_info_init(&info);
    info.step = 99;
    info.world_size = 99;
    ck_assert_msg(zrt_resume(m.ctx, dir, &info) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    ck_assert_int_eq(info.step, 0);
    ck_assert_int_eq(info.world_size, 0);
    float *after = read_all(&m);
    assert_same_bits(after, before, "zrt_resume on a first start");
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    free(before);
    free(after);

    /* a restart: ZRT_RESTART read at creation, so unsetting it later changes
     * nothing; latest is loaded */
    m = built_with_env(&cfg, "ZRT_RESTART", "1");
    ck_assert_int_eq(zrt_restart_count(m.ctx, &restarts), ZRT_OK);
    ck_assert_int_eq(restarts, 1);
    ck_assert_msg(zrt_resume(m.ctx, dir, &info) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    ck_assert_int_eq(info.step, 3);
    ck_assert_int_eq(info.world_size, world_size);
    after = read_all(&m);
    assert_same_bits(after, saved, "zrt_resume on a restart");
    train(&m, 1); /* and it trains on */
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    free(after);

    /* a restart before any checkpoint: starts from 0 */
    m = built_with_env(&cfg, "ZRT_RESTART", "2");
    ck_assert_int_eq(zrt_restart_count(m.ctx, &restarts), ZRT_OK);
    ck_assert_int_eq(restarts, 2);
    info.step = 99;
    ck_assert_msg(zrt_resume(m.ctx, empty, &info) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    ck_assert_int_eq(info.step, 0);
    ck_assert_msg(zrt_resume(m.ctx, empty, NULL) == ZRT_OK, "%s", zrt_last_error(m.ctx));
    after = read_all(&m);
    ck_assert_float_eq(after[0], initial_value(0, 0));
    ck_assert_int_eq(zrt_ctx_destroy(m.ctx), ZRT_OK);
    free(after);
    free(saved);
    remove_tree(dir);
    remove_tree(empty);
}
END_TEST

/* zrt_ctx_create with ZRT_ELASTIC_WORLD=value and accumulation k: the
 * status, with stderr (where the refusal goes) in *said. */
static zrt_status create_elastic(const char *value, int k, int *k_used, char *said,
                                 size_t size)
{
    zrt_config cfg;
    config_of(&cfg, 1, ZRT_F32, 0, 0, NULL);
    cfg.gradient_accumulation_steps = k;
    char log[] = "/tmp/zrt-ckasync-stderr-XXXXXX";
    int fd = mkstemp(log);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    close(fd);
    ck_assert_int_eq(setenv("ZRT_ELASTIC_WORLD", value, 1), 0);
    zrt_ctx *ctx = NULL;
    zrt_status st = zrt_ctx_create(&cfg, &ctx);
    unsetenv("ZRT_ELASTIC_WORLD");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(said, 1, size - 1, f) : 0;
    said[n] = '\0';
    if (f)
        fclose(f);
    unlink(log);
    *k_used = 0;
    if (st == ZRT_OK) {
        zrt_config got;
        ck_assert_int_eq(zrt_get_config(ctx, &got), ZRT_OK);
        *k_used = got.gradient_accumulation_steps;
        ck_assert_int_eq(zrt_ctx_destroy(ctx), ZRT_OK);
    }
    return st;
}

START_TEST(elastic_world_keeps_the_global_batch)
{
    char value[16], said[4096];
    int k = 0;
    snprintf(value, sizeof value, "%d", 2 * world_size); /* half the first ranks */
    ck_assert_int_eq(create_elastic(value, 3, &k, said, sizeof said), ZRT_OK);
    ck_assert_int_eq(k, 6);
    snprintf(value, sizeof value, "%d", world_size); /* the same world: unchanged */
    ck_assert_int_eq(create_elastic(value, 3, &k, said, sizeof said), ZRT_OK);
    ck_assert_int_eq(k, 3);
    if (world_size > 1) {
        /* more ranks than the first attempt: fewer micro-steps */
        ck_assert_int_eq(create_elastic("1", world_size, &k, said, sizeof said), ZRT_OK);
        ck_assert_int_eq(k, 1);
        /* (world + 1) / world micro-steps: not a whole number */
        snprintf(value, sizeof value, "%d", world_size + 1);
        ck_assert_int_eq(create_elastic(value, 1, &k, said, sizeof said), ZRT_ERR_CONFIG);
        ck_assert_msg(strstr(said, "not a whole number") &&
                          strstr(said, "gradient_accumulation_steps"),
                      "stderr: %s", said);
    }
    const char *bad[] = {"x", "", "2x", "0", "-2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(create_elastic(bad[i], 1, &k, said, sizeof said) == ZRT_ERR_CONFIG,
                      "ZRT_ELASTIC_WORLD='%s' accepted", bad[i]);
        ck_assert_msg(strstr(said, "ZRT_ELASTIC_WORLD") && strstr(said, "rank count"),
                      "ZRT_ELASTIC_WORLD='%s': stderr: %s", bad[i], said);
    }
    ck_assert_ptr_null(getenv("ZRT_ELASTIC_WORLD"));
}
END_TEST

int main(int argc, char **argv)
{
    zrt_check_mpi_init(&argc, &argv, &world_rank, &world_size);
    Suite *s = ZRT_CHECK_SUITE(
        "ckpt_async", 120, async_files_equal_sync_files,
        later_steps_do_not_change_what_is_written, latest_moves_only_at_publication,
        a_file_size_limit_fails_the_save_on_every_rank,
        a_full_disk_fails_the_save_on_every_rank, the_plan_charges_the_ring_as_measured,
        resume_loads_only_on_a_restart, elastic_world_keeps_the_global_batch);
    int rc = zrt_check_main_mpi(s, "ckpt_async");
    MPI_Finalize();
    return rc;
}
