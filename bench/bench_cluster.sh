#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/bench_cluster.sh — bytes on each host's link, and step time, for GPT-2
# across the namespace cluster (scripts/cluster.sh): H hosts x R ranks (default
# 2 x 2) through zero-launch, stages 0-3, each with --mem-report, for one or
# more collective routings (comm_hierarchy) in the same invocation.
#
# Part 1 (unshaped links): per routing and stage, a run of SHORT steps and one
# of LONG steps; the veth byte counters of each host's link (bridge side) are
# read before and after each run, and (LONG run - SHORT run) / (LONG - SHORT)
# is a steady step's traffic, without the setup, teardown and report-dump
# traffic that both runs share. Beside it, the same difference of the
# communicator's own count (the reports' "comm.total", other_host, summed over
# the host's ranks: model states and the rest; for what a host received, the
# other hosts' ranks' count / (H - 1), the collectives being symmetric) and the
# formula (the reports' "comm.theory.layers.other_host" summed the same way,
# plus, at stage 3, the tied embedding's second gather; see docs/design.md,
# "Traffic accounting"). The wire carries TCP/IP and Ethernet headers as well:
# the counters count each packet's Ethernet (14), IP (20) and TCP (20 + 12 of
# timestamps) headers, not the preamble or FCS; "hdr" below is packets x 66
# bytes, and "payload" the counted bytes less it.
#
# Part 2: the step time (train_gpt2's "timing" line: the mean over ranks of
# the steady steps) of the LONG run, unshaped and with every link shaped to
# RATE (tc tbf, each direction), and the ratio step time / (bytes / rate),
# bytes being the most any host's link carried one way in a step. With
# --repeat K the shaped runs are made K times, the routings interleaved per
# stage (flat, hierarchical, flat, ...), so that a ratio compares runs made
# side by side; each time is printed, and their mean.
#
# With two or more routings, the last table gives per stage the bytes
# reduction factor (the first routing's link bytes / each other's) and the
# step-time ratios (each routing's / the first's), unshaped and shaped.
#
#   bench/bench_cluster.sh [--build DIR | --zero-launch F --train F]
#                          [--hosts 2] [--ranks-per-host 2]
#                          [--model d4] [--short 5] [--long 15]
#                          [--stages "0 1 2 3"] [--rate 1gbit] [--no-shaped]
#                          [--repeat 1] [--single] [--check PCT]
#                          [--comm-hierarchy "auto|flat|hierarchical|hpz|hybrid ..."]
#                          [--predict [--zero-report F] [--intra-bw BYTES/s]
#                                     [--latency fit|SECONDS]]
#                          [--analyze]
# --check PCT: exit 1 unless every host's link bytes are within PCT % of the
# count and of the formula, each way, at every stage and routing (the ctest
# tests/scripts/cluster_bytes.sh uses it).
# --single: also time the model on one rank (outside the cluster, one core,
# no communication), once before and once after the cluster runs; their mean
# is the compute the step-time model is calibrated with.
# --predict (implies --single): zero-report's step-time model
# (tools/zero-report/steptime.c) beside every step time measured, calibrated
# on this run: a rank's compute rate is the one-rank
# run's (the preset's FLOP a step / its step time) times min(1, cores /
# ranks), the ranks sharing this machine's cores; the inter-host bandwidth is
# RATE for the shaped runs and the intra-host one for the unshaped runs (veth
# and shared memory are both copies by these cores); the intra-host bandwidth
# is --intra-bw BYTES/s (default 1.2e9 x 4 / ranks: bench_comm's ordered
# reduce-scatter on 4 ranks, docs/benchmarks.md, shared by the ranks); the
# progress models --comm-progress polled (compute + comm), async (the overlap
# rule) and phased (the rule for one-phase collectives, chained ones
# exposed); and a latency a phase of a collective (zero-report --latency):
# --latency fit (the default) fits it, the one fitted number, by least
# squares to the unshaped runs' steps less the phased model's without it,
# so that the shaped runs, which it is not fitted to, check it; --latency
# SECONDS gives it. The table prints the shaped runs' model in each progress
# mode with latency 0, and phased with the latency.
# --analyze: no runs; the tables again from the runs kept in $OUTDIR (the
# same options), e.g. with another --latency.
# Root only; exits 77 where network namespaces cannot be made. Writes its
# tables to stdout and, with OUTDIR set, keeps the runs' outputs and
# summary.json (per routing and stage: link bytes, count, formula, step
# times, the model's) under $OUTDIR (default a temporary directory, removed).
# --comm-hierarchy: the config's "comm_hierarchy", one or more (default auto:
# hierarchical on H >= 2 hosts of R >= 2 ranks, reductions and all-gathers
# within each host first and then across; flat: every rank to every rank),
# or hpz (stage 3: ZeRO++'s secondary partition over each host's ranks),
# hybrid (hybrid sharding, FSDP2's HSDP: the model states sharded over each
# host's ranks and replicated across hosts) or qwz (stage 3: ZeRO++'s
# quantized weight gather, int8 blocks of 256), qgz / qgz4 (ZeRO++'s
# quantized gradient reduction, int8 / int4 blocks of 256, flat) or qgz-hier
# (int8, hierarchical: quantized again between the hops), or qwz-qgz (stage
# 3, both, int8: ZeRO++'s qwZ and qgZ together; --predict models them with
# zero-report's quantized volumes), or topk / topk10 (stages 0-1: top-k
# sparsified gradients with error feedback, gradient_topk_ratio 0.01 / 0.1;
# modelled too). The others run with flat collectives.
set -euo pipefail
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT_DIR/build
ZL="" TRAIN=""
MODEL=d4
SHORT=5
LONG=15
STAGES="0 1 2 3"
RATE=1gbit
SHAPED=1
CHECK=""
HIERARCHIES=auto
HOSTS=2
RPH=2
REPEAT=1
SINGLE=0
PREDICT=0
ZR=""
INTRA_BW=""
LATENCY=fit
ANALYZE=0
WAIT_S=${WAIT_S:-300}
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "bench_cluster.sh: $1 '$2': it must be a whole number above 0" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case $1 in
        --build) BUILD=$2; shift 2 ;;
        --zero-launch) ZL=$2; shift 2 ;;
        --train) TRAIN=$2; shift 2 ;;
        --model) MODEL=$2; shift 2 ;;
        --short) SHORT=$2; shift 2 ;;
        --long) LONG=$2; shift 2 ;;
        --stages) STAGES=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --no-shaped) SHAPED=0; shift ;;
        --check) CHECK=$2; shift 2 ;;
        --comm-hierarchy) HIERARCHIES=$2; shift 2 ;;
        --hosts) posint "$1" "$2"; HOSTS=$2; shift 2 ;;
        --ranks-per-host) posint "$1" "$2"; RPH=$2; shift 2 ;;
        --repeat) posint "$1" "$2"; REPEAT=$2; shift 2 ;;
        --single) SINGLE=1; shift ;;
        --predict) PREDICT=1 SINGLE=1; shift ;;
        --latency) LATENCY=$2; shift 2
            [[ $LATENCY == fit || $LATENCY =~ ^[0-9]+(\.[0-9]+)?([eE]-?[0-9]+)?$ ]] ||
                { echo "bench_cluster.sh: --latency '$LATENCY': it must be fit or seconds (0.01)" >&2; exit 2; } ;;
        --analyze) ANALYZE=1; shift ;;
        --zero-report) ZR=$2; shift 2 ;;
        --intra-bw) INTRA_BW=$2; shift 2
            [[ $INTRA_BW =~ ^[0-9]+(\.[0-9]+)?([eE][0-9]+)?$ ]] ||
                { echo "bench_cluster.sh: --intra-bw '$INTRA_BW': it must be bytes per second (1.2e9)" >&2; exit 2; } ;;
        -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench_cluster.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
