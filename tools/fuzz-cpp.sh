#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fuzz the program archive reader (matgrad::load_programs) with libFuzzer, for a bounded time:
#
#   bash tools/fuzz-cpp.sh [SECONDS]       default 60 (or MATGRAD_FUZZ_SECONDS)
#
# Builds cpp/fuzz/fuzz_load_programs.cpp with clang (-DMATGRAD_FUZZ=ON: -fsanitize=fuzzer,
# address,undefined) in build/fuzz, writes fresh seeds with matgrad_fuzz_make_corpus into
# build/fuzz/seeds, replays every committed input of cpp/fuzz/corpus (seeds and the
# reproducers of past findings) once, then fuzzes for SECONDS from all of them (new inputs go to
# build/fuzz/corpus). A finding (a crash, a sanitizer report, an exception other than
# matgrad::ValueError, a round trip that differs, an input slower than 25 s or using more than
# 2 GB) stops it: the input is written to build/fuzz/artifacts/ and the script fails. Reproduce
# one with `build/fuzz/matgrad_fuzz_load_programs <file>`.
#
# Needs clang with its compiler runtime (Debian 12: apt-get install clang libclang-rt-14-dev;
# CXX=clang++-NN picks another), and `python` on PATH with the test extra (cmake, ninja,
# cmeel-eigen). The first build takes about 2 minutes on 2 cores.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_TO_FUZZ=${1:-${MATGRAD_FUZZ_SECONDS:-60}}
[[ $SECONDS_TO_FUZZ =~ ^[0-9]+$ ]] || {
  echo "usage: bash tools/fuzz-cpp.sh [SECONDS]" >&2
  exit 2
}
JOBS=${MATGRAD_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
BUILD=build/fuzz

say() { printf '\n==> [fuzz %4ss] %s\n' "$SECONDS" "$*"; }
die() {
  printf 'fuzz-cpp: error: %s\n' "$*" >&2
  exit 1
}

CXX=${CXX:-}
[[ $CXX == *clang* ]] || CXX=clang++
CXX=$(command -v "$CXX" || command -v clang++-14 || true)
[[ -n $CXX ]] || die "clang++ not found (Debian 12: apt-get install clang libclang-rt-14-dev)"
command -v python >/dev/null 2>&1 || die "no 'python' on PATH; activate a virtual environment"
# shellcheck source=tools/lib.sh
. tools/lib.sh
CMAKE=$(tool cmake)
NINJA=$(tool ninja)
[[ -n $CMAKE && -n $NINJA ]] || die "cmake and ninja are needed (pip install \".[test]\")"
eigen_prefix=$(python -m cmeel cmake 2>/dev/null || true)

say "configure, build ($BUILD, $CXX)"
if [[ -f $BUILD/CMakeCache.txt ]] && ! grep -q "^CMAKE_CXX_COMPILER:[A-Z]*=$CXX\$" "$BUILD/CMakeCache.txt"; then
  rm -rf "$BUILD"  # configured with another compiler
fi
"$CMAKE" -S . -B "$BUILD" -G Ninja -DCMAKE_MAKE_PROGRAM="$NINJA" -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMATGRAD_FUZZ=ON -DMATGRAD_WERROR=OFF -DMATGRAD_INSTALL=OFF \
  -DMATGRAD_BUILD_TESTS=OFF -DMATGRAD_BUILD_BENCH=OFF -DMATGRAD_BUILD_PYTHON=OFF \
  ${eigen_prefix:+"-DCMAKE_PREFIX_PATH=$eigen_prefix"}
"$CMAKE" --build "$BUILD" --parallel "$JOBS" --target matgrad_fuzz_load_programs matgrad_fuzz_make_corpus

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:abort_on_error=1}
FUZZER=$BUILD/matgrad_fuzz_load_programs
OPTS=(-timeout=25 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 -print_final_stats=1
  -artifact_prefix="$BUILD/artifacts/")
mkdir -p "$BUILD/artifacts" "$BUILD/corpus"
rm -rf "$BUILD/seeds"
mkdir -p "$BUILD/seeds"
say "seeds: $BUILD/seeds"
"$BUILD/matgrad_fuzz_make_corpus" "$BUILD/seeds" >/dev/null

# A failed run: the report (from the first sanitizer, harness or libFuzzer error on), then fail.
report() {  # <exit code> <log>
  sed -n '/==[0-9]*==ERROR\|runtime error:\|^fuzz_load_programs:\|ERROR: libFuzzer\|^Running: /,$p' "$2" | head -n 100
  echo "fuzz-cpp: FAILED (exit $1): the input is in $BUILD/artifacts/ (or the last 'Running:' above); log $2" >&2
  exit 1
}

say "replay cpp/fuzz/corpus and the fresh seeds (log: $BUILD/replay.log)"
rc=0
"$FUZZER" "${OPTS[@]}" cpp/fuzz/corpus/* "$BUILD"/seeds/* >"$BUILD/replay.log" 2>&1 || rc=$?
((rc == 0)) || report $rc "$BUILD/replay.log"
grep -c '^Executed ' "$BUILD/replay.log" | sed 's/$/ inputs replayed/'

say "fuzz for $SECONDS_TO_FUZZ s (log: $BUILD/fuzz.log)"
"$FUZZER" "${OPTS[@]}" -max_total_time="$SECONDS_TO_FUZZ" "$BUILD/corpus" cpp/fuzz/corpus "$BUILD/seeds" \
  >"$BUILD/fuzz.log" 2>&1 || rc=$?
((rc == 0)) || report $rc "$BUILD/fuzz.log"
grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|cov: .* (DONE|REDUCE|NEW) ' "$BUILD/fuzz.log" | tail -n 4
echo "fuzz-cpp: no findings in $SECONDS_TO_FUZZ s"
