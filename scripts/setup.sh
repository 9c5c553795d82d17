#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/setup.sh — installs what zrt needs to build and test on Debian or
# Ubuntu: a C compiler, CMake, Open MPI, hwloc, liburing, Check, jansson,
# OpenBLAS, Chromium (the HTML report's render test), clang with its
# sanitizer and libFuzzer runtimes (scripts/fuzz.sh), clang-format (the
# format check), iproute2 (ip and tc: the namespace cluster), and Python's
# safetensors and numpy (the checkpoint export's check; that test skips
# without them). Installs only what is missing; uses sudo when not root.
set -euo pipefail
PACKAGES=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev
          libhwloc-dev liburing-dev check libsubunit-dev libjansson-dev libopenblas-dev
          python3 python3-pip chromium clang libclang-rt-14-dev clang-format iproute2)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all packages present"
else
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
fi
if ! python3 -c "import safetensors, numpy" 2>/dev/null; then
    python3 -m pip install --quiet --break-system-packages safetensors numpy ||
        echo "setup: safetensors not installed: ckpt_tool skips its safetensors check"
fi
