#!/usr/bin/env bash
# Run a benchmark (bench/): `pipeline` (default), `detectors`, `stream`, `load`, `priority`, `speak`, `speak-memory`, `answer`, `listen`, `webrtc`, `cluster [VIDEO]` or `mouth VIDEO`. Installs the
# test dependencies and an ffmpeg binary (requirements-bench.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'TEXT'
usage: bash scripts/bench.sh [BENCHMARK] [OPTIONS]

Installs the test dependencies and an ffmpeg binary (requirements-bench.txt) into .venv, then
runs one benchmark (bench/). Each prints its figures; README.md, "Benchmark", lists those
measured here. Times are on a 2-core machine.

  pipeline   (default, ~5 min) preparing a 20 s and a 60 s 720p clip: decode-only fps, ffmpeg's
             frame extraction, preparation fps blur off and on, CPU per frame, peak memory
  detectors  (~1.5 min) YuNet against the Haar cascade on real people's faces: recall,
             false faces, CPU per search
  stream     (~1 min) a real server's session stream: frames per second to one and to four
             viewers, and the server's memory
  speak      (~4 min) speaking sessions: speak to the first moving mouth, lip-sync,
             sessions speaking at once, interrupt to silence (--talking: a real talking tutor,
             the tutor's own mouth; --video PATH: any video)
  webrtc     (~11 min; --quick ~6 min) the same over WebRTC with aiortc viewers: latency,
             audio/video offset and drift at the receiver, CPU per viewer, viewers per machine
  cluster [VIDEO]  (~9 min; --quick ~4 min; needs root, janus, haproxy) a whole local cluster
             with Janus: stage-worker and Janus CPU per extra viewer, speaking sessions per
             stage-worker core, speak to moving mouth and A/V offset (--av-seconds, default 300)
             at a WebRTC viewer, kill -9 of a stage worker to media again (VIDEO: the tutor,
             default the real talking tutor at 720p25; --sections 3,5: some alone)
  load       (1-4 min) API latency (p50/p99) idle and while a 720p job runs
  priority   (up to ~6 min) a job's speed at each AVATAR_JOB_PRIORITY while the cores are busy
  speak-memory  (~1 min) a real server's memory with the largest WAV speak bodies, one and four at once
  answer     (~2 min) answers that start at once: 60 s of text to the first moving mouth, and an
             answer arriving in pieces to its first sound
  listen     (~3 min) the student speaking: barge-in to the tutor's silence, the last word to
             its transcript, word errors on real recordings, CPU to hear a student
  mouth VIDEO  (~1 min for 200 s of video) the tutor's own mouth against the drawn one on any
             talking video: held-out reconstruction (PSNR, SSIM, sharpness ratio), cost per
             frame, a strip of true, rendered and drawn mouths (--scale 2 for small footage)
TEXT
}

case "${1:-pipeline}" in
  -h|--help|help) usage; exit 0 ;;
  pipeline|detectors|stream|load|priority|speak|speak-memory|answer|listen|webrtc|cluster|mouth) ;;
  *) usage >&2; exit 2 ;;
esac

source scripts/venv.sh
install_requirements requirements-bench.txt
case "${1:-pipeline}" in
  pipeline) python bench/pipeline_bench.py ;;
  detectors) python bench/detector_bench.py ;;
  stream) python bench/stream_bench.py ;;
  load) python bench/load_bench.py ;;
  priority) python bench/priority_bench.py ;;
  speak) python bench/speak_bench.py "${@:2}" ;;
  speak-memory) python bench/speak_memory_bench.py ;;
  answer) python bench/answer_bench.py ;;
  listen) python bench/listen_bench.py ;;
  webrtc) python bench/webrtc_bench.py "${@:2}" ;;
  cluster) python bench/cluster_bench.py "${@:2}" ;;
  mouth) python bench/mouth_bench.py "${@:2}" ;;
esac
