/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/test_memory.c — Check suite "memory": the memory account
 * (runtime/memory.h) and the cpu backend (runtime/backend.h,
 * runtime/backend_cpu.c).
 *
 * The account must keep current and peak bytes per (tier, category) and per
 * tier exactly, refuse a charge past the tier's limit without charging
 * anything, and explain the refusal in one sentence (tier, category, bytes
 * asked, bytes left, budget, what is in use). The cpu backend must hand out
 * zeroed, 64-byte aligned memory charged to that account, give it back on
 * free, refuse the nvme tier, and run the kernel entry points correctly.
 * Pinning (pin_memory) must mlock a host-tier buffer until it is freed, as
 * VmLck in /proc/self/status shows, refuse other tiers, and explain a refusal
 * by RLIMIT_MEMLOCK. main() returns 0 only if all pass.
 */
#include "kernels/cpu/kernels.h"
#include "runtime/backend.h"
#include "runtime/memory.h"

#include "../common/test_check.h"
#include <linux/capability.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DEV  ZRT_TIER_DEVICE
#define HOST ZRT_TIER_HOST

/* ---- helpers ------------------------------------------------------------- */

static void charge_ok(zrt__mem_account *a, zrt_tier tier, zrt_category cat, int64_t bytes)
{
    zrt__errbuf err = {.rank = -1};
    zrt_status st = zrt__mem_charge(a, &err, tier, cat, bytes, NULL);
    ck_assert_msg(st == ZRT_OK, "charge of %lld failed: %s", (long long)bytes, err.text);
}

/* Every (tier, category) pair other than those listed holds nothing. */
static void expect_cur(const zrt__mem_account *a, zrt_tier tier, zrt_category cat,
                       int64_t cur, int64_t peak)
{
    ck_assert_int_eq(a->stats.current[tier][cat], cur);
    ck_assert_int_eq(a->stats.peak[tier][cat], peak);
}

static void expect_tier(const zrt__mem_account *a, zrt_tier tier, int64_t cur,
                        int64_t peak)
{
    ck_assert_int_eq(a->stats.tier_current[tier], cur);
    ck_assert_int_eq(a->stats.tier_peak[tier], peak);
}

/* expect_mentions(text, needle...): text contains every needle. */
#define expect_mentions(text, ...)                                                       \
    expect_mentions_all((text), (const char *const[]){__VA_ARGS__, NULL})

static void expect_mentions_all(const char *text, const char *const *needles)
{
    for (; *needles; needles++)
        ck_assert_msg(strstr(text, *needles) != NULL,
                      "message '%s' does not mention '%s'", text, *needles);
}

/* ---- the account --------------------------------------------------------- */

START_TEST(test_account_init)
{
    zrt__mem_account a;
    memset(&a, 0x77, sizeof a);
    zrt__mem_account_init(&a);
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        for (int c = 0; c < ZRT_CAT_COUNT; c++)
            expect_cur(&a, (zrt_tier)t, (zrt_category)c, 0, 0);
        expect_tier(&a, (zrt_tier)t, 0, 0);
        ck_assert_int_eq(a.stats.tier_limit[t], 0);
    }
    zrt__mem_set_limit(&a, DEV, 4096);
    ck_assert_int_eq(a.stats.tier_limit[DEV], 4096);
    ck_assert_int_eq(a.stats.tier_limit[HOST], 0);
    zrt__mem_account_free(&a);
}
END_TEST

START_TEST(test_current_and_peak)
{
    zrt__mem_account a;
    zrt__mem_account_init(&a);

    charge_ok(&a, DEV, ZRT_CAT_PARAM, 100);
    charge_ok(&a, DEV, ZRT_CAT_OPTIM, 50);
    charge_ok(&a, DEV, ZRT_CAT_PARAM, 30);
    expect_cur(&a, DEV, ZRT_CAT_PARAM, 130, 130);
    expect_cur(&a, DEV, ZRT_CAT_OPTIM, 50, 50);
    expect_tier(&a, DEV, 180, 180);

    zrt__mem_release(&a, DEV, ZRT_CAT_PARAM, 100);
    expect_cur(&a, DEV, ZRT_CAT_PARAM, 30, 130);
    expect_tier(&a, DEV, 80, 180);

    /* The tier peak is the most held at once (200), not the sum of the
     * category peaks (130 + 50 + 120 = 300). */
    charge_ok(&a, DEV, ZRT_CAT_GRAD, 120);
    expect_cur(&a, DEV, ZRT_CAT_GRAD, 120, 120);
    expect_tier(&a, DEV, 200, 200);
    zrt__mem_release(&a, DEV, ZRT_CAT_OPTIM, 50);
    charge_ok(&a, DEV, ZRT_CAT_OPTIM, 20);
    expect_cur(&a, DEV, ZRT_CAT_OPTIM, 20, 50);
    expect_tier(&a, DEV, 170, 200);

    /* Another tier is counted on its own. */
    charge_ok(&a, HOST, ZRT_CAT_OPTIM, 1000);
    charge_ok(&a, HOST, ZRT_CAT_STAGING, 24);
    expect_cur(&a, HOST, ZRT_CAT_OPTIM, 1000, 1000);
    expect_tier(&a, HOST, 1024, 1024);
    expect_tier(&a, DEV, 170, 200);
    expect_cur(&a, DEV, ZRT_CAT_OPTIM, 20, 50);
    zrt__mem_release(&a, HOST, ZRT_CAT_OPTIM, 1000);
    zrt__mem_release(&a, HOST, ZRT_CAT_STAGING, 24);
    expect_tier(&a, HOST, 0, 1024);

    /* Back to nothing; peaks stay. */
    zrt__mem_release(&a, DEV, ZRT_CAT_PARAM, 30);
    zrt__mem_release(&a, DEV, ZRT_CAT_GRAD, 120);
    zrt__mem_release(&a, DEV, ZRT_CAT_OPTIM, 20);
    expect_tier(&a, DEV, 0, 200);
    expect_cur(&a, DEV, ZRT_CAT_PARAM, 0, 130);
    expect_cur(&a, DEV, ZRT_CAT_GRAD, 0, 120);
    expect_cur(&a, DEV, ZRT_CAT_OPTIM, 0, 50);
    for (int c = 0; c < ZRT_CAT_COUNT; c++) {
        if (c == ZRT_CAT_PARAM || c == ZRT_CAT_GRAD || c == ZRT_CAT_OPTIM)
            continue;
        expect_cur(&a, DEV, (zrt_category)c, 0, 0);
        if (c != ZRT_CAT_STAGING)
            expect_cur(&a, HOST, (zrt_category)c, 0, 0);
    }
    expect_tier(&a, ZRT_TIER_NVME, 0, 0);
    zrt__mem_account_free(&a);
}
END_TEST

