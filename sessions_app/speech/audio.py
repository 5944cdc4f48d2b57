"""Audio bodies and envelopes: 16-bit PCM WAV in, mono int16 at the session's rate out.

Memory: a body is read where it lies (no copy of its samples), mixed down and resampled in
chunks, so one body costs its mono samples plus a few MB of work whatever its length. The largest
body the API takes (120 s at 192 kHz mono, 46 MB) peaked 415 MB above its bytes (tracemalloc)
when it was read with `wave` and resampled by one float64 FFT; read in place and resampled in
chunks it peaks 10 MB above them, and a 64 MB stereo body 40 MB (its 32 MB of mono samples)
(sessions_app/speech/tests/test_audio_and_clock.py holds it under 64 MB)."""

from __future__ import annotations

import struct
from math import gcd

import numpy as np
from scipy.signal import resample_poly


class BadAudio(ValueError):
    """The body is not audio this server can play; `code` says why (the API answers 422)."""

    def __init__(self, message: str, code: str = "invalid_audio") -> None:
        super().__init__(message)
        self.code = code


MIN_RATE = 8000
MAX_RATE = 192000

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {0x0003: "32-bit float", 0x0006: "A-law", 0x0007: "µ-law", 0x0002: "ADPCM", 0x0055: "MP3"}

CHUNK_FRAMES = 1 << 16  # samples mixed down or resampled at a time: a few MB of work each


