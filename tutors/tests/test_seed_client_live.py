"""The seed's web-server client code, as it was written (only the API key header added), against a
real server: create the tutor, upload its video, open a session at once, watch it stream.

The seed's web server kept tutors in its own table; here the tutor is made with POST /v1/tutors
first, so that the `tutor_id` the seed's upload sends names a tutor this server knows."""

from __future__ import annotations

import asyncio
import io
import json
import time
from dataclasses import dataclass

import httpx
import pytest
import websockets

from testsupport.live_server import start_live_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = start_live_server(tmp_path_factory.mktemp("seed-client"))
    yield live
    live.stop()


@dataclass
class UploadFile:
    """What the seed's FastAPI route received as `avatar_video`."""

    filename: str
    file: io.BufferedReader
    content_type: str


@dataclass
class WebServerTutor:
    """A row of the seed web server's `tutors` table."""

    id: int
    name: str
    description: str
    avatar_id: str | None = None


async def create_tutor(engine_url: str, key: str, name: str, description: str, avatar_video: UploadFile | None):
    """The seed's `POST /tutors` handler, its GPU-server calls as written."""
    headers = {"X-API-Key": key}
    # 1. The tutor record (the seed's `db.add(tutor); db.commit()`).
    async with httpx.AsyncClient() as client:
        made = await client.post(f"{engine_url}/v1/tutors", json={"name": name, "description": description},
                                 headers=headers)
        made.raise_for_status()
    tutor = WebServerTutor(id=made.json()["id"], name=name, description=description)

    # 2. The seed's code, verbatim but for `headers=`.
    if avatar_video:
        avatar_id = f"avatar_tutor_{tutor.id}"

        async with httpx.AsyncClient() as client:
            files = {"video_file": (avatar_video.filename, avatar_video.file, avatar_video.content_type)}
            data = {
                "avatar_id": avatar_id,
                "apply_blur": False,
                "tutor_id": tutor.id
            }

            response = await client.post(
                f"{engine_url}/v1/avatars/upload",
                files=files,
                data=data,
                timeout=300.0,
                headers=headers,
            )

            if response.status_code == 201:
                result = response.json()
                tutor.avatar_id = result["avatar_id"]

    return tutor


async def open_session(engine_url: str, key: str, tutor: WebServerTutor, tutor_id: int, student_id: int) -> dict:
    """The seed's session call, as written (but for `headers=`)."""
    async with httpx.AsyncClient() as client:
        session_response = await client.post(
            f"{engine_url}/v1/sessions",
            json={
                "tutor_id": tutor_id,
                "student_id": student_id,
                "avatar_id": tutor.avatar_id
            },
            headers={"X-API-Key": key},
        )
    return {"status": session_response.status_code, **session_response.json()}


async def watch_stream(server, key: str, session: dict, frames_wanted: int = 25) -> tuple[list[dict], int, float]:
    """The stream's JSON messages until the frames start, then `frames_wanted` video frames (each
    binary message: kind byte, 8-byte time, payload; audio messages are counted apart)."""
    url = server.url.replace("http://", "ws://") + session["stream_url"] + f"?api_key={key}"
    messages, frames = [], 0
    async with websockets.connect(url) as stream:
        started = time.monotonic()
        while frames < frames_wanted:
            message = await asyncio.wait_for(stream.recv(), 120)
            if isinstance(message, bytes):
                assert message[:1] in (b"V", b"A")
                if message[:1] == b"V":
                    assert message[9:11] == b"\xff\xd8"
                    frames += 1
            else:
                messages.append(json.loads(message))
        return messages, frames, time.monotonic() - started


def test_the_seed_clients_create_tutor_upload_and_session_stream_once_the_avatar_is_ready(server, face_video):
    key = server.api_key()

    async def scenario():
        with open(face_video[0], "rb") as handle:
            tutor = await create_tutor(server.url, key, "Ms. Frizzle", "Science",
                                       UploadFile("lesson.mp4", handle, "video/mp4"))
        session = await open_session(server.url, key, tutor, tutor.id, 42)
        messages, frames, seconds = await watch_stream(server, key, session)
        return tutor, session, messages, frames, seconds

    tutor, session, messages, frames, seconds = asyncio.run(scenario())
    print(f"seed client: tutor {tutor.id}, avatar {tutor.avatar_id}; session {session['status']} "
          f"{session['state']}; stream: {[m['type'] for m in messages]}, then {frames} frames in {seconds:.1f} s")
    assert tutor.avatar_id == f"avatar_tutor_{tutor.id}"
    assert session["status"] == 201 and session["avatar_id"] == tutor.avatar_id
    assert session["state"] in ("waiting", "active")  # opened right after the 201, before the avatar was ready
    assert messages[-1]["type"] == "session" and messages[-1]["avatar_id"] == tutor.avatar_id
    assert frames == 25
    with httpx.Client() as client:
        now = client.get(f"{server.url}/v1/tutors/{tutor.id}", headers={"X-API-Key": key}).json()
    assert now["avatar_id"] == tutor.avatar_id and now["avatar"]["state"] == "ready"
