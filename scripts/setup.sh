#!/usr/bin/env bash
# scripts/setup.sh — installs what zrt needs to build and test on Debian or
# Ubuntu: a C compiler, CMake, Open MPI, hwloc, liburing, Check, jansson.
# Installs only what is missing; uses sudo when not run as root.
set -euo pipefail
PACKAGES=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev
          libhwloc-dev liburing-dev check libsubunit-dev libjansson-dev libopenblas-dev
          python3 chromium)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all packages present"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
