"""Files that must be refused, made on the spot: wrong types, damaged and forged videos."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import cv2

from testsupport.videos import astronaut_bgr, write_face_video


def make_bad_files(folder: Path) -> dict[str, Path]:
    """name -> file, for every bad file the bad-input tests use."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        files[name] = folder / name
        files[name].write_bytes(data)

    put("text.mp4", b"These are lesson notes, not a video.\n" * 100)
    put("empty.mp4", b"")
    put("picture.mp4", cv2.imencode(".png", astronaut_bgr())[1].tobytes())
    put("photo.mp4", cv2.imencode(".jpg", astronaut_bgr())[1].tobytes())
    put("document.mp4", b"%PDF-1.7\n" + b"0" * 5000)
    put("fake_signature.mp4", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 40)

    audio = folder / "audio.wav"
    with wave.open(str(audio), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(16000)
        sound.writeframes(b"\x00\x01" * 32000)
    files["audio.wav"] = audio

    good = folder / "good.mp4"
    write_face_video(good, width=640, height=360, seconds=2.0)
    files["good.mp4"] = good  # a valid video, for the cases where something else is wrong
    put("truncated.mp4", good.read_bytes()[:2000])

    short = folder / "short.mp4"
    write_face_video(short, width=640, height=360, seconds=0.3)
    files["short.mp4"] = short
    low = folder / "low_res.mp4"
    write_face_video(low, width=320, height=180, seconds=2.0)
    files["low_res.mp4"] = low
    huge = folder / "huge_resolution.mp4"
    write_face_video(huge, width=4352, height=2448, fps=5, seconds=0.4)
    files["huge_resolution.mp4"] = huge

    # An AVI whose header claims two billion frames (the pictures themselves are fine).
    avi = folder / "forged.avi"
    write_face_video(avi, width=640, height=360, seconds=2.0, fourcc="MJPG")
    data = bytearray(avi.read_bytes())
    avih, strh = data.find(b"avih"), data.find(b"strh")
    struct.pack_into("<I", data, avih + 8 + 16, 2_000_000_000)  # avih dwTotalFrames
    struct.pack_into("<I", data, strh + 8 + 32, 2_000_000_000)  # strh dwLength
    put("forged_frame_count.avi", bytes(data))
    return files


def streamed_mkv(path: Path, width: int = 640, height: int = 360, frames: int = 50, fps: float = 25.0) -> Path:
    """An MKV as a live recorder streams it: no duration in its header and no index (cues) at the
    end, so nothing says how many frames it has (OpenCV reads the count as a huge negative number)."""
    import numpy as np

    photo = cv2.resize(astronaut_bgr(), (height, height))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for index in range(frames):
        frame = np.full((height, width, 3), 90, np.uint8)
        left = (index * 3) % max(1, width - height)
        frame[:, left:left + height] = photo
        writer.write(frame)
    writer.release()
    data = bytearray(path.read_bytes())
    duration = data.find(bytes.fromhex("4489"))  # Segment Info's Duration: id, size, float payload
    length = 3 + (data[duration + 2] & 0x7F)
    data[duration:duration + length] = bytes([0xEC, 0x80 | (length - 2)]) + bytes(length - 2)  # a Void element
    cues = data.rfind(bytes.fromhex("1C53BB6B"))
    path.write_bytes(bytes(data[:cues]))
    return path
