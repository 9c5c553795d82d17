#!/usr/bin/env bash
# zero-report: --estimate reproduces the ZeRO paper's model-state column
# (7.5B parameters, 64 ranks, mixed precision: 120 / 31.4 / 16.6 / 1.9 GB);
# on the reports of a 2-rank MLP run it prints a row per tier and category
# whose planned and measured peaks are the reports' values; a plan exceeded
# gives exit 1;
# a malformed report gives exit 2 and names the file.
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
set +e
"$ZR" --estimate --params 1e9 --stage 0 --offload-optimizer cpu >"$WORK/err" 2>&1
rc=$?
set -e
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
set +e
"$ZR" "$WORK/plan" >"$WORK/out" 2>&1
rc=$?
set -e
cat "$WORK/out"
[ "$rc" -eq 1 ] || fail "a measured peak above its plan: exit $rc, not 1"
grep -q '^OVER PLAN: rank 1, tier device, param: ' "$WORK/out" || fail "no OVER PLAN line for rank 1"
! grep -q '^OVER PLAN: rank 0' "$WORK/out" || fail "rank 0 met its plan but was flagged"

# ---- bad input ----------------------------------------------------------------------
head -c 200 "$WORK/r1.json" >"$WORK/cut.json"
set +e
"$ZR" "$WORK/r0.json" "$WORK/cut.json" >"$WORK/out" 2>&1
rc=$?
set -e
cat "$WORK/out"
[ "$rc" -eq 2 ] || fail "a malformed report: exit $rc, not 2"
grep -q "cut.json: not JSON at line [0-9]*, column [0-9]*" "$WORK/out" ||
    fail "the error does not name the file and the position"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); del r['tiers']['device']['categories']['comm']; json.dump(r, open(sys.argv[2], 'w'))" \
    "$WORK/r1.json" "$WORK/nocomm.json"
set +e
"$ZR" "$WORK/nocomm.json" >"$WORK/out" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "a report without a category: exit $rc, not 2"
grep -q "nocomm.json: missing key 'tiers.device.categories.comm'" "$WORK/out" ||
    { cat "$WORK/out"; fail "the error does not name the missing key"; }
echo "PASS"
