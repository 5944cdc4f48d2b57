"""Every staff page as a person sees it, in real Chromium against a real server, at 1280 and at
800 pixels wide: a screenshot of each in test-artifacts/ (pages-<name>-<width>.png), and what a
person would notice asserted: the State column's words, no sideways scrolling, the session's
picture inside its card with its aspect kept, the "Start a session" button working end to end."""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from testsupport.browser import ARTIFACTS, needs_chromium, webrtc_live_server
from tutors.tests.test_browser import browser, new_tutor  # noqa: F401  (browser: a fixture)

pytestmark = needs_chromium

WIDTHS = (1280, 800)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with webrtc_live_server(tmp_path_factory.mktemp("live-pages")) as live:
        yield live


@pytest.fixture(scope="module")
def hd_video(video_dir) -> Path:
    """2 s of a face at 1280x720: an avatar whose frames are wider than any card."""
    from testsupport.videos import write_face_video

    path = video_dir / "face-720p.mp4"
    if not path.exists():
        write_face_video(path, width=1280, height=720, seconds=2.0)
    return path


@pytest.fixture
def page(browser, server):  # noqa: F811  (browser: the imported fixture)
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
    page = context.new_page()
    page.goto(f"{server.url}/admin/login/?next=/staff/")
    page.fill("#id_username", server.username)
    page.fill("#id_password", server.password)
    page.click("input[type=submit]")
    page.wait_for_url("**/staff/")
    yield page
    context.close()


def look_at(page, name: str) -> None:
    """The page at each width: no sideways scrolling, and a screenshot to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(300)  # layout, and the bars' transitions
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        page.screenshot(path=str(ARTIFACTS / f"pages-{name}-{width}.png"), full_page=True)
        assert overflow <= 0, f"{name} scrolls sideways by {overflow} px at {width} px wide"
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def picture_fits_its_card(page) -> None:
    """The session's canvas lies inside its card and keeps the avatar's aspect."""
    boxes = page.evaluate("""() => {
        const canvas = document.getElementById('stream');
        const card = canvas.closest('.card').getBoundingClientRect();
        const shown = canvas.getBoundingClientRect();
        return {card: [card.left, card.right], shown: [shown.left, shown.right, shown.width, shown.height],
                size: [canvas.width, canvas.height]};
    }""")
    left, right, width, height = boxes["shown"]
    assert boxes["card"][0] <= left and right <= boxes["card"][1], boxes
    assert abs(width / height - boxes["size"][0] / boxes["size"][1]) < 0.02, boxes


def api(server, key: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{server.url}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def queued_avatar_for(server, tutor_id: int, avatar_id: str) -> None:
    """An avatar of the tutor accepted and queued, its job not started yet (as behind a busy worker):
    written into the live server's database, so the page can be looked at while it waits."""
    with sqlite3.connect(server.data_dir / "db.sqlite3") as db:
        db.execute("INSERT INTO avatars_avatar (avatar_id, tutor_id, state, progress, frames_done, frames_total, "
                   "apply_blur, source, source_file, source_name, run, created_at, updated_at) VALUES "
                   "(?, ?, 'queued', 0, 0, 0, 0, 'upload', 'none.mp4', 'new.mp4', 0, datetime('now'), datetime('now'))",
                   (avatar_id, tutor_id))
        db.execute("UPDATE tutors_tutor SET pending_avatar_id = ? WHERE id = ?", (avatar_id, tutor_id))


