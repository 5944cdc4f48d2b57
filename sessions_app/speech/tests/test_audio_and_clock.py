"""Audio bodies, resampling, the media clock and mouth tracks (no Django)."""

from __future__ import annotations

import numpy as np
import pytest

from sessions_app.speech import mouth
from sessions_app.speech.audio import BadAudio, envelope, read_wav, resample
from sessions_app.speech.clock import frame_samples, pts_us
from sessions_app.speech.voices import Phoneme
from testsupport.audio import syllables, wav_bytes


def test_a_stereo_wav_at_any_common_rate_is_read_as_mono():
    tone = (np.sin(2 * np.pi * 440 * np.arange(44100) / 44100) * 10000).astype(np.int16)
    samples, rate = read_wav(wav_bytes(tone, 44100, channels=2), max_seconds=10)
    assert rate == 44100 and len(samples) == 44100
    assert np.abs(samples.astype(int) - tone).max() <= 1


@pytest.mark.parametrize("body, code", [
    (wav_bytes(np.zeros(800, np.int16), 8000, width=1), "unsupported_audio"),  # 8-bit
    (b"RIFF....WAVEfmt nonsense", "invalid_audio"),
    (b"", "invalid_audio"),
    (wav_bytes(np.zeros(0, np.int16), 16000), "invalid_audio"),  # no samples
    (wav_bytes(np.zeros(16000 * 3, np.int16), 16000), "audio_too_long"),
    (wav_bytes(np.zeros(100, np.int16), 4000), "unsupported_audio"),  # rate too low
])
def test_bad_audio_says_why(body, code):
    with pytest.raises(BadAudio) as raised:
        read_wav(body, max_seconds=2)
    assert raised.value.code == code


def test_a_truncated_wav_keeps_what_it_holds():
    body = wav_bytes(np.full(1000, 1000, np.int16), 16000)[:-501]  # cut mid-sample
    samples, _ = read_wav(body, max_seconds=2)
    assert 740 <= len(samples) <= 750


def test_resampling_keeps_length_and_pitch():
    rate, to_rate = 44100, 24000
    tone = (np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 10000).astype(np.int16)
    out = resample(tone, rate, to_rate)
    assert len(out) == to_rate
    peak_hz = np.argmax(np.abs(np.fft.rfft(out.astype(float)))) * to_rate / len(out)
    assert abs(peak_hz - 440) <= 2
    assert 9000 <= np.abs(out).max() <= 10500


