"""What the services refuse, as stable codes; the API turns each into the contract's error body."""

from __future__ import annotations


class ServiceError(Exception):
    """A refused request. `code` is one of the contract's error codes (see api.md)."""

    code = "invalid_request"

    def __init__(self, message: str, details: dict | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code


class InvalidRequest(ServiceError):
    code = "invalid_request"


class NotFound(ServiceError):
    code = "not_found"


class AvatarExists(ServiceError):
    code = "avatar_exists"


class AvatarBusy(ServiceError):
    code = "avatar_busy"


class UnsupportedMedia(ServiceError):
    code = "unsupported_media"


class InvalidVideo(ServiceError):
    code = "invalid_video"


class FileTooLarge(ServiceError):
    code = "file_too_large"


class QueueFull(ServiceError):
    code = "queue_full"

    def __init__(self, message: str, retry_after_s: int = 30) -> None:
        super().__init__(message, {"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s


class AvatarNotReady(ServiceError):
    code = "avatar_not_ready"


class AvatarInUse(ServiceError):
    code = "avatar_in_use"


class SessionLimit(ServiceError):
    code = "session_limit"
