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


def wav_header_bytes(payload: bytes, rate: int, channels: int, bits: int, tag: int = 1,
                     extensible_subformat: int | None = None) -> bytes:
    """A WAV file written by hand: any format tag and sample size (Python's `wave` writes only
    PCM), or a WAVE_FORMAT_EXTENSIBLE header (tag 0xFFFE) whose sub-format GUID starts with
    `extensible_subformat` (1 PCM, 3 float), as ffmpeg writes for more than two channels."""
    import struct

    block_align = channels * bits // 8
    common = struct.pack("<HHIIHH", tag, channels, rate, rate * block_align, block_align, bits)
    if extensible_subformat is not None:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        mask = (1 << channels) - 1
        fmt = common + struct.pack("<HHI", 22, bits, mask) + struct.pack("<H", extensible_subformat) + guid_tail
    else:
        fmt = common
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks
