"""The Celery job backend: workers on any machine; the shared database is the queue's truth
(how many wait, which were cancelled)."""

from __future__ import annotations

import time

from django.conf import settings
from django.utils.module_loading import import_string

from avatars.errors import QueueFull
from avatars.jobs.base import Reservation


PREPARE_TASK = "avatars.prepare_avatar"  # the name avatars/tasks.py registers its task under


class CeleryJobs:
    workers = 0  # they run on other machines

    def __init__(self, app, queue_limit: int) -> None:
        self.app = app
        self.queue_limit = queue_limit

    @classmethod
    def from_settings(cls) -> CeleryJobs:
        # The Celery application (broker, options) the project configures, named by a setting so
        # that this app does not import the project package.
        return cls(import_string(settings.AVATAR_CELERY_APP), settings.AVATAR_QUEUE_LIMIT)

    def counts(self) -> tuple[int, int]:
        from avatars.models import Avatar, AvatarState

        return (Avatar.objects.filter(state=AvatarState.QUEUED).count(),
                Avatar.objects.filter(state=AvatarState.PROCESSING).count())

    def reserve(self) -> Reservation:
        queued, _ = self.counts()
        if queued >= self.queue_limit:
            raise QueueFull(f"{queued} avatars are already waiting to be processed; try again in a minute.", 30)
        # Nothing to hold: the queued rows themselves are the count.
        return Reservation(on_submit=self.submit)

    def submit(self, avatar_id: str) -> None:
        # By name: the task's code (avatars/tasks.py) is loaded by the workers, not by the API.
        self.app.send_task(PREPARE_TASK, args=[avatar_id])

    def stop(self, wait_s: float) -> bool:
        """Nothing runs in this process: the workers have their own shutdown (Celery's warm
        shutdown finishes the running job; one killed mid-job is delivered again)."""
        return True

    def cancel(self, avatar_id: str, wait_s: float = 0.0) -> bool:
        """A worker stops its job when it sees the avatar's row no longer queued or processing
        (it looks every half second, `avatars/tasks.py`); the services mark the row first. A job
        still in the broker's queue is skipped when a worker takes it. Waits up to `wait_s` for a
        running job's worker to finish its run."""
        from avatars.preparation import run_in_progress

        deadline = time.monotonic() + wait_s
        while run_in_progress(avatar_id):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True
