/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/zero-report/zero_report.h — what the files of zero-report share:
 * byte formatting, the aligned table, a list of lines, the reports as read,
 * the command-line options and each mode's entry point.
 *
 *   zero_report.c  command line, usage, main
 *   text.c         errors, numbers, the table, lists of lines
 *   reports.c      finding and reading the per-rank JSON reports
 *   timeline.c     a report's "timeline": bytes held over one step
 *   compare.c      the report table, peak phases, OVER PLAN and OFF PLAN
 *   html.c         --html: the table and a stacked-area SVG per rank
 *   estimate.c     --estimate, and the model and config both it and --fit read
 *   fit.c          --fit: the ladder of configurations against budgets
 *   steptime.c     the step-time model: bytes per host link, comm and
 *                  compute time, overlap (--estimate and --fit with a cluster)
 *
 * Every function that can fail prints one line naming the file, the key or
 * the flag (zr_error) and returns EXIT_BAD_INPUT; nothing is global.
 */
#ifndef ZERO_REPORT_H
#define ZERO_REPORT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "zrt/zrt.h"

enum { EXIT_OVER_PLAN = 1, EXIT_NOTHING_FITS = 1, EXIT_BAD_INPUT = 2 };
enum { CELL = 48, NO_PLAN = -1, PHASE_LEN = 48 };

/* Prints "zero-report: <message>" on stderr; returns EXIT_BAD_INPUT. */
__attribute__((format(printf, 1, 2))) int zr_error(const char *fmt, ...);

/* ---- numbers ------------------------------------------------------------- */

/* How bytes are written: exact integers, or in units of `unit` bytes. */
typedef struct units {
    int exact;
    int decimals;
    int64_t unit;     /* 1e9, 2^30, ... */
    const char *name; /* "GB", "GiB", "bytes", ... */
} units;

void zr_format_units(char *buf, size_t size, int64_t bytes, const units *u);
/* Binary units: K, M or G; exact integers with `exact`. */
units zr_binary_units(char unit, int exact, int decimals);
/* 1234567 -> "1,234,567"; returns buf. */
const char *zr_grouped(char *buf, size_t size, int64_t n);

/* ---- the table: cells formatted first, then printed in aligned columns --- */

typedef struct table {
    int rows, cols;
    char (*cell)[CELL]; /* rows * cols */
    int *width;
    const char *align; /* NULL, or 'l' / 'r' per column (overrides `left`) */
} table;

int zr_table_init(table *t, int rows, int cols);
void zr_table_free(table *t);
char *zr_cell(table *t, int row, int col);
const char *zr_cell_at(const table *t, int row, int col);
__attribute__((format(printf, 4, 5))) void zr_set_cell(table *t, int row, int col,
                                                       const char *fmt, ...);
/* The first `left` columns are left-aligned (labels), the rest right,
 * unless t->align says otherwise. */
void zr_table_print(table *t, int left);

/* ---- a growing list of lines (headers, notes, checks) -------------------- */

typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

__attribute__((format(printf, 2, 3))) int zr_add_line(strlist *l, const char *fmt, ...);
void zr_strlist_free(strlist *l);

/* ==== reports ============================================================= */

/* One event of a timeline: [step, phase, layer, tier, category, bytes]. */
typedef struct tl_event {
    int step, phase, layer, tier, cat;
    int64_t delta;
} tl_event;

/* A report's "timeline": the first steps' charges and releases, in order.
 * Names are the report's own legends; events index into them. */
typedef struct timeline {
    int present;
    int steps;
    int64_t dropped;
    int nphases, ntiers, ncats;
    char **phases, **tiers, **cats;
    int nevents;
    tl_event *events;
} timeline;

typedef struct report {
    char *path;
    int rank, world_size, stage;
    int pipeline_stages, data_parallel_size; /* 1 and world_size: no pipeline */
    int64_t param_count;
    int64_t steps;                 /* -1: not in the report */
    int64_t limit[ZRT_TIER_COUNT]; /* 0: no budget */
    int64_t peak[ZRT_TIER_COUNT][ZRT_CAT_COUNT];
    int64_t tier_peak[ZRT_TIER_COUNT];
    char peak_phase[ZRT_TIER_COUNT][PHASE_LEN]; /* "": not in the report */
    long peak_step[ZRT_TIER_COUNT];
    int has_plan;
    char plan_step[32]; /* "declared", "default", or "" when not given */
    char *plan_error;   /* the report's "plan_error", or NULL */
    int64_t plan[ZRT_TIER_COUNT][ZRT_CAT_COUNT]; /* NO_PLAN: not planned */
    int64_t plan_tier[ZRT_TIER_COUNT];
    char plan_phase[ZRT_TIER_COUNT][PHASE_LEN];
    long plan_phase_step[ZRT_TIER_COUNT];
    timeline tl; /* read only when asked (--html) */
    /* "comm" (optional): bytes sent per optimizer step, by peer class */
    int has_comm;
    int comm_steps;         /* steps recorded */
    int64_t comm_theory[2]; /* model states: same host, other hosts */
    int64_t comm_sent[2];   /* the same, the largest recorded step */
    int64_t comm_other;     /* other collectives, the largest step */
    int comm_uneven;        /* the recorded steps' model-state bytes differ */
} report;

