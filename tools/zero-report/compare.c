/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-report/compare.c — one run's reports as one summary: header
 * lines (which run, where the plan came from), the table of planned,
 * measured and difference per rank, tier and category, a line per tier peak
 * with the phase of the planned and the measured peak, and the checks:
 *   OVER PLAN  a measured peak (category or tier) above its plan: always;
 *   OFF PLAN   with --tolerance, a tier peak off its plan in either direction
 *              by more than max(PCT of the measured peak, BYTES).
 * The text output and --html both print this summary.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "zero_report.h"

/* ---- --tolerance --------------------------------------------------------- */

int zr_parse_tolerance(const char *text, tolerance *out)
{
    char pct[64], *end;
    const char *comma = strchr(text, ',');
    size_t len = comma ? (size_t)(comma - text) : strlen(text);
    tolerance t = {.given = 1};
    if (len == 0 || len >= sizeof pct)
        goto bad;
    memcpy(pct, text, len);
    pct[len] = '\0';
    errno = 0;
    t.percent = strtod(pct, &end);
    if (*end == '%')
        end++;
    if (errno || end == pct || *end || !(t.percent >= 0 && t.percent <= 100))
        goto bad;
    if (comma && zrt_parse_size(comma + 1, &t.bytes) != ZRT_OK)
        goto bad;
    *out = t;
    return 0;
bad:
    return zr_error("--tolerance '%s': it must be PCT[,BYTES]: a percentage of the "
                    "measured peak from 0 to 100, then optionally bytes (1%%,64K)",
                    text);
}

/* Bytes a tier peak may differ from its plan. */
static int64_t allowed_bytes(const tolerance *tol, int64_t measured)
{
    double share = floor(tol->percent / 100.0 * (double)measured);
    int64_t pct = share < 0x1p63 ? (int64_t)share : INT64_MAX; /* 2^63 does not fit */
    return pct > tol->bytes ? pct : tol->bytes;
}

/* ---- the header ---------------------------------------------------------- */

/* Where one report's plan came from, in words. */
static void plan_source(const report *r, char *buf, size_t size)
{
    if (!r->has_plan && r->plan_error)
        snprintf(buf, size, "none; the runtime says: %s", r->plan_error);
    else if (!r->has_plan)
        snprintf(buf, size, "none in the report (planned column \"-\")");
    else if (!strcmp(r->plan_step, "declared"))
        snprintf(buf, size,
                 "computed by the runtime before allocation, for the "
                 "declared step");
    else if (!strcmp(r->plan_step, "default"))
        snprintf(buf, size,
                 "computed by the runtime before allocation, for the "
                 "default layer order (forward 0..n-1, backward n-1..0)");
    else if (r->plan_step[0])
        snprintf(buf, size, "from the report (plan.step \"%s\")", r->plan_step);
    else
        snprintf(buf, size, "from the report (no plan.step)");
}

/* "plan: ..." once when every report agrees, else a line per rank. */
static int add_plan_lines(strlist *l, const report *r, int n)
{
    char first[4352], other[4352]; /* a plan_error (the runtime's up to 4 KiB) */
    int same = 1;
    plan_source(&r[0], first, sizeof first);
    for (int i = 1; i < n && same; i++) {
        plan_source(&r[i], other, sizeof other);
        same = !strcmp(first, other);
    }
    if (same)
        return zr_add_line(l, "plan: %s", first);
    for (int i = 0; i < n; i++) {
        plan_source(&r[i], other, sizeof other);
        if (zr_add_line(l, "plan, rank %d: %s", r[i].rank, other))
            return EXIT_BAD_INPUT;
    }
    return 0;
}

static int add_header(strlist *l, const report *r, int n, const units *u)
{
    char count[32], steps[48] = "";
    if (r[0].steps >= 0)
        snprintf(steps, sizeof steps, ", %lld step%s", (long long)r[0].steps,
                 r[0].steps == 1 ? "" : "s");
    if (zr_add_line(l,
                    "zero-report: %d report%s of a %d-rank run, stage %d, %s "
                    "parameters%s",
                    n, n == 1 ? "" : "s", r[0].world_size, r[0].stage,
                    zr_grouped(count, sizeof count, r[0].param_count), steps))
        return EXIT_BAD_INPUT;
    if (n < r[0].world_size &&
        zr_add_line(l, "(reports of %d of the %d ranks)", n, r[0].world_size))
        return EXIT_BAD_INPUT;
    if (r[0].pipeline_stages > 1 &&
        zr_add_line(l,
                    "pipeline: %d stages x %d data-parallel ranks (ZeRO within each "
                    "stage; the stages hold different parameters)",
                    r[0].pipeline_stages, r[0].data_parallel_size))
        return EXIT_BAD_INPUT;
    if (zr_add_line(l, "peak bytes per rank and tier, in %s%s", u->name,
                    u->exact ? "" : " (--bytes for exact values)"))
        return EXIT_BAD_INPUT;
    return add_plan_lines(l, r, n);
}

