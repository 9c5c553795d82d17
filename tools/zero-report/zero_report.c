/*
 * zero-report — what each rank holds, per tier and category, at a glance.
 *
 *   zero-report [--bytes | --unit K|M|G] REPORT.json|DIR|PATTERN...
 *   zero-report --estimate (--params N | --preset NAME) [options]
 *
 * The first form reads the per-rank memory reports a run wrote
 * (zrt_write_mem_report, the examples' --mem-report) and prints one table:
 * a row per tier and category plus each tier's peak, and per rank the
 * planned, measured and difference columns. The runtime does not write a plan
 * yet; a report whose "plan" object has the shape of "tiers"
 * ({tier: {"peak", "categories": {category: {"peak"}}}}) fills the planned
 * column, and a measured peak above its plan is flagged.
 *
 * The second form runs no job: zrt_estimate_memory() computes what each rank
 * would hold for a parameter count (or a model preset), a world size, a stage
 * (or all four side by side), a precision, offload choices and bucket sizes.
 *
 * Exit status: 0 fine; 1 a rank's measured peak exceeds its plan; 2 bad
 * input or usage (the message names the file, the key or the flag).
 *
 * Invariants: every report is read and checked before anything is printed;
 * the only state is in main's locals.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "zrt/zrt.h"

#ifndef ZRT_VERSION_STRING
#define ZRT_VERSION_STRING "unknown"
#endif

enum { EXIT_OVER_PLAN = 1, EXIT_BAD_INPUT = 2 };
enum { CELL = 48, NO_PLAN = -1 };

/* Prints "zero-report: <message>" on stderr; returns EXIT_BAD_INPUT. */
__attribute__((format(printf, 1, 2))) static int error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("zero-report: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_BAD_INPUT;
}

/* ---- numbers out --------------------------------------------------------- */

/* How bytes are written: exact integers, or in units of `unit` bytes. */
typedef struct units {
    int exact;
    int decimals;
    int64_t unit;     /* 1e9, 2^30, ... */
    const char *name; /* "GB", "GiB", ... */
} units;

/* bytes / unit with `decimals` digits, rounded half away from zero on the
 * exact integers (so 1,875,000,000 bytes is "1.9" GB, as the ZeRO paper
 * writes it, not the "1.8" of printf's round-half-even on 1.875). */
static void format_units(char *buf, size_t size, int64_t bytes, const units *u)
{
    if (u->exact) {
        snprintf(buf, size, "%lld", (long long)bytes);
        return;
    }
    int neg = bytes < 0;
    uint64_t v = neg ? (uint64_t)0 - (uint64_t)bytes : (uint64_t)bytes;
    uint64_t unit = (uint64_t)u->unit, scale = 1;
    for (int i = 0; i < u->decimals; i++)
        scale *= 10;
    uint64_t whole = v / unit, rest = v % unit;
    /* rest < unit <= 2^30 and scale <= 10^6: no overflow */
    uint64_t frac = (rest * scale * 2 + unit) / (2 * unit);
    if (frac == scale) {
        whole++;
        frac = 0;
    }
    if (u->decimals == 0)
        snprintf(buf, size, "%s%llu", neg ? "-" : "", (unsigned long long)whole);
    else
        snprintf(buf, size, "%s%llu.%0*llu", neg ? "-" : "", (unsigned long long)whole,
                 u->decimals, (unsigned long long)frac);
}

/* 1234567 -> "1,234,567" */
static const char *grouped(char *buf, size_t size, int64_t n)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%lld", (long long)(n < 0 ? -n : n));
    size_t at = 0;
    if (n < 0 && at + 1 < size)
        buf[at++] = '-';
    for (int i = 0; i < len && at + 2 < size; i++) {
        buf[at++] = digits[i];
        if ((len - i - 1) % 3 == 0 && i + 1 < len)
            buf[at++] = ',';
    }
    buf[at] = '\0';
    return buf;
}

/* ---- the table: cells formatted first, then printed in aligned columns --- */

typedef struct table {
    int rows, cols;
    char (*cell)[CELL]; /* rows * cols */
    int *width;
} table;

static int table_init(table *t, int rows, int cols)
{
    t->rows = rows;
    t->cols = cols;
    t->cell = calloc((size_t)rows * (size_t)cols, CELL);
    t->width = calloc((size_t)cols, sizeof *t->width);
    return t->cell && t->width ? 0
                               : error("out of memory for a %d x %d table", rows, cols);
}

static void table_free(table *t)
{
    free(t->cell);
    free(t->width);
}

static char *cell(table *t, int row, int col)
{
    return t->cell[(size_t)row * (size_t)t->cols + (size_t)col];
}

__attribute__((format(printf, 4, 5))) static void set_cell(table *t, int row, int col,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cell(t, row, col), CELL, fmt, ap);
    va_end(ap);
}

