/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-report/steptime.c — a step-time model for --estimate and --fit:
 * given a cluster (H hosts of R ranks, the bandwidth of a host's link to the
 * others and of a rank within its host, a compute rate per rank) and the
 * model, the bytes each inter-host link carries per step for flat and
 * hierarchical collectives, the time of those bytes and of the compute, and
 * the step time when communication overlaps compute.
 *
 * Bytes (per step, one micro-step; docs/design.md, "Traffic accounting"):
 * each rank sends V = m psi b, m = 2 at stages 0-2 (an all-reduce, or a
 * reduce-scatter and an all-gather) and 3 at stage 3 (a gather in forward,
 * one in backward, a reduce-scatter), psi parameters of b bytes; a GPT-2
 * preset adds at stage 3 its tied embedding's second forward gather (E b).
 * Of a rank's (N-1)/N V, flat sends (N-R)/N V to other hosts and (R-1)/N V
 * to its own; hierarchical (H-1)/N V and (N-H)/N V. A host's link carries
 * R ranks' share each way: flat R(H-1)/H V, hierarchical (H-1)/H V.
 *
 * Times: inter = link bytes / inter-bw (each way: a link is full duplex);
 * intra = a rank's own-host bytes / intra-bw. Flat collectives send to both
 * at once (one exchange), so comm = max(inter, intra); hierarchical ones run
 * their within-host and across-host phases one after the other, so comm =
 * inter + intra. Compute = tokens x FLOPs a token / compute rate, one third
 * forward, two thirds backward.
 *
 * Overlap (overlap_comm on): what a phase starts runs beside that phase's
 * compute, and the phase waits for it at its end:
 *   step = head + max(F, c_fwd - head) + max(B, c_bwd - tail) + tail
 * c_fwd: the comm started for the forward (stages 1-2: the post-step
 * all-gathers, waited as each layer is entered; stage 3: the forward
 * gathers), c_bwd the rest (the reductions, stage 3's backward gathers).
 * head: the first layer's gather has nothing before it to hide behind;
 * tail: the last layer's reduction (layer 0) nothing after it. Stage 3
 * without prefetch (stage3_prefetch_bucket_size 0) waits each gather as it
 * starts: the gathers add to the step. overlap_comm off: compute + comm.
 *
 * That rule needs collectives that move while compute runs (NCCL's streams).
 * The mpi communicator on CPU has no progress thread (docs/design.md,
 * "Progress"): data moves inside its calls, at layer boundaries, and the
 * calibration on the namespace cluster (docs/zero-report.md) shows most of
 * it exposed; --comm-progress polled models that: compute + comm.
 *
 * Invariants: no state; every time is in seconds, every byte count exact.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "zero_report.h"

/* ---- the cluster flags ----------------------------------------------------- */

/* "1gbit", "400Gbit/s", "10GB/s", "450e9", "25GiB/s": bytes per second.
 * Bits need "bit" spelled out (powers of 1000, / 8); bytes are a bare number
 * or B with K, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (of 1024); "/s"
 * is optional. A lone lowercase b ("10gb") is refused: bits or bytes? */
static int parse_rate(const char *flag, const char *s, double *out)
{
    static const char prefixes[] = "kmgt";
    char *end;
    errno = 0;
    double v = strtod(s, &end), scale = 1;
    const char *p = end, *hit = *p ? strchr(prefixes, tolower((unsigned char)*p)) : NULL;
    int bits = 0, ok = 1;
    if (hit) {
        int binary = p[1] == 'i';
        scale = pow(binary ? 1024 : 1000, (double)(hit - prefixes + 1));
        p += 1 + binary;
        if (!binary && !strncasecmp(p, "bit", 3))
            bits = 1, p += 3;
        else if (*p == 'B')
            p++;
        else
            ok = 0; /* "10G", "10gb": bits or bytes? */
    } else if (!strncasecmp(p, "bit", 3)) {
        bits = 1, p += 3;
    } else if (*p == 'B') {
        p++;
    }
    if (!strcmp(p, "/s"))
        p += 2;
    if (!ok || errno || end == s || *p || !(v > 0) || !isfinite(v))
        return zr_error("%s '%s': it must be a rate above 0 in bytes per second: bits "
                        "with 'bit' (1gbit, 400Gbit/s: powers of 1000, divided by 8) or "
                        "bytes with 'B' (10GB/s, 25GiB/s) or none (450e9)",
                        flag, s);
    *out = v * scale / (bits ? 8 : 1);
    return 0;
}

/* "2.5e9", "50T", "989TFLOPS", "1.2 GFLOP/s": FLOP per second. */
static int parse_flops(const char *flag, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    const char *p = end;
    static const char prefixes[] = "kmgtp";
    const char *hit = *p ? strchr(prefixes, tolower((unsigned char)*p)) : NULL;
    if (hit)
        v *= pow(1000, (double)(hit - prefixes + 1)), p++;
    if (!strcasecmp(p, "flops") || !strcasecmp(p, "flop/s"))
        p += strlen(p);
    if (errno || end == s || *p || !(v > 0) || !isfinite(v))
        return zr_error("%s '%s': it must be FLOP per second above 0 (2.5e9, 50T, "
                        "989TFLOPS: K, M, G, T, P in powers of 1000)",
                        flag, s);
    *out = v;
    return 0;
}

/* A flag of the cluster, for the "needs" message. */
static int any_cluster_flag(const zr_opts *o)
{
    return o->hosts || o->ranks_per_host || o->intra_bw || o->inter_bw ||
           o->compute_rate || o->tokens || o->seq_len || o->progress;
}

int zr_read_cluster(const zr_opts *o, zr_cluster *c)
{
    memset(c, 0, sizeof *c);
    if (!any_cluster_flag(o))
        return 0;
    const char *missing = !o->hosts            ? "--hosts H"
                          : !o->ranks_per_host ? "--ranks-per-host R"
                          : !o->inter_bw       ? "--inter-bw RATE"
                          : !o->intra_bw       ? "--intra-bw RATE"
                          : !o->compute_rate   ? "--compute-rate FLOPS"
                          : !o->tokens         ? "--tokens-per-step N"
                                               : NULL;
    if (missing)
        return zr_error("the step-time model needs the whole cluster: %s is missing "
                        "(--hosts, --ranks-per-host, --inter-bw, --intra-bw, "
                        "--compute-rate, --tokens-per-step)",
                        missing);
    int64_t h, r, tokens, seq = 0;
    if (zr_parse_whole("--hosts", o->hosts, 1, 1 << 20, &h) ||
        zr_parse_whole("--ranks-per-host", o->ranks_per_host, 1, 1 << 12, &r) ||
        parse_rate("--inter-bw", o->inter_bw, &c->inter_bw) ||
        parse_rate("--intra-bw", o->intra_bw, &c->intra_bw) ||
        parse_flops("--compute-rate", o->compute_rate, &c->compute_rate) ||
        zr_parse_whole("--tokens-per-step", o->tokens, 1, (int64_t)1 << 40, &tokens) ||
        (o->seq_len && zr_parse_whole("--seq-len", o->seq_len, 1, 1 << 24, &seq)))
        return EXIT_BAD_INPUT;
    if (h * r > (1 << 24))
        return zr_error("--hosts %lld x --ranks-per-host %lld: %lld ranks, more than %d",
                        (long long)h, (long long)r, (long long)(h * r), 1 << 24);
    if (o->world_size && o->world_size != h * r)
        return zr_error("--world-size %d: --hosts %lld x --ranks-per-host %lld is %lld "
                        "ranks; give one or the other",
                        o->world_size, (long long)h, (long long)r, (long long)(h * r));
    if (o->progress && strcmp(o->progress, "async") && strcmp(o->progress, "polled"))
        return zr_error("--comm-progress '%s': it must be async (collectives move while "
                        "compute runs) or polled (only inside the communicator's calls)",
                        o->progress);
    c->polled = o->progress && !strcmp(o->progress, "polled");
    c->given = 1;
    c->hosts = (int)h;
    c->ranks_per_host = (int)r;
    c->tokens = tokens;
    c->seq_len = seq;
    return 0;
}

/* ---- the model ----------------------------------------------------------- */

/* FLOPs of one token in training: 6 psi (a multiply-add per parameter,
 * forward once and backward twice) plus attention, 12 L T C (PaLM, Chowdhery
 * et al. 2022, appendix B; nanoGPT's estimate_mfu), for a model whose shape
 * is known (a GPT-2 preset); 6 psi alone otherwise. T: --seq-len, else the
 * preset's context. */
double zr_flops_per_token(const question *q, const zr_cluster *c)
{
    double f = 6.0 * (double)q->model.param_count;
    if (q->blocks > 0) {
        int64_t t = c->seq_len ? c->seq_len : q->context;
        f += 12.0 * (double)q->blocks * (double)t * (double)q->channels;
    }
    return f;
}

/* Bytes one rank's collectives move per step at this stage: m psi b, plus the
 * tied embedding's second gather at stage 3. */
static int64_t rank_volume(const question *q, int stage)
{
    int64_t b = q->model.param_bytes, psi = q->model.param_count;
    int64_t v = (stage == 3 ? 3 : 2) * psi * b;
    if (stage == 3 && q->tied_embedding)
        v += q->first_layer * b;
    return v;
}

/* One collective pattern's time: V bytes a rank moves of a buffer the
 * ranks share, as the routing splits it between the host link and the host. */
static void split_times(const zr_cluster *c, int hier, double v, double *inter,
                        double *intra)
{
    double n = (double)c->hosts * c->ranks_per_host, h = c->hosts, r = c->ranks_per_host;
    double link = hier ? v * (h - 1) / h : v * r * (h - 1) / h;
    double own = hier ? v * (n - h) / n : v * (r - 1) / n;
    *inter = link / c->inter_bw;
    *intra = own / c->intra_bw;
}

static double comm_seconds(const zr_cluster *c, int hier, double v)
{
    double inter, intra;
    split_times(c, hier, v, &inter, &intra);
    return hier ? inter + intra : (inter > intra ? inter : intra);
}

static double dmax(double a, double b)
{
    return a > b ? a : b;
}

/* The overlap rule (overlap_comm on, async progress): the step of compute
 * `comp` with what each phase starts running beside it. */
static double overlapped_step(const question *q, const zrt_config *cfg,
                              const zr_cluster *c, int hier, double comp)
{
    double F = comp / 3, B = 2 * comp / 3, b = q->model.param_bytes;
    double first = comm_seconds(c, hier, (double)q->first_layer * b);
    double pass = comm_seconds(c, hier, (double)q->model.param_count * b); /* psi once */
    double head = first, tail = first, fwd = pass, bwd = pass, exposed = 0;
    if (cfg->stage == 0) { /* the all-reduce, started in backward */
        fwd = head = 0;
        bwd = 2 * pass;
        tail = 2 * first;
    } else if (cfg->stage == 3) { /* gathers in forward (and the tied embedding's
                                     second), gathers and reductions in backward */
        fwd = pass + (q->tied_embedding ? first : 0);
        bwd = 2 * pass;
        if (cfg->stage3_prefetch_bucket_size == 0) { /* each gather waited at once */
            exposed = fwd + pass;
            fwd = head = 0;
            bwd = pass;
        }
    } /* stages 1-2: reductions in backward, the post-step gathers in forward */
    return exposed + head + dmax(F, fwd - head) + dmax(B, bwd - tail) + tail;
}

/* floor(v * num / den) without overflow */
static int64_t share_of(int64_t v, int64_t num, int64_t den)
{
    return (int64_t)((__int128)v * num / den);
}

int zr_step_time_of(const question *q, const zrt_config *cfg, const zr_cluster *c,
                    int hier, zr_step_time *out)
{
    memset(out, 0, sizeof *out);
    int64_t h = c->hosts, r = c->ranks_per_host, n = h * r;
    hier = hier && h >= 2 && r >= 2; /* one level: the routing is flat */
    out->stage = cfg->stage;
    out->hierarchical = hier;
    int64_t v = n > 1 ? rank_volume(q, cfg->stage) : 0;
    /* the floor of each exact fraction, as the reports' comm.theory */
    out->link_bytes = hier ? share_of(v, h - 1, h) : share_of(v, r * (h - 1), h);
    out->intra_bytes = hier ? share_of(v, n - h, n) : share_of(v, r - 1, n);
    split_times(c, hier, (double)v, &out->inter_s, &out->intra_s);
    out->comm_s = n > 1 ? comm_seconds(c, hier, (double)v) : 0;
    out->compute_s = (double)c->tokens * zr_flops_per_token(q, c) / c->compute_rate;
    if (n == 1 || !cfg->overlap_comm || c->polled)
        out->step_s = out->compute_s + out->comm_s;
    else
        out->step_s = overlapped_step(q, cfg, c, hier, out->compute_s);
    out->exposed_s = out->step_s - out->compute_s;
    return 0;
}

/* ---- the output ---------------------------------------------------------- */

/* "125 MB/s (1 Gbit/s)" */
static void rate_text(char *buf, size_t size, double bytes_per_s)
{
    static const char *const byte_units[] = {"B/s", "KB/s", "MB/s", "GB/s", "TB/s"};
    static const char *const bit_units[] = {"bit/s", "Kbit/s", "Mbit/s", "Gbit/s",
                                            "Tbit/s"};
    int i = 0, j = 0;
    double v = bytes_per_s, w = bytes_per_s * 8;
    while (v >= 1000 && i < 4)
        v /= 1000, i++;
    while (w >= 1000 && j < 4)
        w /= 1000, j++;
    snprintf(buf, size, "%.4g %s (%.4g %s)", v, byte_units[i], w, bit_units[j]);
}

void zr_print_cluster(const question *q, const zr_cluster *c)
{
    char a[64], b[64], t[32];
    rate_text(a, sizeof a, c->inter_bw);
    rate_text(b, sizeof b, c->intra_bw);
    printf("cluster: %d host%s x %d rank%s = %d ranks; inter-host %s per host link, "
           "each way; intra-host %s per rank\n",
           c->hosts, c->hosts == 1 ? "" : "s", c->ranks_per_host,
           c->ranks_per_host == 1 ? "" : "s", c->hosts * c->ranks_per_host, a, b);
    double fpt = zr_flops_per_token(q, c);
    if (q->blocks > 0)
        printf("compute: %.4g FLOP/s per rank; %s tokens per rank per step x %.4g FLOP a "
               "token (6 x params + 12 x layers %lld x seq-len %lld x channels %lld)\n",
               c->compute_rate, zr_grouped(t, sizeof t, c->tokens), fpt,
               (long long)q->blocks, (long long)(c->seq_len ? c->seq_len : q->context),
               (long long)q->channels);
    else
        printf("compute: %.4g FLOP/s per rank; %s tokens per rank per step x %.4g FLOP a "
               "token (6 x params; attention not counted: the model's shape is not "
               "known without --preset)\n",
               c->compute_rate, zr_grouped(t, sizeof t, c->tokens), fpt);
}

void zr_print_steptime_notes(const question *q, const zr_cluster *c)
{
    printf(
        "link bytes: one host's link, each way, per step: flat R(H-1)/H, hierarchical "
        "(H-1)/H of m psi b (m = 2 at stages 0-2, 3 at stage 3; psi b = %lld bytes%s); "
        "intra: one rank's bytes to its own host, flat (R-1)/N, hierarchical (N-H)/N "
        "of it\n",
        (long long)(q->model.param_count * q->model.param_bytes),
        q->tied_embedding ? "; stage 3 adds the tied embedding's second gather" : "");
    printf("comm: flat max(inter, intra) (one exchange on both paths at once), "
           "hierarchical inter + intra (its phases run one after the other)\n");
    if (c->polled)
        printf(
            "step: --comm-progress polled: compute + comm (collectives move only inside "
            "the communicator's calls, so none runs beside compute; an upper bound: "
            "socket buffers let part of it through between calls)\n");
    else if (q->cfg.overlap_comm)
        printf(
            "step: overlap_comm on: head + max(forward, comm started in forward - "
            "head) + max(backward, comm started in backward - tail) + tail; forward "
            "1/3 of compute, backward 2/3; head, tail: the first layer's gather and the "
            "last reduction (layer 0), nothing hides them%s\n",
            q->cfg.stage3_prefetch_bucket_size == 0
                ? "; stage 3 without prefetch: every gather is waited as it starts"
                : "");
    else
        printf("step: overlap_comm off: compute + comm\n");
    if (c->hosts < 2 || c->ranks_per_host < 2)
        printf("hierarchical: one level here (a host, or a rank a host): the routing is "
               "flat\n");
}

void zr_print_timed_table(const question *q, const zr_cluster *c, table *tb,
                          const char *title)
{
    printf("\n%s\n", title);
    zr_print_cluster(q, c);
    printf("\n");
    zr_table_print(tb, 0);
    zr_table_free(tb);
    printf("\n");
    zr_print_steptime_notes(q, c);
}

static const char *const st_columns[] = {
    "stage",   "routing", "link bytes/step", "intra bytes/rank", "inter s",
    "intra s", "comm s",  "compute s",       "step s",           "exposed comm s"};
enum { ST_COLS = sizeof st_columns / sizeof st_columns[0] };

void zr_fill_step_row(table *tb, int row, int col, const zr_step_time *s)
{
    zr_set_cell(tb, row, col + 0, "%lld", (long long)s->link_bytes);
    zr_set_cell(tb, row, col + 1, "%lld", (long long)s->intra_bytes);
    zr_set_cell(tb, row, col + 2, "%.4f", s->inter_s);
    zr_set_cell(tb, row, col + 3, "%.4f", s->intra_s);
    zr_set_cell(tb, row, col + 4, "%.4f", s->comm_s);
    zr_set_cell(tb, row, col + 5, "%.4f", s->compute_s);
    zr_set_cell(tb, row, col + 6, "%.4f", s->step_s);
    zr_set_cell(tb, row, col + 7, "%.4f", s->exposed_s);
}

int zr_print_step_times(const question *q, const zrt_config *cfgs, int n,
                        const zr_cluster *c)
{
    int routings = c->hosts >= 2 && c->ranks_per_host >= 2 ? 2 : 1;
    table tb;
    if (zr_table_init(&tb, 1 + n * routings, ST_COLS))
        return EXIT_BAD_INPUT;
    tb.align = "llrrrrrrrr";
    for (int k = 0; k < ST_COLS; k++)
        zr_set_cell(&tb, 0, k, "%s", st_columns[k]);
    for (int i = 0; i < n; i++)
        for (int hier = 0; hier < routings; hier++) {
            zr_step_time s;
            int row = 1 + i * routings + hier;
            zr_step_time_of(q, &cfgs[i], c, hier, &s);
            zr_set_cell(&tb, row, 0, "%d", cfgs[i].stage);
            zr_set_cell(&tb, row, 1, "%s", hier ? "hierarchical" : "flat");
            zr_fill_step_row(&tb, row, 2, &s);
        }
    zr_print_timed_table(q, c, &tb, "step time: per rank, per step; seconds");
    return 0;
}
