/*
 * zero/report.c — the per-rank memory report (JSON): who this rank is, what
 * it was asked to hold, and the current and peak bytes per tier and category.
 * Written to "<path>.tmp.<pid>", fsynced, then renamed over <path>, so a
 * reader never sees half a report.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctx.h"

/* Copies path into out, replacing each "%r" with the rank. */
static zrt_status expand_rank(zrt_ctx *ctx, const char *path, char *out,
                              size_t size)
{
    size_t used = 0;
    for (const char *p = path; *p; p++) {
        int n;
        if (p[0] == '%' && p[1] == 'r') {
            n = snprintf(out + used, size - used, "%d", ctx->comm->rank);
            p++;
        } else {
            n = snprintf(out + used, size - used, "%c", *p);
        }
        if (n < 0 || (size_t)n >= size - used)
            return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                             "memory report path '%s' is too long", path);
        used += (size_t)n;
    }
    return ZRT_OK;
}

static void write_tier(FILE *f, const zrt_mem_stats *s, int tier)
{
    fprintf(f, "    \"%s\": {\"limit\": %lld, \"current\": %lld, \"peak\": %lld, "
               "\"categories\": {",
            zrt_tier_str((zrt_tier)tier), (long long)s->tier_limit[tier],
            (long long)s->tier_current[tier], (long long)s->tier_peak[tier]);
    for (int c = 0; c < ZRT_CAT_COUNT; c++)
        fprintf(f, "%s\"%s\": {\"current\": %lld, \"peak\": %lld}",
                c ? ", " : "", zrt_category_str((zrt_category)c),
                (long long)s->current[tier][c], (long long)s->peak[tier][c]);
    fprintf(f, "}}%s\n", tier + 1 < ZRT_TIER_COUNT ? "," : "");
}

static void write_json(zrt_ctx *ctx, FILE *f)
{
    const zrt_mem_stats *s = &ctx->acct.stats;
    fprintf(f, "{\n  \"rank\": %d,\n  \"world_size\": %d,\n  \"stage\": %d,\n",
            ctx->comm->rank, ctx->comm->size, ctx->cfg.stage);
    fprintf(f, "  \"param_count\": %lld,\n  \"padded_param_count\": %lld,\n",
            (long long)ctx->plan.total_numel, (long long)ctx->plan.total_flat_numel);
    fprintf(f, "  \"largest_layer_elements\": %lld,\n",
            (long long)ctx->plan.max_flat_numel);
    fprintf(f, "  \"bytes_per_param_element\": {\"param\": 4, \"grad\": 4, "
               "\"master\": 0, \"optim\": 8},\n");
    fprintf(f, "  \"tiers\": {\n");
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        write_tier(f, s, t);
    fprintf(f, "  }\n}\n");
}

static zrt_status write_atomically(zrt_ctx *ctx, const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return zrt__fail(&ctx->err, ZRT_ERR_IO, "cannot create '%s': %s", tmp,
                         strerror(errno));
    write_json(ctx, f);
    int failed = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
    int saved = errno;
    failed |= fclose(f) != 0;
    if (failed || rename(tmp, path) != 0) {
        saved = failed ? saved : errno;
        unlink(tmp);
        return zrt__fail(&ctx->err, ZRT_ERR_IO, "cannot write '%s': %s", path,
                         strerror(saved));
    }
    return ZRT_OK;
}

zrt_status zrt_write_mem_report(zrt_ctx *ctx, const char *path)
{
    ZRT_CHECK(zrt__require_ctx(ctx));
    if (!path || !*path)
        return zrt__fail(&ctx->err, ZRT_ERR_INVALID_ARG,
                         "zrt_write_mem_report: empty path");
    char expanded[4096];
    ZRT_CHECK(expand_rank(ctx, path, expanded, sizeof expanded));
    return write_atomically(ctx, expanded);
}
