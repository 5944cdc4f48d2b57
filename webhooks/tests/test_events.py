"""Every event type, from the real flows that cause it (API calls, avatar jobs, a session's
stream speaking), arrives once at a real receiver, signed, with the resource's state; a create
request's callback_url gets its own resource's events only."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile

from avatars import jobs
from testsupport.audio import syllables, wav_bytes
from tutorplatform.asgi import application
from webhooks import dispatch
from webhooks.tests.test_delivery import verify

pytestmark = pytest.mark.django_db(transaction=True)


def video(path) -> SimpleUploadedFile:
    return SimpleUploadedFile("tutor.mp4", Path(path).read_bytes(), "video/mp4")


def speak_and_listen(client, api_key: str, session_id: str, receiver) -> None:
    """A viewer watches the session while the tutor says 0.6 s of audio, until the receiver has
    heard the utterance end."""
    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, f"/ws/sessions/{session_id}/?api_key={api_key}")
        try:
            assert (await communicator.connect())[0]
            await communicator.receive_output(5)  # the header
            body = wav_bytes(syllables(0.6, 16000), 16000)
            spoken = await sync_to_async(client.generic)("POST", f"/v1/sessions/{session_id}/speak", body,
                                                         content_type="audio/wav")
            assert spoken.status_code == 202, spoken.content
            deadline = time.monotonic() + 30
            while not receiver.events("utterance.ended"):
                assert time.monotonic() < deadline, "no utterance.ended webhook"
                try:
                    await communicator.receive_output(0.5)  # keep the stream flowing
                except asyncio.TimeoutError:
                    pass
        finally:
            await communicator.disconnect()

    async_to_sync(scenario)()


def test_each_event_type_arrives_once_signed_with_the_resources_state(client_with_key, api_key, receiver,
                                                                      face_video, no_face_video, gate_jobs):
    secret = client_with_key.post("/v1/webhooks", {"url": receiver.url}, format="json").json()["secret"]
    tutor_id = client_with_key.post("/v1/tutors", {"name": "Ada"}, format="json").json()["id"]
    first_avatar = f"avatar_tutor_{tutor_id}"
    # The seed's flow: upload the tutor's video, open the session at once (it waits for the avatar).
    uploaded = client_with_key.post("/v1/avatars/upload", {"avatar_id": first_avatar, "tutor_id": tutor_id,
                                                           "video_file": video(face_video[0])}, format="multipart")
    assert uploaded.status_code == 201, uploaded.content
    session = client_with_key.post("/v1/sessions", {"tutor_id": tutor_id, "student_id": 7}, format="json").json()
    assert session["state"] == "waiting"
    session_id = session["session_id"]
    gate_jobs.set()
    receiver.wait_for(lambda items: len([i for i in items if i.event["type"] == "session.started"]) == 2, 90)

    speak_and_listen(client_with_key, api_key, session_id, receiver)

    # A new video: the tutor switches to it, its session follows, the old avatar is deleted.
    changed = client_with_key.patch(f"/v1/tutors/{tutor_id}", {"avatar_video": video(face_video[0])},
                                    format="multipart")
    assert changed.status_code == 200, changed.content
    second_avatar = changed.json()["pending_avatar"]["avatar_id"]
    receiver.wait_for(lambda items: any(i.event["type"] == "avatar.deleted" for i in items), 90)
    assert client_with_key.post(f"/v1/sessions/{session_id}/end").status_code == 200
    # An avatar that fails.
    failing = client_with_key.post("/v1/avatars/upload", {"avatar_id": "no-face", "video_file": video(no_face_video)},
                                   format="multipart")
    assert failing.status_code == 201, failing.content
    assert jobs.backend().wait_idle(90)
    receiver.wait_for(lambda items: {"session.ended", "avatar.failed"} <= {i.event["type"] for i in items}, 30)
    assert dispatch.dispatcher().wait_idle(10)

    items = receiver.events()
    counts = Counter(item.event["type"] for item in items)
    assert counts == {"avatar.ready": 2, "avatar.failed": 1, "avatar.deleted": 1, "tutor.avatar_switched": 1,
                      "session.started": 2, "session.ended": 1, "utterance.started": 1, "utterance.ended": 1}, counts
    assert len({item.event["id"] for item in items}) == len(items)  # each event once
    for item in items:
        assert verify(secret, item.headers, item.body), item.event["type"]
        assert item.headers["Webhook-Id"] == item.event["id"] and item.event["created_at"]

    def data(event_type: str) -> list[dict]:
        return [item.event["data"] for item in items if item.event["type"] == event_type]

    ready = data("avatar.ready")
    assert [a["avatar_id"] for a in ready] == [first_avatar, second_avatar]
    assert all(a["state"] == "ready" and a["tutor_id"] == tutor_id and a["size_bytes"] > 0 for a in ready)
    [failed] = data("avatar.failed")
    assert failed["avatar_id"] == "no-face" and failed["state"] == "failed" and failed["error"]["code"]
    [deleted] = data("avatar.deleted")
    assert deleted["avatar_id"] == first_avatar
    [switched] = data("tutor.avatar_switched")
    assert switched["id"] == tutor_id and switched["avatar_id"] == second_avatar
    assert switched["previous_avatar_id"] == first_avatar and switched["avatar"]["state"] == "ready"
    waiting, active = data("session.started")
    assert waiting["session_id"] == active["session_id"] == session_id
    assert (waiting["state"], waiting["avatar_state"]) == ("waiting", "queued")
    assert (active["state"], active["avatar_state"]) == ("active", "ready")
    [ended] = data("session.ended")
    assert ended["state"] == "ended" and ended["end_reason"] == "ended" and ended["avatar_id"] == second_avatar
    [started], [finished] = data("utterance.started"), data("utterance.ended")
    assert started["utterance_id"] == finished["utterance_id"] and started["session_id"] == session_id
    assert started["state"] == "playing" and started["source"] == "audio" and abs(started["duration_s"] - 0.6) < 0.01
    assert finished["state"] == "done" and finished["reason"] == "done" and finished["ended_at"]
    # The order things happened in.
    order = [item.event["type"] for item in items]
    assert order.index("session.started") < order.index("utterance.started") < order.index("utterance.ended")
    assert order.index("tutor.avatar_switched") < order.index("avatar.deleted") < order.index("session.ended")
    second_ready = max(index for index, kind in enumerate(order) if kind == "avatar.ready")
    assert second_ready < order.index("tutor.avatar_switched"), order


def test_an_interrupted_utterance_ends_with_reason_interrupted(client_with_key, api_key, receiver, face_video):
    client_with_key.post("/v1/webhooks", {"url": receiver.url, "events": ["utterance.started", "utterance.ended"]},
                         format="json")
    tutor_id = client_with_key.post("/v1/tutors", {"name": "Ada", "avatar_video": video(face_video[0])},
                                    format="multipart").json()["id"]
    assert jobs.backend().wait_idle(90)
    session_id = client_with_key.post("/v1/sessions", {"tutor_id": tutor_id, "student_id": 1},
                                      format="json").json()["session_id"]

    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, f"/ws/sessions/{session_id}/?api_key={api_key}")
        try:
            assert (await communicator.connect())[0]
            await communicator.receive_output(5)
            body = wav_bytes(syllables(5.0, 16000), 16000)
            assert (await sync_to_async(client_with_key.generic)(
                "POST", f"/v1/sessions/{session_id}/speak", body, content_type="audio/wav")).status_code == 202
            deadline = time.monotonic() + 30
            interrupted = False
            while not receiver.events("utterance.ended"):
                assert time.monotonic() < deadline
                if receiver.events("utterance.started") and not interrupted:
                    interrupted = True
                    response = await sync_to_async(client_with_key.post)(f"/v1/sessions/{session_id}/interrupt")
                    assert response.status_code == 200
                try:
                    await communicator.receive_output(0.5)
                except asyncio.TimeoutError:
                    pass
        finally:
            await communicator.disconnect()

    async_to_sync(scenario)()
    assert dispatch.dispatcher().wait_idle(10)
    [ended] = receiver.events("utterance.ended")
    assert ended.event["data"]["reason"] == "interrupted" and ended.event["data"]["state"] == "interrupted"
    assert len(receiver.events("utterance.started")) == 1


def test_a_callback_url_gets_its_own_resources_events_only(client_with_key, receiver, second_receiver, face_video,
                                                          isolated_storage):
    imported = isolated_storage / "import" / "v.mp4"
    imported.write_bytes(Path(face_video[0]).read_bytes())
    # An avatar with a callback (path create), another without.
    mine = client_with_key.post("/v1/avatars", {"avatar_id": "mine", "video_path": str(imported),
                                                "callback_url": receiver.url}, format="json")
    assert mine.status_code == 201, mine.content
    avatar_secret = mine.json()["callback_secret"]
    other = client_with_key.post("/v1/avatars", {"avatar_id": "other", "video_path": str(imported)}, format="json")
    assert other.status_code == 201 and "callback_secret" not in other.json()
    # A tutor created with its video and a callback.
    tutor = client_with_key.post("/v1/tutors", {"name": "Ada", "callback_url": second_receiver.url,
                                                "avatar_video": video(face_video[0])}, format="multipart")
    assert tutor.status_code == 201, tutor.content
    tutor_secret = tutor.json()["callback_secret"]
    assert jobs.backend().wait_idle(120)
    client_with_key.delete("/v1/avatars/other")
    client_with_key.delete("/v1/avatars/mine")
    receiver.wait_for(lambda items: len(items) == 2)
    second_receiver.wait_for(lambda items: len(items) == 1)
    assert dispatch.dispatcher().wait_idle(10)
    time.sleep(0.3)
    assert [(i.event["type"], i.event["data"]["avatar_id"]) for i in receiver.events()] == [
        ("avatar.ready", "mine"), ("avatar.deleted", "mine")]
    assert all(verify(avatar_secret, i.headers, i.body) for i in receiver.events())
    [tutor_event] = second_receiver.events()
    assert tutor_event.event["type"] == "avatar.ready"
    assert tutor_event.event["data"]["tutor_id"] == tutor.json()["id"]
    assert verify(tutor_secret, tutor_event.headers, tutor_event.body)
    assert not verify(avatar_secret, tutor_event.headers, tutor_event.body)
    # Callbacks are not endpoints a client manages.
    assert client_with_key.get("/v1/webhooks").json()["total"] == 0
