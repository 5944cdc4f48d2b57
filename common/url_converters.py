"""Path converters of every app's URLs."""

from __future__ import annotations

from django.urls import register_converter


class DatabaseIdConverter:
    """A row id in a URL: up to 18 digits, so that a longer number is a 404 rather than an integer
    the database cannot hold (which would surface as a 500)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(DatabaseIdConverter, "id")  # once, when a URLconf first imports this module
