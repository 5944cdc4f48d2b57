"""Face detector benchmark on real people's faces: recall, false faces and CPU time per search.

    .venv/bin/python bench/detector_bench.py        (or: bash scripts/bench.sh detectors)

Builds the real-face clips of the test set (testsupport/real_faces.py: photos of real people
from the registries' packages, panned, zoomed and turned up to ±30 degrees, 1280x720, the true
face box known per frame) and runs each candidate detector's whole-frame search, as the pipeline
runs it, on every --step-th frame, and its search near where the face was --step frames before
(as the tracker asks between whole-frame searches; YuNet's retries a miss turned by ±30 degrees). A detection counts as
the face when its centre lies inside the true face box and its height is 0.4-1.2x the box's; any
other detection is a false face. CPU time is process time per search (one thread each).
Candidates: YuNet from the yuface wheel (the default), OpenCV's Haar cascade (the fallback).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatars.pipeline.detect import FaceBox, make_detector  # noqa: E402
from testsupport.real_faces import HEIGHT, SINGLE, build_clip, fetch_media  # noqa: E402

MIN_FACE_PX = 96.0


def matches(face: FaceBox, truth: tuple[float, float, float, float]) -> bool:
    x1, y1, x2, y2 = truth
    return x1 <= face.cx <= x2 and y1 <= face.cy <= y2 and 0.4 <= face.h / (y2 - y1) <= 1.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step", type=int, default=2, help="use every n-th frame (default 2)")
    args = parser.parse_args()
    detectors = {name: make_detector(name, min_face_px=MIN_FACE_PX, frame_height=HEIGHT) for name in ("yunet", "haar")}
    media = fetch_media()
    found: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    false_faces: dict[str, int] = defaultdict(int)
    cpu: dict[str, list[float]] = defaultdict(list)
    near_cpu: dict[str, list[float]] = defaultdict(list)
    near_found: dict[str, int] = defaultdict(int)
    frames_per_clip: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        for clip in SINGLE:
            path, truth = build_clip(clip, media, Path(folder))
            capture = cv2.VideoCapture(str(path))
            index = used = 0
            previous = None
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                if index % args.step == 0:
                    used += 1
                    for name, detector in detectors.items():
                        started = time.process_time()
                        faces = detector.detect(frame)
                        cpu[name].append(time.process_time() - started)
                        hit = next((face for face in faces if matches(face, truth[index])), None)
                        found[name][clip.name] += hit is not None
                        false_faces[name] += sum(1 for face in faces if face is not hit and not matches(face, truth[index]))
                        if previous is not None:
                            # Where the face was --step frames before, as the detector would have seen it.
                            x1, y1, x2, y2 = previous
                            last = FaceBox(x1, y1 + 0.12 * (y2 - y1), x2 - x1, 0.88 * (y2 - y1), 1.0)
                            started = time.process_time()
                            near = detector.detect(frame, near=last)
                            near_cpu[name].append(time.process_time() - started)
                            near_found[name] += any(matches(face, truth[index]) for face in near)
                    previous = truth[index]
                index += 1
            capture.release()
            frames_per_clip[clip.name] = used
    total = sum(frames_per_clip.values())
    print(f"{len(SINGLE)} real-face clips, 1280x720, {total} frames (every {args.step}th); "
          f"a face counts if its centre is in the true box at 0.4-1.2x its height")
    header = f"{'clip':16s}" + "".join(f"{name:>10s}" for name in detectors)
    print(header)
    for clip in SINGLE:
        print(f"{clip.name:16s}" + "".join(f"{found[name][clip.name] / frames_per_clip[clip.name]:10.2f}"
                                           for name in detectors))
    for name, detector in detectors.items():
        recall = sum(found[name].values()) / total
        full_ms = 1000 * sum(cpu[name]) / len(cpu[name])
        near_ms = 1000 * sum(near_cpu[name]) / max(1, len(near_cpu[name]))
        near_recall = near_found[name] / max(1, len(near_cpu[name]))
        print(f"{name:6s} ({detector.name}): recall {recall:.2f} whole-frame, {near_recall:.2f} near the last face; "
              f"false faces {false_faces[name] / total:.3f} a frame; CPU {full_ms:.1f} ms a whole-frame search, "
              f"{near_ms:.1f} ms a search near the face")


if __name__ == "__main__":
    main()