/* The first `left` columns are left-aligned (labels), the rest right. */
static void table_print(table *t, int left)
{
    for (int c = 0; c < t->cols; c++)
        for (int r = 0; r < t->rows; r++) {
            int w = (int)strlen(cell(t, r, c));
            t->width[c] = w > t->width[c] ? w : t->width[c];
        }
    for (int r = 0; r < t->rows; r++) {
        char line[4096];
        size_t at = 0;
        for (int c = 0; c < t->cols && at < sizeof line; c++) {
            int n = snprintf(line + at, sizeof line - at, c < left ? "%-*s" : "%*s",
                             t->width[c], cell(t, r, c));
            at += n > 0 ? (size_t)n : 0;
            if (c + 1 < t->cols && at + 2 < sizeof line)
                at += (size_t)snprintf(line + at, sizeof line - at, "  ");
        }
        while (at > 0 && at < sizeof line && line[at - 1] == ' ')
            line[--at] = '\0';
        puts(line);
    }
}

/* ==== reports ============================================================= */

typedef struct report {
    char *path;
    int rank, world_size, stage;
    int64_t param_count;
    int64_t peak[ZRT_TIER_COUNT][ZRT_CAT_COUNT];
    int64_t tier_peak[ZRT_TIER_COUNT];
    int has_plan;
    int64_t plan[ZRT_TIER_COUNT][ZRT_CAT_COUNT]; /* NO_PLAN: not planned */
    int64_t plan_tier[ZRT_TIER_COUNT];
} report;

/* Reads obj[key] as an integer; `where` is the key path for messages. */
static int get_int(const char *file, json_t *obj, const char *key, const char *where,
                   int64_t min, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    const char *sep = where[0] ? "." : "";
    if (!v)
        return error("%s: missing key '%s%s%s'", file, where, sep, key);
    if (!json_is_integer(v))
        return error("%s: '%s%s%s' is not an integer", file, where, sep, key);
    if (json_integer_value(v) < min)
        return error("%s: '%s%s%s' is %lld; it must be at least %lld", file, where, sep,
                     key, (long long)json_integer_value(v), (long long)min);
    *out = json_integer_value(v);
    return 0;
}

static int get_object(const char *file, json_t *obj, const char *key, const char *where,
                      json_t **out)
{
    json_t *v = json_object_get(obj, key);
    const char *sep = where[0] ? "." : "";
    if (!v)
        return error("%s: missing key '%s%s%s'", file, where, sep, key);
    if (!json_is_object(v))
        return error("%s: '%s%s%s' is not an object", file, where, sep, key);
    *out = v;
    return 0;
}

/* "tiers": every tier, its peak, and every category's peak. */
static int read_tiers(report *r, json_t *doc)
{
    json_t *tiers = NULL, *tier = NULL, *cats = NULL, *cat = NULL;
    char where[128];
    if (get_object(r->path, doc, "tiers", "", &tiers))
        return EXIT_BAD_INPUT;
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        const char *tn = zrt_tier_str((zrt_tier)t);
        snprintf(where, sizeof where, "tiers.%s", tn);
        if (get_object(r->path, tiers, tn, "tiers", &tier) ||
            get_int(r->path, tier, "peak", where, 0, &r->tier_peak[t]))
            return EXIT_BAD_INPUT;
        snprintf(where, sizeof where, "tiers.%s", tn);
        if (get_object(r->path, tier, "categories", where, &cats))
            return EXIT_BAD_INPUT;
        for (int c = 0; c < ZRT_CAT_COUNT; c++) {
            const char *cn = zrt_category_str((zrt_category)c);
            snprintf(where, sizeof where, "tiers.%s.categories", tn);
            if (get_object(r->path, cats, cn, where, &cat))
                return EXIT_BAD_INPUT;
            snprintf(where, sizeof where, "tiers.%s.categories.%s", tn, cn);
            if (get_int(r->path, cat, "peak", where, 0, &r->peak[t][c]))
                return EXIT_BAD_INPUT;
        }
    }
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
        return error("%s: '%s' is not an object", file, where);
    if (!json_object_get(v, "peak"))
        return 0;
    return get_int(file, v, "peak", where, 0, out);
}

/* "plan" (optional): the shape of "tiers", every entry optional. */
static int read_plan(report *r, json_t *doc)
{
    json_t *plan = json_object_get(doc, "plan"), *tier, *cats;
    char where[128];
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        r->plan_tier[t] = NO_PLAN;
        for (int c = 0; c < ZRT_CAT_COUNT; c++)
            r->plan[t][c] = NO_PLAN;
    }
    if (!plan)
        return 0;
    if (!json_is_object(plan))
        return error("%s: 'plan' is not an object", r->path);
    r->has_plan = 1;
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        const char *tn = zrt_tier_str((zrt_tier)t);
        snprintf(where, sizeof where, "plan.%s", tn);
        if (get_planned(r->path, plan, tn, where, &r->plan_tier[t]))
            return EXIT_BAD_INPUT;
        tier = json_object_get(plan, tn);
        cats = tier ? json_object_get(tier, "categories") : NULL;
        if (!cats)
            continue;
        if (!json_is_object(cats))
            return error("%s: 'plan.%s.categories' is not an object", r->path, tn);
        for (int c = 0; c < ZRT_CAT_COUNT; c++) {
            const char *cn = zrt_category_str((zrt_category)c);
            snprintf(where, sizeof where, "plan.%s.categories.%s", tn, cn);
            if (get_planned(r->path, cats, cn, where, &r->plan[t][c]))
                return EXIT_BAD_INPUT;
        }
    }
    return 0;
}

