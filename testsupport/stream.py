"""Reading a session stream's messages in tests: timestamped media (kind, time, payload) and JSON."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class Media:
    kind: str  # "V" (JPEG) or "A" (PCM)
    pts_us: int
    payload: bytes


def parse(message: dict):
    """A communicator output: Media for a binary message, a dict for JSON, the message itself for a close."""
    if message.get("type") != "websocket.send":
        return message
    if message.get("bytes") is not None:
        data = message["bytes"]
        return Media(data[:1].decode(), struct.unpack(">Q", data[1:9])[0], data[9:])
    return json.loads(message["text"])


async def next_video(communicator, timeout: float = 5) -> Media:
    """The next video message, skipping audio and events."""
    while True:
        item = parse(await communicator.receive_output(timeout))
        if isinstance(item, Media) and item.kind == "V":
            return item
        assert not (isinstance(item, dict) and item.get("type") == "websocket.close"), item
