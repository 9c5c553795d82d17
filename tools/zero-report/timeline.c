/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-report/timeline.c — a report's "timeline": every charge and
 * release of the first steps, in order, as
 *   {"steps": 2, "dropped": 0, "phases": [...], "tiers": [...],
 *    "categories": [...], "events": [[step, phase, layer, tier, cat, bytes]]}
 * and, from it, the bytes one tier held per category over one step: the
 * running sums of the deltas, started from everything before that step.
 * A timeline need not name every tier (zr_timeline_tier); the reader refuses
 * events whose running total on a tier and category would leave int64.
 */
#include <stdlib.h>
#include <string.h>

#include "zero_report.h"

enum { MAX_PAIRS = 1 << 20 }; /* tiers x categories whose running totals are kept */

/* A JSON array of strings, copied. */
static int read_names(const char *file, json_t *tl, const char *key, char ***out, int *n)
{
    json_t *a = json_object_get(tl, key), *v;
    size_t i;
    if (!a || !json_is_array(a))
        return zr_error("%s: 'timeline.%s' is %s", file, key,
                        a ? "not an array" : "missing");
    *out = calloc(json_array_size(a) + 1, sizeof **out);
    if (!*out)
        return zr_error("out of memory");
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v))
            return zr_error("%s: 'timeline.%s[%zu]' is not a string", file, key, i);
        if (!((*out)[i] = strdup(json_string_value(v))))
            return zr_error("out of memory");
        (*n)++;
    }
    return 0;
}

static int index_ok(const char *file, size_t i, const char *what, int64_t v, int n,
                    const char *legend)
{
    if (v >= 0 && v < n)
        return 0;
    return zr_error("%s: 'timeline.events[%zu]': %s %lld is not an index into "
                    "'timeline.%s' (%d names)",
                    file, i, what, (long long)v, legend, n);
}

/* events[i] = [step, phase, layer, tier, category, delta]. */
static int read_event(const char *file, const timeline *tl, json_t *e, size_t i,
                      tl_event *out)
{
    int64_t v[6];
    if (!json_is_array(e) || json_array_size(e) != 6)
        return zr_error("%s: 'timeline.events[%zu]' is not an array of 6 integers", file,
                        i);
    for (size_t k = 0; k < 6; k++) {
        json_t *x = json_array_get(e, k);
        if (!json_is_integer(x))
            return zr_error("%s: 'timeline.events[%zu][%zu]' is not an integer", file, i,
                            k);
        v[k] = json_integer_value(x);
    }
    if (v[0] < 0 || v[0] > tl->steps || v[2] < -1 || v[2] > INT32_MAX)
        return zr_error("%s: 'timeline.events[%zu]': step %lld or layer %lld is out of "
                        "range (steps 0-%d, layer -1 or more)",
                        file, i, (long long)v[0], (long long)v[2], tl->steps);
    if (index_ok(file, i, "phase", v[1], tl->nphases, "phases") ||
        index_ok(file, i, "tier", v[3], tl->ntiers, "tiers") ||
        index_ok(file, i, "category", v[4], tl->ncats, "categories"))
        return EXIT_BAD_INPUT;
    *out = (tl_event){.step = (int)v[0],
                      .phase = (int)v[1],
                      .layer = (int)v[2],
                      .tier = (int)v[3],
                      .cat = (int)v[4],
                      .delta = v[5]};
    return 0;
}

/* Adds event i's delta to the running total of its tier and category,
 * refusing a total that would leave int64 (a report no run can write). */
static int add_delta(const char *file, const timeline *tl, const tl_event *e, size_t i,
                     int64_t *total)
{
    int64_t sum;
    if (!__builtin_add_overflow(*total, e->delta, &sum)) {
        *total = sum;
        return 0;
    }
    return zr_error("%s: 'timeline.events[%zu][5]': the delta %lld takes the bytes held "
                    "on tier '%s' in category '%s' from %lld past the range of a 64-bit "
                    "integer",
                    file, i, (long long)e->delta, tl->tiers[e->tier], tl->cats[e->cat],
                    (long long)*total);
}

/* The events, each checked against the legends; the running total of every
 * tier and category must stay a 64-bit integer, so the sums drawn from them
 * (zr_tier_series) cannot overflow. */
