"""Answers that start at once: a long text plays from its first sentence while the rest is made,
and a text that arrives in pieces (speak with "final": false, then append) is said sentence by
sentence as each is complete. Through the real URLconf and the real ASGI stream."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from asgiref.sync import async_to_sync, sync_to_async

from sessions_app import speaking
from sessions_app.live.frames import ping_pong
from sessions_app.models import Utterance, UtterancePiece
from sessions_app.speaking import split_sentences
from sessions_app.tests.test_speaking import (  # noqa: F401 (session_id is a fixture)
    assert_error,
    collect,
    events,
    idle_frame,
    media,
    mouth_box,
    session_id,
    speak,
    watching,
)
from testsupport.stream import Media

pytestmark = pytest.mark.django_db(transaction=True)

# About 40 s of speech in eight sentences (Piper makes it in ~3 s here).
LONG_ANSWER = " ".join([
    "Today we are going to learn about fractions, which describe a part of a whole thing.",
    "The number on the bottom tells us how many equal parts the whole is divided into.",
    "The number on the top tells us how many of those equal parts we are talking about.",
    "For example, if you cut a pizza into eight slices and eat three of them, you have eaten three eighths.",
    "If you eat four of the eight slices instead, you have eaten four eighths, which is the same as one half.",
    "That is because four is exactly half of eight, so the two fractions describe the same amount of pizza.",
    "We call fractions like these equivalent fractions, and you can find them by multiplying or dividing.",
    "Next time we will learn how to add two fractions that have different numbers on the bottom.",
])


def append(client, session_id, utterance_id, text="", **fields):
    return client.post(f"/v1/sessions/{session_id}/utterances/{utterance_id}/append",
                       {"text": text, **fields}, format="json")


def mouth_moved(avatar_id: str, header: dict, frame: Media) -> float:
    """How far the frame's mouth box differs from the prepared idle frame (0: not drawn)."""
    index = ping_pong(round(frame.pts_us * header["fps"] / 1e6), header["frame_count"])
    box = mouth_box(avatar_id, index)
    shown = cv2.imdecode(np.frombuffer(frame.payload, np.uint8), 1)
    return float(np.abs(shown[box].astype(int) - idle_frame(avatar_id, index)[box]).mean())


def sound(item: Media) -> bool:
    return bool(np.frombuffer(item.payload, "<i2").any())


# --- Sentences ---------------------------------------------------------------------------------

def test_sentences_are_complete_at_their_end_and_an_unfinished_one_waits():
    assert split_sentences("Hello! Today we will. Look at", False) == (["Hello!", "Today we will."], " Look at")
    assert split_sentences("Look at", True) == (["Look at"], "")
    # A piece ending in a word and a full stop ends its sentence (the next piece brings the space);
    # a number or an abbreviation does not: "3." may go on as "3.14", "Dr." names someone.
    assert split_sentences("That is right.", False) == (["That is right."], "")
    assert split_sentences("It is 3.", False) == ([], "It is 3.")
    assert split_sentences("Ask Dr. Smith. He", False) == (["Ask Dr. Smith."], " He")
    assert split_sentences("Ask Dr.", False) == ([], "Ask Dr.")
    assert split_sentences('He said "stop." Then', False) == (['He said "stop."'], " Then")
    assert split_sentences("One\nTwo", False) == (["One"], "Two")
    # A long sentence is said in parts, cut after a comma.
    parts, rest = split_sentences("one, two, three, " * 30 + "four.", True)
    assert rest == "" and len(parts) > 1 and all(len(part) <= speaking.MAX_PIECE_CHARS for part in parts)
    assert all(part.endswith(",") for part in parts[:-1])
    # An utterance's long first sentence is said in two, at a clause (its first sound comes sooner).
    assert speaking.quick_start(["Today we are going to learn about fractions, which describe a part of a whole.",
                                 "Next."]) == ["Today we are going to learn about fractions,",
                                               "which describe a part of a whole.", "Next."]
    assert speaking.quick_start(["Now cut each half again and you have quarters that together make the whole."]) == [
        "Now cut each half again and you have quarters", "that together make the whole."]
    assert speaking.quick_start(["Short one."]) == ["Short one."]


# --- A long text starts at once ---------------------------------------------------------------

