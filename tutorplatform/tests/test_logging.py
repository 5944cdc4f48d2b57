"""What the server writes to its log (stderr): a 500's traceback; not a viewer's normal leave."""

from __future__ import annotations

import io
import logging

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def console_output(logger_name: str, action) -> str:
    """What the configured console handlers (settings.LOGGING) write while `action` runs, for a
    record of `logger_name` (pytest's own capture handlers left out)."""
    handlers = []
    logger = logging.getLogger(logger_name)
    while logger is not None:
        handlers += [handler for handler in logger.handlers if type(handler) is logging.StreamHandler]
        logger = logger.parent if logger.propagate else None
    streams = {handler: handler.setStream(io.StringIO()) for handler in handlers}
    try:
        action()
        return "".join(handler.stream.getvalue() for handler in handlers)
    finally:
        for handler, stream in streams.items():
            handler.setStream(stream)


def test_a_500_writes_its_traceback_to_the_log(api_key, monkeypatch):
    from tutors import services

    def broken(**kwargs):
        raise RuntimeError("the database vanished")

    monkeypatch.setattr(services, "list_tutors", broken)
    client = Client(raise_request_exception=False)
    answers = []
    written = console_output("django.request",
                             lambda: answers.append(client.get("/v1/tutors", HTTP_X_API_KEY=api_key)))
    assert answers[0].status_code == 500 and answers[0].json()["code"] == "internal_error"
    assert "Traceback" in written and "RuntimeError: the database vanished" in written
    assert "/v1/tutors" in written
