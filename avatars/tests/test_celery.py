"""Jobs on Celery: an API server and a separate worker process, sharing the database, the files
and Redis (broker and channel layer). Runs in the test command's PostgreSQL/Redis pass."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from testsupport.live_server import ROOT, start_live_server
from testsupport.videos import drifting, write_face_video

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (the PostgreSQL/Redis pass)")


@pytest.fixture(scope="module")
def api_and_worker(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("celery")
    (data_dir / "import").mkdir()
    # A short visibility timeout, so a job whose worker was killed comes back within the test.
    extra = {"AVATAR_JOB_QUEUE": "celery", "REDIS_URL": os.environ["REDIS_URL"], "AVATAR_JOB_VISIBILITY_TIMEOUT_S": "5"}
    server = start_live_server(data_dir, extra_env=extra)
    workers = [start_worker(server, data_dir)]
    key = server.api_key()
    yield server, workers, key, data_dir
    for worker in workers:
        worker.terminate()
        worker.wait(20)
    server.stop()


def start_worker(server, data_dir: Path) -> subprocess.Popen:
    """`celery -A tutorplatform worker`, as each GPU machine would run it; in its own process group.
    It has the server's settings, with `data_dir` as its own data folder."""
    log = open(data_dir / "worker.log", "a")
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "tutorplatform", "worker", "--concurrency", "1",
                             "--loglevel", "INFO"], cwd=ROOT, env={**server.env, "DATA_DIR": str(data_dir)},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def upload(server, key: str, avatar_id: str, video: Path) -> tuple[int, dict]:
    """POST /v1/avatars/upload as multipart, as the seed's web server does."""
    boundary = "tutor-video"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"avatar_id\"\r\n\r\n{avatar_id}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"video_file\"; filename=\"{video.name}\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode() + video.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{server.url}/v1/avatars/upload", method="POST", data=body, headers={
        "X-API-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, json.loads(response.read())


def call(server, key: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{server.url}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def poll_avatar(server, key: str, avatar_id: str, until, seconds: float) -> dict:
    """GET the avatar every 0.1 s until `until(avatar)` holds or `seconds` have passed; the last answer."""
    for _ in range(int(seconds * 10)):
        avatar = call(server, key, "GET", f"/v1/avatars/{avatar_id}")
        if until(avatar):
            break
        time.sleep(0.1)
    return avatar


def is_final(avatar: dict) -> bool:
    return avatar["state"] in ("ready", "failed")


async def progress_messages(url: str) -> list[dict]:
    import websockets

    messages = []
    async with websockets.connect(url) as socket:
        async for raw in socket:
            message = json.loads(raw)
            messages.append(message)
            if message["state"] in ("ready", "failed", "cancelled"):
                return messages
    return messages


def test_a_worker_process_prepares_the_upload_and_progress_reaches_the_api_socket(api_and_worker, face_video):
    server, workers, key, data_dir = api_and_worker
    video = data_dir / "import" / "tutor.mp4"
    write_face_video(video, width=640, height=360, seconds=6.0, motion=drifting(640, 360))
    created = call(server, key, "POST", "/v1/avatars", {"avatar_id": "via_celery", "video_path": str(video)})
    assert created["state"] == "queued"
    socket_url = server.url.replace("http", "ws") + f"/ws/avatars/via_celery/?api_key={key}"
    messages = asyncio.run(asyncio.wait_for(progress_messages(socket_url), 120))
    print(f"{len(messages)} progress messages through Redis: " + ", ".join(f"{m['stage'] or m['state']} {m['progress']}" for m in messages))
    assert messages[-1]["state"] == "ready"
    assert any(m["state"] == "processing" for m in messages)
    assert [m["progress"] for m in messages] == sorted(m["progress"] for m in messages)
    avatar = call(server, key, "GET", "/v1/avatars/via_celery")
    assert avatar["state"] == "ready" and avatar["video"]["frame_count"] == 150
    assert len(list((Path(avatar["avatar_path"]) / "full_imgs").iterdir())) == 150
    # Prepared by the worker, not by the API server.
    assert "avatar via_celery: run 1 ready" in (data_dir / "worker.log").read_text()
    assert "run 1 started" not in (data_dir / "server.log").read_text()
    health = call(server, key, "GET", "/health")
    assert health["workers"] == 0


def test_deleting_through_the_api_cancels_the_job_on_the_worker(api_and_worker):
    server, workers, key, data_dir = api_and_worker
    video = data_dir / "import" / "long.mp4"
    write_face_video(video, width=640, height=360, seconds=20.0)
    call(server, key, "POST", "/v1/avatars", {"avatar_id": "to_cancel", "video_path": str(video)})
    poll_avatar(server, key, "to_cancel", lambda avatar: avatar["state"] == "processing", 30)
    started = time.monotonic()
    assert call(server, key, "DELETE", "/v1/avatars/to_cancel")["status"] == "success"
    print(f"delete answered in {time.monotonic() - started:.2f} s")
    time.sleep(1.5)
    assert "to_cancel: run 1 cancelled" in (data_dir / "worker.log").read_text()
    assert not (data_dir / "avatars" / "to_cancel").exists()
    assert not list((data_dir / "work").glob("to_cancel-*"))


def test_a_job_whose_worker_is_killed_is_delivered_again_and_finishes(api_and_worker):
    import signal

    server, workers, key, data_dir = api_and_worker
    video = data_dir / "import" / "survivor.mp4"
    write_face_video(video, width=640, height=360, seconds=20.0)
    call(server, key, "POST", "/v1/avatars", {"avatar_id": "survivor", "video_path": str(video)})
    state = poll_avatar(server, key, "survivor", lambda avatar: avatar["state"] == "processing" and avatar["progress"] > 10, 30)
    assert state["state"] == "processing"
    os.killpg(workers[0].pid, signal.SIGKILL)  # the worker and its pool process, at once
    workers[0].wait(10)
    assert not Path(state["avatar_path"]).exists()
    workers.append(start_worker(server, data_dir))
    state = poll_avatar(server, key, "survivor", is_final, 90)
    print(f"after the kill: {state['state']} (run redelivered by the broker)")
    assert state["state"] == "ready", state
    assert len(list((Path(state["avatar_path"]) / "full_imgs").iterdir())) == 500
    assert not list((data_dir / "work").glob("survivor-*")), "the killed run's work folder is cleaned up"


def test_an_api_machine_and_a_worker_machine_sharing_only_database_redis_and_s3(tmp_path_factory, face_video):
    """Two machines as the README's deployment has them: each its own data folder (nothing on a
    shared disk), the database, Redis and an S3 bucket between them. An upload to the API is
    stored in the bucket, prepared by the worker from there and published back to it; the API
    then serves the result from the bucket, and deleting removes it there."""
    from testsupport.s3_server import BUCKET, MOTO_SERVER, start_s3_server

    if MOTO_SERVER is None:
        pytest.skip("moto_server is not installed (requirements-test.txt installs moto[server])")
    s3 = start_s3_server()
    api_dir, gpu_dir = tmp_path_factory.mktemp("api-machine"), tmp_path_factory.mktemp("gpu-machine")
    # A broker of their own: the other tests' worker (local files, no bucket) is still listening.
    redis_url = os.environ["REDIS_URL"]
    broker = redis_url[: redis_url.rindex("/")] + "/2" if redis_url.count("/") > 2 else redis_url + "/2"
    extra = {"AVATAR_JOB_QUEUE": "celery", "REDIS_URL": redis_url, "CELERY_BROKER_URL": broker, **s3.environment()}
    server = start_live_server(api_dir, extra_env=extra)
    worker = start_worker(server, gpu_dir)
    try:
        key = server.api_key()
        status, created = upload(server, key, "two_machines", face_video[0])
        assert status == 201 and created["state"] == "queued", created
        avatar = poll_avatar(server, key, "two_machines", is_final, 120)
        assert avatar["state"] == "ready", avatar
        assert avatar["avatar_path"] == f"s3://{BUCKET}/avatars/two_machines/"
        frames = avatar["video"]["frame_count"]
        assert frames == len(face_video[1])
        assert len(s3.keys("avatars/two_machines/full_imgs/")) == len(s3.keys("avatars/two_machines/face_imgs/")) == frames
        assert s3.keys("sources/two_machines/") == [f"sources/two_machines/{face_video[0].name}"]
        request = urllib.request.Request(f"{server.url}/v1/avatars/two_machines/preview", headers={"X-API-Key": key})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.read()[:2] == b"\xff\xd8"
        assert "avatar two_machines: run 1 ready" in (gpu_dir / "worker.log").read_text()
        assert "run 1 started" not in (api_dir / "server.log").read_text()
        # Neither machine keeps the avatar on its own disk.
        for machine in (api_dir, gpu_dir):
            for folder in ("avatars", "work", "sources"):
                left = [p for p in (machine / folder).rglob("*") if p.is_file()] if (machine / folder).exists() else []
                assert left == [], (machine, folder, left)
        assert call(server, key, "DELETE", "/v1/avatars/two_machines")["status"] == "success"
        assert s3.keys("avatars/two_machines/") == [] and s3.keys("sources/two_machines/") == []
    finally:
        worker.terminate()
        worker.wait(20)
        server.stop()
        s3.stop()