def test_a_long_answer_plays_its_first_sentence_while_the_rest_is_made(client_with_key, api_key, session_id):
    """The first moving mouth arrives while later sentences are still being made; the sentences
    follow one another with no gap, the mouth moving in each."""
    async def scenario():
        async with watching(session_id, api_key) as communicator:
            asked = time.monotonic()
            spoken = (await sync_to_async(speak)(client_with_key, session_id, LONG_ANSWER)).json()
            items, made_then = [], None
            while made_then is None:
                items += await collect(communicator, lambda got: len(media(got, "V")) >= 1)
                frame = media(items, "V")[-1]
                if events(items, "utterance.started") and mouth_moved("speaker", communicator.header, frame) > 3:
                    made_then = await sync_to_async(UtterancePiece.objects.filter(
                        utterance__utterance_id=spoken["utterance_id"]).count)()
                    first_moving = time.monotonic() - asked
            # Play on 1.5 s into the second sentence, then stop.
            started = events(items, "utterance.started")[0]
            second_at = started["pts_us"] + spoken["duration_s"] * 1e6
            items += await collect(communicator, lambda got: media(got, "A")
                                   and media(got, "A")[-1].pts_us > second_at + 1.5e6, timeout_s=60)
            await sync_to_async(client_with_key.post)(f"/v1/sessions/{session_id}/interrupt")
            return communicator.header, spoken, made_then, first_moving, second_at, items

    header, spoken, made_then, first_moving, second_at, items = async_to_sync(scenario)()
    utterance = Utterance.objects.get(utterance_id=spoken["utterance_id"])
    print(f"\nspeak with {len(LONG_ANSWER)} characters (~{utterance.duration_s:.0f} s; the voice may load in the first "
          f"request here: bench/answer_bench.py measures it warm): first moving mouth "
          f"received {first_moving:.2f} s after the request; {made_then} of {utterance.pieces} sentences made then")
    assert spoken["duration_s"] < 4 and utterance.pieces == 9  # the first sentence said in two
    assert made_then < utterance.pieces  # it spoke before the whole text was made
    # Continuous sound across the first sentences: no silent run longer than a pause between them.
    started = events(items, "utterance.started")[0]
    audio = [a for a in media(items, "A") if a.pts_us >= started["pts_us"]]
    silent_run = longest = 0
    for item in audio:
        silent_run = 0 if sound(item) else silent_run + 1
        longest = max(longest, silent_run)
    assert longest * 1 / header["fps"] < 0.6
    # The mouth moves in the second sentence as in the first (its track came with its sound).
    frames = [v for v in media(items, "V") if v.pts_us >= started["pts_us"]]
    first = [mouth_moved("speaker", header, v) for v in frames if v.pts_us < started["pts_us"] + 1.5e6]
    second = [mouth_moved("speaker", header, v) for v in frames if v.pts_us >= second_at]
    assert np.percentile(first, 75) > 3 and np.percentile(second, 75) > 3, (first, second)


# --- A text that arrives in pieces ---------------------------------------------------------------

def test_an_answer_in_pieces_speaks_each_sentence_when_complete(client_with_key, api_key, session_id):
    async def scenario():
        async with watching(session_id, api_key) as communicator:
            opened = await sync_to_async(speak)(client_with_key, session_id, "Let us think", final=False)
            uid = opened.json()["utterance_id"]
            waiting = await collect(communicator, lambda got: len(media(got, "A")) >= 12)  # ~0.5 s
            sent = time.monotonic()
            grown = await sync_to_async(append)(client_with_key, session_id, uid, " about halves. When you")
            items = await collect(communicator, lambda got: any(sound(a) for a in media(got, "A")))
            first_sound = next(at for at, item in items if isinstance(item, Media) and item.kind == "A" and sound(item))
            before_last = not events(items, "utterance.ended")
            rest = await sync_to_async(append)(client_with_key, session_id, uid, " cut a pizza in two, each part is a half.",
                                               final=True)
            items += await collect(communicator, lambda got: bool(events(got, "utterance.ended")))
            return opened, waiting, grown, rest, first_sound - sent, before_last, items

    opened, waiting, grown, rest, delay, before_last, items = async_to_sync(scenario)()
    print(f"\nfirst sound received {delay:.2f} s after the append that completed the first sentence")
    assert opened.status_code == 202 and opened.json()["open"] is True and opened.json()["duration_s"] == 0
    assert not events(waiting, "utterance.started")  # nothing to say yet: nothing plays
    assert not any(sound(a) for a in media(waiting, "A"))
    assert grown.status_code == 200 and grown.json()["open"] is True
    assert before_last  # it spoke before the last piece came
    assert rest.status_code == 200 and rest.json()["open"] is False
    ended = events(items, "utterance.ended")[0]
    assert ended["utterance_id"] == opened.json()["utterance_id"] and ended["reason"] == "done"
    utterance = Utterance.objects.get(utterance_id=ended["utterance_id"])
    assert utterance.text == "Let us think about halves. When you cut a pizza in two, each part is a half."
    assert utterance.pieces == 2 and utterance.state == "done" and not utterance.made_pieces.exists()
    started = events(items, "utterance.started")[0]
    assert ended["pts_us"] - started["pts_us"] >= utterance.duration_s * 1e6 - 1e6 / 25


