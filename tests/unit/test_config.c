/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/test_config.c — Check suite "config": the behaviour users rely on
 * in zrt_config_init / zrt_config_load_file / zrt_config_load_string /
 * zrt_config_validate / zrt_parse_size. Defaults, every key from JSON
 * (DeepSpeed-style 5e8 reals and "64M" strings), one-sentence errors that
 * name the key path, value, line/column or file, all-or-nothing loads, and
 * errbuf handling (NULL, truncation). main() returns 0 only if all pass.
 */
#include "zrt/zrt.h"

#include "../common/test_check.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERRBUF 512

/* ---- helpers ------------------------------------------------------------- */

static zrt_config defaults(void)
{
    zrt_config cfg;
    ck_assert_int_eq(zrt_config_init(&cfg), ZRT_OK);
    return cfg;
}

/* Loads json over defaults; returns the status, error text in err. */
static zrt_status load(zrt_config *cfg, const char *json, char *err)
{
    err[0] = '\0';
    return zrt_config_load_string(cfg, json, err, ERRBUF);
}

/* The keys of zero_optimization and the top level that test_defaults and
 * test_every_key read: each as want has it. */
static void expect_keys(const zrt_config *cfg, const zrt_config *want)
{
    ck_assert_int_eq(cfg->stage, want->stage);
    ck_assert_int_eq(cfg->reduce_bucket_size, want->reduce_bucket_size);
    ck_assert_int_eq(cfg->allgather_bucket_size, want->allgather_bucket_size);
    ck_assert_int_eq(cfg->stage3_prefetch_bucket_size, want->stage3_prefetch_bucket_size);
    ck_assert_int_eq(cfg->stage3_param_persistence_threshold,
                     want->stage3_param_persistence_threshold);
    ck_assert_int_eq(cfg->overlap_comm, want->overlap_comm);
    ck_assert_int_eq(cfg->device_mem_limit, want->device_mem_limit);
    ck_assert_str_eq(cfg->backend, want->backend);
    ck_assert_int_eq(cfg->communicator, want->communicator);
    ck_assert_float_eq(cfg->comm_timeout_seconds, want->comm_timeout_seconds);
    ck_assert_int_eq(cfg->log_level, want->log_level);
}

/* Expects json to fail with ZRT_ERR_CONFIG, leave the config unchanged, and
 * produce a message containing each of the NULL-terminated needles. */
static void expect_fail(const char *json, ...)
{
    zrt_config cfg = defaults(), before = cfg;
    char err[ERRBUF];
    ck_assert_int_eq(load(&cfg, json, err), ZRT_ERR_CONFIG);
    ck_assert_int_eq(memcmp(&cfg, &before, sizeof cfg), 0);
    ck_assert_msg(strncmp(err, "config <string>: ", 17) == 0, "got: %s", err);
    va_list ap;
    va_start(ap, json);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        ck_assert_msg(strstr(err, s) != NULL, "'%s' not in: %s", s, err);
    va_end(ap);
}

