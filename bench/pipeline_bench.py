"""Pipeline benchmark: preparation speed against plain decoding, and memory against video length.

    .venv/bin/python bench/pipeline_bench.py        (or: bash scripts/bench.sh)

Generates (once, cached under data/bench/) a 20 s and a 60 s 720p clip of the synthetic tutor,
then measures in one run, each preparation in a fresh child process so its peak RSS is its own:
  - decode-only fps: a plain OpenCV read loop over the 20 s clip;
  - ffmpeg fps: plain frame extraction, `ffmpeg -i clip -q:v 2 %08d.jpg` (the ffmpeg binary of
    the imageio-ffmpeg wheel), which the whole preparation should match or beat;
  - preparation fps with blur off and on (20 s clip), and their ratios to decode-only;
  - peak RSS of preparing the 20 s and the 60 s clip (blur on), and their ratio.
Decoding and both preparations are measured in turn, for a few rounds (--rounds, default 3), and
the ratios are of the medians: on a shared 2-core machine a single pass varies by 10-20%.
Each measurement starts with the disk cache flushed (`os.sync()`), so that one run's writing back
to disk is not charged to the next. On this machine's ext4 (mounted without a journal) the kernel
will not reuse an inode within 60 s of its deletion (`recently_deleted` in fs/ext4/ialloc.c), and
scanning past them made creating files ~1.5 ms a frame dearer right after the test suite or a
previous bench had deleted thousands: so the bench first waits --settle seconds (default 65),
and keeps its prepared files until the end of the run.
Goals: ratio >= 0.3 blur off, >= 0.2 blur on; 60 s peak RSS within 1.2x of 20 s; preparation
(blur off) at least as fast as ffmpeg's frame extraction. The face detector is the default (YuNet).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CACHE = ROOT / "data" / "bench"
WIDTH, HEIGHT, FPS = 1280, 720, 25.0


def clip(seconds: int) -> Path:
    from testsupport.videos import drifting, write_face_video

    path = CACHE / f"tutor_720p_{seconds}s.mp4"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"generating {path.name} ...", flush=True)
        partial = path.with_suffix(".partial.mp4")
        write_face_video(partial, width=WIDTH, height=HEIGHT, fps=FPS, seconds=seconds, motion=drifting(WIDTH, HEIGHT))
        partial.rename(path)
    return path


def decode_fps(path: Path, passes: int = 2) -> float:
    """Frames a second of a plain OpenCV read loop, over the clip `passes` times (a single pass of
    20 s of 720p takes well under a second here, too short to measure steadily)."""
    import cv2

    os.sync()
    frames = 0
    started = time.perf_counter()
    for _ in range(passes):
        capture = cv2.VideoCapture(str(path))
        while capture.read()[0]:
            frames += 1
        capture.release()
    return frames / (time.perf_counter() - started)


def ffmpeg_fps(path: Path, frames: int, out_parent: Path) -> float:
    """Frames a second of ffmpeg decoding the clip and writing every frame as a JPEG."""
    import imageio_ffmpeg

    out = Path(tempfile.mkdtemp(dir=out_parent))
    os.sync()
    started = time.perf_counter()
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-q:v", "2",
                    str(out / "%08d.jpg")], check=True)
    elapsed = time.perf_counter() - started
    written = len(list(out.iterdir()))
    if written != frames:
        raise SystemExit(f"ffmpeg wrote {written} frames, the clip has {frames}")
    return frames / elapsed


def child(video: str, blur: bool, out_parent: str) -> None:
    """Runs in a fresh process: prepare once, print the figures as JSON."""
    from avatars.pipeline import PrepareOptions, prepare

    out = Path(tempfile.mkdtemp(dir=out_parent)) / "avatar"
    started, cpu_started = time.perf_counter(), time.process_time()
    result = prepare(video, out, PrepareOptions(apply_blur=blur))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(json.dumps({"frames": result.frame_count, "seconds": elapsed, "fps": result.frame_count / elapsed,
                      "cpu_ms_per_frame": 1000 * cpu / result.frame_count}))


def measure(video: Path, blur: bool, out_parent: Path) -> dict:
    os.sync()
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", str(video), "--out", str(out_parent)] + (["--blur"] if blur else []),
        stdout=subprocess.PIPE, text=True,
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"preparing {video.name} failed (status {status})")
    figures = json.loads(output.strip().splitlines()[-1])
    figures["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of decode / blur off / blur on (default 3)")
    parser.add_argument("--settle", type=float, default=65.0,
                        help="seconds to wait before measuring, so files deleted just before cost nothing (default 65)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--blur", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.blur, args.out)
        return

    short, long = clip(20), clip(60)
    os.sync()
    if args.settle > 0:
        print(f"waiting {args.settle:g} s for recently deleted files to settle (--settle 0 to skip) ...", flush=True)
        time.sleep(args.settle)
    out_parent = Path(tempfile.mkdtemp(prefix="bench-", dir=CACHE))
    try:
        decodes, ffmpegs, offs, ons = [], [], [], []
        for _ in range(max(1, args.rounds)):
            decodes.append(decode_fps(short))
            offs.append(measure(short, blur=False, out_parent=out_parent))
            ffmpegs.append(ffmpeg_fps(short, offs[-1]["frames"], out_parent))
            ons.append(measure(short, blur=True, out_parent=out_parent))
        long_on = measure(long, blur=True, out_parent=out_parent)
    finally:
        shutil.rmtree(out_parent, ignore_errors=True)

    decode = statistics.median(decodes)
    ffmpeg = statistics.median(ffmpegs)
    off_fps = statistics.median(run["fps"] for run in offs)
    on_fps = statistics.median(run["fps"] for run in ons)
    ratio_off, ratio_on = off_fps / decode, on_fps / decode
    on_rss = max(run["peak_rss_mb"] for run in ons)
    rss_ratio = long_on["peak_rss_mb"] / on_rss

    def verdict(ok: bool) -> str:
        return "meets goal" if ok else "BELOW GOAL"

    def runs(values) -> str:
        return "runs " + " / ".join(f"{value:.0f}" for value in values)

    print(f"machine: {os.cpu_count()} cores; clips: 1280x720 @ {FPS:g} fps, MPEG-4 (mp4v); "
          f"medians of {len(decodes)} rounds")
    print(f"decode only (OpenCV read loop), 20 s clip:  {decode:7.1f} fps   ({runs(decodes)})")
    print(f"prepare, blur off, 20 s clip:              {off_fps:7.1f} fps   ratio {ratio_off:.2f}  "
          f"(goal >= 0.30: {verdict(ratio_off >= 0.3)})   ({runs(run['fps'] for run in offs)})")
    print(f"prepare, blur on,  20 s clip:              {on_fps:7.1f} fps   ratio {ratio_on:.2f}  "
          f"(goal >= 0.20: {verdict(ratio_on >= 0.2)})   ({runs(run['fps'] for run in ons)})")
    print(f"ffmpeg -q:v 2 frame extraction, 20 s clip: {ffmpeg:6.1f} fps   prepare/ffmpeg: blur off "
          f"{off_fps / ffmpeg:.2f} (goal >= 1: {verdict(off_fps >= ffmpeg)}), blur on {on_fps / ffmpeg:.2f}   "
          f"({runs(ffmpegs)})")
    print(f"peak RSS, blur on: 20 s clip {on_rss:.0f} MB, 60 s clip {long_on['peak_rss_mb']:.0f} MB, "
          f"ratio {rss_ratio:.2f}  (goal <= 1.20: {verdict(rss_ratio <= 1.2)})")
    print(f"CPU per frame (all threads): blur off {statistics.median(run['cpu_ms_per_frame'] for run in offs):.1f} ms, "
          f"blur on {statistics.median(run['cpu_ms_per_frame'] for run in ons):.1f} ms")
    frames = offs[0]["frames"]
    print(f"time to prepare: 20 s clip {frames / off_fps:.1f} s (blur off), {frames / on_fps:.1f} s (blur on); "
          f"60 s clip {long_on['seconds']:.1f} s (blur on)")


if __name__ == "__main__":
    main()
