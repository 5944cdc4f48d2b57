"""What else shows an avatar: apps built on avatars register here, so the avatars app never
imports them (tutoring sessions build on avatars, not the reverse).

Before an avatar is deleted, the services ask every registered user which of its things show it
(`in_use`: refused as avatar_in_use unless forced) and then tell them to let go (`release`).
The sessions app registers itself in its AppConfig.ready().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class AvatarUser:
    kind: str  # the key under which avatar_in_use lists its things ("sessions")
    showing: Callable[[str], list[str]]  # avatar id -> ids of the things that show it now
    release: Callable[[str], None]  # avatar id -> stop showing it (it is being deleted)


_users: dict[str, AvatarUser] = {}


def register(user: AvatarUser) -> None:
    _users[user.kind] = user


def in_use(avatar_id: str) -> dict[str, list[str]]:
    """{kind: ids} of everything that shows the avatar now (empty when nothing does)."""
    found = {kind: user.showing(avatar_id) for kind, user in _users.items()}
    return {kind: ids for kind, ids in found.items() if ids}


def release(avatar_id: str) -> None:
    for user in _users.values():
        user.release(avatar_id)
