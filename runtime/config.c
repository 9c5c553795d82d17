/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/config.c — the zrt_config struct: defaults, loading overrides from
 * JSON (DeepSpeed's zero_optimization key names), range checks, and the size
 * parser ("64M", "1.5G", powers of 1024) that size values go through.
 *
 * One table (keys[] below) lists every key the JSON may hold, where it lives
 * in zrt_config and what kind of value it takes; the loader and the validator
 * are both driven by it, so a new field is one row plus its struct member.
 *
 * Invariants: nothing here keeps state between calls; a file over 1 MiB is
 * refused before parsing; a positive real never becomes 0 as a float; a
 * load parses into a copy and writes *cfg only when the whole document was
 * accepted; every failure writes one sentence into the caller's errbuf (when
 * there is one) naming the source, the key path and the offending value.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* fileno, fstat, strcasecmp */
#endif

#include "zrt/zrt.h"

#include "error.h"
#include "sized.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* A config is a few hundred bytes; a larger file is refused before it is
 * parsed (a 100 MB array would cost gigabytes of JSON nodes on every rank). */
#define CONFIG_FILE_MAX (1 << 20)

#define SECTION_ZERO          "zero_optimization"
#define SECTION_OFFLOAD_OPTIM "zero_optimization.offload_optimizer"
#define SECTION_OFFLOAD_PARAM "zero_optimization.offload_param"
#define SECTION_AIO           "aio"
#define SECTION_CHECKPOINT    "checkpoint"
#define SECTION_BF16          "bf16"
#define SECTION_FP16          "fp16"
#define STRING_SOURCE         "<string>"

/* ---- the key table ------------------------------------------------------- */

typedef enum key_kind {
    KIND_SECTION,   /* an object holding more keys */
    KIND_STAGE,     /* int: integer 0..3, or "auto" (ZRT_STAGE_AUTO) */
    KIND_ELEMENTS,  /* int64_t: non-negative element count */
    KIND_BYTES,     /* int64_t: non-negative byte count */
    KIND_BOOL,      /* int: true/false, stored as 1/0 */
    KIND_BACKEND,   /* char[16]: one of backend_names[] */
    KIND_LOG_LEVEL, /* int: 0..3 or one of log_level_names[] */
    KIND_DEVICE,    /* int: "none", "cpu" or "nvme" */
    KIND_COMM,      /* int: "auto", "mpi" or "nccl" (zrt_communicator) */
    KIND_PATH,      /* char[256]: a non-empty path */
    KIND_POSITIVE,  /* int: 1 .. 1<<20 */
    KIND_REAL,      /* float: finite, 0 or more */
    KIND_DTYPE,     /* int: "fp32", "bf16" or "fp16" (zrt_dtype) */
    KIND_HIERARCHY, /* int: "auto", "flat" or "hierarchical" (zrt_comm_hierarchy) */
    KIND_GROUP,     /* int: 0 (per host) .. 1<<20 ranks */
    KIND_SHARDS,    /* int: 0 (off) .. 1<<20 ranks: a shard group's size */
    KIND_HPZ,       /* int: 0 or 1 (off) .. 1<<20 ranks: an hpZ group's size */
    KIND_STAGES,    /* int: 0 or 1 (off) .. 1<<20: pipeline stages */
    KIND_RATIO,     /* float: 0 (off), or strictly between 0 and 1 */
} key_kind;

typedef struct cfg_key {
    const char *section; /* NULL: top level; else the enclosing object */
    const char *name;
    key_kind kind;
    size_t offset; /* of the field in zrt_config (unused for sections) */
} cfg_key;

#define FIELD(f) offsetof(zrt_config, f)

