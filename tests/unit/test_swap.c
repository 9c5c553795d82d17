/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/test_swap.c — Check suite "swap": the NVMe swap file
 * (offload/swap.h) and CRC32C (offload/crc32c.h).
 *
 * CRC32C must give the standard check value on the hardware and software
 * paths and the two must agree. The swap must give back exactly what was
 * written (odd sizes, several blocks, several offsets, several pipeline
 * shapes), refuse a block never written, catch one flipped byte on disk as a
 * checksum mismatch naming the block, refuse unaligned offsets, name the
 * path it cannot create, fail cleanly when the file cannot be reserved, and
 * leave nothing on disk after close.
 *
 * The file must never follow a planted link nor truncate a file that is
 * there (a victim behind a link keeps its bytes), the rank directory must
 * be refused, with its path, when it is a link, not a directory, not 0700
 * or not ours, and the file must vanish when its process is SIGKILLed:
 * each with O_TMPFILE and with the named-file fallback. A file-size limit
 * below the file gives an error, not SIGXFSZ, and leaves the signal's
 * disposition alone; where the loop ignores SIGXFSZ, a write past the limit
 * gives EFBIG.
 *
 * Needs O_DIRECT and io_uring on /tmp: main() exits 77 (skipped) when either
 * is refused. main() returns 0 only if all pass.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "offload/crc32c.h"
#include "offload/swap.h"

#include "../common/test_check.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BS  ((size_t)64 << 10) /* block size used by the tests */
#define MIB ((size_t)1 << 20)

/* ---- helpers ------------------------------------------------------------- */

/* Each test runs in a fresh mkdtemp directory, base, made and removed by a
 * checked fixture: after the test, everything the swap made (the rank
 * directory included) must be gone, so that the rmdir succeeds. */
static char base[64];

static void make_base(void)
{
    ck_assert_msg(test_make_tmpdir(base, sizeof base, "test-swap") == 0, "mkdtemp: %s",
                  strerror(errno));
}

static void remove_base(void)
{
    ck_assert_msg(rmdir(base) == 0, "rmdir %s: %s (left behind files?)", base,
                  strerror(errno));
}

static zrt__swap_config config(int buffers, int depth)
{
    zrt__swap_config c = {.dir = base,
                          .rank = 3,
                          .block_size = BS,
                          .queue_depth = depth,
                          .buffer_count = buffers};
    return c;
}

static zrt__swap *open_ok(const zrt__swap_config *c, const char *name, uint64_t capacity)
{
    zrt__errbuf err = {.rank = -1};
    zrt__swap *s = NULL;
    zrt_status st = zrt__swap_open(c, name, capacity, &err, &s);
    ck_assert_msg(st == ZRT_OK, "open failed (%s): %s", zrt_status_str(st), err.text);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* A swap with the default pipeline shape (config(0, 0)). */
static zrt__swap *open_default(const char *name, uint64_t capacity)
{
    zrt__swap_config c = config(0, 0);
    return open_ok(&c, name, capacity);
}

static void fill_random(unsigned char *p, size_t n, uint64_t seed)
{
    test_rng r = test_rng_seed(seed);
    test_fill_bytes(&r, p, n);
}

static void expect_mentions(const char *text, const char *needle)
{
    ck_assert_msg(strstr(text, needle) != NULL, "message '%s' does not mention '%s'",
                  text, needle);
}

/* The swap file has no name: it is reached through its descriptor. */
static void proc_path(const zrt__swap *s, char *buf, size_t size)
{
    snprintf(buf, size, "/proc/self/fd/%d", zrt__swap_fd(s));
}

/* The names in dir, space-separated, into buf ("" when empty). */
static const char *entries(const char *dir, char *buf, size_t size)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "opendir %s: %s", dir, strerror(errno));
    buf[0] = '\0';
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, ".."))
            snprintf(buf + strlen(buf), size - strlen(buf), "%s ", e->d_name);
    closedir(d);
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "fopen %s: %s", path, strerror(errno));
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* Expects open to fail with ZRT_ERR_IO and a message naming `path` and
 * `why`. */
static void expect_refused(const zrt__swap_config *c, const char *path, const char *why)
{
    zrt__errbuf err = {.rank = -1};
    zrt__swap *s = NULL;
    zrt_status st = zrt__swap_open(c, "x", MIB, &err, &s);
    if (st == ZRT_OK)
        zrt__swap_close(s);
    ck_assert_msg(st == ZRT_ERR_IO, "open gave %s, not an I/O error: %s",
                  zrt_status_str(st), err.text);
    ck_assert_ptr_null(s);
    expect_mentions(err.text, path);
    expect_mentions(err.text, why);
}

