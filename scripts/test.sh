#!/usr/bin/env bash
# Install what the tests need and run every test. CI runs exactly this (.ci/run).
#   1. the whole suite on the embedded defaults (SQLite, in-memory channel layer, local files),
#      with Debian's Chromium (browser tests), coturn (the WebRTC relay test), janus and haproxy
#      installed if missing (the live-session media test, and the cluster test, which starts a whole
#      local cluster with scripts/cluster.sh: both need root for Janus's network namespace);
#   2. the API, WebSocket and session tests again against a real PostgreSQL and a real Redis,
#      installed from Debian and started on loopback here, plus the Celery tests (an API server
#      and separate worker processes); skipped, and said so, if those cannot be had here.
# Arguments go to pytest and run step 1 only (`bash scripts/test.sh -k pipeline -x`).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
install_requirements requirements-test.txt || exit 1

if ! command -v chromium >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests ..."
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; } \
    || echo "WARNING: chromium could not be installed; the browser tests will be reported as skipped." >&2
fi
# coturn: the TURN server the WebRTC relay test starts on loopback (the package's own daemon stays off).
if ! command -v turnserver >/dev/null 2>&1; then
  echo "Installing Debian's coturn for the WebRTC relay test ..."
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq coturn >/dev/null; } \
    || echo "WARNING: coturn could not be installed; the WebRTC relay test will be reported as skipped." >&2
fi

# janus: the media server the live-session media test runs in a network namespace (made with ip,
# from iproute2; needs root, and sessions_app/tests/test_janus_media.py skips, saying why,
# otherwise); haproxy: the load balancer of scripts/cluster.sh. The packages' own daemons are not used.
for pair in janus:janus haproxy:haproxy ip:iproute2 curl:curl; do
  command_name=${pair%%:*} package=${pair#*:}
  if ! command -v "$command_name" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$command_name" ]; then
    echo "Installing Debian's $package ..."
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$package" >/dev/null; } \
      || echo "WARNING: $package could not be installed; the tests that need it will be reported as skipped." >&2
  fi
done

python -m pytest "$@"
status=$?
if [ $# -gt 0 ] || [ $status -ne 0 ]; then
  exit $status
fi

echo
echo "== The API, WebSocket and session tests against PostgreSQL and Redis"
source scripts/backends.sh
backends_start
if [ "$BACKENDS_READY" = 1 ]; then
  python -m pytest -p no:cacheprovider \
    avatars/tests/test_api_avatars.py avatars/tests/test_seed_client_flow.py avatars/tests/test_consumers.py \
    avatars/tests/test_bad_inputs.py avatars/tests/test_backends.py avatars/tests/test_celery.py sessions_app \
    webhooks tutors/tests/test_tutor_races.py --ignore=sessions_app/tests/test_janus_media.py \
    --ignore=sessions_app/tests/test_cluster.py
  status=$?
else
  echo "SKIPPED: the PostgreSQL/Redis run did not happen: $BACKENDS_SKIPPED"
fi
backends_stop
exit $status
