/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/test_status.c — Check suite "status": the names users print and
 * match on (zrt_status_str / zrt_status_text / zrt_category_str /
 * zrt_tier_str / zrt_dtype_str / zrt_dtype_size, runtime/status.c) and the
 * last-error sentence every failure writes (zrt__fail and zrt__fmt_bytes,
 * runtime/error.c). Names come from the same X-macro lists the enums are
 * generated from, so a code added to a list is checked without editing this
 * file. main() returns 0 only if all pass.
 */
#include "runtime/error.h"
#include "zrt/zrt.h"

#include "../common/test_check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- status codes -------------------------------------------------------- */

typedef struct status_row {
    zrt_status status;
    int value;
    const char *name;
    const char *text;
} status_row;

static const status_row status_rows[] = {
#define ROW(name, value, text) {name, value, #name, text},
    ZRT_STATUS_LIST(ROW)
#undef ROW
};
#define NSTATUS ((int)(sizeof status_rows / sizeof status_rows[0]))

START_TEST(test_status_names)
{
    ck_assert_int_eq(ZRT_OK, 0);
    ck_assert_str_eq(zrt_status_str(ZRT_OK), "ZRT_OK");
    ck_assert_str_eq(zrt_status_str(ZRT_ERR_OUT_OF_MEMORY), "ZRT_ERR_OUT_OF_MEMORY");
    for (int i = 0; i < NSTATUS; i++) {
        const status_row *row = &status_rows[i];
        ck_assert_int_eq((int)row->status, row->value);
        const char *name = zrt_status_str(row->status);
        const char *text = zrt_status_text(row->status);
        ck_assert_ptr_nonnull(name);
        ck_assert_ptr_nonnull(text);
        ck_assert_str_eq(name, row->name);
        ck_assert_str_eq(text, row->text);
        ck_assert_int_gt((int)strlen(text), 0);
        for (int j = 0; j < i; j++) {
            ck_assert_int_ne(row->value, status_rows[j].value);
            ck_assert_str_ne(name, zrt_status_str(status_rows[j].status));
            ck_assert_str_ne(text, zrt_status_text(status_rows[j].status));
        }
    }
}
END_TEST

START_TEST(test_status_out_of_range)
{
    const int bad[] = {-1, -1000, NSTATUS, NSTATUS + 1, 1000, 0x7fffffff};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int known = 0;
        for (int j = 0; j < NSTATUS; j++)
            known |= status_rows[j].value == bad[i];
        if (known)
            continue; /* a list that grew past NSTATUS values */
        zrt_status st = (zrt_status)bad[i];
        ck_assert_str_eq(zrt_status_str(st), "ZRT_ERR_UNKNOWN");
        ck_assert_ptr_nonnull(zrt_status_text(st));
        ck_assert_int_gt((int)strlen(zrt_status_text(st)), 0);
    }
}
END_TEST

/* ---- categories, tiers, dtypes ------------------------------------------- */

static const char *const category_texts[] = {
#define CAT(name, text) text,
    ZRT_CATEGORY_LIST(CAT)
#undef CAT
};

START_TEST(test_category_names)
{
    ck_assert_int_eq((int)(sizeof category_texts / sizeof category_texts[0]),
                     ZRT_CAT_COUNT);
    ck_assert_str_eq(zrt_category_str(ZRT_CAT_PARAM), "param");
    ck_assert_str_eq(zrt_category_str(ZRT_CAT_OPTIM), "optim");
    ck_assert_str_eq(zrt_category_str(ZRT_CAT_GRAD_BUCKET), "grad-bucket");
    for (int c = 0; c < ZRT_CAT_COUNT; c++) {
        const char *name = zrt_category_str((zrt_category)c);
        ck_assert_ptr_nonnull(name);
        ck_assert_str_eq(name, category_texts[c]);
        ck_assert_int_gt((int)strlen(name), 0);
        ck_assert_str_ne(name, "unknown");
        for (int d = 0; d < c; d++)
            ck_assert_str_ne(name, zrt_category_str((zrt_category)d));
    }
    ck_assert_str_eq(zrt_category_str(ZRT_CAT_COUNT), "unknown");
    ck_assert_str_eq(zrt_category_str((zrt_category)(ZRT_CAT_COUNT + 5)), "unknown");
    ck_assert_str_eq(zrt_category_str((zrt_category)-1), "unknown");
}
END_TEST

