"""/ws/sessions/<id>/ through the real ASGI application, with Channels' communicator."""

from __future__ import annotations

import asyncio
import json
import time

import cv2
import numpy as np
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from avatars import jobs, services as avatar_services
from avatars.models import AvatarSource
from sessions_app import services
from sessions_app.live.frames import FrameCache, ping_pong
from testsupport.stream import Media, next_video, parse
from tutorplatform.asgi import application
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session_id(face_video) -> str:
    tutor = Tutor.objects.create(name="Ada")
    avatar_services.create_avatar(avatar_id="streamed", local_path=face_video[0], original_name="v.mp4",
                                  source=AvatarSource.UPLOAD, tutor_id=tutor.pk)
    assert jobs.backend().wait_idle(60)
    return str(services.create_session(tutor_id=tutor.pk, student_id=1).session_id)


def connect(session_id: str, api_key: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/sessions/{session_id}/?api_key={api_key}")


async def watch(communicator: WebsocketCommunicator, seconds: float) -> tuple[dict, list[bytes], float]:
    """Connect, read the header, then collect video frames for `seconds`; returns their JPEGs and the time taken."""
    connected, _ = await communicator.connect()
    assert connected
    header = json.loads((await communicator.receive_output(5))["text"])
    frames = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        frames.append((await next_video(communicator)).payload)
    return header, frames, time.monotonic() - started


def test_frames_arrive_at_the_avatars_fps_as_jpegs_of_its_size(session_id, api_key):
    async def scenario():
        communicator = connect(session_id, api_key)
        result = await watch(communicator, 3.0)
        await communicator.disconnect()
        return result

    header, frames, elapsed = async_to_sync(scenario)()
    renderer = header.pop("renderer")
    assert header == {"type": "session", "session_id": session_id, "avatar_id": "streamed", "fps": 25.0,
                      "width": 640, "height": 360, "frame_count": 50, "audio_rate": 24000}
    # The generated face (a photo, smiling) never closes its lips: no mouth bank to speak from, and
    # the header says so.
    assert renderer["name"] == "animator" and renderer["fallback"] is True
    assert renderer["coverage"] in ("silent", "insufficient") and "passage" in renderer["reason"]
    rate = len(frames) / elapsed
    print(f"one viewer: {rate:.1f} frames/s (avatar fps 25)")
    assert abs(rate - 25.0) <= 0.15 * 25.0
    for data in frames[::10]:  # JPEGs of the avatar's size
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (360, 640, 3)


def test_four_viewers_at_once_each_get_the_full_rate(session_id, api_key):
    async def scenario():
        communicators = [connect(session_id, api_key) for _ in range(4)]
        results = await asyncio.gather(*(watch(c, 2.0) for c in communicators))
        for communicator in communicators:
            await communicator.disconnect()
        return results

    rates = [len(frames) / elapsed for _, frames, elapsed in async_to_sync(scenario)()]
    print("four viewers: " + ", ".join(f"{rate:.1f}" for rate in rates) + " frames/s")
    assert all(abs(rate - 25.0) <= 0.15 * 25.0 for rate in rates)


def test_ending_the_session_closes_the_socket_with_4404(session_id, api_key):
    async def scenario():
        communicator = connect(session_id, api_key)
        await watch(communicator, 0.3)
        await sync_to_async(services.end_session)(session_id)
        while True:
            message = await communicator.receive_output(5)
            if message["type"] == "websocket.close":
                return message

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": 4404}


def test_unknown_or_ended_session_closes_with_4404(session_id, api_key):
    services.end_session(session_id)

    async def scenario(target):
        communicator = connect(target, api_key)
        connected, _ = await communicator.connect()
        assert connected
        return await communicator.receive_output(5)

    assert async_to_sync(scenario)(session_id) == {"type": "websocket.close", "code": 4404}
    assert async_to_sync(scenario)("00000000-0000-0000-0000-000000000000") == {"type": "websocket.close", "code": 4404}


def test_a_socket_without_a_key_is_refused(session_id):
    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/sessions/{session_id}/")
        connected, _ = await communicator.connect()
        return connected, await communicator.receive_output(5)

    assert async_to_sync(scenario)() == (True, {"type": "websocket.close", "code": 4401})


def test_ping_pong_runs_forward_then_backward_without_jumps():
    sequence = [ping_pong(step, 4) for step in range(10)]
    assert sequence == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert [ping_pong(step, 1) for step in range(3)] == [0, 0, 0]


def test_frame_cache_stays_within_its_budget():
    cache = FrameCache(budget_bytes=1000)
    for index in range(10):
        cache.put(("a", "v", index), b"x" * 300)
    assert cache.used_bytes <= 1000
    assert cache.get(("a", "v", 9)) is not None and cache.get(("a", "v", 0)) is None


def test_a_waiting_session_says_so_then_streams_once_its_avatar_is_ready(api_key, face_video, gate_jobs):
    go = gate_jobs
    tutor = Tutor.objects.create(name="Ada")
    avatar_services.create_avatar(avatar_id="coming", local_path=face_video[0], original_name="v.mp4",
                                  source=AvatarSource.UPLOAD, tutor_id=tutor.pk)
    session_id = str(services.create_session(tutor_id=tutor.pk, student_id=1).session_id)

    async def scenario():
        communicator = connect(session_id, api_key)
        assert (await communicator.connect())[0]
        waiting = json.loads((await communicator.receive_output(5))["text"])
        go.set()
        while True:  # progress while it is prepared, then the header
            message = json.loads((await communicator.receive_output(60))["text"])
            if message["type"] != "waiting":
                break
        frame = await next_video(communicator)
        await communicator.disconnect()
        return waiting, message, frame

    waiting, header, frame = async_to_sync(scenario)()
    assert waiting["type"] == "waiting" and waiting["avatar_id"] == "coming"
    assert waiting["avatar_state"] in ("queued", "processing")
    assert header["type"] == "session" and header["avatar_id"] == "coming" and header["frame_count"] == 50
    assert frame.payload[:2] == b"\xff\xd8"


def test_a_session_whose_avatar_fails_hears_why_and_closes(api_key, no_face_video, gate_jobs):
    go = gate_jobs
    tutor = Tutor.objects.create(name="Ada")
    avatar_services.create_avatar(avatar_id="faceless", local_path=no_face_video, original_name="v.mp4",
                                  source=AvatarSource.UPLOAD, tutor_id=tutor.pk)
    session_id = str(services.create_session(tutor_id=tutor.pk, student_id=1).session_id)

    async def scenario():
        communicator = connect(session_id, api_key)
        assert (await communicator.connect())[0]
        go.set()
        messages = []
        while True:
            message = await communicator.receive_output(60)
            messages.append(message)
            if message["type"] == "websocket.close":
                return messages

    messages = async_to_sync(scenario)()
    assert messages[-1] == {"type": "websocket.close", "code": 4404}
    assert json.loads(messages[-2]["text"]) == {"type": "ended", "session_id": session_id, "reason": "avatar_failed"}


def test_while_it_waits_a_session_shows_a_still_of_the_tutors_ready_avatar(session_id, api_key, face_video, gate_jobs):
    """The session names the tutor's new avatar, still being prepared: a still of the ready one
    comes first (a JPEG, like a frame), then the waiting message."""
    tutor = services.get_session(session_id).tutor
    go = gate_jobs
    avatar_services.create_avatar(avatar_id="newer", local_path=face_video[0], original_name="v.mp4",
                                  source=AvatarSource.UPLOAD, tutor_id=tutor.pk)
    waiting_id = str(services.create_session(tutor_id=tutor.pk, student_id=2, avatar_id="newer").session_id)

    async def scenario():
        communicator = connect(waiting_id, api_key)
        assert (await communicator.connect())[0]
        first = await communicator.receive_output(5)
        second = await communicator.receive_output(5)
        await communicator.disconnect()
        return first, second

    try:
        still, waiting = async_to_sync(scenario)()
    finally:
        go.set()
    still = parse(still)
    assert isinstance(still, Media) and still.kind == "V" and still.pts_us == 0 and still.payload[:2] == b"\xff\xd8"
    assert json.loads(waiting["text"])["type"] == "waiting"


def test_a_stream_switches_to_the_tutors_new_avatar_without_stopping(session_id, api_key, face_video):
    """A new video for the tutor: the stream goes on with the old frames while the new avatar is
    prepared, then sends a new header and the new avatar's frames; it never closes."""
    tutor = services.get_session(session_id).tutor
    old_avatar = tutor.avatar_id

    async def scenario():
        communicator = connect(session_id, api_key)
        header, frames, _ = await watch(communicator, 0.3)
        await sync_to_async(avatar_services.create_avatar)(
            avatar_id="replacement", local_path=face_video[0], original_name="v.mp4", source=AvatarSource.UPLOAD,
            tutor_id=tutor.pk)
        frames_before_switch = 0
        while True:
            message = await communicator.receive_output(60)
            assert message["type"] == "websocket.send", message
            if "text" in message:
                new_header = json.loads(message["text"])
                break
            frames_before_switch += 1
        after = await next_video(communicator)
        await communicator.disconnect()
        return header, frames_before_switch, new_header, after

    header, frames_before_switch, new_header, after = async_to_sync(scenario)()
    assert header["avatar_id"] == old_avatar
    assert frames_before_switch > 5  # the old frames kept coming while the new avatar was prepared
    assert new_header["type"] == "session" and new_header["avatar_id"] == "replacement"
    assert after.payload[:2] == b"\xff\xd8" and after.pts_us == 0  # the new avatar's clock starts at 0
    assert services.get_session(session_id).state == "active"


def test_a_session_takes_at_most_its_viewer_limit(session_id, api_key, settings):
    settings.SESSION_MAX_VIEWERS = 2

    async def scenario():
        first, second, third = (connect(session_id, api_key) for _ in range(3))
        assert (await first.connect())[0] and (await second.connect())[0]
        assert (await third.connect())[0]
        refused = await third.receive_output(5)
        await third.disconnect()
        await first.disconnect()  # a place frees up
        fourth = connect(session_id, api_key)
        assert (await fourth.connect())[0]
        header = json.loads((await fourth.receive_output(5))["text"])
        await second.disconnect()
        await fourth.disconnect()
        return refused, header

    refused, header = async_to_sync(scenario)()
    assert refused == {"type": "websocket.close", "code": 4429}
    assert header["type"] == "session"


def test_revoking_the_key_ends_the_streams_it_opened(session_id, api_key):
    """A stream looks at its key again every few seconds: frames stop and it closes with 4401."""
    from django.utils import timezone

    from avatars.models import ApiKey

    async def scenario():
        communicator = connect(session_id, api_key)
        await watch(communicator, 0.2)
        await sync_to_async(ApiKey.objects.update)(revoked_at=timezone.now())
        revoked_at = time.monotonic()
        while True:
            message = await communicator.receive_output(10)
            if message["type"] == "websocket.close":
                return message, time.monotonic() - revoked_at

    closed, after = async_to_sync(scenario)()
    assert closed == {"type": "websocket.close", "code": 4401}
    assert after < 7  # the stream re-reads its session (and key) every 5 s


def test_a_stream_keeps_its_rate_past_the_channel_layers_idle_read(session_id, api_key):
    """8 s of frames: past the 5 s a Redis channel layer's blocking read waits for the socket's
    messages (which once ended every stream there with "Timeout reading"). Run on both layers."""
    async def scenario():
        communicator = connect(session_id, api_key)
        result = await watch(communicator, 8.0)
        await communicator.disconnect()
        return result

    _, frames, elapsed = async_to_sync(scenario)()
    assert elapsed >= 8.0 and len(frames) / elapsed >= 0.85 * 25.0
