"""/v1/sessions through the real URLconf: every call and every error."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from avatars import jobs, services as avatar_services
from avatars.models import Avatar, AvatarSource
from sessions_app.models import TutoringSession
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == "error" and body["code"] == code and body["message"]
    return body


@pytest.fixture
def ready_tutor(face_video) -> Tutor:
    tutor = Tutor.objects.create(name="Ada")
    avatar_services.create_avatar(avatar_id=f"avatar_tutor_{tutor.pk}", local_path=face_video[0], original_name="v.mp4",
                                  source=AvatarSource.UPLOAD, tutor_id=tutor.pk)
    assert jobs.backend().wait_idle(60)
    tutor.refresh_from_db()
    assert tutor.avatar_id
    return tutor


def open_session(client, tutor, **fields):
    return client.post("/v1/sessions", {"tutor_id": tutor.pk, "student_id": 2, **fields}, format="json")


def test_create_with_null_avatar_uses_the_tutors_and_answers_201(client_with_key, ready_tutor):
    response = open_session(client_with_key, ready_tutor, avatar_id=None)
    assert response.status_code == 201
    body = response.json()
    assert body["avatar_id"] == ready_tutor.avatar_id and body["state"] == "active"
    assert body["tutor_id"] == ready_tutor.pk and body["student_id"] == 2
    assert body["stream_url"] == f"/ws/sessions/{body['session_id']}/"
    assert set(body) >= {"session_id", "tutor_id", "student_id", "avatar_id", "state", "created_at", "stream_url"}


def test_create_with_a_named_avatar(client_with_key, ready_tutor, face_video):
    response = open_session(client_with_key, ready_tutor, avatar_id=ready_tutor.avatar_id)
    assert response.status_code == 201 and response.json()["avatar_id"] == ready_tutor.avatar_id
    # Another tutor's avatar is refused; one made for no tutor may be shown by any.
    other = Tutor.objects.create(name="Bo")
    body = assert_error(open_session(client_with_key, other, avatar_id=ready_tutor.avatar_id), 400, "invalid_request")
    assert body["details"] == {"field": "avatar_id"}
    avatar_services.create_avatar(avatar_id="nobodys", local_path=face_video[0], original_name="v.mp4",
                                  source=AvatarSource.UPLOAD)
    assert jobs.backend().wait_idle(60)
    assert open_session(client_with_key, other, avatar_id="nobodys").status_code == 201


def test_create_errors(client_with_key, ready_tutor, settings):
    assert_error(client_with_key.post("/v1/sessions", {"tutor_id": 999, "student_id": 1}, format="json"), 404, "not_found")
    assert_error(open_session(client_with_key, ready_tutor, avatar_id="nobody"), 404, "not_found")
    no_avatar = Tutor.objects.create(name="Cy")
    assert_error(open_session(client_with_key, no_avatar), 409, "avatar_not_ready")
    Avatar.objects.create(avatar_id="will_not_be_ready", source="upload", state="failed", error_code="no_face")
    body = assert_error(open_session(client_with_key, ready_tutor, avatar_id="will_not_be_ready"), 409, "avatar_not_ready")
    assert body["details"]["state"] == "failed" and body["details"]["error"]["code"] == "no_face"
    assert_error(client_with_key.post("/v1/sessions", {"student_id": 1}, format="json"), 400, "invalid_request")
    assert_error(client_with_key.post("/v1/sessions", {"tutor_id": "x", "student_id": 1}, format="json"), 400, "invalid_request")
    assert_error(open_session(client_with_key, ready_tutor, avatar_id="../x"), 400, "invalid_request")
    settings.SESSION_MAX_ACTIVE = 2
    assert open_session(client_with_key, ready_tutor).status_code == 201
    assert open_session(client_with_key, ready_tutor).status_code == 201
    assert_error(open_session(client_with_key, ready_tutor), 429, "session_limit")
    assert TutoringSession.objects.count() == 2


def test_get_list_and_end(client_with_key, ready_tutor):
    first = open_session(client_with_key, ready_tutor).json()["session_id"]
    second = client_with_key.post("/v1/sessions", {"tutor_id": ready_tutor.pk, "student_id": 7}, format="json").json()["session_id"]
    assert client_with_key.get(f"/v1/sessions/{first}").json()["state"] == "active"
    assert client_with_key.get("/v1/sessions").json() == {"total": 2, "sessions": [second, first]}
    assert client_with_key.get("/v1/sessions?student_id=7").json() == {"total": 1, "sessions": [second]}
    assert client_with_key.get(f"/v1/sessions?tutor_id={ready_tutor.pk}&state=active&limit=1").json() == {
        "total": 2, "sessions": [second]}
    ended = client_with_key.post(f"/v1/sessions/{first}/end").json()
    assert ended["state"] == "ended" and ended["ended_at"]
    assert client_with_key.post(f"/v1/sessions/{first}/end").json()["ended_at"] == ended["ended_at"]
    assert client_with_key.get("/v1/sessions?state=ended").json() == {"total": 1, "sessions": [first]}


def test_unknown_session_and_bad_filters(client_with_key):
    assert_error(client_with_key.get("/v1/sessions/00000000-0000-0000-0000-000000000000"), 404, "not_found")
    assert_error(client_with_key.get("/v1/sessions/not-a-uuid"), 404, "not_found")
    assert_error(client_with_key.post("/v1/sessions/not-a-uuid/end"), 404, "not_found")
    assert_error(client_with_key.get("/v1/sessions?state=paused"), 400, "invalid_request")


def test_sessions_need_a_key():
    from rest_framework.test import APIClient

    assert_error(APIClient().get("/v1/sessions"), 401, "not_authenticated")
    assert_error(APIClient().post("/v1/sessions", {}, format="json"), 401, "not_authenticated")


def test_idle_sessions_end_by_themselves(client_with_key, ready_tutor, settings):
    session_id = open_session(client_with_key, ready_tutor).json()["session_id"]
    TutoringSession.objects.update(last_activity_at=timezone.now() - timedelta(seconds=settings.SESSION_IDLE_TIMEOUT_S + 1))
    body = client_with_key.get(f"/v1/sessions/{session_id}").json()
    assert body["state"] == "ended" and body["end_reason"] == "idle"


def test_deleting_an_avatar_in_use_is_409_unless_forced(client_with_key, ready_tutor, isolated_storage):
    session_id = open_session(client_with_key, ready_tutor).json()["session_id"]
    body = assert_error(client_with_key.delete(f"/v1/avatars/{ready_tutor.avatar_id}"), 409, "avatar_in_use")
    assert body["details"]["sessions"] == [session_id]
    assert Avatar.objects.filter(avatar_id=ready_tutor.avatar_id).exists()
    assert_error(client_with_key.delete(f"/v1/avatars/{ready_tutor.avatar_id}?force=maybe"), 400, "invalid_request")
    assert client_with_key.delete(f"/v1/avatars/{ready_tutor.avatar_id}?force=true").status_code == 200
    session = client_with_key.get(f"/v1/sessions/{session_id}").json()
    assert session["state"] == "ended" and session["end_reason"] == "avatar_deleted"
    assert not (isolated_storage / "avatars" / ready_tutor.avatar_id).exists()


# --- sessions that wait for their avatar (the seed's client opens one right after its upload) -------


def test_a_session_for_an_avatar_still_being_prepared_waits_then_becomes_active(client_with_key, face_video, gate_jobs):
    runner, go = jobs.backend(), gate_jobs
    tutor = Tutor.objects.create(name="Ada")
    avatar_services.create_avatar(avatar_id="coming", local_path=face_video[0], original_name="v.mp4",
                                  source=AvatarSource.UPLOAD, tutor_id=tutor.pk)
    response = open_session(client_with_key, tutor, avatar_id="coming")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "waiting" and body["avatar_state"] in ("queued", "processing")
    # The tutor's own pending avatar is used when none is named.
    assert open_session(client_with_key, tutor).json()["avatar_id"] == "coming"
    go.set()
    assert runner.wait_idle(60)
    after = client_with_key.get(f"/v1/sessions/{body['session_id']}").json()
    assert after["state"] == "active" and after["avatar_state"] == "ready"
    assert client_with_key.get(f"/v1/sessions?state=active").json()["total"] == 2


def test_a_waiting_session_ends_with_a_reason_when_its_avatar_fails(client_with_key, no_face_video, gate_jobs):
    runner, go = jobs.backend(), gate_jobs
    tutor = Tutor.objects.create(name="Ada")
    avatar_services.create_avatar(avatar_id="faceless", local_path=no_face_video, original_name="v.mp4",
                                  source=AvatarSource.UPLOAD, tutor_id=tutor.pk)
    session_id = open_session(client_with_key, tutor).json()["session_id"]
    go.set()
    assert runner.wait_idle(60)
    body = client_with_key.get(f"/v1/sessions/{session_id}").json()
    assert body["state"] == "ended" and body["end_reason"] == "avatar_failed" and body["avatar_state"] == "failed"