static const cfg_key keys[] = {
    {NULL, SECTION_ZERO, KIND_SECTION, 0},
    {SECTION_ZERO, "stage", KIND_STAGE, FIELD(stage)},
    {SECTION_ZERO, "reduce_bucket_size", KIND_ELEMENTS, FIELD(reduce_bucket_size)},
    {SECTION_ZERO, "allgather_bucket_size", KIND_ELEMENTS, FIELD(allgather_bucket_size)},
    {SECTION_ZERO, "stage3_prefetch_bucket_size", KIND_ELEMENTS,
     FIELD(stage3_prefetch_bucket_size)},
    {SECTION_ZERO, "stage3_param_persistence_threshold", KIND_ELEMENTS,
     FIELD(stage3_param_persistence_threshold)},
    {SECTION_ZERO, "zero_hpz_partition_size", KIND_HPZ, FIELD(zero_hpz_partition_size)},
    {SECTION_ZERO, "zero_quantized_weights", KIND_BOOL, FIELD(zero_quantized_weights)},
    {SECTION_ZERO, "zero_quantized_block_size", KIND_POSITIVE,
     FIELD(zero_quantized_block_size)},
    {SECTION_ZERO, "zero_quantized_gradients", KIND_BOOL,
     FIELD(zero_quantized_gradients)},
    {SECTION_ZERO, "zero_quantized_gradient_bits", KIND_POSITIVE,
     FIELD(zero_quantized_gradient_bits)},
    {SECTION_ZERO, "gradient_topk_ratio", KIND_RATIO, FIELD(gradient_topk_ratio)},
    {SECTION_ZERO, "overlap_comm", KIND_BOOL, FIELD(overlap_comm)},
    {NULL, "gradient_accumulation_steps", KIND_POSITIVE,
     FIELD(gradient_accumulation_steps)},
    {NULL, "gradient_clipping", KIND_REAL, FIELD(gradient_clipping)},
    {NULL, "device_mem_limit", KIND_BYTES, FIELD(device_mem_limit)},
    {NULL, "host_mem_limit", KIND_BYTES, FIELD(host_mem_limit)},
    {NULL, "backend", KIND_BACKEND, FIELD(backend)},
    {NULL, "communicator", KIND_COMM, FIELD(communicator)},
    {NULL, "comm_timeout_seconds", KIND_REAL, FIELD(comm_timeout_seconds)},
    {NULL, "comm_hierarchy", KIND_HIERARCHY, FIELD(comm_hierarchy)},
    {NULL, "comm_group_size", KIND_GROUP, FIELD(comm_group_size)},
    {NULL, "hybrid_shard_size", KIND_SHARDS, FIELD(hybrid_shard_size)},
    {NULL, "pipeline_stages", KIND_STAGES, FIELD(pipeline_stages)},
    {NULL, "log_level", KIND_LOG_LEVEL, FIELD(log_level)},
    {SECTION_ZERO, "offload_optimizer", KIND_SECTION, 0},
    {SECTION_OFFLOAD_OPTIM, "device", KIND_DEVICE, FIELD(offload_optimizer.device)},
    {SECTION_OFFLOAD_OPTIM, "nvme_path", KIND_PATH, FIELD(offload_optimizer.nvme_path)},
    {SECTION_OFFLOAD_OPTIM, "pin_memory", KIND_BOOL, FIELD(offload_optimizer.pin_memory)},
    {SECTION_OFFLOAD_OPTIM, "buffer_count", KIND_POSITIVE,
     FIELD(offload_optimizer.buffer_count)},
    {SECTION_ZERO, "offload_param", KIND_SECTION, 0},
    {SECTION_OFFLOAD_PARAM, "device", KIND_DEVICE, FIELD(offload_param.device)},
    {SECTION_OFFLOAD_PARAM, "nvme_path", KIND_PATH, FIELD(offload_param.nvme_path)},
    {SECTION_OFFLOAD_PARAM, "pin_memory", KIND_BOOL, FIELD(offload_param.pin_memory)},
    {SECTION_OFFLOAD_PARAM, "buffer_count", KIND_POSITIVE,
     FIELD(offload_param.buffer_count)},
    {NULL, SECTION_BF16, KIND_SECTION, 0},
    {SECTION_BF16, "enabled", KIND_BOOL, FIELD(bf16.enabled)},
    {NULL, SECTION_FP16, KIND_SECTION, 0},
    {SECTION_FP16, "enabled", KIND_BOOL, FIELD(fp16.enabled)},
    {SECTION_FP16, "loss_scale", KIND_REAL, FIELD(fp16.loss_scale)},
    {SECTION_FP16, "initial_scale_power", KIND_POSITIVE, FIELD(fp16.initial_scale_power)},
    {SECTION_FP16, "loss_scale_window", KIND_POSITIVE, FIELD(fp16.loss_scale_window)},
    {SECTION_FP16, "hysteresis", KIND_POSITIVE, FIELD(fp16.hysteresis)},
    {SECTION_FP16, "min_loss_scale", KIND_REAL, FIELD(fp16.min_loss_scale)},
    {NULL, "reduce_dtype", KIND_DTYPE, FIELD(reduce_dtype)},
    {NULL, SECTION_AIO, KIND_SECTION, 0},
    {SECTION_AIO, "block_size", KIND_BYTES, FIELD(aio.block_size)},
    {SECTION_AIO, "queue_depth", KIND_POSITIVE, FIELD(aio.queue_depth)},
    {SECTION_AIO, "thread_count", KIND_POSITIVE, FIELD(aio.thread_count)},
    {SECTION_AIO, "single_submit", KIND_BOOL, FIELD(aio.single_submit)},
    {SECTION_AIO, "overlap_events", KIND_BOOL, FIELD(aio.overlap_events)},
    {NULL, SECTION_CHECKPOINT, KIND_SECTION, 0},
    {SECTION_CHECKPOINT, "async_save", KIND_BOOL, FIELD(checkpoint_async)},
    {SECTION_CHECKPOINT, "async_buffer_size", KIND_BYTES,
     FIELD(checkpoint_async_buffer_size)},
};
#define NUM_KEYS (sizeof keys / sizeof keys[0])

static const char *const backend_names[] = {"cpu", "cuda"};
#define NUM_BACKENDS (sizeof backend_names / sizeof backend_names[0])
/* Index is the level. */
static const char *const log_level_names[] = {"error", "warn", "info", "debug"};
#define NUM_LOG_LEVELS (sizeof log_level_names / sizeof log_level_names[0])

#define STAGE_RULE   "it must be 0, 1, 2, 3 or \"auto\""
#define BOOL_RULE    "it must be true or false"
#define BACKEND_RULE "it must be \"cpu\" or \"cuda\""
#define LOG_LEVEL_RULE                                                                   \
    "it must be 0, 1, 2, 3 or one of \"error\", \"warn\", \"info\", \"debug\""
#define ELEMENTS_RULE                                                                    \
    "it must be a non-negative whole element count (an integer, or a "                   \
    "string such as \"500M\")"
#define BYTES_RULE                                                                       \
    "it must be a non-negative whole number of bytes (an integer, or a "                 \
    "string such as \"16G\")"

/* ---- error sentences ----------------------------------------------------- */

/* Where a sentence goes and what it names as its source ("config PATH: ..."
 * for loads; source NULL gives "config: ..." for validate). */
typedef struct cfg_err {
    char *buf;
    size_t size;
    const char *source;
} cfg_err;

/* Writes "config SOURCE: <fmt...>" into e->buf (truncated, always
 * NUL-terminated) and returns status. */
__attribute__((format(printf, 3, 4))) static zrt_status
fail(const cfg_err *e, zrt_status status, const char *fmt, ...)
{
    if (e->buf == NULL || e->size == 0)
        return status;
    int n = e->source ? snprintf(e->buf, e->size, "config %s: ", e->source)
                      : snprintf(e->buf, e->size, "config: ");
    if (n < 0 || (size_t)n >= e->size)
        return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->buf + n, e->size - (size_t)n, fmt, ap);
    va_end(ap);
    return status;
}

/* Copies user text (valid UTF-8, as jansson guarantees) into buf for a
 * message: at most 40 bytes, cut on a character boundary, control characters
 * as '?', "..." when cut. */
static const char *quote_text(const char *s, char *buf, size_t size)
{
    const size_t max = size - 4 < 40 ? size - 4 : 40; /* size >= 8 here */
    size_t len = strnlen(s, max + 1), i;
    int cut = len > max;
    if (cut) {
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--; /* s[len] starts the first character left out */
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    if (cut) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

/* Shortest "%g" form that reads back as the same double, always marked as a
 * real ("2.0", not "2", so "stage is 2.0" does not read as a valid stage). */
static void format_real(double d, char *buf, size_t size)
{
    snprintf(buf, size, "%.15g", d);
    if (strtod(buf, NULL) != d)
        snprintf(buf, size, "%.17g", d);
    if (strpbrk(buf, ".eEni") == NULL) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, ".0");
    }
}

/* Describes a JSON value for a message: "5", "2.5", "the string \"two\"",
 * "true", "null", "an object". */
