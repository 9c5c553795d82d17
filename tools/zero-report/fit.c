/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-report/fit.c — --fit: which configurations fit the memory
 * budgets, cheapest in traffic first. The ladder is the library's
 * (zrt_fit_ladder: stages 0-3 with the optimizer and the stage-3 parameter
 * shards on the device, in host memory or, with --nvme, on NVMe, ordered by
 * NVMe bytes, then host<->device bytes, then communication, then stage); each
 * rung's bytes per tier are zrt_estimate_memory's and its traffic
 * zrt_fit_cost_of's. The first rung that fits is what "stage": "auto" would
 * choose by this estimate; the runtime walks the same ladder with its exact
 * plan. Given a cluster, the rungs that fit are then ranked, with each
 * routing (flat, hierarchical, hpZ, hybrid) whose memory still fits, by the
 * step time steptime.c predicts.
 */
#include <stdlib.h>
#include <string.h>

#include "zero_report.h"

enum { LADDER_MAX = 32 };

/* Budgets per rank in bytes; 0: none given (no limit, or no NVMe). */
typedef struct budgets {
    int64_t bytes[ZRT_TIER_COUNT];
} budgets;

/* One rung of the ladder, priced. */
typedef struct rung {
    zrt_config cfg;
    zrt_mem_estimate est;
    zrt_fit_cost cost;
    int over[ZRT_TIER_COUNT]; /* 1: this tier's total passes its budget */
    int fits;
} rung;

static int parse_budget(const char *flag, const char *text, int64_t *out)
{
    if (zrt_parse_size(text, out) != ZRT_OK || *out <= 0)
        return zr_error("%s '%s': it must be a size above 0 in bytes (16G, 512M, 1.5T: "
                        "powers of 1024)",
                        flag, text);
    return 0;
}

/* The flags --fit needs and those it refuses. */
static int check_fit_flags(const zr_opts *o)
{
    if (o->stage || o->offload_optim || o->offload_param)
        return zr_error("--fit chooses the stage and the offload devices; drop %s",
                        o->stage           ? "--stage"
                        : o->offload_optim ? "--offload-optimizer"
                                           : "--offload-param");
    if (!o->device_mem)
        return zr_error("--fit needs --device-mem SIZE (the device budget of one rank)");
    if (!o->world_size && !o->hosts)
        return zr_error("--fit needs --world-size N (the ranks the run will have), or "
                        "--hosts and --ranks-per-host");
    return 0;
}

static int read_budgets(const zr_opts *o, budgets *b)
{
    memset(b, 0, sizeof *b);
    if (parse_budget("--device-mem", o->device_mem, &b->bytes[ZRT_TIER_DEVICE]) ||
        (o->host_mem &&
         parse_budget("--host-mem", o->host_mem, &b->bytes[ZRT_TIER_HOST])) ||
        (o->nvme && parse_budget("--nvme", o->nvme, &b->bytes[ZRT_TIER_NVME])))
        return EXIT_BAD_INPUT;
    return 0;
}

/* "stage 3, optimizer cpu, parameters device" */
static void describe(const zrt_config *c, char *buf, size_t size)
{
    snprintf(buf, size, "stage %d, optimizer %s, parameters %s", c->stage,
             c->offload_optimizer.device ? zr_device_name(c->offload_optimizer.device)
                                         : "device",
             c->offload_param.device ? zr_device_name(c->offload_param.device)
                                     : "device");
}

static int price_rung(const question *q, const budgets *b, int index, rung *r)
{
    char why[512], what[96];
    describe(&r->cfg, what, sizeof what);
    if (zrt_estimate_memory(&r->cfg, &q->model, q->world_size, &r->est, why,
                            sizeof why) != ZRT_OK)
        return zr_error("--fit: rung %d (%s): %s", index + 1, what, why);
    if (zrt_fit_cost_of(&r->cfg, q->model.param_count, q->model.param_bytes,
                        q->world_size, &r->cost) != ZRT_OK)
        return zr_error("--fit: rung %d (%s): zrt_fit_cost_of refused it", index + 1,
                        what);
    r->fits = 1;
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        r->over[t] = b->bytes[t] > 0 && r->est.total[t] > b->bytes[t];
        r->fits &= !r->over[t];
    }
    return 0;
}