static int read_report(const char *path, report *r)
{
    memset(r, 0, sizeof *r);
    r->path = strdup(path);
    if (!r->path)
        return error("out of memory");
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        if (jerr.line < 0)
            return error("%s: %s", path, jerr.text);
        return error("%s: not JSON at line %d, column %d: %s", path, jerr.line,
                     jerr.column, jerr.text);
    }
    int64_t rank = 0, world = 1, stage = 0;
    int bad = 0;
    if (!json_is_object(doc))
        bad = error("%s: the document is not a JSON object", path);
    else
        bad = get_int(path, doc, "rank", "", 0, &rank) ||
              get_int(path, doc, "world_size", "", 1, &world) ||
              get_int(path, doc, "stage", "", 0, &stage) ||
              get_int(path, doc, "param_count", "", 0, &r->param_count) ||
              read_tiers(r, doc) || read_plan(r, doc);
    json_decref(doc);
    if (bad)
        return EXIT_BAD_INPUT;
    if (rank >= world || world > INT_MAX || stage > 3)
        return error("%s: rank %lld, world_size %lld, stage %lld do not make sense "
                     "(rank < world_size, stage 0-3)",
                     path, (long long)rank, (long long)world, (long long)stage);
    r->rank = (int)rank;
    r->world_size = (int)world;
    r->stage = (int)stage;
    return 0;
}

/* ---- which files --------------------------------------------------------- */

typedef struct paths {
    char **v;
    int n, cap;
} paths;

static int add_path(paths *p, const char *path)
{
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        char **v = realloc(p->v, (size_t)cap * sizeof *v);
        if (!v)
            return error("out of memory");
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n] = strdup(path);
    return p->v[p->n++] ? 0 : error("out of memory");
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
        return error("%s: cannot open the directory: %s", dir, strerror(errno));
    int first = p->n, rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        char full[PATH_MAX];
        struct stat sb;
        if (len < 5 || strcmp(e->d_name + len - 5, ".json"))
            continue;
        size_t dl = strlen(dir);
        snprintf(full, sizeof full, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/",
                 e->d_name);
        if (stat(full, &sb) == 0 && S_ISREG(sb.st_mode))
            rc = add_path(p, full);
    }
    closedir(d);
    if (!rc && p->n == first)
        return error("%s: no *.json report in this directory", dir);
    qsort(p->v + first, (size_t)(p->n - first), sizeof *p->v, by_name);
    return rc;
}

/* A pattern the shell did not expand (quoted, or from a script). */
static int add_glob(paths *p, const char *pattern)
{
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH)
        return error("%s: no file matches", pattern);
    if (rc != 0)
        return error("%s: cannot expand the pattern", pattern);
    for (size_t i = 0; !rc && i < g.gl_pathc; i++)
        rc = add_path(p, g.gl_pathv[i]);
    globfree(&g);
    return rc;
}

