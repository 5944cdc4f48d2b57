"""GET /health: open, cheap, and honest about whether the service can work."""

from __future__ import annotations

import tempfile

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from django.core.files.storage import default_storage

from avatars import jobs, storage
from avatars.pipeline.detect import detector_name
from avatars.pipeline.device import compute_device


def _problems() -> list[str]:
    problems = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means the same thing here
        problems.append(f"database unavailable: {type(exc).__name__}")
    if storage.backend().object_storage:
        try:
            default_storage.exists("health-probe")
        except Exception as exc:  # any client error means the store cannot be used
            problems.append(f"object storage unavailable: {type(exc).__name__}")
    try:
        for folder in (settings.AVATAR_WORK_DIR, settings.AVATAR_ROOT):
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".health-"):
                pass
    except OSError as exc:
        problems.append(f"data folder not writable: {exc.strerror}")
    return problems


def _detector() -> str:
    try:
        return detector_name(settings.AVATAR_FACE_DETECTOR, model_path=settings.AVATAR_FACE_MODEL or None)
    except ValueError:
        return f"unknown ({settings.AVATAR_FACE_DETECTOR})"


@require_GET
def health(request) -> JsonResponse:
    queued, processing = jobs.counts()
    body = {
        "status": "ok",
        "device": compute_device(),
        "detector": _detector(),
        "workers": jobs.worker_count(),
        "queued": queued,
        "processing": processing,
        "version": settings.APP_VERSION,
    }
    problems = _problems()
    if problems:
        body.update(status="degraded", reason="; ".join(problems))
        return JsonResponse(body, status=503)
    return JsonResponse(body)
