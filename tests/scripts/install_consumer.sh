#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs zrt into a temporary prefix, then builds tests/consumer against it
# twice — with find_package(zrt) and with pkg-config — and runs both on 2
# ranks: another C project can find and link the library.
source "$(dirname "$0")/common.sh"
BUILD_DIR=$1 SOURCE_DIR=$2
PREFIX="$WORK/prefix"
cmake --install "$BUILD_DIR" --prefix "$PREFIX" >/dev/null || fail "cmake --install"
[ -f "$PREFIX/include/zrt/zrt.h" ] || fail "zrt.h not installed"
cmake -S "$SOURCE_DIR/tests/consumer" -B "$WORK/cmake-build" \
    -DCMAKE_PREFIX_PATH="$PREFIX" >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "configure"; }
cmake --build "$WORK/cmake-build" >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "build"; }
export LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
run_ranks 2 "$WORK/cmake-build/consumer" || { cat "$WORK/out"; fail "find_package consumer"; }
grep -q "consumer rank 1: ZRT_OK" "$WORK/out" || fail "find_package consumer output"
flags=$(PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --cflags --libs zrt) ||
    fail "pkg-config zrt"
# shellcheck disable=SC2086
cc "$SOURCE_DIR/tests/consumer/main.c" $flags -o "$WORK/pc-consumer" || fail "pkg-config build"
run_ranks 2 "$WORK/pc-consumer" || { cat "$WORK/out"; fail "pkg-config consumer"; }
grep -q "consumer rank 0: ZRT_OK" "$WORK/out" || fail "pkg-config consumer output"
echo "PASS"
