"""What a serving process does for avatars when it starts and when it stops (called from the
server's lifespan, tutorplatform/lifespan.py): take back the jobs an earlier process left
unfinished; at shutdown, stop the jobs so that they are taken back at the next start.

Not in AppConfig.ready(), so management commands (migrate, create_api_key, ...) and the test
suite never start jobs by importing the apps.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError

from avatars import jobs

logger = logging.getLogger(__name__)


def start_background_work() -> None:
    if settings.AVATAR_REQUEUE_ON_START:
        from avatars.services import requeue_interrupted

        try:
            requeue_interrupted()
        except DatabaseError:
            logger.exception("could not re-queue interrupted jobs (is the database migrated?)")


def stop_background_work(wait_s: float) -> bool:
    """No new jobs; queued ones stay queued, running ones are interrupted and go back to the
    queue. Waits up to `wait_s` for them; True when none is left running."""
    return jobs.stop_all(wait_s)
