"""A session watched over WebRTC: one peer connection per viewer, living on the server's event loop.

A SessionPeer answers the viewer's offer with one video and one audio track (those the offer
asks to receive). Once the connection is up, a SessionWatcher (live/watcher.py) runs the session
for it as for a WebSocket stream: the peer is its LiveViewer, whose frames go to the tracks
(live/webrtc/media.py) and whose events go to the data channel. While the avatar is being
prepared the tracks carry the tutor's still (or black) and silence, WAITING_FPS times a second.
The peer closes when the watcher is done with it (the session ended, its key was revoked, it fell
behind) or when the viewer goes (it closed the connection, or vanished: ICE consent checks, every
~5 s, fail it after six misses, ~30 s). A data channel the viewer opens gets the session's JSON
events: the header, waiting, utterance.started/ended (with the media time of the stage's clock),
ended.

The peer connections of a process are on one event loop: the server's (the ASGI lifespan
remembers it), or, where no ASGI server runs one (WSGI, the test client), a loop of this module's
own in a thread, which then also carries the channel layer's sends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from typing import Callable

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from django.conf import settings

from common.channels import remember_server_loop, server_loop
from sessions_app.live.watcher import LiveViewer, SessionWatcher
from sessions_app.live.webrtc.addresses import offer_only
from sessions_app.live.webrtc.media import PeerFeed, hear_track

logger = logging.getLogger(__name__)

# While the avatar is being prepared: the still (or a black picture) this many times a second.
WAITING_FPS = 5
# Events kept for a data channel not open yet (it opens ~0.1 s after the media starts; a client
# that opens none never gets them, and only the newest are kept).
UNSENT_EVENTS = 32

peers: set["SessionPeer"] = set()  # the open peer connections of this process


class SessionPeer(LiveViewer):
    wants_i420 = True
    still_fps = WAITING_FPS  # the tracks never pause: the still comes as frames while the avatar is prepared

    def __init__(self, session_id: str, allowed: Callable[[], bool]) -> None:
        self.session_id = session_id
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers()))
        self.feed = PeerFeed(settings.SESSION_AUDIO_RATE)
        self.incoming = MediaBlackhole()  # video the viewer sends is read and dropped, never kept
        # The offer's request took its viewer place (to answer 429 at once); the watcher frees it.
        # `allowed()`: still let in? (an API key can be revoked meanwhile)
        self.watcher = SessionWatcher(session_id, self, allowed=allowed, place_taken=True, name="WebRTC viewer")
        self.hearing: asyncio.Task | None = None  # reads the viewer's audio track
        self.channel = None  # the viewer's data channel, when it opened one
        self.unsent: deque[str] = deque(maxlen=UNSENT_EVENTS)  # events from before it opened
        self.closed = False
        self.connected = False
        self.watchdog: asyncio.Task | None = None

    # --- signalling ----------------------------------------------------------------------------
    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        pc = self.pc
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_state)
        await pc.setRemoteDescription(offer)
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video" and not self.feed.sends_video:
                pc.addTrack(self.feed.video)
                self.feed.sends_video = True
            elif transceiver.kind == "audio" and not self.feed.sends_audio:
                pc.addTrack(self.feed.audio)
                self.feed.sends_audio = True
        await pc.setLocalDescription(await pc.createAnswer())
        await self.incoming.start()
        self.watchdog = asyncio.create_task(self._close_unless_connected())
        return pc.localDescription

    def _on_track(self, track) -> None:
        """The viewer sends media (a `sendrecv` offer): its audio is the student's microphone."""
        if track.kind == "audio" and settings.SESSION_LISTEN and self.hearing is None:
            self.hearing = asyncio.create_task(self._hear(track))
        else:
            self.incoming.addTrack(track)

    async def _hear(self, track) -> None:
        try:
            # Before the avatar streams there is nobody to talk to yet.
            await hear_track(track, self.watcher.hear, lambda: self.watcher.stage is not None)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("WebRTC viewer of session %s: its audio could not be heard", self.session_id)

    def _on_datachannel(self, channel) -> None:
        """The viewer's channel is open (aiortc announces it then): what waited for it goes first."""
        self.channel = channel
        while self.unsent and channel.readyState == "open":
            channel.send(self.unsent.popleft())

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and not self.connected and not self.closed:
            self.connected = True
            self.watcher.start()
        elif state in ("failed", "closed"):  # aiortc has no "disconnected": ICE consent checks fail it
            await self.close()

    async def _close_unless_connected(self) -> None:
        await asyncio.sleep(settings.SESSION_WEBRTC_CONNECT_TIMEOUT_S)
        if not self.connected:
            logger.info("WebRTC viewer of session %s never connected: closed", self.session_id)
            await self.close()

    # --- the session (what its watcher calls) --------------------------------------------------
    @property
    def too_slow(self) -> bool:
        return self.feed.too_slow

    def frame(self, first_sample, pts, jpeg, i420, audio) -> None:
        self.feed.frame(first_sample, pts, jpeg, i420, audio)

    def new_clock(self) -> None:
        self.feed.new_segment()

    def event(self, event: dict) -> None:
        message = json.dumps(event)
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            channel.send(message)
        elif channel is None:  # the channel opens after the media starts: keep the first events for it
            self.unsent.append(message)

    async def close(self, reason: str | None = None) -> None:
        """Close the connection and its tracks; its watcher leaves the stage and the group and
        frees the place (idempotent)."""
        if self.closed:
            return
        self.closed = True
        peers.discard(self)
        await self.watcher.stop()
        current = asyncio.current_task()
        tasks = [task for task in (self.watchdog, self.hearing) if task is not None and task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.feed.stop()
        await self.incoming.stop()
        await self.pc.close()


def ice_servers() -> list[RTCIceServer]:
    return [RTCIceServer(urls=server["urls"], username=server.get("username"), credential=server.get("credential"))
            for server in settings.SESSION_WEBRTC_ICE_SERVERS]


# --- the loop the peer connections live on ------------------------------------------------------
_own_loop: asyncio.AbstractEventLoop | None = None
_own_loop_lock = threading.Lock()


def media_loop() -> asyncio.AbstractEventLoop:
    """The server's running event loop, or this module's own where no server runs one."""
    global _own_loop
    loop = server_loop()
    if loop is not None and loop.is_running():
        return loop
    with _own_loop_lock:
        if _own_loop is None:
            _own_loop = asyncio.new_event_loop()
            threading.Thread(target=_own_loop.run_forever, name="webrtc", daemon=True).start()
        remember_server_loop(_own_loop)  # the channel layer's sends must reach the peers' loop
        return _own_loop


def start_peer(session_id: str, offer: RTCSessionDescription, allowed: Callable[[], bool]) -> RTCSessionDescription:
    """Answer `offer` with a new peer of the session (blocking; from a request's thread). The
    caller has counted the viewer in; a failure here closes the peer again and re-raises."""
    return answer_on_media_loop(lambda: SessionPeer(session_id, allowed), peers, offer)


def answer_on_media_loop(make_peer, registry: set, offer: RTCSessionDescription) -> RTCSessionDescription:
    """`make_peer()` (on the media loop, kept in `registry` until it closes) answers `offer` within
    SESSION_WEBRTC_ANSWER_TIMEOUT_S (blocking; from a request's thread); a failure closes it and
    re-raises."""
    offer_only(settings.SESSION_WEBRTC_HOST_ADDRESSES)

    async def begin() -> RTCSessionDescription:
        peer = make_peer()
        registry.add(peer)
        try:
            async with asyncio.timeout(settings.SESSION_WEBRTC_ANSWER_TIMEOUT_S):
                return await peer.answer(offer)
        except BaseException:
            await peer.close()
            raise

    return asyncio.run_coroutine_threadsafe(begin(), media_loop()).result()


async def close_all() -> None:
    """Close every peer connection of this process (the server is stopping)."""
    await asyncio.gather(*(peer.close() for peer in list(peers)), return_exceptions=True)
