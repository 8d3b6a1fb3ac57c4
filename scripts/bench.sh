#!/usr/bin/env bash
# Builds wsstep, generates a throw-away test PKI, and runs the benchmark harness of
# PRODUCT.md §5 (tests/bench/): nginx mTLS origin + egress gateway driven by wrk, direct
# libcurl loops, openssl s_time, the real plugin over gRPC, the REST engine in-process,
# PKCS#12/JKS against PEM, and a store of 100,000 certificates. Prints one table of
# figures and §5 ratios, and writes it as Markdown to $BUILD_DIR/bench/latest.md.
#
#   scripts/bench.sh                        # full run (a few minutes; the first run also
#                                           # generates the 100k store, cached afterwards)
#   scripts/bench.sh --smoke                # 10 requests each: does the harness work?
#   scripts/bench.sh --only wrk,plugin      # some phases; --help lists every option
#
# WSSTEP_BUILD_DIR selects the build directory (default: build). Everything runs on
# loopback; every server and process started is stopped on exit or interruption.
# Exit code: 0 when every figure was measured, whether or not a target was met.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${WSSTEP_BUILD_DIR:-build}
# The harness builds by default (tests/CMakeLists.txt: WSSTEP_BENCH); switch it back on
# in a build directory configured with -DWSSTEP_BENCH=OFF.
export WSSTEP_CMAKE_ARGS="${WSSTEP_CMAKE_ARGS:-} -DWSSTEP_BENCH=ON"
if [ -f "$BUILD_DIR/CMakeCache.txt" ] && ! grep -q '^WSSTEP_BENCH:BOOL=ON$' "$BUILD_DIR/CMakeCache.txt"; then
  cmake -S . -B "$BUILD_DIR" -DWSSTEP_BENCH=ON >/dev/null
fi
bash scripts/build.sh

bin="$BUILD_DIR/tests/bench/wsstep_bench"
if [ ! -x "$bin" ]; then
  echo "wsstep: $bin was not built" >&2
  exit 1
fi

pki=$(mktemp -d "${TMPDIR:-/tmp}/wsstep-bench-pki.XXXXXX")
bench_pid=
cleanup() {
  # The harness stops its own children (nginx, the plugin, its store process) when it
  # gets SIGTERM; wait for it, then remove the PKI (private keys) in any case.
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
  fi
  rm -rf "$pki"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash tests/pki/make_pki.sh "$pki/pki"
echo "[bench] machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$bin" --pki "$pki/pki" --plugin "$BUILD_DIR/plugin/wsstep" --out-dir "$BUILD_DIR/bench" "$@" &
bench_pid=$!
set +e
wait "$bench_pid"
status=$?
set -e
bench_pid=
exit "$status"