/* Files named by the arguments: reports, directories, glob patterns; one
 * path a line (free with zr_strlist_free). */
typedef strlist paths;

int zr_collect(paths *p, char **args, int nargs);
/* Reads and checks one report; with_timeline also reads "timeline". */
int zr_read_report(const char *path, int with_timeline, report *r);
void zr_report_free(report *r);
/* Sorts by rank; one world size and stage, no rank twice. */
int zr_check_run(report *r, int n);

/* ---- timeline.c ---------------------------------------------------------- */

/* Reads doc["timeline"] when present (tl->present stays 0 when not). */
int zr_read_timeline(const char *file, json_t *doc, timeline *tl);
void zr_timeline_free(timeline *tl);

/* The index of `tier` in 'timeline.tiers', or -1 when the timeline does not
 * name it (a report may record some tiers only). */
int zr_timeline_tier(const timeline *tl, const char *tier);

/* Bytes held on one tier at each point of one step, per category:
 * point 0 is the start of the step (every earlier event summed), point k
 * follows the step's k-th event. */
typedef struct series {
    int step;           /* the step drawn */
    int npoints;        /* the step's events + 1 */
    int ncats;          /* the timeline's categories */
    int64_t *held;      /* npoints * ncats */
    int *phase, *layer; /* per point; point 0 copies point 1 */
} series;

/* The last step of the timeline on the tier named `tier`; a step without
 * events gives npoints 1. Fails (naming the file) on bad events or a tier
 * the timeline does not name; *out is zeroed first, so zr_series_free(out)
 * is safe whatever it returns. */
int zr_tier_series(const char *file, const timeline *tl, const char *tier, series *out);
void zr_series_free(series *s);

/* ---- compare.c: the report table and its checks -------------------------- */

/* What the reports say, as text: header lines, the table, one line per tier
 * peak, and the checks (OVER PLAN, OFF PLAN). html.c writes the same. */
typedef struct summary {
    strlist header;
    table tb;
    strlist peaks;
    strlist checks;
    int over_plan, off_plan;
} summary;

/* --tolerance PCT[,BYTES]: a tier peak may differ from its plan by
 * max(PCT of the measured peak, BYTES). */
typedef struct tolerance {
    int given;
    double percent;
    int64_t bytes;
} tolerance;

int zr_parse_tolerance(const char *text, tolerance *out);
int zr_summarize(const report *r, int n, const units *u, const tolerance *tol,
                 summary *out);
void zr_summary_free(summary *s);

/* ---- html.c -------------------------------------------------------------- */

int zr_write_html(const char *file, const report *r, int n, const summary *s);

/* ==== options and modes =================================================== */

typedef struct zr_opts {
    /* --estimate and --fit, kept as given */
    const char *params, *preset, *stage, *precision, *config;
    const char *offload_optim, *offload_param;
    const char *reduce_bucket, *prefetch_bucket, *threshold, *largest, *layers;
    /* --fit */
    const char *device_mem, *host_mem, *nvme;
    /* the cluster of the step-time model (--estimate and --fit) */
    const char *hosts, *ranks_per_host, *intra_bw, *inter_bw, *compute_rate, *tokens,
        *seq_len, *progress, *latency;
    /* reports */
    const char *html, *tolerance;
    int world_size; /* 0: not given */
    int exact, decimals;
    char unit;
} zr_opts;

int zr_run_reports(char **args, int nargs, const zr_opts *o);
int zr_run_estimate(const zr_opts *o);
/* A whole count from lo to hi ("7.5e9", "124M"); prints why and returns
 * EXIT_BAD_INPUT when it is not one. */
int zr_parse_whole(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out);
int zr_run_fit(const zr_opts *o);

/* ---- estimate.c, shared with fit.c --------------------------------------- */

typedef struct preset preset;

