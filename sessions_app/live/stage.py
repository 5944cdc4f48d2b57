"""A session's live media in this server process: one clock, one renderer, every viewer.

The stage ticks once per video frame. Each tick takes the audio samples that frame covers
(speech.clock: audio is the master), from the utterance playing or silence between utterances,
and the frame: the idle back-and-forth loop's next frame, its mouth drawn open by the renderer
while speech sounds (rendering runs in a thread pool: OpenCV's decode, remap and encode release
the GIL). Every viewer gets the same timestamped messages, so the work is done once per session
however many watch; media goes out LEAD_FRAMES ahead of its time, the client's buffer.

Each tick goes to every viewer as one call, Viewer.frame: the frame (JPEG, I420, or both:
whichever its viewers want is made once) and its audio samples. Events go to Viewer.put:
("event", dict) JSON; ("gone", None) and ("failed", None) when the clock stopped. A stage's
viewers are the SessionWatchers of live/watcher.py, which pass the ticks on to their transport.

With several server processes and no stage workers, a session's viewers should reach one process
(route sockets by session id): each process's stage plays the utterances it claims, and another's
viewers would not hear them. With stage workers (SESSION_MEDIA_SERVER="janus") a session has one
stage, on the worker it is placed on (live/placement.py), and web processes relay it (live/relay.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from common.db_threads import in_worker_thread
from sessions_app import speaking
from sessions_app.live.frames import AvatarFrames, jpeg_frame, ping_pong
from sessions_app.speech.audio import resample
from sessions_app.speech.clock import frame_samples, pts_us
from sessions_app.speech.mouth import openness_at, shape_at
from sessions_app.speech.renderer import MIN_OPENNESS, FrameRenderer, FrameSpeech, silence

logger = logging.getLogger(__name__)

# Media goes out this many frames before its presentation time: the client's jitter buffer
# (120 ms at 25 fps). Also what an interrupt can still let through.
LEAD_FRAMES = 3
# Between utterances, how often the database is asked for a queued one that no message announced.
LOOK_EVERY_S = 1.0
# While an utterance still grows (its later sentences being made, or its text still arriving),
# how often the database is asked for its next pieces when no message announced one.
MORE_EVERY_S = 0.25
SPEAKING_JPEG_QUALITY = 85
PLAYED_FRAMES = 125  # the stage's last 5 s of audio at 25 fps: what an echo of the tutor is checked against



def _in_thread(function):
    """A database call from the stage, in a worker thread of its own: not the thread-sensitive
    executor, which a stage cancelled while its socket closes could wait on for ever (seen under
    the test client, whose main thread serves that executor); its connection closed after it."""
    return in_worker_thread(function)


_render_pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="render")


@dataclass
class Playing:
    pk: int
    utterance_id: str
    samples: np.ndarray
    mouth: np.ndarray
    shape: np.ndarray  # (steps, 2) spread, teeth; (0, 2) when the utterance has none
    rate: int
    position: int = 0  # samples already played
    made: int = 0  # pieces (sentences) taken so far
    complete: bool = True  # no more audio will come; else it waits (silent) at its end for more
    source_rate: int = 0  # the rate its pieces were made at (0: the stage's)

    def extend(self, pieces: list[tuple[bytes, bytes, bytes]], source_rate: int) -> None:
        """Lay the next pieces after the audio so far (each a whole number of mouth steps long:
        speaking.say pads them, so the tracks stay in step with the sound)."""
        if not pieces:
            return
        samples = [np.frombuffer(pcm, "<i2") for pcm, _, _ in pieces]
        if source_rate != self.rate:
            samples = [resample(part, source_rate, self.rate) for part in samples]
        self.samples = np.concatenate([self.samples, *samples])
        self.mouth = np.concatenate([self.mouth, *(np.frombuffer(track, "<f4") for _, track, _ in pieces)])
        self.shape = np.concatenate([self.shape.reshape(-1, 2),
                                     *(np.frombuffer(shape, "<f4").reshape(-1, 2) for _, _, shape in pieces)])
        self.made += len(pieces)


class Viewer(Protocol):
    """What a stage calls on each of its viewers (live/watcher.py's SessionWatcher is one)."""

    wants_jpeg: bool  # the frame as JPEG bytes
    wants_i420: bool  # the frame as a YUV 4:2:0 (I420) array, as video encoders take it

    def frame(self, first_sample: int, pts: int, jpeg: bytes | None, i420: np.ndarray | None,
              audio: np.ndarray) -> None:
        """One tick of the clock: the video frame at `pts` (µs) and the audio samples it covers,
        the first of them sample `first_sample` of the stage's clock."""

    def put(self, item: tuple) -> None:
        """("event", dict), or ("gone", None) / ("failed", None) when the clock stopped."""


class Stage:
    def __init__(self, session_id: str, frames: AvatarFrames, renderer: FrameRenderer, audio_rate: int) -> None:
        self.session_id = session_id
        self.frames = frames
        self.renderer = renderer
        self.rate = audio_rate
        self.viewers: list[Viewer] = []
        self.playing: Playing | None = None
        self.wake = asyncio.Event()  # a speak: look for a queued utterance at the next tick
        self.cut = asyncio.Event()  # an interrupt: tick at once
        self.cut_up_to: int | None = None  # interrupt every utterance up to this id
        self.task: asyncio.Task | None = None
        self.dead = False  # its clock stopped on an error: new viewers get a new stage
        self.pts = 0  # the time of the frame last made (µs)
        self.played: deque[np.ndarray] = deque(maxlen=PLAYED_FRAMES)  # the last frames' audio
        self.sounded = 0  # frames since the last one with sound (the tutor's voice may still echo)
        self.listener = None  # the student's audio, once some arrives (sessions_app/live/listening.py)
        # Takes no new utterance: its stage worker is stopping and hands the session over once
        # what plays has ended (the next worker plays the queue).
        self.holding = False
        self.finishing = False  # an utterance played to its end is being marked done

    # --- from the watchers of its viewers ----------------------------------------------------------
    def add(self, viewer: Viewer) -> None:
        self.viewers.append(viewer)
        if self.task is None:
            self.task = asyncio.create_task(self._run())

    def remove(self, viewer: Viewer) -> bool:
        """True when it was the last viewer (the stage has stopped)."""
        if viewer in self.viewers:
            self.viewers.remove(viewer)
        if self.viewers or self.task is None:
            return not self.viewers
        self.task.cancel()
        if self.playing is not None:  # nobody hears the rest
            asyncio.create_task(_in_thread(speaking.finish)(self.playing.pk, "interrupted"))
            self.playing = None
        return True

    def speak(self) -> None:
        self.wake.set()

    def hear(self, sender_pts_us: int, samples: np.ndarray, rate: int) -> None:
        """The student's microphone: a chunk of mono int16 audio at `rate` from a viewer."""
        if self.listener is None:
            from sessions_app.live.listening import Listener

            self.listener = Listener(self)
        self.listener.hear(sender_pts_us, samples, rate)

    def send_event(self, event: dict) -> None:
        self._send(("event", event))

    def recently_played(self, seconds: float) -> np.ndarray | None:
        """The audio of the last `seconds` the stage made; None when none of it had sound."""
        if self.sounded * 1.0 / self.frames.fps > seconds or not self.played:
            return None
        count = max(1, int(seconds * self.frames.fps))
        return np.concatenate(list(self.played)[-count:])

    def barge_in(self) -> None:
        """The student talks over the tutor: cut what it says now, here, and drop what waits (the
        database, and the session's other stages, hear of it as from an interrupt)."""
        if self.playing is not None:
            self.interrupt(self.playing.pk)
        asyncio.get_running_loop().create_task(self._drop_for_barge_in())

    async def _drop_for_barge_in(self) -> None:
        try:
            await _in_thread(speaking.interrupt)(self.session_id)
        except Exception:  # the session ended meanwhile: nothing to cut
            logger.info("session %s: barge-in found nothing to interrupt", self.session_id)

    def interrupt(self, up_to: int) -> None:
        self.cut_up_to = max(up_to, self.cut_up_to or 0)
        self.cut.set()

    # --- the clock -----------------------------------------------------------------------------
    def _send(self, item) -> None:
        for viewer in self.viewers:
            viewer.put(item)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        fps = self.frames.fps
        start = loop.time()
        next_look = start
        next_more = start
        index = 0
        try:
            while True:
                first, end = frame_samples(index, self.rate, fps)
                pts = pts_us(first, self.rate)
                if self.cut_up_to is not None:
                    await self._cut(pts)
                if self.playing is None and not self.holding and (self.wake.is_set() or loop.time() >= next_look):
                    self.wake.clear()
                    next_look = loop.time() + LOOK_EVERY_S
                    await self._claim(pts)
                elif self.playing is not None and not self.playing.complete and (
                        self.wake.is_set() or loop.time() >= next_more):
                    self.wake.clear()
                    next_more = loop.time() + MORE_EVERY_S
                    await self._more(self.playing)
                audio, speech, played = self._audio(end - first)
                self.pts = pts
                self.played.append(audio)
                self.sounded = 0 if played else self.sounded + 1
                shown = ping_pong(index, self.frames.frame_count)
                jpeg = await jpeg_frame(self.frames, shown)
                i420 = None
                mouth_moves = speech is not None and speech.openness >= MIN_OPENNESS
                if self.renderer is not None and getattr(self.renderer, "renders_silence", False):
                    # The recorded video talks: every frame shows the rendered mouth (at rest in silence).
                    speech = speech or silence(end - first, self.rate)
                    mouth_moves = True
                want_i420 = any(viewer.wants_i420 for viewer in self.viewers)
                if mouth_moves or want_i420:
                    want_jpeg = any(viewer.wants_jpeg for viewer in self.viewers)
                    jpeg, i420 = await loop.run_in_executor(_render_pool, self._picture, jpeg, shown,
                                                            speech if mouth_moves else None, want_jpeg, want_i420)
                for viewer in self.viewers:
                    viewer.frame(first, pts, jpeg, i420, audio)
                if (self.playing is not None and self.playing.complete
                        and self.playing.position >= len(self.playing.samples)):
                    done = self.playing
                    self.playing = None
                    self._send(("event", {"type": "utterance.ended", "utterance_id": done.utterance_id,
                                          "pts_us": pts_us(first + played, self.rate),
                                          "reason": "done"}))
                    self.finishing = True  # until the database says so (a stage worker's hand-over waits for it)
                    try:
                        await _in_thread(speaking.finish)(done.pk, "done")
                    finally:
                        self.finishing = False
                    next_look = loop.time()  # the next one may wait already
                index += 1
                delay = start + (index - LEAD_FRAMES) / fps - loop.time()
                if delay < -1.0:  # fell a second behind (a stalled machine): carry on, don't burst
                    start -= delay
                    delay = 0.0
                if delay > 0:
                    try:
                        async with asyncio.timeout(delay):  # not wait_for: it can swallow a cancel (3.11)
                            await self.cut.wait()
                    except TimeoutError:
                        pass
        except asyncio.CancelledError:
            raise
        except OSError:
            # The avatar's files went (the tutor switched and the old avatar was deleted, or it is
            # being prepared again) before its viewers heard: they look where the session stands.
            self.dead = True
            self._send(("gone", None))
        except Exception:
            logger.exception("stage of session %s failed", self.session_id)
            self.dead = True
            self._send(("failed", None))

    def _audio(self, count: int) -> tuple[np.ndarray, FrameSpeech | None, int]:
        """The frame's `count` samples, what the mouth does over them, and how many are speech."""
        playing = self.playing
        if playing is None:
            return np.zeros(count, np.int16), None, 0
        part = playing.samples[playing.position:playing.position + count]
        start_s = playing.position / playing.rate
        # One still growing waits at its end (silent, the mouth at rest) for its next sentence.
        playing.position += count if playing.complete else len(part)
        if not len(part):
            return np.zeros(count, np.int16), None, 0
        audio = part if len(part) == count else np.concatenate([part, np.zeros(count - len(part), np.int16)])
        end_s = start_s + count / playing.rate
        openness = openness_at(playing.mouth, start_s, end_s)
        spread, teeth = shape_at(playing.shape, start_s, end_s)
        return audio, FrameSpeech(openness, audio, playing.rate, spread, teeth), len(part)

    async def _claim(self, pts: int) -> None:
        utterance = await _in_thread(speaking.claim_next)(self.session_id)
        if utterance is None:
            return
        samples = np.frombuffer(bytes(utterance.pcm), dtype="<i2")
        track = np.frombuffer(bytes(utterance.mouth), dtype="<f4")
        shape = np.frombuffer(bytes(utterance.mouth_shape), dtype="<f4").reshape(-1, 2)
        if utterance.rate != self.rate:  # made under another SESSION_AUDIO_RATE
            samples = resample(samples, utterance.rate, self.rate)
        playing = Playing(utterance.pk, str(utterance.utterance_id), samples, track, shape, self.rate,
                          complete=False, source_rate=utterance.rate)
        await self._more(playing)
        self.playing = playing
        self._send(("event", {"type": "utterance.started", "utterance_id": str(utterance.utterance_id),
                              "pts_us": pts, "duration_s": round(len(playing.samples) / self.rate, 3),
                              "complete": playing.complete}))

    async def _more(self, playing: Playing) -> None:
        """Take the utterance's pieces made since the last look."""
        more = await _in_thread(speaking.more_audio)(playing.pk, playing.made)
        playing.extend(more.pieces, playing.source_rate or self.rate)
        playing.complete = more.complete

    async def _cut(self, pts: int) -> None:
        up_to, self.cut_up_to = self.cut_up_to, None
        self.cut.clear()
        playing = self.playing
        if playing is not None and playing.pk <= up_to:
            self.playing = None
            self._send(("event", {"type": "utterance.ended", "utterance_id": playing.utterance_id,
                                  "pts_us": pts, "reason": "interrupted"}))
            await _in_thread(speaking.finish)(playing.pk, "interrupted")

    def _picture(self, jpeg: bytes, index: int, speech: FrameSpeech | None, want_jpeg: bool,
                 want_i420: bool) -> tuple[bytes | None, np.ndarray | None]:
        """The frame's picture, drawn speaking when `speech` is given, as its viewers want it: JPEG
        (the prepared bytes when nothing changed), I420 (decoded once for every WebRTC viewer)."""
        idle = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        frame = idle if speech is None else self.renderer.render(idle, index, speech)
        if want_jpeg and frame is not idle:
            jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, SPEAKING_JPEG_QUALITY])[1].tobytes()
        return (jpeg if want_jpeg else None), (i420_of(frame) if want_i420 else None)


