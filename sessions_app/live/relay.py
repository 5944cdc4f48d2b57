"""The session stream (WebSocket) when stages run in stage workers: the stage's media carried to the
web processes over the channel layer (Redis), so any web process serves any session's stream.

Both ends live here:

- In the stage worker, a `StreamRelay` is one more viewer of the session's stage (it wants JPEG,
  as WebSocket viewers do). It exists only while some web process has stream viewers of the
  session: each such process says so (`stage.watch` to the session's stage group) every WATCH_EVERY_S,
  and the relay goes once nobody has for WATCH_TIMEOUT_S. Each tick becomes ONE channel-layer
  message to the session's media group (the video frame and its audio together), whatever the
  number of web processes and viewers; events go the same way, in order.
- In a web process, a `RemoteStage` stands where a local stage would (sessions_app/live/watcher.py's
  join_stage hands it to the stream's watcher): one per session and process, subscribed to the
  media group, handing every viewer each tick. The student's microphone goes back the other way
  (`stage.hear` to the session's stage group: the worker's stage hears it, as a local one would).
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from channels.layers import get_channel_layer

from common.db_threads import in_worker_thread
from sessions_app.live import placement

logger = logging.getLogger(__name__)

WATCH_EVERY_S = 2.0  # a web process with stream viewers says so this often
WATCH_TIMEOUT_S = 6.0  # the worker stops relaying this long after the last say-so
HEADER_WAIT_S = 10.0  # a web process waits this long for the stage's header (the stage is starting)
RELAY_BACKLOG = 50  # ticks waiting to be sent to the layer (2 s at 25 fps); past it the oldest go


def media_group(session_id: str) -> str:
    """Where a stage worker relays the session's media (web processes with stream viewers listen)."""
    return f"session.{session_id}.media"


def stage_group(session_id: str) -> str:
    """Where web processes speak to the session's stage on its worker (`stage.watch`, `stage.hear`)."""
    return f"session.{session_id}.stage"


# --- in the stage worker --------------------------------------------------------------------------

class StreamRelay:
    """The stage's viewer that carries it to web processes' stream viewers: its events, and its
    media while some process has a viewer that wants them (not only events: `?media=none`)."""

    wants_i420 = False

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.group = media_group(session_id)
        self.watched_until = 0.0
        self.media_until = 0.0
        self._outbox: asyncio.Queue = asyncio.Queue()
        self._sender = asyncio.create_task(self._send())

    def watched(self, media: bool = True) -> None:
        self.watched_until = time.monotonic() + WATCH_TIMEOUT_S
        if media:
            self.media_until = self.watched_until

    @property
    def wants_jpeg(self) -> bool:
        return time.monotonic() < self.media_until

    @property
    def wanted(self) -> bool:
        return time.monotonic() < self.watched_until

    def frame(self, first_sample: int, pts: int, jpeg: bytes | None, i420, audio: np.ndarray) -> None:
        if not jpeg or not self.wants_jpeg:
            return  # nobody wants the media (it was asked for events only)
        if self._outbox.qsize() >= RELAY_BACKLOG:
            self._outbox.get_nowait()
        self._outbox.put_nowait({"type": "stage.media", "pts": pts, "jpeg": jpeg or b"",
                                 "audio": audio.astype("<i2").tobytes()})

    def put(self, item) -> None:
        kind, body = item
        if kind == "event":
            self._outbox.put_nowait({"type": "stage.event", "event": body})

    async def _send(self) -> None:
        layer = get_channel_layer()
        while True:
            message = await self._outbox.get()
            try:
                await layer.group_send(self.group, message)
            except Exception:  # noqa: BLE001 - a broken layer drops this tick, not the stage
                logger.exception("session %s: relaying the stream failed", self.session_id)

    def close(self) -> None:
        self._sender.cancel()


# --- in a web process ----------------------------------------------------------------------------

