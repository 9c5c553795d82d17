/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-report/estimate.c — --estimate: what each rank would hold for a
 * parameter count (or a model preset), a world size, a stage (or all four
 * side by side), a precision, offload choices and bucket sizes, from
 * zrt_estimate_memory(); no job runs. The model and config readers here are
 * shared with --fit.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "zero_report.h"

/* A model preset. GPT-2 shapes as the example groups them into layers
 * (examples/gpt2/model.c): layer 0 wte + wpe, one layer per block, the last
 * the final layer norm; vocabulary 50257 padded to 50304 (the train-gpt2-dN
 * presets: examples/gpt2/train_gpt2 --model dN, bytes, 256), context 1024. */
typedef struct preset {
    const char *name;
    int64_t channels; /* 0: not a GPT-2 shape */
    int blocks;
    int64_t params, largest; /* when channels is 0 */
    int param_bytes;
    const char *note;
    int64_t vocab; /* padded; 0: GPT-2's 50304 */
} preset;

static const preset presets[] = {
    {"gpt2-124m", 768, 12, 0, 0, 4, NULL, 0},
    {"gpt2-350m", 1024, 24, 0, 0, 4, NULL, 0},
    {"gpt2-774m", 1280, 36, 0, 0, 4, NULL, 0},
    {"gpt2-1558m", 1600, 48, 0, 0, 4, NULL, 0},
    {"zero-paper-7.5b", 0, 0, 7500000000LL, 12LL * 4096 * 4096, 2,
     "the ZeRO paper's 7.5B-parameter model in mixed precision; its layers are "
     "not given, so the largest is assumed to be one transformer block without "
     "biases, 12*h^2 with h = 4096, and no layer is persistent",
     0},
    {"train-gpt2-d4", 256, 4, 0, 0, 4,
     "examples/gpt2/train_gpt2 --model d4: a byte vocabulary (256), context 1024", 256},
    {"train-gpt2-d6", 384, 6, 0, 0, 4,
     "examples/gpt2/train_gpt2 --model d6: a byte vocabulary (256), context 1024", 256},
    {"train-gpt2-d12", 768, 12, 0, 0, 4,
     "examples/gpt2/train_gpt2 --model d12: a byte vocabulary (256), context 1024", 256},
};
#define NPRESETS (int)(sizeof presets / sizeof presets[0])

enum { GPT2_VOCAB = 50304, GPT2_CTX = 1024 };

/* Layer sizes of a GPT-2 preset: embedding, blocks, final layer norm. */
static int64_t gpt2_layer(const preset *p, int layer)
{
    int64_t c = p->channels;
    if (layer == 0)
        return ((p->vocab ? p->vocab : GPT2_VOCAB) + GPT2_CTX) * c;
    if (layer <= p->blocks)
        return 12 * c * c + 13 * c;
    return 2 * c;
}

/* Fills the model from a preset; the threshold decides what persists. */
static void apply_preset(const preset *p, int64_t threshold, zrt_mem_model *m)
{
    m->param_bytes = p->param_bytes;
    if (!p->channels) {
        m->param_count = p->params;
        m->largest_layer_numel = p->largest;
        return;
    }
    m->param_count = m->largest_layer_numel = m->persistent_numel = 0;
    m->nlayers = p->blocks + 2;
    for (int l = 0; l < m->nlayers; l++) {
        int64_t n = gpt2_layer(p, l);
        m->param_count += n;
        m->largest_layer_numel = n > m->largest_layer_numel ? n : m->largest_layer_numel;
        m->persistent_numel += n <= threshold ? n : 0;
    }
}

/* "7.5e9", "124M", "1.5B": a whole count from lo to hi; K, M, B/G, T are
 * powers of 1000. Shared with the step-time flags. */
int zr_parse_whole(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    const char *suffixes = "KMBGT";
    const double scale[] = {1e3, 1e6, 1e9, 1e9, 1e12};
    const char *hit = *end ? strchr(suffixes, toupper((unsigned char)*end)) : NULL;
    if (hit && end[1] == '\0')
        v *= scale[hit - suffixes], end++;
    if (errno || end == s || *end || !(v >= (double)lo) || v > (double)hi ||
        fabs(v - nearbyint(v)) > 1e-6 * (v > 1 ? v : 1))
        return zr_error("%s '%s': it must be a whole number from %lld to %lld (7.5e9 and "
                        "suffixes K, M, B, T in powers of 1000 are fine)",
                        flag, s, (long long)lo, (long long)hi);
    *out = (int64_t)nearbyint(v);
    return 0;
}

