"""Webhooks on Celery: an API server and a separate worker process, sharing the database and
Redis. The worker that prepares the avatar records avatar.ready and hands its delivery to Celery;
a worker sends it, and retries a 500 with its countdown. Runs in the test command's
PostgreSQL/Redis pass."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from avatars.tests.test_celery import call, start_worker
from testsupport.live_server import start_live_server
from webhooks.tests.test_delivery import verify

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (the PostgreSQL/Redis pass)")


def test_a_celery_worker_delivers_and_retries_with_the_same_event_id(tmp_path, receiver, face_video):
    tmp_path = tmp_path / "celery"
    (tmp_path / "import").mkdir(parents=True)
    extra = {"AVATAR_JOB_QUEUE": "celery", "REDIS_URL": os.environ["REDIS_URL"],
             "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true", "WEBHOOK_RETRY_BASE_S": "0.5"}
    server = start_live_server(tmp_path, extra_env=extra)
    worker = start_worker(server, tmp_path)
    try:
        key = server.api_key()
        receiver.answers = [500]
        hook = call(server, key, "POST", "/v1/webhooks", {"url": receiver.url, "events": ["avatar.ready"]})
        video = tmp_path / "import" / "tutor.mp4"
        shutil.copy(face_video[0], video)
        started = time.monotonic()
        call(server, key, "POST", "/v1/avatars", {"avatar_id": "hooked", "video_path": str(video)})
        first, second = receiver.wait_for(lambda items: len(items) == 2, timeout_s=180)
        print(f"\ncelery: avatar.ready received {first.at - started:.1f} s after the create; "
              f"the retry {1000 * (second.at - first.at):.0f} ms after the 500")
        assert first.event["id"] == second.event["id"] and first.event["data"]["state"] == "ready"
        assert verify(hook["secret"], second.headers, second.body)
        time.sleep(1.0)
        assert len(receiver.events()) == 2
        assert "webhooks.deliver" in (tmp_path / "worker.log").read_text()
    finally:
        worker.terminate()
        worker.wait(20)
        server.stop()
