"""The default job backend: a thread pool inside the server process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings

from avatars.errors import QueueFull
from avatars.jobs.base import Reservation
from avatars.preparation import JobStop, run_avatar_job

logger = logging.getLogger(__name__)

JobFunction = Callable[[str, JobStop], None]


@dataclass
class _Job:
    avatar_id: str
    stop: JobStop = field(default_factory=JobStop)
    done: threading.Event = field(default_factory=threading.Event)
    started: bool = False


class ThreadJobs:
    """Runs `job(avatar_id, stop)` on `workers` threads, one job per avatar at a time, with at
    most `queue_limit` jobs waiting beyond the idle workers."""

    def __init__(self, workers: int, queue_limit: int, job: JobFunction) -> None:
        self.workers = workers
        self.queue_limit = queue_limit
        self._job = job
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="avatar-job")
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._reserved = 0
        self._stopping = False

    @classmethod
    def from_settings(cls) -> ThreadJobs:
        return cls(settings.AVATAR_WORKERS, settings.AVATAR_QUEUE_LIMIT, run_avatar_job)

    def counts(self) -> tuple[int, int]:
        """(queued, processing) jobs of this process."""
        with self._lock:
            processing = sum(1 for job in self._jobs.values() if job.started)
            return len(self._jobs) - processing + self._reserved, processing

    def reserve(self) -> Reservation:
        with self._lock:
            if self._stopping:
                raise QueueFull("The server is restarting; try again in a minute.", retry_after_s=30)
            waiting = sum(1 for job in self._jobs.values() if not job.started) + self._reserved
            idle_workers = self.workers - sum(1 for job in self._jobs.values() if job.started)
            if waiting - max(0, idle_workers) >= self.queue_limit:
                raise QueueFull(
                    f"{waiting} avatars are already waiting to be processed; try again in a minute.",
                    retry_after_s=30,
                )
            self._reserved += 1
        return Reservation(on_submit=self._submit_reserved, on_release=self._release_reserved)

    def submit(self, avatar_id: str) -> None:
        self._submit(avatar_id)

    def _submit_reserved(self, avatar_id: str) -> None:
        self._release_reserved()
        self._submit(avatar_id)

    def _release_reserved(self) -> None:
        with self._lock:
            self._reserved -= 1

    def _submit(self, avatar_id: str) -> None:
        with self._lock:
            if self._stopping:
                return  # shutting down: the row stays queued and the next start runs it
            if avatar_id in self._jobs:
                return  # already queued or running; one job per avatar
            job = self._jobs[avatar_id] = _Job(avatar_id)
        self._pool.submit(self._run, job)

    def cancel(self, avatar_id: str, wait_s: float = 0.0) -> bool:
        with self._lock:
            job = self._jobs.get(avatar_id)
            if job is None:
                return True
            job.stop.cancel()
            if not job.started:
                # Still waiting for a worker: out of the queue now (when the pool reaches it, it
                # is skipped), rather than waiting for the job ahead of it to finish.
                del self._jobs[avatar_id]
                job.done.set()
                return True
        return job.done.wait(wait_s) if wait_s > 0 else job.done.is_set()

    def stop(self, wait_s: float) -> bool:
        with self._lock:
            self._stopping = True
            running = [job for job in self._jobs.values() if job.started]
            for job in list(self._jobs.values()):
                job.stop.interrupt()
                if not job.started:  # out of the queue now; when the pool reaches it, it is skipped
                    del self._jobs[job.avatar_id]
                    job.done.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + wait_s
        stopped = all(job.done.wait(max(0.0, deadline - time.monotonic())) for job in running)
        if running:
            logger.info("shutdown: %d running job(s) %s", len(running),
                        "interrupted and back in the queue" if stopped else f"not stopped within {wait_s:g} s")
        return stopped

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
            if job.stop.is_set():
                return  # cancelled while it waited: already out of the queue
            job.started = True
        try:
            self._job(job.avatar_id, job.stop)
        except Exception:  # the job function records its own failures; this is the last net
            logger.exception("avatar job %s crashed", job.avatar_id)
        finally:
            with self._lock:
                self._jobs.pop(job.avatar_id, None)
            job.done.set()
