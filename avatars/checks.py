"""Start-up checks (run by migrate, check and runserver): settings that would fail every job."""

from __future__ import annotations

import os

from django.conf import settings
from django.core import checks

from avatars.pipeline.detect import DETECTORS


@checks.register()
def face_model_exists(app_configs, **kwargs) -> list[checks.CheckMessage]:
    path = settings.AVATAR_FACE_MODEL
    if path and not os.path.isfile(path):
        return [
            checks.Error(
                f"AVATAR_FACE_MODEL names {path!r}, which is not a file.",
                hint="Put the YuNet ONNX file there, or unset AVATAR_FACE_MODEL to use the YuNet model of the yuface package.",
                id="avatars.E001",
            )
        ]
    return []


@checks.register()
def face_detector_known(app_configs, **kwargs) -> list[checks.CheckMessage]:
    name = settings.AVATAR_FACE_DETECTOR
    if name not in DETECTORS:
        return [
            checks.Error(
                f"AVATAR_FACE_DETECTOR is {name!r}, which is not a face detector.",
                hint=f"Use one of: {', '.join(DETECTORS)}.",
                id="avatars.E002",
            )
        ]
    if name == "yunet" and not settings.AVATAR_FACE_MODEL:
        try:
            import yuface  # noqa: F401 - the compiled-in YuNet model
        except ImportError as exc:
            return [
                checks.Error(
                    f"The yunet face detector needs the yuface package, which cannot be imported: {exc}",
                    hint="pip install -r requirements.txt, or set AVATAR_FACE_DETECTOR=haar.",
                    id="avatars.E003",
                )
            ]
    return []


@checks.register()
def job_priority_valid(app_configs, **kwargs) -> list[checks.CheckMessage]:
    value = str(settings.AVATAR_JOB_PRIORITY).strip().lower()
    if value == "idle" or (value.isdigit() and 0 <= int(value) <= 19):
        return []
    return [
        checks.Error(
            f"AVATAR_JOB_PRIORITY is {settings.AVATAR_JOB_PRIORITY!r}, which is neither a niceness nor 'idle'.",
            hint="Use a number from 0 (the server's own priority) to 19 (the lowest), or 'idle'.",
            id="avatars.E004",
        )
    ]
