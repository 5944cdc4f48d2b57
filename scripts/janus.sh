# Sourced (like scripts/backends.sh): run Janus (Debian's `janus`, only its Streaming plugin and
# HTTP transport) in a network namespace of its own, joined to this one by a veth pair.
#
# Why a namespace: Janus leaves loopback out of its ICE candidates, so a Janus on this machine
# could not reach viewers on 127.0.0.1. In the namespace its only interface (besides its own
# loopback) is the veth end, and that address is its one host candidate; the viewers, the web
# processes and the stage workers stay here and reach it on that address.
#
#   janus_start    make (or clean and remake) the namespace, write the config, start Janus, wait for
#                  GET /janus/info, export JANUS_URL, JANUS_ADMIN_KEY, JANUS_RTP_HOST, JANUS_DIR,
#                  JANUS_READY=1; or leave JANUS_READY=0 and say why in JANUS_SKIPPED.
#   janus_restart  kill Janus and start it again on the same addresses and key (mountpoints are gone:
#                  they live only in its memory).
#   janus_stop     stop Janus, remove the namespace and the config folder.
#
# Overridable by environment: JANUS_NETNS (tp-janus), JANUS_VETH (tpjanus0; the namespace end is
# "${JANUS_VETH}n"), JANUS_HOST_ADDR (10.213.0.1), JANUS_NS_ADDR (10.213.0.2), JANUS_PREFIX (30),
# JANUS_HTTP_PORT (8088), JANUS_ICE_PORTS (20000-29999: the viewers' WebRTC ports),
# JANUS_RTP_PORTS (30000-39999: the mountpoints' plain-RTP input ports), JANUS_ADMIN_KEY
# (the Streaming plugin's key for creating mountpoints; random when unset), JANUS_DEBUG_LEVEL (4;
# 7 logs every packet's fate, keyframes included). janus_start clears a namespace of the same name
# first, so two Janus need different JANUS_NETNS, JANUS_VETH and addresses.
# Needs root (namespaces, veth) and the janus binary; CI installs Debian's janus (scripts/test.sh).
JANUS_READY=0
JANUS_SKIPPED=""
JANUS_NETNS=${JANUS_NETNS:-tp-janus}
JANUS_VETH=${JANUS_VETH:-tpjanus0}
JANUS_HOST_ADDR=${JANUS_HOST_ADDR:-10.213.0.1}
JANUS_NS_ADDR=${JANUS_NS_ADDR:-10.213.0.2}
JANUS_PREFIX=${JANUS_PREFIX:-30}
JANUS_HTTP_PORT=${JANUS_HTTP_PORT:-8088}
JANUS_ICE_PORTS=${JANUS_ICE_PORTS:-20000-29999}
JANUS_RTP_PORTS=${JANUS_RTP_PORTS:-30000-39999}

