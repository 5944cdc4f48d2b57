"""WSGI entry point, for HTTP-only deployments (progress sockets need the ASGI one). A WSGI
server has no lifespan: the start-up work runs when this module loads."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutorplatform.settings")

application = get_wsgi_application()

from tutorplatform.lifespan import start_background_work  # noqa: E402

start_background_work()
