#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# zero-report: --estimate reproduces the ZeRO paper's model-state column
# (7.5B parameters, 64 ranks, mixed precision: 120 / 31.4 / 16.6 / 1.9 GB);
# on the reports of a 2-rank MLP run it prints a row per tier and category
# whose planned and measured peaks are the reports' values; a plan exceeded
# gives exit 1; --tolerance passes on the run's own plan and fails (OFF PLAN,
# exit 1) on a plan moved by 1 MiB; --fit picks stage 0 with room to spare,
# higher stages and then offload tiers as the device budget shrinks, and
# exits 1 when nothing fits;
# a malformed report gives exit 2 and names the file; --html notes a rank
# whose timeline names no device tier ("nothing to plot") and refuses a
# timeline whose sums pass int64.
source "$(dirname "$0")/common.sh"
ZR=$1 MLP=$2

# ---- --estimate ----------------------------------------------------------------
"$ZR" --estimate --params 7.5e9 --world-size 64 --precision bf16 --stage all \
    >"$WORK/est" 2>&1 || { cat "$WORK/est"; fail "zero-report --estimate"; }
cat "$WORK/est"
grep -Eq '^device +model states +120\.0 +[0-9.]+ +31\.4 +[0-9.]+ +16\.6 +[0-9.]+ +1\.9 +[0-9.]+$' \
    "$WORK/est" || fail "the model-state row is not 120.0 / 31.4 / 16.6 / 1.9 GB"
for row in param-gather grad-bucket comm buffers total; do
    grep -Eq "^device +$row " "$WORK/est" || fail "no device $row row in the estimate"
done
"$ZR" --estimate --preset gpt2-124m --stage 3 --world-size 4 --bytes >"$WORK/est" 2>&1 ||
    { cat "$WORK/est"; fail "zero-report --estimate --preset gpt2-124m"; }
grep -q '124,475,904 parameters' "$WORK/est" || fail "gpt2-124m is not 124,475,904 parameters"
# 16 bytes x ceil(124475904 / 4)
grep -Eq '^device +model states +497903616$' "$WORK/est" || fail "gpt2-124m stage 3 states"
rc=0
"$ZR" --estimate --params 1e9 --stage 0 --offload-optimizer cpu >"$WORK/err" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "optimizer offload at stage 0: exit $rc, not 2"
grep -q "stage 0" "$WORK/err" || { cat "$WORK/err"; fail "the refusal does not name the stage"; }

# ---- a run's reports -------------------------------------------------------------
run_ranks 2 "$MLP" --stage 3 --steps 2 --mem-report "$WORK/r%r.json" ||
    { cat "$WORK/out"; fail "mlp --mem-report"; }
"$ZR" --bytes "$WORK/r0.json" "$WORK/r1.json" >"$WORK/table" 2>&1 ||
    { cat "$WORK/table"; fail "zero-report on the reports"; }
cat "$WORK/table"
python3 - "$WORK/table" "$WORK/r0.json" "$WORK/r1.json" <<'EOF' || fail "table does not match the reports"
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
reports = [json.load(open(p)) for p in sys.argv[2:]]
rows = {}
for line in lines:
    cells = re.split(r"\s{2,}", line.strip())
    if len(cells) == 2 + 3 * len(reports) and cells[0] in ("device", "host", "nvme"):
        rows[(cells[0], cells[1])] = cells[2:]
for tier in ("device", "host", "nvme"):
    tiers = [r["tiers"][tier] for r in reports]
    if all(t["peak"] == 0 for t in tiers) and not any(k[0] == tier for k in rows):
        assert any(re.match(tier + r"\s+\(nothing on any rank\)", l) for l in lines), tier
        continue
    for cat in tiers[0]["categories"]:
        cells = rows[(tier, cat)]  # a row per category
        for i, t in enumerate(tiers):
            planned, measured, diff = map(int, cells[3 * i:3 * i + 3])
            assert planned == reports[i]["plan"][tier]["categories"][cat]["peak"], (tier, cat, cells)
            assert measured == t["categories"][cat]["peak"], (tier, cat, cells)
            assert diff == measured - planned, (tier, cat, cells)
    for i, t in enumerate(tiers):
        assert int(rows[(tier, "tier peak")][3 * i + 1]) == t["peak"], tier
