/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-report/reports.c — finds the per-rank memory reports a run wrote
 * (zrt_write_mem_report) and reads each into a `report`, checking every key
 * it uses: "rank", "world_size", "stage", "param_count", "tiers" (limit,
 * peak, the peak's phase, every category's peak), the optional
 * "pipeline_stages" and "data_parallel_size", and the optional "plan"
 * (the shape of "tiers", every entry optional), "plan_error" and "timeline".
 * Keys the reader does not use are ignored, so newer reports still read.
 */
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "zero_report.h"

/* "where.key", or "key" at the top. */
static const char *key_path(char *buf, size_t size, const char *where, const char *key)
{
    snprintf(buf, size, "%s%s%s", where, where[0] ? "." : "", key);
    return buf;
}

/* Reads obj[key], which must be there and of `type` (`what` names it). */
static int get_typed(const char *file, json_t *obj, const char *key, const char *where,
                     json_type type, const char *what, json_t **out)
{
    char k[160];
    json_t *v = json_object_get(obj, key);
    key_path(k, sizeof k, where, key);
    if (!v)
        return zr_error("%s: missing key '%s'", file, k);
    if (json_typeof(v) != type)
        return zr_error("%s: '%s' is not %s", file, k, what);
    *out = v;
    return 0;
}

/* Reads obj[key] as an integer of at least `min`. */
static int get_int(const char *file, json_t *obj, const char *key, const char *where,
                   int64_t min, int64_t *out)
{
    char k[160];
    json_t *v = NULL;
    int rc = get_typed(file, obj, key, where, JSON_INTEGER, "an integer", &v);
    if (rc)
        return rc;
    if (json_integer_value(v) < min)
        return zr_error("%s: '%s' is %lld; it must be at least %lld", file,
                        key_path(k, sizeof k, where, key),
                        (long long)json_integer_value(v), (long long)min);
    *out = json_integer_value(v);
    return 0;
}

/* An optional integer: *out unchanged when the key is absent. */
static int get_opt_int(const char *file, json_t *obj, const char *key, const char *where,
                       int64_t min, int64_t *out)
{
    if (!json_object_get(obj, key))
        return 0;
    return get_int(file, obj, key, where, min, out);
}

static int get_object(const char *file, json_t *obj, const char *key, const char *where,
                      json_t **out)
{
    return get_typed(file, obj, key, where, JSON_OBJECT, "an object", out);
}

/* An optional string copied into out (size bytes); "" when absent. */
static int get_opt_string(const char *file, json_t *obj, const char *key,
                          const char *where, char *out, size_t size)
{
    char k[160];
    json_t *v = json_object_get(obj, key);
    out[0] = '\0';
    if (!v)
        return 0;
    if (!json_is_string(v))
        return zr_error("%s: '%s' is not a string", file,
                        key_path(k, sizeof k, where, key));
    snprintf(out, size, "%s", json_string_value(v));
    return 0;
}

/* "peak_phase" and "peak_phase_step" of a tier, both optional. */
static int read_phase(const char *file, json_t *tier, const char *where, char *phase,
                      long *step)
{
    int64_t s = 0;
    if (get_opt_string(file, tier, "peak_phase", where, phase, PHASE_LEN) ||
        get_opt_int(file, tier, "peak_phase_step", where, 0, &s))
        return EXIT_BAD_INPUT;
    *step = (long)s;
    return 0;
}

