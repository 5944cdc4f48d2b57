"""The staff pages as a new staff member reads them: what each page says, through the real
URLconf (tutors/tests/test_browser.py looks at them in Chromium)."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from avatars import jobs
from avatars.models import Avatar
from avatars.pipeline.video import ACCEPTED_FORMATS
from sessions_app import services as session_services
from sessions_app.models import TutoringSession
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("staff", "staff@example.com", "pw"))
    return client


def upload(path) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes(), "video/mp4")


def cell(page: str, testid: str) -> list[str]:
    """The text of each table cell marked `data-testid`, tags dropped."""
    cells = re.findall(rf'<td data-testid="{testid}">(.*?)</td>', page, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", text).split()) for text in cells]


def failed_tutor(name: str, code: str = "no_face") -> Tutor:
    tutor = Tutor.objects.create(name=name)
    Avatar.objects.create(avatar_id=f"avatar_tutor_{tutor.pk}", tutor=tutor, source="upload", source_file="x.mp4",
                          state="failed", stage=None, progress=98.0, frames_done=49, frames_total=50,
                          error_code=code, error_message="A face was found in 0% of the frames.")
    Tutor.objects.filter(pk=tutor.pk).update(pending_avatar_id=f"avatar_tutor_{tutor.pk}")
    return tutor


def test_the_tutor_list_says_each_avatars_state(staff_client, face_video):
    failed_tutor("Failing")
    Tutor.objects.create(name="Without video")
    staff_client.post("/staff/tutors/new", {"name": "Ready", "video": upload(face_video[0])})
    assert jobs.backend().wait_idle(60)
    states = cell(staff_client.get("/staff/").content.decode(), "tutor-state")
    # newest first: Ready, Without video, Failing
    assert states == ["ready", "no video", "failed no_face"]


def test_a_failed_avatar_shows_as_a_failure_and_offers_another_video(staff_client):
    tutor = failed_tutor("Failing")
    page = staff_client.get(f"/staff/tutors/{tutor.pk}/").content.decode()
    assert re.search(r'<div id="progress"\s+hidden>', page)  # no bar stopped at 98%
    assert re.search(r'<p id="try-another"\s*>', page) and "upload another video" in page
    assert re.search(r'<form [^>]*id="reprocess"[^>]*\shidden>', page, re.S)  # reprocessing would repeat it
    assert ">live<" not in page and "frames frames" not in page
    # A failure that another run may not repeat still offers it.
    other = failed_tutor("Disk full", code="write_failed")
    page = staff_client.get(f"/staff/tutors/{other.pk}/").content.decode()
    assert re.search(r'<p id="try-another"\s+hidden>', page)
    assert not re.search(r'<form [^>]*id="reprocess"[^>]*\shidden>', page, re.S)


def test_the_progress_text_names_the_stage_in_words_and_frames_once(staff_client):
    tutor = Tutor.objects.create(name="Busy")
    Avatar.objects.create(avatar_id="busy", tutor=tutor, source="upload", source_file="x.mp4", state="processing",
                          stage="frames", progress=40.0, frames_done=20, frames_total=50)
    Tutor.objects.filter(pk=tutor.pk).update(pending_avatar_id="busy")
    page = staff_client.get(f"/staff/tutors/{tutor.pk}/").content.decode()
    text = " ".join(re.sub(r"<[^>]+>", " ", page.split('id="progress"', 1)[1].split("</div>", 1)[0]).split())
    assert "tracking the face 40.0% 20 of 50 frames" in text
    assert text.count("frames") == 1


def test_start_a_session_from_the_tutor_page(staff_client, face_video, gate_jobs):
    staff_client.post("/staff/tutors/new", {"name": "Speaker", "video": upload(face_video[0])})
    tutor = Tutor.objects.get()
    assert 'id="start-session"' in staff_client.get(f"/staff/tutors/{tutor.pk}/").content.decode()
    response = staff_client.post(f"/staff/tutors/{tutor.pk}/session")
    session = TutoringSession.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/staff/sessions/{session.session_id}/"
    assert session.tutor_id == tutor.pk and session.student_id == 0
    page = staff_client.get(response["Location"]).content.decode()
    # the avatar is still being prepared: the session waits, and says so in a colour that is not "fine"
    assert 'class="state state-waiting" id="session-state">waiting<' in page
    assert "Waiting for the avatar to be prepared" in page and "staff test student" in page
    gate_jobs.set()
    assert jobs.backend().wait_idle(60)
    page = staff_client.get(response["Location"]).content.decode()
    assert 'class="state state-active" id="session-state">active<' in page


def test_no_session_without_an_avatar(staff_client):
    tutor = Tutor.objects.create(name="No video")
    assert 'id="start-session"' not in staff_client.get(f"/staff/tutors/{tutor.pk}/").content.decode()
    page = staff_client.post(f"/staff/tutors/{tutor.pk}/session", follow=True).content.decode()
    assert "avatar_not_ready" in page and not TutoringSession.objects.exists()


def test_end_reasons_are_said_in_words_with_their_code(staff_client, face_video):
    staff_client.post("/staff/tutors/new", {"name": "Ender", "video": upload(face_video[0])})
    assert jobs.backend().wait_idle(60)
    session = session_services.create_session(tutor_id=Tutor.objects.get().pk, student_id=3)
    staff_client.post(f"/staff/sessions/{session.session_id}/end")
    listed = cell(staff_client.get("/staff/sessions/").content.decode(), "session-state")
    assert listed == ["ended ended by staff ended_by_staff"]
    page = staff_client.get(f"/staff/sessions/{session.session_id}/").content.decode()
    assert "ended by staff" in page and "ended_by_staff" in page


def test_avatars_made_without_a_tutor_are_listed(staff_client, client_with_key, face_video):
    with open(face_video[0], "rb") as video:
        assert client_with_key.post("/v1/avatars/upload", {"avatar_id": "api_only", "video_file": video},
                                    format="multipart").status_code == 201
    failed_tutor("Failing")
    page = staff_client.get("/staff/avatars/").content.decode()
    assert 'data-avatar-id="api_only"' in page and "no tutor (API)" in page
    assert 'href="/staff/avatars/"' in staff_client.get("/staff/").content.decode()  # linked from every page
    only = staff_client.get("/staff/avatars/?tutor=none").content.decode()
    assert 'data-avatar-id="api_only"' in only and "avatar_tutor_" not in only


def test_the_upload_hint_and_the_refusal_name_the_same_formats(staff_client, not_a_video):
    page = staff_client.get("/staff/tutors/new").content.decode()
    assert f"facing the camera: {ACCEPTED_FORMATS}." in page
    refused = staff_client.post("/staff/tutors/new", {"name": "Cy", "video": upload(not_a_video)}).content.decode()
    assert f"Upload a recording of the tutor: {ACCEPTED_FORMATS}." in refused
    tutor = Tutor.objects.create(name="Hint")
    assert ACCEPTED_FORMATS in staff_client.get(f"/staff/tutors/{tutor.pk}/").content.decode()
