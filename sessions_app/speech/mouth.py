"""What the mouth does over an utterance, per TRACK_STEP_S, from the phoneme timings of
synthesised speech or from the audio itself (recorded speech):

- openness: one value in [0, 1] (the "mouth" track);
- shape: two values, spread (-1 rounded o/u/w .. +1 spread i/e) and teeth (0..1: teeth showing;
  with the lips nearly closed, teeth on the lower lip as in f/v) — what a sample-based renderer
  needs to pick the right recorded mouth, beside how open it is."""

from __future__ import annotations

import numpy as np

from sessions_app.speech.audio import envelope
from sessions_app.speech.voices import Phoneme

TRACK_STEP_S = 0.01

# Openness by phoneme (IPA, as espeak-ng and Piper write them). Lips close on m/b/p and nearly on
# f/v; open vowels open widest. Unlisted symbols (other consonants) get CONSONANT; pauses,
# punctuation and stress marks get 0.
_OPEN = {**dict.fromkeys("aɑæɐʌɒɔaɶ", 1.0), **dict.fromkeys("eɛəɜɚoøœɤɘɵ", 0.7),
         **dict.fromkeys("iɪuʊyʏɨʉɯ", 0.45), **dict.fromkeys("mbpɓ", 0.0), **dict.fromkeys("fvɱ", 0.12)}
_SILENT = set(" .,;:!?¡¿-—…'\"()^$_ˈˌːˑ|‖")
CONSONANT = 0.3
# The mouth moves smoothly: a one-pole low-pass run forwards then backwards (zero phase: a
# forward-only filter of this constant lagged the mouth ~1.5 frames behind the sound at 25 fps).
_SMOOTHING_S = 0.04


# The phoneme timings of Piper's alignments put the mouth one frame behind the sound at 25 fps
# (best-lag correlation with the loudness at +1 frame on four sentences); moved 40 ms earlier it
# is at 0 (correlation 0.31-0.67 alone, 0.48-0.78 combined with loudness as below).
PHONEME_LEAD_S = 0.04
# How much loudness shapes a phoneme's opening: the track is phonemes x (1 - W + W x loudness),
# so lips still close on m/b/p however loud, and a loud vowel opens wider than a soft one. With
# the tutor's own recorded mouth (speech/mouth_samples.py) the opening shown follows the track in
# steps of the recorded shapes: the mouth measured on the rendered frames correlated with the
# sound at 0.35-0.43 with W = 0.6, 0.43-0.59 with W = 0.9 (three sentences, a real talking video);
# which vowel it is now shows in the shape track (spread, teeth) rather than in the opening alone.
LOUDNESS_WEIGHT = 0.85


def from_speech(phonemes: tuple[Phoneme, ...], samples: np.ndarray, rate: int) -> np.ndarray:
    """Synthesised speech: the phonemes say which shape, the loudness how wide."""
    led = tuple(Phoneme(p.symbol, max(0.0, p.start_s - PHONEME_LEAD_S), max(0.0, p.end_s - PHONEME_LEAD_S))
                for p in phonemes)
    shape = from_phonemes(led, len(samples) / rate)
    loudness = from_audio(samples, rate)
    count = min(len(shape), len(loudness))
    track = (shape[:count] * (1 - LOUDNESS_WEIGHT + LOUDNESS_WEIGHT * loudness[:count])).astype(np.float32)
    return close_lips(track, led)


# m/b/p must show closed lips, but smoothing between two open vowels lifts a short closure off
# zero (a mouth that never quite closes). After smoothing, each closure is held
# at 0 over its phoneme, and over at least CLOSURE_MIN_S around its middle so that one 40 ms video
# frame falls inside it whole.
_CLOSURES = set("mbpɓ")
CLOSURE_MIN_S = 0.06


def close_lips(track: np.ndarray, phonemes: tuple[Phoneme, ...]) -> np.ndarray:
    track = track.copy()
    for phoneme in phonemes:
        if phoneme.symbol not in _CLOSURES:
            continue
        middle = (phoneme.start_s + phoneme.end_s) / 2
        half = max((phoneme.end_s - phoneme.start_s) / 2, CLOSURE_MIN_S / 2)
        start, end = int((middle - half) / TRACK_STEP_S), int(np.ceil((middle + half) / TRACK_STEP_S))
        track[max(0, start):max(0, end)] = 0.0
    return track


def from_phonemes(phonemes: tuple[Phoneme, ...], duration_s: float) -> np.ndarray:
    track = np.zeros(max(1, int(np.ceil(duration_s / TRACK_STEP_S))), dtype=np.float32)
    for phoneme in phonemes:
        symbol = phoneme.symbol
        if symbol in _SILENT:
            continue
        value = _OPEN.get(symbol, CONSONANT)
        start = int(phoneme.start_s / TRACK_STEP_S)
        end = max(start + 1, int(np.ceil(phoneme.end_s / TRACK_STEP_S)))
        track[start:end] = value
    return _smooth(track)


def from_audio(samples: np.ndarray, rate: int) -> np.ndarray:
    """Openness follows loudness: above the utterance's own noise floor, up to its loud level."""
    loudness = envelope(samples, rate, TRACK_STEP_S)
    if len(loudness) == 0:
        return np.zeros(1, np.float32)
    floor = max(float(np.percentile(loudness, 10)), 100.0)  # ~-50 dBFS: hiss is not speech
    loud = float(np.percentile(loudness, 95))
    if loud <= floor * 1.5:  # no speech to speak of
        return np.zeros(len(loudness), np.float32)
    level = np.clip((loudness - floor) / (loud - floor), 0.0, 1.0) ** 0.7
    return _smooth(level.astype(np.float32))


