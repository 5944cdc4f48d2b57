"""Upload size enforcement while the body is read, not after it has been stored."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler

from avatars.errors import FileTooLarge


def too_large(limit: int) -> FileTooLarge:
    return FileTooLarge(
        f"The upload is larger than the limit of {limit // (1024 * 1024)} MB. Trim or compress the video.",
        {"max_bytes": limit},
    )


class SizeLimitUploadHandler(FileUploadHandler):
    """Counts bytes as they stream in and stops the upload as soon as it passes the limit."""

    def __init__(self, request=None, limit: int | None = None) -> None:
        super().__init__(request)
        self.limit = limit if limit is not None else settings.AVATAR_MAX_UPLOAD_BYTES
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self._discard_partial_files()
            raise too_large(self.limit)
        return raw_data  # pass the chunk on to the handler that stores it

    def file_complete(self, file_size: int):
        return None

    def _discard_partial_files(self) -> None:
        # The storing handler after this one holds a half-written temporary file; closing it
        # deletes it now rather than whenever the garbage collector gets to it.
        for handler in getattr(self.request, "upload_handlers", []):
            partial = getattr(handler, "file", None)
            if handler is not self and partial is not None:
                partial.close()


MAX_CLIENT_NAME = 120
MAX_EXTENSION = 16


def short_file_name(name: str) -> str:
    """A client's file name cut to what a filesystem takes: a stem of up to 120 characters and an
    extension of up to 16."""
    stem, extension = os.path.splitext(os.path.basename(name or ""))
    return stem[:MAX_CLIENT_NAME] + extension[:MAX_EXTENSION]


class ShortNameTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, short_file_name(file_name), *args, **kwargs)


@contextmanager
def local_copy(uploaded) -> Iterator[Path]:
    """A path to the uploaded file's bytes on disk (uploads normally already are on disk)."""
    if hasattr(uploaded, "temporary_file_path"):
        yield Path(uploaded.temporary_file_path())
        return
    fd, name = tempfile.mkstemp(dir=settings.FILE_UPLOAD_TEMP_DIR, suffix=".upload")
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in uploaded.chunks():
                handle.write(chunk)
        yield Path(name)
    finally:
        os.unlink(name)
