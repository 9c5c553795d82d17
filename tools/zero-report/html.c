/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-report/html.c — --html FILE: one self-contained page (inline CSS
 * and SVG, no script, nothing fetched) with the summary the text output
 * prints and, per rank, the device bytes over the last step of the report's
 * timeline: stacked areas per category (a fixed colour each), dashed lines
 * for the planned device peak and the device budget, a tick where the phase
 * changes. Every text taken from a report or the command line is escaped;
 * the SVG is well-formed XML, so the page also parses as XHTML fragments.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "zero_report.h"

/* ---- escaping ------------------------------------------------------------ */

/* The entity for a character HTML or XML gives meaning to, or NULL. */
static const char *entity(char c)
{
    return c == '&'    ? "&amp;"
           : c == '<'  ? "&lt;"
           : c == '>'  ? "&gt;"
           : c == '"'  ? "&quot;"
           : c == '\'' ? "&#39;"
                       : NULL;
}

/* Control characters other than tab and newline are not allowed in XML. */
static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        const char *e = entity(*s);
        if (e)
            fputs(e, f);
        else
            fputc((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' ? '?' : *s, f);
    }
}

/* <tag class="cls">escaped text</tag> */
static void put_element(FILE *f, const char *tag, const char *cls, const char *text)
{
    fprintf(f, "<%s%s%s%s>", tag, cls ? " class=\"" : "", cls ? cls : "",
            cls ? "\"" : "");
    put_escaped(f, text);
    fprintf(f, "</%s>\n", tag);
}

/* ---- colours and names --------------------------------------------------- */

/* A fixed colour per category: parameters blue, gradients orange, optimizer
 * state green and purple, communication red, the loop's own grey, hpZ's
 * secondary shards yellow, qwZ's quantized gather buffers pink, top-k's
 * residual brown-grey, the asynchronous checkpoint buffer dark teal. */
static const struct {
    const char *name, *colour;
} palette[] = {
    {"param", "#4e79a7"},         {"param-gather", "#a0cbe8"},
    {"param-persist", "#76b7b2"}, {"grad", "#f28e2b"},
    {"grad-bucket", "#ffbe7d"},   {"master", "#b07aa1"},
    {"optim", "#59a14f"},         {"comm", "#e15759"},
    {"activation", "#bab0ac"},    {"staging", "#9c755f"},
    {"hpz", "#edc948"},           {"qwz", "#ff9da7"},
    {"topk-residual", "#8c6d62"}, {"ckpt-buffer", "#2f6f6a"},
};

static const char *colour_of(const char *category)
{
    for (size_t i = 0; i < sizeof palette / sizeof palette[0]; i++)
        if (!strcmp(palette[i].name, category))
            return palette[i].colour;
    return "#555555";
}

/* "fwd 3", "bwd 2", "reduce 4", "step": a tick's label. */
static void phase_label(char *buf, size_t size, const timeline *tl, int phase, int layer)
{
    const char *name = phase >= 0 && phase < tl->nphases ? tl->phases[phase] : "?";
    if (!strcmp(name, "forward"))
        name = "fwd";
    else if (!strcmp(name, "backward"))
        name = "bwd";
    if (layer >= 0)
        snprintf(buf, size, "%s %d", name, layer);
    else
        snprintf(buf, size, "%s", name);
}

/* ---- the table ----------------------------------------------------------- */

static int row_empty(const table *tb, int row)
{
    for (int c = 0; c < tb->cols; c++)
        if (zr_cell_at(tb, row, c)[0])
            return 0;
    return 1;
}

