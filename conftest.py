"""Fixtures shared by every test: isolated data folders, API keys, generated face videos."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from testsupport.videos import drifting, write_face_video


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path: Path):
    """Each test gets its own media, avatar, work and import folders."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.AVATAR_ROOT = tmp_path / "avatars"
    settings.AVATAR_WORK_DIR = tmp_path / "work"
    settings.AVATAR_IMPORT_DIRS = [(tmp_path / "import").resolve()]
    (tmp_path / "import").mkdir()
    yield tmp_path


@pytest.fixture
def gate_jobs(monkeypatch):
    """Hold every job of the thread pool at its start until the yielded event is set (so a socket
    can connect, or a replacement be looked at, first); then it runs for real. A job stopped
    while held goes on to see its stop at once."""
    import threading

    from avatars import jobs

    runner = jobs.backend()
    real_job = runner._job
    go = threading.Event()

    def gated(avatar_id, stop):
        while not go.wait(0.01) and not stop.is_set():
            pass
        real_job(avatar_id, stop)

    monkeypatch.setattr(runner, "_job", gated)
    yield go
    go.set()  # let held jobs finish before the test's teardown waits for them


@pytest.fixture(autouse=True)
def jobs_finish_before_teardown():
    """A job still running when a test ends would write into the next test's database."""
    yield
    from avatars import jobs

    for backend in jobs.running_backends():
        if hasattr(backend, "wait_idle"):
            assert backend.wait_idle(60), "a background job did not finish within 60 s"
    import sys

    speaking = sys.modules.get("sessions_app.speaking")  # the sentences a text's speak left to make
    if speaking is not None:
        assert speaking.wait_made(60), "a text's sentences were not made within 60 s"


@pytest.fixture
def api_key(db) -> str:
    from avatars.models import ApiKey

    return ApiKey.issue("tests")[1]


@pytest.fixture
def client_with_key(api_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key)
    return client


def files_under(folder: Path) -> list[Path]:
    """Every file below `folder` (nothing if it does not exist)."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def face_video(video_dir: Path) -> tuple[Path, list]:
    """2 s, 640x360, the astronaut drifting and zooming: (path, true face box per frame)."""
    path = video_dir / "face.mp4"
    truth = write_face_video(path, width=640, height=360, seconds=2.0, motion=drifting(640, 360, period_s=2.0))
    return path, truth


@pytest.fixture(scope="session")
def no_face_video(video_dir: Path) -> Path:
    path = video_dir / "no_face.mp4"
    write_face_video(path, width=640, height=360, seconds=2.0, with_face=False)
    return path


@pytest.fixture(scope="session")
def short_video(video_dir: Path) -> Path:
    path = video_dir / "short.mp4"
    write_face_video(path, width=640, height=360, seconds=0.3)
    return path


@pytest.fixture(scope="session")
def low_res_video(video_dir: Path) -> Path:
    path = video_dir / "low_res.mp4"
    write_face_video(path, width=320, height=180, seconds=2.0)
    return path


@pytest.fixture(scope="session")
def not_a_video(video_dir: Path) -> Path:
    path = video_dir / "notes.mp4"
    path.write_bytes(b"These are lesson notes, not a video.\n" * 100)
    return path


@pytest.fixture(scope="session")
def picture_named_mp4(video_dir: Path) -> Path:
    import cv2

    from testsupport.videos import astronaut_bgr

    path = video_dir / "picture.mp4"
    path.write_bytes(cv2.imencode(".png", astronaut_bgr())[1].tobytes())
    return path


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """Before the test database is dropped: close the connections that threads other than this
    one left open. The tests' own helper threads (requests sent from threads, `run_in_executor`)
    go through Django's request cycle, which keeps a connection for CONN_MAX_AGE on PostgreSQL;
    left open, each kept the test database from being dropped ("being accessed by other users").
    (The server's own worker threads close theirs: common/db_threads.py.)"""
    import threading
    import weakref

    from django.db.backends.signals import connection_created

    opened: weakref.WeakSet = weakref.WeakSet()

    def created(sender, connection, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            opened.add(connection)

    connection_created.connect(created, weak=False)
    yield
    connection_created.disconnect(created)
    for connection in list(opened):
        if connection.connection is not None:
            connection.inc_thread_sharing()  # closed from this thread, its opener being done
            try:
                connection.close()
            finally:
                connection.dec_thread_sharing()
