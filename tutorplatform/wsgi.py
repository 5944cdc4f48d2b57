"""WSGI entry point, for HTTP-only deployments (progress sockets need the ASGI one)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutorplatform.settings")

application = get_wsgi_application()

from avatars.startup import start_background_work  # noqa: E402

start_background_work()
