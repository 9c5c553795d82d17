/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/test_ckpt_format.c — meta.json's numbers are checked without
 * overflow (issue 15): a crafted checkpoint whose shard_numel * world_size
 * wraps around int64 to the flat size it claims is refused naming the layer's
 * sizes, where the multiplication used to overflow (undefined behaviour) and
 * accept it; the same layout with honest numbers opens.
 */
#include "../common/test_check.h"
#include "../common/test_common.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zero/checkpoint.h"

enum { WORLD = 32 };

/* meta.json as zrt_save writes it (one layer, one tensor of `numel`
 * elements, WORLD rank files), sealed with its CRC, into dir. */
static void write_meta(const char *dir, int64_t numel, int64_t flat, int64_t shard)
{
    size_t cap = 16384, at = 0;
    char *body = test_xmalloc(cap);
    at += (size_t)snprintf(
        body + at, cap - at,
        "{\n \"format\": \"zrt-checkpoint\",\n \"version\": 1,\n \"step\": 1,\n"
        " \"world_size\": %d,\n \"stage\": 3,\n \"alignment\": 16,\n"
        " \"dtype\": \"f32\",\n \"kinds\": [\"param\", \"exp_avg\", \"exp_avg_sq\"],\n"
        " \"config\": {\"stage\": 3, \"offload_optimizer\": \"none\", "
        "\"offload_param\": \"none\"},\n"
        " \"layers\": [{\"layer\": 0, \"numel\": %" PRId64 ", \"flat_numel\": %" PRId64
        ", \"shard_numel\": %" PRId64 "}],\n"
        " \"tensors\": [{\"name\": \"w\", \"layer\": 0, \"offset\": 0, \"numel\": "
        "%" PRId64 ", \"shape\": [%" PRId64 "], \"no_weight_decay\": 0}],\n"
        " \"user\": {\"bytes\": 0, \"hex\": \"\"},\n \"files\": [",
        WORLD, numel, flat, shard, numel, numel);
    for (int r = 0; r < WORLD; r++)
        at +=
            (size_t)snprintf(body + at, cap - at,
                             "%s{\"name\": \"rank-%05d.zrtc\", \"rank\": %d, \"bytes\": "
                             "4096, \"header_crc32c\": \"00000000\"}",
                             r ? ", " : "", r, r);
    snprintf(body + at, cap - at, "]\n}\n");
    char *text = NULL;
    size_t len = 0;
    zrt__errbuf err = {.rank = -1};
    ck_assert_int_eq(zrt__ckpt_seal_meta(body, &text, &len, &err), ZRT_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    fclose(f);
    free(text);
    free(body);
}

START_TEST(honest_sizes_open)
{
    char dir[64];
    ck_assert_int_eq(test_make_tmpdir(dir, sizeof dir, "ckptfmt"), 0);
    write_meta(dir, 32, 32 * WORLD, 32);
    zrt__ckpt c;
    zrt__errbuf err = {.rank = -1};
    ck_assert_msg(zrt__ckpt_open(dir, &c, &err) == ZRT_OK, "%s", err.text);
    ck_assert_int_eq(c.meta.world, WORLD);
    zrt__ckpt_close(&c);
    test_remove_tree(dir);
}
END_TEST

/* shard_numel 2^59 + 1 times world 32 is 2^64 + 32: 32 after wrapping, the
 * flat size claimed. */
START_TEST(wrapped_shard_times_world_is_refused)
{
    char dir[64];
    ck_assert_int_eq(test_make_tmpdir(dir, sizeof dir, "ckptfmt"), 0);
    write_meta(dir, 32, 32, ((int64_t)1 << 59) + 1);
    zrt__ckpt c;
    zrt__errbuf err = {.rank = -1};
    ck_assert_int_eq(zrt__ckpt_open(dir, &c, &err), ZRT_ERR_IO);
    ck_assert_msg(strstr(err.text, "layer 0's sizes do not agree") &&
                      strstr(err.text, "shard 576460752303423489"),
                  "%s", err.text);
    test_remove_tree(dir);
}
END_TEST

int main(void)
{
    return zrt_check_main(ZRT_CHECK_SUITE("ckpt_format", 0, honest_sizes_open,
                                          wrapped_shard_times_world_is_refused));
}