/* Bucket sizes as the config reads them: "5e8", or "50M" (powers of 1024). */
static int parse_elements(const char *flag, const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!errno && end != s && !*end && v >= 0 && v < 9e18 && v == nearbyint(v)) {
        *out = (int64_t)v;
        return 0;
    }
    if (zrt_parse_size(s, out) == ZRT_OK)
        return 0;
    return zr_error("%s '%s': it must be a whole element count (5e8, or 50M in powers "
                    "of 1024, as in the config)",
                    flag, s);
}

static int parse_device(const char *flag, const char *s, int *out)
{
    static const char *names[] = {"none", "cpu", "nvme"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return 0;
        }
    return zr_error("%s '%s': it must be none, cpu or nvme", flag, s);
}

const char *zr_device_name(int device)
{
    return device == ZRT_OFFLOAD_CPU    ? "cpu"
           : device == ZRT_OFFLOAD_NVME ? "nvme"
                                        : "none";
}

static int find_preset(const char *name, const preset **out)
{
    for (int i = 0; i < NPRESETS; i++)
        if (!strcmp(name, presets[i].name)) {
            *out = &presets[i];
            return 0;
        }
    char list[256] = "";
    for (int i = 0; i < NPRESETS; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 presets[i].name);
    return zr_error("--preset '%s': not a preset; the presets are %s", name, list);
}

int zr_read_config(const zr_opts *o, question *q)
{
    char why[512];
    zrt_config_init(&q->cfg);
    if (o->config && zrt_config_load_file(&q->cfg, o->config, why, sizeof why) != ZRT_OK)
        return zr_error("%s", why);
    if (o->offload_optim && parse_device("--offload-optimizer", o->offload_optim,
                                         &q->cfg.offload_optimizer.device))
        return EXIT_BAD_INPUT;
    if (o->offload_param &&
        parse_device("--offload-param", o->offload_param, &q->cfg.offload_param.device))
        return EXIT_BAD_INPUT;
    if ((o->reduce_bucket && parse_elements("--reduce-bucket", o->reduce_bucket,
                                            &q->cfg.reduce_bucket_size)) ||
        (o->prefetch_bucket && parse_elements("--prefetch-bucket", o->prefetch_bucket,
                                              &q->cfg.stage3_prefetch_bucket_size)) ||
        (o->threshold && parse_elements("--persistence-threshold", o->threshold,
                                        &q->cfg.stage3_param_persistence_threshold)))
        return EXIT_BAD_INPUT;
    return 0;
}

static int read_stages(const zr_opts *o, question *q)
{
    const char *s = o->stage ? o->stage : o->config ? NULL : "all";
    if (!s) { /* the config file's stage */
        q->first_stage = q->last_stage = q->cfg.stage;
        return 0;
    }
    if (!strcmp(s, "all")) {
        q->first_stage = 0;
        q->last_stage = 3;
        return 0;
    }
    if (strlen(s) != 1 || s[0] < '0' || s[0] > '3')
        return zr_error("--stage '%s': it must be 0, 1, 2, 3 or all", s);
    q->first_stage = q->last_stage = s[0] - '0';
    return 0;
}

static int read_precision(const zr_opts *o, question *q)
{
    if (!o->precision)
        return 0;
    if (!strcmp(o->precision, "fp32"))
        q->model.param_bytes = 4;
    else if (!strcmp(o->precision, "bf16") || !strcmp(o->precision, "fp16"))
        q->model.param_bytes = 2;
    else
        return zr_error("--precision '%s': it must be fp32, bf16 or fp16", o->precision);
    return 0;
}

static int64_t resolved_largest(const zrt_mem_model *m)
{
    if (m->largest_layer_numel || m->nlayers == 0)
        return m->largest_layer_numel;
    return m->param_count / m->nlayers + (m->param_count % m->nlayers != 0);
}

enum { DEFAULT_LAYERS = 32 };

