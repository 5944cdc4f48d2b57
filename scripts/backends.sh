# Sourced by test.sh: install (Debian packages) and start PostgreSQL and Redis on loopback for the
# second test run, and export DATABASE_URL and REDIS_URL. Sets BACKENDS_READY=1 on success, or
# BACKENDS_SKIPPED="<reason>" when they cannot be had here.
BACKENDS_READY=0
BACKENDS_SKIPPED=""
PG_PORT=${TEST_PG_PORT:-55432}
REDIS_PORT=${TEST_REDIS_PORT:-56379}

backends_start() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if ! command -v redis-server >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "Installing Debian's postgresql and redis-server for the backend tests ..."
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql redis-server >/dev/null; } \
      || { BACKENDS_SKIPPED="postgresql/redis-server could not be installed"; return 0; }
  fi
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  BACKENDS_DIR=$(mktemp -d /tmp/avatar-backends-XXXXXX)
  chmod 755 "$BACKENDS_DIR"
  # PostgreSQL will not run as root: a throwaway cluster owned by the postgres user, on loopback.
  local run_as=""
  [ "$(id -u)" = 0 ] && run_as="runuser -u postgres --"
  [ "$(id -u)" = 0 ] && chown postgres "$BACKENDS_DIR"
  $run_as "$bin/initdb" -D "$BACKENDS_DIR/pg" -U postgres --auth=trust >/dev/null \
    || { BACKENDS_SKIPPED="initdb failed"; return 0; }
  $run_as "$bin/pg_ctl" -D "$BACKENDS_DIR/pg" -l "$BACKENDS_DIR/pg.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $BACKENDS_DIR" start >/dev/null \
    || { BACKENDS_SKIPPED="PostgreSQL did not start (see $BACKENDS_DIR/pg.log)"; return 0; }
  "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE DATABASE avatars" >/dev/null \
    || { BACKENDS_SKIPPED="could not create the database"; return 0; }
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$BACKENDS_DIR/redis.pid" --logfile "$BACKENDS_DIR/redis.log" \
    || { BACKENDS_SKIPPED="redis-server did not start"; return 0; }
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/avatars"
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  BACKENDS_READY=1
}

backends_stop() {
  [ -n "${BACKENDS_DIR:-}" ] || return 0
  local bin run_as=""
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  [ "$(id -u)" = 0 ] && run_as="runuser -u postgres --"
  $run_as "$bin/pg_ctl" -D "$BACKENDS_DIR/pg" -m immediate stop >/dev/null 2>&1 || true
  [ -f "$BACKENDS_DIR/redis.pid" ] && kill "$(cat "$BACKENDS_DIR/redis.pid")" 2>/dev/null || true
  rm -rf "$BACKENDS_DIR"
}
