"""Opening a video: recognising the container, probing its facts cheaply, reading its frames."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from avatars.pipeline.errors import PipelineError

# Leading bytes of the containers FFmpeg decodes that a camera or an editor produces. Anything
# else (a picture, a PDF, text) is refused before FFmpeg is asked, because FFmpeg happily opens
# a single JPEG or PNG as a one-frame "video".
_MPEG_TS_PACKET = 188
# The formats named to people: the upload field's hint and the refusal of a file that is not a
# video both say this list, so they never disagree.
ACCEPTED_FORMATS = "MP4, MOV, WebM, MKV or AVI"


def sniff_container(head: bytes) -> str | None:
    """Name the video container whose signature starts `head` (the file's first bytes), or None."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:11] == b"AVI":
        return "avi"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg-ps"
    if head[:1] == b"\x47" and len(head) > 2 * _MPEG_TS_PACKET and head[_MPEG_TS_PACKET] == 0x47:
        return "mpeg-ts"
    return None


@dataclass(frozen=True)
class VideoLimits:
    """What a source video must satisfy before any frame is decoded beyond the first."""

    min_duration_s: float = 1.0
    max_duration_s: float = 300.0
    min_short_side: int = 240
    max_long_side: int = 4096
    # Width x height x frames: bounds the work a video may ask for, whatever its header says.
    max_total_pixels: int = 1920 * 1080 * 30 * 300


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a source video. `frame_count` and `duration_s` come from the container's header
    at probe time; the pipeline replaces them with what it actually decoded."""

    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float
    container: str
    codec: str

    def as_dict(self) -> dict:
        return asdict(self)


def open_capture(path: str | os.PathLike) -> cv2.VideoCapture:
    # FFmpeg explicitly: other backends read '%d' in a file name as an image-sequence pattern.
    # One decoding thread: the pipeline keeps both cores busy itself, and FFmpeg's own threads
    # cost more CPU per frame (measured: 2.0 ms against 1.3 ms for 720p MPEG-4).
    return cv2.VideoCapture(os.fspath(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])


def _fourcc_name(value: float) -> str:
    code = int(value)
    chars = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return chars.strip("\x00 ") if chars.isprintable() else ""


DEFAULT_FPS = 25.0


def probe(path: str | os.PathLike, limits: VideoLimits) -> VideoInfo:
    """Check that `path` is a decodable video within `limits`, reading its header and first frame.

    Raises PipelineError with code `not_a_video` (no video container signature),
    `unreadable_video`, `resolution_too_low`, `too_short` or `too_long`.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(2 * _MPEG_TS_PACKET + 1)
    except OSError as exc:
        raise PipelineError("unreadable_video", f"The video file cannot be read: {exc.strerror}.") from exc
    container = sniff_container(head)
    if container is None:
        raise PipelineError(
            "not_a_video",
            f"The file is not a video. Upload a recording of the tutor: {ACCEPTED_FORMATS}.",
        )
    capture = open_capture(path)
    try:
        if not capture.isOpened():
            raise PipelineError(
                "unreadable_video",
                "The video cannot be opened; it may be damaged or truncated. Export it again as MP4 (H.264).",
            )
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        # A stream without an index (a live-recorded MKV, say) has no count: OpenCV reads it as a
        # huge negative number. Unknown is 0; the decoded frames are counted against the limits.
        frame_count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        codec = _fourcc_name(capture.get(cv2.CAP_PROP_FOURCC))
        # The header's size is checked before decoding: a forged header must not make us allocate.
        if width <= 0 or height <= 0:
            raise PipelineError("unreadable_video", "The video has no picture track that can be decoded.")
        if max(width, height) > limits.max_long_side:
            raise PipelineError(
                "resolution_too_high",
                f"The video is {width}x{height}; the longest side may be at most {limits.max_long_side} "
                "pixels. Export it at 1080p or 720p.",
                {"width": width, "height": height},
            )
        if min(width, height) < limits.min_short_side:
            raise PipelineError(
                "resolution_too_low",
                f"The video is {width}x{height}; its shorter side must be at least {limits.min_short_side} "
                "pixels. Record at 720p or more.",
                {"width": width, "height": height},
            )
        if not (0.0 < fps <= 240.0):
            fps = DEFAULT_FPS
        duration_s = frame_count / fps if frame_count > 0 else 0.0
        if frame_count > 0:
            _check_duration(duration_s, limits)
            _check_pixels(width, height, frame_count, limits)
        ok, frame = capture.read()
        if not ok or frame is None:
            raise PipelineError(
                "unreadable_video",
                "No frame of the video can be decoded; it may be damaged or truncated. Export it again as MP4 (H.264).",
            )
        if frame.shape[0] != height or frame.shape[1] != width:
            # Trust the decoded picture over the header.
            height, width = frame.shape[:2]
    finally:
        capture.release()
    return VideoInfo(width, height, round(fps, 3), frame_count, round(duration_s, 3), container, codec)


def _check_duration(duration_s: float, limits: VideoLimits) -> None:
    if duration_s < limits.min_duration_s:
        raise PipelineError(
            "too_short",
            f"The video lasts {duration_s:.1f} s; it must last at least {limits.min_duration_s:g} s. "
            "Record a few seconds of the tutor looking at the camera.",
            {"duration_s": round(duration_s, 3)},
        )
    if duration_s > limits.max_duration_s:
        raise PipelineError(
            "too_long",
            f"The video lasts {duration_s:.0f} s; it may last at most {limits.max_duration_s:g} s. "
            "Trim it to a short clip of the tutor.",
            {"duration_s": round(duration_s, 3)},
        )


def _check_pixels(width: int, height: int, frame_count: int, limits: VideoLimits) -> None:
    if width * height * frame_count > limits.max_total_pixels:
        raise PipelineError(
            "video_too_large",
            f"The video has {frame_count} or more frames of {width}x{height}, more than this server prepares "
            "(setting AVATAR_MAX_TOTAL_PIXELS). Trim it or lower its resolution.",
            {"width": width, "height": height, "frame_count": frame_count},
        )


def check_decoded_duration(frame_count: int, fps: float, limits: VideoLimits) -> None:
    """The same duration rules, applied to the frames actually decoded (headers can lie)."""
    if frame_count == 0:
        raise PipelineError("unreadable_video", "No frame of the video can be decoded.")
    _check_duration(frame_count / fps, limits)


def decoded_frame_limit(width: int, height: int, fps: float, limits: VideoLimits) -> int:
    """The most frames a video of this size and rate may decode: past the duration or the pixel
    budget, whatever its header said."""
    return min(int(limits.max_duration_s * fps) + 1, max(1, limits.max_total_pixels // max(1, width * height)))


def check_decoded_budget(frame_count: int, width: int, height: int, fps: float, limits: VideoLimits) -> None:
    """The duration and pixel rules, applied to the frames decoded so far."""
    check_decoded_duration(frame_count, fps, limits)
    _check_pixels(width, height, frame_count, limits)


class FramePool:
    """Frame buffers handed back after use, for the decoder to fill again. Decoding into fresh
    memory costs a page fault per 4 KB, about a millisecond per 720p frame; reused buffers don't."""

    def __init__(self) -> None:
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self) -> np.ndarray | None:
        with self._lock:
            return self._free.pop() if self._free else None

    def give_back(self, frame: np.ndarray) -> None:
        with self._lock:
            self._free.append(frame)


class DecodeClock:
    """The timestamp (ms) of the last frame decoded: what the frames' own clock says, as opposed
    to a frame count divided by the header's rate."""

    def __init__(self) -> None:
        self.last_ms = 0.0


def iter_frames(path: str | os.PathLike, pool: FramePool | None = None,
                clock: DecodeClock | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, BGR frame) for every frame in decode order. With a `pool`, frames are decoded
    into buffers the consumer has given back (the consumer must not keep them after that); with a
    `clock`, each frame's timestamp is noted there."""
    capture = open_capture(path)
    if not capture.isOpened():
        raise PipelineError("unreadable_video", "The video can no longer be opened.")
    try:
        index = 0
        while True:
            buffer = pool.take() if pool is not None else None
            ok, frame = capture.read(buffer) if buffer is not None else capture.read()
            if not ok:
                return
            if clock is not None:
                clock.last_ms = float(capture.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
            yield index, frame
            index += 1
    finally:
        capture.release()


def playback_fps(info_fps: float, header_frames: int, decoded_frames: int, last_ms: float) -> float:
    """The rate the decoded frames play at, from their timestamps.

    A variable-frame-rate recording (a phone's) may say 25 fps in its header and hold 100 frames
    over 8 s: played at 25 fps it would last 4 s. When the timestamps and the header disagree by
    more than 5%, the timestamps' average rate wins. A file whose frames stop well before its
    header's duration (still being written or copied when it was sent) is refused:
    `incomplete_video`.
    """
    if decoded_frames < 2 or last_ms <= 0:
        return info_fps  # no usable timestamps: trust the header
    timeline_s = last_ms / 1000.0 * decoded_frames / (decoded_frames - 1)  # plus one average frame
    if header_frames > 0:
        header_s = header_frames / info_fps
        if timeline_s < 0.9 * header_s and decoded_frames < 0.9 * header_frames:
            raise PipelineError(
                "incomplete_video",
                f"The video stops after {timeline_s:.1f} s of the {header_s:.1f} s its header announces; it may "
                "still have been recording or copying when it was sent. Send the finished file.",
                {"decoded_s": round(timeline_s, 3), "header_s": round(header_s, 3)},
            )
    measured = decoded_frames / timeline_s
    if abs(measured - info_fps) > 0.05 * info_fps:
        return round(measured, 3)
    return info_fps
