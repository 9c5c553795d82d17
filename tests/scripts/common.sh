# SPDX-License-Identifier: Apache-2.0
# tests/scripts/common.sh — shared by the example-driving test scripts.
# ZRT_MPIRUN (set by ctest) is the mpirun command with its flags.
set -euo pipefail
MPIRUN=${ZRT_MPIRUN:-mpirun --oversubscribe --bind-to none}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/zrt-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# run_ranks N PROGRAM ARGS... : runs PROGRAM on N ranks, output in $WORK/out
run_ranks() {
    local n=$1; shift
    # shellcheck disable=SC2086
    $MPIRUN -np "$n" "$@" >"$WORK/out" 2>&1
}
# check_aborted LABEL STATUS ELAPSED LIMIT : a job run under `timeout` that
# was to end by an abort did: not hung (status 124), not 0, within LIMIT s.
check_aborted() {
    ((${2} != 124)) || { cat "$WORK/out"; fail "$1: the job hung"; }
    ((${2} != 0)) || { cat "$WORK/out"; fail "$1: the job ended with status 0, not by abort"; }
    awk -v t="$3" -v l="$4" 'BEGIN { exit !(t < l) }' ||
        { cat "$WORK/out"; fail "$1: took ${3}s (limit ${4}s)"; }
}
# check_no_process LABEL PATTERN : no process's command line matches PATTERN
# (pgrep -f), given 4 s after the job's end.
check_no_process() {
    for _ in $(seq 20); do
        pgrep -f -- "$2" >/dev/null || break
        sleep 0.2
    done
    ! pgrep -af -- "$2" || fail "$1: processes left after the job ended"
}
# check_plan DIR RANKS [traffic] : the RANKS memory reports in DIR (r*.json)
# each show planned peaks equal to the measured ones, per tier and category;
# with "traffic", every recorded step's layer bytes equal the theory's too,
# to this host and to others.
check_plan() {
    python3 - "$1" "$2" "${3:-}" <<'PY' || fail "$1: the memory plan or the traffic is off"
import glob, json, os, sys
bad, traffic = [], sys.argv[3] == "traffic"
reports = sorted(glob.glob(os.path.join(sys.argv[1], "r*.json")))
for path in reports:
    r = json.load(open(path))
    for tier, got in r["tiers"].items():
        plan = r["plan"][tier]
        if got["peak"] != plan["peak"]:
            bad.append(f"rank {r['rank']} {tier}: planned {plan['peak']}, measured {got['peak']}")
        for cat, c in got["categories"].items():
            if c["peak"] != plan["categories"][cat]["peak"]:
                bad.append(f"rank {r['rank']} {tier}/{cat}: planned "
                           f"{plan['categories'][cat]['peak']}, measured {c['peak']}")
    for s in r["comm"]["steps"] if traffic else []:
        t = r["comm"]["theory"]
        want, got = t["layers"], s["layers"]
        sent = got["same_host"] + got["other_host"]
        if sent != t["bytes_per_step"] or got != want:
            bad.append(f"rank {r['rank']} step {s['step']}: layer bytes {got}, "
                       f"theory {want} ({t['bytes_per_step']} in all)")
for line in bad:
    print("OFF:", line)
if len(reports) != int(sys.argv[2]):
    print(f"OFF: {len(reports)} reports, not {sys.argv[2]}")
sys.exit(1 if bad or len(reports) != int(sys.argv[2]) else 0)
PY
}
# expect_refused RANKS PATTERN WHAT PROGRAM ARGS... : PROGRAM on RANKS ranks
# fails, and its output has a line matching PATTERN (grep -E).
expect_refused() {
    local ranks=$1 pattern=$2 what=$3
    shift 3
    if run_ranks "$ranks" "$@"; then
        cat "$WORK/out"
        fail "$what was accepted"
    fi
    grep -Eq -- "$pattern" "$WORK/out" || { cat "$WORK/out"; fail "$what: no sentence matching '$pattern'"; }
}
# refuse_d4 PATTERN WHAT STAGE CONFIG_JSON : $TRAIN (train_gpt2) on 4 ranks,
# GPT-2 d4 at STAGE with the config CONFIG_JSON, is refused before training
# with a line matching PATTERN.
refuse_d4() {
    echo "$4" >"$WORK/bad.json"
    expect_refused 4 "$1" "$2" "$TRAIN" --model d4 --stage "$3" --steps 1 --val-every 0 \
        --sample-len 0 --config "$WORK/bad.json"
}
# train_gpt2_d4 RANKS CONFIG STAGE DUMP [ARGS...] : $TRAIN (train_gpt2) trains
# GPT-2 d4 on RANKS ranks for $STEPS steps with CONFIG at STAGE and dumps its
# parameters to DUMP; prints the final loss.
train_gpt2_d4() {
    local ranks=$1 config=$2 stage=$3 dump=$4
    shift 4
    run_ranks "$ranks" "$TRAIN" --model d4 --stage "$stage" --steps "$STEPS" --val-every 0 \
        --sample-len 0 --config "$config" --dump-params "$dump" "$@" ||
        { cat "$WORK/out"; fail "train_gpt2 on $ranks ranks at stage $stage with $config"; }
    grep '^final loss' "$WORK/out"
}
