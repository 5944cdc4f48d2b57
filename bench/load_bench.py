"""API latency under load: GET /v1/avatars and GET /v1/avatars/{id}, idle and while a 720p job runs.

    .venv/bin/python bench/load_bench.py        (or: bash scripts/bench.sh load)

Starts a real server (uvicorn, as scripts/serve.sh does) on a free loopback port with its own data
folder and measures, over one keep-alive connection, REQUESTS sequential requests per endpoint and
phase (bounded in count and in time): first with the server idle, then while it prepares a 20 s
720p clip with background blur (re-queued if it finishes before the requests do). Prints p50/p99
of each, and the ratio of p99 while processing to p99 idle (goal: at most 2x).
"""

from __future__ import annotations

import http.client
import shutil
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REQUESTS = 400
PHASE_TIME_LIMIT_S = 60.0


class Api:
    def __init__(self, url: str, key: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.headers = {"X-API-Key": key, "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict, float]:
        started = time.perf_counter()
        self.connection.request(method, path, body=json.dumps(body) if body else None, headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, json.loads(data), time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(api: Api, path: str, busy_check=None) -> list[float]:
    """Latencies (ms) of up to REQUESTS GETs of `path`; `busy_check()` keeps the server busy."""
    latencies: list[float] = []
    deadline = time.monotonic() + PHASE_TIME_LIMIT_S
    while len(latencies) < REQUESTS and time.monotonic() < deadline:
        if busy_check is not None and len(latencies) % 20 == 0:
            busy_check()
        status, _, elapsed = api.call("GET", path)
        assert status == 200, status
        latencies.append(elapsed * 1000)
    return latencies


def main() -> None:
    from bench.pipeline_bench import clip
    from testsupport.live_server import start_live_server

    data_dir = Path(tempfile.mkdtemp(prefix="load-bench-"))
    (data_dir / "import").mkdir()
    video = data_dir / "import" / "tutor.mp4"
    shutil.copyfile(clip(20), video)  # a copy: a link out of the import folder would be refused
    server = start_live_server(data_dir)
    try:
        api = Api(server.url, server.api_key())
        status, body, _ = api.call("POST", "/v1/avatars?wait=120",
                                   {"avatar_id": "load_ready", "video_path": str(video), "apply_blur": True})
        assert status == 201 and body["state"] == "ready", body
        results: dict[str, dict[str, list[float]]] = {"idle": {}, "processing": {}}
        paths = {"list": "/v1/avatars", "detail": "/v1/avatars/load_ready"}
        for name, path in paths.items():
            results["idle"][name] = measure(api, path)

        status, body, _ = api.call("POST", "/v1/avatars", {"avatar_id": "load_busy", "video_path": str(video), "apply_blur": True})
        assert status == 201, body

        def keep_busy() -> None:
            _, state, _ = api.call("GET", "/v1/avatars/load_busy")
            if state["state"] == "ready":
                api.call("POST", "/v1/avatars/load_busy/reprocess")

        for _ in range(100):  # wait until the job is really running
            if api.call("GET", "/v1/avatars/load_busy")[1]["state"] == "processing":
                break
            time.sleep(0.05)
        for name, path in paths.items():
            results["processing"][name] = measure(api, path, keep_busy)

        print(f"{REQUESTS} sequential requests per endpoint and phase, one keep-alive connection, loopback")
        for name in paths:
            idle, busy = results["idle"][name], results["processing"][name]
            ratio = percentile(busy, 0.99) / percentile(idle, 0.99)
            print(f"GET {paths[name]:<26} idle p50 {statistics.median(idle):6.1f} ms  p99 {percentile(idle, 0.99):6.1f} ms | "
                  f"processing p50 {statistics.median(busy):6.1f} ms  p99 {percentile(busy, 0.99):6.1f} ms | "
                  f"p99 ratio {ratio:.2f} (goal <= 2: {'meets goal' if ratio <= 2 else 'ABOVE GOAL'})")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
