"""What a serving process does for tutoring sessions when it starts and stops: the sweep that ends
idle sessions, and loading the voice. Called from the server's lifespan (tutorplatform/lifespan.py)."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

IDLE_SWEEP_EVERY_S = 60.0

_stop_sweep = threading.Event()


def start_background_work() -> None:
    if settings.SESSION_VOICE_PRELOAD:
        from sessions_app.speaking import preload_voice

        preload_voice()
    if settings.SESSION_IDLE_SWEEP:
        _stop_sweep.clear()
        threading.Thread(target=_sweep_idle_sessions, name="idle-session-sweep", daemon=True).start()


def stop_background_work() -> None:
    _stop_sweep.set()


def _sweep_idle_sessions() -> None:
    from sessions_app.services import end_idle_sessions

    while not _stop_sweep.wait(IDLE_SWEEP_EVERY_S):
        try:
            end_idle_sessions()
        except DatabaseError:
            logger.exception("idle-session sweep failed")
        finally:
            connection.close()
