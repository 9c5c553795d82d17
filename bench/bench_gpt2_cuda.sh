#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench_gpt2_cuda.sh: GPT-2 124M training throughput and MFU on one GPU
# through zrt's cuda backend.
#
# Runs build/bin/train_gpt2 --backend cuda --model d12 with GPT-2's
# vocabulary (50257, padded to 50304: 124.5 M parameters), bf16 ({"bf16":
# {"enabled": true}} through --config), one rank, B x T tokens per step, at:
#   stage 0                          everything on the GPU
#   stage 1 --offload-optimizer cpu  Adam's moments in host memory (offloading
#                                    needs stage >= 1; on one rank stage 1
#                                    holds what stage 0 holds, so this is the
#                                    offloaded twin of the stage-0 row)
#   stage 3                          parameters sharded (world 1: gathered per
#                                    layer), everything on the GPU
#   stage 3 --offload-optimizer cpu
# and prints a markdown table and, with --json FILE, the same as JSON.
#
# Measured per run: the per-step lines "step k/K | ... | X ms | ..." after the
# first WARMUP steps; tokens/s = B * T * world / median step time.
# MFU = tokens/s * flops_per_token / PEAK, with
#   flops_per_token = 6 N + 12 L T C
#   N    the parameter count train_gpt2 prints: every parameter, the tied
#        token embedding counted once (so 6N includes the LM head's matmul,
#        2 C Vp per token forward), the padded vocabulary rows and the
#        position embedding (whose lookup does no matmul: 6 * 1024 * 768 =
#        4.7 MFLOP of the 6N term, 0.6 %, are counted though not done);
#   12 L T C  attention's two T-long products per layer, QK^T and AV, at
#        full T (no causal halving): 2 * 2 T C forward, twice that backward;
#        PaLM's and nanoGPT's convention (llm.c counts 6 L T C, the causal
#        half);
#   PEAK 989e12 FLOP/s: H100 SXM dense bf16 (also H200's); set PEAK_TFLOPS.
#
# Usage (from the repo root):
#   bench/bench_gpt2_cuda.sh [BUILD_DIR] [--json FILE]   # BUILD_DIR: build
# Environment: BATCH (default 8), SEQ (1024), STEPS (30), WARMUP (5 steps
# not timed), PEAK_TFLOPS (989), MPIRUN (mpirun), RUNS (default
# "0:none 1:cpu 3:none 3:cpu", stage:offload pairs).
# Exits 77 (skipped) when there is no CUDA device.
set -euo pipefail

build=build
json=""
while [ $# -gt 0 ]; do
    case $1 in
        --json) json=$2; shift ;;
        -*) echo "bench_gpt2_cuda.sh: unknown option $1" >&2; exit 2 ;;
        *) build=$1 ;;
    esac
    shift
done
bin="$build/bin/train_gpt2"
probe="$build/bin/bench_copy_cuda"
B=${BATCH:-8}
T=${SEQ:-1024}
steps=${STEPS:-30}
warmup=${WARMUP:-5}
peak_tflops=${PEAK_TFLOPS:-989}
mpirun_cmd=${MPIRUN:-mpirun}
read -r -a runs <<<"${RUNS:-0:none 1:cpu 3:none 3:cpu}"
L=12 C=768 V=50257 world=1

for f in "$bin" "$probe"; do
    if [[ ! -x "$f" ]]; then
        echo "bench_gpt2_cuda.sh: $f not found (build zrt with the cuda backend first, or pass the build dir)" >&2
        exit 1
    fi
done
# No device: say so and skip, as the tests do.
if ! "$probe" --probe >/dev/null 2>&1; then
    rc=0; msg=$("$probe" --probe 2>&1) || rc=$?
    if [[ $rc == 77 ]]; then echo "$msg"; exit 77; fi
    echo "bench_gpt2_cuda.sh: bench_copy_cuda --probe failed: $msg" >&2
    exit 1
fi
if ! "$bin" --help 2>&1 | grep -q -- '--backend'; then
    echo "bench_gpt2_cuda.sh: $bin has no --backend flag: GPT-2 on CUDA is not built" >&2
    exit 1
fi
device=$("$probe" --probe | sed 's/^CUDA device 0: //')

export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Token shards in llm.c's format (int32 header {20240520, 1, ntok, 0...}, then
# uint16 tokens), made from the bundled text read two bytes per token: every
# token is below 0x7f7f, inside GPT-2's vocabulary, and the run needs no
# download. What the tokens mean does not matter to a throughput benchmark.
le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 24 & 255)))"; }
make_shard() { # make_shard TEXT OUT
    local bytes ntok
    bytes=$(stat -c %s "$1"); ntok=$((bytes / 2))
    { le32 20240520; le32 1; le32 "$ntok"; head -c $((253 * 4)) /dev/zero; head -c $((ntok * 2)) "$1"; } >"$2"
}
data=examples/data
[[ -f $data/kjv_train.txt ]] || { echo "bench_gpt2_cuda.sh: run from the repo root ($data missing)" >&2; exit 1; }
make_shard "$data/kjv_train.txt" "$tmp/train_000001.bin"
make_shard "$data/kjv_val.txt" "$tmp/val_000000.bin"
printf '{"bf16": {"enabled": true}}\n' >"$tmp/bf16.json"