static int read_events(const char *file, json_t *obj, timeline *tl)
{
    json_t *a = json_object_get(obj, "events"), *e;
    size_t i;
    if (!a || !json_is_array(a))
        return zr_error("%s: 'timeline.events' is %s", file,
                        a ? "not an array" : "missing");
    if (json_array_size(a) > INT32_MAX)
        return zr_error("%s: 'timeline.events' has %zu events; at most %d are read", file,
                        json_array_size(a), INT32_MAX);
    if ((int64_t)tl->ntiers * tl->ncats > MAX_PAIRS) /* a run writes 3 x 10 */
        return zr_error("%s: 'timeline' names %d tiers and %d categories; at most %d "
                        "pairs are read",
                        file, tl->ntiers, tl->ncats, MAX_PAIRS);
    tl->events = calloc(json_array_size(a) + 1, sizeof *tl->events);
    int64_t *total = calloc((size_t)tl->ntiers * (size_t)tl->ncats + 1, sizeof *total);
    if (!tl->events || !total) {
        free(total);
        return zr_error("out of memory");
    }
    int rc = 0;
    json_array_foreach(a, i, e)
    {
        tl_event *ev = &tl->events[i];
        if ((rc = read_event(file, tl, e, i, ev)) != 0 ||
            (rc = add_delta(file, tl, ev, i,
                            &total[(size_t)ev->tier * (size_t)tl->ncats + ev->cat])) != 0)
            break;
        tl->nevents++;
    }
    free(total);
    return rc;
}

static int get_count(const char *file, json_t *obj, const char *key, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || !json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > INT32_MAX)
        return zr_error("%s: 'timeline.%s' is %s", file, key,
                        v ? "not a count (an integer from 0)" : "missing");
    *out = json_integer_value(v);
    return 0;
}

int zr_read_timeline(const char *file, json_t *doc, timeline *tl)
{
    json_t *obj = json_object_get(doc, "timeline");
    int64_t steps = 0;
    if (!obj)
        return 0;
    if (!json_is_object(obj))
        return zr_error("%s: 'timeline' is not an object", file);
    tl->present = 1;
    if (get_count(file, obj, "steps", &steps) ||
        get_count(file, obj, "dropped", &tl->dropped))
        return EXIT_BAD_INPUT;
    tl->steps = (int)steps;
    if (read_names(file, obj, "phases", &tl->phases, &tl->nphases) ||
        read_names(file, obj, "tiers", &tl->tiers, &tl->ntiers) ||
        read_names(file, obj, "categories", &tl->cats, &tl->ncats))
        return EXIT_BAD_INPUT;
    return read_events(file, obj, tl);
}

static void free_names(char **v, int n)
{
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void zr_timeline_free(timeline *tl)
{
    free_names(tl->phases, tl->nphases);
    free_names(tl->tiers, tl->ntiers);
    free_names(tl->cats, tl->ncats);
    free(tl->events);
    *tl = (timeline){0};
}

/* ---- one step of one tier ------------------------------------------------ */

static int find_name(char **names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return i;
    return -1;
}

static int last_step(const timeline *tl)
{
    int last = 0;
    for (int i = 0; i < tl->nevents; i++)
        last = tl->events[i].step > last ? tl->events[i].step : last;
    return last;
}

static int alloc_series(series *s, int npoints, int ncats)
{
    s->npoints = npoints;
    s->ncats = ncats;
    s->held = calloc((size_t)npoints * (size_t)(ncats ? ncats : 1), sizeof *s->held);
    s->phase = calloc((size_t)npoints, sizeof *s->phase);
    s->layer = calloc((size_t)npoints, sizeof *s->layer);
    return s->held && s->phase && s->layer ? 0 : zr_error("out of memory");
}

int zr_timeline_tier(const timeline *tl, const char *tier)
{
    return find_name(tl->tiers, tl->ntiers, tier);
}

int zr_tier_series(const char *file, const timeline *tl, const char *tier, series *out)
{
    int t = find_name(tl->tiers, tl->ntiers, tier), step = last_step(tl), points = 1;
    memset(out, 0, sizeof *out); /* zr_series_free is safe after any failure */
    if (t < 0)
        return zr_error("%s: no '%s' in 'timeline.tiers'", file, tier);
    for (int i = 0; i < tl->nevents; i++)
        points += tl->events[i].tier == t && tl->events[i].step == step;
    out->step = step;
    if (alloc_series(out, points, tl->ncats))
        return EXIT_BAD_INPUT;
    int64_t *now = out->held; /* point 0 first collects the earlier steps */
    int k = 0;
    out->phase[0] = out->layer[0] = -1;
    for (int i = 0; i < tl->nevents; i++) {
        const tl_event *e = &tl->events[i];
        if (e->tier != t || e->step > step)
            continue;
        if (e->step == step) {
            k++;
            memcpy(out->held + (size_t)k * tl->ncats, now,
                   (size_t)tl->ncats * sizeof *now);
            now = out->held + (size_t)k * tl->ncats;
            out->phase[k] = e->phase;
            out->layer[k] = e->layer;
        }
        if (__builtin_add_overflow(now[e->cat], e->delta, &now[e->cat]))
            return zr_error("%s: 'timeline.events[%d][5]': the bytes held on tier '%s' "
                            "in category '%s' pass the range of a 64-bit integer",
                            file, i, tier, tl->cats[e->cat]);
    }
    if (points > 1) {
        out->phase[0] = out->phase[1];
        out->layer[0] = out->layer[1];
    }
    return 0;
}

void zr_series_free(series *s)
{
    free(s->held);
    free(s->phase);
    free(s->layer);
    *s = (series){0};
}
