"""The thread-pool runner on its own, with job functions that block until told to go."""

from __future__ import annotations

import threading
import time

import pytest

from avatars.errors import QueueFull
from avatars.jobs.threads import ThreadJobs


class GatedJobs:
    def __init__(self) -> None:
        self.go = threading.Event()
        self.started: list[str] = []
        self.cancelled: list[str] = []

    def __call__(self, avatar_id: str, cancel: threading.Event) -> None:
        self.started.append(avatar_id)
        while not self.go.wait(0.01):
            if cancel.is_set():
                self.cancelled.append(avatar_id)
                return


def test_queue_limit_counts_waiting_jobs_and_reservations():
    gate = GatedJobs()
    runner = ThreadJobs(workers=1, queue_limit=2, job=gate)
    runner.reserve().submit("running")
    runner.reserve().submit("waiting-1")
    held = runner.reserve()
    with pytest.raises(QueueFull) as caught:
        runner.reserve()
    assert caught.value.retry_after_s > 0
    held.release()
    runner.reserve().submit("waiting-2")
    assert runner.counts() == (2, 1)
    gate.go.set()
    assert runner.wait_idle(5)
    assert gate.started == ["running", "waiting-1", "waiting-2"]
    assert runner.counts() == (0, 0)


def test_cancel_stops_a_running_job_and_reports_when_it_has_stopped():
    gate = GatedJobs()
    runner = ThreadJobs(workers=1, queue_limit=5, job=gate)
    runner.submit("a1")
    while not gate.started:
        threading.Event().wait(0.01)
    assert runner.cancel("a1", wait_s=2.0) is True
    assert gate.cancelled == ["a1"]
    assert runner.cancel("unknown") is True


def test_one_job_per_avatar_at_a_time():
    gate = GatedJobs()
    runner = ThreadJobs(workers=2, queue_limit=5, job=gate)
    runner.submit("a1")
    runner.submit("a1")
    gate.go.set()
    assert runner.wait_idle(5)
    assert gate.started == ["a1"]


def test_a_crashing_job_does_not_take_the_runner_down():
    calls = []

    def job(avatar_id, cancel):
        calls.append(avatar_id)
        if avatar_id == "bad":
            raise RuntimeError("boom")

    runner = ThreadJobs(workers=1, queue_limit=5, job=job)
    runner.submit("bad")
    runner.submit("good")
    assert runner.wait_idle(5)
    assert calls == ["bad", "good"] and runner.counts() == (0, 0)


def test_cancelling_a_queued_job_takes_it_out_of_the_queue_at_once():
    """The only worker is busy: a queued job is cancelled without waiting for it, and never runs."""
    gate = GatedJobs()
    runner = ThreadJobs(workers=1, queue_limit=5, job=gate)
    runner.submit("busy")
    runner.submit("queued")
    while not gate.started:
        threading.Event().wait(0.01)
    started = time.monotonic()
    assert runner.cancel("queued", wait_s=10.0) is True
    assert time.monotonic() - started < 0.1
    assert runner.counts() == (0, 1)
    runner.submit("queued-again")  # the slot is free for another job
    gate.go.set()
    assert runner.wait_idle(5)
    assert gate.started == ["busy", "queued-again"]


def test_the_setting_picks_the_backend(settings):
    from avatars import jobs
    from avatars.jobs.celery_queue import CeleryJobs

    settings.AVATAR_JOB_QUEUE = "threads"
    assert isinstance(jobs.backend(), ThreadJobs) and jobs.backend() is jobs.backend()
    settings.AVATAR_JOB_QUEUE = "celery"
    assert isinstance(jobs.backend(), CeleryJobs) and jobs.worker_count() == 0
    settings.AVATAR_JOB_QUEUE = "avatars.jobs.threads.ThreadJobs"  # a dotted path works too
    assert isinstance(jobs.backend(), ThreadJobs)


def test_the_celery_backend_sends_the_task_the_workers_register():
    from avatars.jobs.celery_queue import PREPARE_TASK
    from avatars.tasks import prepare_avatar

    assert prepare_avatar.name == PREPARE_TASK
