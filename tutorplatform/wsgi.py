"""WSGI entry point, for HTTP-only deployments (progress sockets need the ASGI one)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutorplatform.settings")

application = get_wsgi_application()

from avatars.startup import start_background_work as start_avatar_work  # noqa: E402
from sessions_app.startup import start_background_work as start_session_work  # noqa: E402

start_avatar_work()
start_session_work()