START_TEST(test_limit_refuses_and_explains)
{
    zrt__mem_account a;
    zrt__mem_account_init(&a);
    zrt__mem_set_limit(&a, DEV, 1000);
    charge_ok(&a, DEV, ZRT_CAT_PARAM, 600);

    zrt__mem_account before;
    memcpy(&before, &a, sizeof a); /* bytewise: compared with memcmp */
    zrt__errbuf err = {.rank = -1};
    zrt_status st = zrt__mem_charge(&a, &err, DEV, ZRT_CAT_OPTIM, 500, NULL);
    ck_assert_int_eq(st, ZRT_ERR_OUT_OF_MEMORY);
    ck_assert_msg(memcmp(&a, &before, sizeof a) == 0,
                  "a refused charge changed the account");
    expect_tier(&a, DEV, 600, 600);
    expect_mentions(err.text, "device", "'optim'", "500 bytes", "400 bytes", "1000 bytes",
                    "param", "600 bytes" /* what param holds */);

    /* Up to the limit exactly is fine; one byte more is not. */
    charge_ok(&a, DEV, ZRT_CAT_OPTIM, 400);
    expect_tier(&a, DEV, 1000, 1000);
    st = zrt__mem_charge(&a, &err, DEV, ZRT_CAT_GRAD, 1, "grad shard of layer 3");
    ck_assert_int_eq(st, ZRT_ERR_OUT_OF_MEMORY);
    expect_tier(&a, DEV, 1000, 1000);
    expect_cur(&a, DEV, ZRT_CAT_GRAD, 0, 0);
    expect_mentions(err.text, "'grad'", "grad shard of layer 3", "0 bytes", "optim");

    /* A NULL errbuf still refuses. */
    ck_assert_int_eq(zrt__mem_charge(&a, NULL, DEV, ZRT_CAT_GRAD, 1, NULL),
                     ZRT_ERR_OUT_OF_MEMORY);
    expect_tier(&a, DEV, 1000, 1000);

    /* The device limit does not bind the host tier. */
    charge_ok(&a, HOST, ZRT_CAT_OPTIM, 5000);
    expect_tier(&a, HOST, 5000, 5000);

    /* After a release the freed room is usable again. */
    zrt__mem_release(&a, DEV, ZRT_CAT_PARAM, 600);
    charge_ok(&a, DEV, ZRT_CAT_GRAD, 600);
    expect_tier(&a, DEV, 1000, 1000);
    zrt__mem_account_free(&a);
}
END_TEST

START_TEST(test_rank_in_oom_message)
{
    zrt__mem_account a;
    zrt__mem_account_init(&a);
    zrt__mem_set_limit(&a, DEV, 2048);
    zrt__errbuf err = {.rank = 3};
    ck_assert_int_eq(zrt__mem_charge(&a, &err, DEV, ZRT_CAT_MASTER, 4096, NULL),
                     ZRT_ERR_OUT_OF_MEMORY);
    ck_assert_int_eq(strncmp(err.text, "rank 3: ", 8), 0);
    expect_mentions(err.text, "'master'", "4.00 KiB (4096 bytes)",
                    "2.00 KiB (2048 bytes)", "nothing" /* nothing in use yet */);
    zrt__mem_account_free(&a);
}
END_TEST

