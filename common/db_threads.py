"""Database calls from a session's long-lived coroutines (its stage, its WebRTC peers), run in the
event loop's worker threads.

Each call closes the database connection it used before its thread goes back to the pool. With
CONN_MAX_AGE (persistent connections) such a connection would otherwise stay open, unowned, in a
pool thread after its stage or peer has finished: on PostgreSQL each one is a server session, and
the test database could not be dropped ("database is being accessed by other users"). These calls
come about once a second per stage or peer; a loopback PostgreSQL connection costs a few ms.
"""

from __future__ import annotations

import functools

from channels.db import database_sync_to_async
from django.db import connections


def in_worker_thread(function):
    """`function` as a coroutine function, run in a worker thread (not the thread-sensitive
    executor, which a coroutine cancelled while its socket closes could wait on for ever), whose
    database connections are closed when it returns."""

    @functools.wraps(function)
    def call_then_close(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return database_sync_to_async(call_then_close, thread_sensitive=False)
