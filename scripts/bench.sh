#!/usr/bin/env bash
# Run the benchmarks (bench/); needs the test dependencies (scikit-image makes the clips).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
install_requirements requirements-test.txt
python bench/pipeline_bench.py "$@"