/* One tier of "tiers": limit, peak, its phase, every category's peak. */
static int read_tier(report *r, json_t *tiers, int t)
{
    json_t *tier = NULL, *cats = NULL, *cat = NULL;
    char where[128];
    const char *tn = zrt_tier_str((zrt_tier)t);
    snprintf(where, sizeof where, "tiers.%s", tn);
    if (get_object(r->path, tiers, tn, "tiers", &tier) ||
        get_int(r->path, tier, "peak", where, 0, &r->tier_peak[t]) ||
        get_opt_int(r->path, tier, "limit", where, 0, &r->limit[t]) ||
        read_phase(r->path, tier, where, r->peak_phase[t], &r->peak_step[t]) ||
        get_object(r->path, tier, "categories", where, &cats))
        return EXIT_BAD_INPUT;
    for (int c = 0; c < ZRT_CAT_COUNT; c++) {
        const char *cn = zrt_category_str((zrt_category)c);
        snprintf(where, sizeof where, "tiers.%s.categories", tn);
        /* "hpz" came with hpZ, "qwz" with qwZ, "topk-residual" with top-k,
         * "ckpt-buffer" with asynchronous saves: a report written before
         * them lacks them. */
        if ((c == ZRT_CAT_HPZ || c == ZRT_CAT_QWZ || c == ZRT_CAT_TOPK_RESIDUAL ||
             c == ZRT_CAT_CKPT_BUFFER) &&
            !json_object_get(cats, cn)) {
            r->peak[t][c] = 0;
            continue;
        }
        if (get_object(r->path, cats, cn, where, &cat))
            return EXIT_BAD_INPUT;
        snprintf(where, sizeof where, "tiers.%s.categories.%s", tn, cn);
        if (get_int(r->path, cat, "peak", where, 0, &r->peak[t][c]))
            return EXIT_BAD_INPUT;
    }
    return 0;
}

static int read_tiers(report *r, json_t *doc)
{
    json_t *tiers = NULL;
    if (get_object(r->path, doc, "tiers", "", &tiers))
        return EXIT_BAD_INPUT;
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        if (read_tier(r, tiers, t))
            return EXIT_BAD_INPUT;
    return 0;
}

/* An optional planned peak at obj[key].peak (or obj.peak when key is NULL). */
static int get_planned(const char *file, json_t *obj, const char *key, const char *where,
                       int64_t *out)
{
    *out = NO_PLAN;
    json_t *v = key ? json_object_get(obj, key) : obj;
    if (!v)
        return 0;
    if (!json_is_object(v))
        return zr_error("%s: '%s' is not an object", file, where);
    if (!json_object_get(v, "peak"))
        return 0;
    return get_int(file, v, "peak", where, 0, out);
}

/* One tier of "plan": its peak and phase, and every category's peak. */
static int read_plan_tier(report *r, json_t *plan, int t)
{
    const char *tn = zrt_tier_str((zrt_tier)t);
    char where[128];
    snprintf(where, sizeof where, "plan.%s", tn);
    if (get_planned(r->path, plan, tn, where, &r->plan_tier[t]))
        return EXIT_BAD_INPUT;
    json_t *tier = json_object_get(plan, tn);
    if (!tier)
        return 0;
    if (read_phase(r->path, tier, where, r->plan_phase[t], &r->plan_phase_step[t]))
        return EXIT_BAD_INPUT;
    json_t *cats = json_object_get(tier, "categories");
    if (!cats)
        return 0;
    if (!json_is_object(cats))
        return zr_error("%s: 'plan.%s.categories' is not an object", r->path, tn);
    for (int c = 0; c < ZRT_CAT_COUNT; c++) {
        const char *cn = zrt_category_str((zrt_category)c);
        snprintf(where, sizeof where, "plan.%s.categories.%s", tn, cn);
        if (get_planned(r->path, cats, cn, where, &r->plan[t][c]))
            return EXIT_BAD_INPUT;
    }
    return 0;
}

/* "plan" (optional) and "plan_error" (optional, the sentence of a failure). */
static int read_plan(report *r, json_t *doc)
{
    json_t *plan = json_object_get(doc, "plan");
    json_t *error_text = json_object_get(doc, "plan_error");
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        r->plan_tier[t] = NO_PLAN;
        for (int c = 0; c < ZRT_CAT_COUNT; c++)
            r->plan[t][c] = NO_PLAN;
    }
    if (error_text && !json_is_string(error_text))
        return zr_error("%s: 'plan_error' is not a string", r->path);
    /* the whole sentence: stage auto's refusal names every rung */
    if (error_text && json_string_value(error_text)[0] &&
        !(r->plan_error = strdup(json_string_value(error_text))))
        return zr_error("out of memory");
    if (!plan)
        return 0;
    if (!json_is_object(plan))
        return zr_error("%s: 'plan' is not an object", r->path);
    r->has_plan = 1;
    if (get_opt_string(r->path, plan, "step", "plan", r->plan_step, sizeof r->plan_step))
        return EXIT_BAD_INPUT;
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        if (read_plan_tier(r, plan, t))
            return EXIT_BAD_INPUT;
    return 0;
}

