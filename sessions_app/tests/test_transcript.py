"""GET /v1/sessions/{id}/transcript: the conversation in order, kept after the session ends."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from sessions_app import services, speaking
from sessions_app.tests.test_answers import append
from sessions_app.tests.test_speaking import assert_error, session_id, speak, speak_wav  # noqa: F401
from testsupport.audio import syllables, wav_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_transcript_holds_what_the_tutor_said_in_order_and_outlives_the_session(client_with_key, session_id):
    first = speak(client_with_key, session_id, "Hello! Let us begin.").json()
    recorded = speak_wav(client_with_key, session_id, wav_bytes(syllables(0.5, 16000), 16000)).json()
    assert speaking.wait_made(30)
    # The stage plays the first to its end and starts the second; an interrupt cuts it.
    speaking.finish(speaking.claim_next(session_id).pk, "done")
    assert str(speaking.claim_next(session_id).utterance_id) == recorded["utterance_id"]
    assert client_with_key.post(f"/v1/sessions/{session_id}/interrupt").status_code == 200
    dropped = speak(client_with_key, session_id, "Never heard.").json()
    opened = speak(client_with_key, session_id, "So", final=False, interrupt=True).json()
    append(client_with_key, session_id, opened["utterance_id"], " what is a half?")

    response = client_with_key.get(f"/v1/sessions/{session_id}/transcript")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["session_id"] == session_id and body["state"] == "active"
    entries = body["entries"]
    assert [(e["speaker"], e["utterance_id"], e["state"]) for e in entries] == [
        ("tutor", first["utterance_id"], "done"), ("tutor", recorded["utterance_id"], "interrupted"),
        ("tutor", opened["utterance_id"], "queued")]  # the dropped one was never heard: left out
    assert dropped["utterance_id"] not in str(entries)
    assert entries[0]["text"] == "Hello! Let us begin." and entries[0]["source"] == "text" and entries[0]["started_at"]
    assert entries[0]["duration_s"] > 1.0  # both sentences
    assert entries[1]["text"] is None and entries[1]["source"] == "audio"
    assert entries[2]["text"] == "So what is a half?" and entries[2]["open"] is True

    services.end_session(session_id)
    kept = client_with_key.get(f"/v1/sessions/{session_id}/transcript").json()
    # The open answer was dropped by the end before it was heard; what was heard stays.
    assert kept["state"] == "ended" and kept["entries"] == entries[:2]


def test_transcript_refusals(client_with_key, session_id):
    assert_error(client_with_key.get("/v1/sessions/00000000-0000-0000-0000-000000000000/transcript"), 404, "not_found")
    assert_error(client_with_key.get("/v1/sessions/nope/transcript"), 404, "not_found")
    assert APIClient().get(f"/v1/sessions/{session_id}/transcript").status_code == 401
    assert client_with_key.get(f"/v1/sessions/{session_id}/transcript").json()["entries"] == []
