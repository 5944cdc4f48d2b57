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