START_TEST(test_tier_names)
{
    ck_assert_str_eq(zrt_tier_str(ZRT_TIER_DEVICE), "device");
    ck_assert_str_eq(zrt_tier_str(ZRT_TIER_HOST), "host");
    ck_assert_str_eq(zrt_tier_str(ZRT_TIER_NVME), "nvme");
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        const char *name = zrt_tier_str((zrt_tier)t);
        ck_assert_ptr_nonnull(name);
        ck_assert_str_ne(name, "unknown");
        for (int u = 0; u < t; u++)
            ck_assert_str_ne(name, zrt_tier_str((zrt_tier)u));
    }
    ck_assert_str_eq(zrt_tier_str(ZRT_TIER_COUNT), "unknown");
    ck_assert_str_eq(zrt_tier_str((zrt_tier)-1), "unknown");
    ck_assert_str_eq(zrt_tier_str((zrt_tier)77), "unknown");
}
END_TEST

START_TEST(test_dtypes)
{
    ck_assert_uint_eq(zrt_dtype_size(ZRT_F32), 4);
    ck_assert_uint_eq(zrt_dtype_size(ZRT_BF16), 2);
    ck_assert_uint_eq(zrt_dtype_size(ZRT_F16), 2);
    ck_assert_uint_eq(zrt_dtype_size(ZRT_DTYPE_COUNT), 0);
    ck_assert_uint_eq(zrt_dtype_size((zrt_dtype)-1), 0);
    ck_assert_uint_eq(zrt_dtype_size((zrt_dtype)99), 0);

    ck_assert_str_eq(zrt_dtype_str(ZRT_F32), "f32");
    ck_assert_str_eq(zrt_dtype_str(ZRT_BF16), "bf16");
    ck_assert_str_eq(zrt_dtype_str(ZRT_F16), "f16");
    ck_assert_str_eq(zrt_dtype_str(ZRT_DTYPE_COUNT), "unknown");
    ck_assert_str_eq(zrt_dtype_str((zrt_dtype)-1), "unknown");
    ck_assert_str_eq(zrt_dtype_str((zrt_dtype)99), "unknown");
}
END_TEST

/* ---- the error sentence -------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

START_TEST(test_fail_with_rank)
{
    zrt__errbuf err = {.rank = 2};
    int line = __LINE__ + 1;
    zrt_status st = zrt__fail(&err, ZRT_ERR_CONFIG, "bad key '%s' (%d)", "x", 7);
    ck_assert_int_eq(st, ZRT_ERR_CONFIG);
    char suffix[64];
    snprintf(suffix, sizeof suffix, "test_status.c:%d]", line);
    ck_assert_msg(strncmp(err.text, "rank 2: bad key 'x' (7) [", 25) == 0,
                  "unexpected sentence '%s'", err.text);
    ck_assert_msg(ends_with(err.text, suffix), "'%s' does not end with '%s'", err.text,
                  suffix);

    /* Rank 0 is a rank too. */
    err.rank = 0;
    zrt__fail(&err, ZRT_ERR_COMM, "peer gone");
    ck_assert_msg(strncmp(err.text, "rank 0: peer gone [", 19) == 0,
                  "unexpected sentence '%s'", err.text);
}
END_TEST

START_TEST(test_fail_without_rank)
{
    zrt__errbuf err = {.rank = -1};
    int line = __LINE__ + 1;
    zrt_status st = zrt__fail(&err, ZRT_ERR_IO, "cannot open %s", "/x/y");
    ck_assert_int_eq(st, ZRT_ERR_IO);
    char want[128];
    snprintf(want, sizeof want, "test_status.c:%d]", line);
    ck_assert_msg(strncmp(err.text, "cannot open /x/y [", 18) == 0,
                  "unexpected sentence '%s'", err.text);
    ck_assert_msg(ends_with(err.text, want), "'%s' does not end with '%s'", err.text,
                  want);
    ck_assert_ptr_null(strstr(err.text, "rank"));
}
END_TEST

