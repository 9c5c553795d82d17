/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zero-report — what each rank holds, per tier and category, at a glance.
 *
 *   zero-report [--bytes | --unit K|M|G] [--tolerance PCT[,BYTES]] [--html FILE]
 *               REPORT.json|DIR|PATTERN...
 *   zero-report --estimate (--params N | --preset NAME) [options]
 *   zero-report --fit --device-mem SIZE --world-size N (--params N | --preset NAME)
 *               [--host-mem SIZE] [--nvme SIZE] [options]
 *
 * The first form reads the per-rank memory reports a run wrote
 * (zrt_write_mem_report, the examples' --mem-report) and prints one table:
 * a row per tier and category plus each tier's peak, and per rank the
 * planned (the runtime's memory plan, written into the report), measured
 * and difference columns; then where each tier peaked, planned and measured.
 * A measured peak above its plan is flagged (OVER PLAN); with --tolerance a
 * tier peak off its plan in either direction is too (OFF PLAN). --html also
 * writes the table and a plot per rank of the device bytes over one step.
 *
 * The second form runs no job: zrt_estimate_memory() computes what each rank
 * would hold for a parameter count (or a model preset), a world size, a stage
 * (or all four side by side), a precision, offload choices and bucket sizes.
 *
 * The third lists the ladder of configurations "stage": "auto" walks
 * (zrt_fit_ladder), each with its estimate against the budgets and its
 * traffic per step, and marks the first that fits.
 *
 * Given a cluster (--hosts, --ranks-per-host, --inter-bw, --intra-bw,
 * --compute-rate, --tokens-per-step), both also print the step-time model
 * (steptime.c): per stage and routing (flat, hierarchical) the bytes per
 * host link, the communication and compute time, and the step time with
 * overlap; --fit then ranks the rungs that fit by predicted step time.
 *
 * Exit status: 0 fine; 1 a rank's peak is over (or, with --tolerance, off)
 * its plan, or nothing fits; 2 bad input or usage (the message names the
 * file, the key or the flag).
 *
 * Invariants: every report is read and checked before anything is printed;
 * the only state is in main's locals.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "zero_report.h"

#ifndef ZRT_VERSION_STRING
#define ZRT_VERSION_STRING "unknown"
#endif

static const char usage_text[] =
    "usage: zero-report [--bytes | --unit K|M|G] [--tolerance PCT[,BYTES]]\n"
    "                   [--html FILE] REPORT.json|DIR|PATTERN...\n"
    "       zero-report --estimate (--params N | --preset NAME) [options]\n"
    "       zero-report --fit --device-mem SIZE --world-size N\n"
    "                   (--params N | --preset NAME) [--host-mem SIZE] [--nvme SIZE]\n"
    "                   [options]\n"
    "\n"
    "Reports: the per-rank JSON a run wrote (--mem-report FILE, %r = rank); a\n"
    "directory stands for its *.json files. Prints planned, measured and\n"
    "difference per rank, tier and category, and where each tier peaked; exit 1\n"
    "when a measured peak exceeds its plan, 2 on bad input.\n"
    "  --tolerance PCT[,BYTES]  also exit 1 when a tier peak differs from its plan,\n"
    "                        either way, by more than max(PCT of the measured\n"
    "                        peak, BYTES): 1%,64K (BYTES in powers of 1024)\n"
    "  --html FILE           also write the table and, per rank, the device bytes\n"
    "                        over the last recorded step as one offline HTML page\n"
    "\n"
    "--estimate: what each rank would hold, without a run.\n"
    "  --params N            parameter count (7.5e9, 124M, 1.5B: powers of 1000)\n"
    "  --preset NAME         gpt2-124m, gpt2-350m, gpt2-774m, gpt2-1558m,\n"
    "                        zero-paper-7.5b (sets params, layers, precision)\n"
    "  --world-size N        ranks (default 1)\n"
    "  --stage 0|1|2|3|all   default all (the config's stage with --config)\n"
    "  --precision P         fp32 (default): 4+4+8 bytes a parameter, what the\n"
    "                        engine trains today; bf16, fp16: 2+2 bytes with an\n"
    "                        f32 master copy and moments (2+2+4+8)\n"
    "  --offload-optimizer none|cpu|nvme\n"
    "  --offload-param none|cpu|nvme\n"
    "  --reduce-bucket N     reduce_bucket_size, elements (5e8, or 64M in 1024s)\n"
    "  --prefetch-bucket N   stage3_prefetch_bucket_size, elements\n"
    "  --persistence-threshold N\n"
    "                        stage3_param_persistence_threshold, elements\n"
    "  --largest-layer N     elements of the largest layer\n"
    "  --layers L            layer count (equal layers without --largest-layer;\n"
    "                        neither given: 32 layers, stated in the output)\n"
    "  --config FILE         a zrt config (docs/config.md); flags override it\n"
    "  --unit K|M|G          KB/KiB, MB/MiB or GB/GiB (default G)\n"
    "  --decimals D          digits after the point, 0-6 (default 1)\n"
    "  --bytes               exact byte counts\n"
    "\n"
    "--fit: the configurations \"stage\": \"auto\" walks, cheapest in traffic\n"
    "first (NVMe bytes, then host<->device bytes, then communication, then\n"
    "stage), each with its estimate against the budgets; exit 0 when one fits,\n"
    "1 when none does. Takes the --estimate flags except --stage and --offload-*.\n"
    "  --device-mem SIZE     device budget of one rank (16G: powers of 1024)\n"
    "  --host-mem SIZE       host budget of one rank (default: none)\n"
    "  --nvme SIZE           NVMe space of one rank; adds the NVMe rungs\n"
    "  --world-size N        ranks (required, unless the cluster gives it)\n"
    "\n"
    "Step time (--estimate and --fit): give the cluster and the model prints, per\n"
    "stage and routing (flat, hierarchical, hpz at stage 3, hybrid), the bytes per\n"
    "host link per step, the communication and compute time and the step time\n"
    "with overlap; --fit also ranks the rungs that fit by predicted step time.\n"
    "  --hosts H             hosts\n"
    "  --ranks-per-host R    ranks on each host (H x R is the world size)\n"
    "  --inter-bw RATE       one host's link to the others, each way: 1gbit,\n"
    "                        400Gbit/s (bits: 'bit', powers of 1000), 50GB/s,\n"
    "                        25GiB/s, 450e9 (bytes: 'B' or a bare number)\n"
    "  --intra-bw RATE       one rank to the ranks of its host, each way\n"
    "  --compute-rate FLOPS  FLOP per second of one rank (2.5e9, 400T)\n"
    "  --tokens-per-step N   tokens one rank computes per step (batch x seq-len)\n"
    "  --seq-len T           of the attention term, 12 x layers x T x channels FLOP\n"
    "                        a token (default the preset's context, 1024)\n"
    "  --comm-progress async|polled|phased\n"
    "                        async (default): collectives move while compute runs\n"
    "                        (NCCL streams), overlapped by the overlap_comm rule;\n"
    "                        polled: only inside the communicator's calls (the mpi\n"
    "                        communicator on CPU, no progress thread): compute + comm;\n"
    "                        phased: collectives of one phase overlap, of chained\n"
    "                        phases (hierarchical, all-reduce) do not\n"
    "  --latency TIME        what each phase of a collective costs besides its bytes\n"
    "                        (25ms, 30us, 2e-5: seconds; default 0)\n"
    "\n"
    "docs/zero-report.md has the formula of every row.\n";

/* The flags whose value is kept as given (parsed by the mode that reads it). */
typedef struct string_flag {
    const char *name;
    size_t offset; /* of a const char * in zr_opts */
} string_flag;

#define STRING_FLAG(name, field)                                                         \
    {                                                                                    \
        name, offsetof(zr_opts, field)                                                   \
    }
static const string_flag string_flags[] = {
    STRING_FLAG("params", params),
    STRING_FLAG("preset", preset),
    STRING_FLAG("stage", stage),
    STRING_FLAG("precision", precision),
    STRING_FLAG("offload-optimizer", offload_optim),
    STRING_FLAG("offload-param", offload_param),
    STRING_FLAG("reduce-bucket", reduce_bucket),
    STRING_FLAG("prefetch-bucket", prefetch_bucket),
    STRING_FLAG("persistence-threshold", threshold),
    STRING_FLAG("largest-layer", largest),
    STRING_FLAG("layers", layers),
    STRING_FLAG("config", config),
    STRING_FLAG("device-mem", device_mem),
    STRING_FLAG("host-mem", host_mem),
    STRING_FLAG("nvme", nvme),
    STRING_FLAG("hosts", hosts),
    STRING_FLAG("ranks-per-host", ranks_per_host),
    STRING_FLAG("intra-bw", intra_bw),
    STRING_FLAG("inter-bw", inter_bw),
    STRING_FLAG("compute-rate", compute_rate),
    STRING_FLAG("tokens-per-step", tokens),
    STRING_FLAG("seq-len", seq_len),
    STRING_FLAG("comm-progress", progress),
    STRING_FLAG("latency", latency),
    STRING_FLAG("html", html),
    STRING_FLAG("tolerance", tolerance),
};
#define NSTRING_FLAGS (int)(sizeof string_flags / sizeof string_flags[0])

/* Other flags; string flag i has the value OPT_STRING + i. */
enum {
    OPT_ESTIMATE = 256,
    OPT_FIT,
    OPT_WORLD,
    OPT_UNIT,
    OPT_DECIMALS,
    OPT_BYTES,
    OPT_HELP,
    OPT_VERSION,
    OPT_STRING
};

static const struct option other_opts[] = {
    {"estimate", no_argument, NULL, OPT_ESTIMATE},
    {"fit", no_argument, NULL, OPT_FIT},
    {"world-size", required_argument, NULL, OPT_WORLD},
    {"unit", required_argument, NULL, OPT_UNIT},
    {"decimals", required_argument, NULL, OPT_DECIMALS},
    {"bytes", no_argument, NULL, OPT_BYTES},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
};
#define NOTHER_OPTS (int)(sizeof other_opts / sizeof other_opts[0])

/* getopt_long's table: the other flags, the string flags, the end. */
static void build_options(struct option *out)
{
    int n = 0;
    for (int i = 0; i < NOTHER_OPTS; i++)
        out[n++] = other_opts[i];
    for (int i = 0; i < NSTRING_FLAGS; i++)
        out[n++] = (struct option){string_flags[i].name, required_argument, NULL,
                                   OPT_STRING + i};
    out[n] = (struct option){NULL, 0, NULL, 0};
}

static int parse_small(const char *flag, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return zr_error("%s '%s': it must be a whole number from %d to %d", flag, s, lo,
                        hi);
    *out = (int)v;
    return 0;
}

enum mode { MODE_REPORTS, MODE_ESTIMATE, MODE_FIT };

/* Stores one option; returns nonzero on a bad value. */
static int take_option(int opt, const char *arg, zr_opts *o, int *modes)
{
    if (opt >= OPT_STRING && opt < OPT_STRING + NSTRING_FLAGS) {
        const char **field =
            (const char **)((char *)o + string_flags[opt - OPT_STRING].offset);
        *field = arg;
        return 0;
    }
    if (opt == OPT_ESTIMATE || opt == OPT_FIT)
        *modes |= 1 << (opt == OPT_ESTIMATE ? MODE_ESTIMATE : MODE_FIT);
    else if (opt == OPT_BYTES)
        o->exact = 1;
    else if (opt == OPT_WORLD)
        return parse_small("--world-size", arg, 1, 1 << 24, &o->world_size);
    else if (opt == OPT_DECIMALS)
        return parse_small("--decimals", arg, 0, 6, &o->decimals);
    else if (opt == OPT_UNIT && strlen(arg) == 1 &&
             strchr("KMG", toupper((unsigned char)arg[0])))
        o->unit = (char)toupper((unsigned char)arg[0]);
    else if (opt == OPT_UNIT)
        return zr_error("--unit '%s': it must be K, M or G", arg);
    else
        return EXIT_BAD_INPUT;
    return 0;
}

/* The first flag given that `mode` does not read, or NULL. */
static const char *foreign_flag(const zr_opts *o, enum mode mode)
{
    int model = mode != MODE_REPORTS, fit = mode == MODE_FIT;
    if (!model &&
        (o->params || o->preset || o->precision || o->reduce_bucket ||
         o->prefetch_bucket || o->threshold || o->largest || o->layers || o->config ||
         o->world_size || o->stage || o->offload_optim || o->offload_param))
        return "--params, --preset, --stage, --world-size and the other model flags "
               "need --estimate or --fit";
    if (!model &&
        (o->hosts || o->ranks_per_host || o->intra_bw || o->inter_bw || o->compute_rate ||
         o->tokens || o->seq_len || o->progress || o->latency))
        return "--hosts, --ranks-per-host, --inter-bw, --intra-bw, --compute-rate, "
               "--tokens-per-step, --seq-len, --comm-progress and --latency describe a "
               "cluster for "
               "the step-time model of --estimate and --fit";
    if (!fit && (o->device_mem || o->host_mem || o->nvme))
        return "--device-mem, --host-mem and --nvme need --fit";
    if (model && (o->html || o->tolerance))
        return "--html and --tolerance read a run's reports; not with --estimate or "
               "--fit";
    return NULL;
}

/* Reads the command line into *o and *mode; 0, or an exit status. */
static int parse_command_line(int argc, char **argv, zr_opts *o, enum mode *mode,
                              int *done)
{
    struct option opts[NOTHER_OPTS + NSTRING_FLAGS + 1];
    int modes = 0, opt;
    build_options(opts);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'h' || opt == OPT_HELP || opt == OPT_VERSION) {
            if (opt == OPT_VERSION)
                printf("zero-report %s\n", ZRT_VERSION_STRING);
            else
                fputs(usage_text, stdout);
            *done = 1;
            return 0;
        }
        if (opt == '?')
            return zr_error("unknown option or missing value: '%s' (zero-report --help)",
                            argv[optind - 1]);
        if (take_option(opt, optarg, o, &modes))
            return EXIT_BAD_INPUT;
    }
    if (modes == ((1 << MODE_ESTIMATE) | (1 << MODE_FIT)))
        return zr_error("--estimate and --fit: give one of them");
    *mode = modes & (1 << MODE_FIT)        ? MODE_FIT
            : modes & (1 << MODE_ESTIMATE) ? MODE_ESTIMATE
                                           : MODE_REPORTS;
    const char *foreign = foreign_flag(o, *mode);
    return foreign ? zr_error("%s", foreign) : 0;
}

int main(int argc, char **argv)
{
    zr_opts o = {.decimals = -1};
    enum mode mode = MODE_REPORTS;
    int done = 0, rc = parse_command_line(argc, argv, &o, &mode, &done);
    if (rc || done)
        return rc;
    if (mode != MODE_REPORTS && optind < argc)
        return zr_error("%s reads no reports: '%s'",
                        mode == MODE_FIT ? "--fit" : "--estimate", argv[optind]);
    if (mode == MODE_FIT)
        return zr_run_fit(&o);
    if (mode == MODE_ESTIMATE) {
        o.decimals = o.decimals < 0 ? 1 : o.decimals;
        o.unit = o.unit ? o.unit : 'G';
        return zr_run_estimate(&o);
    }
    if (optind == argc) {
        fputs(usage_text, stderr);
        return EXIT_BAD_INPUT;
    }
    return zr_run_reports(argv + optind, argc - optind, &o);
}
