"""The server process: uvicorn serving the ASGI application (HTTP and WebSocket on one port).

`scripts/serve.sh` runs `python -m tutorplatform.server`; HOST and PORT choose the address, the
SERVER_* settings the timeouts. What uvicorn does by itself, it is asked to do here:

- Request bodies reach the application as they arrive, with back-pressure: uvicorn stops reading
  the socket while more than 64 KB wait for the application, and Django spools the body to a
  temporary file. A 250 MB upload raises the server's peak memory by a few MB
  (avatars/tests/test_upload_memory.py).
- Keep-alive: an idle kept-alive connection is closed after SERVER_KEEP_ALIVE_S.
- Graceful shutdown on SIGTERM (or Ctrl-C): the listening socket closes at once, idle connections
  close, WebSockets are closed with 1012 (service restart), requests in flight get
  SERVER_GRACEFUL_SHUTDOWN_S to finish; then the lifespan shutdown stops the avatar jobs
  (tutorplatform/lifespan.py), and the process exits.

What uvicorn does not do is added, and nothing more:

- A request's line and headers must arrive within SERVER_REQUEST_HEAD_TIMEOUT_S of its first
  byte (or of the connection opening): uvicorn alone waits forever, so a client that trickles
  headers ("slowloris") would hold a connection for good. `HttpToolsWithHeadTimeout` below, a
  subclass handed to uvicorn's own `http` setting.
- A request body that stops arriving for SERVER_BODY_IDLE_TIMEOUT_S, or arrives slower than
  SERVER_BODY_MIN_RATE_BYTES_S, is answered 408 (tutorplatform/request_bodies.py, an ASGI
  middleware, which also refuses a body larger than its endpoint's limit before reading it).
- A WebSocket whose client stops reading is dropped once its writes have stalled for
  SERVER_WS_SEND_STALL_S: uvicorn alone holds its sends (even the close) for good.
  `WebSocketWithSendStallTimeout` below, handed to uvicorn's `ws` setting.
- A request that is not valid HTTP gets the contract's JSON error body rather than plain text.
- The process does not wait for a job thread that has not stopped by then: after SIGTERM uvicorn
  ends the process by raising the signal again; after Ctrl-C `main` exits without joining such
  threads. A job left behind is still processing in the database and is re-queued at the next start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import threading

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

logger = logging.getLogger("tutorplatform.server")


class HttpToolsWithHeadTimeout(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's head: armed when the
    connection opens and when the first bytes of a next request arrive on a kept-alive one,
    disarmed when the headers are complete; when it passes, the connection is closed."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_head_timer()  # a next request begins on a kept-alive connection
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """A request that is not valid HTTP (uvicorn answers it before any application sees it)
        gets the contract's error body too, not uvicorn's plain text."""
        body = json.dumps({"status": "error", "code": "invalid_request",
                           "message": f"The request is not valid HTTP: {msg}", "details": {}}).encode()
        self.transport.write(b"".join([
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n", body,
        ]))
        self.transport.close()

    def _arm_head_timer(self) -> None:
        from django.conf import settings

        self._head_timer = self.loop.call_later(settings.SERVER_REQUEST_HEAD_TIMEOUT_S, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            logger.info("closed a connection whose request head did not arrive in time (%s)", self.client)
            self.transport.close()


class WebSocketWithSendStallTimeout(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, with a connection whose writes stay stalled dropped. When a
    client stops reading, the socket's buffers fill and uvicorn pauses every send (back-pressure)
    until it reads again, for ever; even a close frame waits behind that, and closing the
    transport waits for its buffer to drain. So when writing stays paused for
    SERVER_WS_SEND_STALL_S, the connection is aborted: the application hears a disconnect and
    what it held is freed. (A session stream frees its viewer's place ~4 s behind by itself,
    sessions_app/live/websocket.py; this ends the connection too.)"""

    _stall_timer: asyncio.TimerHandle | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall_timer is None:
            from django.conf import settings

            self._stall_timer = self.loop.call_later(settings.SERVER_WS_SEND_STALL_S, self._send_stalled)

    def resume_writing(self) -> None:
        self._disarm_stall_timer()
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_stall_timer()
        super().connection_lost(exc)

    def _disarm_stall_timer(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _send_stalled(self) -> None:
        self._stall_timer = None
        if not self.writable.is_set():  # still paused (closing it would wait for the buffer to drain)
            logger.info("dropped a WebSocket whose client stopped reading (%s)", self.client)
            self.transport.abort()


class HideApiKeys(logging.Filter):
    """Access-log lines name the path with its query: an `api_key=` there (WebSocket clients send
    their key so) is written as `api_key=…` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, str) and "api_key=" in arg for arg in record.args):
            record.args = tuple(_API_KEY_IN_QUERY.sub(r"\1…", arg) if isinstance(arg, str) else arg
                                for arg in record.args)
        return True


_API_KEY_IN_QUERY = re.compile(r"(api_key=)[^&\s\"]*")


def uvicorn_config():
    import uvicorn
    from django.conf import settings

    return uvicorn.Config(
        "tutorplatform.asgi:application",
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "9000")),
        http=HttpToolsWithHeadTimeout,
        ws=WebSocketWithSendStallTimeout,
        # No permessage-deflate: the sockets carry JPEG and PCM, which zlib barely shrinks, and
        # compressing them cost 0.35-0.45 of a core per 720p viewer (bench/speak_bench.py: one
        # idle session 0.38-0.47 cores with it, 0.03 without; 2 speaking sessions at 24 fps, not 3).
        ws_per_message_deflate=False,
        # Start-up and shutdown work runs in the lifespan; a server that cannot run it must not start.
        lifespan="on",
        timeout_keep_alive=settings.SERVER_KEEP_ALIVE_S,
        timeout_graceful_shutdown=settings.SERVER_GRACEFUL_SHUTDOWN_S,
        # X-Forwarded-For/-Proto are believed from these addresses only (the proxy in front).
        proxy_headers=True,
        forwarded_allow_ips=settings.SERVER_FORWARDED_ALLOW_IPS,
        server_header=False,
    )


def main() -> None:
    import uvicorn

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutorplatform.settings")
    config = uvicorn_config()  # configures uvicorn's loggers
    logging.getLogger("uvicorn.access").addFilter(HideApiKeys())
    logging.getLogger("uvicorn.error").addFilter(HideApiKeys())  # WebSocket lines are logged here
    server = uvicorn.Server(config)
    try:
        server.run()  # after a graceful SIGTERM uvicorn raises the signal again: the process ends there
    except KeyboardInterrupt:
        pass  # Ctrl-C: uvicorn has shut down gracefully; end as below
    if not server.started:
        sys.exit(3)  # the application or its start-up work failed: uvicorn has said why
    left = [thread.name for thread in threading.enumerate()
            if thread is not threading.main_thread() and not thread.daemon and thread.is_alive()]
    if left:
        # Python would wait for these threads at exit; a job among them is back in the queue.
        logger.warning("exiting without waiting for %d thread(s): %s", len(left), ", ".join(left))
        logging.shutdown()
        os._exit(0)


if __name__ == "__main__":
    main()
