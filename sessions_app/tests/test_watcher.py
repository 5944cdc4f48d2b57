"""SessionWatcher driving a transport of its own (as a media-server publisher would: no socket, no
API key, no viewer place), on the real stage, database and channel layer."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from avatars import jobs, services as avatar_services
from avatars.models import AvatarSource
from common.channels import remember_server_loop
from sessions_app import services
from sessions_app.live import watcher as watcher_module
from sessions_app.live.stage import stages
from sessions_app.live.watcher import ENDED, TOO_SLOW, LiveViewer, SessionWatcher, viewers
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)


class Recorder(LiveViewer):
    """A transport that keeps what it is given: I420 pictures and audio, the JSON events, the
    close; `slow_after` frames in, it says it cannot keep up."""

    wants_i420 = True
    still_fps = 5

    def __init__(self, slow_after: int | None = None) -> None:
        self.frames: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.events: list[dict] = []
        self.closed: list[str] = []
        self.clocks = 0
        self.slow_after = slow_after

    def frame(self, first_sample, pts, jpeg, i420, audio) -> None:
        assert jpeg is None  # made only for viewers that want it
        self.frames.append((pts, i420, audio))
        if self.slow_after is not None and len(self.frames) >= self.slow_after:
            self.too_slow = True

    def event(self, event: dict) -> None:
        self.events.append(event)

    def new_clock(self) -> None:
        self.clocks += 1

    async def close(self, reason: str) -> None:
        self.closed.append(reason)


@pytest.fixture
def session_id(face_video) -> str:
    tutor = Tutor.objects.create(name="Ada")
    avatar_services.create_avatar(avatar_id="watched", local_path=face_video[0], original_name="v.mp4",
                                  source=AvatarSource.UPLOAD, tutor_id=tutor.pk)
    assert jobs.backend().wait_idle(60)
    return str(services.create_session(tutor_id=tutor.pk, student_id=1).session_id)


async def until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not in {timeout_s} s: {what}"
        await asyncio.sleep(0.05)


def test_a_watcher_that_takes_no_place_streams_the_session_and_ends_with_it(session_id, settings):
    settings.SESSION_MAX_VIEWERS = 1

    async def scenario():
        remember_server_loop(asyncio.get_running_loop())  # the channel layer's sends reach this loop
        recorder = Recorder()
        watcher = SessionWatcher(session_id, recorder, takes_place=False, name="publisher")
        assert await watcher.open() is None
        watcher.start()
        try:
            await until(lambda: len(recorder.frames) >= 25, 20, "a second of frames")
            assert viewers.count(session_id) == 0
            assert viewers.join(session_id)  # the one place is still there for a viewer
            viewers.leave(session_id)
            header = recorder.events[0]
            assert header["type"] == "session" and header["session_id"] == session_id
            assert header["avatar_id"] == "watched" and header["audio_rate"] == settings.SESSION_AUDIO_RATE
            pts, picture, audio = recorder.frames[-1]
            assert picture.shape == (360 * 3 // 2, 640) and picture.dtype == np.uint8
            assert len(audio) == settings.SESSION_AUDIO_RATE // 25
            await asyncio.get_running_loop().run_in_executor(None, services.end_session, session_id)
            await until(lambda: recorder.closed, 10, "the close")
            assert recorder.closed == [ENDED]
            assert recorder.events[-1] == {"type": "ended", "session_id": session_id, "reason": "ended"}
            await until(lambda: not stages.of_session(session_id), 5, "the stage to stop")
        finally:
            await watcher.stop()
    asyncio.run(scenario())


def test_a_viewer_that_falls_behind_is_closed_at_once_not_at_the_next_check(session_id, monkeypatch):
    """The WebSocket stream closed it at once; the WebRTC peer only at its next check (5 s)."""
    monkeypatch.setattr(watcher_module, "CHECK_EVERY_S", 3600.0)  # no periodic check within the test

    async def scenario():
        recorder = Recorder(slow_after=10)
        watcher = SessionWatcher(session_id, recorder)
        assert await watcher.open() is None
        assert viewers.count(session_id) == 1
        watcher.start()
        try:
            await until(lambda: recorder.closed, 10, "the slow viewer to be closed")
            assert recorder.closed == [TOO_SLOW]
            assert viewers.count(session_id) == 0
            await until(lambda: not stages.of_session(session_id), 5, "the stage to stop")
        finally:
            await watcher.stop()
    asyncio.run(scenario())
