"""The student speaks: real read speech sent up a session's stream (WebSocket `A` messages, and a
WebRTC audio track) is heard (student.started / student.ended), recognised (a transcript event,
and the session's transcript), cuts the tutor when it talks over them (barge-in), and the tutor's
own voice fed back does not."""

from __future__ import annotations

import asyncio
import re
import struct
import time
import wave

import numpy as np
import pytest
from asgiref.sync import async_to_sync, sync_to_async

from sessions_app.models import StudentTurn, Utterance
from sessions_app.speech.audio import resample
from sessions_app.tests.test_answers import LONG_ANSWER
from sessions_app.tests.test_speaking import (  # noqa: F401 (session_id is a fixture)
    collect,
    events,
    media,
    session_id,
    speak,
    watching,
)
from testsupport.stream import Media
from testsupport.talking_footage import speech_recording

pytestmark = pytest.mark.django_db(transaction=True)

RATE = 24000
CHUNK = 960  # 40 ms, as the server's own audio messages
BECKETT = "ever tried ever failed no matter try again fail again fail better"


def recording(name: str = "beckett.wav", rate: int = RATE) -> np.ndarray:
    with wave.open(str(speech_recording(name))) as source:
        samples = np.frombuffer(source.readframes(source.getnframes()), "<i2")
        return resample(samples, source.getframerate(), rate)


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower()))


def message(pts_us: int, samples: np.ndarray) -> bytes:
    return b"A" + struct.pack(">Q", pts_us) + samples.astype("<i2").tobytes()


