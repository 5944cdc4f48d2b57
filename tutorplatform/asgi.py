"""The server's entry point: one ASGI application for HTTP and WebSocket on one port, plus the
lifespan (start-up and shutdown work, tutorplatform/lifespan.py). Served by uvicorn
(tutorplatform/server.py); any ASGI server with the lifespan protocol can serve it."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutorplatform.settings")

# Django first: the imports below need the apps loaded.
http_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from avatars.routing import websocket_urlpatterns as avatar_sockets  # noqa: E402
from common.socket_auth import NoSuchSocket, SocketAccessMiddleware  # noqa: E402
from sessions_app.routing import websocket_urlpatterns as session_sockets  # noqa: E402
from tutorplatform.request_bodies import RequestBodyGuard  # noqa: E402
from tutorplatform.lifespan import lifespan  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": RequestBodyGuard(http_application),
        # Sessions authenticate staff browsers; API clients put ?api_key= in the URL.
        # Any other path is refused cleanly (closed with 4404), never an HTTP 500.
        "websocket": AuthMiddlewareStack(SocketAccessMiddleware(URLRouter(
            avatar_sockets + session_sockets + [re_path(r"", NoSuchSocket())]))),
        "lifespan": lifespan,
    }
)