/* Writes text to a fresh temp file; the caller unlinks path. */
static void write_temp(char *path, size_t size, const char *text)
{
    snprintf(path, size, "/tmp/zrt_test_config_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    ck_assert_int_eq(close(fd), 0);
}

/* ---- defaults and reading keys ------------------------------------------- */

/* Every key expect_keys reads, each off its default. */
static const char every_key_json[] = "{\"zero_optimization\": {\"stage\": 3,"
                                     " \"reduce_bucket_size\": 1000,"
                                     " \"allgather_bucket_size\": 2000,"
                                     " \"stage3_prefetch_bucket_size\": 3000,"
                                     " \"stage3_param_persistence_threshold\": 4000,"
                                     " \"overlap_comm\": true},"
                                     " \"device_mem_limit\": 5000,"
                                     " \"backend\": \"cuda\", \"log_level\": 3,"
                                     " \"communicator\": \"nccl\","
                                     " \"comm_timeout_seconds\": 30}";

/* The same keys at their documented defaults (zrt.h, DeepSpeed's). */
static const char default_keys_json[] = "{\"zero_optimization\": {\"stage\": 0,"
                                        " \"reduce_bucket_size\": 500000000,"
                                        " \"allgather_bucket_size\": 500000000,"
                                        " \"stage3_prefetch_bucket_size\": 50000000,"
                                        " \"stage3_param_persistence_threshold\": 100000,"
                                        " \"overlap_comm\": true},"
                                        " \"device_mem_limit\": 0,"
                                        " \"backend\": \"cpu\", \"log_level\": 1,"
                                        " \"communicator\": \"auto\","
                                        " \"comm_timeout_seconds\": 600}";

/* zrt_config_init gives the documented defaults: a config with every key
 * moved off its default, then set back by default_keys_json, equals it. */
START_TEST(test_defaults)
{
    zrt_config cfg, spelt_out;
    char err[ERRBUF];
    memset(&cfg, 0xAB, sizeof cfg);
    ck_assert_int_eq(zrt_config_init(&cfg), ZRT_OK);
    ck_assert_uint_eq(cfg.struct_size, sizeof(zrt_config));
    spelt_out = defaults();
    ck_assert_int_eq(load(&spelt_out, every_key_json, err), ZRT_OK);
    ck_assert_int_eq(load(&spelt_out, default_keys_json, err), ZRT_OK);
    expect_keys(&cfg, &spelt_out);
    ck_assert_int_eq(zrt_config_init(NULL), ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_config_validate(&cfg, NULL, 0), ZRT_OK);
}
END_TEST

START_TEST(test_every_key)
{
    zrt_config cfg = defaults(), want = cfg;
    char err[ERRBUF];
    ck_assert_int_eq(load(&cfg, every_key_json, err), ZRT_OK);
    want.stage = 3;
    want.reduce_bucket_size = 1000;
    want.allgather_bucket_size = 2000;
    want.stage3_prefetch_bucket_size = 3000;
    want.stage3_param_persistence_threshold = 4000;
    want.overlap_comm = 1;
    want.device_mem_limit = 5000;
    strcpy(want.backend, "cuda");
    want.communicator = ZRT_COMM_NCCL;
    want.comm_timeout_seconds = 30.0f;
    want.log_level = 3;
    expect_keys(&cfg, &want);
    ck_assert_int_eq(zrt_config_validate(&cfg, err, sizeof err), ZRT_OK);
}
END_TEST

START_TEST(test_deepspeed_reals_and_strings)
{
    zrt_config cfg = defaults();
    char err[ERRBUF];
    const char *json = "{\"zero_optimization\": {\"stage\": 2,"
                       " \"reduce_bucket_size\": 5e8,"
                       " \"allgather_bucket_size\": 2.0E8,"
                       " \"stage3_prefetch_bucket_size\": \"64M\","
                       " \"stage3_param_persistence_threshold\": \"1e0\""
                       "}}";
    /* "1e0" is not a size string: exponents are for JSON numbers only. */
    ck_assert_int_eq(load(&cfg, json, err), ZRT_ERR_CONFIG);
    json = "{\"zero_optimization\": {\"stage\": 2,"
           " \"reduce_bucket_size\": 5e8,"
           " \"allgather_bucket_size\": 2.0E8,"
           " \"stage3_prefetch_bucket_size\": \"64M\","
           " \"stage3_param_persistence_threshold\": \"1.5K\"},"
           " \"device_mem_limit\": \" 16GiB \"}";
    ck_assert_int_eq(load(&cfg, json, err), ZRT_OK);
    ck_assert_int_eq(cfg.stage, 2);
    ck_assert_int_eq(cfg.reduce_bucket_size, 500000000);
    ck_assert_int_eq(cfg.allgather_bucket_size, 200000000);
    ck_assert_int_eq(cfg.stage3_prefetch_bucket_size, 64LL << 20);
    ck_assert_int_eq(cfg.stage3_param_persistence_threshold, 1536);
    ck_assert_int_eq(cfg.device_mem_limit, 16LL << 30);
}
END_TEST

START_TEST(test_overlap_comm_false_and_partial)
{
    zrt_config cfg = defaults(), expect = cfg;
    char err[ERRBUF];
    ck_assert_int_eq(
        load(&cfg, "{\"zero_optimization\": {\"overlap_comm\": false}}", err), ZRT_OK);
    expect.overlap_comm = 0;
    /* Only the named key changed. */
    ck_assert_int_eq(memcmp(&cfg, &expect, sizeof cfg), 0);
    ck_assert_int_eq(load(&cfg, "{}", err), ZRT_OK);
    ck_assert_int_eq(load(&cfg, "{\"zero_optimization\": {}}", err), ZRT_OK);
    ck_assert_int_eq(memcmp(&cfg, &expect, sizeof cfg), 0);
}
END_TEST

START_TEST(test_log_level_names)
{
    static const char *const names[] = {"error", "warn", "info", "DEBUG"};
    zrt_config cfg = defaults();
    char json[64], err[ERRBUF];
    for (int i = 0; i < 4; i++) {
        snprintf(json, sizeof json, "{\"log_level\": \"%s\"}", names[i]);
        ck_assert_int_eq(load(&cfg, json, err), ZRT_OK);
        ck_assert_int_eq(cfg.log_level, i);
    }
    expect_fail("{\"log_level\": \"verbose\"}", "'log_level'", "\"verbose\"", "\"debug\"",
                NULL);
    expect_fail("{\"log_level\": 4}", "'log_level' is 4", NULL);
}
END_TEST

START_TEST(test_load_file)
{
    char path[64], err[ERRBUF];
    write_temp(path, sizeof path,
               "{\n  \"zero_optimization\": {\"stage\": 1},\n"
               "  \"backend\": \"cpu\"\n}\n");
    zrt_config cfg = defaults();
    ck_assert_int_eq(zrt_config_load_file(&cfg, path, err, sizeof err), ZRT_OK);
    ck_assert_int_eq(cfg.stage, 1);
    unlink(path);
}
END_TEST

/* ---- errors -------------------------------------------------------------- */

START_TEST(test_unknown_keys)
{
    expect_fail("{\"zero_optimisation\": {}}",
                "unknown key 'zero_optimisation' (did you mean 'zero_optimization'?)",
                NULL);
    expect_fail("{\"zero_optimization\": {\"stage\": 1, \"stage3_foo\": 1}}",
                "unknown key 'zero_optimization.stage3_foo'; the keys", NULL);
    /* Typos: a replaced, a missing and two swapped characters. */
    expect_fail("{\"zero_optimization\": {\"stage3_prefetch_bucket_sise\": 1}}",
                "(did you mean 'zero_optimization.stage3_prefetch_bucket_size'?)", NULL);
    expect_fail("{\"zero_optimization\": {\"overlap_com\": true}}",
                "(did you mean 'zero_optimization.overlap_comm'?)", NULL);
    expect_fail("{\"gradient_clpiping\": 1.0}", "(did you mean 'gradient_clipping'?)",
                NULL);
    /* A nested key at the top level is unknown there, and shown where it goes. */
    expect_fail("{\"stage\": 1}",
                "unknown key 'stage' (did you mean 'zero_optimization.stage'?)", NULL);
}
END_TEST

START_TEST(test_bad_values)
{
    expect_fail("{\"zero_optimization\": {\"stage\": 5}}",
                "'zero_optimization.stage' is 5", "0, 1, 2, 3 or \"auto\"", NULL);
    expect_fail("{\"zero_optimization\": {\"stage\": \"Auto\"}}",
                "'zero_optimization.stage' is the string \"Auto\"", NULL);
    expect_fail("{\"zero_optimization\": {\"reduce_bucket_size\": -1}}",
                "'zero_optimization.reduce_bucket_size' is -1", "non-negative", NULL);
    expect_fail("{\"zero_optimization\": {\"allgather_bucket_size\": 1.5}}",
                "'zero_optimization.allgather_bucket_size' is 1.5", NULL);
    expect_fail("{\"device_mem_limit\": \"0.3\"}", "'device_mem_limit'", "\"0.3\"", NULL);
    expect_fail("{\"device_mem_limit\": 1e19}", "'device_mem_limit'", NULL);
    expect_fail("{\"zero_optimization\": {\"stage\": \"2\"}}",
                "'zero_optimization.stage' is the string \"2\"", NULL);
    expect_fail("{\"zero_optimization\": {\"stage\": 2.0}}",
                "'zero_optimization.stage' is 2.0", NULL);
    expect_fail("{\"zero_optimization\": {\"overlap_comm\": 1}}",
                "'zero_optimization.overlap_comm' is 1", "true or false", NULL);
    expect_fail("{\"zero_optimization\": []}", "'zero_optimization' is an array", NULL);
    expect_fail("{\"backend\": \"tpu\"}", "'backend' is the string \"tpu\"", "\"cpu\"",
                "\"cuda\"", NULL);
    expect_fail("{\"reduce_bucket_size\": null}", "unknown key", NULL);
    expect_fail("{\"communicator\": \"gloo\"}", "'communicator'", "\"auto\"", "\"mpi\"",
                "\"nccl\"", NULL);
    expect_fail("{\"comm_timeout_seconds\": -1}", "'comm_timeout_seconds'", NULL);
}
END_TEST

/* A positive real must stay positive: one that a float would round to 0 (or
 * to a denormal) is refused, naming the key and the value; the timeout must
 * be 0 (never) or at least a millisecond. */
START_TEST(test_tiny_reals)
{
    expect_fail("{\"gradient_clipping\": 1e-50}", "'gradient_clipping' is 1e-50",
                "at least 1.17549e-38", NULL);
    expect_fail("{\"comm_timeout_seconds\": 1e-50}", "'comm_timeout_seconds' is 1e-50",
                "0 or at least 0.001 seconds", NULL);
    expect_fail("{\"comm_timeout_seconds\": 0.0001}", "'comm_timeout_seconds' is 0.0001",
                "at least 0.001", NULL);
    expect_fail("{\"fp16\": {\"loss_scale\": 1e-40}}", "'fp16.loss_scale' is 1e-40",
                NULL);
    expect_fail("{\"fp16\": {\"min_loss_scale\": 1e-45}}",
                "'fp16.min_loss_scale' is 1e-45", NULL);
    zrt_config cfg = defaults();
    char err[ERRBUF];
    ck_assert_int_eq(load(&cfg,
                          "{\"comm_timeout_seconds\": 0.001, "
                          "\"gradient_clipping\": 1e-30}",
                          err),
                     ZRT_OK);
    ck_assert(cfg.comm_timeout_seconds > 0.0f && cfg.gradient_clipping > 0.0f);
    ck_assert_int_eq(load(&cfg,
                          "{\"comm_timeout_seconds\": 0, "
                          "\"gradient_clipping\": 0.0}",
                          err),
                     ZRT_OK);
    ck_assert(cfg.comm_timeout_seconds == 0.0f && cfg.gradient_clipping == 0.0f);
    /* the same rule for a struct filled in code */
    cfg = defaults();
    cfg.comm_timeout_seconds = 1e-6f;
    ck_assert_int_eq(zrt_config_validate(&cfg, err, sizeof err), ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(err, "'comm_timeout_seconds' is 1e-06"), "got: %s", err);
}
END_TEST

/* gradient_topk_ratio: 0 (off, the default) or strictly between 0 and 1,
 * also once rounded to a float; anything else named with its value. */
START_TEST(test_topk_ratio)
{
    zrt_config cfg = defaults();
    char err[ERRBUF];
    ck_assert(cfg.gradient_topk_ratio == 0.0f);
    ck_assert_int_eq(
        load(&cfg, "{\"zero_optimization\": {\"gradient_topk_ratio\": 0.01}}", err),
        ZRT_OK);
    ck_assert(cfg.gradient_topk_ratio == 0.01f);
    ck_assert_int_eq(
        load(&cfg, "{\"zero_optimization\": {\"gradient_topk_ratio\": 0}}", err), ZRT_OK);
    ck_assert(cfg.gradient_topk_ratio == 0.0f);
    expect_fail("{\"zero_optimization\": {\"gradient_topk_ratio\": 1.5}}",
                "'zero_optimization.gradient_topk_ratio' is 1.5", "between 0 and 1",
                NULL);
    expect_fail("{\"zero_optimization\": {\"gradient_topk_ratio\": 1}}",
                "'zero_optimization.gradient_topk_ratio' is 1", NULL);
    expect_fail("{\"zero_optimization\": {\"gradient_topk_ratio\": -1}}",
                "'zero_optimization.gradient_topk_ratio' is -1", NULL);
    expect_fail("{\"zero_optimization\": {\"gradient_topk_ratio\": 0.9999999999}}",
                "'zero_optimization.gradient_topk_ratio' is 0.9999999999", NULL);
    expect_fail("{\"zero_optimization\": {\"gradient_topk_ratio\": 1e-50}}",
                "'zero_optimization.gradient_topk_ratio' is 1e-50", NULL);
    expect_fail("{\"zero_optimization\": {\"gradient_topk_ratio\": \"0.1\"}}",
                "'zero_optimization.gradient_topk_ratio' is the string \"0.1\"", NULL);
    cfg = defaults();
    cfg.gradient_topk_ratio = 1.0f; /* filled in code: the same rule */
    ck_assert_int_eq(zrt_config_validate(&cfg, err, sizeof err), ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(err, "'zero_optimization.gradient_topk_ratio' is 1"), "got: %s",
                  err);
}
END_TEST

/* A config file over 1 MiB is refused before it is parsed, with its size and
 * the cap; one of exactly 1 MiB still loads. */
START_TEST(test_file_size_cap)
{
    enum { CAP = 1 << 20 };
    char path[64], err[ERRBUF];
    char *text = malloc(2 * CAP + 1);
    ck_assert_ptr_nonnull(text);
    memset(text, ' ', 2 * CAP);
    text[0] = '{';
    text[2 * CAP - 1] = '}';
    text[2 * CAP] = '\0';
    write_temp(path, sizeof path, text);
    zrt_config cfg = defaults(), before = cfg;
    ck_assert_int_eq(zrt_config_load_file(&cfg, path, err, sizeof err), ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(err, path) && strstr(err, "the file is 2097152 bytes") &&
                      strstr(err, "at most 1048576 bytes"),
                  "got: %s", err);
    ck_assert_int_eq(memcmp(&cfg, &before, sizeof cfg), 0);
    unlink(path);
    memcpy(text + CAP - 16, "\"log_level\": 2}", 16); /* 1 MiB exactly */
    text[CAP] = '\0';
    write_temp(path, sizeof path, text);
    ck_assert_int_eq(zrt_config_load_file(&cfg, path, err, sizeof err), ZRT_OK);
    ck_assert_int_eq(cfg.log_level, 2);
    unlink(path);
    free(text);
}
END_TEST

START_TEST(test_malformed_json)
{
    expect_fail("{\n  \"zero_optimization\": {\n    \"stage\": ,\n  }\n}",
                "malformed JSON at line 3, column", NULL);
    expect_fail("{\"backend\": \"cpu\"} trailing", "malformed JSON", "line 1", NULL);
    expect_fail("", "malformed JSON", NULL);
    expect_fail("{\"zero_optimization\": {\"stage\": 1, \"stage\": 2}}", "duplicate",
                "stage", NULL);
    expect_fail("[1, 2]", "the document is an array", "object", NULL);
    expect_fail("3", "the document is 3", NULL);
}
END_TEST

START_TEST(test_file_errors)
{
    char path[64], err[ERRBUF];
    zrt_config cfg = defaults(), before = cfg;
    const char *missing = "/tmp/zrt_test_config_no_such_file.json";
    ck_assert_int_eq(zrt_config_load_file(&cfg, missing, err, sizeof err),
                     ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(err, missing) && strstr(err, "cannot open") &&
                      strstr(err, "No such file"),
                  "got: %s", err);
    ck_assert_int_eq(zrt_config_load_file(&cfg, "/tmp", err, sizeof err), ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(err, "config /tmp: cannot open"), "got: %s", err);

    write_temp(path, sizeof path, "{\n\"log_level\": 2,\n\"backend\": \"x\"}\n");
    ck_assert_int_eq(zrt_config_load_file(&cfg, path, err, sizeof err), ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(err, path) && strstr(err, "'backend'"), "got: %s", err);
    ck_assert_int_eq(memcmp(&cfg, &before, sizeof cfg), 0);
    unlink(path);

    write_temp(path, sizeof path, "{\n\"log_level\": 2,\n\"backend\" \"x\"}\n");
    ck_assert_int_eq(zrt_config_load_file(&cfg, path, err, sizeof err), ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(err, path) && strstr(err, "line 3, column"), "got: %s", err);
    unlink(path);
}
END_TEST

START_TEST(test_unchanged_after_failure)
{
    zrt_config cfg = defaults(), before;
    char err[ERRBUF];
    cfg.stage = 2;
    cfg.device_mem_limit = 12345;
    before = cfg;
    /* Valid keys come first; the bad one is last. */
    const char *json = "{\"zero_optimization\": {\"stage\": 3,"
                       " \"reduce_bucket_size\": 7},"
                       " \"device_mem_limit\": \"1G\", \"log_level\": 9}";
    ck_assert_int_eq(load(&cfg, json, err), ZRT_ERR_CONFIG);
    ck_assert_int_eq(memcmp(&cfg, &before, sizeof cfg), 0);
}
END_TEST

START_TEST(test_errbuf_handling)
{
    zrt_config cfg = defaults(), before = cfg;
    const char *bad = "{\"zero_optimization\": {\"stage\": 5}}";
    ck_assert_int_eq(zrt_config_load_string(&cfg, bad, NULL, 100), ZRT_ERR_CONFIG);
    ck_assert_int_eq(zrt_config_load_string(&cfg, bad, NULL, 0), ZRT_ERR_CONFIG);
    char small[16];
    memset(small, 'Z', sizeof small);
    ck_assert_int_eq(zrt_config_load_string(&cfg, bad, small, 8), ZRT_ERR_CONFIG);
    ck_assert_str_eq(small, "config ");
    for (size_t i = 8; i < sizeof small; i++)
        ck_assert_int_eq(small[i], 'Z');
    /* Size 0: nothing written at all. */
    small[0] = 'Q';
    ck_assert_int_eq(zrt_config_load_string(&cfg, bad, small, 0), ZRT_ERR_CONFIG);
    ck_assert_int_eq(small[0], 'Q');
    /* A cut inside the detail (after the prefix) is also terminated. */
    char mid[24];
    ck_assert_int_eq(zrt_config_load_string(&cfg, bad, mid, sizeof mid), ZRT_ERR_CONFIG);
    ck_assert_uint_eq(strlen(mid), sizeof mid - 1);
    ck_assert_int_eq(memcmp(&cfg, &before, sizeof cfg), 0);
}
END_TEST

START_TEST(test_null_arguments)
{
    zrt_config cfg = defaults();
    char err[ERRBUF];
    ck_assert_int_eq(zrt_config_load_string(NULL, "{}", err, sizeof err),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_config_load_string(&cfg, NULL, err, sizeof err),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_config_load_file(&cfg, NULL, err, sizeof err),
                     ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_config_validate(NULL, err, sizeof err), ZRT_ERR_INVALID_ARG);
    /* A struct never initialised is refused, not written. */
    zrt_config zero;
    memset(&zero, 0, sizeof zero);
    ck_assert_int_eq(zrt_config_load_string(&zero, "{}", err, sizeof err),
                     ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(err, "struct_size"), "got: %s", err);
}
END_TEST

/* ---- zrt_parse_size ------------------------------------------------------ */

START_TEST(test_parse_size_good)
{
    static const struct {
        const char *text;
        int64_t bytes;
    } good[] = {
        {"0", 0},
        {"123", 123},
        {"  42  ", 42},
        {"64K", 64LL << 10},
        {"64k", 64LL << 10},
        {"64KB", 64LL << 10},
        {"64MiB", 64LL << 20},
        {"64mib", 64LL << 20},
        {"1.5G", 3LL << 29},
        {"1.5K", 1536},
        {"2T", 2LL << 40},
        {"0.5K", 512},
        {"1.50K", 1536},
        {"512B", 512},
        {"8 GiB", 8LL << 30},
        {"9223372036854775807", INT64_MAX},
        {"8388607T", 8388607LL << 40},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t out = -7;
        ck_assert_msg(zrt_parse_size(good[i].text, &out) == ZRT_OK, "'%s' refused",
                      good[i].text);
        ck_assert_msg(out == good[i].bytes, "'%s' gave %lld", good[i].text,
                      (long long)out);
    }
}
END_TEST

START_TEST(test_parse_size_bad)
{
    static const char *const bad[] = {
        "",
        "   ",
        "-5",
        "+5",
        "12Q",
        "5e",
        "5e8",
        "0.3",
        "1.",
        ".5",
        "1.5",
        "K",
        "64KiBB",
        "64iB",
        "64Ki",
        "1 2",
        "0x10",
        "inf",
        "nan",
        "9223372036854775808",
        "8388608T",
        "99999999999999999999999",
        "1.00000000000000000001K",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t out = -7;
        ck_assert_msg(zrt_parse_size(bad[i], &out) == ZRT_ERR_INVALID_ARG,
                      "'%s' accepted", bad[i]);
        ck_assert_int_eq(out, -7);
    }
    int64_t out = 0;
    ck_assert_int_eq(zrt_parse_size(NULL, &out), ZRT_ERR_INVALID_ARG);
    ck_assert_int_eq(zrt_parse_size("1", NULL), ZRT_ERR_INVALID_ARG);
}
END_TEST

/* ---- zrt_config_validate ------------------------------------------------- */

/* Expects validate to refuse cfg with a sentence holding needle. */
static void expect_invalid(const zrt_config *cfg, const char *needle)
{
    char err[ERRBUF] = "";
    ck_assert_int_eq(zrt_config_validate(cfg, err, sizeof err), ZRT_ERR_CONFIG);
    ck_assert_msg(strncmp(err, "config: ", 8) == 0, "got: %s", err);
    ck_assert_msg(strstr(err, needle) != NULL, "'%s' not in: %s", needle, err);
}

START_TEST(test_validate)
{
    zrt_config cfg = defaults();
    cfg.struct_size = sizeof cfg - 8;
    expect_invalid(&cfg, "different zrt.h");
    cfg = defaults();
    cfg.stage = -2; /* -1 is ZRT_STAGE_AUTO */
    expect_invalid(&cfg, "'zero_optimization.stage' is -2");
    cfg = defaults();
    cfg.reduce_bucket_size = -2;
    expect_invalid(&cfg, "'zero_optimization.reduce_bucket_size' is -2");
    cfg = defaults();
    cfg.overlap_comm = 2;
    expect_invalid(&cfg, "'zero_optimization.overlap_comm' is 2");
    cfg = defaults();
    cfg.log_level = 4;
    expect_invalid(&cfg, "'log_level' is 4");
    cfg = defaults();
    cfg.device_mem_limit = -1;
    expect_invalid(&cfg, "'device_mem_limit' is -1");
    cfg = defaults();
    strcpy(cfg.backend, "tpu");
    expect_invalid(&cfg, "\"tpu\"");
    memset(cfg.backend, 'x', sizeof cfg.backend);
    expect_invalid(&cfg, "NUL-terminated");
}
END_TEST

START_TEST(test_offload_and_aio)
{
    zrt_config cfg;
    char err[ERRBUF];
    zrt_config_init(&cfg);
    ck_assert_int_eq(cfg.offload_optimizer.device, ZRT_OFFLOAD_NONE);
    ck_assert_int_eq(cfg.aio.block_size, 1048576);
    ck_assert_int_eq(
        load(&cfg,
             "{\"zero_optimization\": {\"stage\": 3, \"offload_optimizer\": "
             "{\"device\": \"nvme\", \"nvme_path\": \"/mnt/nvme\", "
             "\"pin_memory\": true, \"buffer_count\": 6}, \"offload_param\": "
             "{\"device\": \"cpu\"}}, \"aio\": {\"block_size\": \"2M\", "
             "\"queue_depth\": 16, \"thread_count\": 2, \"single_submit\": true, "
             "\"overlap_events\": false}}",
             err),
        ZRT_OK);
    ck_assert_int_eq(cfg.offload_optimizer.device, ZRT_OFFLOAD_NVME);
    ck_assert_str_eq(cfg.offload_optimizer.nvme_path, "/mnt/nvme");
    ck_assert_int_eq(cfg.offload_optimizer.pin_memory, 1);
    ck_assert_int_eq(cfg.offload_optimizer.buffer_count, 6);
    ck_assert_int_eq(cfg.offload_param.device, ZRT_OFFLOAD_CPU);
    ck_assert_int_eq(cfg.aio.block_size, 2 * 1048576);
    ck_assert_int_eq(cfg.aio.queue_depth, 16);
    ck_assert_int_eq(cfg.aio.thread_count, 2);
    ck_assert_int_eq(cfg.aio.single_submit, 1);
    ck_assert_int_eq(cfg.aio.overlap_events, 0);
    ck_assert_int_eq(zrt_config_validate(&cfg, err, sizeof err), ZRT_OK);
    /* the full path of a nested key is named */
    ck_assert_int_eq(load(&cfg,
                          "{\"zero_optimization\": {\"offload_param\": "
                          "{\"device\": \"disk\"}}}",
                          err),
                     ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(err, "'zero_optimization.offload_param.device' is the string "
                              "\"disk\""),
                  "%s", err);
    ck_assert_int_eq(load(&cfg,
                          "{\"zero_optimization\": {\"offload_optimizer\": "
                          "{\"devices\": \"cpu\"}}}",
                          err),
                     ZRT_ERR_CONFIG);
    ck_assert_msg(
        strstr(err, "unknown key 'zero_optimization.offload_optimizer.devices'"), "%s",
        err);
    ck_assert_int_eq(load(&cfg, "{\"aio\": {\"queue_depth\": 0}}", err), ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(err, "'aio.queue_depth' is 0"), "%s", err);
}
END_TEST

/* "auto" leaves stage and offload to the runtime: no offload rule applies. */
START_TEST(test_stage_auto_and_host_budget)
{
    zrt_config cfg = defaults();
    char err[ERRBUF];
    ck_assert_int_eq(load(&cfg,
                          "{\"zero_optimization\": {\"stage\": \"auto\", "
                          "\"offload_param\": {\"device\": \"cpu\"}}, "
                          "\"host_mem_limit\": \"2G\"}",
                          err),
                     ZRT_OK);
    ck_assert_int_eq(cfg.stage, ZRT_STAGE_AUTO);
    ck_assert_int_eq(cfg.host_mem_limit, 2LL << 30);
    ck_assert_int_eq(zrt_config_validate(&cfg, err, sizeof err), ZRT_OK);
    cfg.stage = -2;
    ck_assert_int_eq(zrt_config_validate(&cfg, err, sizeof err), ZRT_ERR_CONFIG);
    ck_assert_msg(strstr(err, "is -2"), "%s", err);
}
END_TEST

int main(void)
{
    return zrt_check_main(ZRT_CHECK_SUITE(
        "config", 0, test_defaults, test_every_key, test_deepspeed_reals_and_strings,
        test_overlap_comm_false_and_partial, test_log_level_names, test_load_file,
        test_unknown_keys, test_bad_values, test_tiny_reals, test_topk_ratio,
        test_file_size_cap, test_malformed_json, test_file_errors,
        test_unchanged_after_failure, test_errbuf_handling, test_null_arguments,
        test_parse_size_good, test_parse_size_bad, test_validate, test_offload_and_aio,
        test_stage_auto_and_host_budget));
}
