"""/ws/avatars/<id>/ through the real ASGI application, with Channels' communicator."""

from __future__ import annotations


import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from avatars import jobs, services
from avatars.models import AvatarSource
from tutorplatform.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def create(video, avatar_id: str = "ws1"):
    return services.create_avatar(avatar_id=avatar_id, local_path=video, original_name=video.name, source=AvatarSource.UPLOAD)


async def receive_all(communicator: WebsocketCommunicator, timeout: float = 60) -> list[dict]:
    messages = []
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        messages.append(message)
        if message.get("state") in ("ready", "failed", "cancelled"):
            return messages


def test_progress_reaches_a_watching_socket_until_ready(api_key, face_video, gate_jobs, tmp_path):
    from testsupport.videos import drifting, write_face_video

    video = tmp_path / "ten_seconds.mp4"
    write_face_video(video, width=640, height=360, seconds=10.0, motion=drifting(640, 360))
    go = gate_jobs
    create(video)

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/avatars/ws1/?api_key={api_key}")
        connected, _ = await communicator.connect()
        assert connected
        # The snapshot is read just after the handshake: let the job go only once it has come.
        snapshot = await communicator.receive_json_from(timeout=10)
        go.set()
        messages = [snapshot] + await receive_all(communicator)
        closed = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return messages, closed

    messages, closed = async_to_sync(scenario)()
    print(f"{len(messages)} progress messages for a 10 s clip: " + ", ".join(f"{m['stage'] or m['state']} {m['progress']}" for m in messages))
    assert messages[0]["state"] == "queued"
    assert len(messages) >= 3
    assert all(m["type"] == "progress" and m["avatar_id"] == "ws1" for m in messages)
    assert set(messages[0]) == {"type", "avatar_id", "state", "stage", "progress", "error", "frames_done", "frames_total"}
    progress = [m["progress"] for m in messages]
    assert progress == sorted(progress)
    assert messages[-1]["state"] == "ready" and messages[-1]["progress"] == 100.0
    assert {"probe", "frames", "finalize"} <= {m["stage"] for m in messages}
    assert closed["type"] == "websocket.close"


def test_a_failing_job_ends_with_its_error(api_key, no_face_video, gate_jobs):
    go = gate_jobs
    create(no_face_video, "ws2")

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/avatars/ws2/?api_key={api_key}")
        assert (await communicator.connect())[0]
        snapshot = await communicator.receive_json_from(timeout=10)
        go.set()
        messages = [snapshot] + await receive_all(communicator)
        await communicator.disconnect()
        return messages

    last = async_to_sync(scenario)()[-1]
    assert last["state"] == "failed" and last["error"]["code"] == "no_face"


def test_a_finished_avatar_sends_its_state_and_closes(api_key, face_video):
    create(face_video[0], "ws3")
    assert jobs.backend().wait_idle(60)

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/avatars/ws3/?api_key={api_key}")
        assert (await communicator.connect())[0]
        message = await communicator.receive_json_from(timeout=5)
        closed = await communicator.receive_output(timeout=5)
        return message, closed

    message, closed = async_to_sync(scenario)()
    assert message["state"] == "ready" and closed["type"] == "websocket.close"


@pytest.mark.parametrize("query", ["", "?api_key=wrong"])
def test_a_socket_without_a_valid_key_or_staff_session_is_refused(query, face_video, gate_jobs):
    create(face_video[0], "ws4")

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/avatars/ws4/{query}")
        connected, _ = await communicator.connect()
        return connected, await communicator.receive_output(5)

    # Accepted, then closed with the code: a refusal in the handshake would reach a browser as HTTP 403.
    connected, closed = async_to_sync(scenario)()
    assert connected and closed == {"type": "websocket.close", "code": 4401}


def test_staff_session_is_accepted_and_other_users_refused(django_user_model, face_video, gate_jobs):
    from django.test import Client

    create(face_video[0], "ws5")
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    plain = django_user_model.objects.create_user("plain", password="pw")

    def cookie_for(user) -> bytes:
        client = Client()
        client.force_login(user)
        return f"sessionid={client.cookies['sessionid'].value}".encode()

    async def connect(cookie: bytes, origin: bytes = b"http://localhost:9000"):
        communicator = WebsocketCommunicator(application, "/ws/avatars/ws5/",
                                             headers=[(b"cookie", cookie), (b"origin", origin),
                                                      (b"host", b"localhost:9000")])
        await communicator.connect()
        first = await communicator.receive_output(5)
        await communicator.disconnect()
        return first != {"type": "websocket.close", "code": 4401}

    staff_cookie = async_to_sync(sync_to_async(cookie_for))(staff)
    plain_cookie = async_to_sync(sync_to_async(cookie_for))(plain)
    assert async_to_sync(connect)(staff_cookie) is True
    assert async_to_sync(connect)(plain_cookie) is False
    assert async_to_sync(connect)(staff_cookie, b"https://evil.example") is False
    # Our host name on another scheme or port is another origin (another site's page).
    assert async_to_sync(connect)(staff_cookie, b"https://localhost:9000") is False
    assert async_to_sync(connect)(staff_cookie, b"http://localhost:8080") is False
    assert async_to_sync(connect)(staff_cookie, b"http://localhost") is False


def test_unknown_avatar_closes_with_4404(api_key):
    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/avatars/nobody/?api_key={api_key}")
        assert (await communicator.connect())[0]
        message = await communicator.receive_json_from(timeout=5)
        closed = await communicator.receive_output(timeout=5)
        return message, closed

    message, closed = async_to_sync(scenario)()
    assert message["code"] == "not_found" and closed == {"type": "websocket.close", "code": 4404}
