"""One attempt's bounds against real sockets on loopback: a receiver dripping its answer a byte
at a time is cut at the attempt's timeout; a huge answer is read only up to the limit; a host
that does not resolve is a network error (retried), a refused address is final."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from webhooks import sender


def serve_once(handle) -> tuple[str, threading.Event]:
    """A raw TCP server on loopback whose first connection `handle(conn)` serves; its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    done = threading.Event()

    def run() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        try:
            handle(conn)
        except OSError:
            pass
        finally:
            conn.close()
            listener.close()
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/hooks", done


def post(url: str, timeout_s: float = 1.0, allow_private: bool = True) -> sender.Answer:
    return sender.post(url, b"{}", {"Content-Type": "application/json"}, timeout_s=timeout_s,
                       max_answer_bytes=4096, allow_private=allow_private, max_url_length=2048)


def test_a_receiver_dripping_its_answer_is_cut_at_the_attempts_timeout():
    def drip(conn) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(100):  # one header byte every 0.2 s: each read waits less than the timeout
            conn.sendall(b"X")
            time.sleep(0.2)

    url, done = serve_once(drip)
    started = time.monotonic()
    answer = post(url, timeout_s=1.0)
    elapsed = time.monotonic() - started
    assert answer.status is None and answer.error.startswith("timeout") and not answer.refused
    assert elapsed < 2.0, elapsed  # the whole attempt, not each read
    done.wait(25)


def test_only_the_start_of_a_huge_answer_is_read():
    sent = []

    def huge(conn) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n")
        chunk = b"a" * 65536
        for _ in range(1600):
            conn.sendall(chunk)
            sent.append(len(chunk))

    url, done = serve_once(huge)
    answer = post(url, timeout_s=5.0)
    assert answer.status == 200 and answer.body == "a" * sender.SNIPPET_CHARS
    done.wait(10)
    assert sum(sent) < 20 * 1024 * 1024  # the sender closed long before the 100 MB were sent


def test_a_host_that_does_not_resolve_is_retried_and_a_refused_address_is_final():
    unresolved = post("http://no-such-host.invalid/hooks")
    assert unresolved.status is None and not unresolved.refused and "does not resolve" in unresolved.error
    refused = post("http://127.0.0.1:9/hooks", allow_private=False)
    assert refused.refused and refused.error.startswith("refused")


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/hooks"])
def test_a_closed_port_is_a_network_error(url):
    answer = post(url)
    assert answer.status is None and answer.error.startswith("network error") and not answer.refused