def i420_of(frame: np.ndarray) -> np.ndarray:
    """A BGR picture as I420 (planar YUV 4:2:0, (h*3/2, w) bytes); an odd width or height is
    padded by one repeated pixel (4:2:0 needs even sides)."""
    height, width = frame.shape[:2]
    if height % 2 or width % 2:
        frame = cv2.copyMakeBorder(frame, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)


class Stages:
    """The stages of this process, one per session and avatar run."""

    def __init__(self) -> None:
        self._stages: dict[tuple[str, str], Stage] = {}

    def running(self, session_id: str, frames: AvatarFrames) -> Stage | None:
        stage = self._stages.get((session_id, frames.version))
        return None if stage is None or stage.dead else stage

    def join(self, session_id: str, frames: AvatarFrames, renderer: FrameRenderer | None, audio_rate: int,
             viewer: Viewer) -> Stage:
        """The session's running stage, or a new one drawing with `renderer` (made by a viewer that
        found none running: only it reads the avatar's material)."""
        stage = self.running(session_id, frames)
        if stage is None:
            stage = self._stages[(session_id, frames.version)] = Stage(session_id, frames, renderer, audio_rate)
        stage.add(viewer)
        return stage

    def leave(self, stage: Stage, viewer: Viewer) -> None:
        if stage.remove(viewer):
            key = (stage.session_id, stage.frames.version)
            if self._stages.get(key) is stage:
                del self._stages[key]

    def of_session(self, session_id: str) -> list[Stage]:
        return [stage for (sid, _), stage in self._stages.items() if sid == session_id]

    def speak(self, session_id: str) -> None:
        """A speak was queued: the session's stages look for it at their next tick."""
        for stage in self.of_session(session_id):
            stage.speak()

    def interrupt(self, session_id: str, up_to: int) -> None:
        """Cut what the session's stages play, up to utterance `up_to`."""
        for stage in self.of_session(session_id):
            stage.interrupt(up_to)


stages = Stages()
