#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The tests under AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer), with gcc:
#
#   bash tools/sanitize.sh            both parts below
#   bash tools/sanitize.sh cpp        1. only the C++ GoogleTest suite
#   bash tools/sanitize.sh python     2. only the Python part
#
# One build folder, build/sanitize, configured with -DMATGRAD_SANITIZE=address,undefined (the
# engine is compiled once for both parts):
# 1. cpp     the C++ GoogleTest suite, all of it in one process (seconds, where ctest's process
#            per test takes minutes under ASan), then the W7 benchmark's smoke run: any report (a
#            bad access, undefined behaviour, a leak at exit, with the allocating test's stack)
#            fails it. Not the W1-W6 binary (matgrad_bench_workloads): its W4 factorizes 64 x 64
#            and 256 x 256 matrices, and Eigen 3.4's blocked partial-pivoting LU (n > 16) binds a
#            reference to an empty block's null data inside its triangular solve, which UBSan
#            reports ("reference binding to null pointer", Eigen/src/Core/MapBase.h) and which is
#            Eigen's, not matgrad's
# 2. python  the Python module, put with python/matgrad into a package folder of its own
#            (build/sanitize/site, first on PYTHONPATH), then pytest MATGRAD_SANITIZE_PYTEST
#            (default: the whole Python suite, the crash-isolated cases that run_python starts in
#            a fresh interpreter included, but for the files that need more than NumPy, pytest,
#            hypothesis and SciPy, test_cli, test_docs_site, test_typing, test_cpp_package (the
#            package folder has no C++ package: it checks the installed one, which is not
#            instrumented, and compiles C++), and test_memory, whose RSS bounds do not hold under
#            ASan's allocator) in a virtual environment of its own
#            (build/sanitize/venv), libasan and libstdc++ preloaded into the interpreter (Python
#            itself is not instrumented: leaks are not checked there); the sanitizers' reports go
#            to build/sanitize/python-reports.* (pytest would swallow them) and are printed
#
# Every sanitizer report aborts the process that made it (-fno-sanitize-recover=all,
# halt_on_error), so it fails a test, and the script fails. Each build and each test run is
# bounded in time (MATGRAD_SANITIZE_TIMEOUT seconds, default 1800).
# Uses the `python` on PATH (with the test extra installed: cmake, ninja, cmeel-eigen; pybind11
# is installed when missing) and `c++` (gcc) unless CXX says otherwise; MATGRAD_TEST_JOBS sets
# the parallelism (default: the number of cores). On 2 cores, from scratch: about 6.5 minutes to
# build the C++ tests and run them, 2 more for the Python part.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
JOBS=${MATGRAD_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
LIMIT=${MATGRAD_SANITIZE_TIMEOUT:-1800}
PYTEST_ARGS=${MATGRAD_SANITIZE_PYTEST:-tests --ignore=tests/test_cli.py --ignore=tests/test_docs_site.py --ignore=tests/test_typing.py --ignore=tests/test_cpp_package.py --ignore=tests/test_memory.py}
SANITIZE=address,undefined
BUILD=build/sanitize
export CXX=${CXX:-c++}

say() { printf '\n==> [sanitize %4ss] %s\n' "$SECONDS" "$*"; }
die() {
  printf 'sanitize: error: %s\n' "$*" >&2
  exit 1
}

parts=("$@")
((${#parts[@]})) || parts=(cpp python)
for part in "${parts[@]}"; do
  [[ $part == cpp || $part == python ]] || die "unknown part '$part' (cpp, python)"
done

command -v python >/dev/null 2>&1 || die "no 'python' on PATH; activate a virtual environment"
# shellcheck source=tools/lib.sh
. tools/lib.sh
CMAKE=$(tool cmake)
CTEST=$(tool ctest)
NINJA=$(tool ninja)
[[ -n $CMAKE && -n $CTEST && -n $NINJA ]] || die "cmake, ctest and ninja are needed (pip install \".[test]\")"
eigen_prefix=$(python -m cmeel cmake 2>/dev/null || true)

# Sanitizer settings for everything run below: stop at the first report, with a stack trace.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:abort_on_error=1}

# (Functions run as `f || rc=$?`, where set -e does not apply: each step checks its own status.)
configured=0
configure() {  # once, for both parts
  ((configured)) && return 0
  if ! python -c 'import pybind11' 2>/dev/null; then
    # pip's isolated builds bring pybind11 themselves; this build is CMake's own
    local req
    req=$(python -c 'import re; print(re.search(r"\"(pybind11[^\"]*)\"", open("pyproject.toml").read()).group(1))')
    say "python -m pip install \"$req\""
    python -m pip install -q --progress-bar off "$req" || return 1
  fi
  if [[ -f $BUILD/CMakeCache.txt ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$BUILD/CMakeCache.txt"; then
    rm -rf "$BUILD"
  fi
  say "configure $BUILD (-fsanitize=$SANITIZE, $CXX)"
  # warnings are the main build's business (GCC 12 warns of other things under the sanitizers)
  "$CMAKE" -S . -B "$BUILD" -G Ninja -DCMAKE_MAKE_PROGRAM="$NINJA" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMATGRAD_SANITIZE=$SANITIZE -DMATGRAD_WERROR=OFF -DMATGRAD_INSTALL=OFF \
    -DMATGRAD_BUILD_TESTS=ON -DMATGRAD_BUILD_BENCH=ON -DMATGRAD_BUILD_PYTHON=ON \
    -DPython_EXECUTABLE="$(python -c 'import sys; print(sys.executable)')" \
    -Dpybind11_DIR="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')" \
    ${eigen_prefix:+"-DCMAKE_PREFIX_PATH=$eigen_prefix"} || return 1
  configured=1
}

# ---- 1. the C++ suite ----
run_cpp() {
  configure || return 1
  say "C++: build the tests"
  timeout "$LIMIT" "$CMAKE" --build "$BUILD" --parallel "$JOBS" --target matgrad_tests matgrad_bench_w7 || return 1
  say "C++: $BUILD/matgrad_tests (full log: $BUILD/gtest.log)"
  local rc=0
  timeout "$LIMIT" "$BUILD/matgrad_tests" >"$BUILD/gtest.log" 2>&1 || rc=$?
  # the failures, the sanitizers' reports and the summary
  grep -Ev '^\[ +(RUN|OK) +\] |^\[----------\] |^$' "$BUILD/gtest.log" || true
  ((rc == 0)) || return $rc
  say "C++: the W7 benchmark's smoke run (ctest)"
  (cd "$BUILD" && timeout "$LIMIT" "$CTEST" --output-on-failure --no-tests=error -R '^bench_w7_smoke$')
}

# ---- 2. the Python module ----
run_python() {
  local site=$BUILD/site venv=$BUILD/venv py=$BUILD/venv/bin/python
  configure || return 1
  say "Python: build the module"
  timeout "$LIMIT" "$CMAKE" --build "$BUILD" --parallel "$JOBS" --target _core matgrad_stub || return 1
  # the package: python/matgrad with the sanitized module and its stub
  rm -rf "$site"
  mkdir -p "$site" &&
    cp -r python/matgrad "$site/matgrad" &&
    rm -f "$site"/matgrad/_core*.so &&
    cp "$BUILD"/_core*.so "$BUILD/generated/_core.pyi" "$site/matgrad/" || return 1
  # a virtual environment of its own (an editable install of matgrad would shadow the package
  # folder): NumPy, pytest, hypothesis and SciPy (the matrix functions' references), as
  # pyproject.toml asks for them
  if [[ ! -x $py ]]; then
    say "Python: python -m venv $venv"
    python -m venv "$venv" || return 1
  fi
  local reqs
  reqs=$("$py" -c '
import tomllib
with open("pyproject.toml", "rb") as fh:
    project = tomllib.load(fh)["project"]
wanted = [r for r in project["optional-dependencies"]["test"] if r.startswith(("pytest", "hypothesis", "scipy"))]
print(" ".join(project["dependencies"] + wanted))
') || return 1
  say "Python: pip install $reqs ($venv)"
  # shellcheck disable=SC2086
  "$py" -m pip install -q --progress-bar off --disable-pip-version-check $reqs || return 1
  local libasan libstdcxx
  libasan=$("$CXX" -print-file-name=libasan.so)
  libstdcxx=$("$CXX" -print-file-name=libstdc++.so)
  [[ -f $libasan && -f $libstdcxx ]] || {
    echo "sanitize: $CXX has no libasan.so or libstdc++.so ($libasan, $libstdcxx)" >&2
    return 1
  }
  # libasan first; libstdc++ too, or ASan's __cxa_throw interceptor finds no real __cxa_throw
  # (the interpreter does not link libstdc++) and the first C++ exception aborts. Python and
  # NumPy are not instrumented: their leaks are not ours (detect_leaks=0). The settings reach
  # the fresh interpreters of run_python (tests/conftest.py) too.
  local reports=$ROOT/$BUILD/python-reports
  rm -f "$reports".*
  local env=(LD_PRELOAD="$libasan $libstdcxx" PYTHONPATH="$ROOT/$site"
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$reports"
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1:log_path=$reports"
    PYTHONDONTWRITEBYTECODE=1 HYPOTHESIS_STORAGE_DIRECTORY="$ROOT/build/hypothesis")
  local where
  where=$(env "${env[@]}" "$py" -c 'import matgrad; print(matgrad._core.__file__)') || return 1
  [[ $where == "$ROOT/$site/"* ]] || {
    echo "sanitize: matgrad._core comes from $where, not the sanitized build" >&2
    return 1
  }
  say "Python: pytest $PYTEST_ARGS (libasan preloaded, matgrad from $site)"
  local rc=0
  # shellcheck disable=SC2086
  env "${env[@]}" timeout "$LIMIT" "$py" -m pytest -p no:cacheprovider -q $PYTEST_ARGS || rc=$?
  local f
  for f in "$reports".*; do
    [[ -f $f ]] || continue
    echo "sanitize: a sanitizer report ($f):" >&2
    head -n 60 "$f" >&2
    ((rc)) || rc=1
  done
  return $rc
}

failed=()
for part in "${parts[@]}"; do
  start=$SECONDS
  rc=0
  "run_$part" || rc=$?
  say "$part: exit code $rc after $((SECONDS - start)) s"
  ((rc == 0)) || failed+=("$part")
done

if ((${#failed[@]})); then
  printf 'sanitize: FAILED: %s\n' "${failed[*]}"
  exit 1
fi
echo "sanitize: no sanitizer reports, all tests passed"
