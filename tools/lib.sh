# SPDX-License-Identifier: MIT
# Shared by the tools/ scripts (sourced, not run): find a build tool in the active environment's
# scripts folder (the test extra installs cmake, ctest and ninja there) before the rest of PATH.
#   tool cmake   -> a path, or nothing when it is not installed
# Needs `python` on PATH.
scripts=$(python -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
tool() {
  if [[ -x "$scripts/$1" ]]; then
    echo "$scripts/$1"
  else
    command -v "$1" 2>/dev/null || true
  fi
}