START_TEST(test_limit_zero_is_unlimited)
{
    zrt__mem_account a;
    zrt__mem_account_init(&a);
    zrt__mem_set_limit(&a, DEV, 0);
    charge_ok(&a, DEV, ZRT_CAT_PARAM, (int64_t)1 << 40);
    charge_ok(&a, DEV, ZRT_CAT_OPTIM, (int64_t)3 << 40);
    expect_tier(&a, DEV, (int64_t)4 << 40, (int64_t)4 << 40);

    /* Setting a limit then clearing it lifts it. */
    zrt__mem_set_limit(&a, DEV, 100);
    ck_assert_int_eq(zrt__mem_charge(&a, NULL, DEV, ZRT_CAT_PARAM, 1, NULL),
                     ZRT_ERR_OUT_OF_MEMORY);
    zrt__mem_set_limit(&a, DEV, 0);
    charge_ok(&a, DEV, ZRT_CAT_PARAM, 1);
    zrt__mem_account_free(&a);
}
END_TEST

/* ---- the cpu backend ----------------------------------------------------- */

typedef struct fixture {
    zrt__mem_account acct;
    zrt__errbuf err;
    zrt__backend *be;
} fixture;

/* A cpu backend on a fresh account whose device tier holds device_limit
 * bytes (0: unlimited); returns the backend's ops. */
static const zrt__backend_ops *fixture_init(fixture *f, int64_t device_limit)
{
    zrt__mem_account_init(&f->acct);
    zrt__mem_set_limit(&f->acct, DEV, device_limit);
    f->err = (zrt__errbuf){.rank = -1};
    f->be = NULL;
    ck_assert_int_eq(zrt__backend_cpu_create(&f->acct, &f->err, NULL, &f->be), ZRT_OK);
    ck_assert_ptr_nonnull(f->be);
    ck_assert_ptr_nonnull(f->be->ops);
    ck_assert_ptr_eq(f->be->acct, &f->acct);
    ck_assert_ptr_eq(f->be->err, &f->err);
    return f->be->ops;
}

static void fixture_deinit(fixture *f)
{
    f->be->ops->destroy(f->be);
    zrt__mem_account_free(&f->acct);
}

/* An alloc that must fail with status want: *out and the account stay as
 * they were. */
