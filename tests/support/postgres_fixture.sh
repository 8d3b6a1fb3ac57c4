#!/usr/bin/env bash
# The real PostgreSQL 15 the test suite shares (Debian's postgresql-15), started once per
# ctest run by the `postgres_start` fixture test and stopped by `postgres_stop`:
#
#   tests/support/postgres_fixture.sh start STATE_DIR   # prints nothing; see STATE_DIR/conninfo
#   tests/support/postgres_fixture.sh stop STATE_DIR
#
# A test that takes its own server down and up again (tests/support/postgres.h,
# PrivatePostgres) also uses:
#
#   tests/support/postgres_fixture.sh pause STATE_DIR    # stops the server, keeps its data
#   tests/support/postgres_fixture.sh resume STATE_DIR   # starts it again, same port and socket
#
# The cluster lives in a fresh temporary directory (initdb, trust authentication, fsync
# off: test data only), listens on a unix socket inside it and on 127.0.0.1 at a free
# port. initdb refuses to run as root, so as root the server runs as the unprivileged
# `postgres` user (created by the package) in a directory it owns. STATE_DIR/conninfo
# holds the libpq connection string of the `postgres` database as superuser `wsstep`;
# STATE_DIR/tcp_port the TCP port. tests/support/postgres.h reads them.
set -euo pipefail
cmd=${1:?usage: postgres_fixture.sh start|stop|pause|resume STATE_DIR}
state=${2:?usage: postgres_fixture.sh start|stop|pause|resume STATE_DIR}
bin=/usr/lib/postgresql/15/bin
if [ ! -x "$bin/initdb" ]; then
  echo "postgres_fixture: $bin/initdb not found: install postgresql-15 (scripts/deps.sh does)" >&2
  exit 1
fi
as_owner=()
if [ "$(id -u)" -eq 0 ]; then as_owner=(runuser -u postgres --); fi

stop_cluster() {
  local dir
  dir=$(cat "$state/cluster_dir" 2>/dev/null || true)
  if [ -n "$dir" ] && [ -d "$dir/data" ]; then
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
  fi
  if [ -n "$dir" ]; then rm -rf "$dir"; fi
  rm -f "$state/cluster_dir" "$state/conninfo" "$state/tcp_port"
}

# Starts the cluster in $1 on port $2 (unix socket in $1).
start_server() {
  local dir=$1 port=$2
  if ! "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
       -o "-k $dir -p $port -h 127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200" \
       start >/dev/null 2>&1; then
    echo "postgres_fixture: the server did not start:" >&2
    cat "$dir/server.log" >&2 || true
    return 1
  fi
}

case "$cmd" in
  start)
    mkdir -p "$state"
    stop_cluster  # a cluster left by an interrupted run
    # /tmp (not $TMPDIR): the postgres user must be able to reach the directory.
    dir=$(mktemp -d /tmp/wsstep-pg.XXXXXX)
    echo "$dir" > "$state/cluster_dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; fi
    chmod 700 "$dir"
    if ! "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U wsstep -A trust -E UTF8 --locale=C \
         --no-sync >"$state/initdb.log" 2>&1; then
      echo "postgres_fixture: initdb failed:" >&2
      cat "$state/initdb.log" >&2
      stop_cluster
      exit 1
    fi
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if ! start_server "$dir" "$port"; then
      stop_cluster
      exit 1
    fi
    echo "$port" > "$state/tcp_port"
    echo "host=$dir port=$port user=wsstep dbname=postgres" > "$state/conninfo"
    ;;
  stop)
    stop_cluster
    ;;
  pause)
    dir=$(cat "$state/cluster_dir")
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 20 stop >/dev/null
    ;;
  resume)
    start_server "$(cat "$state/cluster_dir")" "$(cat "$state/tcp_port")"
    ;;
  *)
    echo "usage: postgres_fixture.sh start|stop|pause|resume STATE_DIR" >&2
    exit 2
    ;;
esac
