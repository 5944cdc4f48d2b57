"""The staff session page in real Chromium with a fake microphone that plays real read speech
(`--use-file-for-fake-audio-capture`): staff talk to the tutor as a student would, over the
WebSocket stream and over WebRTC; the tutor is cut when they talk over it, and what they said
appears in the page's conversation."""

from __future__ import annotations

import json
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest

from testsupport.browser import ARTIFACTS, chromium, needs_chromium, webrtc_live_server
from testsupport.videos import drifting, write_face_video

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with webrtc_live_server(tmp_path_factory.mktemp("talk-server")) as live:
        yield live


@pytest.fixture(scope="module")
def microphone(tmp_path_factory) -> Path:
    """beckett.wav after 1.5 s of quiet and before 2 s of it (Chromium loops the file)."""
    from testsupport.talking_footage import speech_recording

    with wave.open(str(speech_recording("beckett.wav"))) as source:
        rate, samples = source.getframerate(), np.frombuffer(source.readframes(source.getnframes()), "<i2")
    path = tmp_path_factory.mktemp("mic") / "student.wav"
    with wave.open(str(path), "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(rate)
        target.writeframes(np.concatenate([np.zeros(int(1.5 * rate), np.int16), samples,
                                           np.zeros(2 * rate, np.int16)]).tobytes())
    return path


@pytest.fixture(scope="module")
def browser(microphone):
    # A microphone without asking, playing the recording.
    with chromium(["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                   f"--use-file-for-fake-audio-capture={microphone}"]) as launched:
        yield launched


@pytest.fixture(scope="module")
def tutor_id(server, tmp_path_factory) -> int:
    clip = tmp_path_factory.mktemp("clip") / "tutor.mp4"
    write_face_video(clip, width=640, height=360, seconds=2.0, motion=drifting(640, 360, period_s=2.0))
    key = server.api_key()
    tutor = server.create_tutor(key, "Ada")
    server.upload_ready_avatar(key, clip, "talk")
    return tutor


def call(server, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{server.url}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"X-API-Key": server.api_key(), "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
def test_staff_talk_over_the_tutor_and_see_what_they_said(browser, server, tutor_id, transport):
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    try:
        page.goto(f"{server.url}/admin/login/?next=/staff/sessions/")
        page.fill("#id_username", server.username)
        page.fill("#id_password", server.password)
        page.click("input[type=submit]")
        page.wait_for_url("**/staff/sessions/")
        session = call(server, "POST", "/v1/sessions", {"tutor_id": tutor_id, "student_id": 3, "avatar_id": "talk"})
        page.goto(f"{server.url}/staff/sessions/{session['session_id']}/?transport={transport}")
        page.wait_for_function("Number(document.getElementById('stream').dataset.frames || 0) >= 10", timeout=20_000)
        assert page.inner_text("#transport").startswith("WebRTC" if transport == "webrtc" else "WebSocket")
        call(server, "POST", f"/v1/sessions/{session['session_id']}/speak", {
            "text": "Let us look at halves. When you cut a pizza into two equal parts, each part is one half. "
                    "Now cut each half again, and you have quarters: four equal parts that make the whole."})
        page.wait_for_function("document.getElementById('speech-state').textContent === 'speaking'", timeout=10_000)
        page.click("#talk")  # the microphone's recording begins: its first words come 1.5 s later
        page.wait_for_function("Number(document.getElementById('transcript').dataset.bargeIns || 0) >= 1",
                               timeout=15_000)
        assert "the tutor stopped" in page.inner_text("#student-state") or page.inner_text("#student-state") == "quiet"
        page.wait_for_function("document.getElementById('speech-state').textContent === 'silent'", timeout=5_000)
        page.wait_for_function("document.getElementById('transcript').textContent.toLowerCase().includes('fail better')",
                               timeout=40_000)
        lines = page.inner_text("#transcript").lower()
        page.screenshot(path=str(ARTIFACTS / f"staff-session-talk-{transport}.png"), full_page=True)
        assert "tutor: let us look at halves" in lines and "[cut off]" in lines
        assert "student (cut in): ever tried" in lines  # the turn that cut the tutor, marked
        entries = call(server, "GET", f"/v1/sessions/{session['session_id']}/transcript")["entries"]
        assert entries[0]["speaker"] == "tutor" and entries[0]["state"] == "interrupted"
        assert any(entry["speaker"] == "student" for entry in entries)
    finally:
        context.close()
