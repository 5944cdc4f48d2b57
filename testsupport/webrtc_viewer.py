"""A WebRTC viewer of a session in Python (aiortc), as a test or a benchmark sees the media: it
offers to receive video and audio (and opens the "events" data channel), posts the offer to
POST /v1/sessions/{id}/webrtc, and records what arrives with its arrival time.

Media time at the receiver: RTP timestamps start at a random origin per track, so each track's
time is counted from its own first frame; the server starts both tracks on the same instant of
its clock, so the two counts share a zero. Besides the decoded frames (which aiortc's receiver
hands out after its own jitter buffer: 4 audio packets, 80 ms), every RTP packet's arrival is
noted with its timestamp (`packets`), which is what the server sent and when, before any buffering
of this client: the audio/video offset at the receiver is measured on those.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.mediastreams import MediaStreamError


@dataclass
class Arrival:
    at: float  # time.monotonic() when the frame came out of the decoder
    media_s: float  # the frame's time on its track, from the track's first frame


@dataclass
class VideoArrival(Arrival):
    luma: np.ndarray | None  # the Y plane (grey picture), when pictures are kept


@dataclass
class AudioArrival(Arrival):
    rms: float  # loudness of the frame (int16 scale)
    samples: int  # per channel


@dataclass
class WebRTCViewer:
    base_url: str
    session_id: str
    api_key: str
    keep_pictures: bool = True
    ice_servers: list | None = None  # RTCIceServer list (default: none)
    relay_only: bool = False  # candidates through the TURN server alone
    video: list[VideoArrival] = field(default_factory=list)
    audio: list[AudioArrival] = field(default_factory=list)
    events: list[tuple[float, dict]] = field(default_factory=list)
    answer: dict = field(default_factory=dict)
    # (arrival, media time in s, payload bytes) of every RTP packet, per track
    packets: dict[str, list[tuple[float, float, int]]] = field(default_factory=lambda: {"audio": [], "video": []})

    connections: int = 0  # peer connections made (more than one: it reconnected)

    def __post_init__(self) -> None:
        # No ICE servers unless given: aiortc's default (iceServers None) is a public STUN server,
        # which would send requests off this machine; loopback host candidates are all a local
        # server needs.
        policy = RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers or [], iceTransportPolicy=policy))
        self._readers: list[asyncio.Task] = []
        self._first_pts: dict[str, float] = {}

    async def start(self, post=None, video_codec: str | None = None, audio: bool = True, microphone=None) -> dict:
        """Offer, post, take the answer; media then arrives in the background. Returns the answer.
        `post(body) -> answer` sends the offer (default: to the API over HTTP with the key);
        `video_codec` ("VP8", "H264") offers that video codec alone; `microphone` (an audio track)
        is sent up as the student's voice (the audio is then `sendrecv`)."""
        pc = self.pc
        video = pc.addTransceiver("video", direction="recvonly")
        if video_codec:
            from aiortc import RTCRtpReceiver

            video.setCodecPreferences([codec for codec in RTCRtpReceiver.getCapabilities("video").codecs
                                       if codec.mimeType.lower() in (f"video/{video_codec}".lower(), "video/rtx")])
        if microphone is not None:
            pc.addTransceiver(microphone, direction="sendrecv")
        elif audio:
            pc.addTransceiver("audio", direction="recvonly")
        channel = pc.createDataChannel("JanusDataChannel")
        channel.on("message", lambda message: self.events.append((time.monotonic(), json.loads(message))))
        pc.on("track", lambda track: self._readers.append(asyncio.ensure_future(self._read(track))))
        await pc.setLocalDescription(await pc.createOffer())
        body = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
        if post is None:
            def post(offer: dict) -> dict:
                return post_json(f"{self.base_url}/v1/sessions/{self.session_id}/webrtc", offer, self.api_key)
        self.answer = await asyncio.get_running_loop().run_in_executor(None, post, body)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=self.answer["sdp"], type=self.answer["type"]))
        for transceiver in pc.getTransceivers():
            self._note_packets(transceiver.receiver, transceiver.kind)
        return self.answer

    async def watch_through_media_server(self, reconnect_after_s: float | None = 5.0, timeout_s: float = 30.0) -> dict:
        """The media-server form (SESSION_MEDIA_SERVER="janus"): ask for an offer (again while the
        stage is starting: 503), answer it; media then arrives in the background. With
        `reconnect_after_s`, a viewer that got no media that long asks for a new offer and connects
        again, as the staff page does (the media server restarted under it). Returns the offer."""
        offer = await self._connect_through_media_server(timeout_s)
        if reconnect_after_s:
            self._readers.append(asyncio.ensure_future(self._reconnect_when_stalled(reconnect_after_s, timeout_s)))
        return offer

    async def _connect_through_media_server(self, timeout_s: float) -> dict:
        loop = asyncio.get_running_loop()
        url = f"{self.base_url}/v1/sessions/{self.session_id}/viewers"
        deadline = time.monotonic() + timeout_s
        while True:
            status, offer = await loop.run_in_executor(None, call_json, "POST", url, {}, self.api_key)
            if status == 201:
                break
            if status not in (503, 502) or time.monotonic() > deadline:
                raise RuntimeError(f"no offer: {status} {offer}")
            await asyncio.sleep(0.25)
        pc = self.pc
        if pc.connectionState != "new":  # a reconnection: a new peer connection
            await pc.close()
            policy = RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
            pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers or [], iceTransportPolicy=policy))
            self._first_pts = {}
        pc.on("track", lambda track: self._readers.append(asyncio.ensure_future(self._read(track))))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        # Janus relays the session's events once the viewer has opened a data channel of its own.
        channel = pc.createDataChannel("JanusDataChannel")
        channel.on("message", lambda message: self.events.append((time.monotonic(), json.loads(message))))
        for transceiver in pc.getTransceivers():
            self._note_packets(transceiver.receiver, transceiver.kind)
        await pc.setLocalDescription(await pc.createAnswer())
        status, answered = await loop.run_in_executor(None, call_json, "POST", f"{self.base_url}{offer['answer_url']}",
                                                      {"type": "answer", "sdp": pc.localDescription.sdp}, self.api_key)
        if status != 200:
            raise RuntimeError(f"answer refused: {status} {answered}")
        self.answer = offer
        self.connections += 1
        return offer

    async def _reconnect_when_stalled(self, after_s: float, timeout_s: float) -> None:
        while True:
            await asyncio.sleep(0.25)
            arrivals = [packets[-1][0] for packets in self.packets.values() if packets]
            if arrivals and time.monotonic() - max(arrivals) > after_s:
                try:
                    await self._connect_through_media_server(timeout_s)
                except Exception:  # noqa: BLE001 - the media server is still down: try again
                    await asyncio.sleep(1.0)
                    continue
                self.packets["video"].append((time.monotonic(), 0.0, 0))  # wait another `after_s` first

    def _note_packets(self, receiver, kind: str) -> None:
        """Note (arrival, media time in s) of each RTP packet `receiver` is handed, then hand it on."""
        handle = receiver._handle_rtp_packet
        clock = 90000 if kind == "video" else 48000
        noted = self.packets[kind]
        first: list[int] = []

        async def noting(packet, arrival_time_ms):
            if not first:
                first.append(packet.timestamp)
            noted.append((time.monotonic(), ((packet.timestamp - first[0]) % (1 << 32)) / clock, len(packet.payload)))
            await handle(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = noting

    def offset_ms(self, since: float = 0.0) -> float:
        """How much later video arrives than audio of the same media time (ms; negative: earlier),
        from the RTP packets that arrived after `since` (time.monotonic())."""
        lateness = {kind: np.median([at - media for at, media, _ in packets if at >= since])
                    for kind, packets in self.packets.items()}
        return float(lateness["video"] - lateness["audio"]) * 1000

    async def _read(self, track) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            pts = float(frame.pts * frame.time_base)
            first = self._first_pts.setdefault(track.kind, pts)
            if track.kind == "video":
                luma = frame.to_ndarray(format="gray") if self.keep_pictures else None
                self.video.append(VideoArrival(now, pts - first, luma))
            else:
                samples = frame.to_ndarray().astype(np.float64)
                self.audio.append(AudioArrival(now, pts - first, float(np.sqrt(np.mean(samples ** 2))),
                                               frame.samples))

    async def wait_for_video(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.video) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.video)} video frames in {timeout} s (wanted {count}); "
                                   f"connection {self.pc.connectionState}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()