static void write_random(zrt__swap *s, uint64_t off, size_t n, uint64_t seed)
{
    unsigned char *src = malloc(n);
    ck_assert(src);
    fill_random(src, n, seed);
    zrt__errbuf err = {.rank = -1};
    zrt_status st = zrt__swap_write(s, off, src, n, &err);
    ck_assert_msg(st == ZRT_OK, "write of %zu at %llu: %s", n, (unsigned long long)off,
                  err.text);
    free(src);
}

/* Reads n bytes at off into a buffer with a canary after it: they are the
 * bytes fill_random gives for seed, and the canary is untouched. */
static void read_back(zrt__swap *s, uint64_t off, size_t n, uint64_t seed)
{
    unsigned char *want = malloc(n), *got = malloc(n + 16);
    ck_assert(want && got);
    fill_random(want, n, seed);
    memset(got, 0xA5, n + 16);
    zrt__errbuf err = {.rank = -1};
    zrt_status st = zrt__swap_read(s, off, got, n, &err);
    ck_assert_msg(st == ZRT_OK, "read of %zu at %llu: %s", n, (unsigned long long)off,
                  err.text);
    ck_assert_msg(memcmp(want, got, n) == 0, "data of %zu bytes at %llu differ", n,
                  (unsigned long long)off);
    for (size_t i = 0; i < 16; i++)
        ck_assert_int_eq(got[n + i], 0xA5);
    free(want);
    free(got);
}

/* Writes n random bytes at off and reads them back. */
static void round_trip(zrt__swap *s, uint64_t off, size_t n, uint64_t seed)
{
    write_random(s, off, n, seed);
    read_back(s, off, n, seed);
}

/* ---- CRC32C -------------------------------------------------------------- */

START_TEST(test_crc32c_check_value)
{
    const char *check = "123456789";
    ck_assert_uint_eq(zrt__crc32c(0, check, 9), 0xE3069283u);
    ck_assert_uint_eq(zrt__crc32c_sw(0, check, 9), 0xE3069283u);
    ck_assert_uint_eq(zrt__crc32c(0, check, 0), 0);
    /* Chaining. */
    ck_assert_uint_eq(zrt__crc32c(zrt__crc32c(0, check, 4), check + 4, 5), 0xE3069283u);
    ck_assert_uint_eq(zrt__crc32c_sw(zrt__crc32c_sw(0, check, 4), check + 4, 5),
                      0xE3069283u);
    /* 32 bytes of zeros: a known CRC32C test vector (RFC 3720 B.4). */
    unsigned char zeros[32] = {0};
    ck_assert_uint_eq(zrt__crc32c(0, zeros, 32), 0x8A9136AAu);
    ck_assert_uint_eq(zrt__crc32c_sw(0, zeros, 32), 0x8A9136AAu);
}
END_TEST

START_TEST(test_crc32c_paths_agree)
{
    unsigned char buf[1100];
    fill_random(buf, sizeof buf, 7);
    for (size_t start = 0; start < 8; start++)
        for (size_t n = 0; n + start <= sizeof buf; n += 37)
            ck_assert_uint_eq(zrt__crc32c(0, buf + start, n),
                              zrt__crc32c_sw(0, buf + start, n));
}
END_TEST

/* ---- round trips --------------------------------------------------------- */

START_TEST(test_round_trip_sizes)
{
    zrt__swap *s = open_default("sizes", 4 * MIB);
    ck_assert_uint_eq(zrt__swap_capacity(s), 4 * MIB);
    size_t align = zrt__swap_alignment(s);
    ck_assert(align > 0 && BS % align == 0);
    const size_t sizes[] = {1, 4095, 4096, MIB + 7};
    for (size_t i = 0; i < 4; i++) {
        round_trip(s, 0, sizes[i], i + 1);
        round_trip(s, 3 * BS, sizes[i], i + 11);
        round_trip(s, 4 * MIB - BS, sizes[i] < BS ? sizes[i] : BS, i + 21);
    }
    zrt__swap_close(s);
}
END_TEST

/* Several regions written, then all read back; with several pipeline shapes
 * (serial, fewer ring entries than buffers, the defaults). */
