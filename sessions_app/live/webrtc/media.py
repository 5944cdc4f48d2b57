"""One WebRTC viewer's media: the stage's ticks turned into aiortc video and audio frames.

A PeerFeed takes one peer connection's frames (the stage's ticks, or the still while the avatar
is prepared, that its SessionWatcher passes on) and hands two aiortc tracks their frames. Both
tracks run on one timeline, counted in audio samples, that only moves forward: a new segment (a
new stage after an avatar switch, or the still shown while the avatar is prepared) starts where
the last one stopped, so the audio never has a hole and the video's timestamps stay on the
audio's clock. aiortc stamps Opus packets by the samples it has encoded, not by the frames' pts,
so an audio gap would put the two tracks out of step.
"""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

# Audio goes to the encoder in 20 ms frames: aiortc sends every Opus packet that one frame
# yields under one RTP timestamp, so a frame must never yield two (a 40 ms frame did).
AUDIO_FRAME_S = 0.02
# Video frames that may wait for the encoder; past it the oldest is dropped (a viewer whose
# encoder cannot keep up sees fewer frames rather than later ones).
VIDEO_BACKLOG_FRAMES = 6
# Audio frames that may wait (4 s): past it the viewer is too slow to follow and is closed.
AUDIO_BACKLOG_FRAMES = 200


class FeedTrack(MediaStreamTrack):
    """A track whose frames a PeerFeed puts in its queue; None ends it."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.queue: asyncio.Queue = asyncio.Queue()

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self.queue.get()
        if frame is None:
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        self.queue.put_nowait(None)
        super().stop()


class PeerFeed:
    """One peer connection's media: I420 frames and PCM into the two tracks."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.time_base = fractions.Fraction(1, rate)
        self.chunk = max(1, int(rate * AUDIO_FRAME_S))
        self.video = FeedTrack("video")
        self.audio = FeedTrack("audio")
        self.sends_video = self.sends_audio = False  # set from what the offer asked for
        self.too_slow = False
        self.frames_sent = 0
        self.frames_dropped = 0
        self._offset: int | None = None  # timeline sample minus stage sample, this segment
        self._end = 0  # timeline sample after the last audio put
        self._pending = np.zeros(0, np.int16)  # audio short of a whole 20 ms frame

    def new_segment(self) -> None:
        """What comes next continues the timeline from where it stands (a new clock starts)."""
        self._offset = None

    def frame(self, first_sample: int, pts: int, jpeg, i420: np.ndarray | None, audio: np.ndarray) -> None:
        if self._offset is None:
            self._offset = self._end - first_sample
        at = first_sample + self._offset
        if self.sends_video and i420 is not None:
            while self.video.queue.qsize() >= VIDEO_BACKLOG_FRAMES:
                self.video.queue.get_nowait()
                self.frames_dropped += 1
            picture = VideoFrame.from_ndarray(i420, format="yuv420p")
            picture.pts, picture.time_base = at, self.time_base
            self.video.queue.put_nowait(picture)
            self.frames_sent += 1
        if self.sends_audio:
            pending = np.concatenate([self._pending, audio]) if len(self._pending) else audio
            start = at - len(self._pending)
            whole = len(pending) // self.chunk * self.chunk
            for offset in range(0, whole, self.chunk):
                sound = AudioFrame.from_ndarray(pending[None, offset:offset + self.chunk].astype(np.int16, copy=False),
                                                format="s16", layout="mono")
                sound.sample_rate, sound.pts, sound.time_base = self.rate, start + offset, self.time_base
                self.audio.queue.put_nowait(sound)
            self._pending = pending[whole:].copy()
            if self.audio.queue.qsize() > AUDIO_BACKLOG_FRAMES:
                self.too_slow = True
        self._end = at + len(audio)

    def stop(self) -> None:
        self.video.stop()
        self.audio.stop()


def mono_samples(frame) -> tuple[int, np.ndarray, int]:
    """A received aiortc audio frame as (time in µs on the sender's clock, mono int16 samples,
    rate): packed 16-bit with the channels interleaved, mixed down to one."""
    samples = frame.to_ndarray().reshape(-1)
    channels = len(frame.layout.channels)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return int(frame.pts * frame.time_base * 1_000_000), samples, frame.sample_rate


async def hear_track(track, hear, listening=lambda: True) -> None:
    """Pass a received audio track to `hear(pts_us, samples, rate)` (mono_samples' form), frame by
    frame, while `listening()`, until the track ends."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return  # the track ended
        if frame.pts is not None and listening():
            hear(*mono_samples(frame))
