"""One HTTP attempt of one delivery, bounded in every way a receiver could abuse.

- The host is resolved and checked once (webhooks/addresses.py) and the connection goes to that
  address (the Host header and TLS certificate still name the host): a DNS answer that changes
  between check and connect cannot point the request into the server's own network.
- Redirects are not followed (a 3xx is an answer like any other).
- At most `max_answer_bytes` of the answer are read.
- The whole attempt (connect, send, answer) is bounded by `timeout_s`: each socket operation
  waits at most that long, and a watchdog closes the socket when the whole time has passed, so
  a receiver dripping a byte at a time cannot hold a worker longer.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from webhooks.addresses import Target, parse, resolve
from webhooks.errors import UrlRefused

SNIPPET_CHARS = 500  # what an attempt keeps of the answer


@dataclass
class Answer:
    status: int | None  # None: no answer (timeout, network error, refused address)
    body: str
    error: str
    duration_ms: int
    refused: bool = False  # the address was refused: retrying will not help


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout_s: float, max_answer_bytes: int,
         allow_private: bool, max_url_length: int) -> Answer:
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target: Target = parse(url, max_length=max_url_length)
        address = resolve(target, allow_private=allow_private)
    except UrlRefused as exc:
        # A name that does not resolve now may again soon (a DNS outage): retried like a network
        # error. A refused address or URL is final.
        if exc.reason == "unresolvable":
            return Answer(None, "", f"network error: {exc.message}", elapsed_ms())
        return Answer(None, "", f"refused: {exc.message}", elapsed_ms(), refused=True)
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = kind(target.host, target.port, address, timeout_s)
    timed_out = threading.Event()

    def watchdog() -> None:
        timed_out.set()
        sock = connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout_s, watchdog)
    timer.daemon = True
    timer.start()
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read(max_answer_bytes)
        if timed_out.is_set():  # the watchdog cut it: what was read may look like a whole answer
            return Answer(None, "", f"timeout: no answer within {timeout_s:g} s", elapsed_ms())
        return Answer(response.status, answer[:SNIPPET_CHARS * 4].decode("utf-8", "replace")[:SNIPPET_CHARS], "",
                      elapsed_ms())
    except (TimeoutError, socket.timeout):
        return Answer(None, "", f"timeout: no answer within {timeout_s:g} s", elapsed_ms())
    except (OSError, http.client.HTTPException) as exc:
        if timed_out.is_set():
            return Answer(None, "", f"timeout: no answer within {timeout_s:g} s", elapsed_ms())
        return Answer(None, "", f"network error: {type(exc).__name__}: {exc}"[:SNIPPET_CHARS], elapsed_ms())
    finally:
        timer.cancel()
        connection.close()
