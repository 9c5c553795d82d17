#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# With --device-mem below what stage 0 needs, stage 0 is refused before it
# allocates anything, by the memory plan, with a message naming the bytes
# needed, when in the step, what holds them and the budget, and exits
# non-zero without a crash; the same run at stage 3 trains.
source "$(dirname "$0")/common.sh"
MLP=$1
# 642,903 parameters in 9 layers. Stage 0 needs 16 bytes each (9.8 MiB);
# stage 3 on 2 ranks 8 bytes each (4.9 MiB) plus bounded buffers (~2 MiB).
printf '%s' '{"zero_optimization": {"stage3_prefetch_bucket_size": 100000,
  "reduce_bucket_size": 100000, "stage3_param_persistence_threshold": 0}}' \
  >"$WORK/cfg.json"
ARGS=(--hidden 300 --depth 8 --steps 3 --config "$WORK/cfg.json")
BUDGET=8M
if run_ranks 2 "$MLP" "${ARGS[@]}" --stage 0 --device-mem "$BUDGET"; then
    cat "$WORK/out"; fail "stage 0 trained within $BUDGET"
fi
cat "$WORK/out"
grep -Eq "device memory budget exceeded by the memory plan: stage 0 needs [0-9.]+ MiB .* per rank at (backward|reduce) layer [0-9]+ of step [0-9]" "$WORK/out" ||
    fail "no planned bytes and phase"
grep -Eq "\(param [0-9.]+ MiB .*, grad .*, optim .*, comm .*, activation .*\), over the 8.00 MiB .* budget; nothing was allocated" "$WORK/out" ||
    fail "no categories or budget"
grep -Eiq "segmentation|core dumped|signal" "$WORK/out" && fail "crashed"
grep -q '^step 1/' "$WORK/out" && fail "stage 0 began training"
run_ranks 2 "$MLP" "${ARGS[@]}" --stage 3 --device-mem "$BUDGET" ||
    { cat "$WORK/out"; fail "stage 3 did not train within $BUDGET"; }
grep -q '^final loss' "$WORK/out" || fail "stage 3 printed no final loss"

# Stage 3 with the optimizer state and the parameter shards on NVMe trains a
# model whose model states (16 bytes per parameter over 2 ranks) are more
# than 4x the device budget; without the offload the same run cannot start.
BIG=(--hidden 1000 --depth 10 --steps 2 --lr 0.0003 --config "$WORK/cfg.json"
     --stage 3 --device-mem 17M)
if run_ranks 2 "$MLP" "${BIG[@]}"; then
    cat "$WORK/out"; fail "stage 3 without offload fit in 17M"
fi
grep -q "device memory budget exceeded" "$WORK/out" || { cat "$WORK/out"; fail "no budget error"; }
run_ranks 2 "$MLP" "${BIG[@]}" --offload-optimizer nvme --offload-param nvme \
    --nvme-path "$WORK/swap" --mem-report "$WORK/big%r.json" ||
    { cat "$WORK/out"; fail "stage 3 with nvme offload did not train in 17M"; }
grep -q '^final loss' "$WORK/out" || fail "no final loss with nvme offload"
python3 - "$WORK/big0.json" <<'PY' || fail "the memory report does not show states > 4x the budget"
import json, sys
r = json.load(open(sys.argv[1]))
device = r["tiers"]["device"]
states = 16 * r["padded_param_count"] / r["world_size"]
print(f"model states {states / 2**20:.1f} MiB per rank = {states / device['limit']:.2f} x "
      f"the {device['limit'] / 2**20:.0f} MiB budget; device peak {device['peak'] / 2**20:.1f} MiB")
assert device["peak"] <= device["limit"] and states > 4 * device["limit"]
for cat in ("param", "grad", "optim"):
    assert device["categories"][cat]["peak"] == 0, cat
PY
echo "PASS"
