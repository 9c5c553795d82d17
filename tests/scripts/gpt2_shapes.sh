#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The model's shape is checked wherever it could silently be another model
# (issues 15 and 16), each case failing on the code before:
#   - --load of a model whose max_seq_len (32) is shorter than --seq-len (64)
#     is refused with a sentence naming both numbers (it used to read past the
#     position table and corrupt the heap), and so is a flag that contradicts
#     the file (--heads);
#   - a d4 trained with --heads 8, and one with --vocab-size 250, export
#     through `zero-ckpt llmc` with no flags to a file byte-identical to the
#     run's own --save (the checkpoint stores the shape), and a contradicting
#     --heads is refused;
#   - --resume with --heads 8 of a checkpoint saved with 4 heads (same tensor
#     shapes) is refused, naming the heads;
#   - a shard set too small for one batch names the pattern, the files and the
#     tokens found;
#   - sampling with a window (--batch x --seq-len = 4) shorter than the
#     12-byte prompt cuts the prompt (it wrote past the window, found by ASan).
source "$(dirname "$0")/common.sh"
TRAIN=$1 CKPT=$2
GPT=(--model d4 --channels 64 --max-seq-len 64 --seq-len 32 --batch 2 --val-every 0
     --sample-len 0)

expect() { # text, what
    grep -qF -- "$1" "$WORK/out" || { cat "$WORK/out"; fail "$2: no '$1' in the output"; }
}

short_context_load() {
    run_ranks 1 "$TRAIN" --model d4 --channels 64 --max-seq-len 32 --seq-len 16 --batch 2 \
        --val-every 0 --sample-len 0 --steps 1 --save "$WORK/short.bin" ||
        { cat "$WORK/out"; fail "train the short-context model"; }
    run_ranks 2 "$TRAIN" --load "$WORK/short.bin" --seq-len 64 --batch 2 --val-every 0 \
        --sample-len 0 --steps 1 &&
        { cat "$WORK/out"; fail "--load of a 32-position model with --seq-len 64 was accepted"; }
    expect "--seq-len 64 exceeds the max_seq_len 32 of the model in --load '$WORK/short.bin'" \
        "short-context --load"
    run_ranks 1 "$TRAIN" --load "$WORK/short.bin" --heads 2 --seq-len 16 --batch 2 \
        --val-every 0 --sample-len 0 --steps 1 &&
        { cat "$WORK/out"; fail "--heads 2 against a 4-head model file was accepted"; }
    expect "--heads 2 contradicts --load '$WORK/short.bin', whose model has 4" "--heads with --load"
    echo "--load: a shorter position table and a contradicting --heads refused by name"
}

export_matches_save() { # name, flags...
    local name=$1; shift
    run_ranks 2 "$TRAIN" "${GPT[@]}" "$@" --steps 3 --save-dir "$WORK/$name.ckpt" \
        --save "$WORK/$name.save.bin" || { cat "$WORK/out"; fail "train $name"; }
    "$CKPT" llmc "$WORK/$name.ckpt" "$WORK/$name.export.bin" >"$WORK/out" 2>&1 ||
        { cat "$WORK/out"; fail "$name: zero-ckpt llmc without flags"; }
    cmp "$WORK/$name.export.bin" "$WORK/$name.save.bin" ||
        fail "$name: the llmc export differs from --save"
    echo "$name: zero-ckpt llmc (no flags) is byte-identical to --save"
}

contradicting_export_flag() {
    "$CKPT" llmc "$WORK/heads8.ckpt" "$WORK/bad.bin" --heads 4 >"$WORK/out" 2>&1 &&
        { cat "$WORK/out"; fail "llmc --heads 4 of an 8-head checkpoint was accepted"; }
    expect "--heads 4 contradicts the checkpoint, whose model was saved with heads 8" \
        "llmc --heads"
    echo "llmc: a flag that contradicts the checkpoint is refused"
}

resume_other_heads() {
    run_ranks 2 "$TRAIN" "${GPT[@]}" --steps 2 --save-dir "$WORK/h4.ckpt" --save-every 2 ||
        { cat "$WORK/out"; fail "train 4 heads"; }
    run_ranks 2 "$TRAIN" "${GPT[@]}" --heads 8 --steps 4 --resume "$WORK/h4.ckpt" &&
        { cat "$WORK/out"; fail "--resume with --heads 8 of a 4-head checkpoint was accepted"; }
    expect "holds another model: it was saved with heads 4 (this run: 8)" "--resume --heads 8"
    echo "--resume: another head count refused"
}

make_shards() { # dir, tokens per shard: two shards of tokens below 250
    mkdir -p "$1"
    python3 - "$1" "$2" <<'PY'
import struct, sys
n = int(sys.argv[2])
for i in range(2):
    header = struct.pack("<256i", 20240520, 1, n, *([0] * 253))
    tokens = struct.pack(f"<{n}H", *[(7 * k + 3 * i) % 250 for k in range(n)])
    open(f"{sys.argv[1]}/tiny_train_{i:06d}.bin", "wb").write(header + tokens)
PY
}

small_shard_set() {
    make_shards "$WORK/small" 40 # 80 tokens in all
    run_ranks 1 "$TRAIN" --model d4 --channels 64 --max-seq-len 64 --seq-len 32 --batch 4 \
        --val-every 0 --sample-len 0 --steps 1 --vocab-size 250 \
        --train-shards "$WORK/small/tiny_train_*.bin" &&
        { cat "$WORK/out"; fail "a shard set of 80 tokens was accepted for a batch of 129"; }
    expect "--train-shards '$WORK/small/tiny_train_*.bin': 2 shard files hold 80 tokens in all, fewer than --batch x --seq-len + 1 = 129" \
        "small shard set"
    echo "shards: a set too small names the pattern, the files and the tokens"
}

short_window_sample() {
    run_ranks 1 "$TRAIN" --layers 1 --channels 4 --heads 1 --max-seq-len 8 --batch 1 \
        --seq-len 4 --steps 2 --val-every 0 --sample-len 20 ||
        { cat "$WORK/out"; fail "sampling with a 4-token window"; }
    expect "sample:" "short-window sample"
    echo "sample: a window shorter than the prompt cuts the prompt"
}

short_context_load
short_window_sample
export_matches_save heads8 --heads 8
make_shards "$WORK/shards" 4000
export_matches_save vocab250 --vocab-size 250 --train-shards "$WORK/shards/tiny_train_*.bin"
contradicting_export_flag
resume_other_heads
small_shard_set
echo "PASS"