/* {"same_host": a, "other_host": b} at obj[key] into out[0], out[1]. */
static int read_peer_bytes(const char *file, json_t *obj, const char *key,
                           const char *where, int64_t out[2])
{
    json_t *b = NULL;
    char k[160];
    key_path(k, sizeof k, where, key);
    return get_object(file, obj, key, where, &b) ||
           get_int(file, b, "same_host", k, 0, &out[0]) ||
           get_int(file, b, "other_host", k, 0, &out[1]);
}

/* One recorded step: its model-state bytes and the rest, kept when largest. */
static int read_comm_step(report *r, json_t *step, const char *where)
{
    int64_t layers[2], other[2];
    if (!json_is_object(step))
        return zr_error("%s: '%s' is not an object", r->path, where);
    if (read_peer_bytes(r->path, step, "layers", where, layers) ||
        read_peer_bytes(r->path, step, "other", where, other))
        return EXIT_BAD_INPUT;
    if (r->comm_steps > 0 &&
        (layers[0] != r->comm_sent[0] || layers[1] != r->comm_sent[1]))
        r->comm_uneven = 1;
    if (r->comm_steps == 0 || layers[0] + layers[1] > r->comm_sent[0] + r->comm_sent[1]) {
        r->comm_sent[0] = layers[0];
        r->comm_sent[1] = layers[1];
    }
    if (other[0] + other[1] > r->comm_other)
        r->comm_other = other[0] + other[1];
    r->comm_steps++;
    return 0;
}

/* "comm", optional: the theory and the recorded steps. */
static int read_comm(report *r, json_t *doc)
{
    json_t *comm = json_object_get(doc, "comm"), *theory = NULL, *steps = NULL;
    if (!comm)
        return 0;
    if (get_object(r->path, doc, "comm", "", &comm) ||
        get_object(r->path, comm, "theory", "comm", &theory) ||
        read_peer_bytes(r->path, theory, "layers", "comm.theory", r->comm_theory) ||
        get_typed(r->path, comm, "steps", "comm", JSON_ARRAY, "an array", &steps))
        return EXIT_BAD_INPUT;
    size_t i;
    json_t *step;
    json_array_foreach(steps, i, step)
    {
        char where[48];
        snprintf(where, sizeof where, "comm.steps[%zu]", i);
        if (read_comm_step(r, step, where))
            return EXIT_BAD_INPUT;
    }
    r->has_comm = 1;
    return 0;
}

static int read_document(report *r, json_t *doc, int with_timeline)
{
    int64_t rank = 0, world = 1, stage = 0, stages = 1, data = 0;
    if (!json_is_object(doc))
        return zr_error("%s: the document is not a JSON object", r->path);
    if (get_int(r->path, doc, "rank", "", 0, &rank) ||
        get_int(r->path, doc, "world_size", "", 1, &world) ||
        get_int(r->path, doc, "stage", "", 0, &stage) ||
        get_int(r->path, doc, "param_count", "", 0, &r->param_count) ||
        get_opt_int(r->path, doc, "steps", "", 0, &r->steps) ||
        get_opt_int(r->path, doc, "pipeline_stages", "", 1, &stages) ||
        get_opt_int(r->path, doc, "data_parallel_size", "", 1, &data) ||
        read_tiers(r, doc) || read_plan(r, doc) || read_comm(r, doc) ||
        (with_timeline && zr_read_timeline(r->path, doc, &r->tl)))
        return EXIT_BAD_INPUT;
    if (rank >= world || world > INT_MAX || stage > 3)
        return zr_error("%s: rank %lld, world_size %lld, stage %lld do not make sense "
                        "(rank < world_size, stage 0-3)",
                        r->path, (long long)rank, (long long)world, (long long)stage);
    if (stages > world || (data && stages * data != world))
        return zr_error("%s: pipeline_stages %lld, data_parallel_size %lld do not make "
                        "sense for world_size %lld (stages x data-parallel ranks = "
                        "world)",
                        r->path, (long long)stages, (long long)data, (long long)world);
    r->rank = (int)rank;
    r->world_size = (int)world;
    r->pipeline_stages = (int)stages;
    r->data_parallel_size = data ? (int)data : (int)world;
    r->stage = (int)stage;
    return 0;
}

