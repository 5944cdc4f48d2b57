"""What a serving process does once at start for avatars: take back the jobs a crash interrupted.

Called from the ASGI/WSGI entry points rather than AppConfig.ready(), so management commands
(migrate, create_api_key, ...) and the test suite never start jobs by importing the apps.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError

logger = logging.getLogger(__name__)


def start_background_work() -> None:
    if settings.AVATAR_REQUEUE_ON_START:
        from avatars.services import requeue_interrupted

        try:
            requeue_interrupted()
        except DatabaseError:
            logger.exception("could not re-queue interrupted jobs (is the database migrated?)")
