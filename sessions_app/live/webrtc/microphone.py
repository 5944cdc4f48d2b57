"""The student's microphone over WebRTC when the session's media come from the media server.

Janus's Streaming mountpoints only send to their viewers, so a viewer watching through the media
server cannot send its microphone on that connection. It sends it on a second, audio-only peer
connection to any web process (POST /v1/sessions/{id}/microphone: the viewer offers `sendonly`
audio, this answers `recvonly`); what arrives is passed on, in order, to the session's stage on its
stage worker over the channel layer (sessions_app/live/relay.py's HeardRelay), where it is heard as
a microphone on the session's own WebRTC connection is in one process.

The peer closes when the viewer closes it or vanishes (ICE consent, ~30 s), when it never
connects (SESSION_WEBRTC_CONNECT_TIMEOUT_S), and when a look every CHECK_EVERY_S finds the session
ended or the API key revoked. It holds one of the session's viewer places meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from django.conf import settings

from common.db_threads import in_worker_thread
from sessions_app import services
from sessions_app.live.relay import HeardRelay
from sessions_app.live.watcher import CHECK_EVERY_S, viewers
from sessions_app.live.webrtc.media import hear_track
from sessions_app.live.webrtc.peers import answer_on_media_loop, ice_servers
from sessions_app.models import SessionState

logger = logging.getLogger(__name__)

microphones: set["MicrophonePeer"] = set()  # this process's open microphone connections


class MicrophonePeer:
    def __init__(self, session_id: str, allowed: Callable[[], bool]) -> None:
        self.session_id = session_id
        self.allowed = allowed
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers()))
        self.incoming = MediaBlackhole()  # anything but one audio track is read and dropped
        self.heard: HeardRelay | None = None
        self.connected = False
        self.closed = False
        self.tasks: list[asyncio.Task] = []

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        pc = self.pc
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_state)
        await pc.setRemoteDescription(offer)
        await pc.setLocalDescription(await pc.createAnswer())
        await self.incoming.start()
        self.tasks.append(asyncio.create_task(self._close_unless_connected()))
        self.tasks.append(asyncio.create_task(self._follow_the_session()))
        return pc.localDescription

    def _on_track(self, track) -> None:
        if track.kind == "audio" and self.heard is None:
            self.heard = HeardRelay(self.session_id)
            self.tasks.append(asyncio.create_task(self._hear(track)))
        else:
            self.incoming.addTrack(track)

    async def _hear(self, track) -> None:
        try:
            await hear_track(track, self.heard.hear)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("microphone of session %s: its audio could not be passed on", self.session_id)

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.connected = True
        elif state in ("failed", "closed"):
            await self.close()

    async def _close_unless_connected(self) -> None:
        await asyncio.sleep(settings.SESSION_WEBRTC_CONNECT_TIMEOUT_S)
        if not self.connected:
            logger.info("microphone of session %s never connected: closed", self.session_id)
            await self.close()

    async def _follow_the_session(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            if not await in_worker_thread(_still_on)(self.session_id, self.allowed):
                await self.close()
                return

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        microphones.discard(self)
        viewers.leave(self.session_id)
        current = asyncio.current_task()
        tasks = [task for task in self.tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.heard is not None:
            self.heard.close()
        await self.incoming.stop()
        await self.pc.close()


def _still_on(session_id: str, allowed: Callable[[], bool]) -> bool:
    session = services.session_or_none(session_id)
    return session is not None and session.state == SessionState.ACTIVE and allowed()


def start_microphone(session_id: str, offer: RTCSessionDescription, allowed: Callable[[], bool]) -> RTCSessionDescription:
    """Answer a microphone's offer (blocking; from a request's thread). The caller has taken the
    viewer place; a failure here closes the peer (which frees it) and re-raises."""
    return answer_on_media_loop(lambda: MicrophonePeer(session_id, allowed), microphones, offer)


async def close_all() -> None:
    await asyncio.gather(*(peer.close() for peer in list(microphones)), return_exceptions=True)
