"""How open the mouth is over an utterance: one value in [0, 1] per TRACK_STEP_S, from the
phoneme timings of synthesised speech, or from the audio itself (recorded speech)."""

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
# so lips still close on m/b/p however loud, and a loud vowel opens wider than a soft one.
LOUDNESS_WEIGHT = 0.6


def from_speech(phonemes: tuple[Phoneme, ...], samples: np.ndarray, rate: int) -> np.ndarray:
    """Synthesised speech: the phonemes say which shape, the loudness how wide."""
    led = tuple(Phoneme(p.symbol, max(0.0, p.start_s - PHONEME_LEAD_S), max(0.0, p.end_s - PHONEME_LEAD_S))
                for p in phonemes)
    shape = from_phonemes(led, len(samples) / rate)
    loudness = from_audio(samples, rate)
    count = min(len(shape), len(loudness))
    return (shape[:count] * (1 - LOUDNESS_WEIGHT + LOUDNESS_WEIGHT * loudness[:count])).astype(np.float32)


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


def openness_at(track: np.ndarray, start_s: float, end_s: float) -> float:
    """The mean openness over [start_s, end_s) (a video frame's span)."""
    lo = int(start_s / TRACK_STEP_S)
    hi = max(lo + 1, int(np.ceil(end_s / TRACK_STEP_S)))
    part = track[lo:hi]
    return float(part.mean()) if len(part) else 0.0
