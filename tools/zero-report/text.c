/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-report/text.c — errors, byte counts written for people, the
 * aligned table (cells formatted first, widths measured, then printed) and
 * lists of lines.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "zero_report.h"

int zr_error(const char *fmt, ...)
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

/* bytes / unit with `decimals` digits, rounded half away from zero on the
 * exact integers (so 1,875,000,000 bytes is "1.9" GB, as the ZeRO paper
 * writes it, not the "1.8" of printf's round-half-even on 1.875). */
void zr_format_units(char *buf, size_t size, int64_t bytes, const units *u)
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

units zr_binary_units(char unit, int exact, int decimals)
{
    units u = {.exact = exact, .decimals = decimals, .unit = 1 << 10, .name = "KiB"};
    if (unit == 'M')
        u.unit = 1 << 20, u.name = "MiB";
    if (unit == 'G')
        u.unit = 1 << 30, u.name = "GiB";
    if (exact)
        u.name = "bytes";
    return u;
}

const char *zr_grouped(char *buf, size_t size, int64_t n)
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

/* ---- the table ----------------------------------------------------------- */

int zr_table_init(table *t, int rows, int cols)
{
    t->rows = rows;
    t->cols = cols;
    t->cell = calloc((size_t)rows * (size_t)cols, CELL);
    t->width = calloc((size_t)cols, sizeof *t->width);
    t->align = NULL;
    return t->cell && t->width
               ? 0
               : zr_error("out of memory for a %d x %d table", rows, cols);
}

void zr_table_free(table *t)
{
    free(t->cell);
    free(t->width);
    t->cell = NULL;
    t->width = NULL;
}

char *zr_cell(table *t, int row, int col)
{
    return t->cell[(size_t)row * (size_t)t->cols + (size_t)col];
}

const char *zr_cell_at(const table *t, int row, int col)
{
    return t->cell[(size_t)row * (size_t)t->cols + (size_t)col];
}

void zr_set_cell(table *t, int row, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(zr_cell(t, row, col), CELL, fmt, ap);
    va_end(ap);
}

void zr_table_print(table *t, int left)
{
    for (int c = 0; c < t->cols; c++)
        for (int r = 0; r < t->rows; r++) {
            int w = (int)strlen(zr_cell(t, r, c));
            t->width[c] = w > t->width[c] ? w : t->width[c];
        }
    for (int r = 0; r < t->rows; r++) {
        char line[4096];
        size_t at = 0;
        for (int c = 0; c < t->cols && at < sizeof line; c++) {
            int l = t->align ? t->align[c] == 'l' : c < left;
            int n = snprintf(line + at, sizeof line - at, l ? "%-*s" : "%*s", t->width[c],
                             zr_cell(t, r, c));
            at += n > 0 ? (size_t)n : 0;
            if (c + 1 < t->cols && at + 2 < sizeof line)
                at += (size_t)snprintf(line + at, sizeof line - at, "  ");
        }
        at = at < sizeof line ? at : sizeof line - 1;
        while (at > 0 && line[at - 1] == ' ')
            line[--at] = '\0';
        puts(line);
    }
}

/* ---- lists of lines ------------------------------------------------------ */

int zr_add_line(strlist *l, const char *fmt, ...)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return zr_error("out of memory");
        l->v = v;
        l->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    int rc = vasprintf(&l->v[l->n], fmt, ap);
    va_end(ap);
    if (rc < 0)
        return zr_error("out of memory");
    l->n++;
    return 0;
}

void zr_strlist_free(strlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (strlist){0};
}
