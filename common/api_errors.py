"""One error shape for every 4xx/5xx of /v1/: {"status": "error", "code", "message", "details"}."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from common.errors import ServiceError

logger = logging.getLogger(__name__)

# The contract fixes these codes' statuses (api.md, "Error body").
STATUS_BY_CODE = {
    "invalid_request": 400,
    "not_authenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "request_timeout": 408,
    "avatar_exists": 409,
    "avatar_in_use": 409,
    "avatar_not_ready": 409,
    "avatar_busy": 409,
    "source_incomplete": 409,
    "utterance_closed": 409,
    "wrong_signalling": 409,
    "viewer_answered": 409,
    "file_too_large": 413,
    "unsupported_media": 415,
    "invalid_video": 422,
    "invalid_audio": 422,
    "session_limit": 429,
    "throttled": 429,
    "speak_queue_full": 429,
    "too_many_viewers": 429,
    "internal_error": 500,
    "queue_full": 503,
    "speak_busy": 503,
    "stage_starting": 503,
    "media_server_unavailable": 503,
    "insufficient_storage": 507,
    "webrtc_timeout": 504,
}


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"status": "error", "code": code, "message": message, "details": details or {}}


def _flatten(detail) -> str:
    """DRF's nested validation detail as one readable sentence."""
    if isinstance(detail, dict):
        return "; ".join(f"{field}: {_flatten(value)}" for field, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def _as_contract(exc: Exception) -> tuple[str, str, dict] | None:
    if isinstance(exc, ServiceError):
        return exc.code, exc.message, exc.details
    if isinstance(exc, exceptions.ValidationError):
        return "invalid_request", _flatten(exc.detail), {"fields": exc.detail}
    if isinstance(exc, exceptions.ParseError):
        return "invalid_request", f"The request body could not be parsed: {exc.detail}", {}
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        message = str(exc.detail)
        if isinstance(exc, exceptions.NotAuthenticated):
            message = "An API key is required: send it as 'X-API-Key: <key>' or 'Authorization: Token <key>'."
        return "not_authenticated", message, {}
    if isinstance(exc, (exceptions.PermissionDenied, PermissionDenied)):
        return "permission_denied", str(getattr(exc, "detail", "Permission denied.")), {}
    if isinstance(exc, (exceptions.NotFound, Http404)):
        return "not_found", "Not found.", {}
    if isinstance(exc, exceptions.MethodNotAllowed):
        return "method_not_allowed", str(exc.detail), {}
    if isinstance(exc, exceptions.NotAcceptable):
        return "not_acceptable", str(exc.detail), {}
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return "invalid_request", f"{exc.detail} Send JSON, or multipart form data to /v1/avatars/upload.", {}
    if isinstance(exc, exceptions.Throttled):
        return "throttled", str(exc.detail), {}
    if isinstance(exc, RequestDataTooBig):
        return ("file_too_large", "The request's fields are larger than this server reads "
                f"({settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024} KB); send a video as a file upload.",
                {"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE})
    if isinstance(exc, TooManyFieldsSent):
        return ("invalid_request", f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields.",
                {"max_fields": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS})
    if isinstance(exc, TooManyFilesSent):
        return ("invalid_request", f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files; "
                "send one video.", {"max_files": settings.DATA_UPLOAD_MAX_NUMBER_FILES})
    if isinstance(exc, SuspiciousOperation):
        return "invalid_request", "The request was refused as malformed.", {}
    return None


def contract_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error a view raises, in the contract's shape."""
    mapped = _as_contract(exc)
    if mapped is None:
        return None  # an unexpected exception: Django's 500 handler answers
    code, message, details = mapped
    headers = {}
    if isinstance(exc, ServiceError) and exc.retry_after_s:
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, exceptions.APIException):
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None)
        if wait:
            headers["Retry-After"] = str(int(wait))
    status_code = STATUS_BY_CODE.get(code, getattr(exc, "status_code", status.HTTP_400_BAD_REQUEST))
    set_rollback()
    return Response(error_body(code, message, details), status=status_code, headers=headers)


def contract_error_for(exc: Exception) -> JsonResponse | None:
    """The contract's error answer for an exception Django itself handles (outside DRF's views),
    or None when it is not one the contract names."""
    mapped = _as_contract(exc)
    return json_error_response(*mapped) if mapped else None


def json_error_response(code: str, message: str, details: dict | None = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=STATUS_BY_CODE[code])
