#!/usr/bin/env bash
# Install what the tests need (into .venv, plus Debian's Chromium for the browser tests) and run
# every test. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
install_requirements requirements-test.txt

if ! command -v chromium >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests ..."
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; } \
    || echo "WARNING: chromium could not be installed; the browser tests will be reported as skipped." >&2
fi

exec python -m pytest "$@"