static const char *describe(const json_t *v, char *buf, size_t size)
{
    char text[64];
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        format_real(json_real_value(v), buf, size);
        break;
    case JSON_STRING:
        snprintf(buf, size, "the string \"%s\"",
                 quote_text(json_string_value(v), text, sizeof text));
        break;
    case JSON_TRUE:
        snprintf(buf, size, "true");
        break;
    case JSON_FALSE:
        snprintf(buf, size, "false");
        break;
    case JSON_NULL:
        snprintf(buf, size, "null");
        break;
    case JSON_OBJECT:
        snprintf(buf, size, "an object");
        break;
    case JSON_ARRAY:
        snprintf(buf, size, "an array");
        break;
    }
    return buf;
}

/* "zero_optimization.stage" or "backend". */
static const char *key_path(const char *section, const char *name, char *buf, size_t size)
{
    char text[64];
    quote_text(name, text, sizeof text);
    if (section)
        snprintf(buf, size, "%s.%s", section, text);
    else
        snprintf(buf, size, "%s", text);
    return buf;
}

/* "'<path>' is <value>; <rule>" */
static zrt_status bad_value(const cfg_err *e, const cfg_key *key, const json_t *v,
                            const char *rule)
{
    char path[128], value[96];
    key_path(key->section, key->name, path, sizeof path);
    return fail(e, ZRT_ERR_CONFIG, "'%s' is %s; %s", path,
                describe(v, value, sizeof value), rule);
}

/* ---- reading values ------------------------------------------------------ */

/* A non-negative integral count from an integer, an integral finite real
 * (5e8) or a size string ("64M"). */
static int json_to_count(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return 0;
        *out = (int64_t)i;
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* 2^63 is exactly representable; anything >= it is out of range. */
        if (!isfinite(d) || d < 0 || d != floor(d) || d >= 9223372036854775808.0)
            return 0;
        *out = (int64_t)d;
        return 1;
    }
    if (json_is_string(v))
        return zrt_parse_size(json_string_value(v), out) == ZRT_OK;
    return 0;
}

static zrt_status read_count(const cfg_err *e, const cfg_key *key, const json_t *v,
                             zrt_config *cfg)
{
    int64_t n;
    if (!json_to_count(v, &n))
        return bad_value(e, key, v, key->kind == KIND_BYTES ? BYTES_RULE : ELEMENTS_RULE);
    memcpy((char *)cfg + key->offset, &n, sizeof n);
    return ZRT_OK;
}

static zrt_status read_stage(const cfg_err *e, const cfg_key *key, const json_t *v,
                             zrt_config *cfg)
{
    int stage;
    if (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0)
        stage = ZRT_STAGE_AUTO;
    else if (json_is_integer(v) && json_integer_value(v) >= 0 &&
             json_integer_value(v) <= 3)
        stage = (int)json_integer_value(v);
    else
        return bad_value(e, key, v, STAGE_RULE);
    memcpy((char *)cfg + key->offset, &stage, sizeof stage);
    return ZRT_OK;
}

static zrt_status read_bool(const cfg_err *e, const cfg_key *key, const json_t *v,
                            zrt_config *cfg)
{
    if (!json_is_boolean(v))
        return bad_value(e, key, v, BOOL_RULE);
    int flag = json_is_true(v);
    memcpy((char *)cfg + key->offset, &flag, sizeof flag);
    return ZRT_OK;
}

/* Index of name in backend_names[], or -1. */
static int find_backend(const char *name)
{
    for (size_t i = 0; i < NUM_BACKENDS; i++)
        if (strcmp(name, backend_names[i]) == 0)
            return (int)i;
    return -1;
}

#define DEVICE_RULE   "it must be \"none\", \"cpu\" or \"nvme\""
#define PATH_RULE     "it must be a non-empty path of at most 255 bytes"
#define POSITIVE_RULE "it must be a whole number from 1 to 1048576"
#define REAL_RULE     "it must be a number, 0 or more (0: off)"
#define RATIO_RULE    "it must be 0 (off) or a number between 0 and 1, both excluded"

static const char *const device_names[] = {"none", "cpu", "nvme"};
/* zrt_dtype order: ZRT_F32, ZRT_BF16, ZRT_F16 */
static const char *const dtype_names[] = {"fp32", "bf16", "fp16"};
#define DTYPE_RULE "it must be \"fp32\", \"bf16\" or \"fp16\""

#define COMM_RULE "it must be \"auto\", \"mpi\" or \"nccl\""
static const char *const comm_names[] = {"auto", "mpi", "nccl"};

#define HIERARCHY_RULE "it must be \"auto\", \"flat\" or \"hierarchical\""
/* zrt_comm_hierarchy order */
static const char *const hierarchy_names[] = {"auto", "flat", "hierarchical"};
#define GROUP_RULE                                                                       \
    "it must be 0 (a group per host) or a whole number of ranks from 1 to 1048576"
#define GROUP_MAX (1 << 20)
#define HPZ_RULE                                                                         \
    "it must be 0 or 1 (off) or a whole number of ranks from 2 to 1048576 that divides " \
    "the world size"
#define SHARDS_RULE                                                                      \
    "it must be 0 (off: shard across every rank) or a whole number of ranks from 1 to "  \
    "1048576 that divides the world size"
#define STAGES_RULE                                                                      \
    "it must be 0 or 1 (off) or a whole number of stages from 2 to 1048576 that "        \
    "divides the world size"

/* The kinds whose value is one of a list of names, stored as the name's index
 * (an int): the names in index order and the rule that lists them. */
typedef struct enum_kind {
    const char *const *names;
    int count;
    const char *rule;
} enum_kind;

#define NAMES(a) (a), (int)(sizeof(a) / sizeof((a)[0]))
static const enum_kind enum_kinds[] = {
    [KIND_DEVICE] = {NAMES(device_names), DEVICE_RULE},
    [KIND_COMM] = {NAMES(comm_names), COMM_RULE},
    [KIND_DTYPE] = {NAMES(dtype_names), DTYPE_RULE},
    [KIND_HIERARCHY] = {NAMES(hierarchy_names), HIERARCHY_RULE},
};

static zrt_status read_enum(const cfg_err *e, const cfg_key *key, const json_t *v,
                            zrt_config *cfg)
{
    const enum_kind *en = &enum_kinds[key->kind];
    for (int i = 0; json_is_string(v) && i < en->count; i++) {
        if (strcmp(json_string_value(v), en->names[i]) == 0) {
            memcpy((char *)cfg + key->offset, &i, sizeof i);
            return ZRT_OK;
        }
    }
    return bad_value(e, key, v, en->rule);
}

static zrt_status read_path(const cfg_err *e, const cfg_key *key, const json_t *v,
                            zrt_config *cfg)
{
    const size_t room = sizeof cfg->offload_optimizer.nvme_path;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= room)
        return bad_value(e, key, v, PATH_RULE);
    char *field = (char *)cfg + key->offset;
    memset(field, 0, room);
    memcpy(field, json_string_value(v), json_string_length(v));
    return ZRT_OK;
}