def test_appending_refusals_and_an_open_answer_holds_the_queue(client_with_key, session_id, settings):
    opened = speak(client_with_key, session_id, "", final=False).json()
    uid = opened["utterance_id"]
    later = speak(client_with_key, session_id, "After the answer.").json()
    assert speaking.claim_next(session_id) is None  # the open answer is first, with nothing to say yet
    assert_error(append(client_with_key, session_id, "00000000-0000-0000-0000-000000000000", "Hi."), 404, "not_found")
    assert_error(append(client_with_key, session_id, "nope", "Hi."), 404, "not_found")
    assert_error(append(client_with_key, session_id, uid, "bad\x00text"), 400, "invalid_request")
    assert_error(append(client_with_key, session_id, uid, "Hi.", final="maybe"), 400, "invalid_request")
    assert_error(append(client_with_key, session_id, uid, "a" * 1001), 400, "invalid_request")
    settings.SESSION_SPEAK_MAX_UTTERANCE_CHARS = 10
    assert_error(append(client_with_key, session_id, uid, "Eleven char"), 400, "invalid_request")
    settings.SESSION_SPEAK_MAX_UTTERANCE_CHARS = 20000
    assert append(client_with_key, session_id, uid, "Fine.", final=True).status_code == 200
    closed = assert_error(append(client_with_key, session_id, uid, "More."), 409, "utterance_closed")
    assert closed["details"]["utterance_id"] == uid
    assert speaking.wait_made(30)
    playing = speaking.claim_next(session_id)
    assert str(playing.utterance_id) == uid  # in order: the answer, then what was queued after it
    # Another answer interrupted while open: its appends are refused with its state.
    other = speak(client_with_key, session_id, "So", final=False).json()["utterance_id"]
    assert client_with_key.post(f"/v1/sessions/{session_id}/interrupt").status_code == 200
    gone = assert_error(append(client_with_key, session_id, other, " there."), 409, "utterance_closed")
    assert gone["details"]["state"] == "interrupted"
    assert Utterance.objects.get(utterance_id=later["utterance_id"]).state == "interrupted"
    assert not UtterancePiece.objects.exists()  # dropped audio is deleted


def test_an_answer_left_open_is_closed_after_the_timeout(client_with_key, session_id, settings):
    opened = speak(client_with_key, session_id, "Half a sentence", final=False).json()
    assert speaking.claim_next(session_id) is None
    settings.SESSION_SPEAK_OPEN_TIMEOUT_S = 0
    assert speaking.claim_next(session_id) is None  # closed now; its last words are being made
    assert speaking.wait_made(30)
    playing = speaking.claim_next(session_id)
    assert str(playing.utterance_id) == opened["utterance_id"] and not playing.open and playing.duration_s > 0.3
    # One left open with nothing at all said is over without playing.
    speaking.finish(playing.pk, "done")
    empty = speak(client_with_key, session_id, "", final=False).json()
    assert speaking.claim_next(session_id) is None
    assert Utterance.objects.get(utterance_id=empty["utterance_id"]).state == "done"
    assert services_queue(session_id) == 0


def services_queue(session_id) -> int:
    from sessions_app import services

    return services.get_session(session_id).queued_utterances
