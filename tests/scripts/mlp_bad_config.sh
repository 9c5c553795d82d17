#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A bad config file or flag stops the example before training with a message
# naming the key, the value or the position.
source "$(dirname "$0")/common.sh"
MLP=$1
expect_refusal() { # expect_refusal JSON PATTERN
    printf '%s' "$1" >"$WORK/cfg.json"
    if run_ranks 2 "$MLP" --steps 1 --config "$WORK/cfg.json"; then
        fail "accepted config: $1"
    fi
    grep -q -- "$2" "$WORK/out" || { cat "$WORK/out"; fail "no '$2' for: $1"; }
    grep -q '^step ' "$WORK/out" && fail "trained with config: $1"
    return 0
}
expect_refusal '{"zero_optimization": {"stage": 5}}' "'zero_optimization.stage' is 5"
expect_refusal '{"zero_optimization": {"stage": 1, "colour": 2}}' \
    "unknown key 'zero_optimization.colour'"
expect_refusal '{"zero_optimization": {"reduce_bucket_size": -4}}' \
    "'zero_optimization.reduce_bucket_size' is -4"
expect_refusal '{"zero_optimization": {"stage": 1,,}}' "malformed JSON at line 1, column"
expect_refusal '{"device_mem_limit": "12Q"}' "'device_mem_limit'"
expect_refusal '{"communicator": "gloo"}' "'communicator' is the string \"gloo\""
expect_refusal '{"communicator": "nccl"}' "NCCL needs \"backend\": \"cuda\""
# mlp's math reads parameters on the host: it refuses the cuda backend (the
# library's own refusal without a GPU is checked by gpt2_cuda.sh).
expect_refusal '{"backend": "cuda"}' "runs on the cpu backend only"
run_ranks 1 "$MLP" --config "$WORK/missing.json" && fail "missing file accepted"
grep -q "missing.json: cannot open" "$WORK/out" || fail "missing file not named"
run_ranks 1 "$MLP" --stage 7 && fail "--stage 7 accepted"
grep -q -- "--stage: '7'" "$WORK/out" || fail "--stage 7 not explained"
run_ranks 1 "$MLP" --device-mem lots && fail "--device-mem lots accepted"
grep -q -- "--device-mem: 'lots'" "$WORK/out" || fail "--device-mem not explained"
# A good file is read: stage 3 from the file shows in the memory report.
printf '{"zero_optimization": {"stage": 3, "reduce_bucket_size": 5e8}}' >"$WORK/ok.json"
run_ranks 2 "$MLP" --steps 1 --config "$WORK/ok.json" --mem-report "$WORK/m%r.json" ||
    { cat "$WORK/out"; fail "good config refused"; }
grep -q '"stage": 3' "$WORK/m0.json" || fail "config stage not applied"
echo "PASS"