static zrt_status read_positive(const cfg_err *e, const cfg_key *key, const json_t *v,
                                zrt_config *cfg)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > (1 << 20))
        return bad_value(e, key, v, POSITIVE_RULE);
    int n = (int)json_integer_value(v);
    memcpy((char *)cfg + key->offset, &n, sizeof n);
    return ZRT_OK;
}

/* comm_group_size, hybrid_shard_size, zero_hpz_partition_size,
 * pipeline_stages: 0 .. GROUP_MAX. */
static zrt_status read_group(const cfg_err *e, const cfg_key *key, const json_t *v,
                             zrt_config *cfg)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > GROUP_MAX)
        return bad_value(e, key, v,
                         key->kind == KIND_SHARDS   ? SHARDS_RULE
                         : key->kind == KIND_HPZ    ? HPZ_RULE
                         : key->kind == KIND_STAGES ? STAGES_RULE
                                                    : GROUP_RULE);
    int n = (int)json_integer_value(v);
    memcpy((char *)cfg + key->offset, &n, sizeof n);
    return ZRT_OK;
}

static zrt_status read_backend(const cfg_err *e, const cfg_key *key, const json_t *v,
                               zrt_config *cfg)
{
    if (!json_is_string(v) || find_backend(json_string_value(v)) < 0)
        return bad_value(e, key, v, BACKEND_RULE);
    char *field = (char *)cfg + key->offset;
    memset(field, 0, sizeof cfg->backend);
    /* Known names are short; the copy always leaves a NUL. */
    strncpy(field, json_string_value(v), sizeof cfg->backend - 1);
    return ZRT_OK;
}

/* The level named by v (an integer 0..3 or a name), or -1. */
static int json_to_log_level(const json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return i >= 0 && i < (json_int_t)NUM_LOG_LEVELS ? (int)i : -1;
    }
    if (!json_is_string(v))
        return -1;
    for (size_t i = 0; i < NUM_LOG_LEVELS; i++)
        if (strcasecmp(json_string_value(v), log_level_names[i]) == 0)
            return (int)i;
    return -1;
}

static zrt_status read_log_level(const cfg_err *e, const cfg_key *key, const json_t *v,
                                 zrt_config *cfg)
{
    int level = json_to_log_level(v);
    if (level < 0)
        return bad_value(e, key, v, LOG_LEVEL_RULE);
    memcpy((char *)cfg + key->offset, &level, sizeof level);
    return ZRT_OK;
}

/* ---- walking the document ------------------------------------------------ */

static zrt_status read_object(const cfg_err *e, const char *section, const json_t *obj,
                              zrt_config *cfg);

/* Whether k lives in section (NULL: the top level). */
static int in_section(const cfg_key *k, const char *section)
{
    if (section == NULL || k->section == NULL)
        return section == k->section;
    return strcmp(section, k->section) == 0;
}

static const cfg_key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NUM_KEYS; i++)
        if (in_section(&keys[i], section) && strcmp(name, keys[i].name) == 0)
            return &keys[i];
    return NULL;
}

/* Edits (a character inserted, deleted or replaced, or two neighbours
 * swapped) that turn a into b; names over 63 characters are far from all. */
static int edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63)
        return 1 << 20;
    int d[64][64];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            best = d[i - 1][j] + 1 < best ? d[i - 1][j] + 1 : best;
            best = d[i][j - 1] + 1 < best ? d[i][j - 1] + 1 : best;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[n][m];
}

/* The key a misspelt or misplaced name most likely meant: the nearest key
 * of its section within a few edits (1 up to 4 characters, 2 up to 12, 3
 * beyond), else a key of that exact name in another section; NULL when
 * none. */
static const cfg_key *closest_key(const char *section, const char *name)
{
    size_t len = strlen(name);
    int limit = len <= 4 ? 1 : len <= 12 ? 2 : 3;
    const cfg_key *best = NULL;
    for (size_t i = 0; i < NUM_KEYS; i++) {
        int d =
            in_section(&keys[i], section) ? edit_distance(name, keys[i].name) : limit + 1;
        if (d <= limit && (!best || d < edit_distance(name, best->name)))
            best = &keys[i];
    }
    for (size_t i = 0; !best && i < NUM_KEYS; i++)
        if (strcmp(name, keys[i].name) == 0)
            best = &keys[i];
    return best;
}

/* "unknown key 'zero_optimization.stage3_prefetch_bucket_sise' (did you mean
 * 'zero_optimization.stage3_prefetch_bucket_size'?); the keys
 * zero_optimization may hold are stage, reduce_bucket_size, ..." */
static zrt_status unknown_key(const cfg_err *e, const char *section, const char *name)
{
    char path[128], known[512] = "", hint[160] = "", meant[128];
    size_t used = 0;
    for (size_t i = 0; i < NUM_KEYS && used < sizeof known; i++)
        if (in_section(&keys[i], section))
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s",
                                     used ? ", " : "", keys[i].name);
    key_path(section, name, path, sizeof path);
    const cfg_key *like = closest_key(section, name);
    if (like)
        snprintf(hint, sizeof hint, " (did you mean '%s'?)",
                 key_path(like->section, like->name, meant, sizeof meant));
    return fail(e, ZRT_ERR_CONFIG, "unknown key '%s'%s; the keys %s%s are %s", path, hint,
                section ? section : "at the top level", section ? " may hold" : "",
                known);
}

/* The smallest value above 0 a real key takes: below FLT_MIN a float rounds
 * to 0 (1e-50 would turn clipping off, or a timeout into "never") or keeps
 * few digits; a timeout under a millisecond is no timeout a collective meets. */
#define TIMEOUT_LEAST 1e-3

static double real_least(const cfg_key *key)
{
    return key->offset == FIELD(comm_timeout_seconds) ? TIMEOUT_LEAST : (double)FLT_MIN;
}

/* "it must be 0 or at least 0.001" (+ why, at the float limit). */
static const char *least_rule(const cfg_key *key, char *buf, size_t size)
{
    int timeout = key->offset == FIELD(comm_timeout_seconds);
    snprintf(buf, size, "it must be 0 or at least %g%s", real_least(key),
             timeout ? " seconds (0: never)"
                     : " (the smallest normal float: a smaller value would "
                       "round to 0 or lose its precision)");
    return buf;
}