launch=("$mpirun_cmd" -np "$world" --bind-to none)
common=(--backend cuda --model d12 --vocab-size "$V" --train-shards "$tmp/train_*.bin"
        --val-shards "$tmp/val_*.bin" --batch "$B" --seq-len "$T" --steps "$steps"
        --val-every 0 --sample-len 0 --config "$tmp/bf16.json")

echo "# zrt GPT-2 124M on one GPU (cuda backend)"
echo
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host: $(hostname), device: $device"
echo "command: ${launch[*]} $bin ${common[*]} --stage S [--offload-optimizer cpu]"
echo "tokens/s = B*T*world / median step ms over steps $((warmup + 1))-$steps; MFU = tokens/s * (6N + 12*L*T*C) / ${peak_tflops}e12"
echo

rows=() jrows=() headline=""
for r in "${runs[@]}"; do
    stage=${r%%:*} offload=${r#*:}
    log="$tmp/s$stage-$offload.log"
    extra=(--stage "$stage")
    [[ $offload == none ]] || extra+=(--offload-optimizer "$offload")
    if ! "${launch[@]}" "$bin" "${common[@]}" "${extra[@]}" >"$log" 2>&1; then
        echo "bench_gpt2_cuda.sh: stage $stage offload $offload FAILED; its last lines:" >&2
        tail -n 20 "$log" >&2
        rows+=("| $stage | $offload | FAILED | - | - | - | - |")
        jrows+=("{\"stage\": $stage, \"offload\": \"$offload\", \"failed\": true}")
        continue
    fi
    # gpt2: 12 layers, ..., 124.48 M parameters; ...
    params_m=$(sed -nE 's/^gpt2: .* ([0-9.]+) M parameters.*/\1/p' "$log" | head -n 1)
    # step   7/30 | loss 5.1234 | lr 1.00e-04 |   123.4 ms |   66391 tok/s | device MiB ...
    ms=$(sed -nE 's/^step +([0-9]+)\/[0-9]+ \|.*\| +([0-9.]+) ms \|.*/\1 \2/p' "$log" |
         awk -v w="$warmup" '$1 > w {print $2}' | sort -g |
         awk '{v[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}')
    if [[ -z $ms || -z $params_m ]]; then
        echo "bench_gpt2_cuda.sh: stage $stage offload $offload printed no step times after step $warmup" >&2
        tail -n 20 "$log" >&2
        rows+=("| $stage | $offload | no step lines | - | - | - | - |")
        jrows+=("{\"stage\": $stage, \"offload\": \"$offload\", \"failed\": true}")
        continue
    fi
    read -r toks fpt mfu < <(awk -v ms="$ms" -v b="$B" -v t="$T" -v w="$world" \
        -v n="$params_m" -v l="$L" -v c="$C" -v p="$peak_tflops" 'BEGIN {
            toks = b * t * w / (ms / 1e3); fpt = 6 * n * 1e6 + 12 * l * t * c
            printf "%.0f %.6e %.4f\n", toks, fpt, toks * fpt / (p * 1e12) }')
    peak_mib=$(sed -nE 's/^step .*device MiB ([0-9.]+).*/\1/p' "$log" | sort -g | tail -n 1)
    rows+=("| $stage | $offload | $params_m | $ms | $toks | $(awk -v m="$mfu" 'BEGIN {printf "%.1f %%", 100 * m}') | ${peak_mib:--} |")
    jrows+=("{\"stage\": $stage, \"offload\": \"$offload\", \"params_m\": $params_m, \"median_step_ms\": $ms, \"tokens_per_s\": $toks, \"flops_per_token\": $fpt, \"mfu\": $mfu, \"device_mib\": ${peak_mib:-null}}")
    [[ -n $headline ]] || headline="stage $stage, offload $offload: $toks tok/s, MFU $(awk -v m="$mfu" 'BEGIN {printf "%.1f %%", 100 * m}')"
    echo "  done: stage $stage offload $offload: $ms ms/step, $toks tok/s" >&2
done

echo "| stage | offload-optimizer | parameters (M) | median step ms | tokens/s | MFU | device MiB (largest step line) |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for row in "${rows[@]}"; do echo "$row"; done

if [[ -n $json ]]; then
    {
        echo "{"
        echo "  \"bench\": \"bench_gpt2_cuda\", \"device\": \"$device\", \"model\": \"d12\", \"vocab\": $V,"
        echo "  \"batch\": $B, \"seq_len\": $T, \"world\": $world, \"steps\": $steps, \"warmup_steps\": $warmup,"
        echo "  \"flops_per_token\": \"6N + 12*L*T*C\", \"peak_flops\": ${peak_tflops}e12,"
        echo "  \"headline\": \"${headline:-no run succeeded}\","
        echo "  \"runs\": ["
        for i in "${!jrows[@]}"; do
            sep=","; [[ $i == $((${#jrows[@]} - 1)) ]] && sep=""
            echo "    ${jrows[$i]}$sep"
        done
        echo "  ]"
        echo "}"
    } >"$json"
fi
printf '%s\n' "${rows[@]}" | grep -q 'FAILED\|no step lines' && exit 1
exit 0
