"""The session's watcher run for a stage worker's publisher (no socket, no API key, no viewer place)."""

from __future__ import annotations

import asyncio
import logging

import cv2
import numpy as np
from channels.layers import get_channel_layer
from django.conf import settings

from avatars import storage
from common.db_threads import in_worker_thread
from sessions_app import services
from sessions_app.frames import AvatarFrames, frames_version
from sessions_app.live import placement
from sessions_app.live.relay import StreamRelay, hear_message, stage_group
from sessions_app.speech.clock import frame_samples, pts_us
from sessions_app.stage import i420_of, stages
from sessions_app.watching import WAIT_LOOK_EVERY_S, Look, join_stage, look_at, renderer_description

logger = logging.getLogger(__name__)

WAITING_FPS = 5
# The stream's header goes again on the data channel this often: Janus relays to viewers from the
# moment they join, so one that joined after it (and whose offer came before it) gets it so.
HEADER_EVERY_S = 2.5


async def watch_with_publisher(held) -> bool:
    publisher = held.publisher
    publisher.woken = woken = asyncio.Event()
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = services.group_name(held.session_id)
    await layer.group_add(group, channel)
    await layer.group_add(stage_group(held.session_id), channel)
    ended = asyncio.Event()

    relay = None

    async def receive():
        try:
            await listen()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("session %s: its group's messages can no longer be heard", held.session_id)
            raise

    async def listen():
        nonlocal relay
        while True:
            message = await layer.receive(channel)
            kind = message.get("type")
            if kind == "session.ended":
                ended.set()
                woken.set()
            elif kind == "session.avatar_changed":
                woken.set()
            elif kind == "session.speak":
                stages.speak(held.session_id)
            elif kind == "session.interrupt":
                stages.interrupt(held.session_id, int(message["up_to"]))
            elif kind == "stage.watch":  # a web process has stream viewers: relay the stage to it
                if relay is None:
                    relay = StreamRelay(held.session_id)
                relay.watched()
                if held.stage is not None and relay not in held.stage.viewers:
                    held.stage.add(relay)
            elif kind == "stage.hear" and held.stage is not None:
                held.stage.hear(*hear_message(message))

    listener = asyncio.create_task(receive())

    async def look() -> Look:
        found = await in_worker_thread(look_at)(held.session_id, False, lambda: True)
        return found or Look(ended_reason="ended")

    async def sleep(seconds):
        try:
            async with asyncio.timeout(seconds):
                await woken.wait()
        except TimeoutError:
            pass

    try:
        current = await look()
        while True:
            if current.ended_reason is not None or ended.is_set():
                publisher.event({"type": "ended", "reason": current.ended_reason or "ended"})
                return True
            if current.ready is None:
                picture = await in_worker_thread(_waiting_picture)(current.still_of)
                publisher.event({"type": "waiting", **current.waiting})
                index = 0
                while current.ready is None and current.ended_reason is None and not ended.is_set():
                    first, end = frame_samples(index, settings.SESSION_AUDIO_RATE, WAITING_FPS)
                    publisher.frame(first, pts_us(first, settings.SESSION_AUDIO_RATE), None, picture,
                                    np.zeros(end - first, np.int16))
                    index += 1
                    woken.clear()
                    await sleep(1 / WAITING_FPS)
                    if index % int(WAIT_LOOK_EVERY_S * WAITING_FPS) == 0 or woken.is_set():
                        current = await look()
                continue
            frames = await in_worker_thread(AvatarFrames.of)(current.ready)
            stage = await join_stage(held.session_id, frames, publisher, on_worker=True)
            held.stage = stage
            if relay is not None and relay.wanted:
                stage.add(relay)
            if held.draining:
                stage.holding = True
            header = {"type": "session", "avatar_id": frames.avatar_id, "fps": frames.fps, "width": frames.width,
                      "height": frames.height, "frame_count": frames.frame_count,
                      "audio_rate": settings.SESSION_AUDIO_RATE, "renderer": renderer_description(stage.renderer)}
            publisher.event(header)
            await in_worker_thread(placement.set_header)(held.worker_pk, held.session_id,
                                                         {**header, "session_id": held.session_id})
            try:
                while True:
                    woken.clear()
                    await sleep(HEADER_EVERY_S)
                    publisher.event(header)  # for viewers that joined after it was sent
                    stage.holding = held.draining
                    if relay is not None and relay in stage.viewers and not relay.wanted:
                        stage.remove(relay)  # no web process has stream viewers any more
                    if publisher.stopped == "failed":
                        raise RuntimeError("the session's stage failed")
                    current = await look()
                    if ended.is_set() or current.ready is None or frames_version(current.ready) != frames.version:
                        break
            finally:
                held.stage = None
                stages.leave(stage, publisher)
    finally:
        if relay is not None:
            relay.close()
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await layer.group_discard(group, channel)
        await layer.group_discard(stage_group(held.session_id), channel)


def _waiting_picture(still_of: str | None) -> np.ndarray:
    if still_of:
        try:
            jpeg = storage.read_prepared(still_of, "preview.jpg")
            picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            if picture is not None:
                return i420_of(picture)
        except OSError:
            pass
    return i420_of(np.zeros((360, 640, 3), np.uint8))
