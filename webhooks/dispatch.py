"""Who runs deliveries in the background: the one seam between the services and the workers.

WEBHOOK_QUEUE picks it (by default the avatar jobs' AVATAR_JOB_QUEUE):

- ``threads`` (`ThreadDispatch`): a pool of WEBHOOK_WORKERS threads in the server process, with a
  lane per endpoint. An endpoint has at most one attempt in flight, its deliveries go in the
  order they became due, and a slow or dead endpoint holds one worker for at most
  WEBHOOK_TIMEOUT_S per attempt while the other endpoints' lanes use the other workers. Retries
  wait on one scheduler thread (a heap of due times), not on a worker.
- ``celery`` (`CeleryDispatch`): a Celery task per attempt (`webhooks/tasks.py`), a retry sent
  with its countdown. Deliveries to one endpoint may then run in parallel on several workers;
  each delivery still has one attempt at a time (the database claim in services.run_delivery).

Either way the database is the truth: a delivery left pending or sending by a process that
stopped is taken back at the next start (webhooks/startup.py).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class ThreadDispatch:
    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook")
        self._cv = threading.Condition()
        self._due: list[tuple[float, int, str, int]] = []  # (monotonic due time, seq, endpoint, delivery)
        self._seq = itertools.count()
        self._lanes: dict[str, deque[int]] = {}  # endpoint -> deliveries due, in order
        self._busy: set[str] = set()  # endpoints with an attempt in flight
        self._scheduler = threading.Thread(target=self._schedule, name="webhook-scheduler", daemon=True)
        self._scheduler.start()

    def submit(self, delivery_id: int, endpoint_id: str, delay_s: float = 0.0) -> None:
        with self._cv:
            heapq.heappush(self._due, (time.monotonic() + max(0.0, delay_s), next(self._seq), str(endpoint_id),
                                       delivery_id))
            self._cv.notify()

    def _schedule(self) -> None:
        while True:
            with self._cv:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._cv.wait(None if not self._due else self._due[0][0] - time.monotonic())
                while self._due and self._due[0][0] <= time.monotonic():
                    _, _, endpoint, delivery = heapq.heappop(self._due)
                    self._lanes.setdefault(endpoint, deque()).append(delivery)
                    if endpoint not in self._busy:
                        self._busy.add(endpoint)
                        self._pool.submit(self._drain, endpoint)

    def _drain(self, endpoint: str) -> None:
        from webhooks.services import run_delivery

        while True:
            with self._cv:
                lane = self._lanes.get(endpoint)
                delivery = lane.popleft() if lane else None
            if delivery is None:
                # An idle worker holds no database connection (PostgreSQL counts them; a test
                # database cannot be dropped while one is open). Closed before the lane is let go.
                connection.close()
                with self._cv:
                    if self._lanes.get(endpoint):
                        continue  # more arrived meanwhile
                    self._lanes.pop(endpoint, None)
                    self._busy.discard(endpoint)
                    self._cv.notify_all()
                    return
            close_old_connections()
            try:
                run_delivery(delivery)
            except Exception:  # run_delivery records its own failures; this is the last net
                logger.exception("webhook delivery %s crashed", delivery)
            finally:
                close_old_connections()

    def idle(self, within_s: float = 0.0) -> bool:
        """Nothing in flight and nothing due within `within_s`."""
        with self._cv:
            return not self._busy and not (self._due and self._due[0][0] <= time.monotonic() + within_s)

    def wait_idle(self, timeout_s: float, within_s: float = 0.0) -> bool:
        """Wait until nothing is in flight or due within `within_s` (tests)."""
        deadline = time.monotonic() + timeout_s
        while not self.idle(within_s):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def forget_scheduled(self) -> None:
        """Drop the retries waiting in memory (tests: a test's retries must not reach the next test)."""
        with self._cv:
            self._due.clear()


class CeleryDispatch:
    TASK = "webhooks.deliver"  # the name webhooks/tasks.py registers its task under

    def __init__(self, app) -> None:
        self.app = app

    def submit(self, delivery_id: int, endpoint_id: str, delay_s: float = 0.0) -> None:
        self.app.send_task(self.TASK, args=[delivery_id], countdown=max(0.0, delay_s))


_dispatchers: dict[str, object] = {}
_lock = threading.Lock()


def dispatcher():
    name = settings.WEBHOOK_QUEUE
    with _lock:
        if name not in _dispatchers:
            if name == "celery":
                _dispatchers[name] = CeleryDispatch(import_string(settings.AVATAR_CELERY_APP))
            else:
                _dispatchers[name] = ThreadDispatch(settings.WEBHOOK_WORKERS)
        return _dispatchers[name]


def running() -> list:
    with _lock:
        return list(_dispatchers.values())


def submit(delivery_id: int, endpoint_id, delay_s: float = 0.0) -> None:
    try:
        dispatcher().submit(delivery_id, str(endpoint_id), delay_s)
    except Exception:  # a broker that is down: the row stays pending; the next start takes it back
        logger.exception("webhook delivery %s could not be handed to the background", delivery_id)