static void expect_alloc_refused(fixture *f, size_t bytes, zrt_tier tier,
                                 zrt_category cat, const char *name, zrt_status want)
{
    zrt__buf b, before;
    zrt__mem_account acct_before;
    memset(&b, 0x3C, sizeof b);
    memcpy(&before, &b, sizeof b);
    memcpy(&acct_before, &f->acct, sizeof f->acct);
    ck_assert_int_eq(f->be->ops->alloc(f->be, bytes, tier, cat, name, &b), want);
    ck_assert_msg(memcmp(&b, &before, sizeof b) == 0, "*out written on failure");
    ck_assert_msg(memcmp(&f->acct, &acct_before, sizeof f->acct) == 0,
                  "a refused alloc changed the account");
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

START_TEST(test_cpu_create)
{
    fixture f;
    fixture_init(&f, 0);
    ck_assert_str_eq(f.be->ops->name, "cpu");
    ck_assert_int_eq(f.be->caps.device_is_host, 1);
    ck_assert(f.be->ops->alloc != NULL);
    ck_assert(f.be->ops->free != NULL);
    ck_assert(f.be->ops->pin != NULL);
    ck_assert(f.be->ops->copy != NULL);
    ck_assert(f.be->ops->fill_f32 != NULL);
    ck_assert(f.be->ops->scale_f32 != NULL);
    ck_assert(f.be->ops->add_f32 != NULL);
    ck_assert(f.be->ops->sqnorm_f32 != NULL);
    ck_assert(f.be->ops->adamw_f32 != NULL);
    /* optional ops: a synchronous backend leaves them to the defaults */
    ck_assert_int_eq(zrt__be_synchronize(f.be), ZRT_OK);
    ck_assert_int_eq(zrt__be_on_device(f.be, &f), 0);
    fixture_deinit(&f);
}
END_TEST

START_TEST(test_cpu_alloc_free)
{
    fixture f;
    const zrt__backend_ops *ops = fixture_init(&f, 0);
    static const size_t sizes[] = {1, 63, 64, 1000, 4099, 1 << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        zrt__buf b;
        ck_assert_int_eq(ops->alloc(f.be, n, DEV, ZRT_CAT_PARAM, "p", &b), ZRT_OK);
        ck_assert_ptr_nonnull(b.ptr);
        ck_assert_uint_eq((uintptr_t)b.ptr % 64, 0);
        ck_assert_uint_eq(b.bytes, n);
        ck_assert_int_eq(b.tier, DEV);
        ck_assert_int_eq(b.cat, ZRT_CAT_PARAM);
        ck_assert_msg(all_zero(b.ptr, n), "alloc of %zu bytes not zeroed", n);
        ck_assert_int_eq(f.acct.stats.current[DEV][ZRT_CAT_PARAM], (int64_t)n);
        ck_assert_int_ge(f.acct.stats.peak[DEV][ZRT_CAT_PARAM], (int64_t)n);
        ck_assert_int_eq(f.acct.stats.tier_current[DEV], (int64_t)n);
        memset(b.ptr, 0xAB, n); /* the whole size is writable */

        ops->free(f.be, &b);
        zrt__buf zero = {0};
        ck_assert_msg(memcmp(&b, &zero, sizeof b) == 0, "free did not zero the buf");
        ck_assert_int_eq(f.acct.stats.current[DEV][ZRT_CAT_PARAM], 0);
        ck_assert_int_eq(f.acct.stats.tier_current[DEV], 0);

        /* Freeing the zeroed buf again is a no-op. */
        ops->free(f.be, &b);
        ck_assert_int_eq(f.acct.stats.tier_current[DEV], 0);

        /* A second allocation of the same size (likely the same memory,
         * dirtied above) is zeroed too. */
        ck_assert_int_eq(ops->alloc(f.be, n, DEV, ZRT_CAT_PARAM, "p", &b), ZRT_OK);
        ck_assert_msg(all_zero(b.ptr, n), "re-alloc of %zu bytes not zeroed", n);
        ops->free(f.be, &b);
    }
    ck_assert_int_eq(f.acct.stats.peak[DEV][ZRT_CAT_PARAM], 1 << 20);

    /* Host tier, other category; two live at once. */
    zrt__buf h, d;
    ck_assert_int_eq(ops->alloc(f.be, 333, HOST, ZRT_CAT_GRAD, NULL, &h), ZRT_OK);
    ck_assert_int_eq(ops->alloc(f.be, 100, DEV, ZRT_CAT_OPTIM, NULL, &d), ZRT_OK);
    ck_assert_uint_eq((uintptr_t)h.ptr % 64, 0);
    ck_assert_int_eq(h.tier, HOST);
    expect_cur(&f.acct, HOST, ZRT_CAT_GRAD, 333, 333);
    expect_cur(&f.acct, DEV, ZRT_CAT_OPTIM, 100, 100);
    ck_assert_int_eq(f.acct.stats.tier_current[HOST], 333);
    ck_assert_int_eq(f.acct.stats.tier_current[DEV], 100);
    ops->free(f.be, &h);
    ck_assert_int_eq(f.acct.stats.tier_current[HOST], 0);
    ck_assert_int_eq(f.acct.stats.tier_current[DEV], 100);
    ops->free(f.be, &d);
    ck_assert_int_eq(f.acct.stats.tier_current[DEV], 0);

    /* Freeing a zero buffer that was never allocated. */
    zrt__buf never = {0};
    ops->free(f.be, &never);
    ck_assert_int_eq(f.acct.stats.tier_current[DEV], 0);
    fixture_deinit(&f);
}
END_TEST

START_TEST(test_cpu_alloc_zero_bytes)
{
    fixture f;
    fixture_init(&f, 1000);
    zrt__buf b;
    ck_assert_int_eq(f.be->ops->alloc(f.be, 0, DEV, ZRT_CAT_COMM, "empty", &b), ZRT_OK);
    ck_assert_uint_eq(b.bytes, 0);
    ck_assert_int_eq(f.acct.stats.tier_current[DEV], 0);
    f.be->ops->free(f.be, &b);
    ck_assert_int_eq(f.acct.stats.tier_current[DEV], 0);
    ck_assert_int_eq(f.acct.stats.current[DEV][ZRT_CAT_COMM], 0);
    fixture_deinit(&f);
}
END_TEST

START_TEST(test_cpu_alloc_nvme_refused)
{
    fixture f;
    fixture_init(&f, 0);
    expect_alloc_refused(&f, 64, ZRT_TIER_NVME, ZRT_CAT_OPTIM, "moments",
                         ZRT_ERR_INVALID_ARG);
    expect_mentions(f.err.text, "nvme");
    fixture_deinit(&f);
}
END_TEST

START_TEST(test_cpu_alloc_past_limit)
{
    fixture f;
    const zrt__backend_ops *ops = fixture_init(&f, 1000);
    zrt__buf a, b;
    ck_assert_int_eq(ops->alloc(f.be, 800, DEV, ZRT_CAT_PARAM, "weights", &a), ZRT_OK);

    expect_alloc_refused(&f, 300, DEV, ZRT_CAT_GRAD, "grad shard of layer 3",
                         ZRT_ERR_OUT_OF_MEMORY);
    expect_mentions(f.err.text, "grad shard of layer 3", "device", "'grad'", "300 bytes",
                    "200 bytes", "1000 bytes", "param");

    /* The host tier is not bound by the device capacity. */
    zrt__buf h;
    ck_assert_int_eq(ops->alloc(f.be, 4096, HOST, ZRT_CAT_OPTIM, NULL, &h), ZRT_OK);
    ops->free(f.be, &h);

    /* Freeing makes room. */
    ops->free(f.be, &a);
    ck_assert_int_eq(ops->alloc(f.be, 1000, DEV, ZRT_CAT_GRAD, NULL, &b), ZRT_OK);
    expect_cur(&f.acct, DEV, ZRT_CAT_GRAD, 1000, 1000);
    ops->free(f.be, &b);
    ck_assert_int_eq(f.acct.stats.tier_current[DEV], 0);
    ck_assert_int_eq(f.acct.stats.tier_peak[DEV], 1000);
    fixture_deinit(&f);
}
END_TEST

/* ---- pinning ------------------------------------------------------------- */

/* VmLck of this process in KiB: what mlock holds. */
static long vmlck_kib(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    ck_assert_msg(fp != NULL, "cannot read /proc/self/status");
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "VmLck: %ld kB", &kib) == 1)
            break;
    fclose(fp);
    ck_assert_msg(kib >= 0, "no VmLck line in /proc/self/status");
    return kib;
}

