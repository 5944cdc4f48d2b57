"""What services refuse, as stable codes; the API turns each into the contract's error body.
Each app defines its own refusals on ServiceError (avatars/errors.py, sessions_app/errors.py)."""

from __future__ import annotations


class ServiceError(Exception):
    """A refused request. `code` is one of the contract's error codes (docs: README, api.md);
    `retry_after_s`, when set, becomes a Retry-After header."""

    code = "invalid_request"
    retry_after_s: int | None = None

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
