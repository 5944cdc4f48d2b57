#!/usr/bin/env bash
# A whole deployment on this machine, for trying live sessions past one process and for tests:
#   PostgreSQL and Redis (scripts/backends.sh), Janus in its network namespace (scripts/janus.sh),
#   two web processes (python -m tutorplatform.server on 127.0.0.1:9101 and :9102), two stage
#   workers (manage.py stage_worker --name worker-1 / worker-2), a Celery worker for the avatar
#   jobs, and HAProxy on 127.0.0.1:${CLUSTER_PORT:-9000} in front of the web processes.
#
#   bash scripts/cluster.sh start    migrate, start everything, wait until the load balancer answers
#   bash scripts/cluster.sh status   what runs, where, and whether it is alive
#   bash scripts/cluster.sh stop     stop everything, remove the databases and the namespace
# Or source it and call cluster_start / cluster_stop / cluster_status (a test fixture does).
#
# Every process gets the cluster's settings by environment (written to $CLUSTER_RUN_DIR/cluster.env):
# DATABASE_URL, REDIS_URL (channel layer and Celery broker), AVATAR_JOB_QUEUE=celery, one DATA_DIR
# and DJANGO_SECRET_KEY, SESSION_MEDIA_SERVER=janus, JANUS_URL, JANUS_ADMIN_KEY, JANUS_RTP_HOST.
# Janus needs root (a network namespace); without it the cluster runs with SESSION_MEDIA_SERVER
# empty (each web process serves its sessions' viewers itself) and says so.
#
# Overridable: CLUSTER_PORT (9000), CLUSTER_WEB_PORTS ("9101 9102"), CLUSTER_STAGE_WORKERS
# ("worker-1 worker-2"), CLUSTER_CELERY_WORKERS (1), CLUSTER_PG_PORT (55442), CLUSTER_REDIS_PORT
# (56389), CLUSTER_RUN_DIR (/tmp/tp-cluster-$CLUSTER_PORT: pids, logs, data), and scripts/janus.sh's
# JANUS_* addresses (a second cluster on the same machine needs its own JANUS_NETNS, JANUS_VETH and
# addresses besides its own ports).

CLUSTER_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER_PORT=${CLUSTER_PORT:-9000}
CLUSTER_WEB_PORTS=${CLUSTER_WEB_PORTS:-"9101 9102"}
CLUSTER_STAGE_WORKERS=${CLUSTER_STAGE_WORKERS:-"worker-1 worker-2"}
CLUSTER_CELERY_WORKERS=${CLUSTER_CELERY_WORKERS:-1}
CLUSTER_RUN_DIR=${CLUSTER_RUN_DIR:-${TMPDIR:-/tmp}/tp-cluster-$CLUSTER_PORT}
CLUSTER_PYTHON=${CLUSTER_PYTHON:-$CLUSTER_REPO/.venv/bin/python}
# Ports of their own, so a cluster can run beside the test run's PostgreSQL and Redis.
TEST_PG_PORT=${CLUSTER_PG_PORT:-55442}
TEST_REDIS_PORT=${CLUSTER_REDIS_PORT:-56389}
source "$CLUSTER_REPO/scripts/backends.sh"
source "$CLUSTER_REPO/scripts/janus.sh"

_cluster_say() { echo "cluster: $*"; }

# Start one long-running process in its own session (so it outlives this shell and can be stopped
# as a group), with the cluster's environment; its pid goes to $CLUSTER_RUN_DIR/<name>.pid.
_cluster_spawn() {
  local name=$1; shift
  (
    set -a; source "$CLUSTER_RUN_DIR/cluster.env"; set +a
    cd "$CLUSTER_REPO" || exit 1
    # The pid is written from inside the new session: setsid forks when its caller leads a
    # process group (an interactive shell's background job), so $! would be the wrong process.
    exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$CLUSTER_RUN_DIR/$name.pid" "$@" \
      </dev/null >>"$CLUSTER_RUN_DIR/logs/$name.log" 2>&1
  ) &
  local i
  for i in $(seq 1 50); do [ -s "$CLUSTER_RUN_DIR/$name.pid" ] && return 0; sleep 0.05; done
}