static long pages_kib(size_t bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (long)((bytes + page - 1) / page * page / 1024);
}

/* Whether this process may mlock `bytes` now, tried on a scratch mapping. */
static int can_mlock(size_t bytes)
{
    void *p =
        mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_msg(p != MAP_FAILED, "mmap of %zu bytes failed", bytes);
    int ok = mlock(p, bytes) == 0;
    if (ok)
        munlock(p, bytes);
    munmap(p, bytes);
    return ok;
}

/* Whether an mlock that succeeds shows in VmLck. AddressSanitizer's mlock
 * returns 0 and locks nothing: in that build pinning cannot be observed. */
static int mlock_shows(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *p =
        mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_msg(p != MAP_FAILED, "mmap of a page failed");
    long before = vmlck_kib();
    int shows = mlock(p, page) != 0 || vmlck_kib() > before;
    munlock(p, page);
    munmap(p, page);
    if (!shows)
        printf("mlock succeeds but locks nothing (a sanitizer build): pinning not "
               "tested\n");
    return shows;
}

/* Whether pinning `bytes` can be observed here: an mlock must show in VmLck
 * and be allowed for that many bytes. Says why not. */
static int pinning_testable(size_t bytes)
{
    if (!mlock_shows())
        return 0;
    if (!can_mlock(bytes)) {
        printf("cannot mlock %zu bytes here (ulimit -l): pinning not tested\n", bytes);
        return 0;
    }
    return 1;
}

/* Sets or clears CAP_IPC_LOCK in this thread's effective set (it stays
 * permitted, so it can come back); returns whether it was effective. Root
 * has it, and it makes mlock ignore RLIMIT_MEMLOCK. */
static int set_ipc_lock(int on)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) != 0)
        return 0;
    const unsigned bit = 1u << CAP_IPC_LOCK; /* CAP_IPC_LOCK < 32: data[0] */
    int was = (data[0].effective & bit) != 0;
    if (on && (data[0].permitted & bit))
        data[0].effective |= bit;
    else
        data[0].effective &= ~bit;
    syscall(SYS_capset, &hdr, data);
    return was;
}

START_TEST(test_cpu_pin_host)
{
    const size_t n = (1 << 20) + 100; /* not a whole number of pages */
    if (!pinning_testable(n))
        return;
    fixture f;
    const zrt__backend_ops *ops = fixture_init(&f, 0);
    long base = vmlck_kib();
    zrt__buf b;
    ck_assert_int_eq(ops->alloc(f.be, n, HOST, ZRT_CAT_OPTIM, "moments", &b), ZRT_OK);
    ck_assert_int_eq(b.pinned, 0);
    ck_assert_uint_eq(zrt__backend_cpu_pinned_bytes(f.be), 0);
    ck_assert_int_eq(vmlck_kib(), base);

    ck_assert_int_eq(ops->pin(f.be, &b), ZRT_OK);
    ck_assert_int_eq(b.pinned, 1);
    ck_assert_uint_eq(zrt__backend_cpu_pinned_bytes(f.be), n);
    ck_assert_int_ge(vmlck_kib() - base, pages_kib(n));
    expect_cur(&f.acct, HOST, ZRT_CAT_OPTIM, (int64_t)n, (int64_t)n); /* unchanged */
    memset(b.ptr, 0x5A, n);

    /* Pinning again does nothing. */
    ck_assert_int_eq(ops->pin(f.be, &b), ZRT_OK);
    ck_assert_uint_eq(zrt__backend_cpu_pinned_bytes(f.be), n);

    /* Freeing unlocks. */
    ops->free(f.be, &b);
    ck_assert_int_eq(b.pinned, 0);
    ck_assert_uint_eq(zrt__backend_cpu_pinned_bytes(f.be), 0);
    ck_assert_int_eq(vmlck_kib(), base);
    ck_assert_int_eq(f.acct.stats.tier_current[HOST], 0);

    /* The same size again (the cached block, likely): unpinned until asked. */
    ck_assert_int_eq(ops->alloc(f.be, n, HOST, ZRT_CAT_OPTIM, "moments", &b), ZRT_OK);
    ck_assert_int_eq(b.pinned, 0);
    ck_assert_int_eq(vmlck_kib(), base);
    ck_assert_msg(all_zero(b.ptr, n), "re-alloc of a pinned block not zeroed");
    ck_assert_int_eq(ops->pin(f.be, &b), ZRT_OK);
    ck_assert_int_ge(vmlck_kib() - base, pages_kib(n));
    ops->free(f.be, &b);
    ck_assert_int_eq(vmlck_kib(), base);
    ck_assert_uint_eq(zrt__backend_cpu_pinned_bytes(f.be), 0);

    /* An empty host buffer pins as nothing. */
    ck_assert_int_eq(ops->alloc(f.be, 0, HOST, ZRT_CAT_STAGING, NULL, &b), ZRT_OK);
    ck_assert_int_eq(ops->pin(f.be, &b), ZRT_OK);
    ck_assert_uint_eq(zrt__backend_cpu_pinned_bytes(f.be), 0);
    ops->free(f.be, &b);
    fixture_deinit(&f);
}
END_TEST