def _smooth(track: np.ndarray) -> np.ndarray:
    return _low_pass(_low_pass(track)[::-1])[::-1].copy()


def _low_pass(track: np.ndarray) -> np.ndarray:
    alpha = TRACK_STEP_S / (_SMOOTHING_S + TRACK_STEP_S)
    out = np.empty_like(track)
    value = 0.0
    for index, target in enumerate(track):
        value += alpha * (float(target) - value)
        out[index] = value
    return out


# (spread, teeth) by phoneme: rounded vowels and w purse the lips; i/e spread them; s/z/t/d/n/θ/ð
# and the spread vowels show teeth; f/v put the lower lip on the upper teeth.
_SHAPE = {**dict.fromkeys("uʊwɯʉ", (-1.0, 0.0)), **dict.fromkeys("oɔɒøœɵ", (-0.8, 0.1)),
          **dict.fromkeys("ʃʒ", (-0.5, 0.6)), **dict.fromkeys("iɪyʏɨj", (1.0, 0.6)),
          **dict.fromkeys("eɛɜæ", (0.5, 0.5)), **dict.fromkeys("szθðtdnl", (0.4, 0.7)),
          **dict.fromkeys("fvɱ", (0.0, 1.0)), **dict.fromkeys("aɑɐʌaɶ", (0.2, 0.3))}


def shape_from_phonemes(phonemes: tuple[Phoneme, ...], duration_s: float) -> np.ndarray:
    """(steps, 2) float32 spread and teeth of synthesised speech (led like the openness track)."""
    steps = max(1, int(np.ceil(duration_s / TRACK_STEP_S)))
    track = np.zeros((steps, 2), np.float32)
    for phoneme in phonemes:
        if phoneme.symbol in _SILENT or phoneme.symbol not in _SHAPE:
            continue
        start = int(max(0.0, phoneme.start_s - PHONEME_LEAD_S) / TRACK_STEP_S)
        end = max(start + 1, int(np.ceil(max(0.0, phoneme.end_s - PHONEME_LEAD_S) / TRACK_STEP_S)))
        track[start:end] = _SHAPE[phoneme.symbol]
    return np.column_stack([_smooth(track[:, 0]), _smooth(track[:, 1])]).astype(np.float32)


# Recorded speech has no phonemes: the spectrum stands in. The share of a 20 ms window's energy
# above 1.5 kHz (F2 of i/e, the hiss of s/f) against 250-1000 Hz (F1, and the low F2 of o/u):
# rounded vowels sit low, spread vowels and fricatives high.
_LOW_BAND, _HIGH_BAND = (250.0, 1000.0), (1500.0, 4000.0)
_SPREAD_CENTRE, _SPREAD_RANGE = 0.3, 0.25


def shape_from_audio(samples: np.ndarray, rate: int) -> np.ndarray:
    """(steps, 2) float32 spread and teeth of recorded speech, from its spectrum where it is loud."""
    step = max(1, int(round(rate * TRACK_STEP_S)))
    window = 2 * step
    steps = max(1, int(np.ceil(len(samples) / step)))
    padded = np.zeros(steps * step + window, np.float32)
    padded[:len(samples)] = samples
    frames = np.lib.stride_tricks.sliding_window_view(padded, window)[::step][:steps] * np.hanning(window).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(window, 1 / rate)
    low = power[:, (freqs >= _LOW_BAND[0]) & (freqs < _LOW_BAND[1])].sum(axis=1)
    high = power[:, (freqs >= _HIGH_BAND[0]) & (freqs < min(_HIGH_BAND[1], rate / 2))].sum(axis=1)
    share = high / np.maximum(low + high, 1e-9)
    loud = from_audio(samples, rate)[:steps]
    loud = np.pad(loud, (0, steps - len(loud)))
    speaking = loud > 0.1
    spread = np.where(speaking, np.clip((share - _SPREAD_CENTRE) / _SPREAD_RANGE, -1, 1), 0).astype(np.float32)
    teeth = np.where(speaking, np.clip((share - 0.2) / 0.4, 0, 1), 0).astype(np.float32)
    return np.column_stack([_smooth(spread), _smooth(teeth)]).astype(np.float32)


def shape_at(track: np.ndarray, start_s: float, end_s: float) -> tuple[float, float]:
    """The mean (spread, teeth) over [start_s, end_s); (0, 0) past the track or without one."""
    lo = int(start_s / TRACK_STEP_S)
    hi = max(lo + 1, int(np.ceil(end_s / TRACK_STEP_S)))
    part = track[lo:hi] if track.ndim == 2 else track[:0]
    if not len(part):
        return 0.0, 0.0
    spread, teeth = part.mean(axis=0)
    return float(spread), float(teeth)


def openness_at(track: np.ndarray, start_s: float, end_s: float) -> float:
    """The mean openness over [start_s, end_s) (a video frame's span)."""
    lo = int(start_s / TRACK_STEP_S)
    hi = max(lo + 1, int(np.ceil(end_s / TRACK_STEP_S)))
    part = track[lo:hi]
    return float(part.mean()) if len(part) else 0.0
