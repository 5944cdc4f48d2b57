#!/usr/bin/env bash
# Run a benchmark (bench/): `pipeline` (default), `detectors`, `stream`, `load`, `priority`, `speak`, `speak-memory`, `answer`, `listen`, `webrtc` or `mouth VIDEO`. Installs the
# test dependencies and an ffmpeg binary (requirements-bench.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
install_requirements requirements-bench.txt
case "${1:-pipeline}" in
  pipeline) python bench/pipeline_bench.py ;;
  detectors) python bench/detector_bench.py ;;
  stream) python bench/stream_bench.py ;;
  load) python bench/load_bench.py ;;
  priority) python bench/priority_bench.py ;;
  speak) python bench/speak_bench.py ;;
  speak-memory) python bench/speak_memory_bench.py ;;
  answer) python bench/answer_bench.py ;;
  listen) python bench/listen_bench.py ;;
  webrtc) python bench/webrtc_bench.py "${@:2}" ;;
  mouth) python bench/mouth_bench.py "${@:2}" ;;
  *) echo "usage: bash scripts/bench.sh [pipeline|detectors|stream|load|priority|speak|speak-memory|answer|listen|webrtc|mouth VIDEO]" >&2; exit 2 ;;
esac
