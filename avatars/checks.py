"""Start-up checks (run by migrate, check and runserver): settings that would fail every job."""

from __future__ import annotations

import os

from django.conf import settings
from django.core import checks


@checks.register()
def face_model_exists(app_configs, **kwargs) -> list[checks.CheckMessage]:
    path = settings.AVATAR_FACE_MODEL
    if path and not os.path.isfile(path):
        return [
            checks.Error(
                f"AVATAR_FACE_MODEL names {path!r}, which is not a file.",
                hint="Put the YuNet ONNX file there, or unset AVATAR_FACE_MODEL to use OpenCV's Haar cascade.",
                id="avatars.E001",
            )
        ]
    return []
