"""What a serving process does once at start for tutoring sessions: the sweep that ends idle
sessions. Called from the ASGI/WSGI entry points (see avatars/startup.py for why not ready())."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

IDLE_SWEEP_EVERY_S = 60.0


def start_background_work() -> None:
    if settings.SESSION_IDLE_SWEEP:
        threading.Thread(target=_sweep_idle_sessions, name="idle-session-sweep", daemon=True).start()


def _sweep_idle_sessions() -> None:
    from sessions_app.services import end_idle_sessions

    stop = threading.Event()
    while not stop.wait(IDLE_SWEEP_EVERY_S):
        try:
            end_idle_sessions()
        except DatabaseError:
            logger.exception("idle-session sweep failed")
        finally:
            connection.close()
