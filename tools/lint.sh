#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every check on the sources, as CI runs them (the tools come with the lint extra:
# pip install ".[lint]"):
#
#   bash tools/lint.sh          check: ruff, ruff format, clang-format, mypy on the package
#   bash tools/lint.sh --fix    rewrite what the formatters and ruff's safe fixes can, then check
#
# mypy checks the installed package (python/matgrad with its generated _core.pyi).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fix=0
[[ ${1:-} == --fix ]] && fix=1
cxx=$(git ls-files '*.cpp' '*.hpp')
failed=()
run() {
  printf '\n==> %s\n' "$*"
  "$@" || failed+=("$1")
}

if ((fix)); then
  ruff check --fix . || true
  ruff format .
  # shellcheck disable=SC2086
  clang-format -i $cxx
fi
run ruff check .
run ruff format --check .
# shellcheck disable=SC2086
run clang-format --dry-run -Werror $cxx
run mypy -p matgrad

if ((${#failed[@]})); then
  printf '\nlint: FAILED: %s\n' "${failed[*]}"
  exit 1
fi
printf '\nlint: all checks passed\n'
