"""The staff upload flow in real Chromium against a real server (uvicorn, HTTP + WebSocket).

Screenshots of each end state are saved under test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testsupport.browser import ARTIFACTS, chromium, needs_chromium, webrtc_live_server

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with webrtc_live_server(tmp_path_factory.mktemp("live-server")) as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(f"{server.url}/admin/login/?next=/staff/tutors/new")
    page.fill("#id_username", server.username)
    page.fill("#id_password", server.password)
    page.click("input[type=submit]")
    page.wait_for_url("**/staff/tutors/new")
    yield page
    context.close()


def new_tutor(page, name: str, video: Path, blur: bool = False, refused: bool = False) -> None:
    page.fill("#id_name", name)
    page.fill("#id_description", f"{name} teaches maths.")
    page.set_input_files("#id_video", str(video))
    if blur:
        page.check("#id_apply_blur")
    page.click("#save")
    if refused:  # the form comes back with the error, on the same page
        page.wait_for_selector("[data-testid=message]", timeout=60_000)
    else:
        page.wait_for_url("**/staff/tutors/*/", timeout=60_000)


def test_staff_create_a_tutor_and_watch_the_avatar_become_ready(page, face_video):
    ARTIFACTS.mkdir(exist_ok=True)
    new_tutor(page, "Grace Hopper", face_video[0], blur=True)
    page.wait_for_function("document.getElementById('state').textContent === 'ready'", timeout=60_000)
    assert page.inner_text("#percent") == "100.0%"
    assert page.eval_on_selector("#progress-bar", "bar => bar.style.width") == "100%"
    page.wait_for_function("document.getElementById('preview').complete && document.getElementById('preview').naturalWidth > 0")
    assert page.eval_on_selector("#channel", "line => line.dataset.via") == "socket"  # progress came over the WebSocket
    assert page.inner_text("#channel") == ""  # and the page says nothing about it
    assert page.inner_text("#tutor-avatar-id").startswith("avatar_tutor_")
    page.wait_for_timeout(500)  # let the bar's animation finish before the picture
    page.screenshot(path=str(ARTIFACTS / "staff-avatar-ready.png"), full_page=True)


def test_a_file_that_is_not_a_video_shows_the_error_on_the_page(page, not_a_video):
    ARTIFACTS.mkdir(exist_ok=True)
    new_tutor(page, "Alan Turing", not_a_video, refused=True)
    message = page.inner_text("[data-testid=message]")
    assert "unsupported_media" in message and "not a video" in message
    assert page.input_value("#id_name") == "Alan Turing"  # what was typed is still there
    page.screenshot(path=str(ARTIFACTS / "staff-avatar-refused.png"), full_page=True)


def test_a_video_without_a_face_shows_the_named_error_and_its_advice(page, no_face_video):
    new_tutor(page, "Ada Lovelace", no_face_video)
    page.wait_for_function("document.getElementById('state').textContent === 'failed'", timeout=60_000)
    assert page.inner_text("#error-code") == "no_face"
    assert "facing the camera" in page.inner_text("#error-message")
    # The same video would fail again: another video is offered, not a reprocess.
    assert page.is_visible("#try-another") and not page.is_visible("#reprocess")
    page.screenshot(path=str(ARTIFACTS / "staff-avatar-no-face.png"), full_page=True)


def test_staff_watch_a_sessions_stream_in_the_browser(page, server, face_video):
    """The session page shows the avatar's frames as they stream, and learns when the session ends."""
    import json
    import urllib.request

    new_tutor(page, "Emmy Noether", face_video[0])
    page.wait_for_function("document.getElementById('state').textContent === 'ready'", timeout=60_000)
    tutor_id = int(page.url.rstrip("/").rsplit("/", 1)[-1])
    key = server.api_key()

    def call(method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(f"{server.url}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                         headers={"X-API-Key": key, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    session = call("POST", "/v1/sessions", {"tutor_id": tutor_id, "student_id": 42})
    page.goto(f"{server.url}/staff/sessions/{session['session_id']}/?transport=websocket")
    page.wait_for_function("Number(document.getElementById('stream').dataset.frames || 0) >= 30", timeout=15_000)
    assert "640x360" in page.inner_text("#stream-info")
    assert page.inner_text("#transport") == "WebSocket"
    page.screenshot(path=str(ARTIFACTS / "staff-session-stream.png"), full_page=True)
    call("POST", f"/v1/sessions/{session['session_id']}/end")
    page.wait_for_function("document.getElementById('session-state').textContent === 'ended'", timeout=10_000)


def test_staff_type_what_the_tutor_says_and_hear_and_see_it_said(page, server, face_video):
    """The session page: sound on (a click, as browsers require), a sentence typed and said; the
    page's audio output rises above silence, and the frames it draws show the mouth moving away
    from the prepared idle frame of the same time."""
    import base64
    import json
    import urllib.request

    import cv2
    import numpy as np

    from sessions_app.live.frames import ping_pong

    new_tutor(page, "Ada Lovelace", face_video[0])
    page.wait_for_function("document.getElementById('state').textContent === 'ready'", timeout=60_000)
    tutor_id = int(page.url.rstrip("/").rsplit("/", 1)[-1])
    request = urllib.request.Request(f"{server.url}/v1/sessions", method="POST",
                                     data=json.dumps({"tutor_id": tutor_id, "student_id": 7}).encode(),
                                     headers={"X-API-Key": server.api_key(), "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        session = json.loads(response.read())
    avatar_dir = server.data_dir / "avatars" / session["avatar_id"]
    landmarks = np.load(avatar_dir / "landmarks.npy")
    idle_names = sorted(path.name for path in (avatar_dir / "full_imgs").iterdir())

    page.goto(f"{server.url}/staff/sessions/{session['session_id']}/?transport=websocket")
    page.wait_for_function("Number(document.getElementById('stream').dataset.frames || 0) >= 10", timeout=15_000)
    page.click("#sound")
    assert "audio clock" in page.inner_text("#clock-info")

    def mouth_change() -> float:
        """How far the drawn frame's mouth is from the idle frame of its time (mean, 0-255)."""
        shown = page.evaluate("""() => {
            const canvas = document.getElementById('stream');
            return {pts: Number(canvas.dataset.pts), png: canvas.toDataURL('image/png')};
        }""")  # the drawn frame and its time, read in one go
        index = ping_pong(round(shown["pts"] * 25 / 1e6), len(idle_names))
        png = base64.b64decode(shown["png"].split(",", 1)[1])
        frame = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        idle = cv2.imread(str(avatar_dir / "full_imgs" / idle_names[index]))
        points = landmarks[index]
        width = np.linalg.norm(points[4] - points[3])
        box = (slice(int(points[3][1] - 0.1 * width), int(points[3][1] + 0.5 * width)),
               slice(int(points[3][0]), int(points[4][0]) + 1))
        return float(np.abs(frame[box].astype(int) - idle[box]).mean())

    silent_changes = [mouth_change() for _ in range(3)]
    page.fill("#say-text", "Hello! Let us look at fractions together, one small step at a time.")
    page.click("#say")
    page.wait_for_function("document.getElementById('say-result').dataset.utterance", timeout=10_000)  # accepted
    page.wait_for_function("document.getElementById('speech-state').textContent === 'speaking'", timeout=10_000)
    assert not page.inner_text("#say-result").startswith("queued")  # said: no longer "queued (… s)"
    levels, changes = [], []
    for _ in range(12):
        levels.append(page.evaluate("window.sessionPlayer.level()"))
        changes.append(mouth_change())
        page.wait_for_timeout(120)
    page.screenshot(path=str(ARTIFACTS / "staff-session-speaking.png"), full_page=True)
    print(f"speaking in the browser: audio RMS max {max(levels):.3f}; mouth change idle "
          f"{max(silent_changes):.1f}, speaking max {max(changes):.1f}")
    assert max(levels) > 0.01  # sound reached the page's output
    assert max(changes) > 4 * max(max(silent_changes), 1.5)  # the mouth moved
    page.wait_for_function("document.getElementById('speech-state').textContent === 'silent'", timeout=15_000)


def _open_session(server, tutor_id: int) -> dict:
    import json
    import urllib.request

    request = urllib.request.Request(f"{server.url}/v1/sessions", method="POST",
                                     data=json.dumps({"tutor_id": tutor_id, "student_id": 7}).encode(),
                                     headers={"X-API-Key": server.api_key(), "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_staff_session_over_webrtc_is_heard_and_seen_speaking(page, server, face_video):
    """The session page plays over WebRTC by default: it connects, says which codecs the browser
    chose, draws the received pictures; with sound on and a sentence said, the Web Audio analyser
    on the received stream rises above silence and the drawn mouth moves away from the idle frame
    the picture shows (found by its nearest prepared frame: WebRTC carries no frame numbers)."""
    import base64

    import cv2
    import numpy as np

    from testsupport.webrtc_viewer import idle_thumbnails, mouth_change

    new_tutor(page, "Mary Somerville", face_video[0])
    page.wait_for_function("document.getElementById('state').textContent === 'ready'", timeout=60_000)
    session = _open_session(server, int(page.url.rstrip("/").rsplit("/", 1)[-1]))
    avatar_dir = server.data_dir / "avatars" / session["avatar_id"]
    landmarks = np.load(avatar_dir / "landmarks.npy")
    idle = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in sorted((avatar_dir / "full_imgs").iterdir())]
    thumbnails = idle_thumbnails(idle)

    page.goto(f"{server.url}/staff/sessions/{session['session_id']}/")
    # "WebRTC (VP8, opus)": connected, and the codecs the browser chose read from its statistics
    page.wait_for_function("/^WebRTC \\((VP8|H264), opus\\)$/.test(document.getElementById('transport').textContent)",
                           timeout=20_000)
    page.wait_for_function("Number(document.getElementById('stream').dataset.frames || 0) >= 25", timeout=15_000)
    transport = page.inner_text("#transport")
    assert "640x360" in page.inner_text("#stream-info")
    page.click("#sound")
    assert "in step" in page.inner_text("#clock-info")

    def drawn_mouth_change() -> float:
        png = base64.b64decode(page.evaluate("document.getElementById('stream').toDataURL('image/png')").split(",", 1)[1])
        return mouth_change(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE), idle, thumbnails, landmarks)

    silent_levels = [page.evaluate("window.sessionPlayer.level()") for _ in range(3)]
    silent_changes = []
    for _ in range(6):
        silent_changes.append(drawn_mouth_change())
        page.wait_for_timeout(80)
    page.fill("#say-text", "Hello! Let us look at fractions together, one small step at a time.")
    page.click("#say")
    page.wait_for_function("document.getElementById('speech-state').textContent === 'speaking'", timeout=10_000)
    levels, changes = [], []
    # Sampled over the whole sentence (~4 s): a drawn mouth opens widest on a few open vowels only.
    for _ in range(25):
        levels.append(page.evaluate("window.sessionPlayer.level()"))
        changes.append(drawn_mouth_change())
        page.wait_for_timeout(100)
    page.screenshot(path=str(ARTIFACTS / "staff-session-webrtc-speaking.png"), full_page=True)
    print(f"WebRTC in the browser ({transport}): audio RMS silent {max(silent_levels):.3f}, speaking max "
          f"{max(levels):.3f}; mouth change idle {max(silent_changes):.1f}, speaking max {max(changes):.1f}")
    assert max(levels) > 0.01 > max(silent_levels)  # sound arrived, and silence before it
    # Idle pictures differ from their prepared frame by the codec's loss alone.
    assert max(changes) > 2.5 * max(max(silent_changes), 1.5)  # the mouth moved
    page.wait_for_function("document.getElementById('speech-state').textContent === 'silent'", timeout=15_000)


def test_staff_session_falls_back_to_the_websocket_stream_without_webrtc(page, server, face_video):
    """A browser without WebRTC (here: RTCPeerConnection taken away before the page runs) gets the
    WebSocket stream, and the page says so."""
    new_tutor(page, "Hypatia of Alexandria", face_video[0])
    page.wait_for_function("document.getElementById('state').textContent === 'ready'", timeout=60_000)
    session = _open_session(server, int(page.url.rstrip("/").rsplit("/", 1)[-1]))
    page.add_init_script("delete window.RTCPeerConnection;")
    page.goto(f"{server.url}/staff/sessions/{session['session_id']}/")
    page.wait_for_function("Number(document.getElementById('stream').dataset.frames || 0) >= 10", timeout=15_000)
    assert page.inner_text("#transport") == "WebSocket (this browser has no WebRTC)"


def test_staff_search_edit_replace_and_delete_a_tutor(page, server, face_video):
    """A tutor's whole life on the staff pages: made, found, renamed, its video replaced while the
    old avatar stays in use, deleted."""
    new_tutor(page, "Sofia Kovalevskaya", face_video[0])
    page.wait_for_function("document.getElementById('state').textContent === 'ready'", timeout=60_000)
    tutor_url = page.url
    first_avatar = page.inner_text("#tutor-avatar-id")
    assert first_avatar.startswith("avatar_tutor_")

    page.goto(f"{server.url}/staff/?q=kovalev")
    assert page.is_visible("text=Sofia Kovalevskaya")
    page.goto(f"{server.url}/staff/?q=nobody-by-this-name")
    assert "No tutor matches" in page.inner_text("main")

    page.goto(tutor_url)
    page.click("#edit")
    page.fill("#id_name", "Sofia K.")
    page.click("#save")
    page.wait_for_url(tutor_url)
    assert page.inner_text("h1") == "Sofia K."

    page.set_input_files("input[name=video]", str(face_video[0]))
    page.click("form[action$='/video'] button")
    page.wait_for_url(tutor_url)
    # The new video's avatar is followed on the page; the one in use stays until it is ready.
    assert page.inner_text("#avatar h2").endswith(first_avatar + "_2")
    page.wait_for_function("document.getElementById('state').textContent === 'ready'", timeout=60_000)
    page.reload()
    assert page.inner_text("#tutor-avatar-id") == first_avatar + "_2"
    page.screenshot(path=str(ARTIFACTS / "staff-tutor-replaced.png"), full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete button")
    page.wait_for_url(f"{server.url}/staff/")
    assert "were deleted" in page.inner_text("[data-testid=message]")
    page.goto(f"{server.url}/staff/?q=Sofia")
    assert "No tutor matches" in page.inner_text("main")


def test_the_say_box_shows_why_a_text_with_a_control_character_is_refused(page, server, face_video):
    """A NUL in the Say box: the page says what is wrong (it was a 500 page the script could not
    read, so nothing was shown), and the box keeps the text."""
    import json
    import urllib.request

    new_tutor(page, "Grace Hopper", face_video[0])
    page.wait_for_function("document.getElementById('state').textContent === 'ready'", timeout=60_000)
    tutor_id = int(page.url.rstrip("/").rsplit("/", 1)[-1])
    request = urllib.request.Request(f"{server.url}/v1/sessions", method="POST",
                                     data=json.dumps({"tutor_id": tutor_id, "student_id": 8}).encode(),
                                     headers={"X-API-Key": server.api_key(), "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        session = json.loads(response.read())
    page.goto(f"{server.url}/staff/sessions/{session['session_id']}/?transport=websocket")
    page.evaluate("document.getElementById('say-text').value = 'Hello\\u0000there'")
    page.click("#say")
    page.wait_for_function("document.getElementById('say-result').textContent.includes('control character')",
                           timeout=15_000)
    assert "U+0000" in page.text_content("#say-result")
    assert page.eval_on_selector("#say-text", "element => element.value") == "Hello\u0000there"
    page.screenshot(path=str(ARTIFACTS / "staff-session-say-refused.png"), full_page=True)
