"""/ws/sessions/<session_id>/: a session's avatar, live: timestamped video and audio on one clock,
and the session's events, over one WebSocket (live/watcher.py runs the session; this carries it)."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from urllib.parse import parse_qs

import numpy as np
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from common.channels import remember_server_loop
from common.socket_auth import CLOSE_NOT_AUTHENTICATED, CLOSE_NOT_FOUND, refuse, still_allowed
from sessions_app.errors import ViewerLeft
from sessions_app.live.watcher import (
    ENDED,
    FAILED,
    NOT_FOUND,
    REVOKED,
    TOO_MANY_VIEWERS,
    TOO_SLOW,
    LiveViewer,
    SessionWatcher,
    canonical_id,
)

logger = logging.getLogger(__name__)

CLOSE_TOO_MANY_VIEWERS = 4429
CLOSE_TOO_SLOW = 1013  # "try again later": the viewer could not take the media as fast as it plays
CLOSE_FAILED = 1011
CLOSE_CODES = {ENDED: CLOSE_NOT_FOUND, NOT_FOUND: CLOSE_NOT_FOUND, REVOKED: CLOSE_NOT_AUTHENTICATED,
               TOO_MANY_VIEWERS: CLOSE_TOO_MANY_VIEWERS, TOO_SLOW: CLOSE_TOO_SLOW, FAILED: CLOSE_FAILED}
# A viewer this many messages behind (about 4 s of media at 25 fps) is too slow to follow.
VIEWER_BACKLOG_LIMIT = 200


def media_message(kind: bytes, pts: int, payload: bytes) -> bytes:
    """One binary message: the kind (b"V" JPEG, b"A" PCM), the presentation time (µs, 8 bytes
    big-endian), the payload."""
    return kind + struct.pack(">Q", pts) + payload


class SocketViewer(LiveViewer):
    """The session for one socket: its messages in order (media and JSON), in a queue that the
    socket's sender drains, VIEWER_BACKLOG_LIMIT at most."""

    wants_jpeg = True

    def __init__(self, consumer: "SessionStreamConsumer", media: bool = True) -> None:
        self.consumer = consumer
        self.queue: asyncio.Queue = asyncio.Queue()
        # ?media=none: the socket carries the events (and the student's microphone up) only, for
        # a page whose picture and sound come over WebRTC through the media server.
        self.media = media
        self.wants_jpeg = media

    def _put(self, item: tuple) -> None:
        if self.queue.qsize() >= VIEWER_BACKLOG_LIMIT:
            self.too_slow = True
            return
        self.queue.put_nowait(item)

    def frame(self, first_sample, pts, jpeg, i420, audio) -> None:
        if not self.media:
            return
        self._put(("bytes", media_message(b"V", pts, jpeg)))
        self._put(("bytes", media_message(b"A", pts, audio.astype("<i2").tobytes())))

    def event(self, event: dict) -> None:
        self._put(("text", json.dumps(event)))

    def still(self, jpeg: bytes | None) -> None:
        if jpeg and self.media:  # a still of the tutor while it waits: one JPEG, like a frame, at time 0
            self._put(("bytes", media_message(b"V", 0, jpeg)))

    async def close(self, reason: str) -> None:
        if reason == TOO_SLOW:
            self.consumer.close_at_once(CLOSE_CODES[reason])
        else:  # after what is queued (an "ended" event)
            self.queue.put_nowait(("close", CLOSE_CODES[reason]))


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
    (also at once for an unknown or ended session). With ?media=none: the JSON messages only (and
    the microphone up), for a client whose media come another way (WebRTC)."""

    watcher: SessionWatcher | None = None
    sender: asyncio.Task | None = None

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """The student's microphone: binary `A` messages as the server's (b"A", 8-byte big-endian
        time in µs on the sender's clock, 16-bit little-endian mono PCM at the header's
        audio_rate). Anything else from the viewer is ignored, as is audio before the header."""
        if not bytes_data or bytes_data[:1] != b"A" or len(bytes_data) < 11 or self.watcher is None:
            return
        pts = struct.unpack(">Q", bytes_data[1:9])[0]
        payload = bytes_data[9:9 + (len(bytes_data) - 9) // 2 * 2]
        self.watcher.hear(pts, np.frombuffer(payload, "<i2"), settings.SESSION_AUDIO_RATE)

    async def connect(self) -> None:
        session_id = canonical_id(self.scope["url_route"]["kwargs"]["session_id"])
        if not self.scope.get("socket_allowed"):  # common.socket_auth's middleware decided
            await refuse(self, CLOSE_NOT_AUTHENTICATED)
            return
        remember_server_loop(asyncio.get_running_loop())
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.viewer = SocketViewer(self, media=(query.get("media") or [""])[0] != "none")
        watcher = SessionWatcher(session_id, self.viewer, allowed=lambda: still_allowed(self.scope), name="stream")
        refusal = await watcher.open()
        if refusal is not None:
            await refuse(self, CLOSE_CODES[refusal])
            return
        self.watcher = watcher
        await self.accept()
        self.sender = asyncio.create_task(self._send_queued())
        watcher.start()

    async def send(self, text_data=None, bytes_data=None, close=False) -> None:
        try:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        except OSError as error:  # the server's "client disconnected" (uvicorn's is an OSError)
            raise ViewerLeft() from error

    async def disconnect(self, code) -> None:
        if self.sender is not None:
            self.sender.cancel()
        if self.watcher is not None:
            await self.watcher.stop()

    async def _send_queued(self) -> None:
        queue = self.viewer.queue
        try:
            while True:
                kind, item = await queue.get()
                if kind == "bytes":
                    await self.send(bytes_data=item)
                elif kind == "text":
                    await self.send(text_data=item)
                else:
                    await self.close(code=item)
                    return
        except ViewerLeft:
            logger.info("stream of session %s: the viewer left", self.watcher.session_id)
            await self.watcher.stop()

    def close_at_once(self, code: int) -> None:
        """Close a viewer that fell VIEWER_BACKLOG_LIMIT messages (~4 s) behind, whatever its
        socket does. The sender cannot wait its turn: a viewer that stops reading fills the
        socket's buffers, and the server then holds `send()` (back-pressure) for as long as the
        viewer does not read, so four such viewers held every place for good. The watcher has
        freed the place and left the stage already; the close frame goes out whenever the socket
        takes it (a viewer that reads again sees 1013), and the server itself drops a connection
        whose writes stay stalled (SERVER_WS_SEND_STALL_S, tutorplatform/server.py), which ends
        that wait."""
        if self.sender is not None:
            self.sender.cancel()
        self.closing = asyncio.create_task(self._close_quietly(code))

    async def _close_quietly(self, code: int) -> None:
        try:
            await self.close(code=code)
        except OSError:  # the connection was dropped first
            pass