print("table matches the reports")
EOF
"$ZR" --bytes "$WORK" >"$WORK/table2" 2>&1 || { cat "$WORK/table2"; fail "zero-report DIR"; }
cmp -s "$WORK/table" "$WORK/table2" || fail "a directory and its files give different tables"

# ---- a plan, met and exceeded ------------------------------------------------------
mkdir "$WORK/plan"
python3 - "$WORK/r0.json" "$WORK/r1.json" "$WORK/plan" <<'EOF'
import json, sys
for i, path in enumerate(sys.argv[1:3]):
    r = json.load(open(path))
    dev = r["tiers"]["device"]
    slack = 0 if i == 0 else -1  # rank 1's plan is one byte short
    r["plan"] = {"device": {"peak": dev["peak"], "categories": {
        "param": {"peak": dev["categories"]["param"]["peak"] + slack}}}}
    json.dump(r, open(f"{sys.argv[3]}/r{i}.json", "w"))
EOF
rc=0
"$ZR" "$WORK/plan" >"$WORK/out" 2>&1 || rc=$?
cat "$WORK/out"
[ "$rc" -eq 1 ] || fail "a measured peak above its plan: exit $rc, not 1"
grep -q '^OVER PLAN: rank 1, tier device, param: ' "$WORK/out" || fail "no OVER PLAN line for rank 1"
! grep -q '^OVER PLAN: rank 0' "$WORK/out" || fail "rank 0 met its plan but was flagged"

# ---- --tolerance: the run's plan is its measurement; a plan 1 MiB off is not ------
"$ZR" --tolerance 1%,64K "$WORK/r0.json" "$WORK/r1.json" >"$WORK/out" 2>&1 ||
    { cat "$WORK/out"; fail "--tolerance 1%,64K on a run's own reports"; }
grep -q '^plan: computed by the runtime before allocation, for the ' "$WORK/out" ||
    { cat "$WORK/out"; fail "the header does not say where the plan came from"; }
grep -Eq '^device peak, ranks? [0-9-]+: planned [0-9.]+ [KMG]iB at [a-z]+( layer [0-9]+)? of step [0-9]+, measured [0-9.]+ [KMG]iB at ' \
    "$WORK/out" || { cat "$WORK/out"; fail "no line with the device peak's phase"; }
grep -q '^on plan: ' "$WORK/out" || fail "no 'on plan' line with --tolerance"
mkdir "$WORK/off"
python3 - "$WORK/r0.json" "$WORK/r1.json" "$WORK/off" <<'EOF'
import json, sys
for i, path in enumerate(sys.argv[1:3]):
    r = json.load(open(path))
    if i == 0:
        r["plan"]["device"]["peak"] += 1 << 20
    json.dump(r, open(f"{sys.argv[3]}/r{i}.json", "w"))
EOF
rc=0
"$ZR" --tolerance 1%,64K "$WORK/off" >"$WORK/out" 2>&1 || rc=$?
cat "$WORK/out"
[ "$rc" -eq 1 ] || fail "a tier peak 1 MiB under its plan with --tolerance 1%,64K: exit $rc, not 1"
grep -Eq '^OFF PLAN: rank 0, tier device: measured [0-9]+, planned [0-9]+, difference -1048576, allowed [0-9]+ bytes' \
    "$WORK/out" || fail "no OFF PLAN line for rank 0"
! grep -q '^OFF PLAN: rank 1' "$WORK/out" || fail "rank 1 is on plan but was flagged"
! grep -q '^OVER PLAN' "$WORK/out" || fail "a peak under its plan was called OVER PLAN"
"$ZR" "$WORK/off" >"$WORK/out" 2>&1 || fail "without --tolerance a peak under its plan must pass"
rc=0
"$ZR" --tolerance 1%,lots "$WORK/off" >"$WORK/out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--tolerance '1%,lots'" "$WORK/out" ||
    { cat "$WORK/out"; fail "a bad --tolerance: exit $rc, not 2 naming the flag"; }

