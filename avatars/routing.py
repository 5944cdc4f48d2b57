from django.urls import re_path

from avatars.consumers import AvatarProgressConsumer

websocket_urlpatterns = [
    re_path(r"^ws/avatars/(?P<avatar_id>[A-Za-z0-9][A-Za-z0-9_-]{0,63})/$", AvatarProgressConsumer.as_asgi()),
]