START_TEST(test_cpu_pin_neighbours)
{
    /* Page locks do not nest: two small pinned buffers must not share a
     * page, or freeing one would unlock the other. */
    if (!pinning_testable(2 * (size_t)sysconf(_SC_PAGESIZE)))
        return;
    fixture f;
    const zrt__backend_ops *ops = fixture_init(&f, 0);
    long base = vmlck_kib();
    zrt__buf a, b;
    ck_assert_int_eq(ops->alloc(f.be, 100, HOST, ZRT_CAT_STAGING, NULL, &a), ZRT_OK);
    ck_assert_int_eq(ops->alloc(f.be, 200, HOST, ZRT_CAT_STAGING, NULL, &b), ZRT_OK);
    ck_assert_uint_eq((uintptr_t)a.ptr % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
    ck_assert_uint_eq((uintptr_t)b.ptr % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
    ck_assert_int_eq(ops->pin(f.be, &a), ZRT_OK);
    ck_assert_int_eq(ops->pin(f.be, &b), ZRT_OK);
    ck_assert_uint_eq(zrt__backend_cpu_pinned_bytes(f.be), 300);
    ck_assert_int_ge(vmlck_kib() - base, 2 * pages_kib(1));

    ops->free(f.be, &a);
    ck_assert_uint_eq(zrt__backend_cpu_pinned_bytes(f.be), 200);
    ck_assert_int_ge(vmlck_kib() - base, pages_kib(1)); /* b still locked */
    ops->free(f.be, &b);
    ck_assert_uint_eq(zrt__backend_cpu_pinned_bytes(f.be), 0);
    ck_assert_int_eq(vmlck_kib(), base);
    fixture_deinit(&f);
}
END_TEST

START_TEST(test_cpu_pin_device_refused)
{
    fixture f;
    const zrt__backend_ops *ops = fixture_init(&f, 0);
    long base = vmlck_kib();
    zrt__buf d, before;
    ck_assert_int_eq(ops->alloc(f.be, 4096, DEV, ZRT_CAT_PARAM, "weights", &d), ZRT_OK);
    memcpy(&before, &d, sizeof d);
    ck_assert_int_eq(ops->pin(f.be, &d), ZRT_ERR_INVALID_ARG);
    ck_assert_msg(memcmp(&d, &before, sizeof d) == 0, "a refused pin changed the buf");
    ck_assert_uint_eq(zrt__backend_cpu_pinned_bytes(f.be), 0);
    ck_assert_int_eq(vmlck_kib(), base);
    expect_mentions(f.err.text, "device-tier", "'param'", "4.00 KiB (4096 bytes)",
                    "host-tier");
    ops->free(f.be, &d);
    ck_assert_int_eq(ops->pin(f.be, NULL), ZRT_ERR_INVALID_ARG);
    fixture_deinit(&f);
}
END_TEST

START_TEST(test_cpu_pin_past_memlock_limit)
{
    enum { LIMIT = 64 << 10, N_BYTES = 1 << 20 };
    if (!mlock_shows())
        return;
    fixture f;
    const zrt__backend_ops *ops = fixture_init(&f, 0);
    zrt__buf b, before;
    ck_assert_int_eq(ops->alloc(f.be, N_BYTES, HOST, ZRT_CAT_OPTIM, "moments", &b),
                     ZRT_OK);
    memcpy(&before, &b, sizeof b);
    long base = vmlck_kib();

    /* Lower the soft limit below the buffer; as root, also take
     * CAP_IPC_LOCK out of the effective set so the limit applies. Nothing
     * is asserted until both are restored. */
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_MEMLOCK, &old), 0);
    struct rlimit low = {.rlim_cur = old.rlim_cur < LIMIT ? old.rlim_cur : LIMIT,
                         .rlim_max = old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_MEMLOCK, &low), 0);
    int had_ipc_lock = set_ipc_lock(0);
    int enforced = !can_mlock(N_BYTES);
    zrt_status st = enforced ? ops->pin(f.be, &b) : ZRT_OK;
    long locked = vmlck_kib();
    set_ipc_lock(had_ipc_lock);
    ck_assert_int_eq(setrlimit(RLIMIT_MEMLOCK, &old), 0);

    if (!enforced) {
        printf("mlock limit not enforced for this user (root with CAP_IPC_LOCK): "
               "failure path not exercised\n");
    } else {
        char limit[64];
        ck_assert_int_eq(st, ZRT_ERR_OUT_OF_MEMORY);
        ck_assert_msg(memcmp(&b, &before, sizeof b) == 0, "a failed pin changed the buf");
        ck_assert_uint_eq(zrt__backend_cpu_pinned_bytes(f.be), 0);
        ck_assert_int_eq(locked, base);
        expect_mentions(f.err.text, "RLIMIT_MEMLOCK", "ulimit -l", "pin_memory",
                        "1.00 MiB (1048576 bytes)", "host-tier", "'optim'",
                        zrt__fmt_bytes((long long)low.rlim_cur, limit, sizeof limit));
    }
    ops->free(f.be, &b);
    ck_assert_int_eq(f.acct.stats.tier_current[HOST], 0);
    fixture_deinit(&f);
}
END_TEST

