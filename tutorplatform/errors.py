"""Django's 400/404/500 pages, in the contract's JSON error shape for /v1/ and /health."""

from django.urls import Resolver404, resolve
from django.views import defaults

from common.api_errors import contract_error_for, json_error_response


def _is_api(request) -> bool:
    return request.path.startswith(("/v1/", "/health"))


def _the_other_spelling(path: str) -> str | None:
    """The same path with its trailing slash dropped (or added), when that one is an endpoint."""
    other = path.rstrip("/") if path.endswith("/") else path + "/"
    if other in ("", path):
        return None
    try:
        resolve(other)
    except Resolver404:
        return None
    return other


def not_found(request, exception=None):
    if _is_api(request):
        other = _the_other_spelling(request.path)
        if other is not None:
            # /v1/avatars/ for /v1/avatars: say which path exists rather than a bare 404 (no
            # redirect: a client would repeat a POST's body only after a 307/308, and many don't).
            return json_error_response(
                "not_found", f"No endpoint at {request.path}; the endpoint is {other}"
                f"{' (without the trailing slash)' if len(other) < len(request.path) else ' (with a trailing slash)'}.",
                {"path": other})
        return json_error_response("not_found", f"No endpoint at {request.path}.")
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return json_error_response(
            "internal_error", "The server failed to answer; the error was logged. Try again, and tell the operators if it persists."
        )
    return defaults.server_error(request)


def bad_request(request, exception=None):
    """A request Django refused while reading it (too many fields or files, fields too large)."""
    if _is_api(request):
        return contract_error_for(exception) or json_error_response("invalid_request", "The request is malformed.")
    return defaults.bad_request(request, exception)
