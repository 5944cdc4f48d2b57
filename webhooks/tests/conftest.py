"""Webhook tests run against a real HTTP receiver on loopback (testsupport/webhook_receiver.py),
with fast retries; each test's in-memory retries are dropped and its attempts finished before
its database goes."""

from __future__ import annotations

import pytest

from testsupport.webhook_receiver import Receiver


@pytest.fixture(autouse=True)
def fast_webhooks(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True  # the receiver is on loopback
    settings.WEBHOOK_RETRY_BASE_S = 0.05
    settings.WEBHOOK_RETRY_MAX_DELAY_S = 0.2
    settings.WEBHOOK_TIMEOUT_S = 3.0
    yield
    from webhooks import dispatch

    for running in dispatch.running():
        if hasattr(running, "forget_scheduled"):
            running.forget_scheduled()
            assert running.wait_idle(30), "a webhook attempt did not finish within 30 s"


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def second_receiver():
    started = Receiver().start()
    yield started
    started.stop()