/* ---- kernels and copies through the backend ------------------------------ */

#define N 13 /* odd: a vector body and a scalar tail */

START_TEST(test_cpu_kernels)
{
    fixture f;
    const zrt__backend_ops *ops = fixture_init(&f, 0);
    zrt__buf bx, by;
    ck_assert_int_eq(
        ops->alloc(f.be, (N + 1) * sizeof(float), DEV, ZRT_CAT_ACTIVATION, NULL, &bx),
        ZRT_OK);
    ck_assert_int_eq(
        ops->alloc(f.be, (N + 1) * sizeof(float), DEV, ZRT_CAT_ACTIVATION, NULL, &by),
        ZRT_OK);
    float *x = bx.ptr, *y = by.ptr;
    x[N] = y[N] = -77.0f; /* guard past n */

    ck_assert_int_eq(ops->fill_f32(f.be, x, N, 2.5f), ZRT_OK);
    for (int i = 0; i < N; i++)
        ck_assert_float_eq(x[i], 2.5f);
    ck_assert_float_eq(x[N], -77.0f);

    ck_assert_int_eq(ops->scale_f32(f.be, x, N, -2.0f), ZRT_OK);
    for (int i = 0; i < N; i++)
        ck_assert_float_eq(x[i], -5.0f);
    ck_assert_float_eq(x[N], -77.0f);

    for (int i = 0; i < N; i++) {
        x[i] = (float)i;
        y[i] = 0.5f * (float)i;
    }
    ck_assert_int_eq(ops->add_f32(f.be, x, y, N), ZRT_OK);
    for (int i = 0; i < N; i++) {
        ck_assert_float_eq(x[i], 1.5f * (float)i);
        ck_assert_float_eq(y[i], 0.5f * (float)i); /* src untouched */
    }
    ck_assert_float_eq(x[N], -77.0f);

    for (int i = 0; i < N; i++)
        x[i] = (float)(i + 1);
    double sq = -1.0;
    ck_assert_int_eq(ops->sqnorm_f32(f.be, x, N, &sq), ZRT_OK);
    ck_assert_double_eq(sq, 819.0); /* 1^2 + ... + 13^2 */
    ck_assert_int_eq(ops->sqnorm_f32(f.be, x, 0, &sq), ZRT_OK);
    ck_assert_double_eq(sq, 0.0);

    /* copy: exact, and only the bytes asked. */
    for (int i = 0; i < N; i++)
        y[i] = 0.0f;
    ck_assert_int_eq(ops->copy(f.be, y, x, (N - 1) * sizeof(float)), ZRT_OK);
    for (int i = 0; i < N - 1; i++)
        ck_assert_float_eq(y[i], (float)(i + 1));
    ck_assert_float_eq(y[N - 1], 0.0f);
    ck_assert_int_eq(ops->copy(f.be, y, x, 0), ZRT_OK);
    ck_assert_float_eq(y[0], 1.0f);

    ops->free(f.be, &bx);
    ops->free(f.be, &by);
    ck_assert_int_eq(f.acct.stats.tier_current[DEV], 0);
    fixture_deinit(&f);
}
END_TEST

/* PyTorch's AdamW in double, for one element. */
static void adamw_ref(double *p, double g, double *m, double *v, double lr, double b1,
                      double b2, double eps, double wd, long t)
{
    *p *= 1.0 - lr * wd;
    *m = b1 * *m + (1.0 - b1) * g;
    *v = b2 * *v + (1.0 - b2) * g * g;
    double mhat = *m / (1.0 - pow(b1, (double)t));
    double vhat = *v / (1.0 - pow(b2, (double)t));
    *p -= lr * mhat / (sqrt(vhat) + eps);
}

START_TEST(test_cpu_adamw)
{
    fixture f;
    const zrt__backend_ops *ops = fixture_init(&f, 0);
    const float lr = 0.1f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
    float p[N], g[N], m[N], v[N];
    double rp[N], rm[N], rv[N];
    for (int i = 0; i < N; i++) {
        p[i] = 1.0f - 0.125f * (float)i;
        m[i] = v[i] = 0.0f;
        rp[i] = p[i];
        rm[i] = rv[i] = 0.0;
    }
    for (long t = 1; t <= 3; t++) {
        for (int i = 0; i < N; i++)
            g[i] = (i % 4 == 0)
                       ? 0.0f
                       : (float)((i % 3) - 1) * 0.25f * (float)t + 0.0625f * (float)i;
        zrt_adamw_scalars s = zrt_adamw_scalars_make(lr, b1, b2, eps, wd, t);
        ck_assert_int_eq(ops->adamw_f32(f.be, p, p, g, m, v, N, &s), ZRT_OK);
        for (int i = 0; i < N; i++) {
            adamw_ref(&rp[i], g[i], &rm[i], &rv[i], lr, b1, b2, eps, wd, t);
            ck_assert_msg(fabs(p[i] - rp[i]) <= 1e-5 * (1.0 + fabs(rp[i])),
                          "step %ld p[%d] = %.9g, want %.9g", t, i, p[i], rp[i]);
            ck_assert_msg(fabs(m[i] - rm[i]) <= 1e-6 * (1.0 + fabs(rm[i])),
                          "step %ld m[%d] = %.9g, want %.9g", t, i, m[i], rm[i]);
            ck_assert_msg(fabs(v[i] - rv[i]) <= 1e-6 * (1.0 + fabs(rv[i])),
                          "step %ld v[%d] = %.9g, want %.9g", t, i, v[i], rv[i]);
        }
    }
    fixture_deinit(&f);
}
END_TEST

