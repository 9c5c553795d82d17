#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# GPT-2 on 2 ranks for 200 steps in bf16 and in fp16 (16-bit parameters and
# gradients, f32 master copy and moments; fp16 with the dynamic loss scale)
# tracks the same run in f32: the final loss, and the mean of the last 50,
# within 2%. A small shape and a moderate learning rate keep it to seconds
# (at lr 1e-3 this tiny model's f32 run is itself chaotic). Then fp16 with
# the last rank's gradients made inf in step 5: every rank skips that step,
# and the scale halves (hysteresis 1) or holds (DeepSpeed's default 2).
source "$(dirname "$0")/common.sh"
GPT=$1
ARGS=(--layers 2 --channels 128 --heads 4 --batch 4 --seq-len 32 --stage 2
      --steps 200 --lr 3e-4 --val-every 0 --sample-len 0)
run() { # run NAME [config json]
    local name=$1 cfg=()
    if [ -n "${2:-}" ]; then
        printf '%s' "$2" >"$WORK/$name.json"
        cfg=(--config "$WORK/$name.json")
    fi
    run_ranks 2 "$GPT" "${ARGS[@]}" "${cfg[@]}" --mem-report "$WORK/$name-%r.json" ||
        { cat "$WORK/out"; fail "$name run"; }
    cp "$WORK/out" "$WORK/$name.out"
}
run f32
run bf16 '{"bf16": {"enabled": true}}'
run fp16 '{"fp16": {"enabled": true}}'
python3 - "$WORK" <<'PY' || fail "16-bit training does not track f32"
import json, statistics, sys
work = sys.argv[1]
def losses(name):
    """The per-step losses rank 0 prints (4 decimals), the last one exact."""
    steps, final = [], None
    for line in open(f"{work}/{name}.out"):
        if line.startswith("step ") and "| loss " in line:
            steps.append(float(line.split("| loss ")[1].split()[0]))
        elif line.startswith("final loss "):
            final = float(line.split()[2])
    return steps[:-1] + [final]
f32 = losses("f32")
assert len(f32) == 200, len(f32)
for name in ("bf16", "fp16"):
    got = losses(name)
    final = abs(got[-1] - f32[-1]) / f32[-1]
    last50 = abs(statistics.mean(got[-50:]) - statistics.mean(f32[-50:])) / statistics.mean(f32[-50:])
    print(f"{name}: final loss {got[-1]:.4f} against {f32[-1]:.4f} ({100 * final:.3f}%), "
          f"last 50 {100 * last50:.3f}% apart")
    assert final < 0.02 and last50 < 0.02, name
    r = json.load(open(f"{work}/{name}-0.json"))
    assert r["bytes_per_param_element"] == {"param": 2, "grad": 2, "master": 4, "optim": 8}, r
    # stage 2: the full 16-bit parameters, an f32 master copy of this rank's shard
    dev, padded = r["tiers"]["device"]["categories"], r["padded_param_count"]
    assert dev["param"]["peak"] == 2 * padded, (dev["param"], padded)
    assert dev["master"]["peak"] == 4 * padded // r["world_size"], (dev["master"], padded)
PY
for hysteresis in 1 2; do
    printf '{"fp16": {"enabled": true, "hysteresis": %d}}' "$hysteresis" >"$WORK/over.json"
    run_ranks 2 "$GPT" "${ARGS[@]}" --steps 8 --config "$WORK/over.json" --overflow-at 5 ||
        { cat "$WORK/out"; fail "fp16 run with an overflow"; }
    scale=$([ "$hysteresis" -eq 1 ] && echo 32768 || echo 65536)
    for rank in 0 1; do
        grep -q "^fp16 on rank $rank: 1 step(s) skipped for overflow, loss scale $scale\$" \
            "$WORK/out" || { cat "$WORK/out"; fail "rank $rank, hysteresis $hysteresis"; }
    done
    grep -q '^final loss' "$WORK/out" || fail "no final loss after the overflow"
done
echo "PASS"