START_TEST(test_round_trip_regions)
{
    static const int shapes[][2] = {{1, 1}, {8, 3}, {0, 0}}; /* buffers, depth */
    zrt__swap_config c = config(shapes[_i][0], shapes[_i][1]);
    uint64_t cap = 20 * BS + 1000; /* last block partial */
    zrt__swap *s = open_ok(&c, "regions", cap);
    write_random(s, 0, 3 * BS, 1);
    write_random(s, 5 * BS, 2 * BS + BS / 2, 2);
    write_random(s, 8 * BS, 9 * BS + 123, 3);
    write_random(s, 20 * BS, 1000, 4); /* up to the capacity exactly */
    read_back(s, 20 * BS, 1000, 4);
    read_back(s, 8 * BS, 9 * BS + 123, 3);
    read_back(s, 0, 3 * BS, 1);
    read_back(s, 5 * BS, 2 * BS + BS / 2, 2);
    /* Overwrite one region and read everything again. */
    write_random(s, 0, 3 * BS, 99);
    read_back(s, 0, 3 * BS, 99);
    read_back(s, 8 * BS, 9 * BS + 123, 3);
    /* A whole block inside a region on its own. */
    unsigned char *whole = malloc(3 * BS), *one = malloc(BS);
    ck_assert(whole && one);
    fill_random(whole, 3 * BS, 99);
    zrt__errbuf err = {.rank = -1};
    ck_assert_int_eq(zrt__swap_read(s, BS, one, BS, &err), ZRT_OK);
    ck_assert(memcmp(one, whole + BS, BS) == 0);
    free(whole);
    free(one);
    zrt__swap_close(s);
}
END_TEST

/* ---- refusals ------------------------------------------------------------ */

START_TEST(test_never_written)
{
    zrt__swap *s = open_default("never", 8 * BS);
    unsigned char buf[200];
    zrt__errbuf err = {.rank = -1};
    ck_assert_int_eq(zrt__swap_read(s, 2 * BS, buf, 100, &err), ZRT_ERR_IO);
    expect_mentions(err.text, "never written");
    expect_mentions(err.text, "block 2");
    /* Written with 100 bytes, read as 200: not what was written. */
    fill_random(buf, sizeof buf, 5);
    ck_assert_int_eq(zrt__swap_write(s, 0, buf, 100, &err), ZRT_OK);
    ck_assert_int_eq(zrt__swap_read(s, 0, buf, 200, &err), ZRT_ERR_IO);
    expect_mentions(err.text, "never written");
    ck_assert_int_eq(zrt__swap_read(s, 0, buf, 100, &err), ZRT_OK);
    zrt__swap_close(s);
}
END_TEST

START_TEST(test_corrupt_byte_detected)
{
    zrt__swap *s = open_default("corrupt", 8 * BS);
    write_random(s, 0, 3 * BS, 42);
    /* Flip one byte of block 1 through a plain (buffered) descriptor. */
    char path[128];
    proc_path(s, path, sizeof path);
    int fd = open(path, O_RDWR);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    unsigned char byte;
    off_t where = (off_t)BS + 1234;
    ck_assert_int_eq(pread(fd, &byte, 1, where), 1);
    byte ^= 0x01;
    ck_assert_int_eq(pwrite(fd, &byte, 1, where), 1);
    ck_assert_int_eq(fsync(fd), 0);
    close(fd);

    unsigned char *dst = malloc(3 * BS);
    ck_assert(dst);
    zrt__errbuf err = {.rank = -1};
    ck_assert_int_eq(zrt__swap_read(s, 0, dst, 3 * BS, &err), ZRT_ERR_IO);
    expect_mentions(err.text, "checksum mismatch");
    expect_mentions(err.text, "block 1 ");
    expect_mentions(err.text, "corrupt.swap");
    free(dst);
    read_back(s, 0, BS, 42); /* block 0 is fine */
    zrt__swap_close(s);
}
END_TEST

START_TEST(test_unaligned_offset)
{
    zrt__swap *s = open_default("unaligned", 4 * BS);
    unsigned char buf[16] = {0};
    zrt__errbuf err = {.rank = -1};
    ck_assert_int_eq(zrt__swap_write(s, 4096, buf, 16, &err), ZRT_ERR_INVALID_ARG);
    expect_mentions(err.text, "4096");
    ck_assert_int_eq(zrt__swap_read(s, 1, buf, 16, &err), ZRT_ERR_INVALID_ARG);
    /* Past the capacity. */
    ck_assert_int_eq(zrt__swap_write(s, 4 * BS, buf, 1, &err), ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt__swap_write(s, 3 * BS, buf, 0, &err), ZRT_OK);
    zrt__swap_close(s);
}
END_TEST

