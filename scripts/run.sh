#!/usr/bin/env bash
# Installs what is missing, builds, and starts the wsstep plugin with its embedded store
# (SQLite and a 0600 master key in ${WSSTEP_DATA_DIR:-./data}), listening on the unix
# socket <data dir>/wsstep.sock. Extra arguments go to `wsstep serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${WSSTEP_BUILD_DIR:-build}
bash scripts/build.sh
bin="$PWD/$BUILD_DIR/plugin/wsstep"
data="${WSSTEP_DATA_DIR:-$PWD/data}"
mkdir -p "$data"
chmod 700 "$data"
cat >&2 <<MSG
wsstep: serving with the store in $data (socket unix://$data/wsstep.sock).
  Try, from another terminal:
    $bin demo                                   # throwaway PKI, mTLS server, a good and a failing step
    $bin --plugin unix://$data/wsstep.sock cert list
    $bin --plugin unix://$data/wsstep.sock cert import --name my-client --type KEY_PAIR \\
        --file client.pem --key-file client.key --bind api.example.com:443
  Stop with Ctrl-C.
MSG
exec "$bin" --data-dir "$data" serve "$@"