_cluster_wait_http() {  # url seconds
  local i
  for i in $(seq 1 $(($2 * 5))); do
    curl -fsS -m 2 -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

_cluster_save() {  # name=value lines, quoted for `source`
  local name
  for name in "$@"; do printf 'export %s=%q\n' "$name" "${!name}"; done
}

_cluster_haproxy_config() {
  local port i=0
  cat <<EOF
global
    maxconn 4096
    pidfile $CLUSTER_RUN_DIR/haproxy.pid

defaults
    mode http
    log global
    option forwardfor
    # A web process that is down (restarting) refuses the connection: try the other one at once,
    # before the health checks (2 s apart, 2 failures) have taken it out.
    retries 2
    option redispatch
    timeout connect 5s
    # Uploads and answers: the web processes enforce their own body and keep-alive deadlines.
    timeout client 120s
    timeout server 120s
    timeout http-request 15s
    # A WebSocket (progress, a session's stream) may stay open for a whole lesson.
    timeout tunnel 2h

frontend web
    bind 127.0.0.1:$CLUSTER_PORT
    default_backend webs

backend webs
    # The web processes keep no session state (PostgreSQL, Redis and the stage workers do), so
    # any of them serves any request; leastconn evens out the long-lived WebSockets.
    balance leastconn
    option httpchk
    http-check send meth GET uri /health
    http-check expect status 200
    default-server check inter 2s fall 2 rise 2
EOF
  for port in $CLUSTER_WEB_PORTS; do
    i=$((i + 1))
    echo "    server web-$i 127.0.0.1:$port"
  done
}

cluster_start() {
  if [ -f "$CLUSTER_RUN_DIR/state.env" ]; then
    _cluster_say "a cluster is already running from $CLUSTER_RUN_DIR (bash scripts/cluster.sh stop first)"
    return 1
  fi
  command -v haproxy >/dev/null 2>&1 || { _cluster_say "haproxy is not installed (apt-get install haproxy)"; return 1; }
  [ -x "$CLUSTER_PYTHON" ] || { _cluster_say "no Python at $CLUSTER_PYTHON (bash scripts/venv.sh)"; return 1; }
  rm -rf "$CLUSTER_RUN_DIR"
  mkdir -p "$CLUSTER_RUN_DIR/logs" "$CLUSTER_RUN_DIR/data"

  backends_start
  if [ "$BACKENDS_READY" != 1 ]; then
    _cluster_say "PostgreSQL/Redis did not start: $BACKENDS_SKIPPED"
    rm -rf "$CLUSTER_RUN_DIR"
    return 1
  fi
  _cluster_save BACKENDS_DIR >"$CLUSTER_RUN_DIR/state.env"

  janus_start
  local media_server=janus
  if [ "$JANUS_READY" = 1 ]; then
    _cluster_save JANUS_DIR JANUS_NETNS JANUS_VETH JANUS_HOST_ADDR JANUS_NS_ADDR >>"$CLUSTER_RUN_DIR/state.env"
  else
    _cluster_say "WARNING: Janus not started ($JANUS_SKIPPED): sessions' media stay in the web processes"
    media_server="" JANUS_URL="" JANUS_ADMIN_KEY="" JANUS_RTP_HOST=""
  fi

  local secret
  secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  {
    echo "DATABASE_URL=$DATABASE_URL"
    echo "REDIS_URL=$REDIS_URL"
    echo "AVATAR_JOB_QUEUE=celery"
    echo "DATA_DIR=$CLUSTER_RUN_DIR/data"
    echo "DJANGO_SECRET_KEY=$secret"
    echo "SESSION_MEDIA_SERVER=$media_server"
    echo "JANUS_URL=${JANUS_URL:-}"
    echo "JANUS_ADMIN_KEY=${JANUS_ADMIN_KEY:-}"
    echo "JANUS_RTP_HOST=${JANUS_RTP_HOST:-}"
  } >"$CLUSTER_RUN_DIR/cluster.env"
  chmod 600 "$CLUSTER_RUN_DIR/cluster.env"

  if ! ( set -a; source "$CLUSTER_RUN_DIR/cluster.env"; set +a; cd "$CLUSTER_REPO" \
         && "$CLUSTER_PYTHON" manage.py migrate --noinput \
         && "$CLUSTER_PYTHON" manage.py collectstatic --noinput --verbosity 0 ) >"$CLUSTER_RUN_DIR/logs/migrate.log" 2>&1; then
    _cluster_say "migrate failed (see $CLUSTER_RUN_DIR/logs/migrate.log)"
    cluster_stop
    return 1
  fi

  local port name i=0
  for port in $CLUSTER_WEB_PORTS; do
    i=$((i + 1))
    _cluster_spawn "web-$i" env HOST=127.0.0.1 PORT="$port" "$CLUSTER_PYTHON" -m tutorplatform.server
  done
  for name in $CLUSTER_STAGE_WORKERS; do
    _cluster_spawn "stage-$name" "$CLUSTER_PYTHON" manage.py stage_worker --name "$name"
  done
  for i in $(seq 1 "$CLUSTER_CELERY_WORKERS"); do
    _cluster_spawn "celery-$i" "$CLUSTER_PYTHON" -m celery -A tutorplatform worker --concurrency 1 \
      --hostname "celery-$i@%h" --loglevel INFO
  done

  _cluster_haproxy_config >"$CLUSTER_RUN_DIR/haproxy.cfg"
  if ! haproxy -c -q -f "$CLUSTER_RUN_DIR/haproxy.cfg" >"$CLUSTER_RUN_DIR/logs/haproxy.log" 2>&1 \
     || ! haproxy -D -f "$CLUSTER_RUN_DIR/haproxy.cfg" >>"$CLUSTER_RUN_DIR/logs/haproxy.log" 2>&1; then
    _cluster_say "haproxy did not start (see $CLUSTER_RUN_DIR/logs/haproxy.log)"
    cluster_stop
    return 1
  fi

  i=0
  for port in $CLUSTER_WEB_PORTS; do
    i=$((i + 1))
    _cluster_wait_http "http://127.0.0.1:$port/health" 60 \
      || { _cluster_say "web-$i did not answer on :$port (see $CLUSTER_RUN_DIR/logs/web-$i.log)"; cluster_stop; return 1; }
  done
  # The balancer answers once its health checks (every 2 s, 2 in a row) found a web process up.
  _cluster_wait_http "http://127.0.0.1:$CLUSTER_PORT/health" 30 \
    || { _cluster_say "the load balancer did not answer on :$CLUSTER_PORT"; cluster_stop; return 1; }
  for name in $CLUSTER_STAGE_WORKERS; do
    kill -0 "$(cat "$CLUSTER_RUN_DIR/stage-$name.pid")" 2>/dev/null \
      || _cluster_say "WARNING: stage worker $name exited (see $CLUSTER_RUN_DIR/logs/stage-$name.log)"
  done
  export CLUSTER_URL="http://127.0.0.1:$CLUSTER_PORT"
  cluster_status
}

cluster_status() {
  if [ ! -f "$CLUSTER_RUN_DIR/state.env" ]; then
    echo "no cluster running from $CLUSTER_RUN_DIR"
    return 1
  fi
  local env_file=$CLUSTER_RUN_DIR/cluster.env pidfile name pid state
  echo "cluster in $CLUSTER_RUN_DIR (settings: $env_file, logs: $CLUSTER_RUN_DIR/logs/)"
  echo "  load balancer  http://127.0.0.1:$CLUSTER_PORT  (haproxy pid $(cat "$CLUSTER_RUN_DIR/haproxy.pid" 2>/dev/null || echo -))"
  echo "  PostgreSQL     $(grep '^DATABASE_URL=' "$env_file" | cut -d= -f2-)"
  echo "  Redis          $(grep '^REDIS_URL=' "$env_file" | cut -d= -f2-)"
  echo "  Janus          $(grep '^JANUS_URL=' "$env_file" | cut -d= -f2- | grep . || echo 'not running')"
  for pidfile in "$CLUSTER_RUN_DIR"/*.pid; do
    [ -e "$pidfile" ] || continue
    name=$(basename "$pidfile" .pid)
    [ "$name" = haproxy ] && continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then state=running; else state=EXITED; fi
    printf '  %-14s pid %-8s %-8s %s\n' "$name" "$pid" "$state" "$CLUSTER_RUN_DIR/logs/$name.log"
  done
  if curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$CLUSTER_PORT/health" 2>/dev/null; then
    echo "  /health through the load balancer: 200"
  else
    echo "  /health through the load balancer: NOT answering"
  fi
}

cluster_stop() {
  [ -d "$CLUSTER_RUN_DIR" ] || return 0
  local pidfile pid i
  # haproxy first (no new requests), then the processes, each as its own process group.
  [ -f "$CLUSTER_RUN_DIR/haproxy.pid" ] && kill "$(cat "$CLUSTER_RUN_DIR/haproxy.pid")" 2>/dev/null
  for pidfile in "$CLUSTER_RUN_DIR"/*.pid; do
    [ -e "$pidfile" ] || continue
    [ "$(basename "$pidfile")" = haproxy.pid ] && continue
    pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for i in $(seq 1 100); do  # up to 20 s: SERVER_GRACEFUL_SHUTDOWN_S is 15 s
    local alive=0
    for pidfile in "$CLUSTER_RUN_DIR"/*.pid; do
      [ -e "$pidfile" ] || continue
      [ "$(basename "$pidfile")" = haproxy.pid ] && continue
      kill -0 "$(cat "$pidfile")" 2>/dev/null && alive=1
    done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pidfile in "$CLUSTER_RUN_DIR"/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null; }
    rm -f "$pidfile"
  done
  if [ -f "$CLUSTER_RUN_DIR/state.env" ]; then
    # The namespace's and the databases' own stop functions, with what cluster_start saved.
    ( source "$CLUSTER_RUN_DIR/state.env"
      [ -n "${JANUS_DIR:-}" ] && janus_stop
      backends_stop )
    rm -f "$CLUSTER_RUN_DIR/state.env"
  fi
  _cluster_say "stopped (logs kept in $CLUSTER_RUN_DIR/logs)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  case "${1:-}" in
    start) cluster_start ;;
    stop) cluster_stop ;;
    status) cluster_status ;;
    *) echo "usage: bash scripts/cluster.sh start|stop|status" >&2; exit 2 ;;
  esac
fi