/* Row 0 names the rank over its three columns. */
static void put_rank_row(FILE *f, const table *tb)
{
    fputs("<tr><th colspan=\"2\"></th>", f);
    for (int c = 2; c + 2 < tb->cols; c += 3) {
        fputs("<th colspan=\"3\" class=\"rank\">", f);
        put_escaped(f, zr_cell_at(tb, 0, c + 1));
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
}

static void put_row(FILE *f, const table *tb, int row, const char *cell_tag)
{
    fputs("<tr>", f);
    for (int c = 0; c < tb->cols; c++) {
        const char *text = zr_cell_at(tb, row, c);
        const char *cls = c < 2 ? "label" : strstr(text, " !") ? "num over" : "num";
        fprintf(f, "<%s class=\"%s\">", cell_tag, cls);
        put_escaped(f, text);
        fprintf(f, "</%s>", cell_tag);
    }
    fputs("</tr>\n", f);
}

static void put_table(FILE *f, const table *tb)
{
    fputs("<table class=\"report\">\n<thead>\n", f);
    put_rank_row(f, tb);
    put_row(f, tb, 1, "th");
    fputs("</thead>\n<tbody>\n", f);
    for (int r = 2; r < tb->rows; r++) {
        if (row_empty(tb, r))
            fprintf(f, "<tr class=\"gap\"><td colspan=\"%d\"></td></tr>\n", tb->cols);
        else
            put_row(f, tb, r, "td");
    }
    fputs("</tbody>\n</table>\n", f);
}

static void put_list(FILE *f, const strlist *l, const char *cls)
{
    if (!l->n)
        return;
    fprintf(f, "<ul class=\"%s\">\n", cls);
    for (int i = 0; i < l->n; i++)
        put_element(f, "li", strstr(l->v[i], " PLAN: ") ? "bad" : NULL, l->v[i]);
    fputs("</ul>\n", f);
}

/* ---- the plot ------------------------------------------------------------ */

enum { SVG_W = 1240, SVG_H = 430, LEFT = 84, RIGHT = 200, TOP = 24, BOTTOM = 78 };

typedef struct plot {
    double x0, x1, y0, y1; /* the plotting area, pixels (y0 at the top) */
    double xs;             /* pixels per point */
    double ymax;           /* bytes at y0 */
    double unit;           /* bytes per axis unit */
    const char *unit_name;
} plot;

static double px(const plot *p, double point)
{
    return p->x0 + point * p->xs;
}

static double py(const plot *p, double bytes)
{
    return p->y1 - bytes / p->ymax * (p->y1 - p->y0);
}

static int64_t held_at(const series *s, int point, int cat)
{
    int64_t v = s->held[(size_t)point * s->ncats + cat];
    return v > 0 ? v : 0; /* a dropped charge could leave a negative sum */
}

/* In double: each category's bytes fit int64 (the reader checks), their sum
 * need not. */
static double stacked_max(const series *s)
{
    double most = 0;
    for (int j = 0; j < s->npoints; j++) {
        double sum = 0;
        for (int c = 0; c < s->ncats; c++)
            sum += (double)held_at(s, j, c);
        most = sum > most ? sum : most;
    }
    return most;
}

static int category_drawn(const series *s, int cat)
{
    for (int j = 0; j < s->npoints; j++)
        if (held_at(s, j, cat))
            return 1;
    return 0;
}

static plot make_plot(const series *s, int64_t planned, int64_t limit)
{
    plot p = {.x0 = LEFT, .x1 = SVG_W - RIGHT, .y0 = TOP, .y1 = SVG_H - BOTTOM};
    double top = stacked_max(s);
    top = planned > top ? (double)planned : top;
    top = limit > top ? (double)limit : top;
    p.ymax = top > 0 ? top * 1.08 : 1 << 20;
    p.xs = (p.x1 - p.x0) / s->npoints;
    p.unit = p.ymax >= 8.0 * (1 << 30) ? (double)(1 << 30) : (double)(1 << 20);
    p.unit_name = p.unit > (1 << 20) ? "GiB" : "MiB";
    return p;
}

/* A step-shaped edge through y[0..n-1], one point-width each; backwards
 * walks it right to left (the lower edge of an area). */
static void put_step_edge(FILE *f, const plot *p, const double *y, int n, int backwards)
{
    for (int k = 0; k < n; k++) {
        int j = backwards ? n - 1 - k : k;
        double a = px(p, backwards ? j + 1 : j), b = px(p, backwards ? j : j + 1);
        fprintf(f, "%.1f,%.1f %.1f,%.1f ", a, py(p, y[j]), b, py(p, y[j]));
    }
}

/* The stacked areas, bottom to top in the timeline's category order. */
static int put_areas(FILE *f, const plot *p, const series *s, const timeline *tl)
{
    double *below = calloc((size_t)s->npoints, sizeof *below);
    double *top = calloc((size_t)s->npoints, sizeof *top);
    if (!below || !top) {
        free(below);
        free(top);
        return zr_error("out of memory");
    }
    for (int c = 0; c < s->ncats; c++) {
        if (!category_drawn(s, c))
            continue;
        for (int j = 0; j < s->npoints; j++)
            top[j] = below[j] + (double)held_at(s, j, c);
        fprintf(f, "<polygon class=\"area\" fill=\"%s\" points=\"",
                colour_of(tl->cats[c]));
        put_step_edge(f, p, top, s->npoints, 0);
        put_step_edge(f, p, below, s->npoints, 1);
        fputs("\"><title>", f);
        put_escaped(f, tl->cats[c]);
        fputs("</title></polygon>\n", f);
        memcpy(below, top, (size_t)s->npoints * sizeof *top);
    }
    free(below);
    free(top);
    return 0;
}

static void put_line(FILE *f, const char *cls, double x1, double y1, double x2, double y2)
{
    fprintf(f, "<line class=\"%s\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
            cls, x1, y1, x2, y2);
}

/* 1, 2 or 5 times a power of ten: about five gridlines. */
static double nice_step(double range)
{
    double raw = range / 5, mag = pow(10, floor(log10(raw))), frac = raw / mag;
    return (frac <= 1 ? 1 : frac <= 2 ? 2 : frac <= 5 ? 5 : 10) * mag;
}

static void put_y_axis(FILE *f, const plot *p)
{
    double step = nice_step(p->ymax / p->unit);
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step));
    for (int k = 0; k * step * p->unit <= p->ymax; k++) {
        double y = py(p, k * step * p->unit);
        put_line(f, "grid", p->x0, y, p->x1, y);
        fprintf(f, "<text class=\"ytick\" x=\"%.1f\" y=\"%.1f\">%.*f</text>\n", p->x0 - 6,
                y + 4, decimals, k * step);
    }
    fprintf(f,
            "<text class=\"axis\" transform=\"translate(18,%.1f) rotate(-90)\">%s held"
            "</text>\n",
            (p->y0 + p->y1) / 2, p->unit_name);
    put_line(f, "frame", p->x0, p->y0, p->x0, p->y1);
}

