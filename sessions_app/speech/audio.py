"""Audio bodies and envelopes: 16-bit PCM WAV in, mono int16 at the session's rate out."""

from __future__ import annotations

import io
import wave

import numpy as np


class BadAudio(ValueError):
    """The body is not audio this server can play; `code` says why (the API answers 422)."""

    def __init__(self, message: str, code: str = "invalid_audio") -> None:
        super().__init__(message)
        self.code = code


MIN_RATE = 8000
MAX_RATE = 192000


def read_wav(data: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    """(mono int16 samples, sample rate) of a 16-bit PCM WAV file. Stereo and wider are mixed down.
    Anything else (another sample format, a truncated or empty file, silence longer than
    `max_seconds`) is BadAudio."""
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels, width, rate, count = (reader.getnchannels(), reader.getsampwidth(),
                                            reader.getframerate(), reader.getnframes())
            if width != 2:
                raise BadAudio(f"The WAV file holds {8 * width}-bit samples; send 16-bit PCM.", "unsupported_audio")
            if not MIN_RATE <= rate <= MAX_RATE:
                raise BadAudio(f"The WAV file's sample rate ({rate} Hz) is not between {MIN_RATE} and {MAX_RATE} Hz.",
                               "unsupported_audio")
            if count > max_seconds * rate + rate:  # the header's count, before reading what it claims
                raise BadAudio(f"The audio is longer than {max_seconds:g} s.", "audio_too_long")
            raw = reader.readframes(count)
    except BadAudio:
        raise
    except (wave.Error, EOFError, ValueError) as error:
        raise BadAudio(f"The body is not a readable WAV file ({error}).") from None
    usable = len(raw) // (2 * channels) * (2 * channels)
    samples = np.frombuffer(raw[:usable], dtype="<i2").reshape(-1, channels)
    if len(samples) == 0:
        raise BadAudio("The WAV file holds no audio.")
    if len(samples) > max_seconds * rate:
        raise BadAudio(f"The audio is longer than {max_seconds:g} s.", "audio_too_long")
    mono = samples[:, 0] if channels == 1 else samples.astype(np.int32).mean(axis=1)
    return np.asarray(mono, dtype=np.int16), rate


def resample(samples: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    """int16 samples from `rate` to `to_rate`, band-limited (FFT; a whole utterance at once: a
    minute at 48 kHz takes ~0.1 s here)."""
    if rate == to_rate or len(samples) == 0:
        return np.asarray(samples, dtype=np.int16)
    count = max(1, round(len(samples) * to_rate / rate))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    keep = count // 2 + 1
    if keep <= len(spectrum):
        spectrum = spectrum[:keep]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(keep - len(spectrum), dtype=spectrum.dtype)])
    out = np.fft.irfft(spectrum, n=count) * (count / len(samples))
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def envelope(samples: np.ndarray, rate: int, step_s: float = 0.01, window_s: float = 0.03) -> np.ndarray:
    """RMS loudness (0..32768 scale) of the samples, one value per `step_s`, each over `window_s`
    centred on its step."""
    step = max(1, round(rate * step_s))
    half = max(1, round(rate * window_s / 2))
    count = -(-len(samples) // step)
    squares = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    centres = np.arange(count) * step + step // 2
    lo = np.clip(centres - half, 0, len(samples))
    hi = np.clip(centres + half, 0, len(samples))
    width = np.maximum(1, hi - lo)
    return np.sqrt((squares[hi] - squares[lo]) / width)
