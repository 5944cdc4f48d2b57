"""What the avatar services refuse (on top of common.errors' InvalidRequest and NotFound)."""

from __future__ import annotations

from common.errors import ServiceError


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


class AvatarInUse(ServiceError):
    code = "avatar_in_use"


class InsufficientStorage(ServiceError):
    code = "insufficient_storage"


class SourceIncomplete(ServiceError):
    """The video file on the server is still being written (it changed while it was read)."""

    code = "source_incomplete"
    retry_after_s = 5