static void put_x_tick(FILE *f, const plot *p, double x, const char *label)
{
    put_line(f, "frame", x, p->y1, x, p->y1 + 5);
    if (!label)
        return;
    fprintf(f, "<text class=\"xtick\" transform=\"translate(%.1f,%.1f) rotate(-50)\">",
            x + 3, p->y1 + 12);
    put_escaped(f, label);
    fputs("</text>\n", f);
}

/* A tick where the phase or layer changes; a label where there is room. */
static void put_x_axis(FILE *f, const plot *p, const series *s, const timeline *tl)
{
    double last_label = p->x0; /* labels closer than 13 px would overlap */
    char label[64];
    put_line(f, "frame", p->x0, p->y1, p->x1, p->y1);
    put_x_tick(f, p, p->x0, "start");
    for (int j = 1; j < s->npoints; j++) {
        if (j > 1 && s->phase[j] == s->phase[j - 1] && s->layer[j] == s->layer[j - 1])
            continue;
        double x = px(p, j);
        phase_label(label, sizeof label, tl, s->phase[j], s->layer[j]);
        put_x_tick(f, p, x, x - last_label >= 13 ? label : NULL);
        last_label = x - last_label >= 13 ? x : last_label;
    }
    fprintf(f,
            "<text class=\"axis\" x=\"%.1f\" y=\"%d\">charges and releases of step %d, "
            "in order (a tick where the phase changes)</text>\n",
            (p->x0 + p->x1) / 2, SVG_H - 6, s->step);
}

