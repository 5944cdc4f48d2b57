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
    """A browser's session cookie rides along on cross-site sockets too: accept it only from our own pages."""
    headers = dict(scope.get("headers", []))
    origin = headers.get(b"origin")
    if origin is None:
        return True  # not a browser
    host = origin.decode("latin-1").split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    return validate_host(host, settings.ALLOWED_HOSTS)


async def socket_allowed(scope) -> bool:
    user = scope.get("user")
    if user is not None and user.is_authenticated and user.is_staff and _origin_allowed(scope):
        return True
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    key = (query.get("api_key") or [None])[0]
    if not key:
        return False
    lookup = import_string(settings.API_KEY_LOOKUP)
    return await database_sync_to_async(lookup)(key) is not None


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