static zrt_status read_real(const cfg_err *e, const cfg_key *key, const json_t *v,
                            zrt_config *cfg)
{
    char rule[160];
    if (!json_is_number(v) || !(json_number_value(v) >= 0) ||
        json_number_value(v) > 3.4e38)
        return bad_value(e, key, v, REAL_RULE);
    if (json_number_value(v) > 0 && json_number_value(v) < real_least(key))
        return bad_value(e, key, v, least_rule(key, rule, sizeof rule));
    float f = (float)json_number_value(v);
    memcpy((char *)cfg + key->offset, &f, sizeof f);
    return ZRT_OK;
}

/* gradient_topk_ratio: 0, or in (0, 1) also once rounded to a float. */
static zrt_status read_ratio(const cfg_err *e, const cfg_key *key, const json_t *v,
                             zrt_config *cfg)
{
    if (!json_is_number(v))
        return bad_value(e, key, v, RATIO_RULE);
    double d = json_number_value(v);
    float f = (float)d;
    if (!(d == 0.0 || (d > 0.0 && d < 1.0 && f > 0.0f && f < 1.0f)))
        return bad_value(e, key, v, RATIO_RULE);
    memcpy((char *)cfg + key->offset, &f, sizeof f);
    return ZRT_OK;
}

/* A section's keys are read as an object, named by the section's full path. */
static zrt_status read_section(const cfg_err *e, const cfg_key *key, const json_t *v,
                               zrt_config *cfg)
{
    if (!json_is_object(v))
        return bad_value(e, key, v, "it must be an object");
    char path[128];
    snprintf(path, sizeof path, "%s%s%s", key->section ? key->section : "",
             key->section ? "." : "", key->name);
    return read_object(e, path, v, cfg);
}

typedef zrt_status (*key_reader)(const cfg_err *e, const cfg_key *key, const json_t *v,
                                 zrt_config *cfg);

static const key_reader readers[] = {
    [KIND_SECTION] = read_section,     [KIND_STAGE] = read_stage,
    [KIND_ELEMENTS] = read_count,      [KIND_BYTES] = read_count,
    [KIND_BOOL] = read_bool,           [KIND_BACKEND] = read_backend,
    [KIND_LOG_LEVEL] = read_log_level, [KIND_DEVICE] = read_enum,
    [KIND_COMM] = read_enum,           [KIND_PATH] = read_path,
    [KIND_POSITIVE] = read_positive,   [KIND_REAL] = read_real,
    [KIND_DTYPE] = read_enum,          [KIND_HIERARCHY] = read_enum,
    [KIND_GROUP] = read_group,         [KIND_SHARDS] = read_group,
    [KIND_HPZ] = read_group,           [KIND_STAGES] = read_group,
    [KIND_RATIO] = read_ratio,
};

static zrt_status read_key(const cfg_err *e, const cfg_key *key, const json_t *v,
                           zrt_config *cfg)
{
    if ((size_t)key->kind >= sizeof readers / sizeof readers[0] || !readers[key->kind])
        return fail(e, ZRT_ERR_INTERNAL, "key table entry '%s' has no reader", key->name);
    return readers[key->kind](e, key, v, cfg);
}

/* Applies every key of obj (in document order) to *cfg; stops at the first
 * bad one. */
static zrt_status read_object(const cfg_err *e, const char *section, const json_t *obj,
                              zrt_config *cfg)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)obj, name, v)
    {
        const cfg_key *key = find_key(section, name);
        if (key == NULL)
            return unknown_key(e, section, name);
        zrt_status st = read_key(e, key, v, cfg);
        if (st != ZRT_OK)
            return st;
    }
    return ZRT_OK;
}

/* Turns a parsed document (or jansson's error when doc is NULL) into
 * overrides on *cfg, all or nothing. Takes the reference to doc. */
static zrt_status apply_document(const cfg_err *e, json_t *doc, const json_error_t *jerr,
                                 zrt_config *cfg)
{
    char what[96];
    if (doc == NULL) {
        if (jerr->line < 0)
            return fail(e, ZRT_ERR_CONFIG, "malformed JSON: %s", jerr->text);
        return fail(e, ZRT_ERR_CONFIG, "malformed JSON at line %d, column %d: %s",
                    jerr->line, jerr->column, jerr->text);
    }
    zrt_status st;
    if (!json_is_object(doc)) {
        st = fail(e, ZRT_ERR_CONFIG, "the document is %s; it must be a JSON object",
                  describe(doc, what, sizeof what));
    } else {
        zrt_config next;
        memcpy(&next, cfg, sizeof next);
        st = read_object(e, NULL, doc, &next);
        if (st == ZRT_OK)
            memcpy(cfg, &next, sizeof next);
    }
    json_decref(doc);
    return st;
}

/* Loads and validate only touch a struct laid out as this library's. */
static zrt_status check_struct_size(const cfg_err *e, const zrt_config *cfg)
{
    if (cfg->struct_size == sizeof(zrt_config))
        return ZRT_OK;
    return fail(e, ZRT_ERR_CONFIG,
                "struct_size is %zu but this library's zrt_config is %zu "
                "bytes; the caller was compiled against a different zrt.h "
                "or did not call zrt_config_init()",
                cfg->struct_size, sizeof(zrt_config));
}

#define JSON_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

/* ---- public calls -------------------------------------------------------- */

zrt_status zrt_config_init(zrt_config *cfg)
{
    _Static_assert(offsetof(zrt_config, struct_size) == 0, "struct_size comes first");
    ZRT_CHECK(zrt__sized_init(cfg, sizeof *cfg));
    cfg->stage = 0;
    cfg->reduce_bucket_size = 500000000;
    cfg->allgather_bucket_size = 500000000;
    cfg->stage3_prefetch_bucket_size = 50000000;
    cfg->stage3_param_persistence_threshold = 100000;
    cfg->overlap_comm = 1;
    cfg->device_mem_limit = 0;
    cfg->host_mem_limit = 0;
    cfg->gradient_accumulation_steps = 1;
    cfg->gradient_clipping = 0.0f;
    cfg->bf16.enabled = 0;
    cfg->fp16 = (zrt_fp16_config){.enabled = 0,
                                  .loss_scale = 0.0f,
                                  .initial_scale_power = 16,
                                  .loss_scale_window = 1000,
                                  .hysteresis = 2,
                                  .min_loss_scale = 1.0f};
    cfg->reduce_dtype = ZRT_DTYPE_DEFAULT;
    strcpy(cfg->backend, "cpu");
    cfg->communicator = ZRT_COMM_AUTO;
    cfg->comm_timeout_seconds = 600.0f;
    cfg->comm_hierarchy = ZRT_COMM_HIER_AUTO;
    cfg->comm_group_size = 0;         /* a group per host */
    cfg->hybrid_shard_size = 0;       /* off: shard across every rank */
    cfg->pipeline_stages = 0;         /* off: every rank runs the whole model */
    cfg->zero_hpz_partition_size = 0; /* off: backward gathers across every rank */
    cfg->zero_quantized_weights = 0;  /* off: gathers move f32 */
    cfg->zero_quantized_block_size = 256;
    cfg->zero_quantized_gradients = 0;     /* off: reductions move f32 */
    cfg->zero_quantized_gradient_bits = 8; /* int8 when on */
    cfg->gradient_topk_ratio = 0.0f;       /* off: reductions move every element */
    cfg->log_level = 1;
    cfg->offload_optimizer.buffer_count = 4; /* DeepSpeed's defaults */
    cfg->offload_param.buffer_count = 5;
    cfg->aio = (zrt_aio_config){.block_size = 1048576,
                                .queue_depth = 8,
                                .thread_count = 1,
                                .single_submit = 0,
                                .overlap_events = 1};
    return ZRT_OK;
}

