"""Channel-layer sends from synchronous code (worker threads, views, services).

With the in-memory channel layer the send must run on the server's event loop (its queues are
not thread-safe), so consumers register that loop when they connect; with a networked layer
(Redis) any loop will do.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

_server_loop: asyncio.AbstractEventLoop | None = None


def remember_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Called when the server starts (ASGI lifespan) and by consumers when they connect: the loop
    their channel layer lives on."""
    global _server_loop
    _server_loop = loop


def server_loop() -> asyncio.AbstractEventLoop | None:
    """The loop last remembered (it may have stopped since: check is_running())."""
    return _server_loop


def send_to_group(group: str, event: dict) -> None:
    """`group_send` from synchronous code; never raises: what is sent is a courtesy to listeners,
    the database row is the truth."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        loop = _server_loop
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(layer.group_send(group, event), loop)
        else:
            async_to_sync(layer.group_send)(group, event)
    except Exception:  # a broken layer must not fail a job or a request
        logger.exception("could not send %s to %s", event.get("type"), group)
