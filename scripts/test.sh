#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test. Extra arguments go to ctest
# (for example: scripts/test.sh -R Resolver).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${WSSTEP_BUILD_DIR:-build}
bash scripts/build.sh
cd "$BUILD_DIR"
ctest --output-on-failure -j2 --timeout 900 "$@"
