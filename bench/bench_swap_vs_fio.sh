#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench_swap_vs_fio.sh: the NVMe swap file (bench_swap) against fio on the
# same directory, the same block size, queue depth and bytes.
#
# Each round runs, on fresh files in DIR:
#   - build/bin/bench_swap --reps 1: zrt__swap_write of SIZE bytes, then
#     zrt__swap_read of them (O_DIRECT, io_uring registered buffers, a memcpy
#     and a CRC32C per block on the swap's single I/O thread);
#   - fio --rw=write then --rw=read on one file of SIZE bytes: one job,
#     --ioengine=io_uring --direct=1 --fixedbufs (registered buffers, as the
#     swap uses), --bs=BLOCK, --iodepth=min(QUEUE_DEPTH, BUFFER_COUNT),
#     --fallocate=native (the swap fallocates its file at open too).
# The swap keeps min(queue_depth, buffer_count) blocks in flight: its ring has
# queue_depth entries but a block needs one of buffer_count staging buffers
# from preparation to completion. That number is fio's --iodepth.
# Odd rounds run the swap first, even rounds fio first. Printed: a markdown
# row per round and the best of each side over the rounds, with swap / fio
# ratios (GB = 10^9 bytes), and each side's CPU use during the transfer
# (user + system time over wall time, 100 = one core; fio's usr_cpu +
# sys_cpu), which shows when a side is CPU-bound rather than disk-bound. Both sides bypass the page cache (O_DIRECT), so
# neither reads back what it just wrote from memory; a hypervisor's cache
# under a virtual disk is outside either's control.
#
# Usage (from the repo root):
#   bench/bench_swap_vs_fio.sh [DIR]    # DIR defaults to /tmp; use the disk to test
# Environment overrides: BUILD (default build), SIZE (1G), BLOCK (1M),
# QUEUE_DEPTH (8), BUFFER_COUNT (4), ROUNDS (3). Sizes take K, M, G suffixes
# (powers of 2, as bench_swap and fio read them). Installs fio with apt-get
# when it is missing and the script runs as root.
set -euo pipefail

dir=${1:-/tmp}
build=${BUILD:-build}
bin="$build/bin/bench_swap"
size=${SIZE:-1G}
block=${BLOCK:-1M}
qd=${QUEUE_DEPTH:-8}
bc=${BUFFER_COUNT:-4}
rounds=${ROUNDS:-3}
depth=$((qd < bc ? qd : bc))

if [[ ! -x "$bin" ]]; then
    echo "bench_swap_vs_fio.sh: $bin not found (build the bench_swap target first)" >&2
    exit 1
fi
if ! command -v fio >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "bench_swap_vs_fio.sh: installing fio" >&2
        apt-get update >/dev/null && apt-get install -y fio >/dev/null
    else
        echo "bench_swap_vs_fio.sh: fio is not installed (apt-get install fio)" >&2
        exit 1
    fi
fi

fio_file="$dir/zrt-bench-fio.$$"
swap_log=$(mktemp)
trap 'rm -f "$fio_file" "$swap_log"' EXIT

run_swap() { # prints "write_gbps read_gbps write_cpu read_cpu"
    "$bin" --dir "$dir" --size "$size" --block-size "$block" --queue-depth "$qd" \
        --buffer-count "$bc" --reps 1 >"$swap_log"
    sed -n 's/^bench_swap result: write_gbps=\([0-9.]*\) read_gbps=\([0-9.]*\) write_cpu=\([0-9]*\) read_cpu=\([0-9]*\)$/\1 \2 \3 \4/p' \
        "$swap_log"
}

fio_job() { # fio_job RW: "GB/s CPU%" of one fio job on $fio_file
    fio --name=zrt-swap-vs-fio --filename="$fio_file" --ioengine=io_uring --direct=1 \
        --fixedbufs --bs="$block" --iodepth="$depth" --rw="$1" --size="$size" \
        --numjobs=1 --fallocate=native --output-format=json |
        python3 -c 'import json, sys
j = json.load(sys.stdin)["jobs"][0]
print("%.3f %.0f" % (j[sys.argv[1]]["bw_bytes"] / 1e9, j["usr_cpu"] + j["sys_cpu"]))' "$1"
}

run_fio() { # prints "write_gbps read_gbps write_cpu read_cpu" on a fresh file
    rm -f "$fio_file"
    local w r
    w=$(fio_job write)
    r=$(fio_job read)
    rm -f "$fio_file"
    echo "${w% *} ${r% *} ${w#* } ${r#* }"
}

ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
max() { python3 -c "import sys; print(max(sys.argv[1:], key=float))" "$@"; }

echo "bench_swap_vs_fio: dir $dir ($(df -T "$dir" | awk 'NR==2 {print $1 ", " $2}')), size $size," \
    "block $block, swap queue_depth $qd buffer_count $bc -> fio iodepth $depth," \
    "$(fio --version), $rounds rounds, load $(cut -d' ' -f1 /proc/loadavg)"
echo
echo "| round | swap write GB/s | fio write GB/s | write swap/fio | swap read GB/s | fio read GB/s | read swap/fio | CPU % swap w/r | CPU % fio w/r |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
sw_all=() sr_all=() fw_all=() fr_all=()
for ((i = 1; i <= rounds; i++)); do
    if ((i % 2)); then
        s=$(run_swap)
        f=$(run_fio)
    else
        f=$(run_fio)
        s=$(run_swap)
    fi
    read -r sw sr swc src <<<"$s"
    read -r fw fr fwc frc <<<"$f"
    if [[ -z $sr || -z $fr ]]; then
        echo "bench_swap_vs_fio.sh: round $i gave no result (swap: '$s', fio: '$f')" >&2
        exit 1
    fi
    sw_all+=("$sw") sr_all+=("$sr") fw_all+=("$fw") fr_all+=("$fr")
    echo "| $i | $sw | $fw | $(ratio "$sw" "$fw") | $sr | $fr | $(ratio "$sr" "$fr") |" \
        "$swc / $src | $fwc / $frc |"
done
sw=$(max "${sw_all[@]}") sr=$(max "${sr_all[@]}")
fw=$(max "${fw_all[@]}") fr=$(max "${fr_all[@]}")
echo "| best | $sw | $fw | $(ratio "$sw" "$fw") | $sr | $fr | $(ratio "$sr" "$fr") | | |"
echo
grep '^bench_swap: CPU work' "$swap_log" || true
