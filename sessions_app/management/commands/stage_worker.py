"""Run a stage worker: the live stages of the sessions placed on it (SESSION_MEDIA_SERVER="janus").

    python manage.py stage_worker --name worker-1 [--max-sessions N]

Any number run, on any machine that reaches the database, Redis and Janus. SIGTERM hands its
sessions over to the other workers (after what they are saying); `kill -9` is survived too (the
others take its sessions once its heartbeat is STAGE_WORKER_DEAD_AFTER_S old). README, "Live
sessions past one machine".
"""

from __future__ import annotations

import asyncio
import socket
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from sessions_app.errors import NameTaken
from sessions_app.live import placement
from sessions_app.live.stage_worker import StageWorkerRuntime


class Command(BaseCommand):
    help = "Run the live stages of the sessions placed on this worker (media through Janus)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", default=socket.gethostname(), help="this worker's name (unique among live workers)")
        parser.add_argument("--max-sessions", type=int, default=settings.STAGE_WORKER_MAX_SESSIONS,
                            help="the most sessions it takes (0: no limit)")

    def handle(self, *args, name: str, max_sessions: int, **options) -> None:
        if not placement.scaled_out():
            self.stderr.write("SESSION_MEDIA_SERVER is not \"janus\": web processes run the stages themselves; "
                              "no stage worker is needed (README, \"Live sessions past one machine\").")
            sys.exit(2)
        if not settings.JANUS_URL or not settings.JANUS_RTP_HOST:
            self.stderr.write("JANUS_URL and JANUS_RTP_HOST must be set.")
            sys.exit(2)
        try:
            asyncio.run(StageWorkerRuntime(name, max_sessions).run())
        except NameTaken as exc:
            self.stderr.write(str(exc))
            sys.exit(1)