zrt_status zrt_config_load_string(zrt_config *cfg, const char *json, char *errbuf,
                                  size_t errbuf_size)
{
    const cfg_err e = {errbuf, errbuf_size, STRING_SOURCE};
    if (cfg == NULL || json == NULL)
        return fail(&e, ZRT_ERR_INVALID_ARG, "%s is NULL",
                    cfg == NULL ? "cfg" : "the JSON text");
    zrt_status st = check_struct_size(&e, cfg);
    if (st != ZRT_OK)
        return st;
    json_error_t jerr;
    json_t *doc = json_loads(json, JSON_FLAGS, &jerr);
    return apply_document(&e, doc, &jerr, cfg);
}

/* Reads the open file fp (named by e->source) into *doc: at most
 * CONFIG_FILE_MAX bytes, a larger file (or pipe) refused before parsing. */
static zrt_status parse_file(const cfg_err *e, FILE *fp, json_t **doc, json_error_t *jerr)
{
    char text[128];
    struct stat sb;
    int have_stat = fstat(fileno(fp), &sb) == 0;
    if (have_stat && S_ISDIR(sb.st_mode))
        return fail(e, ZRT_ERR_CONFIG, "cannot open: %s",
                    zrt__errno_text(EISDIR, text, sizeof text));
    if (have_stat && S_ISREG(sb.st_mode) && sb.st_size > CONFIG_FILE_MAX)
        return fail(e, ZRT_ERR_CONFIG,
                    "the file is %lld bytes; a config file may be at "
                    "most %d bytes (1 MiB)",
                    (long long)sb.st_size, CONFIG_FILE_MAX);
    char *buf = malloc((size_t)CONFIG_FILE_MAX + 1);
    if (buf == NULL)
        return fail(e, ZRT_ERR_OUT_OF_MEMORY, "cannot allocate %d bytes to read it",
                    CONFIG_FILE_MAX + 1);
    errno = 0;
    size_t len = fread(buf, 1, (size_t)CONFIG_FILE_MAX + 1, fp);
    zrt_status st = ZRT_OK;
    if (ferror(fp))
        st = fail(e, ZRT_ERR_CONFIG, "cannot read: %s",
                  zrt__errno_text(errno ? errno : EIO, text, sizeof text));
    else if (len > CONFIG_FILE_MAX) /* a pipe, or a file that grew */
        st = fail(e, ZRT_ERR_CONFIG,
                  "the file is more than %d bytes; a config file "
                  "may be at most %d bytes (1 MiB)",
                  CONFIG_FILE_MAX, CONFIG_FILE_MAX);
    else
        *doc = json_loadb(buf, len, JSON_FLAGS, jerr);
    free(buf);
    return st;
}

zrt_status zrt_config_load_file(zrt_config *cfg, const char *path, char *errbuf,
                                size_t errbuf_size)
{
    const cfg_err e = {errbuf, errbuf_size, path ? path : "(null)"};
    if (cfg == NULL || path == NULL)
        return fail(&e, ZRT_ERR_INVALID_ARG, "%s is NULL",
                    cfg == NULL ? "cfg" : "the path");
    zrt_status st = check_struct_size(&e, cfg);
    if (st != ZRT_OK)
        return st;
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        char text[128];
        return fail(&e, ZRT_ERR_CONFIG, "cannot open: %s",
                    zrt__errno_text(errno, text, sizeof text));
    }
    json_t *doc = NULL;
    json_error_t jerr;
    st = parse_file(&e, fp, &doc, &jerr);
    fclose(fp);
    if (st != ZRT_OK)
        return st;
    return apply_document(&e, doc, &jerr, cfg);
}

/* ZRT_NVME_PATH (zero-launch --nvme-path) fills nvme_path where the config
 * left it empty. */
static zrt_status apply_nvme_env(zrt_config *cfg, char *errbuf, size_t errbuf_size)
{
    const char *dir = getenv("ZRT_NVME_PATH");
    const cfg_err e = {errbuf, errbuf_size, "ZRT_NVME_PATH"};
    if (dir == NULL || *dir == '\0')
        return ZRT_OK;
    if (strlen(dir) >= sizeof cfg->offload_optimizer.nvme_path)
        return fail(&e, ZRT_ERR_CONFIG, "'%s' is longer than 255 bytes", dir);
    zrt_offload_config *both[2] = {&cfg->offload_optimizer, &cfg->offload_param};
    for (int i = 0; i < 2; i++)
        if (both[i]->nvme_path[0] == '\0')
            strcpy(both[i]->nvme_path, dir);
    return ZRT_OK;
}

zrt_status zrt_config_load_env(zrt_config *cfg, char *errbuf, size_t errbuf_size)
{
    if (cfg == NULL)
        return ZRT_ERR_INVALID_ARG;
    const char *path = getenv("ZRT_CONFIG");
    if (path != NULL && *path != '\0') {
        zrt_status st = zrt_config_load_file(cfg, path, errbuf, errbuf_size);
        if (st != ZRT_OK)
            return st;
    }
    return apply_nvme_env(cfg, errbuf, errbuf_size);
}

/* ---- validation ---------------------------------------------------------- */

static zrt_status validate_backend(const cfg_err *e, const char *backend)
{
    char text[64];
    if (memchr(backend, '\0', sizeof((zrt_config *)0)->backend) == NULL)
        return fail(e, ZRT_ERR_CONFIG,
                    "'backend' is not NUL-terminated within its %zu bytes",
                    sizeof((zrt_config *)0)->backend);
    if (find_backend(backend) < 0)
        return fail(e, ZRT_ERR_CONFIG, "'backend' is \"%s\"; %s",
                    quote_text(backend, text, sizeof text), BACKEND_RULE);
    return ZRT_OK;
}

