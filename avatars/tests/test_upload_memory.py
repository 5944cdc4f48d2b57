"""Uploads on a real server (daphne): what memory a large upload costs, and the size limit.

Django streams the body to disk; Twisted's own parsing of multipart bodies is switched off, and
daphne's queue of body messages keeps only where each lies in Twisted's temporary file
(tutorplatform/daphne_uploads.py). Before, a 250 MB upload raised the server's peak memory by
3.0 GB, then by 250 MB; this test holds it to a small constant, so neither comes back unseen."""

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


class _TwistedRequest:
    """What daphne's request offers the patch: Twisted's `content` file."""

    def __init__(self, content) -> None:
        self.content = content


def test_body_messages_come_back_from_the_request_file_unchanged(tmp_path):
    import asyncio
    import tempfile

    from tutorplatform.daphne_uploads import _keep_body_on_disk

    async def scenario():
        content = tempfile.TemporaryFile(dir=tmp_path)
        pieces = [b"a" * 8192, b"b" * 8192, b"tail"]
        content.write(b"".join(pieces))
        content.seek(0)
        queue = asyncio.Queue()
        _keep_body_on_disk(queue, _TwistedRequest(content))
        for number, piece in enumerate(pieces):
            queue.put_nowait({"type": "http.request", "body": content.read(len(piece)),
                              "more_body": number < len(pieces) - 1})
        assert all(not isinstance(item, dict) for item in queue._queue)  # nothing held but places
        received = [await queue.get() for _ in pieces]
        assert [message["body"] for message in received] == pieces
        assert [message["more_body"] for message in received] == [True, True, False]
        # The client goes away before the application has read the body: it hears so.
        queue.put_nowait({"type": "http.request", "body": b"x", "more_body": False})
        queue.put_nowait({"type": "http.disconnect"})
        content.close()
        assert (await queue.get())["type"] == "http.disconnect"
        assert (await queue.get())["type"] == "http.disconnect"

    asyncio.run(scenario())


def test_small_bodies_in_memory_are_left_alone():
    import asyncio
    import io

    from tutorplatform.daphne_uploads import _keep_body_on_disk

    queue = asyncio.Queue()
    _keep_body_on_disk(queue, _TwistedRequest(io.BytesIO(b"{}")))
    message = {"type": "http.request", "body": b"{}", "more_body": False}
    queue.put_nowait(message)
    assert queue.get_nowait() is message
