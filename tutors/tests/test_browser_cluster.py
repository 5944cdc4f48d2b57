"""The staff session page in real Chromium against a real local cluster (scripts/cluster.sh):
opened through the load balancer, it watches the session through the media server (Janus offers,
the page answers), draws the avatar, shows the header and the tutor speaking, and connects again
by itself when Janus restarts.

The cluster has ports and a Janus subnet of its own, so this runs in the same pytest run as
sessions_app/tests/test_cluster.py. Needs root (network namespaces), Debian's janus and haproxy,
and Chromium; skipped, and said why, otherwise. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import base64
import time

import pytest

from testsupport.browser import ARTIFACTS, chromium, needs_chromium
from testsupport.cluster import LocalCluster, running
from testsupport.webrtc_viewer import call_json

pytestmark = needs_chromium

CLUSTER = LocalCluster(port=9510, pg_port=55472, redis_port=56419, janus_subnet=217)
STAFF = ("cluster-staff", "cluster-staff-password-1")


@pytest.fixture(scope="module")
def running_cluster():
    yield from running(CLUSTER)


@pytest.fixture(scope="module")
def api_key(running_cluster) -> str:
    return running_cluster.api_key("browser-cluster-test")


@pytest.fixture(scope="module")
def staff(running_cluster) -> tuple[str, str]:
    username, password = STAFF
    running_cluster.manage("createsuperuser", "--noinput", "--username", username, "--email", "staff@example.com",
                           env={"DJANGO_SUPERUSER_PASSWORD": password})
    return username, password


@pytest.fixture(scope="module")
def session(running_cluster, api_key, face_video) -> dict:
    tutor_id = running_cluster.tutor_with_avatar(api_key, face_video[0], name="Emmy Noether")
    status, body = call_json("POST", f"{CLUSTER.lb}/v1/sessions", {"tutor_id": tutor_id, "student_id": 7}, api_key)
    assert status == 201, body
    yield body
    call_json("POST", f"{CLUSTER.lb}/v1/sessions/{body['session_id']}/end", {}, api_key)


@pytest.fixture
def page(staff):
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.goto(f"{CLUSTER.lb}/admin/login/?next=/staff/")
        page.fill("#id_username", staff[0])
        page.fill("#id_password", staff[1])
        page.click("input[type=submit]")
        page.wait_for_url("**/staff/")
        yield page
        context.close()


def frames(page) -> int:
    return page.evaluate("Number(document.getElementById('stream').dataset.frames || 0)")


def picture_distance(page, thumbnails) -> tuple[float, float]:
    """The canvas's picture: (mean grey level, mean grey distance to its nearest prepared idle frame)."""
    import cv2
    import numpy as np

    from testsupport.webrtc_viewer import nearest_idle

    png = base64.b64decode(page.evaluate("document.getElementById('stream').toDataURL('image/png')").split(",", 1)[1])
    luma = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    small = cv2.resize(luma, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
    return float(luma.mean()), float(np.abs(thumbnails[nearest_idle(luma, thumbnails)] - small).mean())


def test_staff_watch_a_session_through_the_media_server_and_across_a_janus_restart(page, session):
    import cv2

    from testsupport.webrtc_viewer import idle_thumbnails

    ARTIFACTS.mkdir(exist_ok=True)
    sid = session["session_id"]
    avatar_dir = CLUSTER.run_dir / "data" / "avatars" / session["avatar_id"]
    thumbnails = idle_thumbnails([cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                                  for path in sorted((avatar_dir / "full_imgs").iterdir())])

    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))  # e.g. an event the script could not read
    page.goto(f"{CLUSTER.lb}/staff/sessions/{sid}/")
    # Janus's offer answered, connected: the page says which way the media came, then the codecs
    # the browser chose (read from its statistics a second later).
    page.wait_for_function("/^WebRTC through the media server \\((VP8|H264), opus\\)$/"
                           ".test(document.getElementById('transport').textContent)", timeout=30_000)
    page.wait_for_function("Number(document.getElementById('stream').dataset.frames || 0) >= 25", timeout=15_000)
    assert page.evaluate("document.getElementById('stream').dataset.connections") == "1"
    # The header (with the offer, or on the data channel): the avatar's size and rate.
    page.wait_for_function("document.getElementById('stream-info').textContent.includes('fps')", timeout=10_000)
    header = page.inner_text("#stream-info")
    assert header.startswith(session["avatar_id"] + ": 640x360") and " fps" in header, header
    brightness, distance = picture_distance(page, thumbnails)
    print(f"through Janus: header {header!r}; canvas mean grey {brightness:.1f}, "
          f"{distance:.1f} grey levels from the nearest prepared frame")
    # Measured: mean grey about 120, 0.5 grey levels from a prepared frame (VP8's loss); a black
    # canvas is 0, another picture tens of levels away.
    assert brightness > 30, "the canvas is black"
    assert distance < 12, "the canvas does not show the avatar"
    page.screenshot(path=str(ARTIFACTS / "staff-session-cluster.png"), full_page=True)
    # The header comes again on the data channel every 2.5 s: the same size must not reset the
    # canvas (setting its size clears it: the picture blinked black).
    page.evaluate("""() => {
        window.canvasResets = 0;
        new MutationObserver(function (records) { window.canvasResets += records.length; })
            .observe(document.getElementById('stream'), {attributes: true, attributeFilter: ['width', 'height']});
    }""")
    shown_at = time.monotonic()

    # Said: the events come on Janus's data channel, the voice with the picture.
    page.click("#sound")
    assert "in step" in page.inner_text("#clock-info")
    page.fill("#say-text", "Hello! Let us look at fractions together, one small step at a time.")
    page.click("#say")
    page.wait_for_function("document.getElementById('say-result').dataset.utterance", timeout=10_000)
    page.wait_for_function("document.getElementById('speech-state').textContent === 'speaking'", timeout=15_000)
    levels = []
    for _ in range(10):
        levels.append(page.evaluate("window.sessionPlayer.level()"))
        page.wait_for_timeout(100)
    page.screenshot(path=str(ARTIFACTS / "staff-session-cluster-speaking.png"), full_page=True)
    print(f"speaking through Janus: audio RMS max {max(levels):.3f}")
    assert max(levels) > 0.01, "the tutor's voice did not reach the page"
    page.wait_for_function("document.getElementById('speech-state').textContent === 'silent'", timeout=20_000)
    page.wait_for_function("document.getElementById('transcript').textContent.includes('fractions together')",
                           timeout=10_000)

    page.wait_for_timeout(max(0.0, shown_at + 2 * 2.5 + 0.5 - time.monotonic()) * 1000)  # the header came again
    assert page.evaluate("window.canvasResets") == 0, "the repeated header cleared the canvas"

    # Janus restarted: the page connects again by itself and draws on.
    restarted_at = time.monotonic()
    restart = CLUSTER.restart_janus()
    assert restart.returncode == 0, restart.stdout + restart.stderr
    page.wait_for_function("document.getElementById('stream').dataset.connections === '2'", timeout=20_000)
    back_after = time.monotonic() - restarted_at
    page.wait_for_function("/^WebRTC through the media server \\((VP8|H264), opus\\), reconnected$/"
                           ".test(document.getElementById('transport').textContent)", timeout=5_000)
    drawn = frames(page)
    page.wait_for_function(f"Number(document.getElementById('stream').dataset.frames) >= {drawn + 25}", timeout=10_000)
    brightness, distance = picture_distance(page, thumbnails)
    print(f"after the Janus restart: connected again {back_after:.1f} s after the restart began; "
          f"canvas mean grey {brightness:.1f}, {distance:.1f} from the nearest prepared frame")
    assert brightness > 30 and distance < 12
    page.screenshot(path=str(ARTIFACTS / "staff-session-cluster-reconnected.png"), full_page=True)
    assert errors == [], errors