/* ---- the table ----------------------------------------------------------- */

static int tier_used(const report *r, int n, int t)
{
    for (int i = 0; i < n; i++)
        if (r[i].tier_peak[t] || r[i].plan_tier[t] > 0)
            return 1;
    return 0;
}

/* Planned, measured, difference for one rank at (row, 2 + 3*i). */
static void set_triplet(table *t, int row, int i, int64_t plan, int64_t peak,
                        const units *u)
{
    char a[CELL], b[CELL];
    zr_format_units(b, sizeof b, peak, u);
    zr_set_cell(t, row, 3 + 3 * i, "%s", b);
    if (plan == NO_PLAN) {
        zr_set_cell(t, row, 2 + 3 * i, "-");
        zr_set_cell(t, row, 4 + 3 * i, "-");
        return;
    }
    zr_format_units(a, sizeof a, plan, u);
    zr_set_cell(t, row, 2 + 3 * i, "%s", a);
    zr_format_units(b, sizeof b, peak - plan, u);
    zr_set_cell(t, row, 4 + 3 * i, "%s%s%s", peak > plan ? "+" : "", b,
                peak > plan ? " !" : "");
}

static int comm_used(const report *r, int n)
{
    for (int i = 0; i < n; i++)
        if (r[i].has_comm && r[i].comm_steps > 0)
            return 1;
    return 0;
}

enum { COMM_ROWS = 3 };

static int count_rows(const report *r, int n)
{
    int rows = 2;
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        rows += tier_used(r, n, t) ? ZRT_CAT_COUNT + 2 : 1; /* + a blank line */
    return rows + (comm_used(r, n) ? 1 + COMM_ROWS : 0);
}

/* Bytes sent per step: the model states' by peer class against the ZeRO
 * paper's theory ("planned"), and the other collectives'. */
static void fill_comm_rows(table *tb, int *row, const report *r, int n, const units *u)
{
    static const char *const names[COMM_ROWS] = {"same host", "other hosts",
                                                 "other collectives"};
    (*row)++; /* a blank line after the last tier */
    for (int k = 0; k < COMM_ROWS; k++, (*row)++) {
        zr_set_cell(tb, *row, 0, "sent/step");
        zr_set_cell(tb, *row, 1, "%s", names[k]);
        for (int i = 0; i < n; i++) {
            if (!r[i].has_comm || r[i].comm_steps == 0)
                continue;
            if (k < 2)
                set_triplet(tb, *row, i, r[i].comm_theory[k], r[i].comm_sent[k], u);
            else
                set_triplet(tb, *row, i, NO_PLAN, r[i].comm_other, u);
        }
    }
}

static void fill_tier_rows(table *tb, int *row, const report *r, int n, int t,
                           const units *u)
{
    const char *tn = zrt_tier_str((zrt_tier)t);
    if (!tier_used(r, n, t)) {
        zr_set_cell(tb, *row, 0, "%s", tn);
        zr_set_cell(tb, (*row)++, 1, "(nothing on any rank)");
        return;
    }
    for (int c = 0; c < ZRT_CAT_COUNT; c++, (*row)++) {
        zr_set_cell(tb, *row, 0, "%s", tn);
        zr_set_cell(tb, *row, 1, "%s", zrt_category_str((zrt_category)c));
        for (int i = 0; i < n; i++)
            set_triplet(tb, *row, i, r[i].plan[t][c], r[i].peak[t][c], u);
    }
    zr_set_cell(tb, *row, 0, "%s", tn);
    zr_set_cell(tb, *row, 1, "tier peak");
    for (int i = 0; i < n; i++)
        set_triplet(tb, *row, i, r[i].plan_tier[t], r[i].tier_peak[t], u);
    *row += 2;
}

static int fill_table(table *tb, const report *r, int n, const units *u)
{
    if (zr_table_init(tb, count_rows(r, n), 2 + 3 * n))
        return EXIT_BAD_INPUT;
    zr_set_cell(tb, 1, 0, "tier");
    zr_set_cell(tb, 1, 1, "category");
    for (int i = 0; i < n; i++) {
        zr_set_cell(tb, 0, 3 + 3 * i, "rank %d", r[i].rank);
        zr_set_cell(tb, 1, 2 + 3 * i, "planned");
        zr_set_cell(tb, 1, 3 + 3 * i, "measured");
        zr_set_cell(tb, 1, 4 + 3 * i, "difference");
    }
    int row = 2;
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        fill_tier_rows(tb, &row, r, n, t, u);
    if (comm_used(r, n))
        fill_comm_rows(tb, &row, r, n, u);
    return 0;
}

