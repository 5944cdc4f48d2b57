"""Faults: a server killed mid-job, a delete mid-job, a disk that fails mid-write."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from avatars import jobs
from avatars.models import Avatar
from conftest import files_under
from testsupport.live_server import start_live_server
from testsupport.videos import drifting, write_face_video


def call(server, method: str, path: str, key: str, body: bytes | None = None, content_type: str | None = None) -> dict:
    headers = {"X-API-Key": key}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(f"{server.url}{path}", data=body, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_a_server_killed_mid_job_requeues_it_on_restart_and_never_shows_half_a_result(tmp_path):
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    (data_dir / "import").mkdir()
    video = data_dir / "import" / "long.mp4"
    write_face_video(video, width=640, height=360, seconds=30.0, motion=drifting(640, 360))
    os.environ["AVATAR_FRAME_FORMAT"] = "png"  # slower frames: a wider window to kill it in
    try:
        server = start_live_server(data_dir)
    finally:
        del os.environ["AVATAR_FRAME_FORMAT"]
    key = server.api_key()
    body = json.dumps({"avatar_id": "survivor", "video_path": str(video)}).encode()
    created = call(server, "POST", "/v1/avatars", key, body, "application/json")
    avatar_path = Path(created["avatar_path"])
    try:
        for _ in range(300):
            state = call(server, "GET", "/v1/avatars/survivor", key)
            if state["state"] == "processing" and state["progress"] >= 20:
                break
            time.sleep(0.1)
        assert state["state"] == "processing", state
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        partial = files_under(data_dir / "work")
        print(f"killed at {state['progress']}% with {len(partial)} files in the work folder")
        assert partial, "the run should have been writing when it was killed"
        assert not avatar_path.exists(), "nothing may be visible under avatar_path before the run succeeds"
    finally:
        server.stop()

    restarted = start_live_server(data_dir)
    try:
        for _ in range(600):
            state = call(restarted, "GET", "/v1/avatars/survivor", key)
            if state["state"] in ("ready", "failed"):
                break
            time.sleep(0.1)
        assert state["state"] == "ready", state
        assert len(list((avatar_path / "full_imgs").iterdir())) == 750
        assert len(list((avatar_path / "face_imgs").iterdir())) == 750
        assert files_under(data_dir / "work") == []
        assert key not in (data_dir / "server.log").read_text(), "API keys must not be logged"
    finally:
        restarted.stop()


@pytest.mark.django_db(transaction=True)
def test_deleting_mid_job_stops_the_worker_within_a_second_and_removes_everything(client_with_key, isolated_storage, tmp_path):
    video = tmp_path / "long.mp4"
    write_face_video(video, width=640, height=360, seconds=12.0)
    client_with_key.post("/v1/avatars/upload", {"avatar_id": "doomed", "video_file": SimpleUploadedFile(
        "long.mp4", video.read_bytes(), "video/mp4")}, format="multipart")
    for _ in range(200):
        avatar = Avatar.objects.get(avatar_id="doomed")
        if avatar.state == "processing" and avatar.progress > 5:
            break
        time.sleep(0.02)
    started = time.monotonic()
    assert client_with_key.delete("/v1/avatars/doomed").status_code == 200
    stopped_in = time.monotonic() - started
    print(f"delete answered, job stopped, in {stopped_in:.2f} s")
    assert jobs.backend().counts() == (0, 0)
    assert stopped_in < 1.0
    for folder in ("media", "avatars", "work"):
        assert files_under(isolated_storage / folder) == []


@pytest.mark.django_db(transaction=True)
def test_a_disk_failing_mid_write_fails_the_job_cleanly(client_with_key, isolated_storage, tmp_path):
    """The crops' folder turns into a file halfway through the run, as a storage that stops taking
    writes would: the job fails with write_failed and leaves nothing."""
    video = tmp_path / "long.mp4"
    write_face_video(video, width=640, height=360, seconds=12.0)
    client_with_key.post("/v1/avatars/upload", {"avatar_id": "unlucky", "video_file": SimpleUploadedFile(
        "long.mp4", video.read_bytes(), "video/mp4")}, format="multipart")
    for _ in range(500):
        runs = list((isolated_storage / "work").glob("unlucky-*/face_imgs"))
        if runs and len(list(runs[0].iterdir())) > 20:
            break
        time.sleep(0.01)
    # One rename (the writers keep adding files: removing the folder file by file raced them).
    runs[0].rename(runs[0].with_name("taken-away"))
    runs[0].write_bytes(b"not a folder any more")
    assert jobs.backend().wait_idle(60)
    avatar = Avatar.objects.get(avatar_id="unlucky")
    print(f"failed with {avatar.error_code}: {avatar.error_message}")
    assert avatar.state == "failed" and avatar.error_code == "write_failed"
    assert "could not write" in avatar.error_message
    assert files_under(isolated_storage / "avatars") == [] and files_under(isolated_storage / "work") == []
    # The source is kept, so the avatar can be reprocessed once the storage works again.
    assert len(files_under(isolated_storage / "media")) == 1
