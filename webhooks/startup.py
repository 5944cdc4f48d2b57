"""At the start of a serving process (tutorplatform/lifespan.py): deliveries an earlier process
left unfinished are queued again (at least once), and events older than WEBHOOK_KEEP_DAYS whose
deliveries are finished are deleted. Not in AppConfig.ready(), so management
commands and the tests start no deliveries by importing the app."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError

logger = logging.getLogger(__name__)


def start_background_work() -> None:
    if not settings.AVATAR_REQUEUE_ON_START:
        return
    from webhooks.services import prune, take_back_unfinished

    try:
        prune(settings.WEBHOOK_KEEP_DAYS)
        count = take_back_unfinished()
    except DatabaseError:
        logger.exception("could not take back unfinished webhook deliveries (is the database migrated?)")
        return
    if count:
        logger.info("webhooks: %d unfinished deliveries queued again", count)