static zrt_status validate_count(const cfg_err *e, const char *path, const char *field,
                                 const char *rule)
{
    int64_t n;
    memcpy(&n, field, sizeof n);
    if (n >= 0)
        return ZRT_OK;
    return fail(e, ZRT_ERR_CONFIG, "'%s' is %lld; %s", path, (long long)n, rule);
}

/* An int field that must lie in 0..max. */
static zrt_status validate_int(const cfg_err *e, const char *path, const char *field,
                               int max, const char *rule)
{
    int i;
    memcpy(&i, field, sizeof i);
    if (i >= 0 && i <= max)
        return ZRT_OK;
    return fail(e, ZRT_ERR_CONFIG, "'%s' is %d; %s", path, i, rule);
}

/* Checks one table field of *cfg; sections have nothing to check. */
static zrt_status validate_key(const cfg_err *e, const cfg_key *key,
                               const zrt_config *cfg)
{
    const char *field = (const char *)cfg + key->offset;
    char path[128];
    key_path(key->section, key->name, path, sizeof path);
    switch (key->kind) {
    case KIND_SECTION:
        return ZRT_OK;
    case KIND_STAGE: {
        int stage;
        memcpy(&stage, field, sizeof stage);
        return stage == ZRT_STAGE_AUTO ? ZRT_OK
                                       : validate_int(e, path, field, 3, STAGE_RULE);
    }
    case KIND_ELEMENTS:
        return validate_count(e, path, field, ELEMENTS_RULE);
    case KIND_BYTES:
        return validate_count(e, path, field, BYTES_RULE);
    case KIND_BOOL:
        return validate_int(e, path, field, 1, "it must be 1 (true) or 0 (false)");
    case KIND_BACKEND:
        return validate_backend(e, field);
    case KIND_LOG_LEVEL:
        return validate_int(e, path, field, 3,
                            "it must be 0 (error), 1 (warn), 2 (info) "
                            "or 3 (debug)");
    case KIND_DEVICE:
    case KIND_COMM:
    case KIND_HIERARCHY:
        return validate_int(e, path, field, enum_kinds[key->kind].count - 1,
                            enum_kinds[key->kind].rule);
    case KIND_PATH:
        return memchr(field, '\0', sizeof cfg->offload_optimizer.nvme_path)
                   ? ZRT_OK
                   : fail(e, ZRT_ERR_CONFIG, "'%s' is not NUL-terminated", path);
    case KIND_DTYPE: {
        int d;
        memcpy(&d, field, sizeof d);
        return d == ZRT_DTYPE_DEFAULT || (d >= 0 && d < ZRT_DTYPE_COUNT)
                   ? ZRT_OK
                   : fail(e, ZRT_ERR_CONFIG, "'%s' is %d; %s", path, d, DTYPE_RULE);
    }
    case KIND_REAL: {
        float f;
        char rule[160];
        memcpy(&f, field, sizeof f);
        if (!(f >= 0.0f && f <= 3.4e38f))
            return fail(e, ZRT_ERR_CONFIG, "'%s' is %g; %s", path, (double)f, REAL_RULE);
        return f == 0.0f || (double)f >= real_least(key)
                   ? ZRT_OK
                   : fail(e, ZRT_ERR_CONFIG, "'%s' is %g; %s", path, (double)f,
                          least_rule(key, rule, sizeof rule));
    }
    case KIND_RATIO: {
        float f;
        memcpy(&f, field, sizeof f);
        return f == 0.0f || (f > 0.0f && f < 1.0f)
                   ? ZRT_OK
                   : fail(e, ZRT_ERR_CONFIG, "'%s' is %g; %s", path, (double)f,
                          RATIO_RULE);
    }
    case KIND_GROUP:
        return validate_int(e, path, field, GROUP_MAX, GROUP_RULE);
    case KIND_SHARDS:
        return validate_int(e, path, field, GROUP_MAX, SHARDS_RULE);
    case KIND_HPZ:
        return validate_int(e, path, field, GROUP_MAX, HPZ_RULE);
    case KIND_STAGES:
        return validate_int(e, path, field, GROUP_MAX, STAGES_RULE);
    case KIND_POSITIVE: {
        int n;
        memcpy(&n, field, sizeof n);
        return n >= 1 && n <= (1 << 20)
                   ? ZRT_OK
                   : fail(e, ZRT_ERR_CONFIG, "'%s' is %d; %s", path, n, POSITIVE_RULE);
    }
    }
    return fail(e, ZRT_ERR_INTERNAL, "key table entry '%s' has no check", path);
}

/* One 16-bit format at most; gradients reduce in it or in fp32; the loss
 * scale must stay a finite float. */
static zrt_status validate_precision(const cfg_err *e, const zrt_config *cfg)
{
    if (cfg->bf16.enabled && cfg->fp16.enabled)
        return fail(e, ZRT_ERR_CONFIG,
                    "'bf16.enabled' and 'fp16.enabled' are both "
                    "true; choose one");
    zrt_dtype params = cfg->bf16.enabled   ? ZRT_BF16
                       : cfg->fp16.enabled ? ZRT_F16
                                           : ZRT_F32;
    if (cfg->reduce_dtype != ZRT_DTYPE_DEFAULT && cfg->reduce_dtype != ZRT_F32 &&
        cfg->reduce_dtype != (int)params)
        return fail(e, ZRT_ERR_CONFIG,
                    "'reduce_dtype' is \"%s\" but the parameters are "
                    "%s; gradients reduce in fp32 or in the parameters' type",
                    dtype_names[cfg->reduce_dtype], dtype_names[params]);
    if (cfg->fp16.initial_scale_power > 127)
        return fail(e, ZRT_ERR_CONFIG,
                    "'fp16.initial_scale_power' is %d; 2^%d is not a "
                    "finite float (at most 127)",
                    cfg->fp16.initial_scale_power, cfg->fp16.initial_scale_power);
    if (!(cfg->fp16.min_loss_scale > 0.0f))
        return fail(e, ZRT_ERR_CONFIG, "'fp16.min_loss_scale' is %g; it must be above 0",
                    (double)cfg->fp16.min_loss_scale);
    return ZRT_OK;
}

/* The rules between fields, as DeepSpeed has them: optimizer offload from
 * stage 1, parameter offload at stage 3, NVMe needs a path. */
