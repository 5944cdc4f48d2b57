"""Cropping, blurring, encoding and writing the prepared frames on worker threads.

OpenCV's resize, blur and encoders release the GIL, so two threads beside the decode/detect
thread keep both cores busy. The queue is bounded, so memory stays flat however long the video is.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from avatars.pipeline import lips
from avatars.pipeline.errors import FrameWriteError, PipelineError
from avatars.pipeline.png import encode_png
from avatars.pipeline.track import TrackedBox
from avatars.pipeline.video import FramePool

_STOP = object()

# (frame, its tracked face) -> the frame with its background blurred.
BlurFunction = Callable[[np.ndarray, TrackedBox], np.ndarray]


def write_file(path: Path, data: bytes | memoryview) -> int:
    """Write one encoded image, raising FrameWriteError when the disk or storage refuses; the
    bytes written."""
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise FrameWriteError(f"could not write {path.name}: {exc.strerror}") from exc
    return len(data)


def write_image(path: Path, image: np.ndarray, params: list[int]) -> int:
    """Encode (with OpenCV, by the file's extension) and write one image, raising
    (cv2.imwrite only returns False) when it fails; the bytes written."""
    ok, encoded = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise FrameWriteError(f"could not encode {path.name}")
    return write_file(path, encoded.data)


def face_crop(frame: np.ndarray, box: TrackedBox, size: int) -> np.ndarray:
    """The (size, size, 3) face crop of `frame` at `box`."""
    y1, y2, x1, x2 = box.crop
    crop = frame[y1:y2, x1:x2]
    # Area averaging only when shrinking a lot; bilinear is 3x cheaper and as good above half size.
    interpolation = cv2.INTER_AREA if crop.shape[0] > 2 * size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


# The lower-face patches of the mouth bank: the quality of the prepared full frames, so a pasted
# mouth keeps the detail (teeth edges) the frame it replaces has.
MOUTH_JPEG_QUALITY = 95


class FrameWriterPool:
    """Writes `full_imgs/<index>.<ext>` and `face_imgs/<index>.png` for each submitted frame; with
    `landmarkers`, also measures the frame's lips (lips.py) and writes its lower face to
    `mouth_imgs/<index>.jpg` (the renderer's mouth bank), the results in `lip_shapes`."""

    def __init__(self, out_dir: Path, *, crop_size: int, frame_format: str, jpeg_quality: int,
                 blur_factory: Callable[[], BlurFunction] | None, frame_pool: FramePool | None = None,
                 threads: int = 2, queue_size: int = 8, max_bytes: int | None = None,
                 landmarkers: lips.ThreadLandmarkers | None = None) -> None:
        self.full_dir = out_dir / "full_imgs"
        self.face_dir = out_dir / "face_imgs"
        self.mouth_dir = out_dir / "mouth_imgs"
        self.full_dir.mkdir(parents=True)
        self.face_dir.mkdir(parents=True)
        self.landmarkers = landmarkers
        # index -> (LipShape, patch box (x0, y0, x1, y1)); written by the threads, read after close().
        self.lip_shapes: dict[int, tuple[lips.LipShape, tuple[int, int, int, int]]] = {}
        if landmarkers is not None:
            self.mouth_dir.mkdir(parents=True)
        self.crop_size = crop_size
        self.frame_ext = ".png" if frame_format == "png" else ".jpg"
        self.frame_params = [] if frame_format == "png" else [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        # One blur per thread: each keeps its own scratch buffers.
        self.blur_factory = blur_factory
        self.frame_pool = frame_pool
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        # The output is budgeted as it is written: a small, very compressible video (a still
        # picture, 60 s of 1080p in 1 MB) expands to gigabytes of frames.
        self.max_bytes = max_bytes
        self.bytes_written = 0
        self._bytes_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, name=f"avatar-frame-writer-{n}", daemon=True) for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, index: int, frame: np.ndarray, box: TrackedBox) -> None:
        """Queue one frame; blocks while the queue is full. Raises if a write has failed."""
        while True:
            self._raise_if_failed()
            try:
                self._queue.put((index, frame, box), timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for every queued frame to be written; raise if any write failed."""
        self._stop_threads()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop without writing the rest (the run is being thrown away)."""
        self._error = self._error or FrameWriteError("aborted")
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._stop_threads()

    def _stop_threads(self) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()

    def _raise_if_failed(self) -> None:
        if isinstance(self._error, PipelineError):
            raise self._error
        if self._error is not None:
            raise FrameWriteError(str(self._error)) from self._error

    def _count(self, written: int) -> None:
        with self._bytes_lock:
            self.bytes_written += written
            over = self.max_bytes is not None and self.bytes_written > self.max_bytes
        if over:
            raise PipelineError(
                "output_too_large",
                f"The prepared avatar would be larger than this server keeps ({self.max_bytes // 2**20} MB, "
                "setting AVATAR_MAX_OUTPUT_BYTES). Trim the video or lower its resolution.",
                {"max_bytes": self.max_bytes},
            )

    def _run(self) -> None:
        blur_function = self.blur_factory() if self.blur_factory is not None else None
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue  # drain after a failure so submit() never blocks forever
            try:
                self._write(*item, blur_function)
            except BaseException as exc:  # noqa: BLE001 - handed to the submitting thread
                self._error = exc

    def _write(self, index: int, frame: np.ndarray, box: TrackedBox, blur_function: BlurFunction | None) -> None:
        name = f"{index:08d}"
        full = blur_function(frame, box) if blur_function is not None else frame
        # The crop is cut from the frame as published: a renderer pastes each crop back into its
        # full frame at its box, so a crop from the unblurred frame left a sharp square in the
        # blurred background (measured: ~4.9 grey levels of mean change where it was pasted back,
        # against ~1.2 for resampling alone). The person inside the mask is not blurred either way.
        written = write_file(self.face_dir / f"{name}.png", encode_png(face_crop(full, box, self.crop_size)))
        full_path = self.full_dir / f"{name}{self.frame_ext}"
        if self.frame_ext == ".png":
            written += write_file(full_path, encode_png(full))  # measured for 720p: ~19 ms against ~23 ms
        else:
            written += write_image(full_path, full, self.frame_params)
        if self.landmarkers is not None and index % lips.MEASURE_EVERY == 0:
            written += self._measure_lips(name, index, frame, full, box)
        self._count(written)
        if self.frame_pool is not None:
            self.frame_pool.give_back(frame)

    def _measure_lips(self, name: str, index: int, frame: np.ndarray, full: np.ndarray, box: TrackedBox) -> int:
        """Measure on the frame as decoded, cut the patch from the frame as published (it is pasted
        back into published frames)."""
        shape = self.landmarkers.get().measure(frame, box.landmarks)
        if shape is None:
            return 0
        x0, y0, x1, y1 = lips.patch_box(shape.points, full.shape)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return 0
        written = write_image(self.mouth_dir / f"{name}.jpg", full[y0:y1, x0:x1],
                              [cv2.IMWRITE_JPEG_QUALITY, MOUTH_JPEG_QUALITY])
        self.lip_shapes[index] = (shape, (x0, y0, x1, y1))
        return written