class HeardRelay:
    """The student's microphone, from this web process to the session's stage on its worker
    (`stage.hear` messages to the stage group), in order: one sender, as concurrent sends could
    overtake each other (seen: the recogniser heard a scrambled turn)."""

    def __init__(self, session_id: str) -> None:
        self.group = stage_group(session_id)
        self.session_id = session_id
        self._layer = get_channel_layer()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._sender = asyncio.get_running_loop().create_task(self._send())

    def hear(self, sender_pts_us: int, samples: np.ndarray, rate: int) -> None:
        self._queue.put_nowait({"type": "stage.hear", "pts": int(sender_pts_us), "rate": int(rate),
                                "pcm": samples.astype("<i2").tobytes()})

    async def _send(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                await self._layer.group_send(self.group, message)
            except Exception:  # noqa: BLE001 - a broken layer loses this chunk, not the stream
                logger.exception("session %s: the student's audio could not be passed on", self.session_id)

    def close(self) -> None:
        self._sender.cancel()


class _Described:
    """Stands for the renderer in the stream header: what the worker's stage said it draws with."""

    def __init__(self, description: dict) -> None:
        self.description = description


class RemoteStage:
    """A session's stage running on a stage worker, as this process's stream viewers see it."""

    def __init__(self, session_id: str, frames) -> None:
        self.session_id = session_id
        self.frames = frames
        self.viewers: list = []
        self.renderer = _Described({"name": "unknown", "fallback": False})
        self.task: asyncio.Task | None = None
        self.started = asyncio.Event()  # subscribed, and the header's renderer read (or given up on)
        self._heard: HeardRelay | None = None  # the student's audio, to the worker
        self._layer = get_channel_layer()

    async def start(self) -> None:
        """Subscribe, ask the worker to relay, and read what the stage's header said it draws with."""
        self._channel = await self._layer.new_channel()
        await self._layer.group_add(media_group(self.session_id), self._channel)
        self.task = asyncio.create_task(self._run())
        deadline = time.monotonic() + HEADER_WAIT_S
        while time.monotonic() < deadline:
            where = await in_worker_thread(placement.placement_of)(self.session_id)
            header = where.header if where is not None else None
            if header and header.get("avatar_id") == self.frames.avatar_id:
                self.renderer = _Described(header.get("renderer") or self.renderer.description)
                break
            await asyncio.sleep(0.2)
        self.started.set()

    def add(self, viewer) -> None:
        self.viewers.append(viewer)

    def remove(self, viewer) -> bool:
        if viewer in self.viewers:
            self.viewers.remove(viewer)
        if not self.viewers and self.task is not None:
            self.task.cancel()
            self.task = None
            if self._heard is not None:
                self._heard.close()
            asyncio.get_running_loop().create_task(self._unsubscribe())
        return not self.viewers

    async def _unsubscribe(self) -> None:
        try:
            await self._layer.group_discard(media_group(self.session_id), self._channel)
        except Exception:  # noqa: BLE001
            logger.exception("session %s: could not leave the media group", self.session_id)

    async def _run(self) -> None:
        asker = asyncio.create_task(self._ask(stage_group(self.session_id)))
        try:
            while True:
                message = await self._layer.receive(self._channel)
                kind = message.get("type")
                if kind == "stage.media":
                    audio = np.frombuffer(message["audio"], "<i2")
                    for viewer in list(self.viewers):
                        viewer.frame(0, message["pts"], message["jpeg"], None, audio)
                elif kind == "stage.event":
                    for viewer in list(self.viewers):
                        viewer.put(("event", message["event"]))
        finally:
            asker.cancel()

    async def _ask(self, group: str) -> None:
        while True:
            media = any(viewer.wants_jpeg for viewer in self.viewers)  # not for events-only sockets
            await self._layer.group_send(group, {"type": "stage.watch", "media": media})
            await asyncio.sleep(WATCH_EVERY_S)

    # --- what the watcher calls on a stage (speak and interrupt reach the worker's stage through
    # the session's group: they are not called on this one, which no Stages registry holds) ------
    def hear(self, sender_pts_us: int, samples: np.ndarray, rate: int) -> None:
        """The student's microphone, to the worker's stage."""
        if self._heard is None:
            self._heard = HeardRelay(self.session_id)
        self._heard.hear(sender_pts_us, samples, rate)


class RemoteStages:
    """This web process's RemoteStages, one per session and avatar run."""

    def __init__(self) -> None:
        self._stages: dict[tuple[str, str], RemoteStage] = {}

    async def join(self, session_id: str, frames, viewer) -> RemoteStage:
        key = (session_id, frames.version)
        stage = self._stages.get(key)
        if stage is None:
            stage = self._stages[key] = RemoteStage(session_id, frames)
            stage.add(viewer)
            await stage.start()
            return stage
        stage.add(viewer)
        await stage.started.wait()
        return stage

    def leave(self, stage: RemoteStage, viewer) -> None:
        if stage.remove(viewer):
            key = (stage.session_id, stage.frames.version)
            if self._stages.get(key) is stage:
                del self._stages[key]


remote_stages = RemoteStages()


def hear_message(message: dict) -> tuple[int, np.ndarray, int]:
    """A `stage.hear` message's (sender time µs, samples, rate)."""
    return int(message["pts"]), np.frombuffer(message["pcm"], "<i2"), int(message["rate"])

