"""A session's media through a real Janus: RtpPublisher sends VP8, Opus and JSON events as plain RTP
to a Streaming mountpoint made with JanusClient; an aiortc viewer here watches it (Janus offers,
the viewer answers) and gets the decoded picture, sound and events.

Janus runs in a network namespace of its own (scripts/janus.sh: it leaves loopback out of its ICE
candidates), so this needs root and Debian's janus; it skips, saying which is missing, otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sessions_app.errors import JanusError
from sessions_app.live.janus import JanusClient
from sessions_app.live.rtp import RtpPublisher

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# A namespace, veth and /30 of this test run's own, so a cluster started by scripts/cluster.sh (the
# defaults, 10.213.0.0/30) and another test run can work beside it.
_RUN = os.getpid()
TEST_NETWORK = {
    "JANUS_NETNS": f"tp-janus-t{_RUN}",
    "JANUS_VETH": f"tpjt{_RUN % 100000}",
    "JANUS_HOST_ADDR": f"10.213.{1 + _RUN % 254}.1",
    "JANUS_NS_ADDR": f"10.213.{1 + _RUN % 254}.2",
}
WIDTH, HEIGHT, FPS, AUDIO_RATE = 640, 360, 25, 24000
SQUARE, SQUARE_Y, SPEED = 64, 140, 2  # the square's side, top and pixels per frame
JOIN_AT = 60  # the frame the viewer joins at
# No keyframe on the publisher's own schedule after the first (frame 0) within the test: the viewer
# joining at frame 60 sees a picture only if its keyframe request is answered.
KEYFRAME_INTERVAL_S = 60.0
TONE_HZ = 440.0


def _janus_sh(function: str, env: dict[str, str]) -> dict[str, str]:
    """Run one of scripts/janus.sh's functions in bash and return the JANUS_* it leaves exported."""
    script = f'source scripts/janus.sh; {function}; echo "JANUS_SKIPPED=$JANUS_SKIPPED"; env | grep "^JANUS_"'
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"{function} failed: {done.stderr}"
    exported = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition("=")
        if name.startswith("JANUS_"):
            exported[name] = value
    return exported


@pytest.fixture(scope="module")
def janus():
    if os.geteuid() != 0:
        pytest.skip("Janus runs in a network namespace, which needs root")
    for command, package in (("janus", "janus"), ("ip", "iproute2"), ("curl", "curl")):
        if shutil.which(command) is None:
            pytest.skip(f"{command} is not installed (Debian: apt-get install {package}; scripts/test.sh does it)")
    env = _janus_sh("janus_start", TEST_NETWORK)
    if env.get("JANUS_READY") != "1":
        pytest.fail(f"Janus did not start: {env.get('JANUS_SKIPPED')}")
    try:
        yield env
    finally:
        _janus_sh("janus_stop", env)


@pytest.fixture
def client(janus):
    with JanusClient(janus["JANUS_URL"], janus["JANUS_ADMIN_KEY"], timeout=10) as janus_client:
        yield janus_client


