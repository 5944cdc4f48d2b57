"""A real HTTP receiver for webhook tests: a threaded http.server on loopback that records every
request (headers, raw body, arrival time) and answers as the test scripts it."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """`answers`: statuses to answer in turn (then `default`); `hang` set: requests wait on
    `release` (up to 60 s) before answering."""

    answers: list[int] = field(default_factory=list)
    default: int = 200
    hang: bool = False
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.received.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
                    status = receiver.answers.pop(0) if receiver.answers else receiver.default
                if receiver.hang:
                    receiver.release.wait(60)
                payload = json.dumps({"received": True}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    if 300 <= status < 400:
                        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the sender gave up (its timeout) and closed the connection

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def events(self, event_type: str | None = None) -> list[Received]:
        with self.lock:
            items = list(self.received)
        return [item for item in items if event_type is None or item.event["type"] == event_type]

    def wait_for(self, predicate, timeout_s: float = 30.0) -> list[Received]:
        """Wait until predicate(received) holds; the requests received so far."""
        deadline = time.monotonic() + timeout_s
        while True:
            items = self.events()
            if predicate(items):
                return items
            if time.monotonic() > deadline:
                raise AssertionError(f"the receiver did not get there in {timeout_s} s; it has "
                                     f"{[item.event['type'] for item in items]}")
            time.sleep(0.02)