START_TEST(test_bad_block_size)
{
    zrt__swap_config c = config(0, 0);
    c.block_size = 1000; /* no file system aligns direct I/O to 1000 */
    zrt__errbuf err = {.rank = -1};
    zrt__swap *s = (zrt__swap *)&c; /* must stay untouched */
    ck_assert_int_eq(zrt__swap_open(&c, "bad", MIB, &err, &s), ZRT_ERR_INVALID_ARG);
    ck_assert_ptr_eq(s, (zrt__swap *)&c);
    expect_mentions(err.text, "1000");
}
END_TEST

START_TEST(test_uncreatable_dir)
{
    char file[128], dir[160];
    snprintf(file, sizeof file, "%s/plain", base);
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    snprintf(dir, sizeof dir, "%s/sub", file); /* under a regular file */
    zrt__swap_config c = config(0, 0);
    c.dir = dir;
    zrt__errbuf err = {.rank = -1};
    zrt__swap *s = NULL;
    zrt_status st = zrt__swap_open(&c, "x", MIB, &err, &s);
    ck_assert_int_eq(st, ZRT_ERR_IO);
    ck_assert_ptr_null(s);
    expect_mentions(err.text, dir);
    expect_mentions(err.text, strerror(ENOTDIR));
    unlink(file);
}
END_TEST

/* In a child, with SIGXFSZ at its default (death): a file size limit below
 * the capacity fails the open with a sentence, and the disposition is left
 * alone. Exit codes: 0 ok, 1 opened, 2 wrong status, 3 message, 4 leftovers,
 * 6 disposition changed. */
static int fsize_child(void)
{
    struct rlimit lim = {.rlim_cur = MIB, .rlim_max = MIB};
    signal(SIGXFSZ, SIG_DFL);
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 5;
    zrt__swap_config c = config(0, 0);
    zrt__errbuf err = {.rank = -1};
    zrt__swap *s = NULL;
    zrt_status st = zrt__swap_open(&c, "big", 8 * MIB, &err, &s);
    if (st == ZRT_OK) {
        zrt__swap_close(s);
        return 1;
    }
    if (st != ZRT_ERR_IO)
        return 2;
    if (!strstr(err.text, "big.swap") || !strstr(err.text, "8388608") ||
        !strstr(err.text, "file-size limit")) {
        fprintf(stderr, "fsize_child: %s\n", err.text);
        return 3;
    }
    char rank_dir[128];
    snprintf(rank_dir, sizeof rank_dir, "%s/zrt-rank3", base);
    struct stat sb;
    if (stat(rank_dir, &sb) == 0)
        return 4;
    struct sigaction now;
    if (sigaction(SIGXFSZ, NULL, &now) != 0 || now.sa_handler != SIG_DFL)
        return 6;
    return 0;
}

/* In a child whose loop ignores SIGXFSZ: a limit lowered after open makes
 * a write past it fail with EFBIG. 0 ok, 1 open, 2 write went through,
 * 3 message. */
static int efbig_child(void)
{
    zrt__swap_config c = config(0, 0);
    zrt__errbuf err = {.rank = -1};
    zrt__swap *s = NULL;
    if (zrt__swap_open(&c, "efbig", 8 * MIB, &err, &s) != ZRT_OK)
        return 1;
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {.rlim_cur = MIB, .rlim_max = RLIM_INFINITY};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 5;
    static unsigned char buf[BS];
    zrt_status st = zrt__swap_write(s, 2 * MIB, buf, BS, &err);
    zrt__swap_close(s);
    if (st != ZRT_ERR_IO)
        return 2;
    if (!strstr(err.text, "efbig.swap") || !strstr(err.text, strerror(EFBIG))) {
        fprintf(stderr, "efbig_child: %s\n", err.text);
        return 3;
    }
    return 0;
}

static void run_child(int (*child)(void))
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(child());
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "child died of signal %d%s",
                  WIFSIGNALED(status) ? WTERMSIG(status) : 0,
                  WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ ? " (SIGXFSZ)" : "");
    ck_assert_msg(WEXITSTATUS(status) == 0, "child reported %d", WEXITSTATUS(status));
}

START_TEST(test_capacity_over_fsize_limit)
{
    run_child(fsize_child);
}
END_TEST

START_TEST(test_write_past_limit_with_sigxfsz_ignored)
{
    run_child(efbig_child);
}
END_TEST

