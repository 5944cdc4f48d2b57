"""Background jobs: the one seam between the services and whatever runs avatar preparations.

The services call `reserve`, `submit`, `cancel`, `counts` and `worker_count`; nothing else knows
which backend runs the jobs. `AVATAR_JOB_QUEUE` picks the backend, the way Django picks session
and cache backends: a short name, or the dotted path of a class with the JobBackend interface
(`base.py`).

- ``threads`` (`threads.ThreadJobs`, the default): a thread pool inside the server process runs
  `avatars.preparation.run_avatar_job` for each job.
- ``celery`` (`celery_queue.CeleryJobs`): Celery workers on any machine run the same function
  (`avatars/tasks.py`); the database, which every machine shares, is the queue's truth.

What a job does lives in `avatars/preparation.py`; the rules around it (what may be queued,
cancelled, deleted) in `avatars/services.py`.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from avatars.jobs.base import JobBackend, Reservation

BACKENDS = {
    "threads": "avatars.jobs.threads.ThreadJobs",
    "celery": "avatars.jobs.celery_queue.CeleryJobs",
}

_backends: dict[str, JobBackend] = {}
_lock = threading.Lock()

__all__ = ["JobBackend", "Reservation", "backend", "cancel", "counts", "reserve", "stop_all",
           "submit", "uses_celery", "worker_count"]


def backend() -> JobBackend:
    """The backend the setting names; one instance per process (a thread pool is made once)."""
    name = settings.AVATAR_JOB_QUEUE
    with _lock:
        if name not in _backends:
            _backends[name] = import_string(BACKENDS.get(name, name)).from_settings()
        return _backends[name]


def running_backends() -> list[JobBackend]:
    """The backends this process has made so far (tests wait for their jobs to finish)."""
    with _lock:
        return list(_backends.values())


def uses_celery() -> bool:
    return settings.AVATAR_JOB_QUEUE == "celery"


def reserve() -> Reservation:
    return backend().reserve()


def submit(avatar_id: str) -> None:
    backend().submit(avatar_id)


def cancel(avatar_id: str, wait_s: float = 0.0) -> bool:
    return backend().cancel(avatar_id, wait_s)


def counts() -> tuple[int, int]:
    return backend().counts()


def stop_all(wait_s: float) -> bool:
    """Shutdown: every backend this process made stops taking jobs and interrupts its running
    ones (they go back to the queue), each waiting up to `wait_s`. True when none is left running."""
    return all([running.stop(wait_s) for running in running_backends()])


def worker_count() -> int:
    """Job slots in this process (0 with Celery: the workers run elsewhere)."""
    return backend().workers
