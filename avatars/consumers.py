"""/ws/avatars/<avatar_id>/: live progress of one avatar's preparation."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.http.request import validate_host

from avatars import events
from avatars.authentication import find_active_key
from avatars.models import Avatar

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


class AvatarProgressConsumer(AsyncJsonWebsocketConsumer):
    """On connect, one message with the current state; then every progress message the job
    publishes; the last one has a final state, after which the server closes the socket."""

    async def connect(self) -> None:
        self.avatar_id = self.scope["url_route"]["kwargs"]["avatar_id"]
        if not await self._authorised():
            await self.close(code=CLOSE_NOT_AUTHENTICATED)  # refused during the handshake
            return
        events.remember_server_loop(asyncio.get_running_loop())
        self.group = events.group_name(self.avatar_id)
        # Join before reading the snapshot, so nothing published in between is missed.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        snapshot = await self._snapshot()
        if snapshot is None:
            await self.send_json({"type": "error", "code": "not_found", "message": f"Avatar '{self.avatar_id}' does not exist."})
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.send_json(snapshot)
        if events.is_final(snapshot):
            await self.close()

    async def disconnect(self, code) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def avatar_progress(self, event) -> None:
        message = event["message"]
        await self.send_json(message)
        if events.is_final(message):
            await self.close()

    async def _authorised(self) -> bool:
        user = self.scope.get("user")
        if user is not None and user.is_authenticated and user.is_staff and _origin_allowed(self.scope):
            return True
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        key = (query.get("api_key") or [None])[0]
        return bool(key) and await database_sync_to_async(find_active_key)(key) is not None

    @database_sync_to_async
    def _snapshot(self) -> dict | None:
        avatar = Avatar.objects.filter(avatar_id=self.avatar_id).first()
        return events.progress_message(avatar) if avatar is not None else None
