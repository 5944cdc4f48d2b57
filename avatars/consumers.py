"""/ws/avatars/<avatar_id>/: live progress of one avatar's preparation."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from avatars import events
from avatars.models import Avatar
from common.channels import remember_server_loop
from common.socket_auth import CLOSE_NOT_AUTHENTICATED, CLOSE_NOT_FOUND, refuse


class AvatarProgressConsumer(AsyncJsonWebsocketConsumer):
    """On connect, one message with the current state; then every progress message the job
    publishes; the last one has a final state, after which the server closes the socket."""

    async def connect(self) -> None:
        self.avatar_id = self.scope["url_route"]["kwargs"]["avatar_id"]
        if not self.scope.get("socket_allowed"):  # common.socket_auth's middleware decided
            await refuse(self, CLOSE_NOT_AUTHENTICATED)
            return
        remember_server_loop(asyncio.get_running_loop())
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

    @database_sync_to_async
    def _snapshot(self) -> dict | None:
        avatar = Avatar.objects.filter(avatar_id=self.avatar_id).first()
        return events.progress_message(avatar) if avatar is not None else None