/* A dashed horizontal line with its label at the right end. */
static void put_level(FILE *f, const plot *p, int64_t bytes, const char *cls,
                      const char *what, int label_below)
{
    double y = py(p, (double)bytes);
    put_line(f, cls, p->x0, y, p->x1, y);
    fprintf(f, "<text class=\"level\" x=\"%.1f\" y=\"%.1f\">%s %.2f %s</text>\n",
            p->x1 - 4, label_below ? y + 13 : y - 4, what, (double)bytes / p->unit,
            p->unit_name);
}

static void put_legend_line(FILE *f, double x, double y, const char *cls,
                            const char *text)
{
    put_line(f, cls, x, y + 14, x + 12, y + 14);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + 18, y + 18, text);
}

static void put_legend(FILE *f, const plot *p, const series *s, const timeline *tl,
                       int64_t planned, int64_t limit)
{
    double x = p->x1 + 16, y = p->y0 + 4;
    fputs("<g class=\"legend\">\n", f);
    for (int c = s->ncats - 1; c >= 0; c--) { /* top to bottom, as stacked */
        if (!category_drawn(s, c))
            continue;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>",
                x, y, colour_of(tl->cats[c]));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x + 18, y + 10);
        put_escaped(f, tl->cats[c]);
        fputs("</text>\n", f);
        y += 18;
    }
    if (planned != NO_PLAN) {
        put_legend_line(f, x, y, "plan", "planned device peak");
        y += 18;
    }
    if (limit > 0)
        put_legend_line(f, x, y, "budget", "device budget");
    fputs("</g>\n", f);
}

static int put_svg(FILE *f, const report *r, const series *s)
{
    int64_t planned = r->plan_tier[ZRT_TIER_DEVICE], limit = r->limit[ZRT_TIER_DEVICE];
    plot p = make_plot(s, planned, limit);
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n<title>rank %d: device "
            "bytes over step %d</title>\n",
            SVG_W, SVG_H, SVG_W, SVG_H, r->rank, s->step);
    put_y_axis(f, &p);
    if (put_areas(f, &p, s, &r->tl))
        return EXIT_BAD_INPUT;
    put_x_axis(f, &p, s, &r->tl);
    if (planned != NO_PLAN)
        put_level(f, &p, planned, "plan", "planned peak", limit > planned);
    if (limit > 0)
        put_level(f, &p, limit, "budget", "budget", 0);
    put_legend(f, &p, s, &r->tl, planned, limit);
    fputs("</svg>\n", f);
    return 0;
}

/* The caption: what is drawn and what the run's device peak was. */
static void put_caption(FILE *f, const report *r, const series *s)
{
    char text[512], peak[CELL];
    units mib = zr_binary_units('M', 0, 2);
    zr_format_units(peak, sizeof peak, r->tier_peak[ZRT_TIER_DEVICE], &mib);
    int n = snprintf(text, sizeof text,
                     "Device bytes held over step %d (%d charges and releases); the "
                     "run's measured device peak: %s MiB",
                     s->step, s->npoints - 1, peak);
    if (n > 0 && (size_t)n < sizeof text && r->peak_phase[ZRT_TIER_DEVICE][0])
        snprintf(text + n, sizeof text - (size_t)n, " at %s of step %ld",
                 r->peak_phase[ZRT_TIER_DEVICE], r->peak_step[ZRT_TIER_DEVICE]);
    put_element(f, "p", "caption", text);
    if (r->tl.dropped) {
        snprintf(text, sizeof text,
                 "%lld events were dropped (the runtime could not "
                 "record them): the curve is incomplete",
                 (long long)r->tl.dropped);
        put_element(f, "p", "bad", text);
    }
}