for h in $HIERARCHIES; do
    case $h in
        auto | flat | hierarchical | hpz | hybrid | qwz | qgz | qgz4 | qgz-hier | qwz-qgz | topk | topk10) ;;
        *) echo "bench_cluster.sh: --comm-hierarchy '$h': it must be auto, flat, hierarchical, hpz (stage 3 only), hybrid, qwz (stage 3 only), qgz, qgz4, qgz-hier, qwz-qgz (stage 3 only), topk or topk10 (stages 0-1 only)" >&2; exit 2 ;;
    esac
done
[ "$HOSTS" -ge 2 ] || { echo "bench_cluster.sh: --hosts $HOSTS: it takes 2 hosts or more" >&2; exit 2; }
ZL=${ZL:-$BUILD/bin/zero-launch}
TRAIN=${TRAIN:-$BUILD/bin/train_gpt2}
ZR=${ZR:-$BUILD/bin/zero-report}
[ "$PREDICT" = 0 ] || [ -x "$ZR" ] || { echo "bench_cluster.sh: --predict: no $ZR (build it, or give --zero-report)" >&2; exit 2; }
CLUSTER=$ROOT_DIR/scripts/cluster.sh
AGENT=$ROOT_DIR/scripts/cluster-agent.sh
for f in "$ZL" "$TRAIN"; do
    [ -x "$f" ] || { echo "bench_cluster.sh: no $f (build it, or give --build)" >&2; exit 2; }