/* The model: a preset, or --params with --largest-layer / --layers. */
int zr_read_model(const zr_opts *o, question *q)
{
    zrt_mem_model_init(&q->model);
    if (o->preset) {
        if (o->params || o->largest || o->layers)
            return zr_error("--preset %s gives the parameter count and the layers; drop "
                            "--params, --largest-layer and --layers, or the preset",
                            o->preset);
        if (find_preset(o->preset, &q->preset))
            return EXIT_BAD_INPUT;
        apply_preset(q->preset, q->cfg.stage3_param_persistence_threshold, &q->model);
        if (q->preset->channels) {
            q->blocks = q->preset->blocks;
            q->channels = q->preset->channels;
            q->context = GPT2_CTX;
            q->first_layer = gpt2_layer(q->preset, 0);
            q->tied_embedding = 1;
        } else {
            q->first_layer = q->model.largest_layer_numel;
        }
        return read_precision(o, q);
    }
    if (!o->params)
        return zr_error("--estimate and --fit need --params N or --preset NAME");
    int64_t layers = 0;
    if (zr_parse_whole("--params", o->params, 0, (int64_t)1 << 50,
                       &q->model.param_count) ||
        (o->largest &&
         zr_parse_whole("--largest-layer", o->largest, 0, q->model.param_count,
                        &q->model.largest_layer_numel)) ||
        (o->layers && zr_parse_whole("--layers", o->layers, 0, INT_MAX, &layers)))
        return EXIT_BAD_INPUT;
    q->model.nlayers = (int)layers;
    if (o->largest)
        snprintf(q->largest_note, sizeof q->largest_note, "given");
    else if (o->layers)
        snprintf(q->largest_note, sizeof q->largest_note, "%s equal layers", o->layers);
    else {
        q->model.nlayers = DEFAULT_LAYERS;
        snprintf(q->largest_note, sizeof q->largest_note,
                 "assumed: %d equal layers; give --largest-layer, --layers or --preset",
                 DEFAULT_LAYERS);
    }
    q->first_layer = resolved_largest(&q->model); /* not known: the largest */
    return read_precision(o, q);
}

/* The config for one stage of the table; with --stage all, offloads that the
 * stage cannot have are left out (noted under the table). */
static zrt_config config_for(const question *q, int stage, int all)
{
    zrt_config c = q->cfg;
    c.stage = stage;
    if (all && stage < 1)
        c.offload_optimizer.device = ZRT_OFFLOAD_NONE;
    if (all && stage < 3)
        c.offload_param.device = ZRT_OFFLOAD_NONE;
    return c;
}

/* The model, its largest layer, the ranks and the buckets: four lines. */
void zr_print_model(const question *q)
{
    char a[32], b[32], c[32], d[32];
    const zrt_mem_model *m = &q->model;
    const zrt_config *cfg = &q->cfg;
    printf("model: %s parameters (%.3g)%s%s, %s\n",
           zr_grouped(a, sizeof a, m->param_count), (double)m->param_count,
           q->preset ? ", preset " : "", q->preset ? q->preset->name : "",
           m->param_bytes == 2 ? "16-bit params and grads, f32 master and Adam moments "
                                 "(2 + 2 + 4 + 8 = 16 bytes a parameter)"
                               : "f32 params and grads, Adam moments "
                                 "(4 + 4 + 8 = 16 bytes a parameter)");
    if (q->preset && q->preset->note)
        printf("  (%s)\n", q->preset->note);
    int64_t largest = resolved_largest(m);
    printf("largest layer: %s elements (%s); persistent at stage 3: ",
           zr_grouped(b, sizeof b, largest),
           q->preset ? "from the preset" : q->largest_note);
    if (largest <= cfg->stage3_param_persistence_threshold)
        printf("all (every layer is at or under the persistence threshold)\n");
    else
        printf("%s elements%s\n", zr_grouped(c, sizeof c, m->persistent_numel),
               m->persistent_numel || q->preset ? "" : " (unknown)");
    printf("%d rank%s; reduce bucket %s, prefetch bucket %s, persistence threshold %s "
           "elements; overlap_comm %s\n",
           q->world_size, q->world_size == 1 ? "" : "s",
           zr_grouped(a, sizeof a, cfg->reduce_bucket_size),
           zr_grouped(b, sizeof b, cfg->stage3_prefetch_bucket_size),
           zr_grouped(d, sizeof d, cfg->stage3_param_persistence_threshold),
           cfg->overlap_comm ? "on" : "off");
}

