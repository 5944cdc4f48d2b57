"""What the webhook services refuse (on top of common.errors' InvalidRequest and NotFound)."""

from __future__ import annotations

from common.errors import InvalidRequest


class UrlRefused(InvalidRequest):
    """400 invalid_request with details.reason: scheme, too_long, malformed, unresolvable,
    private_address."""

    def __init__(self, reason: str, message: str, field: str = "url") -> None:
        super().__init__(f"{field}: {message}", {"field": field, "reason": reason})
        self.reason = reason
