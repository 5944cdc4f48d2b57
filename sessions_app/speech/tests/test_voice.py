"""The default voice, for real: Piper's en_US-joe-medium from its wheel."""

from __future__ import annotations

import numpy as np

from sessions_app.speech.audio import envelope
from sessions_app.speech.voices import load_voice


def test_the_default_voice_speaks_with_phoneme_timings():
    voice = load_voice("sessions_app.speech.voices.JoePiperVoice")
    speech = voice.synthesize("Hello. Let's look at fractions, one step at a time.")
    assert speech.rate == 22050 and 2.0 < speech.duration_s < 6.0
    assert envelope(speech.samples, speech.rate).max() > 1000  # sound, not silence
    assert speech.phonemes and speech.phonemes[-1].end_s <= speech.duration_s + 0.05
    starts = [p.start_s for p in speech.phonemes]
    assert starts == sorted(starts)
    assert any(p.symbol == "m" for p in voice.synthesize("map").phonemes)
