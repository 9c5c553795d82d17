#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# For N = 1..4 ranks, the MLP trained 20 steps at stages 0, 1, 2 and 3 writes
# byte-identical parameter dumps; dumps for different N agree to 1e-5
# relative, norm-wise: ||p_N - p_1|| / ||p_1|| (the global batch is the same;
# only the order in which gradients are summed differs, and under Adam a
# near-zero gradient element may flip sign, see tests/tools/dump_compare.c).
source "$(dirname "$0")/common.sh"
MLP=$1 COMPARE=$2
for n in 1 2 3 4; do
    for stage in 0 1 2 3; do
        run_ranks "$n" "$MLP" --stage "$stage" --steps 20 --seed 7 \
            --dump-params "$WORK/n$n-s$stage.bin" ||
            { cat "$WORK/out"; fail "mlp on $n ranks at stage $stage"; }
        grep -q '^final loss' "$WORK/out" || fail "no final loss (n=$n stage=$stage)"
        if [ "$stage" != 0 ]; then
            "$COMPARE" "$WORK/n$n-s0.bin" "$WORK/n$n-s$stage.bin" ||
                fail "stage $stage differs from stage 0 on $n ranks"
        fi
    done
    echo "n=$n: stages 0-3 byte-identical"
    if [ "$n" != 1 ]; then
        "$COMPARE" "$WORK/n$n-s0.bin" "$WORK/n1-s0.bin" --rel 1e-5 ||
            fail "$n ranks differ from 1 rank by more than 1e-5 relative"
    fi
done
# The dumps hold trained parameters: a second seed gives other values.
run_ranks 2 "$MLP" --stage 3 --steps 20 --seed 8 --dump-params "$WORK/other.bin"
if "$COMPARE" "$WORK/n2-s3.bin" "$WORK/other.bin" >/dev/null; then
    fail "different seeds gave identical parameters"
fi
echo "PASS"
