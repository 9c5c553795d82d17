#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/bench_cluster.sh — bytes on each host's link, and step time, for GPT-2
# across the namespace cluster (scripts/cluster.sh): 2 hosts x 2 ranks through
# zero-launch, stages 0-3, each with --mem-report.
#
# Part 1 (unshaped links): per stage, a run of SHORT steps and one of LONG
# steps; the veth byte counters of each host's link (bridge side) are read
# before and after each run, and (LONG run - SHORT run) / (LONG - SHORT) is a
# steady step's traffic, without the setup, teardown and report-dump traffic
# that both runs share. Beside it, the same difference of the communicator's
# own count (the reports' "comm.total", other_host, summed over the host's
# ranks: model states and the rest) and the formula (the reports'
# "comm.theory.layers.other_host" summed over the host's ranks, plus, at stage
# 3, the tied embedding's second gather; see docs/design.md, "Traffic
# accounting"). The wire carries TCP/IP and Ethernet headers as well: the
# counters count each packet's Ethernet (14), IP (20) and TCP (20 + 12 of
# timestamps) headers, not the preamble or FCS; "hdr" below is packets x 66
# bytes, and "payload" the counted bytes less it.
#
# Part 2: the step time (train_gpt2's "timing" line: the mean over ranks of
# the steady steps) of the LONG run, unshaped and with every link shaped to
# RATE (tc tbf, each direction), and the ratio step time / (bytes / rate),
# bytes being the most any host's link carried one way in a step.
#
#   bench/bench_cluster.sh [--build DIR | --zero-launch F --train F]
#                          [--model d4] [--short 5] [--long 15]
#                          [--stages "0 1 2 3"] [--rate 1gbit] [--no-shaped]
#                          [--check PCT] [--comm-hierarchy auto|flat|hierarchical]
# --check PCT: exit 1 unless every host's link bytes are within PCT % of the
# count and of the formula, each way, at every stage (the ctest
# tests/scripts/cluster_bytes.sh uses it). Root only; exits 77 where network
# namespaces cannot be made. Writes its table to stdout; the runs' outputs
# are kept under $OUTDIR (default a temporary directory, removed).
# --comm-hierarchy: the config's "comm_hierarchy" (default auto: hierarchical
# on 2 hosts x 2 ranks, reductions and all-gathers within each host first and
# then across; flat: every rank to every rank).
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
HIERARCHY=auto
WAIT_S=${WAIT_S:-300}
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
        --comm-hierarchy) HIERARCHY=$2; shift 2 ;;
        -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench_cluster.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
ZL=${ZL:-$BUILD/bin/zero-launch}
TRAIN=${TRAIN:-$BUILD/bin/train_gpt2}
CLUSTER=$ROOT_DIR/scripts/cluster.sh
AGENT=$ROOT_DIR/scripts/cluster-agent.sh
for f in "$ZL" "$TRAIN"; do
    [ -x "$f" ] || { echo "bench_cluster.sh: no $f (build it, or give --build)" >&2; exit 2; }
done
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

