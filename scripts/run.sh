#!/usr/bin/env bash
# Installs what is missing, builds, and starts the wsstep plugin with its embedded store
# (SQLite and a master key in ${WSSTEP_DATA_DIR:-./data}). Extra arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${WSSTEP_BUILD_DIR:-build}
bash scripts/build.sh
bin="$BUILD_DIR/plugin/wsstep"
if [ ! -x "$bin" ]; then
  echo "wsstep: the plugin binary is not part of this build yet ($bin); see the README's status." >&2
  exit 1
fi
exec "$bin" serve --data-dir "${WSSTEP_DATA_DIR:-$PWD/data}" "$@"
