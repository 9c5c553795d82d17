/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/memory.c — the memory account: current and peak bytes per tier and
 * category, and the budget check with a message that explains the overrun.
 */
#include "memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void zrt__mem_account_init(zrt__mem_account *acct)
{
    memset(acct, 0, sizeof *acct);
    acct->phase = (zrt__phase){.kind = ZRT__PHASE_INIT, .layer = -1, .step = 1};
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        acct->tier_peak_phase[t] = acct->phase;
}

void zrt__mem_account_free(zrt__mem_account *acct)
{
    free(acct->events);
    acct->events = NULL;
    acct->nevents = acct->events_cap = 0;
}

const char *zrt__phase_kind_str(int kind)
{
    static const char *const names[ZRT__PHASE_COUNT] = {
        "init", "loop", "forward", "backward", "reduce", "step", "swap"};
    return kind >= 0 && kind < ZRT__PHASE_COUNT ? names[kind] : "?";
}

void zrt__phase_format(const zrt__phase *phase, char *buf, size_t size)
{
    if (phase->layer >= 0)
        snprintf(buf, size, "%s layer %d", zrt__phase_kind_str(phase->kind),
                 phase->layer);
    else
        snprintf(buf, size, "%s", zrt__phase_kind_str(phase->kind));
}

/* Appends to the timeline while the first steps run. Growing may fail: the
 * event is then counted as dropped, never an error of the allocation. */
static void record(zrt__mem_account *acct, zrt_tier tier, zrt_category cat, int64_t delta)
{
    if (acct->record_off || acct->phase.step > ZRT__TIMELINE_STEPS)
        return;
    if (acct->nevents == acct->events_cap) {
        int cap = acct->events_cap ? 2 * acct->events_cap : 256;
        zrt__mem_event *grown = cap <= ZRT__TIMELINE_MAX_EVENTS
                                    ? realloc(acct->events, (size_t)cap * sizeof *grown)
                                    : NULL;
        if (!grown) {
            acct->events_dropped++;
            return;
        }
        acct->events = grown;
        acct->events_cap = cap;
    }
    acct->events[acct->nevents++] = (zrt__mem_event){.delta = delta,
                                                     .step = (int32_t)acct->phase.step,
                                                     .layer = acct->phase.layer,
                                                     .kind = (uint8_t)acct->phase.kind,
                                                     .tier = (uint8_t)tier,
                                                     .cat = (uint8_t)cat};
}

void zrt__mem_set_limit(zrt__mem_account *acct, zrt_tier tier, int64_t limit)
{
    acct->stats.tier_limit[tier] = limit;
}

/* "param 1.00 MiB, optim 2.00 MiB": what the tier holds now, largest first is
 * not needed at this size; registration order of categories reads fine. */
static void describe_holders(const zrt_mem_stats *s, zrt_tier tier, char *buf,
                             size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int c = 0; c < ZRT_CAT_COUNT && used + 1 < size; c++) {
        if (s->current[tier][c] == 0)
            continue;
        char amount[64];
        int n = snprintf(buf + used, size - used, "%s%s %s", used ? ", " : "",
                         zrt_category_str((zrt_category)c),
                         zrt__fmt_bytes(s->current[tier][c], amount, sizeof amount));
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (used == 0)
        snprintf(buf, size, "nothing");
}

/* " The plan expected a device peak of 12.0 MiB (at backward layer 2), of
 * which grad-bucket 1.0 MiB; grad-bucket now holds 1.5 MiB." */
static void describe_plan(const zrt__mem_account *acct, zrt_tier tier, zrt_category cat,
                          char *buf, size_t size)
{
    buf[0] = '\0';
    if (!acct->has_plan)
        return;
    char peak[64], planned[64], now[64];
    snprintf(buf, size,
             ". The plan expected a %s peak of %s (at %s), with '%s' at most %s; "
             "'%s' holds %s now",
             zrt_tier_str(tier),
             zrt__fmt_bytes(acct->planned_tier_peak[tier], peak, sizeof peak),
             acct->planned_peak_phase[tier], zrt_category_str(cat),
             zrt__fmt_bytes(acct->planned_peak[tier][cat], planned, sizeof planned),
             zrt_category_str(cat),
             zrt__fmt_bytes(acct->stats.current[tier][cat], now, sizeof now));
}

static zrt_status over_budget(const zrt__mem_account *acct, zrt__errbuf *err,
                              zrt_tier tier, zrt_category cat, int64_t bytes,
                              const char *what)
{
    const zrt_mem_stats *s = &acct->stats;
    int64_t limit = s->tier_limit[tier];
    int64_t left = limit - s->tier_current[tier];
    char asked[64], budget[64], remaining[64], holders[512], plan[512], phase[64];
    describe_holders(s, tier, holders, sizeof holders);
    describe_plan(acct, tier, cat, plan, sizeof plan);
    zrt__phase_format(&acct->phase, phase, sizeof phase);
    return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                     "%s memory budget exceeded at %s of step %ld: category '%s'%s%s "
                     "asked for %s but only %s of the %s budget is left (in use: %s)%s",
                     zrt_tier_str(tier), phase, acct->phase.step, zrt_category_str(cat),
                     what ? " for " : "", what ? what : "",
                     zrt__fmt_bytes(bytes, asked, sizeof asked),
                     zrt__fmt_bytes(left < 0 ? 0 : left, remaining, sizeof remaining),
                     zrt__fmt_bytes(limit, budget, sizeof budget), holders, plan);
}

zrt_status zrt__mem_charge(zrt__mem_account *acct, zrt__errbuf *err, zrt_tier tier,
                           zrt_category cat, int64_t bytes, const char *what)
{
    zrt_mem_stats *s = &acct->stats;
    int64_t limit = s->tier_limit[tier];
    if (limit > 0 && s->tier_current[tier] + bytes > limit)
        return over_budget(acct, err, tier, cat, bytes, what);
    s->current[tier][cat] += bytes;
    s->tier_current[tier] += bytes;
    if (s->current[tier][cat] > s->peak[tier][cat])
        s->peak[tier][cat] = s->current[tier][cat];
    if (s->tier_current[tier] > s->tier_peak[tier]) {
        s->tier_peak[tier] = s->tier_current[tier];
        acct->tier_peak_phase[tier] = acct->phase;
        memcpy(acct->at_tier_peak[tier], s->current[tier], sizeof s->current[tier]);
    }
    if (bytes != 0)
        record(acct, tier, cat, bytes);
    return ZRT_OK;
}

void zrt__mem_release(zrt__mem_account *acct, zrt_tier tier, zrt_category cat,
                      int64_t bytes)
{
    acct->stats.current[tier][cat] -= bytes;
    acct->stats.tier_current[tier] -= bytes;
    if (bytes != 0)
        record(acct, tier, cat, -bytes);
}
