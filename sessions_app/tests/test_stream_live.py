"""The session stream against a real server (uvicorn): viewers that stop reading, and viewers
that leave mid-stream. Channels' communicator has no socket, so no back-pressure: these need one."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
import urllib.request

import pytest
import websockets.sync.client

from testsupport.live_server import LiveServer, start_live_server
from testsupport.videos import drifting, write_face_video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream-live")
    clip = folder / "tutor.mp4"
    write_face_video(clip, width=640, height=360, seconds=2.0, motion=drifting(640, 360, period_s=2.0))
    (folder / "data").mkdir()
    server = start_live_server(folder / "data", extra_env={"SESSION_MAX_VIEWERS": "1", "SERVER_WS_SEND_STALL_S": "10"})
    try:
        key = server.api_key()
        server.upload_ready_avatar(key, clip, "streamed")
        tutor_id = server.create_tutor(key, "Ada")
        yield server, key, tutor_id
    finally:
        server.stop()


def open_session(server: LiveServer, key: str, tutor_id: int) -> str:
    request = urllib.request.Request(
        f"{server.url}/v1/sessions", method="POST",
        data=json.dumps({"tutor_id": tutor_id, "student_id": 1, "avatar_id": "streamed"}).encode(),
        headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["session_id"]


def end_session(server: LiveServer, key: str, session_id: str) -> None:
    request = urllib.request.Request(f"{server.url}/v1/sessions/{session_id}/end", method="POST", data=b"",
                                     headers={"X-API-Key": key})
    urllib.request.urlopen(request, timeout=30).close()


def stream_url(server: LiveServer, key: str, session_id: str) -> str:
    return server.url.replace("http://", "ws://") + f"/ws/sessions/{session_id}/?api_key={key}"


def admitted(url: str) -> bool:
    """Whether a new viewer gets the stream's header now (False: closed with 4429)."""
    with websockets.sync.client.connect(url, open_timeout=10, max_size=None) as viewer:
        try:
            first = viewer.recv(timeout=10)
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4429, closed
            return False
        return isinstance(first, str) and json.loads(first)["type"] in ("session", "waiting")


def stalled_viewer(server: LiveServer, url_path: str) -> socket.socket:
    """A client that completes the WebSocket handshake and then never reads a byte: a small
    receive buffer, so the server's writes block soon."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {url_path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # the handshake's answer, byte by byte: nothing past it is read
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_a_viewer_that_stops_reading_loses_its_place_within_seconds(live):
    server, key, tutor_id = live
    session_id = open_session(server, key, tutor_id)
    url = stream_url(server, key, session_id)
    try:
        sock = stalled_viewer(server, url.split(server.url.removeprefix("http://"), 1)[1])
        stalled_at = time.monotonic()
        freed_after = None
        log_file = server.data_dir / "server.log"
        with sock:
            while time.monotonic() - stalled_at < 30:
                if admitted(url):
                    freed_after = time.monotonic() - stalled_at
                    break
                time.sleep(0.25)
            print(f"a stalled viewer's place was free again {freed_after} s after it stopped reading")
            assert freed_after is not None, "the stalled viewer kept its place for 30 s"
            # ~4 s behind once the socket's buffers are full; generous for a busy machine.
            assert freed_after < 15
            assert "the viewer fell behind" in log_file.read_text()
            # The connection itself is dropped once the server's writes have stalled 10 s.
            deadline = time.monotonic() + 20
            while "dropped a WebSocket whose client stopped reading" not in log_file.read_text():
                assert time.monotonic() < deadline, "the stalled connection was not dropped"
                time.sleep(0.25)
    finally:
        end_session(server, key, session_id)


@pytest.mark.parametrize("stalled_s", [0.0, 2.5])
def test_a_viewer_leaving_mid_stream_is_a_normal_leave_not_an_error(live, stalled_s):
    """Gone without a close frame: while the stream waits for the next frame, or (2.5 s after it
    stopped reading, before it is 4 s behind) while a send is held by back-pressure, which the
    server then ends with its "client disconnected" error."""
    server, key, tutor_id = live
    session_id = open_session(server, key, tutor_id)
    url = stream_url(server, key, session_id)
    log_file = server.data_dir / "server.log"
    try:
        for _ in range(2):
            before = len(log_file.read_text())
            sock = stalled_viewer(server, url.split(server.url.removeprefix("http://"), 1)[1])
            time.sleep(stalled_s)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, no close frame
            sock.close()
            time.sleep(1.5)
            added = log_file.read_text()[before:]
            assert "Traceback" not in added and "failed" not in added, added
            assert "fell behind" not in added
        assert admitted(url)  # its place was freed
    finally:
        end_session(server, key, session_id)