def call_json(method: str, url: str, body: dict | None, api_key: str | None) -> tuple[int, dict | None]:
    """(status, JSON body) of a request; error statuses are answers too."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def post_json(url: str, body: dict, api_key: str | None) -> dict:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def nearest_idle(luma: np.ndarray, thumbnails: np.ndarray) -> int:
    """Which prepared idle frame a received picture shows: the nearest by a 32x18 thumbnail."""
    import cv2

    small = cv2.resize(luma, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
    return int(np.argmin(np.abs(thumbnails - small).reshape(len(thumbnails), -1).mean(axis=1)))


def idle_thumbnails(idle_lumas: list[np.ndarray]) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(luma, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
                     for luma in idle_lumas])


def mouth_change(luma: np.ndarray, idle: list[np.ndarray], thumbnails: np.ndarray, landmarks: np.ndarray) -> float:
    """How far a received grey picture's mouth is from the prepared idle frame it shows (found by
    its nearest thumbnail: WebRTC carries no frame numbers): mean grey levels in the box from just
    above the mouth corners to half a mouth width below them."""
    index = nearest_idle(luma, thumbnails)
    points = landmarks[index]
    if np.isnan(points).any():  # no face found in that frame
        return float("nan")
    width = np.linalg.norm(points[4] - points[3])
    box = (slice(int(points[3][1] - 0.1 * width), int(points[3][1] + 0.5 * width)),
           slice(int(points[3][0]), int(points[4][0]) + 1))
    return float(np.abs(luma[box].astype(int) - idle[index][box]).mean())


class RecordingTrack:
    """A microphone that plays `samples` (mono int16 at 48 kHz), in real time, 20 ms a frame, then
    silence: an aiortc audio track."""

    def __new__(cls, samples: np.ndarray):
        import fractions

        import av
        from aiortc import MediaStreamTrack

        class Track(MediaStreamTrack):
            kind = "audio"

            def __init__(self) -> None:
                super().__init__()
                self.index = 0
                self.began: float | None = None

            async def recv(self):
                if self.began is None:
                    self.began = time.monotonic()
                wait = self.began + self.index * 0.02 - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                chunk = samples[self.index * 960:(self.index + 1) * 960]
                chunk = np.concatenate([chunk, np.zeros(960 - len(chunk), np.int16)]).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 48000, self.index * 960, fractions.Fraction(1, 48000)
                self.index += 1
                return frame

        return Track()