@pytest.mark.parametrize("fps", [25.0, 29.97, 30.0, 24.0])
def test_video_frames_cover_the_audio_without_gap_or_overlap(fps):
    rate = 24000
    spans = [frame_samples(index, rate, fps) for index in range(3000)]
    assert spans[0][0] == 0
    assert all(end == next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
    assert abs(spans[-1][1] - 3000 * rate / fps) < 1
    for index, (start, _) in enumerate(spans[:300]):  # a frame's time and its audio's agree to a sample
        assert abs(pts_us(start, rate) - index * 1_000_000 / fps) <= 1_000_000 / rate + 1


def test_the_mouth_closes_on_m_and_opens_on_a():
    phonemes = (Phoneme("m", 0.0, 0.2), Phoneme("a", 0.2, 0.5), Phoneme("m", 0.5, 0.7), Phoneme(" ", 0.7, 1.0))
    track = mouth.from_phonemes(phonemes, 1.0)
    assert mouth.openness_at(track, 0.3, 0.4) > 0.8
    assert mouth.openness_at(track, 0.0, 0.1) < 0.1 and mouth.openness_at(track, 0.85, 1.0) < 0.1


def test_from_audio_the_mouth_follows_loudness():
    rate = 24000
    speech = syllables(3.0, rate)
    track = mouth.from_audio(speech, rate)
    loudness = envelope(speech, rate, mouth.TRACK_STEP_S)[:len(track)]
    assert np.corrcoef(track, loudness)[0, 1] > 0.8
    assert mouth.from_audio(np.zeros(rate, np.int16), rate).max() == 0  # silence: closed


def test_synthesised_speech_moves_the_mouth_in_step_with_its_sound():
    """The track of a real synthesised sentence against its own loudness, frame by frame at
    25 fps: best correlated at lag 0, and well above chance."""
    from sessions_app.speech.voices import load_voice

    speech = load_voice("sessions_app.speech.voices.JoePiperVoice").synthesize(
        "Photosynthesis is how plants turn sunlight, water and air into food.")
    track = mouth.from_speech(speech.phonemes, speech.samples, speech.rate)
    step = speech.rate // 25
    frames = len(speech.samples) // step
    openness = np.array([mouth.openness_at(track, i / 25, (i + 1) / 25) for i in range(frames)])
    loudness = np.array([np.sqrt(np.mean(speech.samples[i * step:(i + 1) * step].astype(float) ** 2))
                         for i in range(frames)])
    by_lag = {lag: np.corrcoef(openness[max(0, lag):frames + min(0, lag)],
                               loudness[max(0, -lag):frames + min(0, -lag)])[0, 1] for lag in range(-3, 4)}
    assert max(by_lag, key=by_lag.get) == 0 and by_lag[0] > 0.5


# --- Sample formats and headers -----------------------------------------------------------------

def test_a_32_bit_float_wav_is_unsupported_not_invalid():
    from testsupport.audio import wav_header_bytes

    tone = (np.sin(2 * np.pi * 440 * np.arange(4800) / 48000) * 0.3).astype("<f4")
    for body in (wav_header_bytes(tone.tobytes(), 48000, 1, 32, tag=3),
                 wav_header_bytes(tone.tobytes(), 48000, 1, 32, tag=0xFFFE, extensible_subformat=3)):
        with pytest.raises(BadAudio) as raised:
            read_wav(body, max_seconds=2)
        assert raised.value.code == "unsupported_audio" and "32-bit float" in str(raised.value)


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_a_16_bit_pcm_wav_with_an_extensible_header_is_read(channels):
    """What ffmpeg writes past two channels (Python 3.11's wave refuses it: unknown format 65534)."""
    from testsupport.audio import wav_header_bytes

    tone = (np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 10000).astype(np.int16)
    payload = np.repeat(tone[:, None], channels, axis=1).astype("<i2").tobytes()
    samples, rate = read_wav(wav_header_bytes(payload, 16000, channels, 16, tag=0xFFFE, extensible_subformat=1),
                             max_seconds=2)
    assert rate == 16000 and len(samples) == 16000
    assert np.abs(samples.astype(int) - tone).max() <= 1


def test_the_largest_wav_allowed_is_read_and_resampled_in_bounded_memory():
    """120 s at 192 kHz (46 MB): the whole-body float64 FFT peaked 415 MB above the body; read in
    place and resampled in chunks it peaks ~10 MB above it. Bounded generously here."""
    import tracemalloc

    rate, seconds = 192000, 120
    tone = (np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 8000).astype(np.int16)
    body = wav_bytes(np.tile(tone, seconds), rate)
    tracemalloc.start()
    try:
        samples, got_rate = read_wav(body, max_seconds=120)
        out = resample(samples, got_rate, 24000)
        track = mouth.from_audio(out, 24000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(out) == 24000 * seconds and len(track) > 0
    assert peak < 64 * 1024 * 1024, f"{peak / 1e6:.0f} MB"
    peak_hz = np.argmax(np.abs(np.fft.rfft(out[:24000].astype(float)))) * 24000 / 24000
    assert abs(peak_hz - 440) <= 2


def test_chunked_resampling_has_no_seams():
    """Chunk by chunk gives what one pass of the same filter gives, to the sample."""
    from scipy.signal import resample_poly

    tone = syllables(20, 44100)
    whole = np.clip(np.round(resample_poly(tone.astype(np.float32), 80, 147)), -32768, 32767).astype(np.int16)
    assert np.array_equal(resample(tone, 44100, 24000), whole[:len(whole)])
