"""The server's entry point: one ASGI application for HTTP and WebSocket on one port."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutorplatform.settings")

# Django first: the imports below need the apps loaded.
http_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from avatars.routing import websocket_urlpatterns as avatar_sockets  # noqa: E402
from common.socket_auth import SocketAccessMiddleware  # noqa: E402
from avatars.startup import start_background_work as start_avatar_work  # noqa: E402
from sessions_app.startup import start_background_work as start_session_work  # noqa: E402
from tutorplatform.daphne_uploads import read_request_bodies_from_disk, stop_form_parsing_in_twisted  # noqa: E402
from sessions_app.routing import websocket_urlpatterns as session_sockets  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": http_application,
        # Sessions authenticate staff browsers; API clients put ?api_key= in the URL.
        "websocket": AuthMiddlewareStack(SocketAccessMiddleware(URLRouter(avatar_sockets + session_sockets))),
    }
)

stop_form_parsing_in_twisted()
read_request_bodies_from_disk()
start_avatar_work()
start_session_work()
