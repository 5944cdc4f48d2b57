"""Who may open a WebSocket: a staff user's browser session from our own pages, or an API key in
the query string (`?api_key=`). A Channels middleware (inside Channels' AuthMiddlewareStack, which
puts the user in the scope) decides once per connection and puts the answer in the scope as
`socket_allowed`; consumers close a refused socket with CLOSE_NOT_AUTHENTICATED after accepting
it, so the client sees the code. The key is looked up through the `API_KEY_LOOKUP` setting (a
dotted path to `lookup(key) -> object or None`), so this module knows no app."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings
from django.http.request import validate_host
from django.utils.module_loading import import_string

# Close codes, in the application range (4000-4999).
CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


def _origin_allowed(scope) -> bool:
    """A browser's session cookie rides along on cross-site sockets too: accept it only from our
    own pages, the exact origin (scheme, host and port) the socket was opened to, or one of
    CSRF_TRUSTED_ORIGINS (the proxy's public origin, when it rewrites the Host)."""
    headers = dict(scope.get("headers", []))
    origin = headers.get(b"origin")
    if origin is None:
        return True  # not a browser
    origin = origin.decode("latin-1").rstrip("/").lower()
    host = headers.get(b"host", b"").decode("latin-1").lower()
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    if host and validate_host(host.rsplit(":", 1)[0] if not host.endswith("]") else host, settings.ALLOWED_HOSTS):
        if origin == f"{scheme}://{host}":
            return True
    return origin in {trusted.rstrip("/").lower() for trusted in settings.CSRF_TRUSTED_ORIGINS}


async def socket_allowed(scope) -> bool:
    user = scope.get("user")
    if user is not None and user.is_authenticated and user.is_staff and _origin_allowed(scope):
        return True
    key = _query_key(scope)
    if not key:
        return False
    return await database_sync_to_async(key_is_active)(key)


def _query_key(scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (query.get("api_key") or [None])[0]


def key_is_active(key: str) -> bool:
    return import_string(settings.API_KEY_LOOKUP)(key) is not None


def still_allowed(scope) -> bool:
    """For long-lived sockets, asked again from time to time (synchronous: call it from a
    database thread): a socket opened with an API key that has since been revoked is no longer
    allowed. A staff browser's socket keeps the answer it got."""
    user = scope.get("user")
    if user is not None and user.is_authenticated and user.is_staff and _origin_allowed(scope):
        return True
    key = _query_key(scope)
    return bool(key) and key_is_active(key)


class SocketAccessMiddleware:
    """Puts `socket_allowed` (bool) in every WebSocket scope."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            scope = {**scope, "socket_allowed": await socket_allowed(scope)}
        return await self.inner(scope, receive, send)


async def refuse(consumer, code: int) -> None:
    """Close a socket with an application close code the client can read. Closing during the
    handshake would reach the client as a plain HTTP 403 (the server rejects the upgrade), so
    the handshake is completed first and the close frame carries the code."""
    await consumer.accept()
    await consumer.close(code=code)


class NoSuchSocket:
    """The last route of the WebSocket router: a path that names no socket (`/ws/nothing/`, a
    session id in braces, no trailing slash) is accepted and closed with CLOSE_NOT_FOUND, like an
    unknown session, instead of reaching the server as an error (Channels' router raises on a
    path it cannot route, which the server answered with an HTTP 500 and a traceback)."""

    async def __call__(self, scope, receive, send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": CLOSE_NOT_FOUND})