START_TEST(test_cpu_adamw_first_step)
{
    /* At t = 1 the bias-corrected step is lr * g / (|g| + eps): about lr
     * against the gradient's sign, whatever its size. */
    fixture f;
    fixture_init(&f, 0);
    float p[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    const float g[4] = {0.5f, -3.0f, 1e-3f, 0.0f};
    float m[4] = {0}, v[4] = {0};
    zrt_adamw_scalars s = zrt_adamw_scalars_make(0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1);
    ck_assert_int_eq(f.be->ops->adamw_f32(f.be, p, p, g, m, v, 4, &s), ZRT_OK);
    ck_assert_float_eq_tol(p[0], 0.9f, 1e-6f);
    ck_assert_float_eq_tol(p[1], 1.1f, 1e-6f);
    ck_assert_float_eq_tol(p[2], 0.9f, 1e-5f);
    ck_assert_float_eq(p[3], 1.0f); /* no gradient, no decay: unchanged */
    ck_assert_float_eq_tol(m[1], -0.3f, 1e-6f);
    ck_assert_float_eq_tol(v[1], 0.009f, 1e-6f); /* (1 - 0.999f) * 9 */
    fixture_deinit(&f);
}
END_TEST

/* The pool splits a long update across its workers: every element must be
 * updated, whatever n is (regression: n / workers a multiple of 16 with a
 * remainder left the last elements without an update). Mixed too. */
START_TEST(test_cpu_adamw_split_covers_all)
{
    zrt__errbuf err = {.rank = -1};
    zrt__pool *pool = NULL;
    ck_assert_int_eq(zrt__pool_create(3, 0, 1, &err, &pool), ZRT_OK);
    int workers = zrt__pool_size(pool);
    zrt__mem_account acct;
    zrt__mem_account_init(&acct);
    zrt__backend *be = NULL;
    ck_assert_int_eq(zrt__backend_cpu_create(&acct, &err, pool, &be), ZRT_OK);
    const size_t lengths[] = {(size_t)workers * 65536 + 1, (size_t)workers * 65536 + 3,
                              (size_t)workers * 70000 + (size_t)workers - 1, 1 << 17};
    zrt_adamw_scalars s = zrt_adamw_scalars_make(0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1);
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        size_t n = lengths[k];
        float *p = malloc(n * sizeof *p), *g = malloc(n * sizeof *g);
        float *m = calloc(n, sizeof *m), *v = calloc(n, sizeof *v);
        float *master = malloc(n * sizeof *master);
        uint16_t *g16 = malloc(n * sizeof *g16), *p16 = malloc(n * sizeof *p16);
        ck_assert(p && g && m && v && master && g16 && p16);
        for (size_t i = 0; i < n; i++) {
            p[i] = master[i] = 1.0f;
            g[i] = 0.5f;
            g16[i] = 0x3f00; /* bf16 0.5 */
        }
        ck_assert_int_eq(be->ops->adamw_f32(be, p, p, g, m, v, n, &s), ZRT_OK);
        size_t stale = n; /* one assertion: Check's are slow in a loop */
        for (size_t i = 0; i < n && stale == n; i++)
            stale = p[i] < 1.0f ? n : i;
        ck_assert_msg(stale == n, "%d workers, n %zu: element %zu not updated", workers,
                      n, stale);
        memset(m, 0, n * sizeof *m);
        memset(v, 0, n * sizeof *v);
        ck_assert_int_eq(
            be->ops->adamw_mixed(be, master, p16, g16, m, v, n, 1.0f, &s, ZRT_HALF_BF16),
            ZRT_OK);
        for (size_t i = 0; i < n && stale == n; i++)
            stale = master[i] < 1.0f ? n : i;
        ck_assert_msg(stale == n, "mixed, %d workers, n %zu: element %zu not updated",
                      workers, n, stale);
        free(p), free(g), free(m), free(v), free(master), free(g16), free(p16);
    }
    be->ops->destroy(be);
    zrt__pool_destroy(pool);
    zrt__mem_account_free(&acct);
}
END_TEST

int main(void)
{
    return zrt_check_main(ZRT_CHECK_SUITE(
        "memory", 0, test_account_init, test_current_and_peak,
        test_limit_refuses_and_explains, test_rank_in_oom_message,
        test_limit_zero_is_unlimited, test_cpu_create, test_cpu_alloc_free,
        test_cpu_alloc_zero_bytes, test_cpu_alloc_nvme_refused, test_cpu_alloc_past_limit,
        test_cpu_pin_host, test_cpu_pin_neighbours, test_cpu_pin_device_refused,
        test_cpu_pin_past_memlock_limit, test_cpu_kernels, test_cpu_adamw,
        test_cpu_adamw_first_step, test_cpu_adamw_split_covers_all));
}
