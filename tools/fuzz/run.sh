#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fuzz matgrad's ops and transforms (tools/fuzz/fuzz_ops.py) for a bounded time:
#
#   bash tools/fuzz/run.sh [SECONDS]        default 60 (or $FUZZ_SECONDS)
#
# With atheris installed (pip install atheris) it runs under libFuzzer, starting from the
# committed seeds in tools/fuzz/corpus/ (never written to: new inputs go to a scratch corpus);
# without it, the plain random driver. Exits non-zero on any finding (a wrong value, shape,
# dtype or gradient, an undocumented exception, a crash or a hang) and says where the inputs
# that found it are ($FUZZ_OUT, default a new temporary directory); replay one with
#   python tools/fuzz/fuzz_ops.py --repro FILE -v
# Known engine defects (KNOWN in fuzz_ops.py) are counted, not failed; FUZZ_STRICT=1 fails them.
# FUZZ_SEED fixes libFuzzer's random seed (default 0: a new one each run), so that a run repeats.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

secs=${1:-${FUZZ_SECONDS:-60}}
out=${FUZZ_OUT:-$(mktemp -d -t matgrad-fuzz.XXXXXX)}
mkdir -p "$out/corpus"
py=${PYTHON:-python}
strict=()
[[ ${FUZZ_STRICT:-0} == 1 ]] && strict=(--strict)

# the seeds first: a seed that fails is a regression, whatever the fuzzer does next
"$py" tools/fuzz/fuzz_ops.py "${strict[@]}" --corpus tools/fuzz/corpus

set +e
if "$py" -c 'import atheris' 2>/dev/null; then
  echo "fuzz: atheris, ${secs} s; artifacts in $out"
  "$py" tools/fuzz/fuzz_ops.py "${strict[@]}" -max_total_time="$secs" -seed="${FUZZ_SEED:-0}" -timeout=60 -rss_limit_mb=8192 \
    -artifact_prefix="$out/" -print_final_stats=1 "$out/corpus" tools/fuzz/corpus 2> >(grep -v '^INFO: Instrumenting' >&2)
  rc=$?
else
  echo "fuzz: atheris is not installed: the plain random driver, ${secs} s; artifacts in $out"
  "$py" tools/fuzz/fuzz_ops.py "${strict[@]}" --random --time "$secs" --artifacts "$out"
  rc=$?
fi
set -e
if ((rc != 0)); then
  echo "fuzz: FAILED (exit $rc); the inputs are in $out (crash-*, finding-*, current-input)" >&2
  ls "$out" >&2
  exit 1
fi
echo "fuzz: no findings in ${secs} s"