static int collect(paths *p, char **args, int nargs)
{
    for (int i = 0; i < nargs; i++) {
        struct stat sb;
        int rc;
        if (stat(args[i], &sb) == 0)
            rc = S_ISDIR(sb.st_mode) ? add_dir(p, args[i]) : add_path(p, args[i]);
        else if (strpbrk(args[i], "*?["))
            rc = add_glob(p, args[i]);
        else
            rc = error("%s: cannot open: %s", args[i], strerror(errno));
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

/* Sorted by rank; one run: one world size and stage, no rank twice. */
static int check_run(report *r, int n)
{
    qsort(r, (size_t)n, sizeof *r, by_rank);
    for (int i = 1; i < n; i++) {
        if (r[i].rank == r[i - 1].rank)
            return error("%s and %s are both rank %d; give the reports of one run",
                         r[i - 1].path, r[i].path, r[i].rank);
        if (r[i].world_size != r[0].world_size || r[i].stage != r[0].stage)
            return error("%s (world size %d, stage %d) and %s (world size %d, stage "
                         "%d) are not from one run",
                         r[0].path, r[0].world_size, r[0].stage, r[i].path,
                         r[i].world_size, r[i].stage);
    }
    return 0;
}

static int tier_used(const report *r, int n, int t)
{
    for (int i = 0; i < n; i++)
        if (r[i].tier_peak[t] || r[i].plan_tier[t] > 0)
            return 1;
    return 0;
}

/* Binary units for a run (budgets are binary): the largest value picks. */
static units report_units(const report *r, int n, int exact, char forced, int decimals)
{
    units u = {.exact = exact, .decimals = decimals, .unit = 1024, .name = "KiB"};
    int64_t most = 0;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < ZRT_TIER_COUNT; t++)
            most = r[i].tier_peak[t] > most ? r[i].tier_peak[t] : most;
    char pick = forced ? forced : most >= (1 << 30) ? 'G' : most >= (1 << 20) ? 'M' : 'K';
    if (pick == 'M')
        u = (units){.exact = exact, .decimals = decimals, .unit = 1 << 20, .name = "MiB"};
    if (pick == 'G')
        u = (units){.exact = exact, .decimals = decimals, .unit = 1 << 30, .name = "GiB"};
    if (exact)
        u.name = "bytes";
    return u;
}

/* Planned, measured, difference for one rank at (row, 2 + 3*i). */
static void set_triplet(table *t, int row, int i, int64_t plan, int64_t peak,
                        const units *u)
{
    char a[CELL], b[CELL];
    format_units(b, sizeof b, peak, u);
    set_cell(t, row, 3 + 3 * i, "%s", b);
    if (plan == NO_PLAN) {
        set_cell(t, row, 2 + 3 * i, "-");
        set_cell(t, row, 4 + 3 * i, "-");
        return;
    }
    format_units(a, sizeof a, plan, u);
    set_cell(t, row, 2 + 3 * i, "%s", a);
    format_units(b, sizeof b, peak - plan, u);
    set_cell(t, row, 4 + 3 * i, "%s%s%s", peak > plan ? "+" : "", b,
             peak > plan ? " !" : "");
}

static int count_rows(const report *r, int n)
{
    int rows = 2;
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        rows += tier_used(r, n, t) ? ZRT_CAT_COUNT + 2 : 1; /* + a blank line */
    return rows;
}

static void fill_report_table(table *tb, const report *r, int n, const units *u)
{
    set_cell(tb, 1, 0, "tier");
    set_cell(tb, 1, 1, "category");
    for (int i = 0; i < n; i++) {
        set_cell(tb, 0, 3 + 3 * i, "rank %d", r[i].rank);
        set_cell(tb, 1, 2 + 3 * i, "planned");
        set_cell(tb, 1, 3 + 3 * i, "measured");
        set_cell(tb, 1, 4 + 3 * i, "difference");
    }
    int row = 2;
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        const char *tn = zrt_tier_str((zrt_tier)t);
        if (!tier_used(r, n, t)) {
            set_cell(tb, row, 0, "%s", tn);
            set_cell(tb, row++, 1, "(nothing on any rank)");
            continue;
        }
        for (int c = 0; c < ZRT_CAT_COUNT; c++, row++) {
            set_cell(tb, row, 0, "%s", tn);
            set_cell(tb, row, 1, "%s", zrt_category_str((zrt_category)c));
            for (int i = 0; i < n; i++)
                set_triplet(tb, row, i, r[i].plan[t][c], r[i].peak[t][c], u);
        }
        set_cell(tb, row, 0, "%s", tn);
        set_cell(tb, row, 1, "tier peak");
        for (int i = 0; i < n; i++)
            set_triplet(tb, row, i, r[i].plan_tier[t], r[i].tier_peak[t], u);
        row += 2;
    }
}

/* One line per measured peak above its plan; returns how many. */
static int flag_over_plan(const report *r, int n)
{
    int over = 0;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < ZRT_TIER_COUNT; t++)
            for (int c = 0; c <= ZRT_CAT_COUNT; c++) { /* ZRT_CAT_COUNT: the tier */
                int tier_row = c == ZRT_CAT_COUNT;
                int64_t plan = tier_row ? r[i].plan_tier[t] : r[i].plan[t][c];
                int64_t peak = tier_row ? r[i].tier_peak[t] : r[i].peak[t][c];
                if (plan == NO_PLAN || peak <= plan)
                    continue;
                over++;
                printf("OVER PLAN: rank %d, tier %s, %s: measured peak %lld bytes "
                       "exceeds the plan's %lld by %lld bytes (%s)\n",
                       r[i].rank, zrt_tier_str((zrt_tier)t),
                       tier_row ? "tier peak" : zrt_category_str((zrt_category)c),
                       (long long)peak, (long long)plan, (long long)(peak - plan),
                       r[i].path);
            }
    return over;
}

static void print_report_header(const report *r, int n, const units *u)
{
    char count[32];
    int planned = 0;
    for (int i = 0; i < n; i++)
        planned += r[i].has_plan;
    printf("zero-report: %d report%s of a %d-rank run, stage %d, %s parameters\n", n,
           n == 1 ? "" : "s", r[0].world_size, r[0].stage,
           grouped(count, sizeof count, r[0].param_count));
    if (n < r[0].world_size)
        printf("(reports of %d of the %d ranks)\n", n, r[0].world_size);
    printf("peak bytes per rank and tier, in %s%s\n", u->name,
           u->exact ? "" : " (--bytes for exact values)");
    if (planned == 0)
        printf("no plan in report (planned column empty)\n");
    else if (planned < n)
        printf("a plan in %d of %d reports (planned column empty for the rest)\n",
               planned, n);
    printf("\n");
}