def test_every_staff_page_reads_right_at_1280_and_800_px(page, server, face_video, no_face_video, browser):  # noqa: F811
    key = server.api_key()
    # A tutor whose avatar is ready, one whose video is refused while processing, one without a
    # video, and an avatar made through the API for no tutor.
    page.goto(f"{server.url}/staff/tutors/new")
    new_tutor(page, "Ada Lovelace", face_video[0])
    page.wait_for_function("document.getElementById('state').textContent === 'ready'", timeout=60_000)
    ready_url = page.url
    ready_id = int(ready_url.rstrip("/").rsplit("/", 1)[-1])
    look_at(page, "tutor-ready")

    page.goto(f"{server.url}/staff/tutors/new")
    look_at(page, "tutor-new")
    new_tutor(page, "Blaise Pascal", no_face_video)
    page.wait_for_function("document.getElementById('state').textContent === 'failed'", timeout=60_000)
    # A failure, not a bar stopped at 98%; another video offered, not a reprocess that would repeat it.
    assert not page.is_visible("#progress") and not page.is_visible("#progress-bar")
    assert page.is_visible("#failure") and page.inner_text("#error-code") == "no_face"
    assert page.is_visible("#try-another") and not page.is_visible("#reprocess")
    assert not page.is_visible("#start-session")  # no avatar to show a session with
    assert "live" not in page.inner_text("#avatar").split()
    look_at(page, "tutor-failed")
    page.reload()  # as rendered by the server, not only as the socket left it
    assert not page.is_visible("#progress") and page.is_visible("#try-another") and not page.is_visible("#reprocess")

    api(server, key, "POST", "/v1/tutors", {"name": "Carl Gauss", "description": "No video yet."})
    server.upload_ready_avatar(key, face_video[0], "api_only_avatar")

    page.goto(f"{server.url}/staff/")
    states = page.eval_on_selector_all("[data-testid=tutor-state]", "cells => cells.map(cell => cell.innerText.trim())")
    assert states == ["no video", "failed no_face", "ready"], states
    assert all(text.strip() for text in states)
    look_at(page, "tutors")
    page.goto(f"{server.url}/staff/tutors/{ready_id}/edit")
    look_at(page, "tutor-edit")

    page.goto(f"{server.url}/staff/avatars/")
    assert page.is_visible("tr[data-avatar-id=api_only_avatar]")
    assert "no tutor (API)" in page.inner_text("tr[data-avatar-id=api_only_avatar]")
    look_at(page, "avatars")

    # Sessions: one streaming, one waiting for its avatar, one ended by staff.
    page.goto(ready_url)
    page.click("#start-session button")
    page.wait_for_url(re.compile(r".*/staff/sessions/[0-9a-f-]{36}/$"))
    page.wait_for_function("Number(document.getElementById('stream').dataset.frames || 0) >= 10", timeout=20_000)
    assert page.inner_text("#session-state") == "active" and not page.is_visible("#screen-note")
    picture_fits_its_card(page)
    look_at(page, "session-active")
    active_url = page.url

    waiting_tutor = api(server, key, "POST", "/v1/tutors", {"name": "Emmy Noether"})["id"]
    queued_avatar_for(server, waiting_tutor, "avatar_waiting")
    waiting = api(server, key, "POST", "/v1/sessions", {"tutor_id": waiting_tutor, "student_id": 5})
    assert waiting["state"] == "waiting"
    page.goto(f"{server.url}/staff/sessions/{waiting['session_id']}/")
    page.wait_for_function("document.getElementById('stream-info').textContent.startsWith('waiting for avatar')",
                           timeout=20_000)
    state = page.locator("#session-state")
    assert state.inner_text() == "waiting" and "state-waiting" in state.get_attribute("class")
    colour = state.evaluate("element => getComputedStyle(element).backgroundColor")
    assert colour != page.evaluate("getComputedStyle(document.createElement('div')).backgroundColor")
    assert colour != "rgb(212, 244, 221)"  # not the green of "ready"/"active"
    assert page.is_visible("#screen-note") and "Waiting for the avatar" in page.inner_text("#screen-note")
    picture_fits_its_card(page)
    look_at(page, "session-waiting")

    page.goto(f"{server.url}/staff/sessions/")
    page.click(f"tr:has(a[href='/staff/sessions/{waiting['session_id']}/']) [data-testid=end-session]")
    page.wait_for_url(f"{server.url}/staff/sessions/")
    row = page.inner_text(f"tr:has(a[href='/staff/sessions/{waiting['session_id']}/'])")
    assert "ended by staff" in row and "ended_by_staff" in row
    look_at(page, "sessions")
    page.goto(f"{server.url}/staff/sessions/{waiting['session_id']}/")
    assert "ended by staff" in page.inner_text("#stream-info")
    look_at(page, "session-ended")
    page.goto(active_url)

    page.goto(f"{server.url}/docs/api.md")
    assert page.is_visible("main.contract table") and page.is_visible("text=The Markdown file")
    look_at(page, "api-contract")
    page.goto(f"{server.url}/")
    look_at(page, "home")

    logged_out = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
    login = logged_out.new_page()
    login.goto(f"{server.url}/admin/login/?next=/staff/")
    assert "Tutor avatars" in login.inner_text("body") and "Django administration" not in login.inner_text("body")
    look_at(login, "login")
    logged_out.close()


def test_start_a_session_from_a_tutor_page_and_hear_it_at_any_width(page, server, hd_video):
    """The button on the tutor page opens a session with the staff test student on its page; a
    1280x720 avatar's picture fits its card at 1280 and at 800 px; the tutor says what is typed,
    and "queued (… s)" goes once it is said."""
    page.goto(f"{server.url}/staff/tutors/new")
    new_tutor(page, "Sophie Germain", hd_video)
    page.wait_for_function("document.getElementById('state').textContent === 'ready'", timeout=90_000)
    page.click("#start-session button")
    page.wait_for_url(re.compile(r".*/staff/sessions/[0-9a-f-]{36}/$"))
    assert "staff test student" in page.inner_text("main")
    page.wait_for_function("Number(document.getElementById('stream').dataset.frames || 0) >= 10", timeout=20_000)
    assert "1280x720" in page.inner_text("#stream-info")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(300)
        picture_fits_its_card(page)
    look_at(page, "session-720p")
    page.fill("#say-text", "Hello! Let us look at fractions together.")
    page.click("#say")
    page.wait_for_function("document.getElementById('speech-state').textContent === 'speaking'", timeout=10_000)
    # Said now: no longer "queued (… s)" (the 202 may arrive a moment after the stream's event).
    page.wait_for_function("document.getElementById('say-result').dataset.utterance", timeout=5_000)
    page.wait_for_timeout(500)
    assert not page.inner_text("#say-result").startswith("queued")
    page.screenshot(path=str(ARTIFACTS / "pages-session-720p-speaking-1280.png"), full_page=True)
    session_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    session = api(server, server.api_key(), "GET", f"/v1/sessions/{session_id}")
    assert session["student_id"] == 0 and session["state"] == "active"
