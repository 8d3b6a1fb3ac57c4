#!/usr/bin/env bash
# Configures and builds wsstep into ${WSSTEP_BUILD_DIR:-build} with two jobs. Quiet when
# there is nothing to do; prints the compiler's output when something fails.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${WSSTEP_BUILD_DIR:-build}
bash scripts/deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  if ! cmake -S . -B "$BUILD_DIR" -G Ninja ${WSSTEP_CMAKE_ARGS:-} >"$log" 2>&1; then
    cat "$log" >&2; exit 1
  fi
fi
if ! cmake --build "$BUILD_DIR" -j2 "$@" >"$log" 2>&1; then
  grep -E 'error|Error|FAILED' -A5 "$log" | head -150 >&2
  echo "wsstep: build failed (full log above trimmed; rerun: cmake --build $BUILD_DIR -j2)" >&2
  exit 1
fi
