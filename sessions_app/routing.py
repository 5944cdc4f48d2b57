from django.urls import re_path

from sessions_app.live.websocket import SessionStreamConsumer

websocket_urlpatterns = [
    re_path(r"^ws/sessions/(?P<session_id>[0-9a-fA-F-]{1,64})/$", SessionStreamConsumer.as_asgi()),
]
