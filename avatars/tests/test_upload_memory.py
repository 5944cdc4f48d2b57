"""Uploads on a real server (uvicorn, as scripts/serve.sh runs it): what memory a large upload
costs, and the size limit.

uvicorn hands the body to the application as it arrives and stops reading the socket while more
than 64 KB wait; Django spools the body to a temporary file and the upload handlers stream it to
another. The server's peak memory must not grow with the upload: this test holds a 250 MB
upload's cost under 50 MB."""

from __future__ import annotations

import http.client
import json
import os
import time
from pathlib import Path

import pytest

from testsupport.live_server import start_live_server

MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    os.environ["AVATAR_MAX_UPLOAD_BYTES"] = str(300 * MB)
    try:
        live = start_live_server(tmp_path_factory.mktemp("upload-server"))
    finally:
        del os.environ["AVATAR_MAX_UPLOAD_BYTES"]
    yield live
    live.stop()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def temporary_files(server) -> list[Path]:
    """The server's temporary upload files, once it has finished with the last request (it
    deletes them as it closes the request, just after sending the answer)."""
    deadline = time.monotonic() + 5
    while True:
        left = list((server.data_dir / "tmp").iterdir())
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def stream_upload(server, key: str, size: int, declared: int | None = None) -> tuple[int, dict]:
    """POST a multipart upload of `size` junk bytes, written in 1 MB pieces."""
    boundary = "memtest"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"avatar_id\"\r\n\r\nbig\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"video_file\"; filename=\"big.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    connection.putrequest("POST", "/v1/avatars/upload")
    connection.putheader("X-API-Key", key)
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(declared if declared is not None else len(head) + size + len(tail)))
    connection.endheaders()
    try:
        connection.send(head)
        piece = b"lesson notes, not a video. " * (MB // 27)
        sent = 0
        while sent < size:
            chunk = piece[: min(len(piece), size - sent)]
            connection.send(chunk)
            sent += len(chunk)
        connection.send(tail)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may stop reading once it has refused the upload
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_server_memory_does_not_grow_with_the_upload(server):
    key = server.api_key()
    stream_upload(server, key, 5 * MB)  # warm up: the first request loads the code
    before = peak_rss_mb(server.process.pid)
    status, body = stream_upload(server, key, 250 * MB)
    after = peak_rss_mb(server.process.pid)
    print(f"server peak RSS {before:.0f} MB before a 250 MB upload, {after:.0f} MB after")
    assert status == 415 and body["code"] == "unsupported_media"
    assert after - before < 50
    assert temporary_files(server) == []


def test_an_upload_over_the_limit_is_stopped_while_streaming(server):
    key = server.api_key()
    # Declare a small body (so the header check passes) and send far more: only counting the
    # bytes as they arrive can stop it.
    status, body = stream_upload(server, key, 400 * MB, declared=1 * MB)
    assert status in (400, 413), body
    status, body = stream_upload(server, key, 320 * MB)
    assert status == 413 and body["code"] == "file_too_large"
    assert temporary_files(server) == []


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(server):
    """The answer comes while the client has sent only the head: nothing of the body crosses."""
    import socket

    key = server.api_key()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST /v1/avatars/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
                     f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {2000 * MB}\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), received[:300]
    assert json.loads(body)["code"] == "file_too_large"