def _chunks(data: bytes) -> dict[bytes, tuple[int, int]]:
    """The RIFF file's chunks: id -> (offset of its data, its size as stored). A `data` chunk
    whose size runs past the end (a file cut short, or written as a stream with no size) keeps
    what is there."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise BadAudio("The body is not a WAV file (no RIFF/WAVE header).")
    found: dict[bytes, tuple[int, int]] = {}
    position = 12
    while position + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, position)
        found.setdefault(chunk_id, (position + 8, size))
        if chunk_id == b"data":
            break  # the samples run to the end of the file when their size says more
        position += 8 + size + (size & 1)  # chunks are padded to an even size
    return found


def read_wav(data: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    """(mono int16 samples, sample rate) of a 16-bit PCM WAV file, with a plain or a
    WAVE_FORMAT_EXTENSIBLE header (what ffmpeg writes for more than two channels; Python's `wave`
    refuses it). Stereo and wider are mixed down. Another sample format (8-bit, 24-bit, 32-bit
    float, compressed) or rate is BadAudio "unsupported_audio"; a file that is not WAV, cut
    before its samples, or empty, "invalid_audio"; longer than `max_seconds`, "audio_too_long"."""
    found = _chunks(data)
    if b"fmt " not in found or b"data" not in found:
        raise BadAudio("The body is not a readable WAV file (no fmt or data chunk).")
    fmt_at, fmt_size = found[b"fmt "]
    if fmt_size < 16 or fmt_at + 16 > len(data):
        raise BadAudio("The body is not a readable WAV file (its fmt chunk is too short).")
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", data, fmt_at)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if fmt_size < 40 or fmt_at + 40 > len(data):
            raise BadAudio("The body is not a readable WAV file (its extensible fmt chunk is too short).")
        tag = struct.unpack_from("<H", data, fmt_at + 24)[0]  # the sub-format GUID's first two bytes
    if tag != WAVE_FORMAT_PCM or bits != 16:
        kind = _FORMAT_NAMES.get(tag, f"{bits}-bit" if tag == WAVE_FORMAT_PCM else f"format {tag:#06x}")
        raise BadAudio(f"The WAV file holds {kind} samples; send 16-bit PCM.", "unsupported_audio")
    if channels < 1 or block_align != 2 * channels:
        raise BadAudio(f"The WAV file's header is inconsistent ({channels} channels, {block_align} bytes a frame).")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadAudio(f"The WAV file's sample rate ({rate} Hz) is not between {MIN_RATE} and {MAX_RATE} Hz.",
                       "unsupported_audio")
    data_at, data_size = found[b"data"]
    available = max(0, min(data_size, len(data) - data_at))
    count = available // block_align
    if count == 0:
        raise BadAudio("The WAV file holds no audio.")
    if count > max_seconds * rate:
        raise BadAudio(f"The audio is longer than {max_seconds:g} s.", "audio_too_long")
    # A view of the body's bytes, not a copy.
    frames = np.frombuffer(data, dtype="<i2", count=count * channels, offset=data_at).reshape(count, channels)
    if channels == 1:
        return frames[:, 0], rate
    mono = np.empty(count, dtype=np.int16)
    for start in range(0, count, CHUNK_FRAMES):  # int32 sums of a chunk, not of the whole body
        part = frames[start:start + CHUNK_FRAMES]
        mono[start:start + len(part)] = part.sum(axis=1, dtype=np.int32) // channels
    return mono, rate


def resample(samples: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    """int16 samples from `rate` to `to_rate`, band-limited: a polyphase filter (scipy's
    resample_poly) over chunks of CHUNK_FRAMES output samples, each with enough input on both
    sides for the filter, so the result is that of one pass over the whole utterance while the
    work held at once stays a few MB (the whole-utterance float64 FFT this replaces took ~400 MB
    for 120 s at 192 kHz). 120 s at 192 kHz takes ~0.4 s here."""
    if rate == to_rate or len(samples) == 0:
        return np.asarray(samples, dtype=np.int16)
    divisor = gcd(rate, to_rate)
    up, down = to_rate // divisor, rate // divisor
    count = max(1, round(len(samples) * to_rate / rate))
    out = np.zeros(count, dtype=np.int16)
    # resample_poly's filter reaches 10 * max(up, down) samples of the up-sampled signal to each
    # side; as input samples, rounded up to whole steps of `down` so every chunk starts in phase.
    reach = -(-(10 * max(up, down)) // up) + 1
    margin = -(-reach // down) * down
    step = max(1, CHUNK_FRAMES * down // up // down) * down  # input samples a chunk, a multiple of `down`
    for start in range(0, len(samples), step):
        lo = max(0, start - margin)
        piece = np.asarray(samples[lo:start + step + margin], dtype=np.float32)
        filtered = resample_poly(piece, up, down)
        first = (start - lo) * up // down  # the output sample at input `start`, in `filtered`
        out_start = start * up // down
        out_end = min(count, (start + step) * up // down)
        if out_end <= out_start:
            break
        part = filtered[first:first + out_end - out_start]
        out[out_start:out_start + len(part)] = np.clip(np.round(part), -32768, 32767)
    return out


def envelope(samples: np.ndarray, rate: int, step_s: float = 0.01, window_s: float = 0.03) -> np.ndarray:
    """RMS loudness (0..32768 scale) of the samples, one value per `step_s`, each over `window_s`
    centred on its step. Summed a chunk of steps at a time (float64 running sums of the whole
    utterance took 46 MB for two minutes)."""
    step = max(1, round(rate * step_s))
    half = max(1, round(rate * window_s / 2))
    count = -(-len(samples) // step)
    out = np.empty(count, dtype=np.float64)
    per_chunk = max(1, CHUNK_FRAMES // step)
    for first in range(0, count, per_chunk):
        centres = np.arange(first, min(count, first + per_chunk)) * step + step // 2
        lo = np.clip(centres - half, 0, len(samples))
        hi = np.clip(centres + half, 0, len(samples))
        base = int(lo[0])
        part = samples[base:int(hi[-1])].astype(np.float64)
        squares = np.concatenate([[0.0], np.cumsum(part * part)])
        width = np.maximum(1, hi - lo)
        out[first:first + len(centres)] = np.sqrt(np.maximum(0.0, squares[hi - base] - squares[lo - base]) / width)
    return out
