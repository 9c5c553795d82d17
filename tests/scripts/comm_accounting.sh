#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The communicator's traffic accounting: each rank's memory report has, per
# optimizer step, the bytes its collectives sent for the model states
# ("comm.steps[].layers", split by whether the peer is on this host), and
# they equal the ZeRO paper's volume exactly: 2 psi (N-1)/N bytes at stages
# 0-2 and 3 psi (N-1)/N at stage 3 (psi: the padded parameter count, "
# padded_param_count", times the parameter dtype's bytes), with every byte
# to a same-host peer on one machine. Stage 3 keeps no layer gathered between
# its forward and backward (persistence threshold and prefetch bucket 0),
# which is when 3 psi holds. The rest (the gradient norm's and the loss's
# all-reduces) is counted apart ("other") and is not zero. The MLP on 2 and 4
# ranks, stages 0-3, f32; GPT-2 in bf16 (2 bytes per element) at stages 2 and
# 3, where its tied embedding layer (wte, wpe: V*C + T*C elements) is entered
# twice in the forward (the embedding, then the head), so stage 3 gathers it
# once more than 3 psi counts: exactly (N-1)/N of it more.
#   comm_accounting.sh MLP TRAIN_GPT2
source "$(dirname "$0")/common.sh"
MLP=$1
TRAIN=$2
STEPS=3
GPT=(--model d4 --channels 64 --max-seq-len 64 --seq-len 32 --val-every 0 --sample-len 0
     --batch 4)
cat >"$WORK/f32.json" <<'JSON'
{"zero_optimization": {"stage3_prefetch_bucket_size": 0,
                       "stage3_param_persistence_threshold": 0}}
JSON
cat >"$WORK/bf16.json" <<'JSON'
{"zero_optimization": {"stage3_prefetch_bucket_size": 0,
                       "stage3_param_persistence_threshold": 0},
 "bf16": {"enabled": true}}
JSON
# check N STAGE PRECISION EXTRA PROGRAM ARGS...: one run, every rank's
# report against the formula, plus EXTRA elements gathered once more.
check() {
    local n=$1 stage=$2 prec=$3 extra=$4 dir="$WORK/n$1-s$2-$3"
    shift 4
    mkdir -p "$dir"
    run_ranks "$n" "$@" --stage "$stage" --steps "$STEPS" --config "$WORK/$prec.json" \
        --mem-report "$dir/r%r.json" || { cat "$WORK/out"; fail "n=$n stage $stage $prec: $1 failed"; }
    python3 - "$dir" "$n" "$stage" "$prec" "$STEPS" "$extra" <<'PY' || fail "n=$n stage $stage $prec"
import json, sys
d, n, stage, prec, steps, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
esize = 2 if prec == "bf16" else 4
for r in range(n):
    rep = json.load(open(f"{d}/r{r}.json"))
    c = rep["comm"]
    psi = rep["padded_param_count"]
    th = c["theory"]
    want = (3 if stage == 3 else 2) * psi * esize * (n - 1) // n
    assert psi % n == 0, f"rank {r}: padded count {psi} is not a multiple of {n}"
    assert th["psi_elements"] == psi and th["bytes_per_element"] == esize, th
    assert th["bytes_per_step"] == want, f"rank {r}: theory {th['bytes_per_step']} != {want}"
    assert th["layers"] == {"same_host": want, "other_host": 0}, th
    assert c["local_size"] == n, c["local_size"]
    assert len(c["steps"]) == steps, c["steps"]
    sent = want + extra * esize * (n - 1) // n
    for s in c["steps"]:
        assert s["layers"] == {"same_host": sent, "other_host": 0}, f"rank {r} step {s['step']}: sent {s['layers']}, theory {th['layers']} + {extra} elements gathered again"
    if n > 1: # the loss all-reduce after each step, the norm's at stages 1-3
        assert c["total"]["other"]["same_host"] > 0, f"rank {r}: no other traffic"
    tot = c["total"]["layers"]
    assert tot["same_host"] == steps * sent and tot["other_host"] == 0, tot
again = f" + {sent - want} (the {extra} elements gathered again)" if extra else ""
print(f"n={n} stage {stage} {prec}: {sent} bytes per rank and step = {'3' if stage == 3 else '2'} psi (N-1)/N{again}, psi {psi} x {esize} bytes, on every rank")
PY
}
for n in 2 4; do
    for stage in 0 1 2 3; do
        check "$n" "$stage" f32 0 "$MLP"
    done
done
EMBED=$((256 * 64 + 64 * 64)) # V*C + T*C of the GPT-2 below (byte vocabulary)
check 2 2 bf16 0 "$TRAIN" "${GPT[@]}"
check 4 3 bf16 "$EMBED" "$TRAIN" "${GPT[@]}"
echo "PASS"
