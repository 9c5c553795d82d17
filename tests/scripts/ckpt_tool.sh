#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# zero-ckpt on a GPT-2 checkpoint (d4 shape, 64 channels, 2 ranks, stage 3):
#   - verify accepts it and prints the plan;
#   - consolidate equals the run's own --dump-params byte for byte, and its
#     sidecar names every tensor;
#   - safetensors: the header (parsed here by hand) names every tensor with
#     dtype F32, its shape and contiguous offsets, and the data equals the
#     consolidated file; Python's safetensors package reads it the same way
#     (tests/reference/test_safetensors.py, skipped without the package);
#   - llmc: train_gpt2 --load of the export dumps the same parameters;
#   - a flipped byte and a truncated rank file are refused by verify and by
#     --resume, naming the file, and the resumed job ends (no hang);
#   - a bf16 checkpoint: verify names the dtype; consolidate and safetensors
#     export its f32 master copy (named in the sidecar and the metadata),
#     equal to the parameters of an f32 run resumed from it (zrt_load takes
#     the master as the f32 parameters).
source "$(dirname "$0")/common.sh"
TRAIN=$1 CKPT=$2 COMPARE=$3 SAFETENSORS_TEST=$4
GPT=(--model d4 --channels 64 --max-seq-len 64 --seq-len 32 --batch 2 --val-every 0
     --sample-len 0)
run_ranks 2 "$TRAIN" "${GPT[@]}" --stage 3 --steps 6 --save-dir "$WORK/ckpt" \
    --save-every 6 --dump-params "$WORK/dump.bin" || { cat "$WORK/out"; fail "train"; }

"$CKPT" verify "$WORK/ckpt" | tee "$WORK/verify.out" || fail "verify refused a good checkpoint"
grep -q "^OK$" "$WORK/verify.out" || fail "verify did not say OK"

"$CKPT" consolidate "$WORK/ckpt" "$WORK/all.bin" || fail "consolidate"
cmp "$WORK/all.bin" "$WORK/dump.bin" || fail "consolidated parameters differ from the dump"
echo "consolidate: identical to the run's --dump-params"

"$CKPT" safetensors "$WORK/ckpt" "$WORK/model.safetensors" || fail "safetensors"
python3 - "$WORK/model.safetensors" "$WORK/all.bin" <<'PY' || fail "safetensors layout"
import json, struct, sys
data = open(sys.argv[1], "rb").read()
flat = open(sys.argv[2], "rb").read()
sidecar = json.load(open(sys.argv[2] + ".json"))
(n,) = struct.unpack("<Q", data[:8])
assert n % 8 == 0, n
header = json.loads(data[8:8 + n])
body = data[8 + n:]
assert header.pop("__metadata__")["format"] == "pt"
assert list(header) == [t["name"] for t in sidecar["tensors"]], "names or order"
at = 0
for t in sidecar["tensors"]:
    h = header[t["name"]]
    assert h["dtype"] == "F32" and h["shape"] == t["shape"], (t["name"], h)
    assert h["data_offsets"] == [at, at + 4 * t["numel"]], (t["name"], h)
    at += 4 * t["numel"]
assert at == len(body) and body == flat, "data differs from the consolidated file"
print(f"safetensors layout: {len(header)} tensors, header {n} bytes, data equal")
PY
rc=0
"${PYTHON:-python3}" "$SAFETENSORS_TEST" "$WORK/model.safetensors" "$WORK/all.bin" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || fail "test_safetensors.py"

"$CKPT" llmc "$WORK/ckpt" "$WORK/model.llmc" --heads 4 || fail "llmc"
run_ranks 1 "$TRAIN" "${GPT[@]}" --load "$WORK/model.llmc" --steps 0 \
    --dump-params "$WORK/reloaded.bin" || { cat "$WORK/out"; fail "--load of the llmc export"; }
cmp "$WORK/reloaded.bin" "$WORK/dump.bin" || fail "the llmc export loads different parameters"
echo "llmc: train_gpt2 --load of the export holds the same parameters"