static zrt_status validate_offload(const cfg_err *e, const zrt_config *cfg)
{
    const zrt_offload_config *o = &cfg->offload_optimizer, *p = &cfg->offload_param;
    if (cfg->stage == ZRT_STAGE_AUTO) /* the runtime picks stage and tiers */
        return ZRT_OK;
    if (o->device != ZRT_OFFLOAD_NONE && cfg->stage < 1)
        return fail(e, ZRT_ERR_CONFIG,
                    "'%s.device' is \"%s\" but stage is 0; "
                    "offloading the optimizer needs stage 1, 2 or 3",
                    SECTION_OFFLOAD_OPTIM, device_names[o->device]);
    if (p->device != ZRT_OFFLOAD_NONE && cfg->stage != 3)
        return fail(e, ZRT_ERR_CONFIG,
                    "'%s.device' is \"%s\" but stage is %d; "
                    "offloading parameters needs stage 3",
                    SECTION_OFFLOAD_PARAM, device_names[p->device], cfg->stage);
    if (o->device == ZRT_OFFLOAD_NVME && !o->nvme_path[0])
        return fail(e, ZRT_ERR_CONFIG,
                    "'%s.device' is \"nvme\" but '%s.nvme_path' "
                    "is not set",
                    SECTION_OFFLOAD_OPTIM, SECTION_OFFLOAD_OPTIM);
    if (p->device == ZRT_OFFLOAD_NVME && !p->nvme_path[0])
        return fail(e, ZRT_ERR_CONFIG,
                    "'%s.device' is \"nvme\" but '%s.nvme_path' "
                    "is not set",
                    SECTION_OFFLOAD_PARAM, SECTION_OFFLOAD_PARAM);
    return ZRT_OK;
}

zrt_status zrt_config_validate(const zrt_config *cfg, char *errbuf, size_t errbuf_size)
{
    const cfg_err e = {errbuf, errbuf_size, NULL};
    if (cfg == NULL)
        return fail(&e, ZRT_ERR_INVALID_ARG, "cfg is NULL");
    zrt_status st = check_struct_size(&e, cfg);
    if (st != ZRT_OK)
        return st;
    for (size_t i = 0; i < NUM_KEYS; i++) {
        st = validate_key(&e, &keys[i], cfg);
        if (st != ZRT_OK)
            return st;
    }
    st = validate_precision(&e, cfg);
    return st != ZRT_OK ? st : validate_offload(&e, cfg);
}

/* ---- sizes --------------------------------------------------------------- */

/* A parsed "<int>[.<frac>]" number: value = whole + frac / 10^frac_digits,
 * with trailing zeros of frac dropped. */
typedef struct size_number {
    uint64_t whole;
    uint64_t frac;
    int frac_digits;
} size_number;

/* Reads digits at *p into *out; 0 when there are none or they overflow. */
static int read_digits(const char **p, uint64_t *out, int *count)
{
    uint64_t v = 0;
    int n = 0;
    for (; isdigit((unsigned char)**p); (*p)++, n++) {
        unsigned d = (unsigned)(**p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    *count = n;
    return n > 0;
}

static int read_number(const char **p, size_number *num)
{
    int n;
    num->frac = 0;
    num->frac_digits = 0;
    if (!read_digits(p, &num->whole, &n))
        return 0;
    if (**p != '.')
        return 1;
    (*p)++;
    const char *start = *p, *end;
    while (isdigit((unsigned char)**p))
        (*p)++;
    end = *p;
    if (end == start)
        return 0;
    while (end > start && end[-1] == '0') /* "1.50" is "1.5" */
        end--;
    if (end - start > 19) /* keeps frac in a uint64; refused as invalid */
        return 0;
    for (const char *q = start; q < end; q++)
        num->frac = num->frac * 10 + (uint64_t)(*q - '0');
    num->frac_digits = (int)(end - start);
    return 1;
}

/* Reads an optional K/M/G/T (+ "B" or "iB") or bare "B" suffix; *shift is the
 * power of two it multiplies by. */
static int read_suffix(const char **p, int *shift)
{
    static const char prefixes[] = "KMGT";
    int c = toupper((unsigned char)**p);
    const char *hit = c ? strchr(prefixes, c) : NULL;
    *shift = 0;
    if (hit) {
        *shift = 10 * (int)(hit - prefixes + 1);
        (*p)++;
        if (toupper((unsigned char)**p) == 'I') {
            (*p)++;
            if (toupper((unsigned char)**p) != 'B')
                return 0;
        }
    }
    if (toupper((unsigned char)**p) == 'B')
        (*p)++;
    return 1;
}

/* num * 2^shift as an exact int64, or 0 when it is fractional or too big. */
static int scale_number(const size_number *num, int shift, int64_t *out)
{
    /* frac / 10^k * 2^s is whole iff 5^k | frac and then the remaining
     * q / 2^k * 2^s is whole. frac < 10^19 so q < 2^64. */
    uint64_t pow5 = 1, q, frac_bytes;
    int k = num->frac_digits;
    for (int i = 0; i < k; i++)
        pow5 *= 5; /* k <= 19: 5^19 < 2^45 */
    if (num->frac % pow5 != 0)
        return 0;
    q = num->frac / pow5;
    if (shift >= k) {
        frac_bytes = q << (shift - k); /* q < 2^k, so < 2^shift */
    } else {
        uint64_t mask = ((uint64_t)1 << (k - shift)) - 1;
        if (q & mask)
            return 0;
        frac_bytes = q >> (k - shift);
    }
    uint64_t limit = (uint64_t)INT64_MAX;
    if (num->whole > (limit >> shift))
        return 0;
    uint64_t whole_bytes = num->whole << shift;
    if (frac_bytes > limit - whole_bytes)
        return 0;
    *out = (int64_t)(whole_bytes + frac_bytes);
    return 1;
}

zrt_status zrt_parse_size(const char *text, int64_t *out)
{
    if (text == NULL || out == NULL)
        return ZRT_ERR_INVALID_ARG;
    const char *p = text;
    size_number num;
    int shift;
    int64_t value;
    while (isspace((unsigned char)*p))
        p++;
    if (!read_number(&p, &num))
        return ZRT_ERR_INVALID_ARG;
    while (isspace((unsigned char)*p))
        p++;
    if (!read_suffix(&p, &shift))
        return ZRT_ERR_INVALID_ARG;
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '\0' || !scale_number(&num, shift, &value))
        return ZRT_ERR_INVALID_ARG;
    *out = value;
    return ZRT_OK;
}