done
[ "$ANALYZE" = 0 ] || [ -d "${OUTDIR:-}" ] || { echo "bench_cluster.sh: --analyze: set OUTDIR to the directory of a kept run" >&2; exit 2; }
KEEP=${OUTDIR:+1}
OUT=${OUTDIR:-$(mktemp -d "${TMPDIR:-/tmp}/zrt-bench-cluster.XXXXXX")}
mkdir -p "$OUT"
cluster_up=0
finish() {
    [ "$cluster_up" = 0 ] || "$CLUSTER" down || true
    [ -n "$KEEP" ] || rm -rf "$OUT"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# up [--rate R] : HOSTS hosts of RPH slots; waits while another run's cluster
# is up.
up() {
    local status start=$SECONDS
    while :; do
        status=0
        "$CLUSTER" up "$HOSTS" --slots "$RPH" "$@" >"$OUT/up" 2>&1 || status=$?
        [ "$status" != 77 ] || { cat "$OUT/up" >&2; exit 77; }
        [ "$status" != 0 ] || break
        if ! grep -q "a cluster is up" "$OUT/up" || ((SECONDS - start >= WAIT_S)); then
            cat "$OUT/up" >&2
            echo "bench_cluster.sh: cluster.sh up failed (status $status)" >&2
            exit 1
        fi
        sleep 2
    done
    cluster_up=1
    SUBNET=$(awk '$1 == "subnet" {print $2 ".0/24"}' /run/zrt-cluster/state)
    HOSTFILE=$("$CLUSTER" hostfile)
}
down() { "$CLUSTER" down; cluster_up=0; }

# counters : rx/tx bytes and packets of zrt-v1 .. zrt-vH (bridge side: rx is
# what the host sent).
counters() {
    local i d k
    for ((i = 1; i <= HOSTS; i++)); do
        for d in rx tx; do
            for k in bytes packets; do
                printf '%s ' "$(cat "/sys/class/net/zrt-v$i/statistics/${d}_$k")"
            done
        done
    done
    echo
}

# A routing is a comm_hierarchy value, or hpz: stage 3 with ZeRO++'s
# secondary partition over each host's ranks (zero_hpz_partition_size R),
# or hybrid: shard groups of each host's ranks (hybrid_shard_size R), or
# qwz: stage 3 with ZeRO++'s quantized weight gather (zero_quantized_weights,
# int8 blocks of 256), or qgz, qgz4, qgz-hier: ZeRO++'s quantized gradient
# reduction (zero_quantized_gradients: int8, int4, int8 hierarchical), or
# qwz-qgz: both; or topk, topk10: gradient_topk_ratio 0.01, 0.1.
for h in $HIERARCHIES; do
    hpz=0 hybrid=0 qwz=false qgz=false bits=8 topk=0 hier=$h
    [ "$h" != hpz ] || hpz=$RPH hier=flat
    [ "$h" != hybrid ] || hybrid=$RPH hier=flat
    [ "$h" != qwz ] || qwz=true hier=flat
    [ "$h" != qgz ] || qgz=true hier=flat
    [ "$h" != qgz4 ] || qgz=true bits=4 hier=flat
    [ "$h" != qgz-hier ] || qgz=true hier=hierarchical
    [ "$h" != qwz-qgz ] || qwz=true qgz=true hier=flat
    [ "$h" != topk ] || topk=0.01 hier=flat
    [ "$h" != topk10 ] || topk=0.1 hier=flat
    cat >"$OUT/zero-$h.json" <<JSON
{"zero_optimization": {"stage3_prefetch_bucket_size": 0,
                       "stage3_param_persistence_threshold": 0,
                       "zero_hpz_partition_size": $hpz,
                       "zero_quantized_weights": $qwz,
                       "zero_quantized_gradients": $qgz,
                       "zero_quantized_gradient_bits": $bits,
                       "gradient_topk_ratio": $topk},
 "hybrid_shard_size": $hybrid, "comm_hierarchy": "$hier"}
JSON
done
ROOTOPT=()
[ "$(id -u)" != 0 ] || ROOTOPT=(--allow-run-as-root)

# run TAG HIERARCHY STAGE STEPS : one job from host 1; counters before/after
# in $OUT/TAG.ctr, reports in $OUT/TAG/, output in $OUT/TAG.out.
run() {
    local tag=$1 hier=$2 stage=$3 steps=$4
    mkdir -p "$OUT/$tag"
    counters >"$OUT/$tag.ctr"
    "$CLUSTER" exec 1 "$ZL" "${ROOTOPT[@]}" --bind none --env OPENBLAS_NUM_THREADS=1 \
        --mca mpi_yield_when_idle 1 --hostfile "$HOSTFILE" --ranks-per-host "$RPH" \
        --launch-agent "$AGENT" --net "$SUBNET" -- \
        "$TRAIN" --model "$MODEL" --steps "$steps" --val-every 0 --sample-len 0 \
        --stage "$stage" --config "$OUT/zero-$hier.json" --mem-report "$OUT/$tag/r%r.json" \
        >"$OUT/$tag.out" 2>&1 &
    wait $! || { cat "$OUT/$tag.out" >&2; echo "bench_cluster.sh: $tag failed" >&2; exit 1; }
    counters >>"$OUT/$tag.ctr"
}

echo "# bench_cluster.sh: GPT-2 $MODEL, $HOSTS hosts x $RPH ranks (zero-launch), steps $SHORT and $LONG, comm_hierarchy $HIERARCHIES$([ "$SHAPED" = 0 ] || echo ", shaped $RATE x $REPEAT")"
echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
# single TAG : one rank, no cluster, no communication: the compute of a step.
single() {
    OPENBLAS_NUM_THREADS=1 "$TRAIN" --model "$MODEL" --steps "$LONG" --val-every 0 --sample-len 0 \
        --stage 0 >"$OUT/$1.out" 2>&1 ||
        { cat "$OUT/$1.out" >&2; echo "bench_cluster.sh: the one-rank run failed" >&2; exit 1; }
}
if [ "$ANALYZE" = 0 ]; then
[ "$SINGLE" = 0 ] || single single-before
up
for stage in $STAGES; do
    for h in $HIERARCHIES; do
        run "$h-s$stage-short" "$h" "$stage" "$SHORT"
        run "$h-s$stage-long" "$h" "$stage" "$LONG"
    done
done
down
if [ "$SHAPED" = 1 ]; then
    up --rate "$RATE"
    for stage in $STAGES; do
        for ((k = 1; k <= REPEAT; k++)); do
            for h in $HIERARCHIES; do
                run "$h-s$stage-shaped$k" "$h" "$stage" "$LONG"
            done
        done
    done
    down
fi
[ "$SINGLE" = 0 ] || single single-after
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%H:%M UTC')"
fi

DEPTH=${MODEL#d}
python3 - "$OUT" "$SHORT" "$LONG" "$STAGES" "$RATE" "$SHAPED" "$CHECK" "$DEPTH" \
    "$HOSTS" "$RPH" "$HIERARCHIES" "$REPEAT" "$SINGLE" "$PREDICT" "$ZR" "$INTRA_BW" "$(nproc)" \
    "$LATENCY" <<'PY'
import json, re, sys
out, short, long_, stages, rate, shaped, check, depth = sys.argv[1:9]
H, R, hierarchies, repeat, single, predict, zr, intra_bw, cores, latency = sys.argv[9:19]
predict, cores = predict == "1", int(cores)
short, long_, depth, H, R, repeat = int(short), int(long_), int(depth), int(H), int(R), int(repeat)
stages = [int(s) for s in stages.split()]
hierarchies = hierarchies.split()
shaped, single = shaped == "1", single == "1"
check = float(check) if check else None
units = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
m = re.fullmatch(r"(\d+)(bit|kbit|mbit|gbit)", rate.lower())
rate_Bps = int(m.group(1)) * units[m.group(2)] / 8
HDR = 14 + 20 + 32  # Ethernet, IP, TCP with timestamps
N, L = H * R, R
EMBED = (256 + 1024) * 64 * depth  # wte + wpe: (V + max_seq_len) * C, train_gpt2's byte model
dsteps = long_ - short
HOSTS = {h: tuple(range((h - 1) * R, h * R)) for h in range(1, H + 1)}

def ctr(tag):
    a, b = [list(map(int, l.split())) for l in open(f"{out}/{tag}.ctr")]
    d = [y - x for x, y in zip(a, b)]
    # per host: [sent bytes, sent packets, received bytes, received packets]
    return {h: d[4 * (h - 1):4 * h] for h in HOSTS}

def reports(tag):
    return [json.load(open(f"{out}/{tag}/r{r}.json")) for r in range(N)]

def timing(tag):
    try:
        for line in open(f"{out}/{tag}.out"):
            m = re.search(r"timing: ([0-9.]+) ms/step", line)
            if m:
                return float(m.group(1)) / 1e3
    except FileNotFoundError:
        pass
    return None

def counted(rl, rs, ranks):  # bytes to other hosts per step, all collectives
    t = lambda rep: rep["comm"]["total"]["layers"]["other_host"] + rep["comm"]["total"]["other"]["other_host"]
    return sum(t(rl[r]) - t(rs[r]) for r in ranks) / dsteps

def remote_blocks(rep):  # blocks of an all-gather a rank sends to other hosts
    c = rep["comm"]
    if c["theory"].get("hpz_partition_size", 0) > 1:
        return 0  # a gather after the step's first stays within the host's group
    if c["theory"].get("hybrid_shard_size", N) < N:
        return 0  # every gather stays within the shard group: the host's ranks
    return N // c["group_size"] - 1 if c.get("hierarchical") else N - L

def embed_block_bytes(th):  # one rank's block of the tied embedding's gather, as sent
    shard, B = EMBED // N, th.get("qwz_block_size", 0)
    if B:  # qwZ: int8, padded to 4 bytes, and an f32 scale a block (zrt__qwz_bytes)
        return (shard + 3) // 4 * 4 + 4 * ((shard + B - 1) // B)
    return shard * th["bytes_per_element"]

def formula(rl, ranks, stage):
    f = 0
    for r in ranks:
        th = rl[r]["comm"]["theory"]
        f += th["layers"]["other_host"]
        if stage == 3:  # the tied embedding's second gather, the other hosts' share
            f += embed_block_bytes(th) * remote_blocks(rl[r])
    return f

bad, summary, results = [], [], {}
for hier in hierarchies:
    results[hier] = {}
    print()
    print("comm_hierarchy %s: per step, steady state ((%d steps - %d steps) / %d): bytes over each host's link, each way" % (hier, long_, short, dsteps))
    print("%-5s %-4s %-4s %11s %11s %11s %8s %6s %9s %9s %9s" % (
        "stage", "host", "dir", "link", "count", "formula", "packets", "hdr%",
        "link/cnt", "link/for", "payl/cnt"))
    for s in stages:
        tag = f"{hier}-s{s}"
        cs, cl = ctr(f"{tag}-short"), ctr(f"{tag}-long")
        rs, rl = reports(f"{tag}-short"), reports(f"{tag}-long")
        # zero-report --estimate's row: the routing's name, or what auto chose
        # (the quantized routings' rows: their collectives', with the config's
        # zero_quantized_* keys)
        routing = {"qwz": "flat", "qgz": "flat", "qgz4": "flat", "qgz-hier": "hierarchical",
                   "qwz-qgz": "flat", "topk": "flat", "topk10": "flat"}.get(hier, hier) if hier != "auto" else (
            "hierarchical" if rl[0]["comm"].get("hierarchical") else "flat")
        host_max, rows = 0, []
        for h, ranks in HOSTS.items():
            others = [r for g, rr in HOSTS.items() if g != h for r in rr]
            # what a host received: the other hosts' ranks sent to other hosts,
            # 1 / (H - 1) of it to this one (the collectives are symmetric)
            for d, (bi, pi), src, share in (("sent", (0, 1), ranks, 1), ("recv", (2, 3), others, H - 1)):
                link = (cl[h][bi] - cs[h][bi]) / dsteps
                pk = (cl[h][pi] - cs[h][pi]) / dsteps
                c = counted(rl, rs, src) / share
                f = formula(rl, src, s) / share
                payload = link - pk * HDR
                host_max = max(host_max, link)
                rows.append({"host": h, "dir": d, "link": link, "count": c, "formula": f, "packets": pk})
                print("%-5d %-4s %-4s %11.0f %11.0f %11.0f %8.0f %6.2f %+8.2f%% %+8.2f%% %+8.2f%%" % (
                    s, "h%d" % h, d, link, c, f, pk, 100 * pk * HDR / link,
                    100 * (link / c - 1), 100 * (link / f - 1), 100 * (payload / c - 1)))
                if check is not None:
                    if abs(link / c - 1) * 100 > check:
                        bad.append(f"{hier} stage {s} h{h} {d}: link {link:.0f} vs count {c:.0f}")
                    if abs(link / f - 1) * 100 > check:
                        bad.append(f"{hier} stage {s} h{h} {d}: link {link:.0f} vs formula {f:.0f}")
        t0 = timing(f"{tag}-long")
        tsh = [timing(f"{tag}-shaped{k}") for k in range(1, repeat + 1)] if shaped else []
        tsh = [t for t in tsh if t is not None]
        ts = sum(tsh) / len(tsh) if tsh else None
        wire = host_max / rate_Bps
        results[hier][s] = {"routing": routing, "links": rows, "link_max": host_max,
                            "formula_max": max(r["formula"] for r in rows),
                            "unshaped_s": t0, "shaped_s": tsh, "shaped_mean_s": ts}
        summary.append("%-12s %-5d %12.0f %10.3f %9.2f %10s %10s %9s  %s" % (
            hier, s, host_max, t0, t0 / wire, "%.3f" % ts if ts else "-", "%.3f" % wire,
            "%.2f" % (ts / wire) if ts else "-",
            " ".join("%.3f" % t for t in tsh) if len(tsh) > 1 else ""))
t1s = [timing("single-before"), timing("single-after")] if single else []
t1 = sum(t1s) / 2 if single else None
print()
print("step time (s, mean over ranks of the steady steps of the %d-step run); bytes: the most one link carried one way per step" % long_)
print("%-12s %-5s %12s %10s %9s %10s %10s %9s  %s" % (
    "hierarchy", "stage", "bytes/step", "unshaped", "ratio", rate, "bytes/rate", "ratio",
    "each run (%d, interleaved)" % repeat if repeat > 1 else ""))
print("\n".join(summary))
if t1 is not None:
    print("one rank, no communication (stage 0, steady steps of %d): %.3f s/step (%.3f before the cluster runs, %.3f after)" % (
        long_, t1, t1s[0], t1s[1]))
if len(hierarchies) > 1:
    base = hierarchies[0]
    print()
    print("against %s, the same invocation: link bytes reduction (%s / other; formula: the same of the formula), step time ratio (other / %s)" % (base, base, base))
    print("%-12s %-5s %13s %15s %15s %15s" % ("hierarchy", "stage", "bytes factor", "unshaped ratio", "%s ratio" % rate, "formula factor"))
    for hier in hierarchies[1:]:
        for s in stages:
            a, b = results[base][s], results[hier][s]
            r0 = b["unshaped_s"] / a["unshaped_s"] if a["unshaped_s"] and b["unshaped_s"] else None
            r1 = b["shaped_mean_s"] / a["shaped_mean_s"] if a["shaped_mean_s"] and b["shaped_mean_s"] else None
            print("%-12s %-5d %13.3f %15s %15s %15.3f" % (hier, s, a["link_max"] / b["link_max"],
                  "%.3f" % r0 if r0 else "-", "%.3f" % r1 if r1 else "-",
                  a["formula_max"] / b["formula_max"]))
json.dump({"hosts": H, "ranks_per_host": R, "model": "d%d" % depth, "short": short, "long": long_,
           "rate_Bps": rate_Bps if shaped else None, "single_s": t1, "results": results},
          open(f"{out}/summary.json", "w"), indent=1)

def model(hier_of, inter, intra, rate, progress, lat=0.0):  # zero-report's rows: (stage, routing) -> step s
    cmd = [zr, "--estimate", "--preset", "train-gpt2-d%d" % depth, "--stage", "all",
           "--config", f"{out}/zero-{hier_of}.json", "--hosts", str(H), "--ranks-per-host", str(R),
           "--inter-bw", "%.6g" % inter, "--intra-bw", "%.6g" % intra, "--comm-progress", progress,
           "--compute-rate", "%.6g" % rate, "--tokens-per-step", "256", "--seq-len", "64",
           "--latency", "%.6g" % lat]
    rows = {}
    for line in subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines():
        c = line.split()
        if len(c) == 10 and c[0] in "0123" and c[1] in ("flat", "hierarchical", "hpz", "hybrid"):
            rows[(int(c[0]), c[1])] = {"link": int(c[2]), "comm": float(c[6]), "compute": float(c[7]), "step": float(c[8])}
    return rows

def step_of(hier, s, inter, intra, rate, progress, lat=0.0):
    return model(hier, inter, intra, rate, progress, lat)[(s, results[hier][s]["routing"])]["step"]

modelled = hierarchies

def fit_latency(intra, rate):
    """Least squares: the unshaped steps less the phased model's without
    latency, against the exposed phases a step (its step at 1 s a phase less
    at 0), through 0; none below 0."""
    num = den = 0.0
    for hier in modelled:
        for s in stages:
            p0 = step_of(hier, s, intra, intra, rate, "phased")
            phases = step_of(hier, s, intra, intra, rate, "phased", 1.0) - p0
            num += (results[hier][s]["unshaped_s"] - p0) * phases
            den += phases * phases
    return max(0.0, num / den) if den else 0.0

if predict and t1:
    import subprocess
    # FLOP a step of one rank: zero-report's compute time at 1 FLOP/s
    one = model(hierarchies[0], 1e9, 1e9, 1.0, "async")
    flops = next(v["compute"] for (s, _), v in sorted(one.items()) if s == stages[0])
    share = min(1.0, cores / N)
    rate1 = flops / t1
    crate = rate1 * share
    intra = float(intra_bw) if intra_bw else 1.2e9 * 4 / N
    lat = fit_latency(intra, crate) if latency == "fit" else float(latency)
    pct = lambda p, m: "%+6.1f%%" % (100 * (p / m - 1)) if m else "-"
    print()
    print("the step-time model (zero-report --estimate --preset train-gpt2-d%d ...), calibrated on this run:" % depth)
    print("  compute: %.4g FLOP a step per rank / %.3f s (one rank) = %.4g FLOP/s, x min(1, %d cores / %d ranks) = %.4g FLOP/s per rank" % (
        flops, t1, rate1, cores, N, crate))
    print("  inter-host: %s = %.4g B/s shaped, %.4g B/s unshaped (= intra); intra-host %.4g B/s per rank" % (rate, rate_Bps, intra, intra))
    print("  latency: %.4g s a phase of a collective (%s)" % (lat, "fitted to the unshaped runs, phased" if latency == "fit" else "given"))
    print("  model: --comm-progress polled (compute + comm), async (the overlap rule), phased (the rule for one-phase")
    print("  collectives, chained ones exposed) with latency 0, and phased with it (+L); diff: model / measured - 1")
    print("%-12s %-5s %9s %8s %8s %9s %8s %8s %8s %8s %8s %8s %8s %8s" % (
        "routing", "stage", "unshaped", "phased+L", "diff", rate, "polled", "diff", "async", "diff",
        "phased", "diff", "phased+L", "diff"))
    kinds = ("polled", "async", "phased", "phased+L")
    worst = {k: 0 for k in kinds}
    for hier in modelled:
        for s in stages:
            r = results[hier][s]
            m0, m1 = r["unshaped_s"], r["shaped_mean_s"]
            p = {"unshaped": step_of(hier, s, intra, intra, crate, "phased", lat),
                 "polled": step_of(hier, s, rate_Bps, intra, crate, "polled"),
                 "async": step_of(hier, s, rate_Bps, intra, crate, "async"),
                 "phased": step_of(hier, s, rate_Bps, intra, crate, "phased"),
                 "phased+L": step_of(hier, s, rate_Bps, intra, crate, "phased", lat)}
            r["model"] = dict(p, latency_s=lat)
            if m1:
                for k in kinds:
                    worst[k] = max(worst[k], abs(p[k] / m1 - 1))
            print("%-12s %-5d %9.3f %8.3f %8s %9s" % (hier, s, m0, p["unshaped"], pct(p["unshaped"], m0),
                  "%.3f" % m1 if m1 else "-") + "".join(" %8.3f %8s" % (p[k], pct(p[k], m1)) for k in kinds))
    if shaped:
        print("  at %s, the largest difference: " % rate + ", ".join(
            "%s %.1f%%" % (k, 100 * worst[k]) for k in kinds))
    if len(modelled) > 1 and shaped:
        base = modelled[0]
        for hier in modelled[1:]:
            print("  %s / %s at %s: " % (hier, base, rate) + ", ".join(
                "stage %d measured %.3f, phased+L %.3f" % (
                    s, results[hier][s]["shaped_mean_s"] / results[base][s]["shaped_mean_s"],
                    results[hier][s]["model"]["phased+L"] / results[base][s]["model"]["phased+L"])
                for s in stages if s in results[base] and results[hier][s]["shaped_mean_s"] and results[base][s]["shaped_mean_s"]))
    json.dump({"hosts": H, "ranks_per_host": R, "model": "d%d" % depth, "short": short, "long": long_,
               "rate_Bps": rate_Bps if shaped else None, "single_s": t1s, "results": results,
               "calibration": {"flops_per_step": flops, "rate_one_rank": rate1, "share": share,
                               "intra_bw": intra, "latency_s": lat, "latency": latency}},
              open(f"{out}/summary.json", "w"), indent=1)
if bad:
    print("\nFAIL (beyond %.1f%%):\n  " % check + "\n  ".join(bad))
    sys.exit(1)
if check is not None:
    print("\nevery link within %.1f%% of the count and of the formula, every stage and routing" % check)
PY
