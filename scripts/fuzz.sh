#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS_PER_TARGET]: builds the libFuzzer targets (tests/fuzz/) with
# clang, ASan and UBSan into build-fuzz-clang, generates their seed corpus from the test
# PKI, and runs each target for SECONDS_PER_TARGET (default 60) seconds, one after the
# other. Prints per target the executions reached and any crash; a crash, leak, timeout
# (one input over 10 s) or out-of-memory (over 2 GiB) makes the exit status non-zero,
# with the reproducer saved as build-fuzz-clang/crashes/<target>-<kind>-<sha1>.
# CI: `scripts/fuzz.sh 20`.
#
# Environment: WSSTEP_FUZZ_TARGETS="pkcs12 detect" runs only those targets;
# WSSTEP_FUZZ_BUILD_DIR overrides the build directory; WSSTEP_CMAKE_ARGS adds cmake
# arguments when the build directory is first configured (as in scripts/build.sh), e.g.
# "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache". What a target
# finds beyond its seeds is kept in <build>/fuzz-work/<target>/ and reused by the next run.
#
# The targets cap key derivation at 64 iterations (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
# in their own copy of wsstep_core; tests/fuzz/CMakeLists.txt says why and how), and their
# encrypted seeds are written within that cap.
# Reproduce a crash: <build>/tests/fuzz/fuzz_<target> <build>/crashes/<file>
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
if ! [[ $SECONDS_PER_TARGET =~ ^[0-9]+$ ]] || ((SECONDS_PER_TARGET < 1)); then
  echo "usage: $0 [SECONDS_PER_TARGET]" >&2
  exit 2
fi
ALL_TARGETS=(key_pair pkcs12 java_keystore trust_store mobileprovision detect soap_response
             soap_step rest_step)
read -r -a TARGETS <<<"${WSSTEP_FUZZ_TARGETS:-${ALL_TARGETS[*]}}"
BUILD=${WSSTEP_FUZZ_BUILD_DIR:-build-fuzz-clang}

bash scripts/deps.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [[ ! -f $BUILD/build.ninja ]]; then
  read -r -a extra_cmake_args <<<"${WSSTEP_CMAKE_ARGS:-}"
  if ! cmake -S . -B "$BUILD" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DWSSTEP_FUZZ=ON "${extra_cmake_args[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
fi
exes=()
for t in "${TARGETS[@]}"; do exes+=("fuzz_$t"); done
if ! cmake --build "$BUILD" -j2 --target "${exes[@]}" >"$log" 2>&1; then
  grep -E 'error|Error|FAILED' -A5 "$log" | head -150 >&2
  echo "fuzz.sh: build failed (rerun: cmake --build $BUILD -j2 --target ${exes[*]})" >&2
  exit 1
fi

PKI=$BUILD/test-pki
CORPUS=$BUILD/fuzz-corpus
bash tests/pki/make_pki.sh "$PKI"
bash tests/fuzz/make_corpus.sh "$CORPUS" "$PKI"

CRASHES=$BUILD/crashes
LOGS=$BUILD/fuzz-logs
mkdir -p "$CRASHES" "$LOGS"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:quarantine_size_mb=64}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
printf '%-16s %12s %8s  %s\n' target executions exec/s result
for t in "${TARGETS[@]}"; do
  work=$BUILD/fuzz-work/$t
  mkdir -p "$work"
  args=(-max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10
        -print_final_stats=1 -artifact_prefix="$CRASHES/$t-")
  [[ -f tests/fuzz/dicts/$t.dict ]] && args+=(-dict="tests/fuzz/dicts/$t.dict")
  before=$(find "$CRASHES" -name "$t-*" -type f | sort)
  rc=0
  "$BUILD/tests/fuzz/fuzz_$t" "${args[@]}" "$work" "$CORPUS/$t" >"$LOGS/$t.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOGS/$t.log" | tail -1)
  if [[ -z $execs ]]; then  # no final stats after a crash: the last status line has them
    execs=$(grep -oE '^#[0-9]+' "$LOGS/$t.log" | tail -1 | tr -d '#')
  fi
  new=$(comm -13 <(echo "$before") <(find "$CRASHES" -name "$t-*" -type f | sort) | sed '/^$/d')
  if [[ $rc -eq 0 && -z $new ]]; then
    printf '%-16s %12s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" ok
    continue
  fi
  failed+=("$t")
  printf '%-16s %12s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "FAILED (exit $rc)"
  for f in $new; do echo "    reproducer: $f"; done
  # The sanitizer's or the property's one-line verdict, and where it happened.
  grep -m3 -E '^==[0-9]+==ERROR|^SUMMARY:|runtime error:|property violated|ALARM|out-of-memory' \
    "$LOGS/$t.log" | sed 's/^/    /' || true
  grep -m8 -E '^ +#[0-9]+ ' "$LOGS/$t.log" | sed 's/^/    /' || true
  echo "    full log: $LOGS/$t.log"
done

if ((${#failed[@]} > 0)); then
  echo "fuzz.sh: findings in ${failed[*]}; reproducers in $CRASHES" >&2
  exit 1
fi
