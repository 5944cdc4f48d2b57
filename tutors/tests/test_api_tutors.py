"""/v1/tutors through the real URLconf, and replacing a tutor's video without downtime."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from avatars import jobs
from avatars.models import Avatar, AvatarState
from conftest import files_under
from sessions_app.models import SessionState, TutoringSession
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)

TUTOR_FIELDS = {"id", "tutor_id", "name", "description", "avatar_id", "avatar", "pending_avatar", "created_at",
                "updated_at"}


def video_file(path: Path) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes(), "video/mp4")


def create(client, name: str = "Ada", video: Path | None = None, **fields):
    data = {"name": name, **fields}
    if video is None:
        return client.post("/v1/tutors", data, format="json")
    return client.post("/v1/tutors", {**data, "avatar_video": video_file(video)}, format="multipart")


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == "error" and body["code"] == code and body["message"], body
    return body


def ready_tutor(client, video: Path, name: str = "Ada") -> dict:
    response = create(client, name, video)
    assert response.status_code == 201, response.content
    assert jobs.backend().wait_idle(60)
    body = client.get(f"/v1/tutors/{response.json()['id']}").json()
    assert body["avatar_id"] == f"avatar_tutor_{body['id']}" and body["avatar"]["state"] == "ready", body
    return body


# --- create, read, list --------------------------------------------------------------------------


def test_create_a_tutor_as_json_then_read_list_change_and_delete_it(client_with_key):
    response = create(client_with_key, "Ada Lovelace", description="Maths")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == TUTOR_FIELDS
    assert body["name"] == "Ada Lovelace" and body["description"] == "Maths" and body["id"] == body["tutor_id"]
    assert body["avatar_id"] is None and body["avatar"] is None and body["pending_avatar"] is None
    tutor_id = body["id"]
    assert client_with_key.get(f"/v1/tutors/{tutor_id}").json() == body

    changed = client_with_key.patch(f"/v1/tutors/{tutor_id}", {"description": "Maths and poetry"}, format="json")
    assert changed.status_code == 200 and changed.json()["description"] == "Maths and poetry"
    assert changed.json()["name"] == "Ada Lovelace"

    deleted = client_with_key.delete(f"/v1/tutors/{tutor_id}")
    assert deleted.status_code == 200 and deleted.json()["status"] == "success"
    assert_error(client_with_key.get(f"/v1/tutors/{tutor_id}"), 404, "not_found")


def test_list_searches_by_name_and_pages(client_with_key):
    for name in ("Ada", "Alan", "Grace", "Adele"):
        assert create(client_with_key, name).status_code == 201
    everyone = client_with_key.get("/v1/tutors").json()
    assert everyone["total"] == 4 and [t["name"] for t in everyone["tutors"]] == ["Adele", "Grace", "Alan", "Ada"]
    found = client_with_key.get("/v1/tutors?search=ad").json()
    assert found["total"] == 2 and {t["name"] for t in found["tutors"]} == {"Ada", "Adele"}
    page = client_with_key.get("/v1/tutors?limit=2&offset=1").json()
    assert page["total"] == 4 and [t["name"] for t in page["tutors"]] == ["Grace", "Alan"]
    assert_error(client_with_key.get("/v1/tutors?limit=0"), 400, "invalid_request")
    assert_error(client_with_key.get("/v1/tutors?offset=-1"), 400, "invalid_request")


@pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": ["a"]}])
def test_a_tutor_needs_a_name(client_with_key, payload):
    assert_error(client_with_key.post("/v1/tutors", payload, format="json"), 400, "invalid_request")
    assert Tutor.objects.count() == 0


def test_unknown_tutor_is_404_everywhere(client_with_key):
    assert_error(client_with_key.get("/v1/tutors/999"), 404, "not_found")
    assert_error(client_with_key.patch("/v1/tutors/999", {"name": "x"}, format="json"), 404, "not_found")
    assert_error(client_with_key.delete("/v1/tutors/999"), 404, "not_found")


def test_tutors_need_a_key(client):
    assert_error(client.get("/v1/tutors"), 401, "not_authenticated")
    assert_error(client.post("/v1/tutors", {"name": "x"}, content_type="application/json"), 401, "not_authenticated")


# --- the seed's flow in one call -------------------------------------------------------------------


def test_create_with_a_video_makes_avatar_tutor_id_and_switches_to_it_when_ready(client_with_key, face_video):
    response = create(client_with_key, "Ada", face_video[0])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["avatar_id"] is None  # not ready yet: sessions wait for it
    assert body["pending_avatar"]["avatar_id"] == f"avatar_tutor_{body['id']}"
    assert body["pending_avatar"]["state"] in ("queued", "processing")
    assert jobs.backend().wait_idle(60)
    ready = client_with_key.get(f"/v1/tutors/{body['id']}").json()
    assert ready["avatar_id"] == f"avatar_tutor_{body['id']}" and ready["pending_avatar"] is None
    assert ready["avatar"]["state"] == "ready" and ready["avatar"]["size_bytes"] > 100_000


@pytest.mark.parametrize("fixture,status,code", [("not_a_video", 415, "unsupported_media"),
                                                 ("short_video", 422, "invalid_video")])
def test_a_refused_video_refuses_the_whole_request_and_leaves_no_tutor(client_with_key, isolated_storage, request,
                                                                         fixture, status, code):
    assert_error(create(client_with_key, "Ada", request.getfixturevalue(fixture)), status, code)
    assert Tutor.objects.count() == 0 and Avatar.objects.count() == 0
    assert files_under(isolated_storage / "media") == []


# --- replacing the video ---------------------------------------------------------------------------


def test_a_replacement_keeps_the_tutor_and_its_sessions_on_the_old_avatar_until_the_new_one_is_ready(
        client_with_key, face_video, isolated_storage, gate_jobs):
    gate_jobs.set()
    tutor = ready_tutor(client_with_key, face_video[0])
    old = tutor["avatar_id"]
    session = client_with_key.post("/v1/sessions", {"tutor_id": tutor["id"], "student_id": 7}, format="json").json()
    assert session["avatar_id"] == old and session["state"] == "active"
    gate_jobs.clear()

    response = client_with_key.patch(f"/v1/tutors/{tutor['id']}", {"avatar_video": video_file(face_video[0])},
                                     format="multipart")
    assert response.status_code == 200, response.content
    pending = response.json()
    new = pending["pending_avatar"]["avatar_id"]
    assert new == f"avatar_tutor_{tutor['id']}_2"
    # While the new one is prepared, nothing changes for the tutor's users.
    assert pending["avatar_id"] == old and pending["avatar"]["state"] == "ready"
    another = client_with_key.post("/v1/sessions", {"tutor_id": tutor["id"], "student_id": 8}, format="json")
    assert another.status_code == 201 and another.json()["avatar_id"] == old
    assert client_with_key.get(f"/v1/sessions/{session['session_id']}").json()["state"] == "active"

    gate_jobs.set()
    assert jobs.backend().wait_idle(60)
    switched = client_with_key.get(f"/v1/tutors/{tutor['id']}").json()
    assert switched["avatar_id"] == new and switched["pending_avatar"] is None
    # The sessions moved with the tutor and kept running; the replaced avatar is gone (the default).
    for session_id in (session["session_id"], another.json()["session_id"]):
        moved = client_with_key.get(f"/v1/sessions/{session_id}").json()
        assert moved["state"] == "active" and moved["avatar_id"] == new
    assert not Avatar.objects.filter(avatar_id=old).exists()
    assert not (isolated_storage / "avatars" / old).exists()


def test_the_replaced_avatar_can_be_kept(client_with_key, face_video, settings):
    settings.TUTOR_KEEP_REPLACED_AVATARS = True
    tutor = ready_tutor(client_with_key, face_video[0])
    client_with_key.patch(f"/v1/tutors/{tutor['id']}", {"avatar_video": video_file(face_video[0])}, format="multipart")
    assert jobs.backend().wait_idle(60)
    assert client_with_key.get(f"/v1/tutors/{tutor['id']}").json()["avatar_id"] == f"avatar_tutor_{tutor['id']}_2"
    assert Avatar.objects.get(avatar_id=tutor["avatar_id"]).state == AvatarState.READY


def test_a_failed_replacement_leaves_the_old_avatar_in_place_and_says_why(client_with_key, face_video, no_face_video):
    tutor = ready_tutor(client_with_key, face_video[0])
    client_with_key.patch(f"/v1/tutors/{tutor['id']}", {"avatar_video": video_file(no_face_video)}, format="multipart")
    assert jobs.backend().wait_idle(60)
    body = client_with_key.get(f"/v1/tutors/{tutor['id']}").json()
    assert body["avatar_id"] == tutor["avatar_id"] and body["avatar"]["state"] == "ready"
    assert body["pending_avatar"]["state"] == "failed" and body["pending_avatar"]["error"]["code"] == "no_face"
    # The next video takes the failed one's place.
    client_with_key.patch(f"/v1/tutors/{tutor['id']}", {"avatar_video": video_file(face_video[0])}, format="multipart")
    assert jobs.backend().wait_idle(60)
    assert not Avatar.objects.filter(avatar_id=body["pending_avatar"]["avatar_id"]).exists()
    assert client_with_key.get(f"/v1/tutors/{tutor['id']}").json()["avatar"]["state"] == "ready"


def test_a_refused_replacement_video_changes_nothing(client_with_key, face_video, not_a_video):
    tutor = ready_tutor(client_with_key, face_video[0])
    response = client_with_key.patch(f"/v1/tutors/{tutor['id']}", {"name": "Renamed", "avatar_video": video_file(not_a_video)},
                                     format="multipart")
    assert_error(response, 415, "unsupported_media")
    assert client_with_key.get(f"/v1/tutors/{tutor['id']}").json() == tutor


# --- deleting --------------------------------------------------------------------------------------


def test_deleting_a_tutor_shown_in_a_session_is_409_unless_forced(client_with_key, face_video, isolated_storage):
    tutor = ready_tutor(client_with_key, face_video[0])
    session = client_with_key.post("/v1/sessions", {"tutor_id": tutor["id"], "student_id": 1}, format="json").json()
    body = assert_error(client_with_key.delete(f"/v1/tutors/{tutor['id']}"), 409, "avatar_in_use")
    assert body["details"]["sessions"] == [session["session_id"]]
    assert Tutor.objects.filter(pk=tutor["id"]).exists()
    assert client_with_key.delete(f"/v1/tutors/{tutor['id']}?force=true").status_code == 200
    assert not Tutor.objects.filter(pk=tutor["id"]).exists() and Avatar.objects.count() == 0
    assert files_under(isolated_storage / "avatars") == []
    assert not TutoringSession.objects.filter(state=SessionState.ACTIVE).exists()


def test_deleting_a_tutor_mid_job_stops_the_job_and_keeps_nothing(client_with_key, face_video, isolated_storage,
                                                                   gate_jobs):
    response = create(client_with_key, "Ada", face_video[0])
    started = time.monotonic()
    assert client_with_key.delete(f"/v1/tutors/{response.json()['id']}").status_code == 200
    assert time.monotonic() - started < 2
    gate_jobs.set()
    assert jobs.backend().wait_idle(30)
    assert Tutor.objects.count() == 0 and Avatar.objects.count() == 0
    assert files_under(isolated_storage / "media") == [] and files_under(isolated_storage / "avatars") == []


def test_updated_at_moves_with_a_new_name_a_new_video_and_the_switch(client_with_key, face_video, gate_jobs):
    gate_jobs.set()
    tutor = ready_tutor(client_with_key, face_video[0])
    stamps = [tutor["updated_at"]]

    def changed_since_last() -> dict:
        time.sleep(0.01)
        return client_with_key.get(f"/v1/tutors/{tutor['id']}").json()

    renamed = client_with_key.patch(f"/v1/tutors/{tutor['id']}", {"name": "Ada L."}, format="json").json()
    assert renamed["updated_at"] > stamps[-1]
    stamps.append(renamed["updated_at"])
    gate_jobs.clear()  # hold the new video's job: the tutor names it pending, then switches
    time.sleep(0.01)
    assert client_with_key.patch(f"/v1/tutors/{tutor['id']}", {"avatar_video": video_file(face_video[0])},
                                 format="multipart").status_code == 200
    pending = changed_since_last()
    assert pending["pending_avatar"] is not None and pending["updated_at"] > stamps[-1]
    stamps.append(pending["updated_at"])
    time.sleep(0.01)
    gate_jobs.set()
    assert jobs.backend().wait_idle(60)
    switched = changed_since_last()
    assert switched["avatar_id"].endswith("_2") and switched["pending_avatar"] is None
    assert switched["updated_at"] > stamps[-1]
