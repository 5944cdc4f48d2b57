"""The server's entry point: one ASGI application for HTTP (and, later, WebSocket)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutorplatform.settings")

application = get_asgi_application()

from avatars.startup import start_background_work  # noqa: E402  (needs the apps loaded above)

start_background_work()