static int run_reports(char **args, int nargs, int exact, char unit, int decimals)
{
    paths p = {0};
    report *r = NULL;
    int rc = collect(&p, args, nargs);
    if (!rc && !(r = calloc((size_t)p.n, sizeof *r)))
        rc = error("out of memory");
    for (int i = 0; !rc && i < p.n; i++)
        rc = read_report(p.v[i], &r[i]);
    if (!rc)
        rc = check_run(r, p.n);
    if (!rc) {
        units u = report_units(r, p.n, exact, unit, decimals);
        table tb;
        rc = table_init(&tb, count_rows(r, p.n), 2 + 3 * p.n);
        if (!rc) {
            print_report_header(r, p.n, &u);
            fill_report_table(&tb, r, p.n, &u);
            table_print(&tb, 2);
            table_free(&tb);
            rc = flag_over_plan(r, p.n) ? EXIT_OVER_PLAN : 0;
        }
    }
    for (int i = 0; r && i < p.n; i++)
        free(r[i].path);
    for (int i = 0; i < p.n; i++)
        free(p.v[i]);
    free(p.v);
    free(r);
    return rc;
}

/* ==== --estimate ========================================================== */

/* A model preset. GPT-2 shapes as the example groups them into layers
 * (examples/gpt2/model.c): layer 0 wte + wpe, one layer per block, the last
 * the final layer norm; vocabulary 50257 padded to 50304, context 1024. */
typedef struct preset {
    const char *name;
    int64_t channels; /* 0: not a GPT-2 shape */
    int blocks;
    int64_t params, largest; /* when channels is 0 */
    int param_bytes;
    const char *note;
} preset;

static const preset presets[] = {
    {"gpt2-124m", 768, 12, 0, 0, 4, NULL},
    {"gpt2-350m", 1024, 24, 0, 0, 4, NULL},
    {"gpt2-774m", 1280, 36, 0, 0, 4, NULL},
    {"gpt2-1558m", 1600, 48, 0, 0, 4, NULL},
    {"zero-paper-7.5b", 0, 0, 7500000000LL, 12LL * 4096 * 4096, 2,
     "the ZeRO paper's 7.5B-parameter model in mixed precision; its layers are "
     "not given, so the largest is assumed to be one transformer block without "
     "biases, 12*h^2 with h = 4096, and no layer is persistent"},
};
#define NPRESETS (int)(sizeof presets / sizeof presets[0])

enum { GPT2_VOCAB = 50304, GPT2_CTX = 1024 };

