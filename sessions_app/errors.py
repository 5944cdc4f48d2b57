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


# What live viewing refuses (sessions_app/live/, sessions_app/webrtc/).


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
