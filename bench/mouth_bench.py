"""Mouth benchmark: the tutor's own mouth against the drawn one, on real talking footage.

    .venv/bin/python bench/mouth_bench.py VIDEO [--out strip.png] [--bank-share 0.6] [--scale S]
    (or: bash scripts/bench.sh mouth VIDEO)

Prepares VIDEO with the real pipeline (lip shapes included), then measures held-out
reconstruction: the mouth bank is the first `--bank-share` of the frames; each later frame t is
rebuilt from the frame an idle loop would show near it (the nearest later frame whose mouth is
closed, within 2 s, taken as the "idle" frame) and t's own measured mouth shape — by the sample
renderer (the tutor's mouth from the bank) and by the animator (the idle frame's mouth drawn open
as far as t's). Each result is compared with the true frame t in the mouth region, after aligning
the idle frame's head pose to t's (a similarity on the still facial points): PSNR, SSIM, and a
sharpness ratio (the Laplacian variance of the rebuilt mouth / the true one's). Goal: the sample
renderer better than the animator on all three, sharpness ratio >= 0.8.

Also: the cost of one rendered frame (median ms, one thread) and a side-by-side strip (PNG) of
true, sample-rendered and animator mouths for a few frames, to look at.
Works on any talking-head video (the face must be at least ~96 px tall; `--scale` enlarges small
footage first, as 2 for a 360x288 clip).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatars.pipeline import PrepareOptions, lips, mouth_bank, prepare  # noqa: E402
from sessions_app.speech.mouth_samples import TRACK_OPEN, MouthSampleRenderer, _similarity  # noqa: E402
from sessions_app.speech.renderer import AvatarMaterial, FrameSpeech, MouthAnimator  # noqa: E402
from testsupport.prepared import material_from_folder  # noqa: E402

STRIP_FRAMES = 6


def scaled_copy(video: Path, scale: float, folder: Path) -> Path:
    if scale == 1:
        return video
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    out_path = folder / "scaled.mp4"
    writer = None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        if writer is None:
            writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
        writer.write(frame)
    capture.release()
    writer.release()
    return out_path


def speech_of(features: np.ndarray, widest: float, rest_width: float, teeth_high: float) -> FrameSpeech:
    """A measured mouth shape as the speech track would give it (what drives both renderers)."""
    openness, width, _rounding, teeth = features[:4]
    relative = width / rest_width - 1
    spread = relative / 0.12 if relative > 0 else relative / 0.15
    # The tracks' openness TRACK_OPEN means the tutor's widest (mouth_samples.target_of).
    return FrameSpeech(float(min(1.0, openness / widest)) * TRACK_OPEN, np.zeros(1, np.int16), 24000,
                       float(np.clip(spread, -1, 1)), float(min(1.0, teeth / max(teeth_high, 1e-6))))


def mouth_box(points: np.ndarray, shape) -> tuple[int, int, int, int]:
    outer = points[lips.OUTER]
    width = float(np.linalg.norm(outer[10] - outer[0]))
    centre = outer.mean(0)
    half_w, half_h = 0.75 * width, 0.55 * width
    x0, y0 = int(centre[0] - half_w), int(centre[1] - half_h)
    return max(0, x0), max(0, y0), min(shape[1], int(centre[0] + half_w)), min(shape[0], int(centre[1] + half_h))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over the grey image (Gaussian window 1.5, as Wang et al. 2004)."""
    a = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float64)
    b = cv2.cvtColor(b, cv2.COLOR_BGR2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    return float(np.mean(((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))))


def sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "mouth-bench-strip.png")
    parser.add_argument("--bank-share", type=float, default=0.6)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--max-frames", type=int, default=1500, help="held-out frames compared at most")
    parser.add_argument("--prepared", type=Path, help="a prepared avatar's folder to use (VIDEO is then ignored)")
    parser.add_argument("--keep", type=Path, help="keep the prepared avatar in this folder (for --prepared)")
    args = parser.parse_args(argv)
    if args.prepared:
        material, names = material_from_folder(args.prepared)
        return compare(material, names, args)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        video = scaled_copy(args.video, args.scale, scratch)
        started = time.perf_counter()
        prepared = prepare(video, scratch / "avatar", PrepareOptions())
        print(f"prepared {prepared.frame_count} frames of {prepared.video.width}x{prepared.video.height} "
              f"in {time.perf_counter() - started:.1f} s; coverage: {prepared.mouth_coverage['verdict']} "
              f"(missing: {', '.join(prepared.mouth_coverage['missing']) or 'none'})")
        if args.keep:
            import shutil
            shutil.rmtree(args.keep, ignore_errors=True)
            shutil.copytree(scratch / "avatar", args.keep)
        material, names = material_from_folder(scratch / "avatar")
        return compare(material, names, args)