static void print_estimate_header(const question *q, const units *u)
{
    const zrt_config *cfg = &q->cfg;
    printf("zero-report --estimate: bytes per rank, in %s\n",
           u->exact                ? "bytes"
           : u->unit == 1000000000 ? "GB = 1e9 bytes and GiB = 2^30 bytes"
           : u->unit == 1000000    ? "MB = 1e6 bytes and MiB = 2^20 bytes"
                                   : "KB = 1e3 bytes and KiB = 2^10 bytes");
    zr_print_model(q);
    printf("offload: optimizer %s, parameters %s\n\n",
           zr_device_name(cfg->offload_optimizer.device),
           zr_device_name(cfg->offload_param.device));
}

static int is_model_state(int c)
{
    return c == ZRT_CAT_PARAM || c == ZRT_CAT_GRAD || c == ZRT_CAT_MASTER ||
           c == ZRT_CAT_OPTIM;
}

/* Rows of the estimate table, in order: per tier the model-state categories,
 * their subtotal, the buffer categories, theirs, the tier total; then the
 * total over tiers. A category or tier that is 0 in every stage is left out. */
typedef struct est_row {
    int tier;     /* -1: all tiers; -2: a blank line between tiers */
    int category; /* >= 0, or one of the subtotals below */
} est_row;

enum { ROW_STATES = -1, ROW_BUFFERS = -2, ROW_TOTAL = -3 };

static int64_t row_bytes(const zrt_mem_estimate *e, est_row r)
{
    if (r.tier < 0) {
        int64_t sum = 0;
        for (int t = 0; t < ZRT_TIER_COUNT; t++)
            sum += e->total[t];
        return sum;
    }
    return r.category == ROW_STATES    ? e->model_states[r.tier]
           : r.category == ROW_BUFFERS ? e->buffers[r.tier]
           : r.category == ROW_TOTAL   ? e->total[r.tier]
                                       : e->bytes[r.tier][r.category];
}

static int any_nonzero(const zrt_mem_estimate *e, int n, est_row r)
{
    for (int i = 0; i < n; i++)
        if (row_bytes(&e[i], r))
            return 1;
    return 0;
}

/* Adds the rows of one tier: states, subtotal, buffers, subtotal, total. */
static int tier_rows(const zrt_mem_estimate *e, int n, int t, est_row *rows)
{
    int k = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int c = 0; c < ZRT_CAT_COUNT; c++) {
            est_row r = {t, c};
            if (is_model_state(c) == (pass == 0) && any_nonzero(e, n, r))
                rows[k++] = r;
        }
        rows[k++] = (est_row){t, pass == 0 ? ROW_STATES : ROW_BUFFERS};
    }
    rows[k++] = (est_row){t, ROW_TOTAL};
    return k;
}

static const char *row_label(est_row r)
{
    if (r.tier < 0)
        return "all tiers";
    return r.category == ROW_STATES    ? "model states"
           : r.category == ROW_BUFFERS ? "buffers"
           : r.category == ROW_TOTAL   ? "total"
                                       : zrt_category_str((zrt_category)r.category);
}

