"""What the session services refuse (on top of common.errors' InvalidRequest and NotFound)."""

from __future__ import annotations

from common.errors import ServiceError


class AvatarNotReady(ServiceError):
    code = "avatar_not_ready"


class SessionLimit(ServiceError):
    code = "session_limit"