async def send_audio(communicator, samples: np.ndarray, first_chunk: int = 0, pace_s: float = 0.0) -> list[float]:
    """Send `samples` as 40 ms `A` messages (their time on a clock of the sender's), every
    `pace_s` (0: at once); the time each was sent."""
    sent = []
    for index in range(0, len(samples) // CHUNK):
        await communicator.send_to(bytes_data=message((first_chunk + index) * 40_000, samples[index * CHUNK:(index + 1) * CHUNK]))
        sent.append(time.monotonic())
        await asyncio.sleep(pace_s)
    return sent


def test_what_the_student_says_is_heard_and_recognised(client_with_key, api_key, session_id, settings):
    settings.SESSION_LISTEN_END_SILENCE_S = 1.5  # the reader pauses up to 1.1 s between phrases: one turn
    speech = np.concatenate([np.zeros(RATE // 2, np.int16), recording(), np.zeros(2 * RATE, np.int16)])

    async def scenario():
        async with watching(session_id, api_key) as communicator:
            await send_audio(communicator, speech)
            sent = time.monotonic()
            items = await collect(communicator, lambda got: bool(events(got, "transcript")), timeout_s=60)
            return items, sent

    items, sent = async_to_sync(scenario)()
    started, ended = events(items, "student.started"), events(items, "student.ended")
    transcript = events(items, "transcript")[0]
    print(f"\ntranscript event {[at for at, item in items if item is transcript][0] - sent:.2f} s after the audio "
          f"was sent: {transcript['text']!r}")
    assert len(started) == len(ended) == 1 and started[0]["barge_in"] is False
    assert words(transcript["text"]) == BECKETT and transcript["speaker"] == "student"
    assert transcript["turn_id"] == ended[0]["turn_id"]
    # On the sender's clock mapped to the stream's: speech begins ~0.33 s into the file, 0.5 s later here.
    assert transcript["start_pts_us"] - started[0]["pts_us"] == 0
    assert 0.7e6 < transcript["start_pts_us"] - transcript_anchor(items) < 1.0e6
    assert 8e6 < transcript["end_pts_us"] - transcript["start_pts_us"] < 9.5e6
    entries = client_with_key.get(f"/v1/sessions/{session_id}/transcript").json()["entries"]
    assert [(e["speaker"], words(e["text"]), e["barge_in"]) for e in entries] == [("student", BECKETT, False)]
    assert StudentTurn.objects.get().turn_id.hex == transcript["turn_id"].replace("-", "")


def transcript_anchor(items) -> int:
    """The stream time of the first audio the test sent: the stage's time when it arrived, about
    that of the first media message received after the header."""
    return next(item.pts_us for _, item in items if isinstance(item, Media))


def test_the_student_talking_over_the_tutor_cuts_the_tutor(client_with_key, api_key, session_id):
    speech = recording()[int(0.2 * RATE):]  # its first word 0.13 s in

    async def scenario():
        async with watching(session_id, api_key) as communicator:
            await sync_to_async(speak)(client_with_key, session_id, LONG_ANSWER)
            items = await collect(communicator, lambda got: bool(events(got, "utterance.started"))
                                  and len(media(got, "A")) > 25)
            def cut_and_silent(got) -> bool:
                ended_at = next((i for i, (_, item) in enumerate(got) if isinstance(item, dict)
                                 and item.get("type") == "utterance.ended"), None)
                return ended_at is not None and len(media(got[ended_at:], "A")) >= 5

            # Read while sending: what arrives is timed as it arrives.
            sent, later = await asyncio.gather(send_audio(communicator, speech[:int(1.5 * RATE)], pace_s=0.04),
                                               collect(communicator, cut_and_silent))
            items += later
            await send_audio(communicator, np.zeros(RATE, np.int16))  # the student stops: their words come back
            items += await collect(communicator, lambda got: bool(events(got, "transcript")))
            return items, sent

    items, sent = async_to_sync(scenario)()
    ended = events(items, "utterance.ended")[0]
    assert ended["reason"] == "interrupted"
    assert events(items, "student.started")[0]["barge_in"] is True
    speaking_from = sent[int(0.13 / 0.04)]  # the message holding the first word
    first_silent = next(at for at, item in items if isinstance(item, Media) and item.kind == "A"
                        and at > speaking_from and not np.frombuffer(item.payload, "<i2").any())
    print(f"\nbarge-in: the tutor's audio silent {first_silent - speaking_from:.2f} s after the student's first word was sent")
    assert first_silent - speaking_from < 0.8  # the goal (0.3 s) is the bench's to measure
    assert Utterance.objects.get(utterance_id=ended["utterance_id"]).state == "interrupted"
    assert words(events(items, "transcript")[0]["text"]).startswith("ever tried")
    # The transcript: the tutor's answer (interrupted), then the student.
    entries = client_with_key.get(f"/v1/sessions/{session_id}/transcript").json()["entries"]
    assert [(e["speaker"], e.get("state"), e.get("barge_in")) for e in entries] == [
        ("tutor", "interrupted", None), ("student", None, True)]


def test_the_tutors_own_voice_fed_back_does_not_interrupt(client_with_key, api_key, session_id):
    """A student's speakers next to their microphone: the tutor's audio as received comes back
    up the stream (a little later, quieter); the tutor says the whole sentence."""
    async def scenario():
        async with watching(session_id, api_key) as communicator:
            await sync_to_async(speak)(client_with_key, session_id, "Let us look at halves. When you cut a pizza "
                                       "into two equal parts, each part is one half of the pizza.")
            items, fed = [], 0
            deadline = time.monotonic() + 30
            while not events(items, "utterance.ended") and time.monotonic() < deadline:
                items += await collect(communicator, lambda got: len(got) >= 1)
                item = items[-1][1]
                if isinstance(item, Media) and item.kind == "A":
                    echo = (np.frombuffer(item.payload, "<i2") * 0.5).astype(np.int16)
                    await communicator.send_to(bytes_data=message(item.pts_us + 60_000, echo))
                    fed += 1
            return items, fed

    items, fed = async_to_sync(scenario)()
    assert events(items, "utterance.ended")[0]["reason"] == "done"
    assert not events(items, "student.started")
    assert fed > 50  # ~4 s of the tutor's voice came back