/* ---- where each tier peaked ---------------------------------------------- */

/* "1.67 MiB at backward layer 0 of step 1", or "-" without a value. */
static void peak_words(char *buf, size_t size, int64_t bytes, const char *phase,
                       long step, const units *u)
{
    char v[CELL];
    if (bytes == NO_PLAN) {
        snprintf(buf, size, "-");
        return;
    }
    zr_format_units(v, sizeof v, bytes, u);
    if (!phase[0])
        snprintf(buf, size, "%s %s", v, u->name);
    else if (step > 0)
        snprintf(buf, size, "%s %s at %s of step %ld", v, u->name, phase, step);
    else
        snprintf(buf, size, "%s %s at %s", v, u->name, phase);
}

static void peak_text(char *buf, size_t size, const report *r, int t, const units *u)
{
    char planned[160], measured[160];
    peak_words(planned, sizeof planned, r->plan_tier[t], r->plan_phase[t],
               r->plan_phase_step[t], u);
    peak_words(measured, sizeof measured, r->tier_peak[t], r->peak_phase[t],
               r->peak_step[t], u);
    snprintf(buf, size, "planned %s, measured %s", planned, measured);
}

/* One line for all ranks when they agree, else a line per rank. */
static int add_peak_lines(strlist *l, const report *r, int n, int t, const units *u)
{
    char first[400], other[400];
    const char *tn = zrt_tier_str((zrt_tier)t);
    int same = 1;
    peak_text(first, sizeof first, &r[0], t, u);
    for (int i = 1; i < n && same; i++) {
        peak_text(other, sizeof other, &r[i], t, u);
        same = !strcmp(first, other);
    }
    if (same && n > 1 && r[n - 1].rank - r[0].rank == n - 1)
        return zr_add_line(l, "%s peak, ranks %d-%d: %s", tn, r[0].rank, r[n - 1].rank,
                           first);
    for (int i = 0; i < n; i++) {
        peak_text(other, sizeof other, &r[i], t, u);
        if (zr_add_line(l, "%s peak, rank %d: %s", tn, r[i].rank, other))
            return EXIT_BAD_INPUT;
    }
    return 0;
}

/* ---- the checks ---------------------------------------------------------- */

/* One line per measured peak above its plan; counts them in s->over_plan. */
static int check_over_plan(summary *s, const report *r, int n)
{
    for (int i = 0; i < n; i++)
        for (int t = 0; t < ZRT_TIER_COUNT; t++)
            for (int c = 0; c <= ZRT_CAT_COUNT; c++) { /* ZRT_CAT_COUNT: the tier */
                int tier_row = c == ZRT_CAT_COUNT;
                int64_t plan = tier_row ? r[i].plan_tier[t] : r[i].plan[t][c];
                int64_t peak = tier_row ? r[i].tier_peak[t] : r[i].peak[t][c];
                if (plan == NO_PLAN || peak <= plan)
                    continue;
                s->over_plan++;
                if (zr_add_line(&s->checks,
                                "OVER PLAN: rank %d, tier %s, %s: measured peak %lld "
                                "bytes exceeds the plan's %lld by %lld bytes (%s)",
                                r[i].rank, zrt_tier_str((zrt_tier)t),
                                tier_row ? "tier peak"
                                         : zrt_category_str((zrt_category)c),
                                (long long)peak, (long long)plan,
                                (long long)(peak - plan), r[i].path))
                    return EXIT_BAD_INPUT;
            }
    return 0;
}

static int check_rank_tolerance(summary *s, const report *r, const tolerance *tol)
{
    if (!r->has_plan) {
        s->off_plan++;
        return zr_add_line(
            &s->checks, "OFF PLAN: rank %d: no plan to compare with%s%s (%s)", r->rank,
            r->plan_error ? ": " : "", r->plan_error ? r->plan_error : "", r->path);
    }
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        int64_t plan = r->plan_tier[t], peak = r->tier_peak[t];
        int64_t allowed = allowed_bytes(tol, peak);
        if (plan == NO_PLAN || llabs((long long)(peak - plan)) <= allowed)
            continue;
        s->off_plan++;
        if (zr_add_line(&s->checks,
                        "OFF PLAN: rank %d, tier %s: measured %lld, planned %lld, "
                        "difference %+lld, allowed %lld bytes (%s)",
                        r->rank, zrt_tier_str((zrt_tier)t), (long long)peak,
                        (long long)plan, (long long)(peak - plan), (long long)allowed,
                        r->path))
            return EXIT_BAD_INPUT;
    }
    return 0;
}