static int build_ladder(const question *q, const budgets *b, rung *rungs, int *n)
{
    zrt_config ladder[LADDER_MAX];
    int allow_nvme = b->bytes[ZRT_TIER_NVME] > 0;
    if (zrt_fit_ladder(&q->cfg, q->world_size, allow_nvme, ladder, LADDER_MAX, n) !=
        ZRT_OK)
        return zr_error("--fit: zrt_fit_ladder refused the config");
    *n = *n < LADDER_MAX ? *n : LADDER_MAX;
    for (int i = 0; i < *n; i++) {
        rungs[i].cfg = ladder[i];
        if (price_rung(q, b, i, &rungs[i]))
            return EXIT_BAD_INPUT;
    }
    return 0;
}

/* ---- the output ---------------------------------------------------------- */

static const char *const fit_columns[] = {
    "#",    "stage",     "optimizer",          "parameters",    "device", "host",
    "nvme", "comm/step", "host<->device/step", "nvme I/O/step", "result"};
enum { FIT_COLS = sizeof fit_columns / sizeof fit_columns[0] };

static void result_text(char *buf, size_t size, const rung *r, int chosen)
{
    if (r->fits) {
        snprintf(buf, size, "%s", chosen ? "fits <- auto" : "fits");
        return;
    }
    size_t at = (size_t)snprintf(buf, size, "over");
    for (int t = 0; t < ZRT_TIER_COUNT && at < size; t++)
        if (r->over[t])
            at += (size_t)snprintf(buf + at, size - at, "%s %s", at > 4 ? "," : "",
                                   zrt_tier_str((zrt_tier)t));
}

static void fill_rung_row(table *tb, int row, int i, const rung *r, int chosen,
                          const units *u)
{
    const zrt_config *c = &r->cfg;
    int64_t traffic[3] = {r->cost.comm_bytes, r->cost.host_bytes, r->cost.nvme_bytes};
    zr_set_cell(tb, row, 0, "%d", i + 1);
    zr_set_cell(tb, row, 1, "%d", c->stage);
    zr_set_cell(tb, row, 2, "%s",
                c->offload_optimizer.device ? zr_device_name(c->offload_optimizer.device)
                                            : "device");
    zr_set_cell(tb, row, 3, "%s",
                c->offload_param.device ? zr_device_name(c->offload_param.device)
                                        : "device");
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        zr_format_units(zr_cell(tb, row, 4 + t), CELL, r->est.total[t], u);
    for (int k = 0; k < 3; k++)
        zr_format_units(zr_cell(tb, row, 7 + k), CELL, traffic[k], u);
    result_text(zr_cell(tb, row, 10), CELL, r, chosen);
}

static int print_ladder(const rung *rungs, int n, int chosen, const units *u)
{
    table tb;
    if (zr_table_init(&tb, n + 1, FIT_COLS))
        return EXIT_BAD_INPUT;
    tb.align = "rlllrrrrrrl";
    for (int c = 0; c < FIT_COLS; c++)
        zr_set_cell(&tb, 0, c, "%s", fit_columns[c]);
    for (int i = 0; i < n; i++)
        fill_rung_row(&tb, i + 1, i, &rungs[i], i == chosen, u);
    zr_table_print(&tb, 0);
    zr_table_free(&tb);
    return 0;
}

static void print_budget(const char *tier, int64_t bytes, const char *none,
                         const units *u, int last)
{
    char v[CELL];
    zr_format_units(v, sizeof v, bytes, u);
    if (bytes > 0)
        printf("%s %s %s%s", tier, v, u->name, last ? "\n" : ", ");
    else
        printf("%s %s%s", tier, none, last ? "\n" : ", ");
}

static void print_fit_header(const question *q, const budgets *b, const units *u)
{
    printf("zero-report --fit: the configurations \"stage\": \"auto\" walks, cheapest in "
           "traffic first; bytes per rank in %s\n",
           u->name);
    zr_print_model(q);
    printf("budgets per rank: ");
    print_budget("device", b->bytes[ZRT_TIER_DEVICE], "", u, 0);
    print_budget("host", b->bytes[ZRT_TIER_HOST], "no budget (--host-mem)", u, 0);
    print_budget("nvme", b->bytes[ZRT_TIER_NVME], "none (no --nvme: no NVMe rungs)", u,
                 1);
    printf("held: zrt_estimate_memory's total per tier (activations not included); "
           "traffic: zrt_fit_cost_of, per rank per step\n"
           "order: NVMe bytes, then host<->device bytes, then communication bytes, then "
           "stage\n\n");
}

