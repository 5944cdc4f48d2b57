"""The server process itself (tutorplatform/server.py), started as scripts/serve.sh starts it:
slow clients are cut off, idle connections closed, malformed HTTP answered in the contract's
shape, and SIGTERM stops it within a bounded time, with the running job back in the queue and
WebSocket clients told the server is restarting."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import websockets.sync.client

from testsupport.live_server import LiveServer, start_live_server
from testsupport.videos import drifting, write_face_video

pytestmark = pytest.mark.slow

TIMEOUTS = {
    "SERVER_REQUEST_HEAD_TIMEOUT_S": "1",
    "SERVER_BODY_IDLE_TIMEOUT_S": "1",
    "SERVER_BODY_GRACE_S": "3",
    "SERVER_BODY_MIN_RATE_BYTES_S": "500",
    "SERVER_KEEP_ALIVE_S": "1",
    "SERVER_GRACEFUL_SHUTDOWN_S": "3",
    "AVATAR_JOB_STOP_WAIT_S": "10",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = start_live_server(tmp_path_factory.mktemp("server"), extra_env=TIMEOUTS)
    yield live
    live.stop()


def connect(server: LiveServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def closed_after(sock: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server closes the connection, and what it sent before."""
    started, received = time.monotonic(), b""
    while chunk := sock.recv(65536):
        received += chunk
    return time.monotonic() - started, received


def test_a_connection_whose_headers_never_finish_is_closed(server):
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and never the blank line
        waited, received = closed_after(sock)
    assert received == b"" and 0.8 < waited < 5


def test_a_silent_connection_is_closed(server):
    with connect(server) as sock:
        waited, received = closed_after(sock)
    assert received == b"" and 0.8 < waited < 5


def test_a_body_that_stops_arriving_is_answered_408(server):
    key = server.api_key()
    with connect(server) as sock:
        sock.sendall(b"POST /v1/avatars/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: " + key.encode()
                     + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
                     + b"--b\r\nContent-Disposition: form-data; name=\"avatar_id\"\r\n\r\nslow\r\n")
        waited, received = closed_after(sock)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), received[:200]
    assert json.loads(body)["code"] == "request_timeout"
    assert waited < 5
    assert list((server.data_dir / "tmp").iterdir()) == []


def test_a_slow_body_that_keeps_arriving_is_not_cut_off(server):
    """Only a stall counts: a body sent in pieces 0.5 s apart (each wait under the 1 s limit)
    arrives whole, however long it takes in all."""
    body = json.dumps({"name": "slow but steady"}).encode()
    with connect(server) as sock:
        sock.sendall(b"POST /v1/avatars HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        for index in range(0, len(body), 8):
            time.sleep(0.5)
            sock.sendall(body[index:index + 8])
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]  # reached the API (no key), not a timeout


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(server):
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        waited, received = closed_after(sock)
    assert received.startswith(b"HTTP/1.1 200")
    assert 0.8 < waited < 5


def test_malformed_http_gets_the_contracts_error_body(server):
    with connect(server) as sock:
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        _, received = closed_after(sock)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["code"] == "invalid_request"


def test_a_socket_without_a_key_hears_4401_not_an_http_403(server):
    """What a browser sees: the WebSocket opens, then closes with the documented code."""
    url = server.url.replace("http://", "ws://")
    for path in ("/ws/avatars/someone/", "/ws/sessions/00000000-0000-0000-0000-000000000000/"):
        with websockets.sync.client.connect(url + path, open_timeout=10) as refused:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                refused.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401, path


def test_api_keys_in_a_query_never_reach_the_server_log(server):
    key = server.api_key()
    url = server.url.replace("http://", "ws://") + f"/ws/avatars/nobody/?api_key={key}"
    with websockets.sync.client.connect(url, open_timeout=10) as sock:
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                sock.recv(timeout=10)
    with urllib.request.urlopen(f"{server.url}/health?api_key={key}", timeout=10):
        pass
    time.sleep(0.3)
    log = (server.data_dir / "server.log").read_text()
    assert "/ws/avatars/nobody/?api_key=" in log and "/health?api_key=" in log  # the lines are there...
    assert key not in log  # ...without the key


