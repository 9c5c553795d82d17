#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/test.sh — sets up the machine, builds, and runs every test through
# ctest: Check unit suites, multi-rank tests under mpirun (1 to 4 ranks), and
# the example-driven checks; first, each libFuzzer target for a few seconds.
# Prints ctest's summary; fails if any test fails or if no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Formatting first: a difference fails here, naming the files and the fix.
bash scripts/check-format.sh
bash scripts/build.sh
# Each fuzz target for FUZZ_SECONDS (3) on a copy of its corpus, built in
# build-fuzz/ with clang, ASan and UBSan (scripts/fuzz.sh); before ctest, so
# that ctest's summary stays the last line. FUZZ_SECONDS=0 skips them.
[ "${FUZZ_SECONDS:-3}" = 0 ] || bash scripts/fuzz.sh "${FUZZ_SECONDS:-3}"
cd "${BUILD_DIR:-build}"
# Open MPI refuses root unless told; CI runs as root in a container.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --output-on-failure --timeout 600 -j 1 "$@" 2>&1 | tee ctest.log
grep -Eq "^[0-9]+% tests passed, [0-9]+ tests failed out of [1-9][0-9]*" ctest.log ||
    { echo "test.sh: ctest ran no test" >&2; exit 1; }
