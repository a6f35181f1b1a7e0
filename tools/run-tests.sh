#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run every matgrad test, Python and C++, from a clone:
#
#   bash tools/run-tests.sh
#
# 1. python -m pip install ".[test]"   the package, built for this machine, with pytest,
#                                      hypothesis, mypy, scikit-learn/tqdm/matplotlib (the
#                                      train command and examples) and what the C++ build
#                                      needs (cmeel-eigen, ninja, cmake)
# 2. python -m pytest                  the Python suite (tests/); "no tests collected" fails
# 3. the C++ GoogleTest suite          configured, built and run with ctest in build/cpp-tests
#                                      (with smoke runs of the benchmark binaries); Debian's
#                                      libgtest-dev and libbenchmark-dev are installed with
#                                      apt-get when missing and we are root
#
# Uses the `python` on PATH: activate a virtual environment first. Both suites always run;
# the exit status is non-zero when anything failed. Build outputs stay in build/.
# MATGRAD_TEST_JOBS sets the build and ctest parallelism (default: the number of cores).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
JOBS=${MATGRAD_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}

say() { printf '\n==> [run-tests %4ss] %s\n' "$SECONDS" "$*"; }
die() {
  printf 'run-tests: error: %s\n' "$*" >&2
  exit 1
}

command -v python >/dev/null 2>&1 ||
  die "no 'python' on PATH; activate a virtual environment (python3 -m venv .venv && . .venv/bin/activate)"
say "python: $(command -v python) ($(python --version 2>&1))"

# ---- 1. install ----
say "python -m pip install \".[test]\""
python -m pip install --progress-bar off ".[test]"

mkdir -p build
failed=()

# ---- 2. Python tests ----
say "python -m pytest"
py_rc=0
rm -f build/pytest-junit.xml
if [[ -d tests ]]; then
  # Caches and hypothesis' example database go under build/, not into the source tree.
  PYTHONDONTWRITEBYTECODE=1 HYPOTHESIS_STORAGE_DIRECTORY="$ROOT/build/hypothesis" \
    python -m pytest -p no:cacheprovider --junitxml="$ROOT/build/pytest-junit.xml" || py_rc=$?
else
  echo "run-tests: there is no tests/ folder"
  py_rc=5
fi
case $py_rc in
  0) ;;
  5)
    echo "run-tests: pytest collected no tests (exit 5): counted as a failure" >&2
    failed+=("python (no tests collected)")
    ;;
  *) failed+=("python (pytest exit $py_rc)") ;;
esac

# ---- 3. C++ tests ----
# Tools from the environment's own scripts folder (the test extra installs cmake and ninja
# there) before anything else on PATH.
# shellcheck source=tools/lib.sh
. tools/lib.sh
CMAKE=$(tool cmake)
CTEST=$(tool ctest)
NINJA=$(tool ninja)
[[ -n $CMAKE && -n $CTEST ]] || die "cmake/ctest not found (they come with .[test]; or install CMake >= 3.18)"

# GoogleTest for the suite and Google Benchmark for the benchmark binaries built with it
# (Debian's libgtest-dev and libbenchmark-dev), installed with apt-get when missing and we can.
have_header() {
  local f
  for f in "/usr/include/$1" "/usr/local/include/$1"; do
    [[ -f $f ]] && return 0
  done
  return 1
}
missing=()
[[ -n ${GTest_DIR:-}${GTEST_ROOT:-} ]] || have_header gtest/gtest.h || missing+=(libgtest-dev)
[[ -n ${benchmark_DIR:-} ]] || have_header benchmark/benchmark.h || missing+=(libbenchmark-dev)
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "not found: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" || { apt-get update -q && apt-get install -y -q "${missing[@]}"; } ||
      die "could not install ${missing[*]} with apt-get"
  else
    die "${missing[*]} missing and cannot be installed here (needs root and apt-get).
Install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}), or set GTest_DIR / benchmark_DIR to their CMake folders, then re-run."
  fi
fi

# Eigen from the cmeel-eigen wheel when present (CMakeLists.txt falls back to a system Eigen).
eigen_prefix=$(python -m cmeel cmake 2>/dev/null || true)

BUILD=build/cpp-tests
gen=()
if [[ -n $NINJA ]]; then
  gen=(-G Ninja -DCMAKE_MAKE_PROGRAM="$NINJA")
  # A build folder configured with another generator cannot be reused.
  if [[ -f $BUILD/CMakeCache.txt ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$BUILD/CMakeCache.txt"; then
    rm -rf "$BUILD"
  fi
fi

say "C++ tests: configure, build ($BUILD)"
"$CMAKE" -S . -B "$BUILD" "${gen[@]}" -DMATGRAD_BUILD_TESTS=ON -DMATGRAD_BUILD_BENCH=ON -DMATGRAD_BUILD_PYTHON=OFF \
  ${eigen_prefix:+"-DCMAKE_PREFIX_PATH=$eigen_prefix"}
"$CMAKE" --build "$BUILD" --parallel "$JOBS"

say "C++ tests: ctest (full log: $BUILD/ctest.log)"
ct_rc=0
(cd "$BUILD" && "$CTEST" --output-on-failure --no-tests=error -j "$JOBS") >"$BUILD/ctest.log" 2>&1 || ct_rc=$?
# Everything but the one-line progress of each passing test: failures with their output,
# the summary, and the tests that did not run.
grep -Ev '^ +Start +[0-9]+: |^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* +Passed +[0-9.]+ sec$' "$BUILD/ctest.log" || true
[[ $ct_rc -eq 0 ]] || failed+=("C++ (ctest exit $ct_rc)")

# ---- summary ----
counts=$(python - "$ROOT/build/pytest-junit.xml" "$BUILD/ctest.log" <<'EOF'
import re, sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
try:
    root = ET.parse(sys.argv[1]).getroot()
    for s in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        t, f, e, k = (int(s.get(a, 0)) for a in ("tests", "failures", "errors", "skipped"))
        passed += t - f - e - k
        failed += f + e
        skipped += k
except (OSError, ET.ParseError):
    pass
try:
    log = open(sys.argv[2]).read()
    m = re.search(r"tests passed(?:, (\d+) tests? failed)? out of (\d+)", log)
    if m:
        f = int(m.group(1) or 0)
        passed += int(m.group(2)) - f
        failed += f
    skipped += len(re.findall(r"\((?:Disabled|Skipped)\)\s*$", log, re.M))
except OSError:
    pass
print(f"{passed} passed, {failed} failed, {skipped} skipped")
EOF
) || counts=""
say "summary"
if ((${#failed[@]})); then
  printf 'run-tests: FAILED: %s\n' "${failed[@]}"
else
  echo "run-tests: all tests passed"
fi
[[ -z $counts ]] || echo "total: $counts"
((${#failed[@]} == 0))
