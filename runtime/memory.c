/*
 * runtime/memory.c — the memory account: current and peak bytes per tier and
 * category, and the budget check with a message that explains the overrun.
 */
#include "memory.h"

#include <stdio.h>
#include <string.h>

void zrt__mem_account_init(zrt__mem_account *acct)
{
    memset(acct, 0, sizeof *acct);
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
        int n = snprintf(buf + used, size - used, "%s%s %s",
                         used ? ", " : "", zrt_category_str((zrt_category)c),
                         zrt__fmt_bytes(s->current[tier][c], amount, sizeof amount));
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (used == 0)
        snprintf(buf, size, "nothing");
}

static zrt_status over_budget(const zrt__mem_account *acct, zrt__errbuf *err,
                              zrt_tier tier, zrt_category cat, int64_t bytes,
                              const char *what)
{
    const zrt_mem_stats *s = &acct->stats;
    int64_t limit = s->tier_limit[tier];
    int64_t left = limit - s->tier_current[tier];
    char asked[64], budget[64], remaining[64], holders[512];
    describe_holders(s, tier, holders, sizeof holders);
    return zrt__fail(err, ZRT_ERR_OUT_OF_MEMORY,
                     "%s memory budget exceeded: category '%s'%s%s asked for %s "
                     "but only %s of the %s budget is left (in use: %s)",
                     zrt_tier_str(tier), zrt_category_str(cat),
                     what ? " for " : "", what ? what : "",
                     zrt__fmt_bytes(bytes, asked, sizeof asked),
                     zrt__fmt_bytes(left < 0 ? 0 : left, remaining, sizeof remaining),
                     zrt__fmt_bytes(limit, budget, sizeof budget), holders);
}

zrt_status zrt__mem_charge(zrt__mem_account *acct, zrt__errbuf *err,
                           zrt_tier tier, zrt_category cat, int64_t bytes,
                           const char *what)
{
    zrt_mem_stats *s = &acct->stats;
    int64_t limit = s->tier_limit[tier];
    if (limit > 0 && s->tier_current[tier] + bytes > limit)
        return over_budget(acct, err, tier, cat, bytes, what);
    s->current[tier][cat] += bytes;
    s->tier_current[tier] += bytes;
    if (s->current[tier][cat] > s->peak[tier][cat])
        s->peak[tier][cat] = s->current[tier][cat];
    if (s->tier_current[tier] > s->tier_peak[tier])
        s->tier_peak[tier] = s->tier_current[tier];
    return ZRT_OK;
}

void zrt__mem_release(zrt__mem_account *acct, zrt_tier tier, zrt_category cat,
                      int64_t bytes)
{
    acct->stats.current[tier][cat] -= bytes;
    acct->stats.tier_current[tier] -= bytes;
}
