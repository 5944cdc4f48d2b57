"""A session watched over WebRTC: one peer connection per viewer, living on the server's event loop.

A SessionPeer answers the viewer's offer with one video and one audio track (those the offer
asks to receive). Once the connection is up it does what a WebSocket stream does (live/websocket.py),
through sessions_app.live.watcher: it follows the session through its channel-layer group, joins
the session's stage while the avatar is ready (the stage draws once for every viewer), shows a
still while the avatar is being prepared, moves to the tutor's new avatar when it switches, and
closes when the session ends, when its key is revoked, or when the viewer goes (it closed the
connection, or vanished: ICE consent checks, every ~5 s, fail it after six misses, ~30 s). A data channel the viewer opens gets the session's JSON
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

import cv2
import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from channels.layers import get_channel_layer
from django.conf import settings

from avatars import storage
from common.channels import remember_server_loop, server_loop
from common.db_threads import in_worker_thread
from sessions_app import services
from sessions_app.live.frames import AvatarFrames, frames_version
from sessions_app.speech.clock import frame_samples, pts_us
from sessions_app.live.stage import i420_of, stages
from sessions_app.live.watcher import (
    CHECK_EVERY_S,
    WAIT_LOOK_EVERY_S,
    KeyRevoked,
    Look,
    Touches,
    join_stage,
    look_at,
    renderer_description,
    viewers,
)
from sessions_app.live.webrtc.addresses import offer_only
from sessions_app.live.webrtc.media import PeerFeed

logger = logging.getLogger(__name__)

# While the avatar is being prepared: the still (or a black picture) this many times a second.
WAITING_FPS = 5
WAITING_SIZE = (640, 360)  # the black picture's size, when the tutor has no ready avatar to show
# Events kept for a data channel not open yet (it opens ~0.1 s after the media starts; a client
# that opens none never gets them, and only the newest are kept).
UNSENT_EVENTS = 32

peers: set["SessionPeer"] = set()  # the open peer connections of this process


class SessionPeer:
    def __init__(self, session_id: str, allowed: Callable[[], bool]) -> None:
        self.session_id = session_id
        self.allowed = allowed  # still let in? (an API key can be revoked meanwhile)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers()))
        self.feed = PeerFeed(settings.SESSION_AUDIO_RATE, self._from_stage)
        self.incoming = MediaBlackhole()  # video the viewer sends is read and dropped, never kept
        self.stage = None  # the stage streaming to it now: the viewer's microphone goes to it
        self.hearing: asyncio.Task | None = None  # reads the viewer's audio track
        self.channel = None  # the viewer's data channel, when it opened one
        self.unsent: deque[str] = deque(maxlen=UNSENT_EVENTS)  # events from before it opened
        self.woken = asyncio.Event()
        self.stage_stopped: str | None = None  # "gone" or "failed": the stage's clock stopped
        self.closed = False
        self.driver: asyncio.Task | None = None
        self.listener: asyncio.Task | None = None
        self.watchdog: asyncio.Task | None = None
        self.layer_channel: str | None = None

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
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                stage = self.stage
                if stage is None or frame.pts is None:
                    continue  # before the avatar streams: nobody to talk to yet
                samples = frame.to_ndarray().reshape(-1)  # packed 16-bit, channels interleaved
                channels = len(frame.layout.channels)
                if channels > 1:
                    samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
                stage.hear(int(frame.pts * frame.time_base * 1_000_000), samples, frame.sample_rate)
        except MediaStreamError:
            pass  # the track ended
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
        if state == "connected" and self.driver is None and not self.closed:
            self.driver = asyncio.create_task(self._run())
        elif state in ("failed", "closed"):  # aiortc has no "disconnected": ICE consent checks fail it
            await self.close()

    async def _close_unless_connected(self) -> None:
        await asyncio.sleep(settings.SESSION_WEBRTC_CONNECT_TIMEOUT_S)
        if self.driver is None:
            logger.info("WebRTC viewer of session %s never connected: closed", self.session_id)
            await self.close()

    # --- the session ---------------------------------------------------------------------------
    def _event(self, event: dict) -> None:
        message = json.dumps({**event, "session_id": self.session_id})
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            channel.send(message)
        elif channel is None:  # the channel opens after the media starts: keep the first events for it
            self.unsent.append(message)

    def _from_stage(self, item: tuple) -> None:
        kind, body = item
        if kind == "event":
            self._event(body)
        else:  # "gone" or "failed"
            self.stage_stopped = kind
            self.woken.set()

    async def _look(self, touch: bool) -> Look | None:
        return await in_worker_thread(look_at)(self.session_id, touch, self.allowed)

    async def _run(self) -> None:
        try:
            await self._listen()
            look = await self._look(touch=True)
            while not self.closed:
                if look is None or look.ended_reason is not None:
                    self._event({"type": "ended", "reason": look.ended_reason if look else "ended"})
                    return
                if look.ready is None:
                    look = await self._wait(look)
                else:
                    look = await self._stream(await in_worker_thread(AvatarFrames.of)(look.ready))
        except asyncio.CancelledError:
            raise
        except KeyRevoked:
            logger.info("WebRTC viewer of session %s closed: its API key was revoked", self.session_id)
        except Exception:
            logger.exception("WebRTC viewer of session %s failed", self.session_id)
        finally:
            if not self.closed:
                asyncio.create_task(self.close())

    async def _listen(self) -> None:
        """Join the session's group: ended, avatar changes, speak and interrupt reach this peer."""
        layer = get_channel_layer()
        if layer is None:
            return
        self.layer_channel = await layer.new_channel()
        await layer.group_add(services.group_name(self.session_id), self.layer_channel)
        self.listener = asyncio.create_task(self._receive(layer))

    async def _receive(self, layer) -> None:
        while True:
            message = await layer.receive(self.layer_channel)
            kind = message.get("type")
            if kind == "session.ended":
                self._event({"type": "ended", "reason": message.get("reason", "ended")})
                await self.close()
                return
            if kind == "session.avatar_changed":
                self.woken.set()
            elif kind == "session.speak":
                stages.speak(self.session_id)
            elif kind == "session.interrupt":
                stages.interrupt(self.session_id, int(message["up_to"]))

    async def _sleep_unless_woken(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):  # not wait_for: it can swallow a cancel (3.11)
                await self.woken.wait()
        except TimeoutError:
            pass

    async def _wait(self, look: Look) -> Look:
        """While the avatar is being prepared: a still of the tutor (or black) and silence, on the
        timeline the avatar's media then continues; the JSON "waiting" event on every change."""
        picture = await in_worker_thread(_waiting_picture)(look.still_of)
        self.feed.new_segment()
        rate = self.feed.rate
        loop = asyncio.get_running_loop()
        start = next_look = loop.time()
        touches = Touches(start)
        shown = None
        index = 0
        while look.ready is None and look.ended_reason is None:
            if look.waiting != shown:
                shown = look.waiting
                self._event({"type": "waiting", **shown})
            first, end = frame_samples(index, rate, WAITING_FPS)
            self.feed.frame(first, pts_us(first, rate), None, picture, np.zeros(end - first, np.int16))
            index += 1
            self.woken.clear()
            await self._sleep_unless_woken(max(0.0, start + index / WAITING_FPS - loop.time()))
            if self.woken.is_set() or loop.time() >= next_look:
                next_look = loop.time() + WAIT_LOOK_EVERY_S
                look = await self._look(touch=touches.due(loop.time())) or Look(ended_reason="ended")
        return look

    async def _stream(self, frames: AvatarFrames) -> Look:
        """The session's stage feeds the tracks until the session ends or shows another avatar."""
        self.feed.new_segment()
        self.stage_stopped = None
        stage = self.stage = await join_stage(self.session_id, frames, self.feed)
        self._event({"type": "session", "avatar_id": frames.avatar_id, "fps": frames.fps, "width": frames.width,
                     "height": frames.height, "frame_count": frames.frame_count, "audio_rate": self.feed.rate,
                     "renderer": renderer_description(stage.renderer)})
        loop = asyncio.get_running_loop()
        touches = Touches(loop.time())
        try:
            while True:
                self.woken.clear()
                await self._sleep_unless_woken(CHECK_EVERY_S)
                if self.feed.too_slow:
                    logger.info("WebRTC viewer of session %s closed: it fell behind", self.session_id)
                    return Look(closed=True)
                look = await self._look(touch=touches.due(loop.time()))
                if look is None or look.ready is None or frames_version(look.ready) != frames.version:
                    return look or Look(ended_reason="ended")
                if self.stage_stopped == "failed":
                    raise RuntimeError("the session's stage failed")
                if self.stage_stopped == "gone":
                    raise RuntimeError("the avatar's frames cannot be read")
        finally:
            self.stage = None
            stages.leave(stage, self.feed)

    async def close(self) -> None:
        """Close the connection and its tracks, leave the stage and the group (idempotent)."""
        if self.closed:
            return
        self.closed = True
        peers.discard(self)
        viewers.leave(self.session_id)
        current = asyncio.current_task()
        tasks = [task for task in (self.driver, self.listener, self.watchdog, self.hearing)
                 if task is not None and task is not current]
        for task in tasks:
            task.cancel()
        # Let them unwind before going on: a channel layer's receive still pending on this loop
        # would hold the layer (channels_redis lets one event loop receive at a time).
        await asyncio.gather(*tasks, return_exceptions=True)
        self.feed.stop()
        if self.layer_channel is not None:
            try:
                await get_channel_layer().group_discard(services.group_name(self.session_id), self.layer_channel)
            except Exception:  # a broken layer must not keep the connection open
                logger.exception("could not leave the group of session %s", self.session_id)
        await self.incoming.stop()
        await self.pc.close()


def _waiting_picture(still_of: str | None) -> np.ndarray:
    """The tutor's ready avatar's preview as I420, or a black picture."""
    if still_of:
        try:
            jpeg = storage.read_prepared(still_of, "preview.jpg")
            picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            if picture is not None:
                return i420_of(picture)
        except OSError:
            pass
    width, height = WAITING_SIZE
    return i420_of(np.zeros((height, width, 3), np.uint8))


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
    offer_only(settings.SESSION_WEBRTC_HOST_ADDRESSES)
    loop = media_loop()

    async def begin() -> RTCSessionDescription:
        peer = SessionPeer(session_id, allowed)
        peers.add(peer)
        try:
            async with asyncio.timeout(settings.SESSION_WEBRTC_ANSWER_TIMEOUT_S):
                return await peer.answer(offer)
        except BaseException:
            await peer.close()
            raise

    return asyncio.run_coroutine_threadsafe(begin(), loop).result()


async def close_all() -> None:
    """Close every peer connection of this process (the server is stopping)."""
    await asyncio.gather(*(peer.close() for peer in list(peers)), return_exceptions=True)