def upload(server: LiveServer, key: str, video: Path, avatar_id: str) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"avatar_id\"\r\n\r\n{avatar_id}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"apply_blur\"\r\n\r\ntrue\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"video_file\"; filename=\"tutor.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode() + video.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{server.url}/v1/avatars/upload", data=body, method="POST", headers={
        "X-API-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def avatar(server: LiveServer, key: str, avatar_id: str) -> dict:
    request = urllib.request.Request(f"{server.url}/v1/avatars/{avatar_id}", headers={"X-API-Key": key})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def test_sigterm_stops_the_server_promptly_and_the_running_job_resumes_at_the_next_start(tmp_path):
    video = tmp_path / "long.mp4"
    write_face_video(video, width=640, height=360, seconds=40.0, motion=drifting(640, 360, period_s=4.0))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    live = start_live_server(data_dir, extra_env=TIMEOUTS)
    try:
        key = live.api_key()
        upload(live, key, video, "long-one")
        wait_for(lambda: avatar(live, key, "long-one").get("frames_done", 0) > 0, 60, "the job to start")
        progress_url = live.url.replace("http://", "ws://") + f"/ws/avatars/long-one/?api_key={key}"
        with websockets.sync.client.connect(progress_url, open_timeout=10) as progress:
            live.process.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    progress.recv(timeout=10)
        code = live.process.wait(30)
        stopped_after = time.monotonic() - sent
    finally:
        if live.process.poll() is None:
            live.process.kill()
    log = (data_dir / "server.log").read_text()
    print(f"SIGTERM to exit: {stopped_after:.2f} s")
    assert code in (0, -signal.SIGTERM), log[-2000:]  # uvicorn ends by re-raising the signal it handled
    assert stopped_after < 8, log[-2000:]  # the job stops between two frames; nothing waits the whole queue
    assert "interrupted by shutdown; back in the queue" in log
    # A WebSocket client hears that the server is restarting rather than losing the connection.
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012

    again = start_live_server(data_dir, extra_env=TIMEOUTS)
    try:
        key = again.api_key()
        assert avatar(again, key, "long-one")["state"] in ("queued", "processing")
        ready = wait_for(lambda: (row := avatar(again, key, "long-one"))["state"] in ("ready", "failed") and row,
                         180, "the re-queued job to finish")
        assert ready["state"] == "ready", ready
        assert ready["frames_total"] == 1000
    finally:
        again.stop()


@pytest.mark.parametrize("path", [
    "/ws/nothing/", "/ws/sessions/%7B00000000-0000-0000-0000-000000000000%7D/",
    "/ws/sessions/urn:uuid:00000000-0000-0000-0000-000000000000/",
    "/ws/sessions/%EF%BC%91%EF%BC%92%EF%BC%93/",  # fullwidth digits
    "/ws/sessions/00000000-0000-0000-0000-000000000000",  # no trailing slash
])
@pytest.mark.parametrize("with_key", [False, True])
def test_a_socket_path_that_names_no_socket_is_closed_with_4404_not_an_http_500(server, path, with_key):
    url = server.url.replace("http://", "ws://") + path + (f"?api_key={server.api_key()}" if with_key else "")
    with websockets.sync.client.connect(url, open_timeout=10) as refused:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            refused.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
    assert "Traceback" not in (server.data_dir / "server.log").read_text()


def test_a_body_trickled_below_the_minimum_rate_is_answered_408(server):
    """A byte every 0.5 s never stops long enough for the idle limit (1 s here), but is far below
    500 bytes a second: refused once the 3 s grace is spent, not held until it ends."""
    key = server.api_key()
    with connect(server) as sock:
        sock.sendall(b"POST /v1/tutors HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: " + key.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n")
        started = time.monotonic()
        sock.settimeout(0.5)
        received = b""
        while time.monotonic() - started < 15:
            try:
                sock.sendall(b" ")
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            received += chunk
        waited = time.monotonic() - started
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), received[:200]
    assert json.loads(body)["details"]["min_rate_bytes_s"] == 500
    assert 2.5 < waited < 6


@pytest.mark.parametrize("path, limit", [
    ("/v1/sessions/00000000-0000-0000-0000-000000000000/speak", 64 * 1024 * 1024),
    ("/v1/sessions/00000000-0000-0000-0000-000000000000/webrtc", 2621440),
])
def test_a_body_over_its_endpoints_limit_is_refused_from_its_length_before_it_is_read(server, path, limit):
    key = server.api_key()
    with connect(server) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
                     f"Content-Type: audio/wav\r\nContent-Length: {limit + 4096}\r\n\r\n".encode())
        waited, received = closed_after(sock)  # no byte of the body sent
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), received[:200]
    answer = json.loads(body)
    assert answer["code"] == "file_too_large" and answer["details"]["max_bytes"] == limit
    assert waited < 0.9  # answered at once, not after the 1 s body timeout