int zr_read_report(const char *path, int with_timeline, report *r)
{
    memset(r, 0, sizeof *r);
    r->steps = -1;
    r->path = strdup(path);
    if (!r->path)
        return zr_error("out of memory");
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        if (jerr.line < 0)
            return zr_error("%s: %s", path, jerr.text);
        return zr_error("%s: not JSON at line %d, column %d: %s", path, jerr.line,
                        jerr.column, jerr.text);
    }
    int rc = read_document(r, doc, with_timeline);
    json_decref(doc);
    return rc;
}

void zr_report_free(report *r)
{
    free(r->path);
    free(r->plan_error);
    zr_timeline_free(&r->tl);
}

/* ---- which files --------------------------------------------------------- */

static int add_path(paths *p, const char *path)
{
    return zr_add_line(p, "%s", path);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file named *.json in dir. */
static int add_dir(paths *p, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return zr_error("%s: cannot open the directory: %s", dir, strerror(errno));
    int first = p->n, rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        size_t len = strlen(e->d_name), dl = strlen(dir);
        char full[PATH_MAX];
        struct stat sb;
        if (len < 5 || strcmp(e->d_name + len - 5, ".json"))
            continue;
        snprintf(full, sizeof full, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/",
                 e->d_name);
        if (stat(full, &sb) == 0 && S_ISREG(sb.st_mode))
            rc = add_path(p, full);
    }
    closedir(d);
    if (!rc && p->n == first)
        return zr_error("%s: no *.json report in this directory", dir);
    qsort(p->v + first, (size_t)(p->n - first), sizeof *p->v, by_name);
    return rc;
}

/* A pattern the shell did not expand (quoted, or from a script). */
static int add_glob(paths *p, const char *pattern)
{
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH)
        return zr_error("%s: no file matches", pattern);
    if (rc != 0)
        return zr_error("%s: cannot expand the pattern", pattern);
    for (size_t i = 0; !rc && i < g.gl_pathc; i++)
        rc = add_path(p, g.gl_pathv[i]);
    globfree(&g);
    return rc;
}

int zr_collect(paths *p, char **args, int nargs)
{
    for (int i = 0; i < nargs; i++) {
        struct stat sb;
        int rc;
        if (stat(args[i], &sb) == 0)
            rc = S_ISDIR(sb.st_mode) ? add_dir(p, args[i]) : add_path(p, args[i]);
        else if (strpbrk(args[i], "*?["))
            rc = add_glob(p, args[i]);
        else
            rc = zr_error("%s: cannot open: %s", args[i], strerror(errno));
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- one run's reports --------------------------------------------------- */

static int by_rank(const void *a, const void *b)
{
    return ((const report *)a)->rank - ((const report *)b)->rank;
}

int zr_check_run(report *r, int n)
{
    qsort(r, (size_t)n, sizeof *r, by_rank);
    for (int i = 1; i < n; i++) {
        if (r[i].rank == r[i - 1].rank)
            return zr_error("%s and %s are both rank %d; give the reports of one run",
                            r[i - 1].path, r[i].path, r[i].rank);
        if (r[i].world_size != r[0].world_size || r[i].stage != r[0].stage)
            return zr_error("%s (world size %d, stage %d) and %s (world size %d, stage "
                            "%d) are not from one run",
                            r[0].path, r[0].world_size, r[0].stage, r[i].path,
                            r[i].world_size, r[i].stage);
    }
    return 0;
}
