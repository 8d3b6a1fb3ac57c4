#!/usr/bin/env bash
# scripts/sanitize.sh [CTEST ARGS...]: builds the whole project a second time with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer (build-asan), and runs every test in it.
# Any sanitizer report fails the test that triggered it. The same build carries the
# libFuzzer targets (WSSTEP_FUZZ), so `WSSTEP_FUZZ_BUILD_DIR=build-asan scripts/fuzz.sh`
# needs no third build. CI runs both after scripts/test.sh (.ci/run).
#
# -O1 with line tables only: sanitizer reports keep file:line, and the build is far
# cheaper than RelWithDebInfo on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${WSSTEP_ASAN_BUILD_DIR:-build-asan}

bash scripts/deps.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [[ ! -f $BUILD/build.ninja ]]; then
  if ! cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=None \
      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      "-DCMAKE_C_FLAGS=-O1 -gline-tables-only" "-DCMAKE_CXX_FLAGS=-O1 -gline-tables-only" \
      -DWSSTEP_SANITIZE=ON -DWSSTEP_FUZZ=ON -DWSSTEP_BENCH=OFF >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
fi
if ! cmake --build "$BUILD" -j2 >"$log" 2>&1; then
  grep -E 'error|FAILED' -A5 "$log" | head -150 >&2
  echo "sanitize.sh: build failed (rerun: cmake --build $BUILD -j2)" >&2
  exit 1
fi

# halt_on_error: the first report ends the test with a non-zero status. Leak checking is
# on (the default on x86_64); tests/sanitizers/lsan.supp lists leaks of the system
# libraries we link, each with its reason, never ours.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0}
cd "$BUILD"
ctest --output-on-failure -j2 --timeout 1200 "$@"