/* Layer sizes of a GPT-2 preset: embedding, blocks, final layer norm. */
static int64_t gpt2_layer(const preset *p, int layer)
{
    int64_t c = p->channels;
    if (layer == 0)
        return (GPT2_VOCAB + GPT2_CTX) * c;
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

typedef struct est_opts {
    const char *params, *preset, *stage, *precision, *config;
    const char *offload_optim, *offload_param;
    const char *reduce_bucket, *prefetch_bucket, *threshold, *largest, *layers;
    int world_size;
    int exact, decimals;
    char unit;
} est_opts;

/* "7.5e9", "124M", "1.5B": a whole count; K, M, B/G, T are powers of 1000. */
static int parse_count(const char *flag, const char *s, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    const char *suffixes = "KMBGT";
    const double scale[] = {1e3, 1e6, 1e9, 1e9, 1e12};
    const char *hit = *end ? strchr(suffixes, toupper((unsigned char)*end)) : NULL;
    if (hit && end[1] == '\0')
        v *= scale[hit - suffixes], end++;
    if (errno || end == s || *end || !(v >= 0) || v > (double)max ||
        fabs(v - nearbyint(v)) > 1e-6 * (v > 1 ? v : 1))
        return error("%s '%s': it must be a whole number from 0 to %lld (7.5e9 and "
                     "suffixes K, M, B, T in powers of 1000 are fine)",
                     flag, s, (long long)max);
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
    return error("%s '%s': it must be a whole element count (5e8, or 50M in powers "
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
    return error("%s '%s': it must be none, cpu or nvme", flag, s);
}

static const char *device_name(int device)
{
    return device == ZRT_OFFLOAD_CPU    ? "cpu"
           : device == ZRT_OFFLOAD_NVME ? "nvme"
                                        : "none";
}

/* What an estimate is asked about: the config, the model, which stages. */
typedef struct question {
    zrt_config cfg;
    zrt_mem_model model;
    int world_size;
    int first_stage, last_stage;
    const preset *preset;
    char largest_note[160];
} question;

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
    return error("--preset '%s': not a preset; the presets are %s", name, list);
}

static int read_config(const est_opts *o, question *q)
{
    char why[512];
    zrt_config_init(&q->cfg);
    if (o->config && zrt_config_load_file(&q->cfg, o->config, why, sizeof why) != ZRT_OK)
        return error("%s", why);
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

static int read_stages(const est_opts *o, question *q)
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
        return error("--stage '%s': it must be 0, 1, 2, 3 or all", s);
    q->first_stage = q->last_stage = s[0] - '0';
    return 0;
}

static int read_precision(const est_opts *o, question *q)
{
    if (!o->precision)
        return 0;
    if (!strcmp(o->precision, "fp32"))
        q->model.param_bytes = 4;
    else if (!strcmp(o->precision, "bf16") || !strcmp(o->precision, "fp16"))
        q->model.param_bytes = 2;
    else
        return error("--precision '%s': it must be fp32, bf16 or fp16", o->precision);
    return 0;
}

enum { DEFAULT_LAYERS = 32 };

/* The model: a preset, or --params with --largest-layer / --layers. */
static int read_model(const est_opts *o, question *q)
{
    zrt_mem_model_init(&q->model);
    if (o->preset) {
        if (o->params || o->largest || o->layers)
            return error("--preset %s gives the parameter count and the layers; drop "
                         "--params, --largest-layer and --layers, or the preset",
                         o->preset);
        if (find_preset(o->preset, &q->preset))
            return EXIT_BAD_INPUT;
        apply_preset(q->preset, q->cfg.stage3_param_persistence_threshold, &q->model);
        return read_precision(o, q);
    }
    if (!o->params)
        return error("--estimate needs --params N or --preset NAME");
    int64_t layers = 0;
    if (parse_count("--params", o->params, (int64_t)1 << 50, &q->model.param_count) ||
        (o->largest && parse_count("--largest-layer", o->largest, q->model.param_count,
                                   &q->model.largest_layer_numel)) ||
        (o->layers && parse_count("--layers", o->layers, INT_MAX, &layers)))
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

static int64_t resolved_largest(const zrt_mem_model *m)
{
    if (m->largest_layer_numel || m->nlayers == 0)
        return m->largest_layer_numel;
    return m->param_count / m->nlayers + (m->param_count % m->nlayers != 0);
}

static void print_estimate_header(const question *q, const units *u)
{
    char a[32], b[32], c[32], d[32];
    const zrt_mem_model *m = &q->model;
    const zrt_config *cfg = &q->cfg;
    printf("zero-report --estimate: bytes per rank, in %s\n",
           u->exact                ? "bytes"
           : u->unit == 1000000000 ? "GB = 1e9 bytes and GiB = 2^30 bytes"
           : u->unit == 1000000    ? "MB = 1e6 bytes and MiB = 2^20 bytes"
                                   : "KB = 1e3 bytes and KiB = 2^10 bytes");
    printf("model: %s parameters (%.3g)%s%s, %s\n", grouped(a, sizeof a, m->param_count),
           (double)m->param_count, q->preset ? ", preset " : "",
           q->preset ? q->preset->name : "",
           m->param_bytes == 2 ? "16-bit params and grads, f32 master and Adam moments "
                                 "(2 + 2 + 4 + 8 = 16 bytes a parameter)"
                               : "f32 params and grads, Adam moments "
                                 "(4 + 4 + 8 = 16 bytes a parameter)");
    if (q->preset && q->preset->note)
        printf("  (%s)\n", q->preset->note);
    int64_t largest = resolved_largest(m);
    printf("largest layer: %s elements (%s); persistent at stage 3: ",
           grouped(b, sizeof b, largest),
           q->preset ? "from the preset" : q->largest_note);
    if (largest <= cfg->stage3_param_persistence_threshold)
        printf("all (every layer is at or under the persistence threshold)\n");
    else
        printf("%s elements%s\n", grouped(c, sizeof c, m->persistent_numel),
               m->persistent_numel || q->preset ? "" : " (unknown)");
    printf("%d rank%s; reduce bucket %s, prefetch bucket %s, persistence threshold %s "
           "elements; overlap_comm %s\n",
           q->world_size, q->world_size == 1 ? "" : "s",
           grouped(a, sizeof a, cfg->reduce_bucket_size),
           grouped(b, sizeof b, cfg->stage3_prefetch_bucket_size),
           grouped(d, sizeof d, cfg->stage3_param_persistence_threshold),
           cfg->overlap_comm ? "on" : "off");
    printf("offload: optimizer %s, parameters %s\n\n",
           device_name(cfg->offload_optimizer.device),
           device_name(cfg->offload_param.device));
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
    if (table_init(&tb, nrows + 2, 2 + per_stage * n))
        return EXIT_BAD_INPUT;
    set_cell(&tb, 1, 0, "tier");
    set_cell(&tb, 1, 1, "category");
    for (int i = 0; i < n; i++) {
        set_cell(&tb, 0, 1 + per_stage * (i + 1), "stage %d", stages[i]);
        set_cell(&tb, 1, 2 + per_stage * i, "%s", dec->name);
        if (per_stage == 2)
            set_cell(&tb, 1, 3 + 2 * i, "%s", bin->name);
    }
    for (int r = 0; r < nrows; r++) {
        if (rows[r].tier == -2)
            continue;
        set_cell(&tb, r + 2, 0, "%s",
                 rows[r].tier < 0 ? "" : zrt_tier_str((zrt_tier)rows[r].tier));
        set_cell(&tb, r + 2, 1, "%s", row_label(rows[r]));
        for (int i = 0; i < n; i++) {
            int64_t bytes = row_bytes(&e[i], rows[r]);
            format_units(cell(&tb, r + 2, 2 + per_stage * i), CELL, bytes, dec);
            if (per_stage == 2)
                format_units(cell(&tb, r + 2, 3 + 2 * i), CELL, bytes, bin);
        }
    }
    table_print(&tb, 2);
    table_free(&tb);
    return 0;
}

static void print_estimate_notes(const question *q, int all)
{
    printf("\nmodel states follow the engine's placement; shards are ceil(params / "
           "ranks), the plan's padding is not counted.\n"
           "buffers are upper bounds of their peaks; not counted: activations (the "
           "training loop's), nvme block rounding, the loop's own all-reduces.\n");
    if (q->model.param_bytes == 2)
        printf("16-bit rows show the mixed-precision layout; the engine trains in f32 "
               "today (--precision fp32).\n");
    if (all && q->cfg.offload_optimizer.device != ZRT_OFFLOAD_NONE)
        printf("stage 0: no optimizer offload (it needs stage 1-3).\n");
    if (all && q->cfg.offload_param.device != ZRT_OFFLOAD_NONE)
        printf("stages 0-2: no parameter offload (it needs stage 3).\n");
}

static int run_estimate(const est_opts *o)
{
    question q;
    memset(&q, 0, sizeof q);
    q.world_size = o->world_size;
    if (read_config(o, &q) || read_stages(o, &q) || read_model(o, &q))
        return EXIT_BAD_INPUT;
    int all = q.first_stage != q.last_stage, n = 0, stages[4];
    zrt_mem_estimate e[4];
    for (int s = q.first_stage; s <= q.last_stage; s++, n++) {
        char why[512];
        zrt_config c = config_for(&q, s, all);
        stages[n] = s;
        if (zrt_estimate_memory(&c, &q.model, q.world_size, &e[n], why, sizeof why))
            return error("stage %d: %s", s, why);
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
    return 0;
}

/* ==== command line ======================================================== */

static const char usage_text[] =
    "usage: zero-report [--bytes | --unit K|M|G] REPORT.json|DIR|PATTERN...\n"
    "       zero-report --estimate (--params N | --preset NAME) [options]\n"
    "\n"
    "Reports: the per-rank JSON a run wrote (--mem-report FILE, %r = rank); a\n"
    "directory stands for its *.json files. Prints planned, measured and\n"
    "difference per rank, tier and category; exit 1 when a measured peak\n"
    "exceeds its plan, 2 on bad input.\n"
    "\n"
    "--estimate: what each rank would hold, without a run.\n"
    "  --params N            parameter count (7.5e9, 124M, 1.5B: powers of 1000)\n"
    "  --preset NAME         gpt2-124m, gpt2-350m, gpt2-774m, gpt2-1558m,\n"
    "                        zero-paper-7.5b (sets params, layers, precision)\n"
    "  --world-size N        ranks (default 1)\n"
    "  --stage 0|1|2|3|all   default all (the config's stage with --config)\n"
    "  --precision P         fp32 (default): 4+4+8 bytes a parameter, what the\n"
    "                        engine trains today; bf16, fp16: 2+2 bytes with an\n"
    "                        f32 master copy and moments (2+2+4+8)\n"
    "  --offload-optimizer none|cpu|nvme\n"
    "  --offload-param none|cpu|nvme\n"
    "  --reduce-bucket N     reduce_bucket_size, elements (5e8, or 64M in 1024s)\n"
    "  --prefetch-bucket N   stage3_prefetch_bucket_size, elements\n"
    "  --persistence-threshold N\n"
    "                        stage3_param_persistence_threshold, elements\n"
    "  --largest-layer N     elements of the largest layer\n"
    "  --layers L            layer count (equal layers without --largest-layer;\n"
    "                        neither given: 32 layers, stated in the output)\n"
    "  --config FILE         a zrt config (docs/config.md); flags override it\n"
    "  --unit K|M|G          KB/KiB, MB/MiB or GB/GiB (default G)\n"
    "  --decimals D          digits after the point, 0-6 (default 1)\n"
    "  --bytes               exact byte counts\n"
    "\n"
    "docs/zero-report.md has the formula of every row.\n";

/* The flags whose value is kept as given (parsed by run_estimate). */
typedef struct string_flag {
    const char *name;
    size_t offset; /* of a const char * in est_opts */
} string_flag;

#define STRING_FLAG(name, field)                                                         \
    {                                                                                    \
        name, offsetof(est_opts, field)                                                  \
    }
static const string_flag string_flags[] = {
    STRING_FLAG("params", params),
    STRING_FLAG("preset", preset),
    STRING_FLAG("stage", stage),
    STRING_FLAG("precision", precision),
    STRING_FLAG("offload-optimizer", offload_optim),
    STRING_FLAG("offload-param", offload_param),
    STRING_FLAG("reduce-bucket", reduce_bucket),
    STRING_FLAG("prefetch-bucket", prefetch_bucket),
    STRING_FLAG("persistence-threshold", threshold),
    STRING_FLAG("largest-layer", largest),
    STRING_FLAG("layers", layers),
    STRING_FLAG("config", config),
};
#define NSTRING_FLAGS (int)(sizeof string_flags / sizeof string_flags[0])

/* Other flags; string flag i has the value OPT_STRING + i. */
enum {
    OPT_ESTIMATE = 256,
    OPT_WORLD,
    OPT_UNIT,
    OPT_DECIMALS,
    OPT_BYTES,
    OPT_HELP,
    OPT_VERSION,
    OPT_STRING
};

static const struct option other_opts[] = {
    {"estimate", no_argument, NULL, OPT_ESTIMATE},
    {"world-size", required_argument, NULL, OPT_WORLD},
    {"unit", required_argument, NULL, OPT_UNIT},
    {"decimals", required_argument, NULL, OPT_DECIMALS},
    {"bytes", no_argument, NULL, OPT_BYTES},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
};
#define NOTHER_OPTS (int)(sizeof other_opts / sizeof other_opts[0])

/* getopt_long's table: the other flags, the string flags, the end. */
static void build_options(struct option *out)
{
    int n = 0;
    for (int i = 0; i < NOTHER_OPTS; i++)
        out[n++] = other_opts[i];
    for (int i = 0; i < NSTRING_FLAGS; i++)
        out[n++] = (struct option){string_flags[i].name, required_argument, NULL,
                                   OPT_STRING + i};
    out[n] = (struct option){NULL, 0, NULL, 0};
}

static int parse_small(const char *flag, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return error("%s '%s': it must be a whole number from %d to %d", flag, s, lo, hi);
    *out = (int)v;
    return 0;
}

/* Stores one option; returns nonzero on a bad value. */
static int take_option(int opt, const char *arg, est_opts *o, int *estimate)
{
    if (opt >= OPT_STRING && opt < OPT_STRING + NSTRING_FLAGS) {
        const char **field =
            (const char **)((char *)o + string_flags[opt - OPT_STRING].offset);
        *field = arg;
        return 0;
    }
    if (opt == OPT_ESTIMATE)
        *estimate = 1;
    else if (opt == OPT_BYTES)
        o->exact = 1;
    else if (opt == OPT_WORLD)
        return parse_small("--world-size", arg, 1, 1 << 24, &o->world_size);
    else if (opt == OPT_DECIMALS)
        return parse_small("--decimals", arg, 0, 6, &o->decimals);
    else if (opt == OPT_UNIT && strlen(arg) == 1 &&
             strchr("KMG", toupper((unsigned char)arg[0])))
        o->unit = (char)toupper((unsigned char)arg[0]);
    else if (opt == OPT_UNIT)
        return error("--unit '%s': it must be K, M or G", arg);
    else
        return EXIT_BAD_INPUT;
    return 0;
}

/* Flags that only --estimate reads, given without it. */
static int estimate_flags_given(const est_opts *o)
{
    return o->params || o->preset || o->stage || o->precision || o->offload_optim ||
           o->offload_param || o->reduce_bucket || o->prefetch_bucket || o->threshold ||
           o->largest || o->layers || o->config || o->world_size;
}

int main(int argc, char **argv)
{
    est_opts o = {.decimals = -1};
    struct option opts[NOTHER_OPTS + NSTRING_FLAGS + 1];
    int estimate = 0, opt;
    build_options(opts);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'h' || opt == OPT_HELP) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (opt == OPT_VERSION) {
            printf("zero-report %s\n", ZRT_VERSION_STRING);
            return 0;
        }
        if (opt == '?')
            return error("unknown option or missing value: '%s' (zero-report --help)",
                         argv[optind - 1]);
        if (take_option(opt, optarg, &o, &estimate))
            return EXIT_BAD_INPUT;
    }
    if (estimate) {
        if (optind < argc)
            return error("--estimate reads no reports: '%s'", argv[optind]);
        o.world_size = o.world_size ? o.world_size : 1;
        o.decimals = o.decimals < 0 ? 1 : o.decimals;
        o.unit = o.unit ? o.unit : 'G';
        return run_estimate(&o);
    }
    if (estimate_flags_given(&o))
        return error("--params, --preset, --stage and the other model flags need "
                     "--estimate");
    if (optind == argc) {
        fputs(usage_text, stderr);
        return EXIT_BAD_INPUT;
    }
    return run_reports(argv + optind, argc - optind, o.exact, o.unit,
                       o.decimals < 0 ? 2 : o.decimals);
}