/* Why nothing fits: per tier with a budget, the least any rung needs. */
static void print_nothing_fits(const rung *rungs, int n, const budgets *b, const units *u)
{
    char need[CELL], have[CELL], what[96];
    printf("\nnothing fits:");
    for (int t = 0; t < ZRT_TIER_COUNT; t++) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (best < 0 || rungs[i].est.total[t] < rungs[best].est.total[t])
                best = i;
        if (best < 0 || b->bytes[t] <= 0 || rungs[best].est.total[t] <= b->bytes[t])
            continue;
        zr_format_units(need, sizeof need, rungs[best].est.total[t], u);
        zr_format_units(have, sizeof have, b->bytes[t], u);
        describe(&rungs[best].cfg, what, sizeof what);
        printf(" the least %s memory a rung needs is %s %s (#%d: %s), over the %s %s "
               "budget;",
               zrt_tier_str((zrt_tier)t), need, u->name, best + 1, what, have, u->name);
    }
    printf(" no rung fits every budget at once%s\n",
           b->bytes[ZRT_TIER_NVME] > 0 ? ""
                                       : " (NVMe rungs left out: --nvme SIZE adds them)");
}

static void print_choice(const rung *r, int index)
{
    char what[96];
    describe(&r->cfg, what, sizeof what);
    printf("\nchoice: #%d, %s: the first rung that fits by this estimate, what "
           "\"stage\": \"auto\" would choose; the runtime walks the same ladder with its "
           "exact plan (padding, activations, the declared step) and may go further\n",
           index + 1, what);
}

/* ---- ranked by predicted step time (with a cluster) ------------------------ */

typedef struct timed {
    int rung; /* index into the ladder */
    zrt_config cfg;
    zr_step_time t;
} timed;

/* Ascending step time; ties keep the ladder's order, then the routings'. */
static int by_step_time(const void *a, const void *b)
{
    const timed *x = a, *y = b;
    if (x->t.step_s != y->t.step_s)
        return x->t.step_s < y->t.step_s ? -1 : 1;
    if (x->rung != y->rung)
        return x->rung - y->rung;
    return (int)x->t.routing - (int)y->t.routing;
}

/* The rung with the routing's key (hpZ's P or hybrid's S, the config's or
 * the ranks of a host; none for flat and hierarchical), if it applies and its
 * memory still fits: hpZ adds the secondary shards, hybrid shards over S
 * ranks instead of N. hpZ is refused with NVMe parameters, as the engine
 * does. */
static int routed_rung(const question *q, const budgets *b, const zr_cluster *c,
                       const rung *r, zr_routing routing, zrt_config *out)
{
    int p = q->cfg.zero_hpz_partition_size, s = q->cfg.hybrid_shard_size;
    *out = r->cfg;
    out->zero_hpz_partition_size = routing == ZR_HPZ ? (p ? p : c->ranks_per_host) : 0;
    out->hybrid_shard_size = routing == ZR_HYBRID ? (s ? s : c->ranks_per_host) : 0;
    if (!zr_routing_applies(out, c, routing) ||
        (routing == ZR_HPZ && out->offload_param.device == ZRT_OFFLOAD_NVME))
        return 0;
    if (routing == ZR_FLAT || routing == ZR_HIERARCHICAL)
        return r->fits;
    rung v = {.cfg = *out};
    char why[512];
    if (zrt_estimate_memory(&v.cfg, &q->model, q->world_size, &v.est, why, sizeof why) !=
        ZRT_OK)
        return 0;
    for (int t = 0; t < ZRT_TIER_COUNT; t++)
        if (b->bytes[t] > 0 && v.est.total[t] > b->bytes[t])
            return 0;
    return 1;
}

static const char *const timed_columns[] = {"rank",
                                            "#",
                                            "stage",
                                            "optimizer",
                                            "parameters",
                                            "routing",
                                            "link bytes/step",
                                            "intra bytes/rank",
                                            "inter s",
                                            "intra s",
                                            "comm s",
                                            "compute s",
                                            "step s",
                                            "exposed comm s"};
enum { TIMED_COLS = sizeof timed_columns / sizeof timed_columns[0] };

