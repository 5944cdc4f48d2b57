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


# What live viewing refuses (sessions_app/live/).


class WrongSignalling(ServiceError):
    """A WebRTC request in the other form than this server speaks: with a media server the server
    offers (POST .../viewers), without one the viewer does (POST .../webrtc)."""

    code = "wrong_signalling"


class StageStarting(ServiceError):
    """The session's stage is not running yet (being placed on a stage worker, or moving to
    another after a failure): its media server mountpoint is not ready. Ask again shortly."""

    code = "stage_starting"
    retry_after_s = 1


class MediaServerUnavailable(ServiceError):
    """The media server (Janus) cannot be reached or refused the request."""

    code = "media_server_unavailable"
    retry_after_s = 2


class ViewerAnswered(ServiceError):
    code = "viewer_answered"


class TooManyViewers(ServiceError):
    """The session has SESSION_MAX_VIEWERS viewers already."""

    code = "too_many_viewers"
    retry_after_s = 5


class AnswerTimeout(ServiceError):
    """A WebRTC offer took longer than SESSION_WEBRTC_ANSWER_TIMEOUT_S to answer."""

    code = "webrtc_timeout"


# What the live code raises inside itself (not refusals: each is caught where it is handled).


class KeyRevoked(Exception):
    """The API key the viewer was let in with has been revoked since."""


class ViewerLeft(Exception):
    """A send found the viewer's connection gone: a normal leave, not a failure."""


class NameTaken(Exception):
    """Another live stage worker runs under this name."""


class JanusError(Exception):
    """Janus, or its plugin, refused a request."""

    def __init__(self, code: int | None, reason: str, request: str = ""):
        self.code = code
        self.reason = reason
        self.request = request
        super().__init__(f"Janus refused {request or 'a request'}: {reason} (code {code})")


class JanusUnavailable(Exception):
    """Janus could not be reached, or answered something that is not its API."""