static int check_tolerance(summary *s, const report *r, int n, const tolerance *tol)
{
    char bytes[32];
    for (int i = 0; i < n; i++)
        if (check_rank_tolerance(s, &r[i], tol))
            return EXIT_BAD_INPUT;
    if (s->off_plan)
        return 0;
    return zr_add_line(&s->checks,
                       "on plan: every tier peak of every rank is within max(%g%% of "
                       "the measured peak, %s bytes) of its plan",
                       tol->percent, zr_grouped(bytes, sizeof bytes, tol->bytes));
}

/* What the sent/step rows are. */
static int add_comm_lines(strlist *l, const report *r, int n)
{
    int uneven = 0;
    for (int i = 0; i < n; i++)
        uneven |= r[i].comm_uneven;
    return zr_add_line(l,
                       "sent/step: bytes one rank's collectives sent in one optimizer "
                       "step (the largest of the %d recorded%s), the model states' by "
                       "peer class against the ZeRO paper's %s (N-1)/N of the padded "
                       "parameters (\"planned\"), the rest (norms, losses) unplanned",
                       r[0].comm_steps, uneven ? "; they differ" : ", all equal",
                       r[0].stage == 3 ? "3 psi" : "2 psi");
}

/* ---- the summary --------------------------------------------------------- */

int zr_summarize(const report *r, int n, const units *u, const tolerance *tol,
                 summary *out)
{
    memset(out, 0, sizeof *out);
    if (add_header(&out->header, r, n, u) || fill_table(&out->tb, r, n, u))
        return EXIT_BAD_INPUT;
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        if (tier_used(r, n, t) && add_peak_lines(&out->peaks, r, n, t, u))
            return EXIT_BAD_INPUT;
    if (comm_used(r, n) && add_comm_lines(&out->peaks, r, n))
        return EXIT_BAD_INPUT;
    if (check_over_plan(out, r, n))
        return EXIT_BAD_INPUT;
    return tol->given ? check_tolerance(out, r, n, tol) : 0;
}

void zr_summary_free(summary *s)
{
    zr_strlist_free(&s->header);
    zr_table_free(&s->tb);
    zr_strlist_free(&s->peaks);
    zr_strlist_free(&s->checks);
}

/* ---- the reports mode ----------------------------------------------------- */

/* Binary units for a run (budgets are binary): the largest value picks. */
static units report_units(const report *r, int n, const zr_opts *o)
{
    int64_t most = 0;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < ZRT_TIER_COUNT; t++)
            most = r[i].tier_peak[t] > most ? r[i].tier_peak[t] : most;
    char pick = o->unit             ? o->unit
                : most >= (1 << 30) ? 'G'
                : most >= (1 << 20) ? 'M'
                                    : 'K';
    return zr_binary_units(pick, o->exact, o->decimals < 0 ? 2 : o->decimals);
}

static void print_summary(summary *s)
{
    for (int i = 0; i < s->header.n; i++)
        puts(s->header.v[i]);
    putchar('\n');
    zr_table_print(&s->tb, 2);
    if (s->peaks.n)
        putchar('\n');
    for (int i = 0; i < s->peaks.n; i++)
        puts(s->peaks.v[i]);
    if (s->checks.n)
        putchar('\n');
    for (int i = 0; i < s->checks.n; i++)
        puts(s->checks.v[i]);
}

static int read_all(const paths *p, int with_timeline, report *r)
{
    for (int i = 0; i < p->n; i++)
        if (zr_read_report(p->v[i], with_timeline, &r[i]))
            return EXIT_BAD_INPUT;
    return zr_check_run(r, p->n);
}

int zr_run_reports(char **args, int nargs, const zr_opts *o)
{
    paths p = {0};
    report *r = NULL;
    tolerance tol = {0};
    summary s = {0};
    int rc = o->tolerance ? zr_parse_tolerance(o->tolerance, &tol) : 0;
    if (!rc)
        rc = zr_collect(&p, args, nargs);
    if (!rc && !(r = calloc((size_t)p.n, sizeof *r)))
        rc = zr_error("out of memory");
    if (!rc)
        rc = read_all(&p, o->html != NULL, r);
    if (!rc) {
        units u = report_units(r, p.n, o);
        rc = zr_summarize(r, p.n, &u, &tol, &s);
    }
    if (!rc && o->html)
        rc = zr_write_html(o->html, r, p.n, &s);
    if (!rc) {
        print_summary(&s);
        rc = s.over_plan || s.off_plan ? EXIT_OVER_PLAN : 0;
    }
    zr_summary_free(&s);
    for (int i = 0; r && i < p.n; i++)
        zr_report_free(&r[i]);
    free(r);
    zr_strlist_free(&p);
    return rc;
}