START_TEST(test_fail_source_names)
{
    /* Library sources are named from their layer folder, others by their
     * base name: stable across build trees. */
    zrt__errbuf err = {.rank = -1};
    zrt__fail_at(&err, ZRT_ERR_INTERNAL, "/home/u/src/zrt/runtime/backend_cpu.c", 12,
                 "oops");
    ck_assert_str_eq(err.text, "oops [runtime/backend_cpu.c:12]");
    zrt__fail_at(&err, ZRT_ERR_INTERNAL, "../zero/plan.c", 3, "oops");
    ck_assert_str_eq(err.text, "oops [zero/plan.c:3]");
    zrt__fail_at(&err, ZRT_ERR_INTERNAL, "/a/b/c/tool.c", 9, "oops");
    ck_assert_str_eq(err.text, "oops [tool.c:9]");
    zrt__fail_at(&err, ZRT_ERR_INTERNAL, "main.c", 1, "oops");
    ck_assert_str_eq(err.text, "oops [main.c:1]");
}
END_TEST

START_TEST(test_fail_returns_status)
{
    zrt__errbuf err = {.rank = 1};
    for (int i = 0; i < NSTATUS; i++) {
        zrt_status st = status_rows[i].status;
        ck_assert_int_eq(zrt__fail(&err, st, "case %d", i), st);
        ck_assert_int_eq(zrt__fail(NULL, st, "case %d", i), st);
    }
}
END_TEST

START_TEST(test_fail_truncates_long_messages)
{
    /* The errbuf followed by guard bytes: nothing may be written past it. */
    struct {
        zrt__errbuf err;
        unsigned char guard[256];
    } box;
    enum { LONG = 2 * ZRT__ERRBUF_SIZE }; /* longer than the buffer, whatever its size */
    char *msg = malloc(LONG + 1);
    ck_assert_ptr_nonnull(msg);
    memset(msg, 'm', LONG);
    msg[LONG] = '\0';

    const int ranks[] = {2, -1};
    for (int k = 0; k < 2; k++) {
        memset(&box, 0x5A, sizeof box);
        box.err.rank = ranks[k];
        ck_assert_int_eq(zrt__fail(&box.err, ZRT_ERR_CONFIG, "%s", msg), ZRT_ERR_CONFIG);
        ck_assert_ptr_nonnull(memchr(box.err.text, '\0', sizeof box.err.text));
        size_t len = strlen(box.err.text);
        ck_assert_uint_lt(len, ZRT__ERRBUF_SIZE);
        ck_assert_uint_ge(len, ZRT__ERRBUF_SIZE / 2); /* kept, not dropped */
        const char *body = box.err.text;
        if (ranks[k] >= 0) {
            ck_assert_int_eq(strncmp(body, "rank 2: ", 8), 0);
            body += 8;
        }
        ck_assert_int_eq(strncmp(body, msg, 100), 0);
        for (size_t i = 0; i < sizeof box.guard; i++)
            ck_assert_int_eq(box.guard[i], 0x5A);
    }
    free(msg);
}
END_TEST

/* ---- byte counts in messages --------------------------------------------- */

static void expect_bytes(long long bytes, const char *want)
{
    char buf[64];
    memset(buf, 'z', sizeof buf);
    const char *got = zrt__fmt_bytes(bytes, buf, sizeof buf);
    ck_assert_ptr_eq(got, buf);
    ck_assert_str_eq(buf, want);
}

START_TEST(test_fmt_bytes)
{
    expect_bytes(0, "0 bytes");
    expect_bytes(512, "512 bytes");
    expect_bytes(1023, "1023 bytes");
    expect_bytes(1024, "1.00 KiB (1024 bytes)");
    expect_bytes(1536, "1.50 KiB (1536 bytes)");
    expect_bytes(1572864, "1.50 MiB (1572864 bytes)");
    expect_bytes(2147483648LL, "2.00 GiB (2147483648 bytes)");
    expect_bytes(3298534883328LL, "3.00 TiB (3298534883328 bytes)");

    /* A short buffer is cut, NUL-terminated, never overrun. */
    char small[12];
    memset(small, 'z', sizeof small);
    zrt__fmt_bytes(2147483648LL, small, 8);
    ck_assert_str_eq(small, "2.00 Gi");
    ck_assert_int_eq(small[8], 'z');
}
END_TEST

int main(void)
{
    return zrt_check_main(ZRT_CHECK_SUITE(
        "status", 0, test_status_names, test_status_out_of_range, test_category_names,
        test_tier_names, test_dtypes, test_fail_with_rank, test_fail_without_rank,
        test_fail_source_names, test_fail_returns_status,
        test_fail_truncates_long_messages, test_fmt_bytes));
}
