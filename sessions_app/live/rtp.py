"""Encode a session's stage once and send it as plain RTP to a Janus Streaming mountpoint.

`RtpPublisher(host, video_port, audio_port, data_port, audio_rate, fps)` takes one stage frame at a
time: the picture as I420 (`sessions_app.stage.i420_of`, any even size) and the frame's mono int16
audio at `audio_rate`. It encodes VP8 (aiortc's encoder: libvpx, realtime, CBR) and Opus (libopus
through PyAV, 20 ms packets), packetizes to RTP (VP8 payload descriptor per RFC 7741; one Opus
packet per RTP packet) and sends UDP datagrams to the mountpoint's ports. `send_event(text)` sends
one JSON text datagram to the data port, which Janus relays on every viewer's data channel.
With `video_rtcp_port` (JanusClient.create_mountpoint's "video_rtcp") it sends a Sender Report
there every second and answers the keyframe requests Janus sends back (a viewer started, or lost
packets) with a keyframe on the next frame.

Clocks: the stage's audio sample count is the one clock. A frame starting at audio sample s has the
video timestamp s / audio_rate * 90000 and its audio the Opus timestamps s' (in 48 kHz samples), so
audio and video stay in step whatever the wall clock does; the caller paces `send_frame` in real
time (the stage's own clock), and Janus relays packets as they come.

Costs (CPU time on one core of a 2-core AMD EPYC VM, 150 frames of a 1280x720 25 fps talking-head
clip, 1.5 Mbit/s target, which it met at 1.49 Mbit/s):
- VP8 encode (libvpx realtime, cpu-used -6), with the frame's packetizing and sending: 8.2 ms per
  frame median (mean 8.4, p95 9.3), i.e. about 21 % of one core at 25 fps; a keyframe (every 2 s)
  11 ms, the very first one 31 ms (the encoder's set-up). A synthetic moving square on flat grey
  costs 2.7 ms; a textured, panning picture 10 ms.
- Opus (mono, 48 kbit/s, resampled from 24 kHz) for a frame's 40 ms of audio: 0.22 ms.
- About 130 video and 50 audio datagrams per second.
Janus does no transcoding: it copies the packets to every viewer (SRTP per viewer), so a session's
encode cost is paid once however many viewers watch.
"""

from __future__ import annotations

import random
import socket
import time
from fractions import Fraction

import av
import numpy as np
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtcpPacket, RtcpPsfbPacket, RtcpSenderInfo, RtcpSrPacket, RtpPacket

VIDEO_PT = 96  # what sessions_app.live.janus.JanusClient.create_mountpoint declares
AUDIO_PT = 111
VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000
OPUS_FRAME = 960  # 20 ms at 48 kHz: the usual WebRTC packet
# A keyframe at least this often: a viewer whose keyframe request got lost, or one that lost
# packets and asks nothing, recovers within this time.
KEYFRAME_INTERVAL_S = 2.0
# Requested keyframes (PLI/FIR from Janus: a viewer started, or lost packets) at most this often,
# so that viewers joining together cost one keyframe, not one each.
KEYFRAME_REQUEST_MIN_GAP_S = 0.25
# A Sender Report this often on the video RTCP port: it tells Janus where to send keyframe requests.
SENDER_REPORT_INTERVAL_S = 1.0
PSFB_PLI, PSFB_FIR = 1, 4
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)
# 1.5 Mbit/s for 720p25 (met at 1.49 Mbit/s on a talking-head clip, see Costs above); aiortc's VP8
# encoder clamps its target to 250 kbit/s - 1.5 Mbit/s.
DEFAULT_VIDEO_BITRATE = 1_500_000
DEFAULT_AUDIO_BITRATE = 48_000
# Janus relays each datagram on the data port as one message: an event must fit one datagram, and
# 1400 bytes keeps it within a 1500-byte MTU (no IP fragments to lose).
DATA_MAX_BYTES = 1400