/* "hpz(P=2)", "hybrid(S=4)", "flat" */
static void routing_text(char *buf, size_t size, const zr_step_time *t)
{
    if (t->routing == ZR_HPZ || t->routing == ZR_HYBRID)
        snprintf(buf, size, "%s(%s=%d)", zr_routing_name(t->routing),
                 t->routing == ZR_HPZ ? "P" : "S", t->group);
    else
        snprintf(buf, size, "%s", zr_routing_name(t->routing));
}

/* One row: rank, rung, its stage and devices, the routing, the model's cells. */
static void fill_timed_row(table *tb, int row, const timed *t)
{
    char routing[48];
    routing_text(routing, sizeof routing, &t->t);
    zr_set_cell(tb, row, 0, "%d", row);
    zr_set_cell(tb, row, 1, "%d", t->rung + 1);
    zr_set_cell(tb, row, 2, "%d", t->cfg.stage);
    zr_set_cell(tb, row, 3, "%s",
                t->cfg.offload_optimizer.device
                    ? zr_device_name(t->cfg.offload_optimizer.device)
                    : "device");
    zr_set_cell(tb, row, 4, "%s",
                t->cfg.offload_param.device ? zr_device_name(t->cfg.offload_param.device)
                                            : "device");
    zr_set_cell(tb, row, 5, "%s", routing);
    zr_fill_step_row(tb, row, 6, &t->t);
}

static int print_timed(const question *q, const budgets *b, const zr_cluster *c,
                       const rung *rungs, int n)
{
    timed t[LADDER_MAX * ZR_ROUTINGS];
    int k = 0;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < ZR_ROUTINGS; r++)
            if (routed_rung(q, b, c, &rungs[i], (zr_routing)r, &t[k].cfg)) {
                t[k].rung = i;
                zr_step_time_of(q, &t[k].cfg, c, (zr_routing)r, &t[k].t);
                k++;
            }
    qsort(t, (size_t)k, sizeof t[0], by_step_time);
    table tb;
    if (zr_table_init(&tb, k + 1, TIMED_COLS))
        return EXIT_BAD_INPUT;
    tb.align = "rrllllrrrrrrrr";
    for (int col = 0; col < TIMED_COLS; col++)
        zr_set_cell(&tb, 0, col, "%s", timed_columns[col]);
    for (int i = 0; i < k; i++)
        fill_timed_row(&tb, i + 1, &t[i]);
    zr_print_timed_table(q, c, &tb,
                         "by predicted step time: the rungs that fit, each routing whose "
                         "memory fits too; seconds per step");
    printf("not timed: host<->device and NVMe traffic of the offload rungs; equal times "
           "keep the ladder's order (less offload first), then flat, hierarchical, hpz, "
           "hybrid\n");
    if (k > 0) {
        char what[96], routing[48];
        describe(&t[0].cfg, what, sizeof what);
        routing_text(routing, sizeof routing, &t[0].t);
        printf("fastest: #%d, %s, %s: %.4f s a step predicted\n", t[0].rung + 1, what,
               routing, t[0].t.step_s);
    }
    return 0;
}

int zr_run_fit(const zr_opts *o)
{
    question q;
    budgets b;
    zr_cluster cl;
    rung rungs[LADDER_MAX];
    int n = 0, chosen = -1;
    memset(&q, 0, sizeof q);
    q.world_size = o->world_size;
    if (check_fit_flags(o) || read_budgets(o, &b) || zr_read_cluster(o, &cl))
        return EXIT_BAD_INPUT;
    if (cl.given)
        q.world_size = cl.hosts * cl.ranks_per_host;
    if (zr_read_config(o, &q) || zr_read_model(o, &q) || build_ladder(&q, &b, rungs, &n))
        return EXIT_BAD_INPUT;
    for (int i = 0; i < n && chosen < 0; i++)
        chosen = rungs[i].fits ? i : -1;
    units u = zr_binary_units(o->unit ? o->unit : 'G', o->exact,
                              o->decimals < 0 ? 2 : o->decimals);
    print_fit_header(&q, &b, &u);
    if (print_ladder(rungs, n, chosen, &u))
        return EXIT_BAD_INPUT;
    if (chosen < 0) {
        print_nothing_fits(rungs, n, &b, &u);
        return EXIT_NOTHING_FITS;
    }
    print_choice(&rungs[chosen], chosen);
    return cl.given ? print_timed(&q, &b, &cl, rungs, n) : 0;
}
