"""The student's voice in a session: what a viewer's microphone sends (WebSocket `A` messages,
WebRTC audio) reaches the session's stage, which hears it here.

Per stage (one per session in this process): the audio is resampled to 16 kHz as it streams,
Silero VAD marks speech in 32 ms chunks (speech.hearing.Turns), and each turn gives the stage's
viewers `student.started` / `student.ended` events (`pts_us` on the stream's clock), then, once
recognised (a worker thread: the recogniser takes ~0.5 s a turn, started at the turn's first
0.25 s pause so that its words are ready soon after the 0.6 s of silence that ends it: the last
word to the transcript went from 1.13 s to 0.61 s median, bench/listen_bench.py), a `transcript`
event, and the turn is kept for the session's transcript. A turn that starts while the tutor speaks cuts the
tutor (barge-in, SESSION_BARGE_IN) unless it is the tutor's own voice coming back through the
student's speakers: what was heard is compared with what the stream just played
(speech.hearing.echo_likeness), and such a turn is ignored whole.

Where the scaled-out form (stage workers) comes, its workers will hear the student the same way;
for now this runs in the embedded single-process server.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from math import gcd

import numpy as np
from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone
from scipy.signal import firwin, lfilter

from sessions_app.speech import hearing
from sessions_app.speech.audio import resample

logger = logging.getLogger(__name__)

# Heard audio kept (16 kHz): a turn is recognised from it (SESSION_LISTEN_MAX_TURN_S at most).
KEEP_S = 40.0
PRE_ROLL_S = 0.2  # recognised from a little before the VAD's start, and after its end
# When a turn starts: the last ECHO_HEARD_S of the student's audio against what the stream played
# over the last ECHO_PLAYED_S (the echo's delay may be up to that: the client's buffers, the
# network, a busy machine). The tutor's voice fed back scores ~1.0 (its own waveform, delayed);
# other speech scored at most 0.32 over 60 windows of two real recordings against a third.
ECHO_HEARD_S = 0.5
ECHO_PLAYED_S = 4.0
ECHO_THRESHOLD = 0.45
ECHO_DELAY_ROOM_S = 0.3

_recognizing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recognize")


class StreamResampler:
    """Resampling of a stream that arrives in small chunks, with no seam between them: a
    polyphase low-pass filter whose state carries over."""

    def __init__(self, rate: int, to_rate: int) -> None:
        divisor = gcd(rate, to_rate)
        self.up, self.down = to_rate // divisor, rate // divisor
        self.taps = firwin(16 * max(self.up, self.down) + 1, 1.0 / max(self.up, self.down)) * self.up
        self.state = np.zeros(len(self.taps) - 1)
        self.phase = 0

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        if self.up == self.down:
            return samples.astype(np.float32)
        stuffed = np.zeros(len(samples) * self.up)
        stuffed[::self.up] = samples
        filtered, self.state = lfilter(self.taps, 1.0, stuffed, zi=self.state)
        out = filtered[self.phase::self.down]
        self.phase = (self.phase - len(stuffed)) % self.down
        return out.astype(np.float32)


class Listener:
    """The student's audio of one stage."""

    def __init__(self, stage) -> None:
        self.stage = stage
        self.turns = hearing.Turns(min_speech_s=settings.SESSION_BARGE_IN_MIN_SPEECH_S,
                                   end_silence_s=settings.SESSION_LISTEN_END_SILENCE_S,
                                   max_turn_s=settings.SESSION_LISTEN_MAX_TURN_S)
        self.resamplers: dict[int, StreamResampler] = {}
        # The last KEEP_S (at least) at 16 kHz, in a buffer twice that size written in place and
        # shifted when full (concatenating a 40 s buffer for every 40 ms chunk copied ~60 MB/s).
        self.buffer = np.zeros(2 * int(KEEP_S * hearing.RATE), np.float32)
        self.filled = 0
        self.heard_from = 0  # the sample number of buffer[0]
        self.places: deque[tuple[int, int]] = deque(maxlen=4096)  # (16 kHz sample, stream pts_us) per chunk
        self.anchor: int | None = None  # stream pts_us minus the sender's pts_us
        self.echo_turn = False  # the turn now going on is the tutor's own voice
        self.barged_in = False  # the turn now going on cut the tutor
        # A recognition started at a pause in the turn (start, end, future): when the turn ends
        # there, its words are ready ~0.35 s sooner than a recognition started then.
        self.early: tuple[int, int, asyncio.Future] | None = None

    def hear(self, sender_pts_us: int, samples: np.ndarray, rate: int) -> None:
        """A chunk of the student's audio (int16 mono at `rate`), stamped by its sender's clock."""
        if self.anchor is None:
            self.anchor = self.stage.pts - sender_pts_us
        resampler = self.resamplers.get(rate) or self.resamplers.setdefault(rate, StreamResampler(rate, hearing.RATE))
        part = resampler(samples.astype(np.float32) / 32768.0)
        self.places.append((self.turns.position + len(self.turns.pending), sender_pts_us + self.anchor))
        if self.filled + len(part) > len(self.buffer):
            keep = int(KEEP_S * hearing.RATE)
            drop = self.filled - keep
            self.buffer[:keep] = self.buffer[drop:self.filled]
            self.filled, self.heard_from = keep, self.heard_from + drop
        self.buffer[self.filled:self.filled + len(part)] = part
        self.filled += len(part)
        for event in self.turns.hear(part):
            if event.kind == "started":
                self._started(event)
            elif event.kind == "paused":
                if not self.echo_turn:
                    self._paused(event)
            elif not self.echo_turn:
                self._ended(event)
            else:
                self.echo_turn = False

    def pts_of(self, sample: int) -> int:
        """The stream time (µs) of 16 kHz sample `sample`."""
        place = next((p for p in reversed(self.places) if p[0] <= sample), self.places[0] if self.places else (0, 0))
        return place[1] + (sample - place[0]) * 1_000_000 // hearing.RATE

    def _started(self, event: hearing.TurnEvent) -> None:
        likeness = self._echo_likeness()
        if likeness >= ECHO_THRESHOLD:
            self.echo_turn = True
            logger.info("session %s: the tutor's own voice came back (likeness %.2f): ignored",
                        self.stage.session_id, likeness)
            return
        barge_in = settings.SESSION_BARGE_IN and self.stage.playing is not None
        logger.info("session %s: the student speaks%s (likeness to what was played %.2f)", self.stage.session_id,
                    ", over the tutor" if barge_in else "", likeness)
        self.stage.send_event({"type": "student.started", "pts_us": self.pts_of(event.start), "barge_in": barge_in,
                               "speaker": "student"})
        self.barged_in = barge_in
        if barge_in:
            self.stage.barge_in()

    def _echo_likeness(self) -> float:
        played = self.stage.recently_played(ECHO_PLAYED_S + ECHO_HEARD_S)
        if played is None:
            return 0.0
        played = resample(played, self.stage.rate, hearing.RATE).astype(np.float32) / 32768.0
        # The echo comes back late: the heard window must fit in what was played with room for that
        # delay. Just after the stage started (an utterance played at once) little was played yet:
        # the window is then shorter (a test saw 0.28 with both windows 0.48 s long, 1.00 so).
        size = min(int(ECHO_HEARD_S * hearing.RATE), len(played) - int(ECHO_DELAY_ROOM_S * hearing.RATE))
        if size < int(0.1 * hearing.RATE):
            return 0.0
        return hearing.echo_likeness(self.buffer[max(0, self.filled - size):self.filled], played)

    def _turn_samples(self, event: hearing.TurnEvent) -> np.ndarray:
        pad = int(PRE_ROLL_S * hearing.RATE)
        lo = max(0, event.start - pad - self.heard_from)
        hi = max(lo, event.end + pad - self.heard_from)
        return self.buffer[lo:min(hi, self.filled)].copy()

    def _recognition(self, samples: np.ndarray) -> asyncio.Future:
        recognizer = settings.SESSION_RECOGNIZER
        return asyncio.get_running_loop().run_in_executor(
            _recognizing, lambda: hearing.load_recognizer(recognizer).transcribe(samples))

    def _paused(self, event: hearing.TurnEvent) -> None:
        """The student paused: recognise the turn so far now (one at a time), in case it is over."""
        if settings.SESSION_RECOGNIZER and (self.early is None or self.early[2].done()):
            self.early = (event.start, event.end, self._recognition(self._turn_samples(event)))

    def _ended(self, event: hearing.TurnEvent) -> None:
        start_pts, end_pts = self.pts_of(event.start), self.pts_of(event.end)
        turn_id = str(uuid.uuid4())
        began = timezone.now() - timedelta(seconds=(self.turns.position - event.start) / hearing.RATE)
        self.stage.send_event({"type": "student.ended", "pts_us": end_pts, "turn_id": turn_id, "speaker": "student"})
        early, self.early = self.early, None
        if not settings.SESSION_RECOGNIZER:
            return
        if early is not None and early[:2] == (event.start, event.end):
            words = early[2]  # recognised at its pause: the turn ended there
        else:
            samples = self._turn_samples(event)
            if not len(samples):
                return
            words = self._recognition(samples)
        asyncio.get_running_loop().create_task(
            self._recognise(turn_id, words, start_pts, end_pts, began, self.barged_in))

    async def _recognise(self, turn_id: str, words: asyncio.Future, start_pts: int, end_pts: int, began,
                         barge_in: bool) -> None:
        try:
            text = await words
        except Exception:
            logger.exception("session %s: a student's turn could not be recognised", self.stage.session_id)
            return
        if not text:
            return
        await database_sync_to_async(keep_turn, thread_sensitive=False)(
            self.stage.session_id, turn_id, text, start_pts, end_pts, began, barge_in)
        self.stage.send_event({"type": "transcript", "speaker": "student", "turn_id": turn_id, "text": text,
                               "start_pts_us": start_pts, "end_pts_us": end_pts, "barge_in": barge_in})


def keep_turn(session_id: str, turn_id: str, text: str, start_pts: int, end_pts: int, began, barge_in: bool) -> None:
    """The turn, with the session's transcript (not when the session went meanwhile)."""
    from sessions_app.models import StudentTurn, TutoringSession

    if TutoringSession.objects.filter(pk=session_id).exists():
        StudentTurn.objects.create(session_id=session_id, turn_id=turn_id, text=text, start_pts_us=start_pts,
                                   end_pts_us=end_pts, started_at=began, barge_in=barge_in)