# ---- --fit ------------------------------------------------------------------------
fit_choice() { # BUDGET EXPECTED-CHOICE ARGS...: the first rung that fits
    local budget=$1 want=$2 rc=0
    shift 2
    "$ZR" --fit --device-mem "$budget" "$@" >"$WORK/fit" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || { cat "$WORK/fit"; fail "--fit --device-mem $budget: exit $rc"; }
    grep -q "^choice: $want" "$WORK/fit" ||
        { cat "$WORK/fit"; fail "--fit --device-mem $budget: not '$want'"; }
}
fit_choice 64G '#1, stage 0, optimizer device, parameters device' --preset gpt2-124m --world-size 4
cat "$WORK/fit"
grep -Eq '^ *1 +0 +device +device .* fits <- auto$' "$WORK/fit" ||
    fail "row 1 is not marked as auto's choice"
# 1e9 parameters in 40 layers on 16 ranks, 5e7-element buckets: device totals
# 15.1, 8.1, 4.9, 1.7 GiB at stages 0-3, 0.98 with the optimizer in host
# memory, 0.75 with the parameters there too
FIT=(--params 1e9 --layers 40 --world-size 16 --reduce-bucket 5e7 --prefetch-bucket 5e7)
fit_choice 64G '#1, stage 0, optimizer device, parameters device' "${FIT[@]}"
fit_choice 10G '#2, stage 1, optimizer device, parameters device' "${FIT[@]}"
fit_choice 6G '#3, stage 2, optimizer device, parameters device' "${FIT[@]}"
fit_choice 2G '#4, stage 3, optimizer device, parameters device' "${FIT[@]}"
fit_choice 1200M '#[0-9]*, stage 3, optimizer cpu, parameters device' "${FIT[@]}"
fit_choice 800M '#[0-9]*, stage 3, optimizer cpu, parameters cpu' "${FIT[@]}"
# each rung's device column is zrt_estimate_memory's total; the rows go by
# NVMe bytes, then host<->device bytes, then communication, then stage
"$ZR" --fit --device-mem 2G --nvme 1T --bytes "${FIT[@]}" >"$WORK/fit" 2>&1 ||
    { cat "$WORK/fit"; fail "--fit --bytes --nvme"; }
"$ZR" --estimate --stage 3 --bytes "${FIT[@]}" >"$WORK/est" 2>&1 || fail "--estimate --stage 3"
python3 - "$WORK/fit" "$WORK/est" <<'EOF' || { cat "$WORK/fit"; fail "the --fit table"; }
import re, sys
rows = [l.split() for l in open(sys.argv[1]) if re.match(r"^ *\d+ +[0-3] ", l)]
assert len(rows) == 16, len(rows)  # 9 rungs, 7 more with NVMe
cost = [(int(r[9]), int(r[8]), int(r[7]), int(r[1])) for r in rows]
assert cost == sorted(cost), cost
est = next(l.split()[-1] for l in open(sys.argv[2]) if re.match(r"^device +total ", l))
stage3 = next(r for r in rows if r[1:4] == ["3", "device", "device"])
assert stage3[4] == est, (stage3, est)
print("fit table: ladder order, device totals as --estimate's")
EOF
rc=0
"$ZR" --fit --device-mem 512M "${FIT[@]}" >"$WORK/fit" 2>&1 || rc=$?
cat "$WORK/fit"
[ "$rc" -eq 1 ] || fail "a budget nothing fits: exit $rc, not 1"
grep -q '^nothing fits: the least device memory a rung needs is ' "$WORK/fit" ||
    fail "no 'nothing fits' line naming the device"