_janus_libdir() {
  ls -d /usr/lib/*/janus /usr/lib/janus /opt/janus/lib/janus 2>/dev/null | head -n 1
}

# A comma-separated list of every .so in a folder except the ones named: Janus loads every plugin
# and transport it finds unless told to `disable` it (Debian ships 13 plugins and 6 transports;
# each would start threads and some would listen).
_janus_all_but() {
  local folder=$1; shift
  local keep=" $* " names=() f base
  for f in "$folder"/*.so; do
    [ -e "$f" ] || continue
    base=$(basename "$f")
    case "$keep" in *" $base "*) continue ;; esac
    names+=("$base")
  done
  (IFS=,; echo "${names[*]}")
}

_janus_write_config() {
  local dir=$1 lib
  lib=$(_janus_libdir)
  cat >"$dir/janus.jcfg" <<EOF
general: {
	configs_folder = "$dir"
	plugins_folder = "$lib/plugins"
	transports_folder = "$lib/transports"
	events_folder = "$lib/events"
	loggers_folder = "$lib/loggers"
	log_to_file = "$dir/janus.log"
	debug_level = ${JANUS_DEBUG_LEVEL:-4}
	debug_timestamps = true
	debug_colors = false
	# A viewer's session that sends nothing (no keepalive, no long-poll) for this long is dropped.
	session_timeout = 60
	server_name = "tutorplatform-janus"
	# The address put in SDP; Janus guesses 127.0.0.1 otherwise.
	interface = "$JANUS_NS_ADDR"
}
media: {
	ipv6 = false
	# The viewers' WebRTC (ICE/DTLS/SRTP) ports inside the namespace.
	rtp_port_range = "$JANUS_ICE_PORTS"
}
nat: {
	nice_debug = false
	ignore_mdns = true
	# The veth address is the only host candidate (loopback is never one).
	ice_enforce_list = "$JANUS_NS_ADDR"
}
plugins: {
	disable = "$(_janus_all_but "$lib/plugins" libjanus_streaming.so)"
}
transports: {
	disable = "$(_janus_all_but "$lib/transports" libjanus_http.so)"
}
loggers: {
	disable = "$(_janus_all_but "$lib/loggers")"
}
events: {
	broadcast = false
	disable = "$(_janus_all_but "$lib/events")"
}
EOF
  cat >"$dir/janus.transport.http.jcfg" <<EOF
general: {
	json = "compact"
	base_path = "/janus"
	http = true
	port = $JANUS_HTTP_PORT
	ip = "$JANUS_NS_ADDR"
	https = false
}
admin: {
	admin_http = false
}
EOF
  cat >"$dir/janus.plugin.streaming.jcfg" <<EOF
general: {
	# Mountpoints are made per session through the API, only by holders of this key.
	admin_key = "$JANUS_ADMIN_KEY"
	# Where a mountpoint created with port 0 binds its plain-RTP inputs.
	rtp_port_range = "$JANUS_RTP_PORTS"
	events = false
}
EOF
}

# Kill every process inside the namespace (only the Janus started here runs there) and wait.
_janus_kill() {
  local pids pid i
  pids=$(ip netns pids "$JANUS_NETNS" 2>/dev/null) || return 0
  [ -n "$pids" ] || return 0
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  for i in $(seq 1 50); do
    [ -z "$(ip netns pids "$JANUS_NETNS" 2>/dev/null)" ] && return 0
    sleep 0.1
  done
  for pid in $(ip netns pids "$JANUS_NETNS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  sleep 0.2
}

_janus_wait_ready() {
  local i
  for i in $(seq 1 100); do
    if curl -fsS -m 1 "http://$JANUS_NS_ADDR:$JANUS_HTTP_PORT/janus/info" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$(cat "$JANUS_DIR/janus.pid" 2>/dev/null)" 2>/dev/null; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}

_janus_launch() {
  : >"$JANUS_DIR/janus.out"
  # setsid: its own session, so it outlives a `bash -c` that sourced this file; its output goes to
  # files so a caller reading that shell's stdout is not held open by it.
  setsid ip netns exec "$JANUS_NETNS" janus -C "$JANUS_DIR/janus.jcfg" -F "$JANUS_DIR" -N -o \
    </dev/null >>"$JANUS_DIR/janus.out" 2>&1 &
  echo $! >"$JANUS_DIR/janus.pid"
  if ! _janus_wait_ready; then
    JANUS_SKIPPED="janus did not answer on http://$JANUS_NS_ADDR:$JANUS_HTTP_PORT/janus/info (see $JANUS_DIR/janus.log)"
    return 1
  fi
  export JANUS_URL="http://$JANUS_NS_ADDR:$JANUS_HTTP_PORT/janus"
  export JANUS_ADMIN_KEY JANUS_DIR
  export JANUS_RTP_HOST="$JANUS_NS_ADDR"
  export JANUS_READY=1
  return 0
}

_janus_netns_remove() {
  _janus_kill
  ip netns del "$JANUS_NETNS" 2>/dev/null || true
  ip link del "$JANUS_VETH" 2>/dev/null || true
}

janus_start() {
  JANUS_READY=0
  JANUS_SKIPPED=""
  if [ "$(id -u)" != 0 ]; then
    JANUS_SKIPPED="not root (a network namespace and a veth pair are needed)"; return 0
  fi
  if ! command -v janus >/dev/null 2>&1 || [ -z "$(_janus_libdir)" ]; then
    JANUS_SKIPPED="janus is not installed (apt-get install janus)"; return 0
  fi
  if ! command -v ip >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
    JANUS_SKIPPED="ip (iproute2) or curl is missing"; return 0
  fi
  # A namespace left by an earlier run is cleaned and made again.
  _janus_netns_remove
  local ns_if="${JANUS_VETH}n"
  { ip netns add "$JANUS_NETNS" \
      && ip link add "$JANUS_VETH" type veth peer name "$ns_if" \
      && ip link set "$ns_if" netns "$JANUS_NETNS" \
      && ip addr add "$JANUS_HOST_ADDR/$JANUS_PREFIX" dev "$JANUS_VETH" \
      && ip link set "$JANUS_VETH" up \
      && ip netns exec "$JANUS_NETNS" ip addr add "$JANUS_NS_ADDR/$JANUS_PREFIX" dev "$ns_if" \
      && ip netns exec "$JANUS_NETNS" ip link set "$ns_if" up \
      && ip netns exec "$JANUS_NETNS" ip link set lo up; } \
    || { JANUS_SKIPPED="could not make the network namespace $JANUS_NETNS"; _janus_netns_remove; return 0; }
  if [ -z "${JANUS_ADMIN_KEY:-}" ]; then
    JANUS_ADMIN_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  fi
  JANUS_DIR=$(mktemp -d /tmp/tp-janus-XXXXXX)
  _janus_write_config "$JANUS_DIR"
  _janus_launch || { _janus_netns_remove; return 0; }
}

janus_restart() {
  [ -n "${JANUS_DIR:-}" ] && [ -f "$JANUS_DIR/janus.jcfg" ] \
    || { echo "janus_restart: no Janus was started (JANUS_DIR unset)" >&2; return 1; }
  export JANUS_READY=0
  _janus_kill
  _janus_launch || { echo "janus_restart: $JANUS_SKIPPED" >&2; return 1; }
}

janus_stop() {
  [ "$(id -u)" = 0 ] || return 0
  _janus_netns_remove
  if [ -n "${JANUS_DIR:-}" ] && [ -f "$JANUS_DIR/janus.jcfg" ]; then
    rm -rf "$JANUS_DIR"
  fi
  export JANUS_READY=0
}