/* What an estimate or a fit is asked about: the config, the model. */
typedef struct question {
    zrt_config cfg;
    zrt_mem_model model;
    int world_size;
    int first_stage, last_stage;
    const preset *preset;
    char largest_note[160];
    /* the shape, for the step-time model: known for GPT-2 presets (blocks > 0) */
    int64_t blocks, channels, context;
    int64_t first_layer; /* elements of layer 0 (entered first, reduced last) */
    int tied_embedding;  /* layer 0 is gathered again by the head (GPT-2) */
} question;

/* The config: zrt_config_init, --config, the offload and bucket flags. */
int zr_read_config(const zr_opts *o, question *q);
/* The model: --preset, or --params with --largest-layer / --layers. */
int zr_read_model(const zr_opts *o, question *q);
/* "model: ..." and "largest layer: ..." lines of both headers. */
void zr_print_model(const question *q);
const char *zr_device_name(int device);

/* ---- steptime.c ---------------------------------------------------------- */

/* A cluster: H hosts of R ranks; bytes per second of one host's link to the
 * others, each way (the sum of its NICs), and of one rank to the ranks of
 * its host, each way; FLOP per second of one rank; tokens a rank computes
 * per step; the sequence length of the attention term (0: the preset's). */
typedef struct zr_cluster {
    int given; /* 0: no cluster flags, no step-time model */
    int hosts, ranks_per_host;
    double inter_bw, intra_bw, compute_rate;
    int64_t tokens, seq_len;
    int phased;     /* --comm-progress phased: one-phase collectives overlap, chained
                       phases do not */
    int polled;     /* --comm-progress polled: collectives move only inside the
                       communicator's calls, so nothing overlaps compute */
    double latency; /* --latency: seconds each phase of a collective costs
                       besides its bytes (0: none) */
} zr_cluster;

/* How a step's collectives are laid on the cluster: flat or hierarchical
 * over the world; hpZ (stage 3: the backward gathers within groups of P
 * ranks); hybrid sharding (shard groups of S ranks, replicas across). */
typedef enum zr_routing {
    ZR_FLAT,
    ZR_HIERARCHICAL,
    ZR_HPZ,
    ZR_HYBRID,
    ZR_ROUTINGS
} zr_routing;

/* One configuration's step, per rank: bytes exact, times in seconds. */
typedef struct zr_step_time {
    int stage;
    zr_routing routing;
    int group;           /* hpZ's P, hybrid's S; 1 otherwise */
    int64_t link_bytes;  /* one host's link, each way, per step */
    int64_t intra_bytes; /* one rank to its own host, per step */
    double inter_s, intra_s, comm_s, compute_s, step_s;
    double exposed_s; /* step_s - compute_s: communication nothing hid */
} zr_step_time;

/* The cluster flags; c->given stays 0 when none is given. Every flag must
 * then be given (--seq-len and --comm-progress optional); errors name the
 * flag and the value. */
int zr_read_cluster(const zr_opts *o, zr_cluster *c);
/* 6 psi + 12 L T C (GPT-2 presets), else 6 psi. */
double zr_flops_per_token(const question *q, const zr_cluster *c);
const char *zr_routing_name(zr_routing r);
/* Whether the routing is one of its own here: hierarchical needs 2 hosts of
 * 2 ranks or more; hpZ stage 3 and a P (the config's zero_hpz_partition_size,
 * else R) of 2 or more dividing the world and below it; hybrid an S (the
 * config's hybrid_shard_size, else R) likewise. */
int zr_routing_applies(const zrt_config *cfg, const zr_cluster *c, zr_routing r);
/* The model for cfg (its stage, overlap_comm, stage3_prefetch_bucket_size);
 * with c->polled, compute + comm whatever overlap_comm says; a routing that
 * does not apply is timed flat. */
int zr_step_time_of(const question *q, const zrt_config *cfg, const zr_cluster *c,
                    zr_routing routing, zr_step_time *out);
/* The cluster and compute lines; the notes on formulas and overlap. */
void zr_print_cluster(const question *q, const zr_cluster *c);
void zr_print_steptime_notes(const question *q, const zr_cluster *c);
/* Prints title, the cluster, the table (then frees it) and the model's notes. */
void zr_print_timed_table(const question *q, const zr_cluster *c, table *tb,
                          const char *title);
/* Eight cells from column col: link bytes .. exposed comm s. */
void zr_fill_step_row(table *tb, int row, int col, const zr_step_time *s);
/* --estimate's step-time table: each config x each routing that applies. */
int zr_print_step_times(const question *q, const zrt_config *cfgs, int n,
                        const zr_cluster *c);

#endif