def picture(index: int) -> np.ndarray:
    """Frame `index` as I420: a white square moving right SPEED pixels a frame over mid grey."""
    y = np.full((HEIGHT, WIDTH), 110, np.uint8)
    x = 40 + SPEED * index
    y[SQUARE_Y:SQUARE_Y + SQUARE, x:x + SQUARE] = 235
    chroma = np.full((HEIGHT // 4, WIDTH), 128, np.uint8)  # U and V planes, (h/2 * w/2) each
    return np.vstack([y, chroma, chroma])


def tone(first_sample: int, count: int) -> np.ndarray:
    t = (first_sample + np.arange(count)) / AUDIO_RATE
    return (np.sin(2 * np.pi * TONE_HZ * t) * 8000).astype(np.int16)


class Publisher(threading.Thread):
    """A stage worker in miniature: `frames` frames at 25 fps in real time; a JSON event every 5th
    frame once `events_from` is set."""

    def __init__(self, janus: dict[str, str], ports: dict[str, int], frames: int):
        super().__init__(daemon=True)
        self.rtp = RtpPublisher(janus["JANUS_RTP_HOST"], ports["video"], ports["audio"], ports["data"],
                                audio_rate=AUDIO_RATE, fps=FPS, video_rtcp_port=ports["video_rtcp"],
                                keyframe_interval_s=KEYFRAME_INTERVAL_S)
        self.frames = frames
        self.events_from = threading.Event()
        self.index = 0  # the frame being sent
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            start, sample = time.monotonic(), 0
            for index in range(self.frames):
                self.index = index
                count = (index + 1) * AUDIO_RATE // FPS - index * AUDIO_RATE // FPS
                self.rtp.send_frame(picture(index), tone(sample, count))
                sample += count
                if self.events_from.is_set() and index % 5 == 0:
                    self.rtp.send_event(json.dumps({"type": "caption", "frame": index, "text": "one half"}))
                delay = start + (index + 1) / FPS - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.rtp.close()


def square_at(luma: np.ndarray) -> tuple[float, float] | None:
    """The bright square's left edge and top in a decoded picture (from the mean of its bright
    pixels), or None when there is no square-sized bright patch."""
    bright = luma > 180
    if bright.sum() < SQUARE * SQUARE * 0.6:
        return None
    rows, cols = np.nonzero(bright)
    return float(cols.mean() - SQUARE / 2), float(rows.mean() - SQUARE / 2)


async def watch_and_receive(client: JanusClient, mountpoint_id: int, publisher: Publisher) -> dict:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    got = {"video": [], "audio": [], "events": [], "viewers": None}
    while publisher.index < JOIN_AT:
        await asyncio.sleep(0.02)
    session, handle, offer = await asyncio.to_thread(client.watch, mountpoint_id)
    pc = RTCPeerConnection()
    readers = []

    async def read(track) -> None:
        while True:
            frame = await track.recv()
            if track.kind == "video":
                luma = frame.to_ndarray(format="yuv420p")[:frame.height]
                got["video"].append((frame.pts, square_at(luma)))
            else:
                got["audio"].append(frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0].copy())

    @pc.on("track")
    def on_track(track) -> None:
        readers.append(asyncio.ensure_future(read(track)))

    def on_message(message) -> None:
        got["events"].append(message.decode() if isinstance(message, bytes) else message)

    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        # Janus relays a mountpoint's data only once the viewer has opened a data channel (janus.js
        # does so when the viewer asks for data): the events come on it.
        pc.createDataChannel("JanusDataChannel").on("message", on_message)
        await pc.setLocalDescription(await pc.createAnswer())
        await asyncio.to_thread(client.start, session, handle, pc.localDescription.sdp)
        publisher.events_from.set()
        deadline = time.monotonic() + 20
        while len(got["video"]) < 60 or sum(len(a) for a in got["audio"]) < 48000 * 1.5 or not got["events"]:
            assert time.monotonic() < deadline, (
                f"media did not arrive: {len(got['video'])} video frames, "
                f"{sum(len(a) for a in got['audio'])} audio samples, {len(got['events'])} events; "
                f"ICE {pc.iceConnectionState}")
            await asyncio.sleep(0.1)
        got["viewers"] = (await asyncio.to_thread(client.mountpoint_info, mountpoint_id))["viewers"]
    finally:
        for reader in readers:
            reader.cancel()
        await pc.close()
        try:
            await asyncio.to_thread(client.destroy_session, session)
        except JanusError:
            pass
    return got


def test_published_media_reaches_a_webrtc_viewer_through_janus(janus, client):
    mountpoint_id = 7301
    ports = client.create_mountpoint(mountpoint_id, "session-7301")
    assert set(ports) == {"video", "video_rtcp", "audio", "data"} and len(set(ports.values())) == 4
    assert any(m["id"] == mountpoint_id for m in client.list_mountpoints())
    publisher = Publisher(janus, ports, frames=FPS * 8)
    publisher.start()
    try:
        got = asyncio.run(watch_and_receive(client, mountpoint_id, publisher))
    finally:
        publisher.join(15)
    assert publisher.error is None, publisher.error

    assert got["viewers"] == 1

    # The picture: the square is found in the decoded frames where it was drawn.
    seen = [(pts, at[0], at[1]) for pts, at in got["video"] if at is not None]
    assert len(seen) >= 0.9 * len(got["video"]) and len(seen) >= 50, got["video"][:10]
    misplaced = [(i, x, top) for i, (_, x, top) in enumerate(seen) if abs(top - SQUARE_Y) >= 3]
    assert not misplaced, misplaced
    index_of = [(x - 40) / SPEED for _, x, _ in seen]
    # The first picture is a keyframe made for this viewer (Janus asked for it when the viewer
    # started), from where the stream had got to; the frames after it follow on.
    assert index_of[0] >= JOIN_AT - 1 and publisher.rtp.keyframes_requested >= 1, index_of[:3]
    # The frames move as published: SPEED pixels per 1/25 s of their own timestamps (90 kHz).
    live = seen
    first_pts, first_x, _ = live[0]
    for pts, x, _ in live:
        expected = first_x + SPEED * (pts - first_pts) / (90000 / FPS)
        assert abs(x - expected) < 3, (pts, x, expected)
    assert live[-1][1] - first_x > SPEED * 40, "the square did not move across the picture"

    # The sound: a 440 Hz tone (Opus decodes to 48 kHz).
    samples = np.concatenate(got["audio"]).astype(np.float64)[48000 // 2:]  # past the first half second
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / 48000)
    assert abs(freqs[spectrum.argmax()] - TONE_HZ) < 5
    near = spectrum[(freqs > TONE_HZ - 20) & (freqs < TONE_HZ + 20)].sum()
    assert near > 0.8 * spectrum.sum() / 2, "the tone is not most of the sound"  # 1/2: Hann leakage margin
    assert np.sqrt(np.mean(samples ** 2)) > 2000

    # The events: JSON text on the data channel, as sent.
    event = json.loads(got["events"][0])
    assert event["type"] == "caption" and event["text"] == "one half" and event["frame"] % 5 == 0

    client.destroy_mountpoint(mountpoint_id)
    assert not client.mountpoint_exists(mountpoint_id)
    assert all(m["id"] != mountpoint_id for m in client.list_mountpoints())
    with pytest.raises(JanusError) as refused:
        client.destroy_mountpoint(mountpoint_id)
    assert refused.value.code == 455


def test_refusals_carry_janus_code_and_reason(janus, client):
    client.create_mountpoint(7302, "session-7302", data=False)
    try:
        with pytest.raises(JanusError) as duplicate:
            client.create_mountpoint(7302, "again")
        assert duplicate.value.code == 456 and "already exists" in duplicate.value.reason
        with pytest.raises(JanusError) as wrong_key:
            JanusClient(janus["JANUS_URL"], "not-the-key").create_mountpoint(7303, "x")
        assert wrong_key.value.code == 457
        with pytest.raises(JanusError) as no_mountpoint:
            client.watch(7399)
        assert no_mountpoint.value.code == 455
    finally:
        client.destroy_mountpoint(7302)


def test_unreachable_janus_is_reported_as_unavailable():
    from sessions_app.errors import JanusUnavailable

    with pytest.raises(JanusUnavailable):
        JanusClient("http://127.0.0.1:9/janus", "key", timeout=2).create_mountpoint(1, "x")


def test_after_a_janus_restart_the_mountpoint_is_missing_and_can_be_made_again(janus, client):
    mountpoint_id = 7311
    client.create_mountpoint(mountpoint_id, "session-7311")
    assert client.mountpoint_exists(mountpoint_id)
    restarted = _janus_sh("janus_restart", janus)
    assert restarted["JANUS_READY"] == "1" and restarted["JANUS_URL"] == janus["JANUS_URL"]
    # Mountpoints live in Janus's memory: the caller (the stage worker) must make them again.
    assert not client.mountpoint_exists(mountpoint_id)
    ports = client.create_mountpoint(mountpoint_id, "session-7311")
    assert set(ports) == {"video", "video_rtcp", "audio", "data"}
    assert client.mountpoint_exists(mountpoint_id)
    client.destroy_mountpoint(mountpoint_id)
