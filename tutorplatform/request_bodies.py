"""Request bodies the server will not wait for or store: too large, too slow, or stopped arriving.

ASGI middleware in front of Django, whose handler receives a whole body (into a temporary file)
before any view can look at it. Here a body is judged while it arrives:

- larger than its endpoint takes: refused with 413 `file_too_large` before a byte of it is read
  when `Content-Length` says so, or as soon as the bytes received pass it (a chunked body, or a
  lying length). The limit is the endpoint's (`body_limit` below): a view's `max_body_bytes`
  (speak: 64 MB of audio), DATA_UPLOAD_MAX_MEMORY_SIZE for an API view that takes only JSON,
  else the largest upload (AVATAR_MAX_UPLOAD_BYTES plus 64 KB for the form's other fields);
- stopped arriving for SERVER_BODY_IDLE_TIMEOUT_S, or arriving slower on average than
  SERVER_BODY_MIN_RATE_BYTES_S once SERVER_BODY_GRACE_S of waiting is spent (the time allowed
  grows by a second for each SERVER_BODY_MIN_RATE_BYTES_S bytes received, as mod_reqtimeout's
  MinRate): 408 `request_timeout`. Only the waits for the next piece of a body still coming are
  timed: while the application is busy the client is not being waited for, and once the body is
  complete Django's wait for a disconnect is left alone.

Either way the application is told the client went away (Django then drops the request and its
temporary file), and the client gets the contract's error body with `Connection: close`.
Each view's own, smaller limits still apply after this.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from django.conf import settings
from django.urls import Resolver404, resolve

logger = logging.getLogger(__name__)

FORM_OVERHEAD_BYTES = 64 * 1024


def largest_body() -> int:
    return settings.AVATAR_MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES


def body_limit(path: str) -> int:
    """The largest body the endpoint at `path` takes: its view's `max_body_bytes`; for a DRF view
    whose parsers take neither multipart nor form bodies, DATA_UPLOAD_MAX_MEMORY_SIZE (Django
    refuses more when it reads it, but only after the server has received it whole); else the
    largest upload. An unknown path gets the largest upload (its 404 says the rest)."""
    try:
        view = resolve(path).func
    except (Resolver404, UnicodeError):
        return largest_body()
    view_class = getattr(view, "view_class", None) or getattr(view, "cls", None)
    limit = getattr(view, "max_body_bytes", None) or getattr(view_class, "max_body_bytes", None)
    if limit:
        return int(limit)
    parsers = getattr(view_class, "parser_classes", None)
    if parsers and not any("multipart" in parser.media_type or "x-www-form-urlencoded" in parser.media_type
                           for parser in parsers):
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or largest_body()
    return largest_body()


def error_messages(status: int, code: str, message: str, details: dict) -> list[dict]:
    body = json.dumps({"status": "error", "code": code, "message": message, "details": details}).encode()
    return [
        {"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]},
        {"type": "http.response.body", "body": body},
    ]


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def too_large(limit: int) -> list[dict]:
    advice = " Trim or compress the video." if limit >= largest_body() else ""
    return error_messages(
        413, "file_too_large", f"The request body is larger than this endpoint's limit of {_size(limit)}.{advice}",
        {"max_bytes": limit if limit < largest_body() else settings.AVATAR_MAX_UPLOAD_BYTES},
    )


def timed_out(idle_s: float) -> list[dict]:
    return error_messages(408, "request_timeout",
                          f"The request body stopped arriving for {idle_s:g} s; send it again.",
                          {"idle_timeout_s": idle_s})


def too_slow(received: int, waited_s: float) -> list[dict]:
    rate = settings.SERVER_BODY_MIN_RATE_BYTES_S
    return error_messages(408, "request_timeout",
                          f"The request body arrived too slowly ({received} bytes in {waited_s:.0f} s; at least "
                          f"{rate} bytes a second are needed); send it again.",
                          {"min_rate_bytes_s": rate, "received_bytes": received})


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
        limit = body_limit(scope["path"])
        idle_s = settings.SERVER_BODY_IDLE_TIMEOUT_S
        min_rate = settings.SERVER_BODY_MIN_RATE_BYTES_S
        grace_s = settings.SERVER_BODY_GRACE_S
        if (declared_length(scope) or 0) > limit:
            for message in too_large(limit):
                await send(message)
            return
        refusal: list[dict] | None = None
        body_complete = False
        received = 0
        waited = 0.0  # seconds spent waiting for the body's pieces
        response_started = False

        async def guarded_receive():
            nonlocal body_complete, refusal, received, waited
            if refusal is not None:
                return {"type": "http.disconnect"}
            if body_complete:
                return await receive()
            allowed = grace_s + received / min_rate - waited if min_rate > 0 else idle_s
            began = time.monotonic()
            try:
                async with asyncio.timeout(max(0.0, min(idle_s, allowed))):
                    message = await receive()
            except TimeoutError:
                waited += time.monotonic() - began
                if allowed < idle_s:
                    logger.info("%s %s: the body arrived too slowly (%d bytes in %.0f s)", scope["method"],
                                scope["path"], received, waited)
                    refusal = too_slow(received, waited)
                else:
                    logger.info("%s %s: the body stopped arriving for %g s", scope["method"], scope["path"], idle_s)
                    refusal = timed_out(idle_s)
                return {"type": "http.disconnect"}
            waited += time.monotonic() - began
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refusal = too_large(limit)
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
