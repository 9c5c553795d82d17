#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# "stage": "auto" walks the ladder (zero/fit.c) with the runtime's memory
# plan: stage 0 when everything fits; as --device-mem shrinks, a higher stage
# or an offload tier, never a rung before the last choice; every choice
# trains within its budget and says why in one log line; a budget nothing
# fits is refused before anything is allocated, in one sentence that names
# every rung (NVMe ones too). With a host budget too, the ladder reaches the
# NVMe rungs.
source "$(dirname "$0")/common.sh"
MLP=$1
printf '%s' '{"zero_optimization": {"stage": "auto", "reduce_bucket_size": 100000,
  "stage3_prefetch_bucket_size": 100000, "stage3_param_persistence_threshold": 0}}' \
  >"$WORK/auto.json"
ARGS=(--hidden 300 --depth 8 --steps 2 --config "$WORK/auto.json" --nvme-path "$WORK/swap")
: >"$WORK/choices"
for budget in 0 10M 8M 7M 6M 4M 2M; do
    run_ranks 2 "$MLP" "${ARGS[@]}" --device-mem "$budget" --mem-report "$WORK/r%r.json" ||
        { cat "$WORK/out"; fail "stage auto with --device-mem $budget did not train"; }
    line=$(grep -o 'stage auto: chose stage [0-3], optimizer [a-z]*, parameters [a-z]*' \
           "$WORK/out") || { cat "$WORK/out"; fail "no 'stage auto: chose' line at $budget"; }
    grep -q '^final loss' "$WORK/out" || fail "no final loss at $budget"
    echo "$budget ${line#stage auto: chose }" | tee -a "$WORK/choices"
    python3 - "$WORK/r0.json" "$budget" <<'PY' || fail "the run at $budget broke its budget"
import json, sys
r = json.load(open(sys.argv[1]))
dev = r["tiers"]["device"]
assert dev["limit"] == 0 or dev["peak"] <= dev["limit"], dev
assert dev["peak"] == r["plan"]["device"]["peak"], (dev["peak"], r["plan"]["device"]["peak"])
PY
done
# A host budget below the moments moves the optimizer to NVMe.
sed 's/^{/{"host_mem_limit": "4M", /' "$WORK/auto.json" >"$WORK/host.json"
run_ranks 2 "$MLP" "${ARGS[@]}" --config "$WORK/host.json" --device-mem 3M ||
    { cat "$WORK/out"; fail "stage auto with a host budget did not train"; }
grep -Eq 'stage auto: chose stage [1-3], optimizer nvme' "$WORK/out" ||
    { cat "$WORK/out"; fail "a host budget did not lead to an nvme rung"; }
# Nothing fits 1M: refused before any allocation, every rung named.
if run_ranks 2 "$MLP" "${ARGS[@]}" --device-mem 1M; then
    cat "$WORK/out"; fail "stage auto trained in 1M"
fi
grep -q 'stage auto: no configuration fits the budgets (device 1.00 MiB' "$WORK/out" ||
    { cat "$WORK/out"; fail "no 'no configuration fits' error"; }
# The refusal names all 16 rungs of 2 ranks with an nvme_path, the NVMe ones
# included, and is not cut (it ends with its source position).
python3 - "$WORK/out" <<'PY' || { cat "$WORK/out"; fail "the refusal does not list every rung"; }
import re, sys
line = next(l.rstrip("\n") for l in open(sys.argv[1]) if "no configuration fits" in l)
rungs = re.findall(r"stage ([0-3]), optimizer (\w+), parameters (\w+) (?:needs|does not)", line)
assert len(rungs) == 16 and len(set(rungs)) == 16, (len(rungs), rungs)
assert ("3", "nvme", "nvme") in rungs and ("1", "nvme", "none") in rungs, rungs
assert re.search(r"\[zero/params\.c:\d+\]$", line), line[-80:]
print(f"the refusal names {len(rungs)} rungs in {len(line)} characters")
PY
grep -Eiq "segmentation|core dumped|signal" "$WORK/out" && fail "crashed"
python3 - "$WORK/choices" <<'PY' || fail "the choices do not walk up the ladder"
import sys
# The ladder on 2 ranks (zero/fit.c): no offload by stage, then the optimizer
# on the host by stage, then the parameters too; nvme rungs after those.
ladder = ["0 none none", "1 none none", "2 none none", "3 none none",
          "1 cpu none", "2 cpu none", "3 cpu none", "3 none cpu", "3 cpu cpu"]
picks = []
for line in open(sys.argv[1]):
    budget, text = line.split(" ", 1)
    f = text.replace(",", "").split()  # stage S optimizer X parameters Y
    picks.append(ladder.index(f"{f[1]} {f[3]} {f[5]}"))
print("ladder positions as the budget shrinks:", picks)
assert picks[0] == 0, "no budget must pick stage 0"
assert picks == sorted(picks), "a smaller budget picked an earlier rung"
assert any(0 < p <= 3 for p in picks), "no higher stage without offload was picked"
assert any(p >= 4 for p in picks), "no offload tier was picked"
PY
echo "PASS"
