#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# qwZ (zero_quantized_weights, ZeRO++'s quantized weight gather): GPT-2 d4 on
# 4 ranks at stage 3 for 10 steps.
#   - a qwZ run repeats bit for bit;
#   - its parameters differ from plain stage 3 (the gathered copy is lossy),
#     but its final loss is within 2 % (relative) of plain stage 3's;
#   - each rank's memory plan matches its measured peaks to the byte (the
#     quantized send and receive buffers are the "qwz" category);
#   - the traffic (the mlp example, stage 3, nothing persistent, no
#     prefetch, no tied weights): every step's layer bytes equal the theory,
#     whose two gathers move zrt__qwz_bytes(shard) a peer, not 4 shard;
#     the same with hybrid sharding (hybrid_shard_size 2);
#   - the plan, also with prefetch and persistent layers on 3 ranks, block
#     100, and with the parameter shards on the host;
#   - the keys and combinations qwZ cannot take are refused, named.
source "$(dirname "$0")/common.sh"
TRAIN=$1 COMPARE=$2 MLP=$3
STEPS=10
BOUND=0.02 # relative difference of the final loss against plain stage 3
echo '{"zero_optimization": {"zero_quantized_weights": true}, "log_level": "info"}' \
    >"$WORK/q.json"
echo '{}' >"$WORK/plain.json"
train() { train_gpt2_d4 4 "$@"; }
loss() { grep '^final loss' "$WORK/out" | awk '{print $3}'; }
mkdir -p "$WORK/q"
train "$WORK/plain.json" 3 "$WORK/p3.bin"
lp=$(loss)
train "$WORK/q.json" 3 "$WORK/q3.bin" --mem-report "$WORK/q/r%r.json"
lq=$(loss)
grep -q 'qwZ: stage 3 gathers move int8 blocks of 256 elements' "$WORK/out" ||
    { cat "$WORK/out"; fail "no log line saying qwZ is on"; }
check_plan "$WORK/q" 4
python3 - "$WORK/q/r0.json" <<'PY' || fail "no qwz bytes in the memory report"
import json, sys
peak = json.load(open(sys.argv[1]))["tiers"]["device"]["categories"]["qwz"]["peak"]
print(f"qwz gather buffers: peak {peak} bytes on rank 0")
sys.exit(0 if peak > 0 else 1)
PY
train "$WORK/q.json" 3 "$WORK/q3b.bin"
cmp -s "$WORK/q3.bin" "$WORK/q3b.bin" || fail "qwZ does not repeat bit for bit"
! cmp -s "$WORK/p3.bin" "$WORK/q3.bin" || fail "qwZ equals plain stage 3: nothing was quantized"
python3 - "$lp" "$lq" "$BOUND" <<'PY' || fail "qwZ's loss is off plain stage 3's by more than the bound"
import sys
p, q, bound = map(float, sys.argv[1:])
rel = abs(q - p) / abs(p)
print(f"final loss: plain {p:.6f}, qwZ {q:.6f}, relative difference {rel:.2e} (bound {bound})")
sys.exit(0 if rel <= bound else 1)
PY
# Traffic against the theory, and against plain stage 3.
cat >"$WORK/mq.json" <<'JSON'
{"zero_optimization": {"zero_quantized_weights": true, "zero_quantized_block_size": 64,
                       "stage3_param_persistence_threshold": 0,
                       "stage3_prefetch_bucket_size": 0}}
JSON
cat >"$WORK/mp.json" <<'JSON'
{"zero_optimization": {"stage3_param_persistence_threshold": 0,
                      "stage3_prefetch_bucket_size": 0}}
JSON
mkdir -p "$WORK/mq" "$WORK/mp"
run_ranks 4 "$MLP" --stage 3 --steps 3 --config "$WORK/mq.json" \
    --mem-report "$WORK/mq/r%r.json" || { cat "$WORK/out"; fail "mlp with qwZ"; }
