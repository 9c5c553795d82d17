#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# hpZ (zero_hpz_partition_size, ZeRO++'s hierarchical partitioning): GPT-2 d4
# on 4 ranks at stage 3 in hpZ groups of 2 ranks.
#   - the parameters are byte-identical to plain stage 3 and equal to stage 0
#     (with the default prefetch and persistence, and with neither);
#   - each rank's memory plan matches its measured peaks to the byte, and the
#     "hpz" category holds 1/P of the flat parameters of the layers that are
#     not persistent;
#   - the traffic: the report's theory is 2 psi (N-1)/N + psi (P-1)/P, and
#     every gather after a layer's first in the step (the backward's, and
#     the tied embedding's second use) went to the group: it sent (P-1)/P of
#     the layer, where a plain run sends (N-1)/N;
#   - a P that does not divide the world, and P at stage 2, are refused with
#     a sentence.
source "$(dirname "$0")/common.sh"
TRAIN=$1 COMPARE=$2
STEPS=6
echo '{"zero_optimization": {"zero_hpz_partition_size": 2}, "log_level": "info"}' \
    >"$WORK/hpz.json"
echo '{}' >"$WORK/plain.json"
cat >"$WORK/hpz0.json" <<'JSON'
{"zero_optimization": {"zero_hpz_partition_size": 2, "stage3_param_persistence_threshold": 0,
                       "stage3_prefetch_bucket_size": 0}}
JSON
cat >"$WORK/plain0.json" <<'JSON'
{"zero_optimization": {"stage3_param_persistence_threshold": 0,
                       "stage3_prefetch_bucket_size": 0}}
JSON
# train CONFIG STAGE DUMP [ARGS...] : on 4 ranks.
train() { train_gpt2_d4 4 "$@"; }
# hpz_share DIR P: every rank's hpz bytes are 1/P of the flat parameters of
# the layers that are not persistent (padded psi less param-persist).
hpz_share() {
    python3 - "$1" "$2" <<'PY' || fail "$1: the hpz category is not 1/P of the gathered layers"
import glob, json, sys
P = int(sys.argv[2])
for path in sorted(glob.glob(sys.argv[1] + "/r*.json")):
    r = json.load(open(path))
    dev = r["tiers"]["device"]["categories"]
    b = r["comm"]["theory"]["bytes_per_element"]
    want = (r["comm"]["theory"]["psi_elements"] * b - dev["param-persist"]["peak"]) // P
    got = dev["hpz"]["peak"]
    if got != want or got == 0:
        sys.exit(f"{path}: hpz {got} bytes, want {want}")
print(f"hpz secondary shards: {want} bytes per rank")
PY
}
# traffic HPZ_DIR PLAIN_DIR N P: the theory's formula, and the bytes beyond
# it (gathers after a layer's first) scaled from (N-1)/N to (P-1)/P.
traffic() {
    python3 - "$@" <<'PY' || fail "the hpZ traffic is off"
import json, sys
hdir, pdir, N, P = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for rank in range(N):
    h = json.load(open(f"{hdir}/r{rank}.json"))["comm"]
    p = json.load(open(f"{pdir}/r{rank}.json"))["comm"]
    t = h["theory"]
    psi_b = t["psi_elements"] * t["bytes_per_element"]
    want = 2 * psi_b // N * (N - 1) + psi_b // P * (P - 1)
    assert t["hpz_partition_size"] == P, t
    assert t["bytes_per_step"] == want, (t, want)
    assert p["theory"]["bytes_per_step"] == 3 * psi_b // N * (N - 1), p["theory"]
    for hs, ps in zip(h["steps"], p["steps"]):
        sent = lambda s: s["layers"]["same_host"] + s["layers"]["other_host"]
        extra_h = sent(hs) - t["bytes_per_step"]
        extra_p = sent(ps) - p["theory"]["bytes_per_step"]
        # extra_h / ((P-1)/P) == extra_p / ((N-1)/N)
        assert extra_h * P * (N - 1) == extra_p * N * (P - 1), (rank, hs, ps)
        assert sent(hs) < sent(ps), (rank, hs, ps)
print("hpZ traffic: theory 2 psi (N-1)/N + psi (P-1)/P; re-gathers within the group")
PY
}
train "$WORK/plain.json" 0 "$WORK/s0.bin"
mkdir -p "$WORK/p3" "$WORK/h3" "$WORK/p0" "$WORK/h0"
train "$WORK/plain.json" 3 "$WORK/p3.bin"
train "$WORK/hpz.json" 3 "$WORK/h3.bin" --mem-report "$WORK/h3/r%r.json"
grep -q 'hpZ: 2 groups of 2 ranks (zero_hpz_partition_size 2)' "$WORK/out" ||
    { cat "$WORK/out"; fail "no log line saying the hpZ groups"; }
check_plan "$WORK/h3" 4
hpz_share "$WORK/h3" 2
cmp -s "$WORK/p3.bin" "$WORK/h3.bin" || fail "hpZ differs from plain stage 3"
"$COMPARE" "$WORK/s0.bin" "$WORK/h3.bin" || fail "hpZ differs from stage 0"
# No persistent layer and no prefetch: every layer gathered in the backward.
train "$WORK/plain0.json" 3 "$WORK/p30.bin" --mem-report "$WORK/p0/r%r.json"
train "$WORK/hpz0.json" 3 "$WORK/h30.bin" --mem-report "$WORK/h0/r%r.json"
check_plan "$WORK/h0" 4
hpz_share "$WORK/h0" 2
cmp -s "$WORK/p30.bin" "$WORK/h30.bin" || fail "hpZ differs from plain stage 3 (no prefetch)"
"$COMPARE" "$WORK/s0.bin" "$WORK/h30.bin" || fail "hpZ (no prefetch) differs from stage 0"
traffic "$WORK/h0" "$WORK/p0" 4 2
# Refused before training, named.
echo '{"zero_optimization": {"zero_hpz_partition_size": 3}}' >"$WORK/bad.json"
expect_refused 4 "'zero_hpz_partition_size' is 3 but the job has 4 ranks" \
    "zero_hpz_partition_size 3 on 4 ranks" \
    "$TRAIN" --model d4 --stage 3 --steps 1 --val-every 0 --sample-len 0 \
    --config "$WORK/bad.json"
expect_refused 2 "'zero_hpz_partition_size' is 2 but the stage is not 3" \
    "zero_hpz_partition_size 2 at stage 2" \
    "$TRAIN" --model d4 --stage 2 --steps 1 --val-every 0 --sample-len 0 \
    --config "$WORK/hpz.json"
echo "PASS"
