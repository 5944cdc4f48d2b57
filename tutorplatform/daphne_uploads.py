"""Keep upload bodies out of daphne's memory.

Two things under daphne held a whole upload in memory, so the server's peak grew with the
upload's size (measured here: a 250 MB upload raised it by 3.0 GB, then by 250 MB):

1. Twisted's HTTP request parses every multipart POST body into `request.args`, reading all of
   it into memory and copying it several times. Daphne hands the body to Django unparsed, and
   `request.args` is never used. Twisted (22.10+) lets this be switched off per request, which
   daphne does not do: `stop_form_parsing_in_twisted` does it.
2. Twisted spools a large body to a temporary file, but daphne then reads all of that file into
   the application's input queue at once, 8 KB message by message, before Django reads any.
   `read_request_bodies_from_disk` makes that queue keep, for each body message, only where its
   bytes lie in Twisted's file, and read them back when Django asks for the message. Django
   itself spools the body to disk (FILE_UPLOAD_MAX_MEMORY_SIZE) and streams uploads to files.

Both patch daphne 4.2 / Twisted 24+ internals, once, when the ASGI application loads; under
another ASGI server they do nothing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass


def stop_form_parsing_in_twisted() -> None:
    try:
        from daphne import http_protocol
    except ImportError:  # served by another ASGI server: nothing to do
        return
    original_init = http_protocol.WebRequest.__init__
    if getattr(original_init, "without_form_parsing", False):
        return

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False

    __init__.without_form_parsing = True
    http_protocol.WebRequest.__init__ = __init__


@dataclass(frozen=True)
class _BodyOnDisk:
    """An http.request message whose body is `length` bytes at `offset` of the request's file."""

    offset: int
    length: int
    more_body: bool


def _keep_body_on_disk(queue, request) -> None:
    """Make daphne's input `queue` (an asyncio.Queue) for `request` hold body messages as places
    in Twisted's temporary file. Small bodies (kept in memory by Twisted anyway) are left alone."""
    content = getattr(request, "content", None)
    try:
        content.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return
    items = queue._queue  # asyncio.Queue's storage; _put and _get are its hooks for subclasses
    written = 0

    def put(message) -> None:
        nonlocal written
        if isinstance(message, dict) and message.get("type") == "http.request" and message.get("body"):
            length = len(message["body"])
            items.append(_BodyOnDisk(written, length, bool(message.get("more_body"))))
            written += length
        else:
            items.append(message)

    def get():
        item = items.popleft()
        if not isinstance(item, _BodyOnDisk):
            return item
        # Daphne has read the whole file by now (it queues every message in one go, on this
        # event loop), so moving the file's position cannot disturb it. Twisted closes the file
        # when the connection is lost: the client has gone, so say so.
        if content.closed:
            return {"type": "http.disconnect"}
        content.seek(item.offset)
        return {"type": "http.request", "body": content.read(item.length), "more_body": item.more_body}

    queue._put = put
    queue._get = get


def read_request_bodies_from_disk() -> None:
    try:
        from daphne import server
    except ImportError:
        return
    original = server.Server.create_application
    if getattr(original, "bodies_from_disk", False):
        return

    def create_application(self, protocol, scope):
        queue = original(self, protocol, scope)
        if queue is not None and scope.get("type") == "http":
            _keep_body_on_disk(queue, protocol)
        return queue

    create_application.bodies_from_disk = True
    server.Server.create_application = create_application
