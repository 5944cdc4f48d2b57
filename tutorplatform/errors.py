"""Django's 404/500 pages, in the contract's JSON error shape for /v1/ and /health."""

from django.views import defaults

from common.api_errors import json_error_response


def _is_api(request) -> bool:
    return request.path.startswith(("/v1/", "/health"))


def not_found(request, exception=None):
    if _is_api(request):
        return json_error_response("not_found", f"No endpoint at {request.path}.")
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return json_error_response(
            "internal_error", "The server failed to answer; the error was logged. Try again, and tell the operators if it persists."
        )
    return defaults.server_error(request)
