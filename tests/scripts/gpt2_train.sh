#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# GPT-2 d4 on 2 ranks at stage 3, 100 steps on the bundled text: the
# validation loss ends well below where it started (ln 256 = 5.55 for
# bytes). The model it saves is llm.c's layout field for field (checked by an
# independent reader) and loads back to identical parameters. Bad model and
# shard files are refused with a message naming the file and the field.
source "$(dirname "$0")/common.sh"
TRAIN=$1 COMPARE=$2
run_ranks 2 "$TRAIN" --model d4 --stage 3 --steps 100 --val-every 50 \
    --sample-len 100 --save "$WORK/model.bin" --dump-params "$WORK/trained.bin" ||
    { cat "$WORK/out"; fail "100-step training"; }
grep -E '^(val loss|final loss|saved)' "$WORK/out"
first=$(grep '^val loss' "$WORK/out" | head -1 | awk '{print $3}')
last=$(grep '^val loss' "$WORK/out" | tail -1 | awk '{print $3}')
python3 - "$first" "$last" <<'PY' || fail "validation loss did not fall enough"
import sys
first, last = float(sys.argv[1]), float(sys.argv[2])
print(f"val loss {first:.4f} -> {last:.4f}")
sys.exit(0 if first > 5.0 and last < 3.0 else 1)
PY
grep -q '^sample:' "$WORK/out" || fail "no sample printed"

# The header, read independently of the C reader: llm.c's layout.
python3 - "$WORK/model.bin" <<'PY' || fail "model header is not llm.c's layout"
import os, struct, sys
path = sys.argv[1]
h = struct.unpack("<256i", open(path, "rb").read(1024))
maxT, V, L, NH, C, Vp = h[2:8]
expect = {"magic": (h[0], 20240326), "version": (h[1], 3), "max_seq_len": (maxT, 1024),
          "vocab_size": (V, 256), "num_layers": (L, 4), "num_heads": (NH, 4),
          "channels": (C, 256), "padded_vocab_size": (Vp, 256)}
for field, (got, want) in expect.items():
    assert got == want, f"{field} is {got}, expected {want}"
assert all(x == 0 for x in h[8:]), "header words 8..255 are not zero"
params = Vp*C + maxT*C + L*(2*C + 3*C*C + 3*C + C*C + C + 2*C + 4*C*C + 4*C + 4*C*C + C) + 2*C
assert os.path.getsize(path) == 1024 + 4 * params, "file size does not match the shape"
print(f"header ok: {params} parameters")
PY

# Load it back without training: the same parameters, bit for bit.
run_ranks 2 "$TRAIN" --load "$WORK/model.bin" --stage 1 --steps 0 --val-every 0 \
    --sample-len 0 --dump-params "$WORK/loaded.bin" ||
    { cat "$WORK/out"; fail "--load of the saved model"; }
"$COMPARE" "$WORK/trained.bin" "$WORK/loaded.bin" || fail "loaded parameters differ"

# Refusals name the file and the field.
printf 'not a model' >"$WORK/bad.bin"
run_ranks 1 "$TRAIN" --load "$WORK/bad.bin" --steps 1 && fail "accepted a bad model file"
grep -q "bad.bin" "$WORK/out" || { cat "$WORK/out"; fail "bad model file not named"; }
python3 - "$WORK/model.bin" "$WORK/v5.bin" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[4:8] = (5).to_bytes(4, "little")
open(sys.argv[2], "wb").write(data)
PY
run_ranks 1 "$TRAIN" --load "$WORK/v5.bin" --steps 1 && fail "accepted version 5"
grep -q "v5.bin: version 5" "$WORK/out" || { cat "$WORK/out"; fail "version not named"; }
python3 - "$WORK/shard.bin" <<'PY'
import struct, sys
header = [20240520, 1, 4] + [0] * 253
open(sys.argv[1], "wb").write(struct.pack("<256i", *header) + struct.pack("<3H", 1, 2, 3))
PY
run_ranks 1 "$TRAIN" --train-shards "$WORK/shard.bin" --steps 1 &&
    fail "accepted a shard whose count does not match its size"
grep -q "shard.bin" "$WORK/out" || { cat "$WORK/out"; fail "bad shard not named"; }
echo "PASS"
