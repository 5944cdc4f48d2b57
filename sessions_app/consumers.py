"""/ws/sessions/<session_id>/: a session's avatar, live: timestamped video and audio on one clock,
and the utterance events (sessions_app/stage.py makes them; this sends them to one viewer)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from avatars import storage
from avatars.models import ACTIVE_STATES, Avatar, AvatarState
from common.channels import remember_server_loop
from common.socket_auth import CLOSE_NOT_AUTHENTICATED, CLOSE_NOT_FOUND, refuse, still_allowed
from sessions_app import services
from sessions_app.frames import AvatarFrames, avatar_material, frames_version
from sessions_app.models import SessionState
from sessions_app.speech.renderer import load_renderer
from sessions_app.stage import Viewer, media_message, stages

logger = logging.getLogger(__name__)

# While streaming: how often the session is marked active, and how often its state is re-read
# (in case the "ended" message was missed, e.g. sent from another process on the in-memory layer).
TOUCH_EVERY_S = 30.0
CHECK_EVERY_S = 5.0
WAIT_LOOK_EVERY_S = 1.0  # while waiting for the avatar: how often its state is read again
CLOSE_TOO_MANY_VIEWERS = 4429
CLOSE_TOO_SLOW = 1013  # "try again later": the viewer could not take the media as fast as it plays


class Viewers:
    """Streams open per session in this process, at most SESSION_MAX_VIEWERS each: every viewer
    costs the server a paced stream of frames."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def join(self, session_id: str) -> bool:
        with self._lock:
            count = self._counts.get(session_id, 0)
            if count >= settings.SESSION_MAX_VIEWERS:
                return False
            self._counts[session_id] = count + 1
            return True

    def leave(self, session_id: str) -> None:
        with self._lock:
            left = self._counts.get(session_id, 1) - 1
            if left > 0:
                self._counts[session_id] = left
            else:
                self._counts.pop(session_id, None)


viewers = Viewers()


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

    async def connect(self) -> None:
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
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

    async def disconnect(self, code) -> None:
        if self.viewing:
            self.viewing = False
            viewers.leave(self.session_id)
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
        for stage in stages.of_session(self.session_id):
            stage.speak()

    async def session_interrupt(self, event) -> None:
        for stage in stages.of_session(self.session_id):
            stage.interrupt(int(event["up_to"]))

    async def _end(self, reason: str) -> None:
        await self.send(text_data=json.dumps({"type": "ended", "session_id": self.session_id, "reason": reason}))
        await self.close(code=CLOSE_NOT_FOUND)

    async def _run(self, look: "Look") -> None:
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
        except KeyRevoked:
            logger.info("stream of session %s closed: its API key was revoked", self.session_id)
            await self.close(code=CLOSE_NOT_AUTHENTICATED)
        except Exception:
            logger.exception("stream of session %s failed", self.session_id)
            await self.close(code=1011)

    async def _wait(self, look: "Look") -> "Look":
        """Say the session waits for its avatar, and again whenever that changes, until it is
        ready, fails, or the session ends."""
        shown = None
        if look.still_of:  # a still of the tutor while it waits: one JPEG, like a frame
            still = await database_sync_to_async(storage.read_prepared)(look.still_of, "preview.jpg")
            await self.send(bytes_data=media_message(b"V", 0, still))
        loop = asyncio.get_running_loop()
        next_touch = loop.time() + TOUCH_EVERY_S
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
            touch = loop.time() >= next_touch
            if touch:
                next_touch = loop.time() + TOUCH_EVERY_S
            look = await self._look(touch=touch) or Look(ended_reason="ended")
        return look

    async def _stream(self, frames: AvatarFrames) -> "Look":
        """Send the session's media until it ends or shows another avatar; what was then seen."""
        rate = settings.SESSION_AUDIO_RATE
        await self.send(text_data=json.dumps({
            "type": "session", "session_id": self.session_id, "avatar_id": frames.avatar_id,
            "fps": frames.fps, "width": frames.width, "height": frames.height, "frame_count": frames.frame_count,
            "audio_rate": rate,
        }))
        renderer = None  # join reuses the running stage; only when none runs is a renderer made
        if stages.running(self.session_id, frames) is None:
            renderer = await database_sync_to_async(make_renderer)(frames)
        # No await between the look above (when a stage ran) and join: it is still running.
        viewer = Viewer()
        stage = stages.join(self.session_id, frames, renderer, rate, viewer)
        loop = asyncio.get_running_loop()
        next_check = next_touch = loop.time()
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
                if viewer.too_slow:
                    logger.info("stream of session %s closed: the viewer fell behind", self.session_id)
                    await self.close(code=CLOSE_TOO_SLOW)
                    return Look(closed=True)
                now = loop.time()
                if now >= next_check or self.woken.is_set():
                    next_check = now + CHECK_EVERY_S
                    self.woken.clear()
                    look = await self._look(touch=now >= next_touch)
                    if now >= next_touch:
                        next_touch = now + TOUCH_EVERY_S
                    if look is None or look.ready is None or frames_version(look.ready) != frames.version:
                        return look or Look(ended_reason="ended")
        finally:
            stages.leave(stage, viewer)

    @database_sync_to_async
    def _look(self, touch: bool) -> "Look | None":
        """The session as it stands: None when unknown; its end; its avatar when ready; else what
        it waits for. Ends the session when its avatar will never be ready."""
        if not still_allowed(self.scope):
            raise KeyRevoked()
        session = services.session_or_none(self.session_id)
        if session is None:
            return None
        if session.state != SessionState.ACTIVE:
            return Look(ended_reason=session.end_reason or "ended")
        if touch:
            services.touch(session)
            services.end_idle_sessions()
        avatar = Avatar.objects.filter(avatar_id=session.avatar_id).first()
        if avatar is None or avatar.state not in (AvatarState.READY, *ACTIVE_STATES):
            services.end_session(session.session_id, reason="avatar_failed" if avatar else "avatar_deleted")
            return Look(ended_reason="avatar_failed" if avatar else "avatar_deleted")
        if avatar.state == AvatarState.READY:
            return Look(ready=avatar)
        return Look(waiting={"avatar_id": avatar.avatar_id, "avatar_state": avatar.state, "stage": avatar.stage,
                             "progress": round(avatar.progress, 1)},
                    still_of=_still_of(session.tutor_id, avatar.avatar_id))


def _still_of(tutor_id: int, waiting_for: str) -> str | None:
    """A ready avatar of the tutor whose preview can stand in while the session waits, if any."""
    ready = Avatar.objects.filter(tutor_id=tutor_id, state=AvatarState.READY).exclude(avatar_id=waiting_for)
    return ready.order_by("-ready_at").values_list("avatar_id", flat=True).first()


def make_renderer(frames: AvatarFrames):
    """The SESSION_RENDERER for the avatar (reads its prepared material: blocking)."""
    return load_renderer(settings.SESSION_RENDERER, avatar_material(frames))


class KeyRevoked(Exception):
    """The API key the socket was opened with has been revoked since."""


@dataclass(frozen=True)
class Look:
    ready: Avatar | None = None
    waiting: dict | None = None
    still_of: str | None = None
    ended_reason: str | None = None
    closed: bool = False