# up [--rate R] : 2 hosts of 2 slots; waits while another run's cluster is up.
up() {
    local status start=$SECONDS
    while :; do
        status=0
        "$CLUSTER" up 2 --slots 2 "$@" >"$OUT/up" 2>&1 || status=$?
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

# counters : rx/tx bytes and packets of zrt-v1 and zrt-v2 (bridge side: rx is
# what the host sent).
counters() {
    local i d k
    for i in 1 2; do
        for d in rx tx; do
            for k in bytes packets; do
                printf '%s ' "$(cat "/sys/class/net/zrt-v$i/statistics/${d}_$k")"
            done
        done
    done
    echo
}

cat >"$OUT/zero.json" <<JSON
{"zero_optimization": {"stage3_prefetch_bucket_size": 0,
                       "stage3_param_persistence_threshold": 0},
 "comm_hierarchy": "$HIERARCHY"}
JSON
ROOTOPT=()
[ "$(id -u)" != 0 ] || ROOTOPT=(--allow-run-as-root)

# run TAG STAGE STEPS : one job from host 1; counters before/after in
# $OUT/TAG.ctr, reports in $OUT/TAG/, output in $OUT/TAG.out.
run() {
    local tag=$1 stage=$2 steps=$3
    mkdir -p "$OUT/$tag"
    counters >"$OUT/$tag.ctr"
    "$CLUSTER" exec 1 "$ZL" "${ROOTOPT[@]}" --bind none --env OPENBLAS_NUM_THREADS=1 \
        --mca mpi_yield_when_idle 1 --hostfile "$HOSTFILE" --ranks-per-host 2 \
        --launch-agent "$AGENT" --net "$SUBNET" -- \
        "$TRAIN" --model "$MODEL" --steps "$steps" --val-every 0 --sample-len 0 \
        --stage "$stage" --config "$OUT/zero.json" --mem-report "$OUT/$tag/r%r.json" \
        >"$OUT/$tag.out" 2>&1 &
    wait $! || { cat "$OUT/$tag.out" >&2; echo "bench_cluster.sh: $tag failed" >&2; exit 1; }
    counters >>"$OUT/$tag.ctr"
}

echo "# bench_cluster.sh: GPT-2 $MODEL, 2 hosts x 2 ranks (zero-launch), steps $SHORT and $LONG, comm_hierarchy $HIERARCHY"
echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
up
for stage in $STAGES; do
    run "s$stage-short" "$stage" "$SHORT"
    run "s$stage-long" "$stage" "$LONG"
done
down
if [ "$SHAPED" = 1 ]; then
    up --rate "$RATE"
    for stage in $STAGES; do
        run "s$stage-shaped" "$stage" "$LONG"
    done
    down
fi
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

DEPTH=${MODEL#d}
python3 - "$OUT" "$SHORT" "$LONG" "$STAGES" "$RATE" "$SHAPED" "$CHECK" "$DEPTH" <<'PY'
import json, re, sys
out, short, long_, stages, rate, shaped, check, depth = sys.argv[1:9]
short, long_, depth = int(short), int(long_), int(depth)
stages = [int(s) for s in stages.split()]
shaped = shaped == "1"
check = float(check) if check else None
units = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
m = re.fullmatch(r"(\d+)(bit|kbit|mbit|gbit)", rate.lower())
rate_Bps = int(m.group(1)) * units[m.group(2)] / 8
HDR = 14 + 20 + 32  # Ethernet, IP, TCP with timestamps
N, L = 4, 2
EMBED = (256 + 1024) * 64 * depth  # wte + wpe: (V + max_seq_len) * C, train_gpt2's byte model
dsteps = long_ - short
HOSTS = {1: (0, 1), 2: (2, 3)}

def ctr(tag):
    a, b = [list(map(int, l.split())) for l in open(f"{out}/{tag}.ctr")]
    d = [y - x for x, y in zip(a, b)]
    # per host: [sent bytes, sent packets, received bytes, received packets]
    return {1: d[0:4], 2: d[4:8]}

def reports(tag):
    return [json.load(open(f"{out}/{tag}/r{r}.json")) for r in range(N)]

def timing(tag):
    for line in open(f"{out}/{tag}.out"):
        m = re.search(r"timing: ([0-9.]+) ms/step", line)
        if m:
            return float(m.group(1)) / 1e3
    return None

def counted(rl, rs, ranks):  # bytes to the other host per step, all collectives
    t = lambda rep: rep["comm"]["total"]["layers"]["other_host"] + rep["comm"]["total"]["other"]["other_host"]
    return sum(t(rl[r]) - t(rs[r]) for r in ranks) / dsteps

def remote_blocks(rep):  # blocks of an all-gather a rank sends to the other host
    c = rep["comm"]
    return N // c["group_size"] - 1 if c.get("hierarchical") else N - L

def formula(rl, ranks, stage):
    f = 0
    for r in ranks:
        th = rl[r]["comm"]["theory"]
        f += th["layers"]["other_host"]
        if stage == 3:  # the tied embedding's second gather, the other host's share
            f += EMBED * th["bytes_per_element"] * remote_blocks(rl[r]) // N
    return f

bad, summary = [], []
print()
print("per step, steady state ((%d steps - %d steps) / %d): bytes over each host's link, each way" % (long_, short, dsteps))
print("%-5s %-4s %-4s %11s %11s %11s %8s %6s %9s %9s %9s" % (
    "stage", "host", "dir", "link", "count", "formula", "packets", "hdr%",
    "link/cnt", "link/for", "payl/cnt"))
for s in stages:
    cs, cl = ctr(f"s{s}-short"), ctr(f"s{s}-long")
    rs, rl = reports(f"s{s}-short"), reports(f"s{s}-long")
    host_max = 0
    for h, ranks in HOSTS.items():
        other = HOSTS[3 - h]
        for d, (bi, pi), src in (("sent", (0, 1), ranks), ("recv", (2, 3), other)):
            link = (cl[h][bi] - cs[h][bi]) / dsteps
            pk = (cl[h][pi] - cs[h][pi]) / dsteps
            c = counted(rl, rs, src)  # what the host received, the other host's ranks sent
            f = formula(rl, src, s)
            payload = link - pk * HDR
            host_max = max(host_max, link)
            print("%-5d %-4s %-4s %11.0f %11.0f %11.0f %8.0f %6.2f %+8.2f%% %+8.2f%% %+8.2f%%" % (
                s, "h%d" % h, d, link, c, f, pk, 100 * pk * HDR / link,
                100 * (link / c - 1), 100 * (link / f - 1), 100 * (payload / c - 1)))
            if check is not None:
                if abs(link / c - 1) * 100 > check:
                    bad.append(f"stage {s} h{h} {d}: link {link:.0f} vs count {c:.0f}")
                if abs(link / f - 1) * 100 > check:
                    bad.append(f"stage {s} h{h} {d}: link {link:.0f} vs formula {f:.0f}")
    t0 = timing(f"s{s}-long")
    ts = timing(f"s{s}-shaped") if shaped else None
    wire = host_max / rate_Bps
    summary.append("%-5d %12.0f %10.3f %9.2f %10s %10s %9s" % (
        s, host_max, t0, t0 / wire, "%.3f" % ts if ts else "-", "%.3f" % wire,
        "%.2f" % (ts / wire) if ts else "-"))
print()
print("step time (s, mean over ranks of the steady steps of the %d-step run); bytes: the most one link carried one way per step" % long_)
print("%-5s %12s %10s %9s %10s %10s %9s" % ("stage", "bytes/step", "unshaped", "ratio", rate, "bytes/rate", "ratio"))
print("\n".join(summary))
if bad:
    print("\nFAIL (beyond %.1f%%):\n  " % check + "\n  ".join(bad))
    sys.exit(1)
if check is not None:
    print("\nevery link within %.1f%% of the count and of the formula, every stage" % check)
PY