def compare(material: AvatarMaterial, names: list[Path], args) -> int:
    features = material.lip_features
    count = len(features)
    split = int(count * args.bank_share)
    # The bank: only the first part's samples may be chosen.
    bank_features = features.copy()
    bank_features[split:] = np.nan
    bank_boxes = material.mouth_boxes.copy()
    bank_boxes[split:] = -1
    bank = AvatarMaterial(material.frame_count, material.width, material.height, material.fps, material.coords,
                          material.landmarks, material.read_crop, material.lip_points, bank_features, bank_boxes,
                          material.read_mouth)
    sampler = MouthSampleRenderer(bank)
    if sampler.description["fallback"]:
        print(f"the bank cannot speak: {sampler.description['reason']}")
        return 1
    animator = MouthAnimator(material)
    closed = features[:, 0] < mouth_bank.CLOSED_MAX
    reach = int(2 * material.fps)
    results = {"samples": [], "animator": []}
    is_speaking = []
    timings = []
    strip = []
    held_out = [t for t in range(split, count) if not np.isnan(features[t]).any()][: args.max_frames]
    speaking = [t for t in held_out if features[t, 0] >= mouth_bank.OPEN_MIN]
    show = set(speaking[:: max(1, len(speaking) // STRIP_FRAMES)][:STRIP_FRAMES])
    for t in held_out:
        idle = next((i for i in range(t + 1, min(count, t + reach)) if closed[i] and not np.isnan(features[i]).any()),
                    None) or next((i for i in range(t - 1, max(split, t - reach), -1)
                                   if closed[i] and not np.isnan(features[i]).any()), None)
        if idle is None:
            continue
        truth = cv2.imread(str(names[t]))
        base = cv2.imread(str(names[idle]))
        speech = speech_of(features[t], sampler.widest, sampler.rest_width, sampler.teeth_high)
        started = time.thread_time()  # CPU time of this thread: the cost of one frame on one core
        ours = sampler.render(base, idle, speech)
        timings.append(time.thread_time() - started)
        # The animator opens to its widest at openness 1: as wide as the true mouth, on its scale.
        drawn = animator.render(base, idle, FrameSpeech(min(1.0, speech.openness / TRACK_OPEN), speech.audio,
                                                        speech.rate))
        to_truth = _similarity(material.lip_points[idle][lips.STILL], material.lip_points[t][lips.STILL])
        x0, y0, x1, y1 = mouth_box(material.lip_points[t], truth.shape)
        true_mouth = truth[y0:y1, x0:x1]
        row = [true_mouth]
        for name, picture in (("samples", ours), ("animator", drawn)):
            aligned = cv2.warpAffine(picture, to_truth, truth.shape[1::-1], flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
            mouth = aligned[y0:y1, x0:x1]
            results[name].append((psnr(mouth, true_mouth), ssim(mouth, true_mouth),
                                  sharpness(mouth) / max(sharpness(true_mouth), 1e-6)))
            row.append(mouth)
        is_speaking.append(features[t, 0] >= mouth_bank.OPEN_MIN)
        if t in show:
            strip.append(np.hstack([cv2.resize(m, (180, 132)) for m in row]))
    is_speaking = np.array(is_speaking, bool)
    print(f"held-out frames compared: {len(is_speaking)}, {int(is_speaking.sum())} of them speaking (the true mouth "
          f"open >= {mouth_bank.OPEN_MIN}); bank: the first {split} frames, {len(sampler.bank)} usable")
    print("                        PSNR dB   SSIM    sharpness ratio   (medians)")
    for label, rows in (("all held-out frames", np.ones_like(is_speaking)), ("speaking frames", is_speaking)):
        if not rows.any():
            continue
        medians = {}
        for name in ("samples", "animator"):
            medians[name] = np.median(np.array(results[name])[rows], axis=0)
        print(f"  {label}:")
        for name in ("samples", "animator"):
            print(f"    {name:9s}           {medians[name][0]:6.2f}   {medians[name][1]:.3f}   {medians[name][2]:.2f}")
    better = all(medians["samples"][k] > medians["animator"][k] for k in range(2)) and \
        abs(medians["samples"][2] - 1) < abs(medians["animator"][2] - 1)
    print(f"  sample renderer better on all three: {'yes' if better else 'NO'}; "
          f"sharpness ratio >= 0.8: {'yes' if medians['samples'][2] >= 0.8 else 'NO'}")
    print(f"render cost: median {1000 * np.median(timings):.2f} ms, p95 {1000 * np.percentile(timings, 95):.2f} ms "
          f"a frame of CPU on one core ({material.width}x{material.height})")
    if strip:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        header = np.full((24, strip[0].shape[1], 3), 255, np.uint8)
        for k, label in enumerate(("true", "own mouth", "animator")):
            cv2.putText(header, label, (k * 180 + 6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.imwrite(str(args.out), np.vstack([header, *strip]))
        print(f"strip: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