class RtpPublisher:
    def __init__(self, host: str, video_port: int | None, audio_port: int | None, data_port: int | None,
                 audio_rate: int, fps: float, video_bitrate: int = DEFAULT_VIDEO_BITRATE,
                 audio_bitrate: int = DEFAULT_AUDIO_BITRATE, video_rtcp_port: int | None = None,
                 keyframe_interval_s: float = KEYFRAME_INTERVAL_S):
        if audio_rate <= 0 or fps <= 0:
            raise ValueError("audio_rate and fps must be positive")
        self.host = host
        self.video_port = video_port
        self.audio_port = audio_port
        self.data_port = data_port
        self.audio_rate = int(audio_rate)
        self.fps = float(fps)
        self.video_bitrate = int(video_bitrate)
        self.audio_bitrate = int(audio_bitrate)
        self.video_rtcp_port = video_rtcp_port
        self.keyframe_interval_s = float(keyframe_interval_s)
        # One socket for everything: Janus sends its keyframe requests back to the address its
        # video RTCP port hears from, and they are read here between frames (no thread).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A 720p keyframe is 60-120 datagrams sent at once.
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        self._sock.setblocking(False)
        self.frames_sent = 0
        self.bytes_sent = 0
        self.keyframes_requested = 0
        self.new_source()

    def new_source(self) -> None:
        """Start a new RTP source: new SSRCs, sequence numbers and timestamp bases, fresh encoders
        (so the next frame is a keyframe). For a stage that restarts on the same mountpoint."""
        self._video_ssrc = random.getrandbits(32)
        self._audio_ssrc = random.getrandbits(32)
        self._video_seq = random.getrandbits(16)
        self._audio_seq = random.getrandbits(16)
        self._video_ts0 = random.getrandbits(32)
        self._audio_ts0 = random.getrandbits(32)
        self._samples = 0  # audio samples (at audio_rate) of the frames sent so far: the clock
        self._frame_index = 0
        self._last_keyframe_samples: int | None = None
        self._keyframe_wanted = False
        self._video_packets = 0
        self._video_octets = 0
        self._last_report_samples: int | None = None
        self._vp8 = Vp8Encoder()
        self._vp8.target_bitrate = self.video_bitrate
        self._opus = av.CodecContext.create("libopus", "w")
        self._opus.sample_rate = AUDIO_CLOCK
        self._opus.layout = "mono"
        self._opus.format = "s16"
        self._opus.bit_rate = self.audio_bitrate
        self._opus.time_base = Fraction(1, AUDIO_CLOCK)
        self._opus.options = {"application": "voip", "frame_duration": "20"}
        # Input frames of exactly 20 ms at 48 kHz; converts the stage's rate when it is not 48 kHz.
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_CLOCK, frame_size=OPUS_FRAME)
        self._opus_in = 0  # 48 kHz samples given to the encoder

    def _samples_of_frame(self, index: int) -> int:
        """How many audio samples frame `index` covers (the stage's frame_samples arithmetic)."""
        return int((index + 1) * self.audio_rate // self.fps) - int(index * self.audio_rate // self.fps)

    def send_frame(self, i420: np.ndarray, audio: np.ndarray | None = None) -> None:
        """Encode and send one frame: `i420` (h*3/2, w) uint8, `audio` mono int16 at audio_rate (the
        frame's share; None sends silence of the frame's length)."""
        if i420.ndim != 2 or i420.dtype != np.uint8 or i420.shape[0] % 3 or i420.shape[1] % 2:
            raise ValueError(f"expected an I420 picture (h*3/2, w) of uint8 with even sides, "
                             f"got {i420.shape} {i420.dtype}")
        if audio is None:
            audio = np.zeros(self._samples_of_frame(self._frame_index), dtype=np.int16)
        audio = np.ascontiguousarray(audio, dtype=np.int16).reshape(-1)
        start = self._samples  # where this frame starts on the audio clock
        if self.video_port:
            if self.video_rtcp_port:
                self._read_rtcp()
                self._send_sender_report(start)
            self._send_video(i420, start)
        if self.audio_port and audio.size:
            self._send_audio(audio)
        self._samples += int(audio.size)
        self._frame_index += 1
        self.frames_sent += 1

    def _send_video(self, i420: np.ndarray, start: int) -> None:
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts = start * VIDEO_CLOCK // self.audio_rate
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        since = None if self._last_keyframe_samples is None else start - self._last_keyframe_samples
        keyframe = (since is None or since >= self.keyframe_interval_s * self.audio_rate
                    or (self._keyframe_wanted and since >= KEYFRAME_REQUEST_MIN_GAP_S * self.audio_rate))
        if keyframe:
            self._last_keyframe_samples = start
            self._keyframe_wanted = False
        payloads, timestamp = self._vp8.encode(frame, force_keyframe=keyframe)
        for i, payload in enumerate(payloads):
            packet = RtpPacket(payload_type=VIDEO_PT, marker=int(i == len(payloads) - 1),
                               sequence_number=self._video_seq, timestamp=(self._video_ts0 + timestamp) & 0xFFFFFFFF,
                               ssrc=self._video_ssrc, payload=payload)
            self._video_seq = (self._video_seq + 1) & 0xFFFF
            self._send(packet.serialize(), self.video_port)
            self._video_packets += 1
            self._video_octets += len(payload)

    def _read_rtcp(self) -> None:
        """Take the keyframe requests (PLI, FIR) that arrived since the last frame."""
        while True:
            try:
                datagram = self._sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # an ICMP error for an earlier datagram (Janus restarting): nothing to read
            try:
                packets = RtcpPacket.parse(datagram)
            except ValueError:
                continue  # not RTCP
            for packet in packets:
                if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (PSFB_PLI, PSFB_FIR):
                    self._keyframe_wanted = True
                    self.keyframes_requested += 1

    def _send_sender_report(self, start: int) -> None:
        if self._last_report_samples is not None and \
                start - self._last_report_samples < SENDER_REPORT_INTERVAL_S * self.audio_rate:
            return
        self._last_report_samples = start
        now = time.time() + NTP_EPOCH_OFFSET
        report = RtcpSrPacket(ssrc=self._video_ssrc, sender_info=RtcpSenderInfo(
            ntp_timestamp=(int(now) << 32) | int((now % 1) * (1 << 32)),
            rtp_timestamp=(self._video_ts0 + start * VIDEO_CLOCK // self.audio_rate) & 0xFFFFFFFF,
            packet_count=self._video_packets & 0xFFFFFFFF, octet_count=self._video_octets & 0xFFFFFFFF))
        self._send(bytes(report), self.video_rtcp_port)

    def _send_audio(self, audio: np.ndarray) -> None:
        chunk = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="s16", layout="mono")
        chunk.sample_rate = self.audio_rate
        for frame in self._resampler.resample(chunk):
            frame.pts = self._opus_in
            frame.time_base = Fraction(1, AUDIO_CLOCK)
            self._opus_in += frame.samples
            for packet in self._opus.encode(frame):
                # packet.pts counts input samples; the first is negative (the encoder's look-ahead),
                # which keeps the decoded audio on the same timeline as the video.
                packet_ts = int(packet.pts)
                rtp = RtpPacket(payload_type=AUDIO_PT, marker=0, sequence_number=self._audio_seq,
                                timestamp=(self._audio_ts0 + packet_ts) & 0xFFFFFFFF,
                                ssrc=self._audio_ssrc, payload=bytes(packet))
                self._audio_seq = (self._audio_seq + 1) & 0xFFFF
                self._send(rtp.serialize(), self.audio_port)

    def send_event(self, text: str) -> None:
        """One text message (JSON) to every viewer's data channel."""
        if not self.data_port:
            raise ValueError("this publisher has no data port")
        data = text.encode("utf-8")
        if len(data) > DATA_MAX_BYTES:
            raise ValueError(f"an event must fit one datagram: {len(data)} bytes > {DATA_MAX_BYTES}")
        self._send(data, self.data_port)

    def _send(self, datagram: bytes, port: int) -> None:
        try:
            self._sock.sendto(datagram, (self.host, port))
        except OSError:
            # UDP: a full buffer or an ICMP port-unreachable from a Janus restarting is a lost
            # packet, as on the wire; the next keyframe (at most 2 s) repairs the picture.
            return
        self.bytes_sent += len(datagram)

    def close(self) -> None:
        self._sock.close()