check_plan "$WORK/mq" 4 traffic
run_ranks 4 "$MLP" --stage 3 --steps 3 --config "$WORK/mp.json" \
    --mem-report "$WORK/mp/r%r.json" || { cat "$WORK/out"; fail "mlp plain"; }
check_plan "$WORK/mp" 4 traffic
python3 - "$WORK/mq/r0.json" "$WORK/mp/r0.json" <<'PY' || fail "qwZ moved no fewer bytes"
import json, sys
q, p = (json.load(open(f))["comm"] for f in sys.argv[1:])
sent = lambda c: [s["layers"]["same_host"] + s["layers"]["other_host"] for s in c["steps"]]
print(f"layer bytes per step, rank 0: qwZ {sent(q)} (theory {q['theory']['bytes_per_step']}), "
      f"plain {sent(p)} (theory {p['theory']['bytes_per_step']}): "
      f"{q['theory']['bytes_per_step'] / p['theory']['bytes_per_step']:.4f} of plain")
assert q["theory"]["qwz_block_size"] == 64 and p["theory"]["qwz_block_size"] == 0
sys.exit(0 if max(sent(q)) < min(sent(p)) else 1)
PY
# With hybrid sharding (shard groups of 2): the gathers run in the group,
# planned and counted the same way.
cat >"$WORK/mh.json" <<'JSON'
{"hybrid_shard_size": 2,
 "zero_optimization": {"zero_quantized_weights": true, "stage3_param_persistence_threshold": 0,
                       "stage3_prefetch_bucket_size": 0}}
JSON
mkdir -p "$WORK/mh"
run_ranks 4 "$MLP" --stage 3 --steps 3 --config "$WORK/mh.json" \
    --mem-report "$WORK/mh/r%r.json" || { cat "$WORK/out"; fail "mlp with qwZ and hybrid"; }
check_plan "$WORK/mh" 4 traffic
# Prefetch and persistent layers on, 3 ranks (shards not a multiple of 4
# elements: the padding), block 100, parameter shards in device memory and
# on the host: planned to the byte.
printf '%s' '{"zero_optimization": {"zero_quantized_weights": true,
  "zero_quantized_block_size": 100, "reduce_bucket_size": 50000,
  "allgather_bucket_size": 50000, "stage3_prefetch_bucket_size": 60000,
  "stage3_param_persistence_threshold": 1000}}' >"$WORK/ms.json"
for off in "" "--offload-param cpu"; do
    rm -rf "$WORK/ms" && mkdir -p "$WORK/ms"
    # shellcheck disable=SC2086
    run_ranks 3 "$MLP" --stage 3 --steps 3 --config "$WORK/ms.json" $off \
        --mem-report "$WORK/ms/r%r.json" || { cat "$WORK/out"; fail "mlp qwZ 3 ranks $off"; }
    check_plan "$WORK/ms" 3
done
# Refused before training, named.
refuse_d4 "'zero_quantized_weights' is true but the stage is not 3" "qwZ at stage 2" 2 \
    '{"zero_optimization": {"zero_quantized_weights": true}}'
refuse_d4 "'zero_quantized_weights' is true but the parameters are 16-bit" "qwZ with bf16" 3 \
    '{"zero_optimization": {"zero_quantized_weights": true}, "bf16": {"enabled": true}}'
refuse_d4 "'zero_quantized_weights' is true but 'zero_hpz_partition_size' is set" \
    "qwZ with hpZ" 3 \
    '{"zero_optimization": {"zero_quantized_weights": true, "zero_hpz_partition_size": 2}}'
refuse_d4 "'zero_quantized_weights' is true but offload_param.device is \"nvme\"" \
    "qwZ with NVMe parameters" 3 \
    "{\"zero_optimization\": {\"zero_quantized_weights\": true, \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"$WORK\"}}}"
refuse_d4 "zero_quantized_block_size" "block size 0" 3 \
    '{"zero_optimization": {"zero_quantized_weights": true, "zero_quantized_block_size": 0}}'
refuse_d4 "zero_quantized_weights" "a number for the boolean" 3 \
    '{"zero_optimization": {"zero_quantized_weights": 2}}'
echo "PASS"