rc=0
"$ZR" --fit --device-mem 800M --host-mem 512M "${FIT[@]}" >"$WORK/fit" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -Eq '^ *9 +3 +cpu +cpu .* over host$' "$WORK/fit" ||
    { cat "$WORK/fit"; fail "a host budget too small for the last rung: exit $rc, not 1"; }
rc=0
"$ZR" --fit --device-mem 8G --stage 3 "${FIT[@]}" >"$WORK/fit" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q -- "drop --stage" "$WORK/fit" ||
    { cat "$WORK/fit"; fail "--fit --stage: exit $rc, not 2"; }

# ---- bad input ----------------------------------------------------------------------
head -c 200 "$WORK/r1.json" >"$WORK/cut.json"
rc=0
"$ZR" "$WORK/r0.json" "$WORK/cut.json" >"$WORK/out" 2>&1 || rc=$?
cat "$WORK/out"
[ "$rc" -eq 2 ] || fail "a malformed report: exit $rc, not 2"
grep -q "cut.json: not JSON at line [0-9]*, column [0-9]*" "$WORK/out" ||
    fail "the error does not name the file and the position"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); del r['tiers']['device']['categories']['comm']; json.dump(r, open(sys.argv[2], 'w'))" \
    "$WORK/r1.json" "$WORK/nocomm.json"
rc=0
"$ZR" "$WORK/nocomm.json" >"$WORK/out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "a report without a category: exit $rc, not 2"
grep -q "nocomm.json: missing key 'tiers.device.categories.comm'" "$WORK/out" ||
    { cat "$WORK/out"; fail "the error does not name the missing key"; }

# ---- --html on timelines that name some tiers, or overflow --------------------------
# Rank 0's timeline keeps only its host events ("tiers": ["host"]): the page
# says there is no device tier to plot for it and plots rank 1 (this freed an
# uninitialized series before). Deltas whose running sum passes int64 are
# refused, naming the file and the event.
mkdir "$WORK/tiers"
python3 - "$WORK/r0.json" "$WORK/r1.json" "$WORK/tiers" <<'EOF'
import json, sys
for i, path in enumerate(sys.argv[1:3]):
    r = json.load(open(path))
    tl = r["timeline"]
    if i == 0:
        host = tl["tiers"].index("host")
        tl["events"] = [e[:3] + [0] + e[4:] for e in tl["events"] if e[3] == host]
        tl["tiers"] = ["host"]
    json.dump(r, open(f"{sys.argv[3]}/r{i}.json", "w"))
    if i == 1:  # the same events plus two that take device 'param' past 2^63 - 1
        dev, last = tl["tiers"].index("device"), max(e[0] for e in tl["events"])
        tl["events"] += [[last, 0, -1, dev, 0, 2**63 - 1], [last, 0, -1, dev, 0, 2**63 - 1]]
        json.dump(r, open(f"{sys.argv[3]}/huge.json", "w"))
EOF
rc=0
"$ZR" --html "$WORK/tiers.html" "$WORK/tiers/r0.json" "$WORK/tiers/r1.json" \
    >"$WORK/out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat "$WORK/out"; fail "--html with a host-only timeline: exit $rc, not 0"; }
grep -q "names no &#39;device&#39; tier: nothing to plot" "$WORK/tiers.html" ||
    fail "the page does not say rank 0's timeline has no device tier"
[ "$(grep -c '<svg' "$WORK/tiers.html")" -eq 1 ] || fail "the page does not plot rank 1 only"
rc=0
"$ZR" --html "$WORK/huge.html" "$WORK/tiers/huge.json" >"$WORK/out" 2>&1 || rc=$?
cat "$WORK/out"
[ "$rc" -eq 2 ] || fail "a timeline sum past int64: exit $rc, not 2"
grep -Eq "huge.json: 'timeline.events\[[0-9]+\]\[5\]': the delta 9223372036854775807 .*tier 'device' in category 'param'.* 64-bit" \
    "$WORK/out" || fail "the overflow error does not name the file, event and field"
echo "PASS"
