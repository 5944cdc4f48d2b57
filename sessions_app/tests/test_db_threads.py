"""A session's stage and its watchers (whatever their transport) reach the database from the event
loop's worker threads; each call closes the connection it opened, so none stays open (a
PostgreSQL session each, which kept the test database from being dropped) once the stage or
watcher is done."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import connections
from django.db.backends.signals import connection_created

from sessions_app.live import stage as stage_module
from sessions_app.live import watcher
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def persistent_connections(monkeypatch):
    """Connections made from now on are kept between requests, as CONN_MAX_AGE makes them on
    PostgreSQL; yields the list of those opened outside the test's own thread."""
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 60)
    opened = []

    def created(sender, connection, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            opened.append(connection)

    connection_created.connect(created, weak=False)
    yield opened
    connection_created.disconnect(created)


@pytest.mark.parametrize("module", [stage_module, watcher])
def test_database_calls_of_stages_and_watchers_close_their_connection(persistent_connections, module):
    Tutor.objects.create(name="Ada")
    in_thread = getattr(module, "_in_thread", None) or module.in_worker_thread

    async def calls():
        counts = await asyncio.gather(*[in_thread(Tutor.objects.count)() for _ in range(4)])
        assert counts == [1, 1, 1, 1]

    asyncio.run(calls())
    assert persistent_connections, "the calls opened no connection of their own"
    assert all(connection.connection is None for connection in persistent_connections)
