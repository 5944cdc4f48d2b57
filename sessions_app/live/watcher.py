"""What every way of watching a session shares, whatever carries its media (a WebSocket, a
WebRTC peer connection): how many watch it, what the session shows now, and joining its stage."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Callable

from django.conf import settings

from avatars.models import ACTIVE_STATES, Avatar, AvatarState
from common.db_threads import in_worker_thread
from sessions_app import services
from sessions_app.live.frames import AvatarFrames, avatar_material
from sessions_app.models import SessionState
from sessions_app.speech.renderer import load_renderer
from sessions_app.live.stage import Stage, stages

# While watching: how often the session is marked active, and how often its state is re-read
# (in case the "ended" message was missed, e.g. sent from another process on the in-memory layer).
TOUCH_EVERY_S = 30.0
CHECK_EVERY_S = 5.0
WAIT_LOOK_EVERY_S = 1.0  # while waiting for the avatar: how often its state is read again


class Touches:
    """When a viewer marks its session active (which keeps it from ending as idle): every
    TOUCH_EVERY_S; `due(now)` says yes once each time."""

    def __init__(self, now: float, at_once: bool = False) -> None:
        self._next = now if at_once else now + TOUCH_EVERY_S

    def due(self, now: float) -> bool:
        if now < self._next:
            return False
        self._next = now + TOUCH_EVERY_S
        return True


class Viewers:
    """Viewers per session in this process, WebSocket streams and WebRTC peers together, at most
    SESSION_MAX_VIEWERS each: every viewer costs the server a paced stream of media."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def join(self, session_id: str) -> bool:
        with self._lock:
            count = self._counts.get(session_id, 0)
            if count >= settings.SESSION_MAX_VIEWERS:
                return False
            self._counts[session_id] = count + 1
            return True

    def leave(self, session_id: str) -> None:
        with self._lock:
            left = self._counts.get(session_id, 1) - 1
            if left > 0:
                self._counts[session_id] = left
            else:
                self._counts.pop(session_id, None)

    def count(self, session_id: str) -> int:
        with self._lock:
            return self._counts.get(session_id, 0)


viewers = Viewers()


def canonical_id(session_id: str) -> str:
    """A session id as the database writes it (lower case, with dashes), so that every viewer of a
    session, however its URL spelled the id, counts against one limit and joins one stage."""
    try:
        return str(uuid.UUID(session_id))
    except ValueError:
        return session_id  # not a session: refused as unknown


class KeyRevoked(Exception):
    """The API key the viewer was let in with has been revoked since."""


@dataclass(frozen=True)
class Look:
    ready: Avatar | None = None
    waiting: dict | None = None
    still_of: str | None = None
    ended_reason: str | None = None
    closed: bool = False


def look_at(session_id: str, touch: bool, allowed: Callable[[], bool]) -> Look | None:
    """The session as it stands (blocking: call it from a database thread): None when unknown; its
    end; its avatar when ready; else what it waits for. Ends the session when its avatar will
    never be ready. Raises KeyRevoked when `allowed()` no longer holds."""
    if not allowed():
        raise KeyRevoked()
    session = services.session_or_none(session_id)
    if session is None:
        return None
    if session.state != SessionState.ACTIVE:
        return Look(ended_reason=session.end_reason or "ended")
    if touch:
        services.touch(session)
        services.end_idle_sessions()
    avatar = Avatar.objects.filter(avatar_id=session.avatar_id).first()
    if avatar is None or avatar.state not in (AvatarState.READY, *ACTIVE_STATES):
        services.end_session(session.session_id, reason="avatar_failed" if avatar else "avatar_deleted")
        return Look(ended_reason="avatar_failed" if avatar else "avatar_deleted")
    if avatar.state == AvatarState.READY:
        return Look(ready=avatar)
    return Look(waiting={"avatar_id": avatar.avatar_id, "avatar_state": avatar.state, "stage": avatar.stage,
                         "progress": round(avatar.progress, 1)},
                still_of=_still_of(session.tutor_id, avatar.avatar_id))


def _still_of(tutor_id: int, waiting_for: str) -> str | None:
    """A ready avatar of the tutor whose preview can stand in while the session waits, if any."""
    ready = Avatar.objects.filter(tutor_id=tutor_id, state=AvatarState.READY).exclude(avatar_id=waiting_for)
    return ready.order_by("-ready_at").values_list("avatar_id", flat=True).first()


def renderer_description(renderer) -> dict:
    """What draws the session's mouth, for its header: the renderer's name, whether it is the
    fallback and why, and whether the mouth rests during silence."""
    return dict(getattr(renderer, "description", None) or {"name": type(renderer).__name__, "fallback": False})


def make_renderer(frames: AvatarFrames):
    """The SESSION_RENDERER for the avatar (reads its prepared material: blocking)."""
    return load_renderer(settings.SESSION_RENDERER, avatar_material(frames))


async def join_stage(session_id: str, frames: AvatarFrames, viewer) -> Stage:
    """The session's stage for `frames`, with `viewer` added: the running one, or a new one whose
    renderer is made here (only the viewer that starts a stage reads the avatar's material)."""
    renderer = None
    if stages.running(session_id, frames) is None:
        renderer = await in_worker_thread(make_renderer)(frames)
    # No await between the look above (when a stage ran) and join: it is still running.
    return stages.join(session_id, frames, renderer, settings.SESSION_AUDIO_RATE, viewer)
