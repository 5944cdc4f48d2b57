"""/ws/sessions/<session_id>/: a session's avatar, live: timestamped video and audio on one clock,
and the utterance events (sessions_app/live/stage.py makes them; this sends them to one viewer)."""

from __future__ import annotations

import asyncio
import json
import logging
import struct

import numpy as np

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from avatars import storage
from common.channels import remember_server_loop
from common.socket_auth import CLOSE_NOT_AUTHENTICATED, CLOSE_NOT_FOUND, refuse, still_allowed
from sessions_app import services
from sessions_app.live.frames import AvatarFrames, frames_version
from sessions_app.live.stage import Viewer, media_message, stages
from sessions_app.live.watcher import (
    CHECK_EVERY_S,
    WAIT_LOOK_EVERY_S,
    KeyRevoked,
    Look,
    Touches,
    canonical_id,
    join_stage,
    look_at,
    renderer_description,
    viewers,
)

logger = logging.getLogger(__name__)

CLOSE_TOO_MANY_VIEWERS = 4429
CLOSE_TOO_SLOW = 1013  # "try again later": the viewer could not take the media as fast as it plays


class ViewerLeft(Exception):
    """A send found the viewer's connection gone: a normal leave, not a failure."""


class SessionStreamConsumer(AsyncWebsocketConsumer):
    """A session's stream. While its avatar is still being prepared: the preview of another ready
    avatar of the tutor as one video message (time 0), when there is one, and JSON messages
    {"type": "waiting", "avatar_id", "avatar_state", "stage", "progress"} (once, then on every
    change). Once it is ready: a JSON header {"type": "session", "avatar_id", "fps", "width",
    "height", "frame_count", "audio_rate"}, then binary media messages (b"V" + 8-byte big-endian
    presentation time in microseconds + JPEG; b"A" + time + 16-bit little-endian mono PCM at
    audio_rate), one of each per frame, and JSON events utterance.started / utterance.ended.
    When the tutor switches to a new avatar, a new header and that avatar's media follow (its
    clock starts again at 0). When the session ends: {"type": "ended", "reason"}, then close 4404
    (also at once for an unknown or ended session)."""

    streamer: asyncio.Task | None = None
    viewing = False
    stage = None  # the stage streaming to it now: the student's audio goes to it

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """The student's microphone: binary `A` messages as the server's (b"A", 8-byte big-endian
        time in µs on the sender's clock, 16-bit little-endian mono PCM at the header's
        audio_rate). Anything else from the viewer is ignored, as is audio before the header."""
        if (not bytes_data or bytes_data[:1] != b"A" or len(bytes_data) < 11 or self.stage is None
                or not settings.SESSION_LISTEN):
            return
        pts = struct.unpack(">Q", bytes_data[1:9])[0]
        payload = bytes_data[9:9 + (len(bytes_data) - 9) // 2 * 2]
        try:
            self.stage.hear(pts, np.frombuffer(payload, "<i2"), settings.SESSION_AUDIO_RATE)
        except Exception:  # hearing failed: the stream goes on
            logger.exception("stream of session %s: the student's audio could not be heard", self.session_id)

    async def connect(self) -> None:
        self.session_id = canonical_id(self.scope["url_route"]["kwargs"]["session_id"])
        if not self.scope.get("socket_allowed"):  # common.socket_auth's middleware decided
            await refuse(self, CLOSE_NOT_AUTHENTICATED)
            return
        remember_server_loop(asyncio.get_running_loop())
        self.woken = asyncio.Event()
        try:
            look = await self._look(touch=True)
        except KeyRevoked:
            await refuse(self, CLOSE_NOT_AUTHENTICATED)
            return
        if look is None or look.ended_reason is not None:
            await refuse(self, CLOSE_NOT_FOUND)
            return
        if not viewers.join(self.session_id):
            await refuse(self, CLOSE_TOO_MANY_VIEWERS)
            return
        self.viewing = True
        await self.accept()
        self.group = services.group_name(self.session_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.streamer = asyncio.create_task(self._run(look))

    async def send(self, text_data=None, bytes_data=None, close=False) -> None:
        try:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        except OSError as error:  # the server's "client disconnected" (uvicorn's is an OSError)
            raise ViewerLeft() from error

    def _free_place(self) -> None:
        if self.viewing:
            self.viewing = False
            viewers.leave(self.session_id)

    async def disconnect(self, code) -> None:
        self._free_place()
        if self.streamer is not None:
            self.streamer.cancel()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def session_ended(self, event) -> None:
        if self.streamer is not None:
            self.streamer.cancel()
        await self._end(event.get("reason", "ended"))

    async def session_avatar_changed(self, event) -> None:
        self.woken.set()  # the avatar became ready, or the tutor switched: look now

    async def session_speak(self, event) -> None:
        stages.speak(self.session_id)

    async def session_interrupt(self, event) -> None:
        stages.interrupt(self.session_id, int(event["up_to"]))

    async def _end(self, reason: str) -> None:
        await self.send(text_data=json.dumps({"type": "ended", "session_id": self.session_id, "reason": reason}))
        await self.close(code=CLOSE_NOT_FOUND)

    async def _run(self, look: Look) -> None:
        try:
            while True:
                if look.closed:
                    return
                if look.ended_reason is not None:
                    await self._end(look.ended_reason)
                    return
                if look.ready is None:
                    look = await self._wait(look)
                else:
                    look = await self._stream(await database_sync_to_async(AvatarFrames.of)(look.ready))
        except asyncio.CancelledError:
            raise
        except ViewerLeft:
            logger.info("stream of session %s: the viewer left", self.session_id)
        except KeyRevoked:
            logger.info("stream of session %s closed: its API key was revoked", self.session_id)
            await self.close(code=CLOSE_NOT_AUTHENTICATED)
        except Exception:
            logger.exception("stream of session %s failed", self.session_id)
            await self.close(code=1011)

    async def _wait(self, look: Look) -> Look:
        """Say the session waits for its avatar, and again whenever that changes, until it is
        ready, fails, or the session ends."""
        shown = None
        if look.still_of:  # a still of the tutor while it waits: one JPEG, like a frame
            still = await database_sync_to_async(storage.read_prepared)(look.still_of, "preview.jpg")
            await self.send(bytes_data=media_message(b"V", 0, still))
        loop = asyncio.get_running_loop()
        touches = Touches(loop.time())
        while look.ready is None and look.ended_reason is None:
            if look.waiting != shown:
                shown = look.waiting
                await self.send(text_data=json.dumps({"type": "waiting", "session_id": self.session_id, **shown}))
            self.woken.clear()
            try:
                async with asyncio.timeout(WAIT_LOOK_EVERY_S):  # not wait_for: see _stream
                    await self.woken.wait()
            except TimeoutError:
                pass
            look = await self._look(touch=touches.due(loop.time())) or Look(ended_reason="ended")
        return look

    async def _stream(self, frames: AvatarFrames) -> Look:
        """Send the session's media until it ends or shows another avatar; what was then seen."""
        rate = settings.SESSION_AUDIO_RATE
        viewer = Viewer()
        # Joined first, so the header can say what draws the mouth (the stage's media waits in the
        # viewer's queue until the header is sent).
        stage = self.stage = await join_stage(self.session_id, frames, viewer)
        await self.send(text_data=json.dumps({
            "type": "session", "session_id": self.session_id, "avatar_id": frames.avatar_id,
            "fps": frames.fps, "width": frames.width, "height": frames.height, "frame_count": frames.frame_count,
            "audio_rate": rate, "renderer": renderer_description(stage.renderer),
        }))
        watchdog = asyncio.create_task(self._close_when_behind(viewer))
        loop = asyncio.get_running_loop()
        next_check = loop.time()
        touches = Touches(next_check, at_once=True)
        self.woken.clear()
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
                    # cancellation that lands as the wait ends, and this loop then ran on after
                    # its socket closed (seen: a test's event loop never finished closing).
                    async with asyncio.timeout(CHECK_EVERY_S):
                        kind, item = await viewer.queue.get()
                except TimeoutError:
                    kind = None
                if kind == "media":
                    await self.send(bytes_data=item)
                elif kind == "event":
                    await self.send(text_data=json.dumps({**item, "session_id": self.session_id}))
                elif kind == "gone":
                    look = await self._look(touch=False)
                    if look is None or look.ready is None or frames_version(look.ready) != frames.version:
                        return look or Look(ended_reason="ended")
                    raise RuntimeError("the avatar's frames cannot be read")
                elif kind == "failed":
                    raise RuntimeError("the session's stage failed")
                now = loop.time()
                if now >= next_check or self.woken.is_set():
                    next_check = now + CHECK_EVERY_S
                    self.woken.clear()
                    look = await self._look(touch=touches.due(now))
                    if look is None or look.ready is None or frames_version(look.ready) != frames.version:
                        return look or Look(ended_reason="ended")
        finally:
            self.stage = None
            watchdog.cancel()
            stages.leave(stage, viewer)

    async def _close_when_behind(self, viewer: Viewer) -> None:
        """Close a viewer that fell VIEWER_BACKLOG_LIMIT messages (~4 s) behind, whatever its
        socket does. The stream's own loop cannot: a viewer that stops reading fills the socket's
        buffers, and the server then holds `send()` (back-pressure) for as long as the viewer
        does not read, so a check after the send never ran and four such viewers held every
        place for good. Here the place is freed first and the stream stopped; the close frame
        goes out whenever the socket takes it (a viewer that reads again sees 1013), and the
        server itself drops a connection whose writes stay stalled (SERVER_WS_SEND_STALL_S,
        tutorplatform/server.py), which ends that wait."""
        await viewer.behind.wait()
        logger.info("stream of session %s closed: the viewer fell behind", self.session_id)
        self._free_place()
        if self.streamer is not None:
            self.streamer.cancel()  # this watcher is cancelled with it: nothing below awaits
        self.closing = asyncio.create_task(self._close_quietly(CLOSE_TOO_SLOW))

    async def _close_quietly(self, code: int) -> None:
        try:
            await self.close(code=code)
        except OSError:  # the connection was dropped first
            pass

    @database_sync_to_async
    def _look(self, touch: bool) -> Look | None:
        return look_at(self.session_id, touch, lambda: still_allowed(self.scope))