static int print_estimate_table(const zrt_mem_estimate *e, const int *stages, int n,
                                const units *dec, const units *bin)
{
    est_row rows[ZRT_TIER_COUNT * (ZRT_CAT_COUNT + 4) + 2];
    int nrows = 0, per_stage = dec->exact ? 1 : 2;
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        if (!any_nonzero(e, n, (est_row){t, ROW_TOTAL}))
            continue;
        nrows += tier_rows(e, n, t, rows + nrows);
        rows[nrows++] = (est_row){-2, 0};
    }
    rows[nrows++] = (est_row){-1, ROW_TOTAL};
    table tb;
    if (zr_table_init(&tb, nrows + 2, 2 + per_stage * n))
        return EXIT_BAD_INPUT;
    zr_set_cell(&tb, 1, 0, "tier");
    zr_set_cell(&tb, 1, 1, "category");
    for (int i = 0; i < n; i++) {
        zr_set_cell(&tb, 0, 1 + per_stage * (i + 1), "stage %d", stages[i]);
        zr_set_cell(&tb, 1, 2 + per_stage * i, "%s", dec->name);
        if (per_stage == 2)
            zr_set_cell(&tb, 1, 3 + 2 * i, "%s", bin->name);
    }
    for (int r = 0; r < nrows; r++) {
        if (rows[r].tier == -2)
            continue;
        zr_set_cell(&tb, r + 2, 0, "%s",
                    rows[r].tier < 0 ? "" : zrt_tier_str((zrt_tier)rows[r].tier));
        zr_set_cell(&tb, r + 2, 1, "%s", row_label(rows[r]));
        for (int i = 0; i < n; i++) {
            int64_t bytes = row_bytes(&e[i], rows[r]);
            zr_format_units(zr_cell(&tb, r + 2, 2 + per_stage * i), CELL, bytes, dec);
            if (per_stage == 2)
                zr_format_units(zr_cell(&tb, r + 2, 3 + 2 * i), CELL, bytes, bin);
        }
    }
    zr_table_print(&tb, 2);
    zr_table_free(&tb);
    return 0;
}

static void print_estimate_notes(const question *q, int all)
{
    printf("\nmodel states follow the engine's placement; shards are ceil(params / "
           "ranks), the plan's padding is not counted.\n"
           "buffers are upper bounds of their peaks; not counted: activations (the "
           "training loop's), nvme block rounding, the loop's own all-reduces.\n");
    if (q->model.param_bytes == 2)
        printf("16-bit rows: bf16 or fp16 parameters and gradients with an f32 master "
               "copy and f32 Adam moments, as the engine trains with \"bf16\" or "
               "\"fp16\" enabled.\n");
    if (all && q->cfg.offload_optimizer.device != ZRT_OFFLOAD_NONE)
        printf("stage 0: no optimizer offload (it needs stage 1-3).\n");
    if (all && q->cfg.offload_param.device != ZRT_OFFLOAD_NONE)
        printf("stages 0-2: no parameter offload (it needs stage 3).\n");
}

int zr_run_estimate(const zr_opts *o)
{
    question q;
    zr_cluster cl;
    memset(&q, 0, sizeof q);
    q.world_size = o->world_size ? o->world_size : 1;
    if (zr_read_config(o, &q) || read_stages(o, &q) || zr_read_model(o, &q) ||
        zr_read_cluster(o, &cl))
        return EXIT_BAD_INPUT;
    if (cl.given)
        q.world_size = cl.hosts * cl.ranks_per_host;
    int all = q.first_stage != q.last_stage, n = 0, stages[4];
    zrt_mem_estimate e[4];
    zrt_config cfgs[4];
    for (int s = q.first_stage; s <= q.last_stage; s++, n++) {
        char why[512];
        zrt_config c = config_for(&q, s, all);
        stages[n] = s;
        cfgs[n] = c;
        if (zrt_estimate_memory(&c, &q.model, q.world_size, &e[n], why, sizeof why))
            return zr_error("stage %d: %s", s, why);
    }
    if (!all)
        q.cfg = config_for(&q, q.first_stage, 0);
    int64_t scale = o->unit == 'K' ? 1000 : o->unit == 'M' ? 1000000 : 1000000000;
    units dec = {.exact = o->exact, .decimals = o->decimals, .unit = scale},
          bin = {.exact = o->exact,
                 .decimals = o->decimals,
                 .unit = o->unit == 'K'   ? 1 << 10
                         : o->unit == 'M' ? 1 << 20
                                          : 1 << 30};
    dec.name = o->exact ? "bytes" : o->unit == 'K' ? "KB" : o->unit == 'M' ? "MB" : "GB";
    bin.name = o->unit == 'K' ? "KiB" : o->unit == 'M' ? "MiB" : "GiB";
    print_estimate_header(&q, &dec);
    if (print_estimate_table(e, stages, n, &dec, &bin))
        return EXIT_BAD_INPUT;
    print_estimate_notes(&q, all);
    return cl.given ? zr_print_step_times(&q, cfgs, n, &cl) : 0;
}
