/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-report/steptime.c — a step-time model for --estimate and --fit:
 * given a cluster (H hosts of R ranks, the bandwidth of a host's link to the
 * others and of a rank within its host, a compute rate per rank, a latency
 * per phase of a collective) and the model, the bytes each inter-host link
 * carries per step for each routing (flat and hierarchical collectives over
 * the world, hpZ, hybrid sharding), the time of those bytes and of the
 * compute, and the step time when communication overlaps compute.
 *
 * Bytes (per step, one micro-step; docs/design.md, "Traffic accounting"):
 * each rank sends V = m psi b, m = 2 at stages 0-2 (an all-reduce, or a
 * reduce-scatter and an all-gather) and 3 at stage 3 (a gather in forward,
 * one in backward, a reduce-scatter), psi parameters of b bytes; a GPT-2
 * preset adds at stage 3 its tied embedding's second forward gather (E b).
 * Of a rank's (N-1)/N V, flat sends (N-R)/N V to other hosts and (R-1)/N V
 * to its own; hierarchical (H-1)/N V and (N-H)/N V. A host's link carries
 * R ranks' share each way: flat R(H-1)/H V, hierarchical (H-1)/H V. hpZ
 * (groups of P) moves the backward gathers (and the tied embedding's second)
 * within its group; hybrid (shard groups of S, G = N/S of them) runs every
 * collective within its group and then all-reduces each rank's range (psi/S;
 * stage 0 psi) across the G replicas: each a "lane" below, a rank's bytes
 * split between its host and the others.
 *
 * Times: inter = link bytes / inter-bw (each way: a link is full duplex);
 * intra = a rank's own-host bytes / intra-bw. Flat collectives send to both
 * at once (one exchange), so comm = max(inter, intra); hierarchical ones run
 * their within-host and across-host phases one after the other, so comm =
 * inter + intra; each phase adds --latency (a flat collective has one, a
 * hierarchical one two, an all-reduce twice its collective's). Compute =
 * tokens x FLOPs a token / compute rate, one third forward, two thirds
 * backward.
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
 * starts: the gathers add to the step. Hybrid's replica all-reduce is waited
 * where it starts (zero/engine.c): it adds to the step. overlap_comm off:
 * compute + comm.
 *
 * That rule needs collectives that move while compute runs (NCCL's streams).
 * The mpi communicator on CPU has no progress thread (docs/design.md,
 * "Progress"): data moves inside its calls, at layer boundaries, and the
 * calibration on the namespace cluster (docs/zero-report.md) shows most of
 * it exposed; --comm-progress polled models that: compute + comm. phased
 * is between the two: a collective of one phase (a flat reduce-scatter or
 * gather) is moved by the transport once posted and overlaps as above; one
 * of chained phases (hierarchical, an all-reduce) starts each next phase only
 * inside the rank's next call, and adds to the step whole.
 *
 * qwZ (zero_quantized_weights, stage 3) and qgZ (zero_quantized_gradients):
 * the gathers, and the reductions (stage 0: the all-reduce's first half),
 * move each element as a code of 8 (or 4) bits and a 4-byte scale per block
 * instead of b bytes, whatever the routing; the padding and short blocks of
 * each shard (a few bytes a layer) and the time to quantize are left out.
 *
 * Top-k (gradient_topk_ratio r, stages 0-1): the reduction is an
 * all-gather of k = r n (index, value) pairs a layer, 8 r n bytes to each
 * peer, one phase (it overlaps at stage 0 too); stage 1's parameter
 * all-gather stays. The selection's time is left out.
 *
 * Invariants: no state; every time is in seconds; every byte count exact,
 * but quantized and top-k ones (above: ceil(r n) per layer is r n here).
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

/* "25ms", "30us", "2e-5", "1.5s": seconds, 0 or more. */
static int parse_seconds(const char *flag, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double scale = !strcmp(end, "us") ? 1e-6 : !strcmp(end, "ms") ? 1e-3 : 1;
    int unit_ok = !*end || !strcmp(end, "s") || scale != 1;
    if (errno || end == s || !unit_ok || !(v >= 0) || !isfinite(v))
        return zr_error("%s '%s': it must be a time of 0 or more: seconds (2e-5, 1.5s) "
                        "or with ms or us (25ms, 30us)",
                        flag, s);
    *out = v * scale;
    return 0;
}

/* A flag of the cluster, for the "needs" message. */
static int any_cluster_flag(const zr_opts *o)
{
    return o->hosts || o->ranks_per_host || o->intra_bw || o->inter_bw ||
           o->compute_rate || o->tokens || o->seq_len || o->progress || o->latency;
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
        (o->seq_len && zr_parse_whole("--seq-len", o->seq_len, 1, 1 << 24, &seq)) ||
        (o->latency && parse_seconds("--latency", o->latency, &c->latency)))
        return EXIT_BAD_INPUT;
    if (h * r > (1 << 24))
        return zr_error("--hosts %lld x --ranks-per-host %lld: %lld ranks, more than %d",
                        (long long)h, (long long)r, (long long)(h * r), 1 << 24);
    if (o->world_size && o->world_size != h * r)
        return zr_error("--world-size %d: --hosts %lld x --ranks-per-host %lld is %lld "
                        "ranks; give one or the other",
                        o->world_size, (long long)h, (long long)r, (long long)(h * r));
    if (o->progress && strcmp(o->progress, "async") && strcmp(o->progress, "polled") &&
        strcmp(o->progress, "phased"))
        return zr_error("--comm-progress '%s': it must be async (collectives move while "
                        "compute runs), polled (only inside the communicator's calls) or "
                        "phased (a collective's one phase moves while compute runs, "
                        "chained phases do not)",
                        o->progress);
    c->polled = o->progress && !strcmp(o->progress, "polled");
    c->phased = o->progress && !strcmp(o->progress, "phased");
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

const char *zr_routing_name(zr_routing r)
{
    static const char *const names[ZR_ROUTINGS] = {"flat", "hierarchical", "hpz",
                                                   "hybrid"};
    return names[r];
}

/* hpZ's partition P and hybrid's shard group S: the config's, else the ranks
 * of a host. */
static int group_of(const zrt_config *cfg, const zr_cluster *c, zr_routing r)
{
    int given = r == ZR_HPZ ? cfg->zero_hpz_partition_size : cfg->hybrid_shard_size;
    return given > 0 ? given : c->ranks_per_host;
}

int zr_routing_applies(const zrt_config *cfg, const zr_cluster *c, zr_routing r)
{
    int n = c->hosts * c->ranks_per_host, g = group_of(cfg, c, r);
    switch (r) {
    case ZR_FLAT:
        return 1;
    case ZR_HIERARCHICAL:
        return c->hosts >= 2 && c->ranks_per_host >= 2;
    case ZR_HPZ:
        return cfg->stage == 3 && g >= 2 && g < n && n % g == 0;
    default: /* ZR_HYBRID */
        return g >= 2 && g < n && n % g == 0;
    }
}

/* How one kind of collective lays a rank's bytes on the cluster: of the V
 * bytes it moves, the part to other hosts and to its own (exact fractions,
 * num / den), and whether its phases run one after the other. Hosts hold R
 * consecutive ranks; groups are aligned with them (K divides R or R
 * divides K). */
typedef struct lane {
    int64_t off, own, den;
    int hier;   /* within-host and across-host phases in turn: times add */
    int phases; /* a reduce-scatter's or a gather's; an all-reduce twice */
} lane;

/* Flat over the world: V/N to each of the N-R peers elsewhere and R-1 here. */
static lane world_flat(int64_t h, int64_t r)
{
    return (lane){h * r - r, r - 1, h * r, 0, 1};
}

/* Hierarchical (runtime/comm_mpi.c): (H-1)/N across, (N-H)/N within. */
static lane world_hierarchical(int64_t h, int64_t r)
{
    return (lane){h - 1, h * r - h, h * r, 1, 2};
}

/* Flat within a group of K consecutive ranks (hpZ's P, hybrid's S). */
static lane block_of(int64_t k, int64_t r)
{
    int64_t here = k < r ? k : r; /* members on this rank's host, itself too */
    return (lane){k - here, here - 1, k, 0, 1};
}

/* Flat over a replica set: every S-th rank, G = N/S members. */
static lane stride_of(int64_t s, int64_t g, int64_t r)
{
    int64_t here = s < r ? r / s : 1;
    return (lane){g - here, here - 1, g, 0, 1};
}

/* The lanes of one routing: gathers in forward (and stages 1-2's post-step
 * gathers), gathers in backward (and the tied embedding's second), and
 * reductions; hybrid's replica all-reduce besides. */
typedef struct routing_lanes {
    lane gather, back_gather, reduce, replica;
    int group, replicas; /* P or S; G (hybrid) */
} routing_lanes;

static routing_lanes lanes_of(const zrt_config *cfg, const zr_cluster *c, zr_routing r)
{
    int64_t h = c->hosts, k = c->ranks_per_host, n = h * k;
    routing_lanes l = {.group = 1, .replicas = 1};
    l.gather = l.back_gather = l.reduce =
        r == ZR_HIERARCHICAL ? world_hierarchical(h, k) : world_flat(h, k);
    if (r == ZR_HPZ) {
        l.group = group_of(cfg, c, r);
        l.back_gather = block_of(l.group, k);
    } else if (r == ZR_HYBRID) {
        l.group = group_of(cfg, c, r);
        l.replicas = (int)(n / l.group);
        l.gather = l.back_gather = l.reduce = block_of(l.group, k);
        l.replica = stride_of(l.group, l.replicas, k);
    }
    return l;
}

/* What one rank moves per step, by lane: bytes (V: what the collectives
 * move, of which the lane says how much leaves the host) and collectives. */
typedef struct volume {
    double bytes;
    int64_t collectives;
} volume;

typedef struct step_volumes {
    volume gather, back_gather, reduce, replica;
    int64_t first_bytes; /* layer 0: the first gathered, the last reduced */
    /* qwZ and qgZ: the bytes a gathered / reduced element moves, as a
     * fraction of its b (1: not quantized) */
    double gather_scale, reduce_scale;
    /* top-k (stages 0-1): the reduction is an all-gather of (index, value)
     * pairs, 8 r bytes an element to each of the N-1 peers, so a volume of
     * 8 r N an element; 0: no top-k */
    double topk_per_element;
} step_volumes;

/* What a quantized element moves against its b bytes: a code of bits / 8
 * bytes and a 4-byte scale per block (docs/compression.md; the padding and
 * short blocks per shard are left out: a few bytes a layer). */
static double quantized_scale(int bits, int block, int64_t b)
{
    return ((double)bits / 8.0 + 4.0 / (double)block) / (double)b;
}

/* The fractions for the config: qwZ quantizes stage 3's gathers (int8),
 * qgZ the reductions' first half (stage 0's all-reduce gathers in b). */
static void set_quantized_scales(const zrt_config *cfg, int64_t b, step_volumes *v)
{
    v->gather_scale = cfg->zero_quantized_weights && cfg->stage == 3
                          ? quantized_scale(8, cfg->zero_quantized_block_size, b)
                          : 1.0;
    v->reduce_scale = cfg->zero_quantized_gradients
                          ? quantized_scale(cfg->zero_quantized_gradient_bits,
                                            cfg->zero_quantized_block_size, b)
                          : 1.0;
}

/* The ZeRO paper's volumes (docs/design.md, "Traffic accounting"): stages
 * 0-2 2 psi b (stage 0 an all-reduce: twice a reduction's phases), stage 3
 * 3 psi b plus a GPT-2 preset's tied embedding gathered again by the head;
 * hybrid adds the all-reduce of a rank's range across its replicas (its shard,
 * psi/S; stage 0, all of psi). */
static step_volumes volumes_of(const question *q, const zrt_config *cfg,
                               const routing_lanes *l, int64_t world)
{
    int stage = cfg->stage;
    double b = (double)q->model.param_bytes, pass = (double)q->model.param_count * b;
    int64_t layers = q->model.nlayers > 0 ? q->model.nlayers : 1;
    step_volumes v = {.first_bytes = q->first_layer * q->model.param_bytes};
    set_quantized_scales(cfg, q->model.param_bytes, &v);
    double gs = v.gather_scale, rs = v.reduce_scale;
    v.reduce = (volume){rs * pass, layers};
    if (stage == 0)
        v.reduce = (volume){(rs + 1) * pass, 2 * layers};
    else
        v.gather = (volume){gs * pass, layers};
    if (stage < 2 && cfg->gradient_topk_ratio > 0) {
        v.topk_per_element = 8.0 * (double)cfg->gradient_topk_ratio * (double)world;
        v.reduce = (volume){v.topk_per_element * (double)q->model.param_count, layers};
    }
    if (stage == 3) {
        int tied = q->tied_embedding != 0;
        v.back_gather =
            (volume){gs * (pass + tied * (double)v.first_bytes), layers + tied};
    }
    if (l->replicas > 1)
        v.replica = (volume){2 * (stage == 0 ? pass : pass / l->group), 2 * layers};
    return v;
}

/* floor(v * num / den) without overflow */
static int64_t share_of(int64_t v, int64_t num, int64_t den)
{
    return (int64_t)((__int128)v * num / den);
}

static double dmax(double a, double b)
{
    return a > b ? a : b;
}

/* Seconds of `bytes` on a lane over `collectives` collectives: a host's
 * link carries R ranks' share, a rank its own within the host; flat
 * collectives use both at once, hierarchical ones in turn; each phase costs
 * the latency besides. */
static double lane_seconds(const zr_cluster *c, const lane *l, double bytes,
                           double collectives)
{
    if (l->den == 0 || bytes == 0)
        return 0;
    double inter = bytes * (double)c->ranks_per_host * (double)l->off / (double)l->den /
                   c->inter_bw,
           intra = bytes * (double)l->own / (double)l->den / c->intra_bw;
    return (l->hier ? inter + intra : dmax(inter, intra)) +
           collectives * l->phases * c->latency;
}

/* --comm-progress phased: a collective of one phase moves beside compute
 * once posted; one of several (hierarchical, an all-reduce) starts its next
 * phase only inside the rank's next call, so none of it is hidden. */
static int chained(const zr_cluster *c, const lane *l, int all_reduce)
{
    return c->phased && (l->hier || all_reduce);
}

/* The last reduction's bytes (layer 0's, e of them in f32): quantized,
 * stage 0's all-reduce half quantized, or top-k's pairs. */
static double last_reduction_bytes(const step_volumes *v, int stage)
{
    double e = (double)v->first_bytes;
    if (v->topk_per_element > 0) /* f32: top-k refuses 16-bit parameters */
        return v->topk_per_element * e / (double)sizeof(float);
    return stage == 0 ? (v->reduce_scale + 1) * e : v->reduce_scale * e;
}

/* The overlap rule (overlap_comm on, async or phased progress): the step of
 * compute `comp` with what each phase starts running beside it. Hybrid's
 * replica all-reduce is waited where it starts: nothing hides it. */
static double overlapped_step(const question *q, const zrt_config *cfg,
                              const zr_cluster *c, const routing_lanes *l,
                              const step_volumes *v, double comp)
{
    double F = comp / 3, B = 2 * comp / 3, e = (double)v->first_bytes;
    int stage = cfg->stage;
    double gather = lane_seconds(c, &l->gather, v->gather.bytes, v->gather.collectives),
           back = lane_seconds(c, &l->back_gather, v->back_gather.bytes,
                               v->back_gather.collectives),
           red = lane_seconds(c, &l->reduce, v->reduce.bytes, v->reduce.collectives),
           exposed =
               lane_seconds(c, &l->replica, v->replica.bytes, v->replica.collectives);
    /* stage 3: the tied embedding's second gather is in forward, the other
     * backward gathers in backward; head: the first layer's gather, tail the
     * last reduction (layer 0; stage 0 an all-reduce) */
    double ge = v->gather_scale * e;
    double tied = stage == 3 && q->tied_embedding
                      ? lane_seconds(c, &l->back_gather, ge, 1)
                      : 0,
           head = stage == 0 ? 0 : lane_seconds(c, &l->gather, stage == 3 ? ge : e, 1),
           tail = lane_seconds(c, &l->reduce, last_reduction_bytes(v, stage), 1);
    if (stage == 3 && cfg->stage3_prefetch_bucket_size == 0) { /* each gather waited
                                                                  at once */
        exposed += gather + back;
        gather = back = tied = head = 0;
    }
    if (chained(c, &l->gather, 0))
        exposed += gather, gather = head = 0;
    if (chained(c, &l->back_gather, 0))
        exposed += back, back = tied = 0;
    if (chained(c, &l->reduce, stage == 0 && v->topk_per_element == 0))
        exposed += red, red = tail = 0;
    double fwd = gather + tied, bwd = red + back - tied;
    return exposed + head + dmax(F, fwd - head) + dmax(B, bwd - tail) + tail;
}

/* Bytes of one lane: a host's link, each way, and a rank to its own host;
 * the floor of each exact fraction, as the reports' comm.theory. */
static void add_lane_bytes(zr_step_time *out, const zr_cluster *c, const lane *l,
                           double bytes)
{
    if (l->den == 0 || bytes == 0)
        return;
    int64_t v = (int64_t)llround(bytes);
    out->link_bytes += share_of(v, c->ranks_per_host * l->off, l->den);
    out->intra_bytes += share_of(v, l->own, l->den);
}

int zr_step_time_of(const question *q, const zrt_config *cfg, const zr_cluster *c,
                    zr_routing routing, zr_step_time *out)
{
    memset(out, 0, sizeof *out);
    int64_t n = (int64_t)c->hosts * c->ranks_per_host;
    if (!zr_routing_applies(cfg, c, routing))
        routing = ZR_FLAT; /* one level, or no group: the routing is flat */
    routing_lanes l = lanes_of(cfg, c, routing);
    step_volumes v = volumes_of(q, cfg, &l, n);
    out->stage = cfg->stage;
    out->routing = routing;
    out->group = l.group;
    out->compute_s = (double)c->tokens * zr_flops_per_token(q, c) / c->compute_rate;
    if (n == 1) {
        out->step_s = out->compute_s;
        return 0;
    }
    const lane *lanes[] = {&l.gather, &l.back_gather, &l.reduce, &l.replica};
    const volume *vols[] = {&v.gather, &v.back_gather, &v.reduce, &v.replica};
    int same_as_reduce[] = {1, 1, 0, 0}; /* lanes equal to the reduction's: one sum */
    double merged = v.reduce.bytes;
    for (int i = 0; i < 2; i++) {
        same_as_reduce[i] = !memcmp(lanes[i], &l.reduce, sizeof l.reduce);
        merged += same_as_reduce[i] ? vols[i]->bytes : 0;
    }
    add_lane_bytes(out, c, &l.reduce, merged);
    for (int i = 0; i < 4; i++) {
        if (i != 2 && !(i < 2 && same_as_reduce[i]))
            add_lane_bytes(out, c, lanes[i], vols[i]->bytes);
        const lane *ln = lanes[i];
        if (ln->den == 0)
            continue;
        out->inter_s += vols[i]->bytes * (double)c->ranks_per_host * (double)ln->off /
                        (double)ln->den / c->inter_bw;
        out->intra_s += vols[i]->bytes * (double)ln->own / (double)ln->den / c->intra_bw;
        out->comm_s += lane_seconds(c, ln, vols[i]->bytes, (double)vols[i]->collectives);
    }
    if (!cfg->overlap_comm || c->polled)
        out->step_s = out->compute_s + out->comm_s;
    else
        out->step_s = overlapped_step(q, cfg, c, &l, &v, out->compute_s);
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
    if (c->latency > 0)
        printf("latency: %.4g s a phase of a collective\n", c->latency);
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
    if (q->cfg.zero_quantized_weights || q->cfg.zero_quantized_gradients)
        printf("quantized (%s%s%s): a gathered / reduced element moves bits/8 + 4/B "
               "bytes instead of b (B = %d elements a scale; stage 0's all-reduce "
               "gathers its reduced blocks in b), the per-shard padding and the time to "
               "quantize left out\n",
               q->cfg.zero_quantized_weights ? "qwZ, stage 3 gathers int8" : "",
               q->cfg.zero_quantized_weights && q->cfg.zero_quantized_gradients ? "; "
                                                                                : "",
               q->cfg.zero_quantized_gradients
                   ? (q->cfg.zero_quantized_gradient_bits == 4 ? "qgZ, reductions int4"
                                                               : "qgZ, reductions int8")
                   : "",
               q->cfg.zero_quantized_block_size);
    if (q->cfg.gradient_topk_ratio > 0 && q->cfg.stage < 2)
        printf("top-k (ratio r = %g): the reduction is an all-gather of r psi (index, "
               "value) pairs, 8 r psi bytes to each peer (a volume of 8 r N psi), one "
               "phase; stage 1's parameter all-gather stays; the selection's time is "
               "left out\n",
               (double)q->cfg.gradient_topk_ratio);
    printf("hpz (stage 3, groups of P): the forward gathers and the reductions flat "
           "over the world, the backward gathers%s within the group; hybrid (shard "
           "groups of S, G = N/S replicas): the collectives flat within the group, then "
           "each rank's range (psi/S; stage 0 psi) all-reduced across its G replicas "
           "(2 (G-1)/G of it), waited where it starts; groups of consecutive ranks, "
           "aligned with the hosts\n",
           q->tied_embedding ? " and the tied embedding's second" : "");
    printf("comm: flat max(inter, intra) (one exchange on both paths at once), "
           "hierarchical inter + intra (its phases run one after the other)%s\n",
           c->latency > 0 ? "; plus --latency for each phase (a flat collective 1, a "
                            "hierarchical one 2, an all-reduce twice its collective)"
                          : "");
    if (c->polled)
        printf(
            "step: --comm-progress polled: compute + comm (collectives move only inside "
            "the communicator's calls, so none runs beside compute; an upper bound: "
            "socket buffers let part of it through between calls)\n");
    else if (c->phased && q->cfg.overlap_comm)
        printf("step: --comm-progress phased: the overlap rule below for collectives of "
               "one phase (flat reduce-scatters and gathers, moved by the transport "
               "once posted); those of chained phases (hierarchical ones, a stage-0 "
               "all-reduce) add to the step whole: each next phase starts only inside "
               "the rank's next call\n");
    if (!c->polled && q->cfg.overlap_comm)
        printf(
            "%s: overlap_comm on: head + max(forward, comm started in forward - "
            "head) + max(backward, comm started in backward - tail) + tail; forward "
            "1/3 of compute, backward 2/3; head, tail: the first layer's gather and the "
            "last reduction (layer 0), nothing hides them%s\n",
            c->phased ? "overlap rule" : "step",
            q->cfg.stage3_prefetch_bucket_size == 0
                ? "; stage 3 without prefetch: every gather is waited as it starts"
                : "");
    else if (!c->polled)
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
    int rows = 0;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < ZR_ROUTINGS; r++)
            rows += zr_routing_applies(&cfgs[i], c, (zr_routing)r);
    table tb;
    if (zr_table_init(&tb, 1 + rows, ST_COLS))
        return EXIT_BAD_INPUT;
    tb.align = "llrrrrrrrr";
    for (int k = 0; k < ST_COLS; k++)
        zr_set_cell(&tb, 0, k, "%s", st_columns[k]);
    int row = 1;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < ZR_ROUTINGS; r++) {
            if (!zr_routing_applies(&cfgs[i], c, (zr_routing)r))
                continue;
            zr_step_time s;
            zr_step_time_of(q, &cfgs[i], c, (zr_routing)r, &s);
            zr_set_cell(&tb, row, 0, "%d", cfgs[i].stage);
            zr_set_cell(&tb, row, 1, "%s", zr_routing_name(s.routing));
            zr_fill_step_row(&tb, row++, 2, &s);
        }
    zr_print_timed_table(q, c, &tb, "step time: per rank, per step; seconds");
    int p = group_of(&cfgs[0], c, ZR_HPZ), s = group_of(&cfgs[0], c, ZR_HYBRID);
    printf("hpz rows: P = %d, hybrid rows: S = %d (the config's, else the ranks of a "
           "host); the memory tables above are the config's as given: set "
           "zero_hpz_partition_size or hybrid_shard_size in --config to see theirs\n",
           p, s);
    return 0;
}
