"""Audio for tests: WAV bodies of chosen formats, and a speech-like signal (a voiced buzz whose
loudness rises and falls like syllables)."""

from __future__ import annotations

import io
import wave

import numpy as np


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> bytes:
    """A WAV file of `samples` (int16, mono), copied to `channels` channels, at `width` bytes a sample."""
    data = np.repeat(np.asarray(samples, np.int16)[:, None], channels, axis=1)
    if width == 1:
        raw = ((data.astype(np.int32) >> 8) + 128).astype(np.uint8).tobytes()
    else:
        raw = data.astype("<i2").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(raw)
    return out.getvalue()


def syllables(seconds: float, rate: int, syllable_hz: float = 3.0, seed: int = 1) -> np.ndarray:
    """A 140 Hz buzz with harmonics, loud and quiet `syllable_hz` times a second, with pauses."""
    t = np.arange(int(seconds * rate)) / rate
    buzz = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi)
    loudness = np.clip(np.sin(2 * np.pi * syllable_hz * t + phase), 0, None) ** 1.5
    signal = buzz * loudness * 6000
    return np.clip(signal, -32768, 32767).astype(np.int16)
