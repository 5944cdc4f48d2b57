"""/ws/sessions/<session_id>/: a session's avatar frames, streamed at the avatar's frame rate."""

from __future__ import annotations

import asyncio
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from avatars.models import Avatar, AvatarState
from common.channels import remember_server_loop
from common.socket_auth import CLOSE_NOT_AUTHENTICATED, CLOSE_NOT_FOUND, refuse
from sessions_app import services
from sessions_app.frames import AvatarFrames, jpeg_frame, ping_pong
from sessions_app.models import SessionState

logger = logging.getLogger(__name__)

# While streaming: how often the session is marked active, and how often its state is re-read
# (in case the "ended" message was missed, e.g. sent from another process on the in-memory layer).
TOUCH_EVERY_S = 30.0
CHECK_EVERY_S = 5.0


class SessionStreamConsumer(AsyncWebsocketConsumer):
    """First a JSON header {"type": "session", "fps", "width", "height", "frame_count"}, then the
    frames as binary JPEG messages paced at the avatar's fps, forward then backward. Closes with
    4404 when the session is unknown, ended, or ends while watched."""

    streamer: asyncio.Task | None = None

    async def connect(self) -> None:
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        if not self.scope.get("socket_allowed"):  # common.socket_auth's middleware decided
            await refuse(self, CLOSE_NOT_AUTHENTICATED)
            return
        remember_server_loop(asyncio.get_running_loop())
        frames = await self._frames()
        await self.accept()
        if frames is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = services.group_name(self.session_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send(text_data=json.dumps({
            "type": "session", "session_id": self.session_id, "avatar_id": frames.avatar_id,
            "fps": frames.fps, "width": frames.width, "height": frames.height, "frame_count": frames.frame_count,
        }))
        self.streamer = asyncio.create_task(self._stream(frames))

    async def disconnect(self, code) -> None:
        if self.streamer is not None:
            self.streamer.cancel()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def session_ended(self, event) -> None:
        if self.streamer is not None:
            self.streamer.cancel()
        await self.close(code=CLOSE_NOT_FOUND)

    async def _stream(self, frames: AvatarFrames) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / frames.fps
        start = next_check = next_touch = loop.time()
        step = 0
        try:
            while True:
                await self.send(bytes_data=await jpeg_frame(frames, ping_pong(step, frames.frame_count)))
                step += 1
                now = loop.time()
                if now >= next_check:
                    next_check = now + CHECK_EVERY_S
                    if not await self._still_active(touch=now >= next_touch):
                        await self.close(code=CLOSE_NOT_FOUND)
                        return
                    if now >= next_touch:
                        next_touch = now + TOUCH_EVERY_S
                delay = start + step * interval - now
                if delay < -1.0:
                    start = now - step * interval  # fell a second behind: carry on, don't burst
                await asyncio.sleep(max(0.0, delay))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("stream of session %s failed", self.session_id)
            await self.close(code=1011)

    @database_sync_to_async
    def _frames(self) -> AvatarFrames | None:
        session = services.session_or_none(self.session_id)
        if session is None or session.state != SessionState.ACTIVE:
            return None
        avatar = Avatar.objects.filter(avatar_id=session.avatar_id, state=AvatarState.READY).first()
        if avatar is None:
            return None
        services.touch(session)
        return AvatarFrames.of(avatar)

    @database_sync_to_async
    def _still_active(self, touch: bool) -> bool:
        session = services.session_or_none(self.session_id)
        if session is None or session.state != SessionState.ACTIVE:
            return False
        if touch:
            services.touch(session)
            services.end_idle_sessions()
        return True
