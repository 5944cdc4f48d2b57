"""The background job runner.

`reserve`, `submit`, `cancel` and `counts` are the only seam between the services and whatever
runs the jobs. By default (AVATAR_JOB_QUEUE=threads) a thread pool inside the server process
runs `avatars.worker.run_avatar_job(avatar_id, cancel_event)` for each job; with
AVATAR_JOB_QUEUE=celery, Celery workers on any machine run the same function (avatars/tasks.py),
and the shared database carries the queue limit and cancellations.
"""

from __future__ import annotations

import logging
import time
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings

from avatars.errors import QueueFull

logger = logging.getLogger(__name__)

JobFunction = Callable[[str, threading.Event], None]


@dataclass
class _Job:
    avatar_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    started: bool = False


class Reservation:
    """A place in the queue, taken before the avatar row is written so a full queue refuses the
    request before anything is stored. Submit it or release it, exactly once."""

    def __init__(self, runner: "JobRunner") -> None:
        self._runner = runner
        self._open = True

    def submit(self, avatar_id: str) -> None:
        if self._open:
            self._open = False
            self._runner._submit(avatar_id, reserved=True)

    def release(self) -> None:
        if self._open:
            self._open = False
            with self._runner._lock:
                self._runner._reserved -= 1


class JobRunner:
    def __init__(self, workers: int, queue_limit: int, job: JobFunction) -> None:
        self.workers = workers
        self.queue_limit = queue_limit
        self._job = job
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="avatar-job")
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._reserved = 0

    def counts(self) -> tuple[int, int]:
        """(queued, processing) jobs of this process."""
        with self._lock:
            processing = sum(1 for job in self._jobs.values() if job.started)
            return len(self._jobs) - processing + self._reserved, processing

    def reserve(self) -> Reservation:
        with self._lock:
            waiting = sum(1 for job in self._jobs.values() if not job.started) + self._reserved
            idle_workers = self.workers - sum(1 for job in self._jobs.values() if job.started)
            if waiting - max(0, idle_workers) >= self.queue_limit:
                raise QueueFull(
                    f"{waiting} avatars are already waiting to be processed; try again in a minute.",
                    retry_after_s=30,
                )
            self._reserved += 1
        return Reservation(self)

    def submit(self, avatar_id: str) -> None:
        """Queue a job without a reservation (re-queueing after a crash must never be refused)."""
        self._submit(avatar_id, reserved=False)

    def _submit(self, avatar_id: str, reserved: bool) -> None:
        with self._lock:
            if reserved:
                self._reserved -= 1
            if avatar_id in self._jobs:
                return  # already queued or running; one job per avatar
            job = self._jobs[avatar_id] = _Job(avatar_id)
        self._pool.submit(self._run, job)

    def cancel(self, avatar_id: str, wait_s: float = 0.0) -> bool:
        """Raise the job's cancel flag; wait up to `wait_s` for it to stop. True when no job of
        that avatar is left running."""
        with self._lock:
            job = self._jobs.get(avatar_id)
        if job is None:
            return True
        job.cancel.set()
        return job.done.wait(wait_s) if wait_s > 0 else job.done.is_set()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no job is queued or running (tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                jobs = list(self._jobs.values())
            if not jobs:
                return True
            jobs[0].done.wait(max(0.0, deadline - time.monotonic()))
        return False

    def _run(self, job: _Job) -> None:
        with self._lock:
            job.started = True
        try:
            self._job(job.avatar_id, job.cancel)
        except Exception:  # the job function records its own failures; this is the last net
            logger.exception("avatar job %s crashed", job.avatar_id)
        finally:
            with self._lock:
                self._jobs.pop(job.avatar_id, None)
            job.done.set()


class CeleryJobs:
    """The same seam over Celery: the database, which all machines share, is the queue's truth."""

    def __init__(self, queue_limit: int) -> None:
        self.queue_limit = queue_limit
        self.workers = 0  # on other machines

    def counts(self) -> tuple[int, int]:
        from avatars.models import Avatar, AvatarState

        return (Avatar.objects.filter(state=AvatarState.QUEUED).count(),
                Avatar.objects.filter(state=AvatarState.PROCESSING).count())

    def reserve(self) -> Reservation:
        queued, _ = self.counts()
        if queued >= self.queue_limit:
            raise QueueFull(f"{queued} avatars are already waiting to be processed; try again in a minute.", 30)
        return _CeleryReservation()

    def submit(self, avatar_id: str) -> None:
        import tutorplatform.celery  # noqa: F401  (configures the Celery app: broker, options)
        from avatars.tasks import prepare_avatar

        prepare_avatar.delay(avatar_id)

    def cancel(self, avatar_id: str, wait_s: float = 0.0) -> bool:
        """Mark the job cancelled; its worker sees that within half a second and stops."""
        from avatars.models import ACTIVE_STATES, Avatar, AvatarState

        Avatar.objects.filter(avatar_id=avatar_id, state__in=ACTIVE_STATES).update(state=AvatarState.CANCELLED)
        deadline = time.monotonic() + wait_s
        while True:
            # The worker clears the stage when it has stopped and cleaned up.
            if not Avatar.objects.filter(avatar_id=avatar_id, stage__isnull=False).exists():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


class _CeleryReservation(Reservation):
    def __init__(self) -> None:
        self._open = True

    def submit(self, avatar_id: str) -> None:
        if self._open:
            self._open = False
            CeleryJobs(0).submit(avatar_id)

    def release(self) -> None:
        self._open = False


_runner: JobRunner | None = None
_runner_lock = threading.Lock()


def uses_celery() -> bool:
    return settings.AVATAR_JOB_QUEUE == "celery"


def runner() -> JobRunner:
    """The process's runner, created on first use from the settings."""
    global _runner
    with _runner_lock:
        if _runner is None:
            from avatars.worker import run_avatar_job

            _runner = JobRunner(settings.AVATAR_WORKERS, settings.AVATAR_QUEUE_LIMIT, run_avatar_job)
        return _runner


def _backend() -> JobRunner | CeleryJobs:
    return CeleryJobs(settings.AVATAR_QUEUE_LIMIT) if uses_celery() else runner()


def reserve() -> Reservation:
    return _backend().reserve()


def submit(avatar_id: str) -> None:
    _backend().submit(avatar_id)


def cancel(avatar_id: str, wait_s: float = 0.0) -> bool:
    return _backend().cancel(avatar_id, wait_s)


def counts() -> tuple[int, int]:
    if uses_celery():
        return _backend().counts()
    return runner().counts() if _runner is not None else (0, 0)


def worker_count() -> int:
    """Job slots in this process (0 with Celery: the workers run elsewhere)."""
    return 0 if uses_celery() else settings.AVATAR_WORKERS