# Damage: rank 1's file, a flipped byte in its data, then truncated.
file="$WORK/ckpt/step-00000006/rank-00001.zrtc"
cp "$file" "$WORK/good.zrtc"
python3 - "$file" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(-1000, 2)
    b = f.read(1)
    f.seek(-1000, 2)
    f.write(bytes([b[0] ^ 0x01]))
PY
refused() { # what
    ! "$CKPT" verify "$WORK/ckpt" >"$WORK/v.out" 2>&1 || fail "verify accepted $1"
    cat "$WORK/v.out"
    grep -q "rank-00001.zrtc" "$WORK/v.out" || fail "verify did not name the file ($1)"
    ! timeout 60 $MPIRUN -np 2 "$TRAIN" "${GPT[@]}" --steps 8 --resume "$WORK/ckpt" \
        >"$WORK/out" 2>&1 || fail "--resume accepted $1"
    grep -q "rank-00001.zrtc" "$WORK/out" || { cat "$WORK/out"; fail "--resume did not name the file ($1)"; }
    echo "--resume refused $1: $(grep -m1 -o 'checkpoint file.*' "$WORK/out" | cut -c1-160)"
}
refused "a flipped byte"
grep -q "section" "$WORK/v.out" || fail "the flipped byte's section is not named"
cp "$WORK/good.zrtc" "$file"
truncate -s -4096 "$file"
refused "a truncated file"
grep -q "truncated" "$WORK/v.out" || fail "truncation not named"

# bf16: the exports hold the f32 master copy.
echo '{"bf16": {"enabled": true}}' >"$WORK/bf16.json"
run_ranks 2 "$TRAIN" "${GPT[@]}" --stage 3 --steps 4 --config "$WORK/bf16.json" \
    --save-dir "$WORK/bf16" --save-every 4 || { cat "$WORK/out"; fail "bf16 train"; }
"$CKPT" verify "$WORK/bf16" | tee "$WORK/verify.out" || fail "verify refused a bf16 checkpoint"
grep -q "bf16 parameters with an f32 master copy" "$WORK/verify.out" || fail "verify: no dtype"
"$CKPT" consolidate "$WORK/bf16" "$WORK/bf16.bin" | grep "from the master copy of bf16" ||
    fail "consolidate bf16"
"$CKPT" safetensors "$WORK/bf16" "$WORK/bf16.safetensors" || fail "safetensors bf16"
run_ranks 1 "$TRAIN" "${GPT[@]}" --steps 4 --resume "$WORK/bf16" \
    --dump-params "$WORK/bf16-f32.bin" || { cat "$WORK/out"; fail "f32 run resumed from bf16"; }
cmp "$WORK/bf16.bin" "$WORK/bf16-f32.bin" ||
    fail "the consolidated master differs from an f32 run's parameters loaded from it"
python3 - "$WORK/bf16.safetensors" "$WORK/bf16.bin" <<'PY' || fail "bf16 safetensors"
import json, struct, sys
data = open(sys.argv[1], "rb").read()
sidecar = json.load(open(sys.argv[2] + ".json"))
assert (sidecar["dtype"], sidecar["param_dtype"], sidecar["source"]) == ("f32", "bf16", "master"), sidecar
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8:8 + n])
meta = header.pop("__metadata__")
assert (meta["zrt_param_dtype"], meta["zrt_source"]) == ("bf16", "master"), meta
assert all(h["dtype"] == "F32" for h in header.values())
assert data[8 + n:] == open(sys.argv[2], "rb").read(), "data differs from the consolidated file"
print(f"bf16 safetensors: {len(header)} F32 tensors from the master copy, equal to consolidate")
PY
rc=0
"${PYTHON:-python3}" "$SAFETENSORS_TEST" "$WORK/bf16.safetensors" "$WORK/bf16.bin" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || fail "test_safetensors.py (bf16)"
echo "bf16: verify, consolidate and safetensors export the master; an f32 resume loads it"
echo "PASS"
