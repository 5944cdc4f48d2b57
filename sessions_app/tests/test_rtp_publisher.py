"""RtpPublisher on loopback, read back by plain UDP sockets standing in for a Janus mountpoint: the RTP
it sends (payload types, timestamps from the audio clock, markers), its keyframes (on its schedule
and on request), its Sender Reports, and its refusals. Janus itself: test_janus_media.py."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtcpPacket, RtcpPsfbPacket, RtcpSrPacket, RtpPacket

from sessions_app.live.rtp import RtpPublisher

AUDIO_RATE, FPS = 24000, 25
PER_FRAME = AUDIO_RATE // FPS  # 960 samples: 40 ms


def udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    return sock


def drain(sock: socket.socket) -> list[tuple[bytes, tuple]]:
    sock.settimeout(0.2)
    out = []
    while True:
        try:
            out.append(sock.recvfrom(65536))
        except socket.timeout:
            return out


@pytest.fixture
def ports():
    sockets = {name: udp() for name in ("video", "video_rtcp", "audio", "data")}
    yield sockets
    for sock in sockets.values():
        sock.close()


def publisher(ports, **options) -> RtpPublisher:
    return RtpPublisher("127.0.0.1", ports["video"].getsockname()[1], ports["audio"].getsockname()[1],
                        ports["data"].getsockname()[1], audio_rate=AUDIO_RATE, fps=FPS,
                        video_rtcp_port=ports["video_rtcp"].getsockname()[1], **options)


def picture(index: int) -> np.ndarray:
    y = np.full((240, 320), 100, np.uint8)
    y[80:120, 10 + 4 * index:50 + 4 * index] = 230
    return np.vstack([y, np.full((120, 320), 128, np.uint8)])  # U and V: 120x160 each


def tone(index: int) -> np.ndarray:
    t = (index * PER_FRAME + np.arange(PER_FRAME)) / AUDIO_RATE
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)


def frames_of(datagrams) -> list[list[RtpPacket]]:
    """Video RTP packets grouped into frames by timestamp, in order."""
    frames: list[list[RtpPacket]] = []
    for data, _ in datagrams:
        packet = RtpPacket.parse(data)
        if not frames or frames[-1][0].timestamp != packet.timestamp:
            frames.append([])
        frames[-1].append(packet)
    return frames


def is_keyframe(frame: list[RtpPacket]) -> bool:
    _, vp8 = VpxPayloadDescriptor.parse(frame[0].payload)
    return vp8[0] & 1 == 0  # the VP8 frame tag's P bit: 0 on a keyframe (RFC 6386, 9.1)


def test_rtp_follows_the_audio_clock_with_keyframes_on_schedule_and_on_request(ports):
    rtp = publisher(ports, keyframe_interval_s=2.0)
    for index in range(20):
        rtp.send_frame(picture(index), tone(index))
    video = frames_of(drain(ports["video"]))
    audio = [RtpPacket.parse(data) for data, _ in drain(ports["audio"])]

    assert len(video) == 20
    assert all(p.payload_type == 96 and p.ssrc == video[0][0].ssrc for frame in video for p in frame)
    # 40 ms of audio per frame: 3600 ticks of the 90 kHz clock; the marker ends each frame.
    assert [(b[0].timestamp - a[0].timestamp) % 2**32 for a, b in zip(video, video[1:])] == [3600] * 19
    assert all([p.marker for p in frame] == [0] * (len(frame) - 1) + [1] for frame in video)
    sequence = [p.sequence_number for frame in video for p in frame]
    assert [(b - a) % 2**16 for a, b in zip(sequence, sequence[1:])] == [1] * (len(sequence) - 1)
    # A keyframe first, then deltas until 2 s have passed.
    assert [is_keyframe(frame) for frame in video] == [True] + [False] * 19

    # Opus: one 20 ms packet per RTP packet, 960 ticks of 48 kHz apart; 800 ms sent.
    assert all(p.payload_type == 111 for p in audio)
    assert [(b.timestamp - a.timestamp) % 2**32 for a, b in zip(audio, audio[1:])] == [960] * (len(audio) - 1)
    assert 38 <= len(audio) <= 40  # the encoder holds back its look-ahead

    # The Sender Report on the RTCP port names the video source and where its clock is.
    (report_data, publisher_address), = drain(ports["video_rtcp"])
    report, = RtcpPacket.parse(report_data)
    assert isinstance(report, RtcpSrPacket) and report.ssrc == video[0][0].ssrc
    assert report.sender_info.rtp_timestamp == video[0][0].timestamp

    # A keyframe request (PLI) sent back to the address the reports come from: the next frame is one.
    pli = RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=video[0][0].ssrc)
    ports["video_rtcp"].sendto(bytes(pli), publisher_address)
    for index in range(20, 23):
        rtp.send_frame(picture(index), tone(index))
    assert [is_keyframe(frame) for frame in frames_of(drain(ports["video"]))] == [True, False, False]
    assert rtp.keyframes_requested == 1
    rtp.close()


def test_events_go_to_the_data_port_and_bad_input_is_refused(ports):
    rtp = publisher(ports)
    rtp.send_event(json.dumps({"type": "caption", "text": "one half"}))
    (data, _), = drain(ports["data"])
    assert json.loads(data) == {"type": "caption", "text": "one half"}

    with pytest.raises(ValueError, match="one datagram"):
        rtp.send_event("x" * 1401)
    with pytest.raises(ValueError, match="I420"):
        rtp.send_frame(np.zeros((240, 320, 3), np.uint8))  # a BGR picture
    with pytest.raises(ValueError, match="I420"):
        rtp.send_frame(np.zeros((360, 321), np.uint8))  # an odd width
    with pytest.raises(ValueError):
        RtpPublisher("127.0.0.1", 1, 2, 3, audio_rate=0, fps=25)
    assert drain(ports["video"]) == []
    rtp.close()


def test_a_new_source_starts_with_a_keyframe_under_new_ssrcs(ports):
    rtp = publisher(ports)
    rtp.send_frame(picture(0), tone(0))
    rtp.send_frame(picture(1), tone(1))
    before = frames_of(drain(ports["video"]))
    rtp.new_source()
    rtp.send_frame(picture(2), tone(2))
    after = frames_of(drain(ports["video"]))
    assert [is_keyframe(f) for f in before] == [True, False] and is_keyframe(after[0])
    assert after[0][0].ssrc != before[0][0].ssrc
    rtp.close()
