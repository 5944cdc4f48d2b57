"""What the server process does when it starts and when it stops: the ASGI lifespan protocol.

Start: each app's start-up work (avatars: re-queue the jobs an earlier process left unfinished;
sessions: the idle-session sweep; webhooks: send again the deliveries left unfinished). A failure
there stops the server from starting.
Stop (after SIGTERM, once the server has closed its connections): the avatar jobs stop taking
work; queued ones stay queued in the database, running ones are interrupted between two frames
and put back in the queue, waiting up to AVATAR_JOB_STOP_WAIT_S for them. The next start runs them.

Here rather than in AppConfig.ready(), so management commands and the tests never start jobs by
importing the apps; the WSGI entry point starts the same work itself (it has no lifespan).
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.conf import settings

from common.channels import remember_server_loop

logger = logging.getLogger(__name__)


async def close_all_peers() -> None:
    from sessions_app.live.webrtc.microphone import close_all as close_all_microphones
    from sessions_app.live.webrtc.peers import close_all

    await close_all()
    await close_all_microphones()


def start_background_work() -> None:
    from avatars.startup import start_background_work as start_avatar_work
    from sessions_app.startup import start_background_work as start_session_work
    from webhooks.startup import start_background_work as start_webhook_work

    start_avatar_work()
    start_session_work()
    start_webhook_work()


def stop_background_work() -> None:
    from avatars.startup import stop_background_work as stop_avatar_work
    from sessions_app.startup import stop_background_work as stop_session_work

    stop_session_work()
    stop_avatar_work(settings.AVATAR_JOB_STOP_WAIT_S)


async def lifespan(scope, receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            remember_server_loop(asyncio.get_running_loop())  # WebRTC peers live on it
            try:
                await sync_to_async(start_background_work, thread_sensitive=False)()
            except Exception as exc:
                logger.exception("start-up work failed")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await close_all_peers()
                await sync_to_async(stop_background_work, thread_sensitive=False)()
            except Exception as exc:
                logger.exception("shutdown work failed")
                await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.shutdown.complete"})
            return
