"""The Celery task behind `jobs.submit` when AVATAR_JOB_QUEUE=celery (`jobs/celery_queue.py`).

The worker process runs the same job function as the thread pool. Cancelling works through the
database, which every machine shares: a job whose avatar row is deleted (or no longer queued or
processing under this run) stops between two frames.
"""

from __future__ import annotations

import threading

from celery import shared_task

from avatars.models import ACTIVE_STATES, Avatar
from avatars.preparation import JobStop, run_avatar_job

CANCEL_POLL_S = 0.5


def _watch_for_cancel(avatar_id: str, stop: JobStop, done: threading.Event) -> None:
    from django.db import connection

    try:
        while not done.wait(CANCEL_POLL_S):
            if not Avatar.objects.filter(avatar_id=avatar_id, state__in=ACTIVE_STATES).exists():
                stop.cancel()
                return
    finally:
        connection.close()


@shared_task(name="avatars.prepare_avatar", acks_late=True, reject_on_worker_lost=True)
def prepare_avatar(avatar_id: str) -> None:
    stop, done = JobStop(), threading.Event()
    watcher = threading.Thread(target=_watch_for_cancel, args=(avatar_id, stop, done), daemon=True)
    watcher.start()
    try:
        run_avatar_job(avatar_id, stop, in_child_process=False)  # a pool worker may not fork children
    finally:
        done.set()
        watcher.join()