START_TEST(test_close_removes_file)
{
    zrt__swap *s = open_default("gone", 2 * BS);
    write_random(s, 0, BS + 5, 1);
    char rank_dir[128], path[160];
    snprintf(rank_dir, sizeof rank_dir, "%s/zrt-rank3", base);
    snprintf(path, sizeof path, "%s/gone.swap", rank_dir);
    struct stat sb;
    ck_assert_int_eq(stat(rank_dir, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0700);
    /* Reserved, and without a name from the start. */
    ck_assert_int_ne(stat(path, &sb), 0);
    char names[256];
    ck_assert_str_eq(entries(rank_dir, names, sizeof names), "");
    ck_assert_int_eq(fstat(zrt__swap_fd(s), &sb), 0);
    ck_assert_int_eq(sb.st_nlink, 0);
    ck_assert_int_ge(sb.st_size, (off_t)(2 * BS));
    ck_assert_int_eq(zrt__swap_close(s), ZRT_OK);
    ck_assert_int_ne(stat(path, &sb), 0);
    ck_assert_int_ne(stat(rank_dir, &sb), 0);
    ck_assert_int_eq(zrt__swap_close(NULL), ZRT_OK);
}
END_TEST

/* ---- planted links, foreign directories, abnormal ends ------------------- */

/* zrt-rank3 planted as a link to another directory, or as a file: refused,
 * and nothing is made behind the link. */
START_TEST(test_rank_dir_link_refused)
{
    char other[128], rank_dir[128], names[256];
    snprintf(other, sizeof other, "%s/other", base);
    snprintf(rank_dir, sizeof rank_dir, "%s/zrt-rank3", base);
    ck_assert_int_eq(mkdir(other, 0700), 0);
    ck_assert_int_eq(symlink(other, rank_dir), 0);
    zrt__swap_config c = config(0, 0);
    for (c.named_file = 0; c.named_file < 2; c.named_file++) {
        expect_refused(&c, rank_dir, "symbolic link");
        ck_assert_str_eq(entries(other, names, sizeof names), "");
    }
    ck_assert_int_eq(unlink(rank_dir), 0);
    write_file(rank_dir, "not a directory\n");
    expect_refused(&c, rank_dir, "not a directory");
    ck_assert_int_eq(unlink(rank_dir), 0);
    ck_assert_int_eq(rmdir(other), 0);
}
END_TEST

/* zrt-rank3/x.swap planted as a link to a victim: the victim keeps every
 * byte, and the swap works (the name is ignored, or replaced). */
START_TEST(test_planted_file_link_not_followed)
{
    static const char text[] = "another user's precious data\n";
    char rank_dir[128], planted[160], victim[128], got[64] = {0};
    snprintf(rank_dir, sizeof rank_dir, "%s/zrt-rank3", base);
    snprintf(planted, sizeof planted, "%s/x.swap", rank_dir);
    snprintf(victim, sizeof victim, "%s/victim", base);
    zrt__swap_config c = config(0, 0);
    c.named_file = _i;
    ck_assert_int_eq(mkdir(rank_dir, 0700), 0);
    ck_assert_int_eq(chmod(rank_dir, 0700), 0);
    write_file(victim, text);
    ck_assert_int_eq(symlink(victim, planted), 0);
    zrt__swap *s = open_ok(&c, "x", 4 * BS);
    round_trip(s, 0, BS + 3, 1);
    zrt__swap_close(s);
    int fd = open(victim, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(read(fd, got, sizeof got), (ssize_t)strlen(text));
    close(fd);
    ck_assert_str_eq(got, text);
    unlink(planted); /* still there with O_TMPFILE, which ignores it */
    rmdir(rank_dir);
    ck_assert_int_eq(unlink(victim), 0);
}
END_TEST

/* A rank directory others can write, or someone else's, is refused with its
 * path and what is wrong with it. */
START_TEST(test_rank_dir_not_ours_refused)
{
    char rank_dir[128];
    snprintf(rank_dir, sizeof rank_dir, "%s/zrt-rank3", base);
    ck_assert_int_eq(mkdir(rank_dir, 0700), 0);
    ck_assert_int_eq(chmod(rank_dir, 0755), 0);
    zrt__swap_config c = config(0, 0);
    expect_refused(&c, rank_dir, "mode is 0755, not 0700");
    ck_assert_int_eq(chmod(rank_dir, 0700), 0);
    /* Only root can give it away (nobody: 65534). */
    if (geteuid() == 0 && chown(rank_dir, 65534, 65534) == 0)
        expect_refused(&c, rank_dir, "owned by uid 65534, not by this process's uid 0");
    else
        fprintf(stderr,
                "test_swap: cannot chown to nobody (%s), the foreign-owner "
                "check is skipped\n",
                geteuid() == 0 ? strerror(errno) : "not root");
    ck_assert_int_eq(rmdir(rank_dir), 0);
}
END_TEST

/* A child opens a swap, writes, and is SIGKILLed: no file is left in the
 * rank directory, and the next open takes the (empty, ours) directory. */
START_TEST(test_file_vanishes_after_sigkill)
{
    zrt__swap_config c = config(0, 0);
    c.named_file = _i;
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        zrt__errbuf err = {.rank = -1};
        zrt__swap *s = NULL;
        static unsigned char buf[BS];
        char ok = zrt__swap_open(&c, "killed", 4 * BS, &err, &s) == ZRT_OK &&
                          zrt__swap_write(s, 0, buf, BS, &err) == ZRT_OK
                      ? 'y'
                      : 'n';
        if (ok != 'y')
            fprintf(stderr, "child: %s\n", err.text);
        if (write(ready[1], &ok, 1) != 1)
            _exit(2);
        for (;;)
            pause();
    }
    close(ready[1]);
    char ok = 0;
    ck_assert_int_eq(read(ready[0], &ok, 1), 1);
    close(ready[0]);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ck_assert_msg(ok == 'y', "the child could not open and write its swap");
    char rank_dir[128], names[256];
    snprintf(rank_dir, sizeof rank_dir, "%s/zrt-rank3", base);
    ck_assert_msg(strcmp(entries(rank_dir, names, sizeof names), "") == 0,
                  "a SIGKILLed rank left in %s: %s", rank_dir, names);
    zrt__swap *s = open_ok(&c, "killed", 4 * BS); /* the directory is reused */
    round_trip(s, 0, 100, 3);
    zrt__swap_close(s);
}
END_TEST

/* ---- runner -------------------------------------------------------------- */

/* 0 when /tmp takes O_DIRECT and io_uring works, else 77 (skip). */
static int probe(void)
{
    char dir[64];
    if (test_make_tmpdir(dir, sizeof dir, "test-swap-probe") != 0)
        return ZRT_TEST_SKIP;
    char path[64];
    snprintf(path, sizeof path, "%s/probe", dir);
    int fd = open(path, O_CREAT | O_RDWR | O_DIRECT, 0600);
    int ok = fd >= 0;
    if (fd >= 0)
        close(fd);
    unlink(path);
    rmdir(dir);
    if (!ok) {
        fprintf(stderr, "test_swap: skipped, /tmp refuses O_DIRECT\n");
        return ZRT_TEST_SKIP;
    }
    struct io_uring ring;
    int rc = io_uring_queue_init(2, &ring, 0);
    if (rc < 0) {
        fprintf(stderr, "test_swap: skipped, io_uring_queue_init: %s\n", strerror(-rc));
        return ZRT_TEST_SKIP;
    }
    io_uring_queue_exit(&ring);
    return 0;
}

static Suite *swap_suite(void)
{
    Suite *s = suite_create("swap");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, make_base, remove_base);
    tcase_add_test(tc, test_crc32c_check_value);
    tcase_add_test(tc, test_crc32c_paths_agree);
    tcase_add_test(tc, test_round_trip_sizes);
    tcase_add_loop_test(tc, test_round_trip_regions, 0, 3);
    tcase_add_test(tc, test_never_written);
    tcase_add_test(tc, test_corrupt_byte_detected);
    tcase_add_test(tc, test_unaligned_offset);
    tcase_add_test(tc, test_bad_block_size);
    tcase_add_test(tc, test_uncreatable_dir);
    tcase_add_test(tc, test_capacity_over_fsize_limit);
    tcase_add_test(tc, test_write_past_limit_with_sigxfsz_ignored);
    tcase_add_test(tc, test_close_removes_file);
    tcase_add_test(tc, test_rank_dir_link_refused);
    tcase_add_loop_test(tc, test_planted_file_link_not_followed, 0, 2); /* named_file */
    tcase_add_test(tc, test_rank_dir_not_ours_refused);
    tcase_add_loop_test(tc, test_file_vanishes_after_sigkill, 0, 2); /* named_file */
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int skip = probe();
    if (skip)
        return skip;
    return zrt_check_main(swap_suite());
}
