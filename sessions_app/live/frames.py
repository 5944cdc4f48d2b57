"""A ready avatar's frames as JPEG messages, encoded once and shared by every viewer.

Frames are read from the prepared files (`full_imgs/`, local or in object storage): JPEG files are sent as they are, PNG files
are encoded to JPEG once. The encoded frames of all avatars share one LRU cache whose size is a
setting (SESSION_FRAME_CACHE_MB), so memory does not grow with viewers or with avatars' length;
a frame pushed out of the cache is read again when next needed.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from avatars import storage
from avatars.models import Avatar
from avatars.pipeline import lips
from sessions_app.speech.renderer import AvatarMaterial

PNG_TO_JPEG_QUALITY = 90


def frames_version(avatar: Avatar) -> str:
    """What tells one run's frames of an avatar from another's."""
    return f"{avatar.avatar_id}:{avatar.run}-{avatar.ready_at}"


@dataclass(frozen=True)
class AvatarFrames:
    avatar_id: str
    version: str  # changes when the avatar is prepared again, so stale cache entries are never used
    names: tuple[str, ...]
    fps: float
    width: int
    height: int

    @property
    def frame_count(self) -> int:
        return len(self.names)

    @classmethod
    def of(cls, avatar: Avatar) -> "AvatarFrames":
        prepared = storage.backend()
        manifest = json.loads(prepared.read_prepared(avatar.avatar_id, "avatar.json"))
        # Loaders sort by the integer in the name, as LiveTalking's does.
        names = tuple(sorted(prepared.list_prepared(avatar.avatar_id, "full_imgs"), key=lambda name: int(Path(name).stem)))
        source = manifest["source"]
        return cls(avatar.avatar_id, frames_version(avatar), names, float(manifest["fps"]),
                   int(source["width"]), int(source["height"]))


class FrameCache:
    """Thread-safe LRU of encoded frames, bounded in bytes."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple, data: bytes) -> None:
        with self._lock:
            if key in self._items or len(data) > self.budget_bytes:
                return
            self._items[key] = data
            self.used_bytes += len(data)
            while self.used_bytes > self.budget_bytes:
                _, evicted = self._items.popitem(last=False)
                self.used_bytes -= len(evicted)


_cache: FrameCache | None = None
_cache_lock = threading.Lock()


def frame_cache() -> FrameCache:
    global _cache
    from django.conf import settings

    with _cache_lock:
        if _cache is None:
            _cache = FrameCache(settings.SESSION_FRAME_CACHE_MB * 1024 * 1024)
        return _cache


def _read_jpeg(avatar_id: str, name: str) -> bytes:
    data = storage.backend().read_prepared(avatar_id, f"full_imgs/{name}")
    if Path(name).suffix.lower() in (".jpg", ".jpeg"):
        return data
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, PNG_TO_JPEG_QUALITY])[1].tobytes()


async def jpeg_frame(frames: AvatarFrames, index: int) -> bytes:
    """Frame `index` as JPEG bytes, from the shared cache or (off the event loop) from disk."""
    cache = frame_cache()
    key = (frames.avatar_id, frames.version, index)
    data = cache.get(key)
    if data is None:
        data = await asyncio.to_thread(_read_jpeg, frames.avatar_id, frames.names[index])
        cache.put(key, data)
    return data


def ping_pong(step: int, frame_count: int) -> int:
    """The frame shown at `step`: forward through the video, then backward, endlessly
    (0, 1, …, n-1, n-2, …, 1, 0, 1, …), so the loop never jumps."""
    if frame_count <= 1:
        return 0
    period = 2 * frame_count - 2
    position = step % period
    return position if position < frame_count else period - position


def avatar_material(frames: AvatarFrames) -> AvatarMaterial:
    """What a frame renderer may use of the avatar (read from its prepared files: blocking)."""
    prepared = storage.backend()
    manifest = json.loads(prepared.read_prepared(frames.avatar_id, "avatar.json"))
    landmarks = None
    if manifest.get("landmarks") and prepared.prepared_exists(frames.avatar_id, "landmarks.npy"):
        landmarks = np.load(io.BytesIO(prepared.read_prepared(frames.avatar_id, "landmarks.npy")))

    def read_crop(index: int) -> np.ndarray:  # crops are always PNG
        data = prepared.read_prepared(frames.avatar_id, f"face_imgs/{Path(frames.names[index]).stem}.png")
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    def read_mouth(index: int) -> np.ndarray:
        data = prepared.read_prepared(frames.avatar_id, f"mouth_imgs/{Path(frames.names[index]).stem}.jpg")
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    bank = {}
    if manifest.get("lips") and prepared.prepared_exists(frames.avatar_id, lips.FEATURES_FILE):
        bank = {name: np.load(io.BytesIO(prepared.read_prepared(frames.avatar_id, file)))
                for name, file in (("lip_points", lips.POINTS_FILE), ("lip_features", lips.FEATURES_FILE),
                                   ("mouth_boxes", lips.BOXES_FILE))}
        bank["read_mouth"] = read_mouth
    return AvatarMaterial(frames.frame_count, frames.width, frames.height, frames.fps,
                          [tuple(box) for box in manifest.get("coords", [])], landmarks, read_crop, **bank)
