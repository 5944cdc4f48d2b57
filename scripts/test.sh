#!/usr/bin/env bash
# Install what the tests need (into .venv) and run every test. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
install_requirements requirements-test.txt
exec python -m pytest "$@"
