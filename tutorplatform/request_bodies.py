"""Request bodies the server will not wait for or store: too large, or stopped arriving.

ASGI middleware in front of Django, whose handler receives a whole body (into a temporary file)
before any view can look at it. Here a body is judged while it arrives:

- larger than the largest upload (AVATAR_MAX_UPLOAD_BYTES plus 64 KB for the form's other
  fields): refused with 413 `file_too_large` before a byte of it is read when `Content-Length`
  says so, or as soon as the bytes received pass it (a chunked body, or a lying length);
- stopped arriving for SERVER_BODY_IDLE_TIMEOUT_S: 408 `request_timeout`. Only the wait for the
  next piece of a body still coming is timed: while the application is busy the client is not
  being waited for, and once the body is complete Django's wait for a disconnect is left alone.

Either way the application is told the client went away (Django then drops the request and its
temporary file), and the client gets the contract's error body with `Connection: close`.
Each view's own, smaller limits still apply after this.
"""

from __future__ import annotations

import asyncio
import json
import logging

from django.conf import settings

logger = logging.getLogger(__name__)

FORM_OVERHEAD_BYTES = 64 * 1024


def largest_body() -> int:
    return settings.AVATAR_MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES


def error_messages(status: int, code: str, message: str, details: dict) -> list[dict]:
    body = json.dumps({"status": "error", "code": code, "message": message, "details": details}).encode()
    return [
        {"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]},
        {"type": "http.response.body", "body": body},
    ]


def too_large() -> list[dict]:
    return error_messages(
        413, "file_too_large",
        f"The request body is larger than the limit of {settings.AVATAR_MAX_UPLOAD_BYTES // (1024 * 1024)} MB. "
        "Trim or compress the video.",
        {"max_bytes": settings.AVATAR_MAX_UPLOAD_BYTES},
    )


def timed_out(idle_s: float) -> list[dict]:
    return error_messages(408, "request_timeout",
                          f"The request body stopped arriving for {idle_s:g} s; send it again.",
                          {"idle_timeout_s": idle_s})


def declared_length(scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestBodyGuard:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = largest_body()
        idle_s = settings.SERVER_BODY_IDLE_TIMEOUT_S
        if (declared_length(scope) or 0) > limit:
            for message in too_large():
                await send(message)
            return
        refusal: list[dict] | None = None
        body_complete = False
        received = 0
        response_started = False

        async def guarded_receive():
            nonlocal body_complete, refusal, received
            if refusal is not None:
                return {"type": "http.disconnect"}
            if body_complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), idle_s)
            except TimeoutError:
                logger.info("%s %s: the body stopped arriving for %g s", scope["method"], scope["path"], idle_s)
                refusal = timed_out(idle_s)
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refusal = too_large()
                    return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            return message

        async def watched_send(message):
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, guarded_receive, watched_send)
        if refusal is not None and not response_started:
            for message in refusal:
                await send(message)