static int put_rank(FILE *f, const report *r)
{
    char heading[64];
    snprintf(heading, sizeof heading, "Rank %d", r->rank);
    fputs("<section class=\"rank\">\n", f);
    put_element(f, "h3", NULL, heading);
    const char *nothing = !r->tl.present ? "no timeline in this report: nothing to plot"
                          : zr_timeline_tier(&r->tl, "device") < 0
                              ? "the timeline of this report names no 'device' tier: "
                                "nothing to plot"
                              : NULL;
    if (nothing) {
        put_element(f, "p", "bad", nothing);
        put_element(f, "p", "path", r->path);
        fputs("</section>\n", f);
        return 0;
    }
    series s = {0};
    int rc = zr_tier_series(r->path, &r->tl, "device", &s);
    if (!rc) {
        put_caption(f, r, &s);
        rc = put_svg(f, r, &s);
    }
    zr_series_free(&s);
    put_element(f, "p", "path", r->path);
    fputs("</section>\n", f);
    return rc;
}

/* ---- the page ------------------------------------------------------------ */

static const char style[] =
    "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px;color:#222}\n"
    "h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:22px 0 6px}"
    "h3{font-size:16px;margin:14px 0 4px}\n"
    ".header{margin:0;font-family:'DejaVu Sans Mono',monospace;font-size:13px}\n"
    "table.report{border-collapse:collapse;font-family:'DejaVu Sans Mono',monospace;"
    "font-size:13px;margin:10px 0}\n"
    "table.report th,table.report td{padding:2px 10px;border-bottom:1px solid #e4e4e4}\n"
    "table.report th.rank{border-bottom:2px solid #888}\n"
    "td.num,th.num{text-align:right}td.label,th.label{text-align:left}\n"
    "td.over{color:#b00020;font-weight:bold}tr.gap td{border:none;height:8px}\n"
    "ul{font-family:'DejaVu Sans Mono',monospace;font-size:13px;padding-left:18px}\n"
    ".bad{color:#b00020;font-weight:bold}.caption,.path{font-size:13px;margin:2px 0}\n"
    ".path{color:#666;font-family:'DejaVu Sans Mono',monospace}\n"
    "svg.plot{font-family:'DejaVu Sans',Arial,sans-serif;font-size:12px;display:block}\n"
    "svg .grid{stroke:#e0e0e0}svg .frame{stroke:#444}\n"
    "svg .ytick{text-anchor:end}svg .xtick{text-anchor:end;font-size:11px}\n"
    "svg .axis{text-anchor:middle;font-size:12px}svg .level{text-anchor:end;"
    "font-size:12px}\n"
    "svg .plan{stroke:#1f3b73;stroke-width:2;stroke-dasharray:8 5}\n"
    "svg .budget{stroke:#b00020;stroke-width:2;stroke-dasharray:3 4}\n"
    "svg .area{stroke:none}\n";

static int put_page(FILE *f, const report *r, int n, const summary *s)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n", f);
    put_element(f, "title", NULL, s->header.n ? s->header.v[0] : "zero-report");
    fprintf(f, "<style>\n%s</style>\n</head>\n<body>\n", style);
    put_element(f, "h1", NULL, "zero-report: memory per rank, tier and category");
    for (int i = 0; i < s->header.n; i++)
        put_element(f, "p", "header", s->header.v[i]);
    put_table(f, &s->tb);
    put_list(f, &s->peaks, "peaks");
    put_list(f, &s->checks, "checks");
    put_element(f, "h2", NULL, "Device bytes over one step, per rank");
    for (int i = 0; i < n; i++)
        if (put_rank(f, &r[i]))
            return EXIT_BAD_INPUT;
    fputs("</body>\n</html>\n", f);
    return 0;
}

int zr_write_html(const char *file, const report *r, int n, const summary *s)
{
    FILE *f = fopen(file, "w");
    if (!f)
        return zr_error("--html %s: cannot create the file: %s", file, strerror(errno));
    int rc = put_page(f, r, n, s);
    if (ferror(f) && !rc)
        rc = zr_error("--html %s: cannot write the file", file);
    if (fclose(f) != 0 && !rc)
        rc = zr_error("--html %s: cannot write the file: %s", file, strerror(errno));
    return rc;
}
