"""What the session services refuse (on top of common.errors' InvalidRequest and NotFound)."""

from __future__ import annotations

from common.errors import ServiceError


class AvatarNotReady(ServiceError):
    code = "avatar_not_ready"


class SessionLimit(ServiceError):
    code = "session_limit"


# What speaking refuses (sessions_app/speaking.py).


class QueueFull(ServiceError):
    code = "speak_queue_full"
    retry_after_s = 1


class SpeakBusy(ServiceError):
    code = "speak_busy"
    retry_after_s = 2


class InvalidAudio(ServiceError):
    code = "invalid_audio"


class UnsupportedAudio(ServiceError):
    code = "unsupported_media"


class UtteranceClosed(ServiceError):
    code = "utterance_closed"
