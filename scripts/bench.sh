#!/usr/bin/env bash
# Run a benchmark (bench/): `pipeline` (default), `stream` or `load`. Needs the test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
install_requirements requirements-test.txt
case "${1:-pipeline}" in
  pipeline) python bench/pipeline_bench.py ;;
  stream) python bench/stream_bench.py ;;
  load) python bench/load_bench.py ;;
  *) echo "usage: bash scripts/bench.sh [pipeline|stream|load]" >&2; exit 2 ;;
esac
