"""Staff pages and the Tutor admin, through the real URLconf (the browser test drives them live)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from avatars import jobs
from avatars.models import Avatar
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(django_user_model) -> Client:
    user = django_user_model.objects.create_superuser("staff", "staff@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def video_upload(path) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes(), "video/mp4")


def test_pages_need_a_staff_login(django_user_model):
    assert Client().get("/staff/").status_code == 302
    plain = Client()
    plain.force_login(django_user_model.objects.create_user("plain", password="pw"))
    assert plain.get("/staff/tutors/new").status_code == 302


def test_new_tutor_with_a_video_creates_avatar_tutor_id_and_shows_the_tutor_page(staff_client, face_video):
    response = staff_client.post("/staff/tutors/new", {"name": "Ada", "description": "Maths", "apply_blur": "on",
                                                       "video": video_upload(face_video[0])})
    tutor = Tutor.objects.get(name="Ada")
    assert response.status_code == 302 and response["Location"] == f"/staff/tutors/{tutor.pk}/"
    avatar = Avatar.objects.get(avatar_id=f"avatar_tutor_{tutor.pk}")
    assert avatar.apply_blur and avatar.tutor_id == tutor.pk
    assert jobs.backend().wait_idle(60)
    tutor.refresh_from_db()
    assert tutor.avatar_id == avatar.avatar_id
    page = staff_client.get(f"/staff/tutors/{tutor.pk}/").content.decode()
    assert "avatar_tutor_" in page and "/preview" in page and "ready" in page
    assert "Ada" in staff_client.get("/staff/").content.decode()


def test_the_upload_script_gets_the_next_address_as_json(staff_client):
    response = staff_client.post("/staff/tutors/new", {"name": "Bo"}, HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert response.json() == {"redirect": f"/staff/tutors/{Tutor.objects.get().pk}/"}


def test_a_non_video_re_shows_the_form_with_the_error_and_what_was_typed_and_makes_no_tutor(staff_client, not_a_video):
    response = staff_client.post("/staff/tutors/new", {"name": "Cy", "description": "Chemistry",
                                                       "video": video_upload(not_a_video)})
    page = response.content.decode()
    assert response.status_code == 400
    assert "unsupported_media" in page and "not a video" in page
    assert 'value="Cy"' in page and "Chemistry" in page
    # Trying again does not leave duplicates behind.
    assert not Tutor.objects.exists() and not Avatar.objects.exists()


def test_missing_name_shows_the_form_again(staff_client):
    response = staff_client.post("/staff/tutors/new", {"description": "no name"})
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    assert not Tutor.objects.exists()


def test_another_video_replaces_the_avatar_and_a_refused_one_keeps_it(staff_client, face_video, not_a_video):
    staff_client.post("/staff/tutors/new", {"name": "Di", "video": video_upload(face_video[0])})
    tutor = Tutor.objects.get()
    assert jobs.backend().wait_idle(60)
    staff_client.post(f"/staff/tutors/{tutor.pk}/video", {"video": video_upload(not_a_video)})
    assert Avatar.objects.get().state == "ready"
    staff_client.post(f"/staff/tutors/{tutor.pk}/video", {"video": video_upload(face_video[0]), "apply_blur": "on"})
    assert jobs.backend().wait_idle(60)
    avatar = Avatar.objects.get()
    assert avatar.state == "ready" and avatar.apply_blur


def test_reprocess_from_the_tutor_page(staff_client, face_video):
    staff_client.post("/staff/tutors/new", {"name": "Ed", "video": video_upload(face_video[0])})
    assert jobs.backend().wait_idle(60)
    tutor = Tutor.objects.get()
    assert staff_client.post(f"/staff/tutors/{tutor.pk}/reprocess").status_code == 302
    assert jobs.backend().wait_idle(60)
    assert Avatar.objects.get().run == 2


def test_admin_tutor_form_takes_the_video(staff_client, face_video):
    response = staff_client.post("/admin/tutors/tutor/add/", {"name": "Fay", "description": "",
                                                              "video": video_upload(face_video[0])})
    assert response.status_code == 302
    tutor = Tutor.objects.get(name="Fay")
    assert Avatar.objects.filter(avatar_id=f"avatar_tutor_{tutor.pk}").exists()
    assert jobs.backend().wait_idle(60)
    avatars_page = staff_client.get("/admin/avatars/avatar/").content.decode()
    assert f"avatar_tutor_{tutor.pk}" in avatars_page
    avatar = Avatar.objects.get()
    assert avatar.state == "ready", (avatar.state, avatar.error_code, avatar.error_message)
    detail = staff_client.get(f"/admin/avatars/avatar/{avatar.pk}/change/").content.decode()
    assert "/preview" in detail


def test_admin_delete_goes_through_the_service(staff_client, face_video, isolated_storage):
    staff_client.post("/staff/tutors/new", {"name": "Gus", "video": video_upload(face_video[0])})
    assert jobs.backend().wait_idle(60)
    avatar = Avatar.objects.get()
    staff_client.post("/admin/avatars/avatar/", {"action": "delete_selected", "_selected_action": [avatar.pk], "post": "yes"})
    assert not Avatar.objects.exists()
    assert not (isolated_storage / "avatars" / avatar.avatar_id).exists()
    assert Tutor.objects.get().avatar_id is None


def test_the_tutor_list_searches_and_pages(staff_client):
    for number in range(30):
        Tutor.objects.create(name=f"Tutor {number:02d}", description="physics" if number % 10 == 0 else "maths")
    first = staff_client.get("/staff/").content.decode()
    assert "Tutor 29" in first and "Tutor 04" not in first and "Page 1 of 2 (30)" in first
    second = staff_client.get("/staff/?page=2").content.decode()
    assert "Tutor 04" in second and "Tutor 29" not in second
    found = staff_client.get("/staff/?q=physics").content.decode()
    assert "3 tutors" in found and "Tutor 10" in found and "Tutor 11" not in found
    assert staff_client.get("/staff/?page=abc").status_code == 200  # a bad page number shows the first


def test_edit_a_tutor(staff_client):
    tutor = Tutor.objects.create(name="Ada", description="Maths")
    assert staff_client.get(f"/staff/tutors/{tutor.pk}/edit").status_code == 200
    response = staff_client.post(f"/staff/tutors/{tutor.pk}/edit", {"name": "Ada Lovelace", "description": "Poetry"})
    assert response.status_code == 302
    tutor.refresh_from_db()
    assert (tutor.name, tutor.description) == ("Ada Lovelace", "Poetry")
    refused = staff_client.post(f"/staff/tutors/{tutor.pk}/edit", {"name": "", "description": "x"})
    assert refused.status_code == 400 and "This field is required" in refused.content.decode()


def test_delete_a_tutor_shown_in_a_session_needs_the_force_box(staff_client, face_video):
    from sessions_app import services as session_services
    from sessions_app.models import SessionState, TutoringSession

    staff_client.post("/staff/tutors/new", {"name": "Di", "video": video_upload(face_video[0])})
    tutor = Tutor.objects.get()
    assert jobs.backend().wait_idle(60)
    session = session_services.create_session(tutor_id=tutor.pk, student_id=1)
    page = staff_client.post(f"/staff/tutors/{tutor.pk}/delete", follow=True).content.decode()
    assert "avatar_in_use" in page and 'name="force"' in page
    assert Tutor.objects.filter(pk=tutor.pk).exists()
    response = staff_client.post(f"/staff/tutors/{tutor.pk}/delete", {"force": "true"})
    assert response.status_code == 302 and response["Location"] == "/staff/"
    assert not Tutor.objects.exists() and not Avatar.objects.exists()
    assert TutoringSession.objects.filter(pk=session.pk, state=SessionState.ENDED).exists() is False  # gone with the tutor


def test_sessions_page_pages_and_ends_a_session(staff_client, face_video):
    from sessions_app import services as session_services
    from sessions_app.models import SessionState, TutoringSession

    staff_client.post("/staff/tutors/new", {"name": "Di", "video": video_upload(face_video[0])})
    tutor = Tutor.objects.get()
    assert jobs.backend().wait_idle(60)
    sessions = [session_services.create_session(tutor_id=tutor.pk, student_id=n) for n in range(3)]
    page = staff_client.get("/staff/sessions/").content.decode()
    assert page.count('data-testid="end-session"') == 3
    response = staff_client.post(f"/staff/sessions/{sessions[0].session_id}/end")
    assert response.status_code == 302
    ended = TutoringSession.objects.get(pk=sessions[0].pk)
    assert ended.state == SessionState.ENDED and ended.end_reason == "ended_by_staff"
    assert staff_client.get("/staff/sessions/?page=9").status_code == 200


def test_logout_and_the_home_page(staff_client):
    home = Client().get("/").content.decode()
    assert 'href="/staff/"' in home and 'href="/api/docs/"' in home and 'href="/docs/api.md"' in home
    contract = Client().get("/docs/api.md")
    assert contract.status_code == 200 and contract["Content-Type"].startswith("text/html")
    assert "/v1/tutors" in contract.content.decode()
    assert staff_client.post("/staff/logout").status_code == 302
    assert staff_client.get("/staff/").status_code == 302  # logged out: back to the login


def test_upload_forms_show_the_passage_to_read_and_the_tutor_page_shows_the_mouth_coverage(staff_client, face_video):
    from avatars.pipeline import mouth_bank

    new_form = staff_client.get("/staff/tutors/new").content.decode()
    assert mouth_bank.PASSAGE in new_form and "read this aloud" in new_form
    staff_client.post("/staff/tutors/new", {"name": "Quiet", "video": video_upload(face_video[0])})
    assert jobs.backend().wait_idle(60)
    tutor = Tutor.objects.get(name="Quiet")
    page = staff_client.get(f"/staff/tutors/{tutor.pk}/").content.decode()
    # The generated face (a smiling photo) never closes its lips: judged insufficient, with advice
    # a staff member can act on.
    coverage = Avatar.objects.get(avatar_id=tutor.avatar_id).mouth_coverage
    assert coverage["verdict"] == "insufficient" and "closed lips" in coverage["advice"]
    assert 'id="mouth-coverage"' in page and "insufficient" in page and "Record them reading the passage" in page
    assert "a drawn mouth (the fallback)" in page
    assert page.count(mouth_bank.PASSAGE) == 1  # the upload card shows it too
    assert "closed lips (m, b, p)" in page
