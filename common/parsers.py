"""Request body parsers of every API app."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError, UnsupportedMediaType

from common.errors import ServiceError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a body nested too deep for Python's parser (a few thousand levels
    of `[[[...`) answered 400 like any other malformed JSON, not 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - the body is nested too deeply.") from exc


class WavParser(parsers.BaseParser):
    """An audio/wav body, as its bytes (sessions_app.speech.audio reads them). At most
    `max_bytes` (the view's `wav_max_bytes`) are read: a longer body is 413 file_too_large."""

    media_type = "audio/*"
    accepted = ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave")

    def parse(self, stream, media_type=None, parser_context=None):
        if (media_type or "").split(";")[0].strip().lower() not in self.accepted:
            raise UnsupportedMediaType(media_type or "")
        view = (parser_context or {}).get("view")
        limit = getattr(view, "wav_max_bytes", 64 * 1024 * 1024)
        data = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise ServiceError(f"The audio body is larger than {limit // (1024 * 1024)} MB.", code="file_too_large")
        return data
