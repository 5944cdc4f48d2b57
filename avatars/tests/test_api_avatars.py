"""Every /v1/avatars endpoint through the real URLconf: success, and each error code it can return."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from avatars import jobs
from avatars.models import Avatar, AvatarState
from conftest import files_under
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)

RESOURCE_FIELDS = {
    "avatar_id", "tutor_id", "state", "stage", "progress", "apply_blur", "source", "avatar_path", "error",
    "video", "faces", "preview_url", "events_url", "created_at", "updated_at", "ready_at",
}


# Files refused at once, by fixture name, with the answer they get.
BAD_VIDEOS = [
    ("not_a_video", 415, "unsupported_media"),
    ("picture_named_mp4", 415, "unsupported_media"),
    ("short_video", 422, "invalid_video"),
    ("low_res_video", 422, "invalid_video"),
]


def upload(client: APIClient, video: Path, avatar_id: str = "avatar_tutor_1", query: str = "", **fields):
    data = {"avatar_id": avatar_id, "video_file": SimpleUploadedFile(video.name, video.read_bytes(), "video/mp4"), **fields}
    return client.post(f"/v1/avatars/upload{query}", data, format="multipart")


def import_video(isolated_storage: Path, video: Path, name: str = "tutor.mp4") -> Path:
    target = isolated_storage / "import" / name
    shutil.copyfile(video, target)
    return target


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == "error" and body["code"] == code, body
    assert body["message"] and isinstance(body["details"], dict)
    return body


def assert_nothing_kept(isolated_storage: Path) -> None:
    assert Avatar.objects.count() == 0
    assert files_under(isolated_storage / "media") == []
    assert files_under(isolated_storage / "avatars") == []
    assert files_under(isolated_storage / "work") == []


# --- POST /v1/avatars (video_path) ------------------------------------------------------------


def test_create_from_path_answers_201_with_the_resource_and_seed_fields(client_with_key, isolated_storage, face_video):
    path = import_video(isolated_storage, face_video[0])
    response = client_with_key.post(
        "/v1/avatars", {"avatar_id": "avatar_tutor_123", "video_path": str(path), "apply_blur": False}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "success" and body["mock"] is False and body["message"]
    assert RESOURCE_FIELDS <= set(body)
    assert body["avatar_id"] == "avatar_tutor_123" and body["source"] == "path"
    assert body["state"] in ("queued", "processing")
    assert body["avatar_path"] == str(isolated_storage / "avatars" / "avatar_tutor_123")
    assert body["video"] == {"width": 640, "height": 360, "fps": 25.0, "frame_count": 50, "duration_s": 2.0}


def test_create_with_wait_answers_with_the_ready_avatar(client_with_key, isolated_storage, face_video):
    path = import_video(isolated_storage, face_video[0])
    response = client_with_key.post("/v1/avatars?wait=60", {"avatar_id": "a1", "video_path": str(path)}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["state"] == "ready" and body["progress"] == 100.0 and body["ready_at"]
    assert body["message"] == "Avatar 'a1' accepted; it is ready."  # the message says the state answered
    assert body["faces"] == {"detected_ratio": 1.0, "crop_size": 256}
    prepared = Path(body["avatar_path"])
    assert len(list((prepared / "full_imgs").iterdir())) == 50
    assert (prepared / "coords.pkl").is_file() and (prepared / "avatar.json").is_file()
    # The source in the import folder is copied, never moved.
    assert path.exists()


def test_wait_on_a_video_that_fails_says_it_failed(client_with_key, no_face_video):
    with open(no_face_video, "rb") as video:
        response = client_with_key.post("/v1/avatars/upload?wait=60", {"avatar_id": "nf", "video_file": video},
                                        format="multipart")
    body = response.json()
    assert response.status_code == 201 and body["state"] == "failed"
    assert body["message"].startswith("Avatar 'nf' uploaded; it failed (no_face): ")
    with open(no_face_video, "rb") as video:
        quick = client_with_key.post("/v1/avatars/upload", {"avatar_id": "nf2", "video_file": video},
                                     format="multipart").json()
    assert quick["state"] == "queued" and quick["message"] == "Avatar 'nf2' uploaded; it is being prepared."


@pytest.mark.parametrize(
    "body, field",
    [
        ({"video_path": "/x.mp4"}, "avatar_id"),
        ({"avatar_id": "a1"}, "video_path"),
        ({"avatar_id": "../etc", "video_path": "/x.mp4"}, "avatar_id"),
        ({"avatar_id": "has space", "video_path": "/x.mp4"}, "avatar_id"),
        ({"avatar_id": "x" * 65, "video_path": "/x.mp4"}, "avatar_id"),
        ({"avatar_id": "_leading", "video_path": "/x.mp4"}, "avatar_id"),
        ({"avatar_id": "a1", "video_path": "/x.mp4", "apply_blur": "maybe"}, "apply_blur"),
        ({"avatar_id": "a1", "video_path": "/x.mp4", "tutor_id": "five"}, "tutor_id"),
    ],
)
def test_create_refuses_bad_fields_with_400(client_with_key, isolated_storage, body, field):
    body_json = assert_error(client_with_key.post("/v1/avatars", body, format="json"), 400, "invalid_request")
    assert field in body_json["message"]
    assert_nothing_kept(isolated_storage)


def test_create_refuses_malformed_json(client_with_key):
    response = client_with_key.post("/v1/avatars", "{not json", content_type="application/json")
    assert_error(response, 400, "invalid_request")


def test_video_path_outside_the_import_folders_is_refused_without_saying_whether_it_exists(
    client_with_key, isolated_storage, face_video, tmp_path
):
    outside = tmp_path / "outside.mp4"
    shutil.copyfile(face_video[0], outside)
    existing = client_with_key.post("/v1/avatars", {"avatar_id": "a1", "video_path": str(outside)}, format="json")
    missing = client_with_key.post("/v1/avatars", {"avatar_id": "a1", "video_path": str(tmp_path / "nope.mp4")}, format="json")
    assert_error(existing, 400, "invalid_request")
    assert_error(missing, 400, "invalid_request")
    assert existing.json()["message"] == missing.json()["message"]
    assert_nothing_kept(isolated_storage)


def test_video_path_escaping_through_dotdot_or_a_link_is_refused(client_with_key, isolated_storage, face_video, tmp_path):
    outside = tmp_path / "outside.mp4"
    shutil.copyfile(face_video[0], outside)
    dotdot = str(isolated_storage / "import" / ".." / "outside.mp4")
    link = isolated_storage / "import" / "link.mp4"
    os.symlink(outside, link)
    for path in (dotdot, str(link)):
        response = client_with_key.post("/v1/avatars", {"avatar_id": "a1", "video_path": path}, format="json")
        assert_error(response, 400, "invalid_request")
    assert_nothing_kept(isolated_storage)


def test_video_path_missing_inside_the_import_folder_is_404(client_with_key, isolated_storage):
    missing = isolated_storage / "import" / "missing.mp4"
    response = client_with_key.post("/v1/avatars", {"avatar_id": "a1", "video_path": str(missing)}, format="json")
    assert_error(response, 404, "not_found")


def test_video_path_naming_a_folder_is_400(client_with_key, isolated_storage):
    folder = isolated_storage / "import" / "folder.mp4"
    folder.mkdir()
    response = client_with_key.post("/v1/avatars", {"avatar_id": "a1", "video_path": str(folder)}, format="json")
    assert_error(response, 400, "invalid_request")


def test_unknown_tutor_is_404_and_keeps_nothing(client_with_key, isolated_storage, face_video):
    path = import_video(isolated_storage, face_video[0])
    response = client_with_key.post("/v1/avatars", {"avatar_id": "a1", "video_path": str(path), "tutor_id": 999}, format="json")
    assert_error(response, 404, "not_found")
    assert_nothing_kept(isolated_storage)


def test_duplicate_avatar_id_is_409_and_leaves_the_first_untouched(client_with_key, isolated_storage, face_video):
    path = import_video(isolated_storage, face_video[0])
    first = client_with_key.post("/v1/avatars?wait=60", {"avatar_id": "a1", "video_path": str(path)}, format="json")
    assert first.json()["state"] == "ready"
    files_before = files_under(isolated_storage / "avatars")
    again = client_with_key.post("/v1/avatars", {"avatar_id": "a1", "video_path": str(path)}, format="json")
    assert_error(again, 409, "avatar_exists")
    assert Avatar.objects.get().state == AvatarState.READY
    assert files_under(isolated_storage / "avatars") == files_before


@pytest.mark.parametrize("fixture, status, code", BAD_VIDEOS)
def test_create_from_path_refuses_bad_videos_at_once(client_with_key, isolated_storage, request, fixture, status, code):
    path = import_video(isolated_storage, request.getfixturevalue(fixture))
    response = client_with_key.post("/v1/avatars", {"avatar_id": "a1", "video_path": str(path)}, format="json")
    assert_error(response, status, code)
    assert_nothing_kept(isolated_storage)


def test_full_queue_answers_503_with_retry_after(client_with_key, isolated_storage, face_video, monkeypatch):
    path = import_video(isolated_storage, face_video[0])
    runner = jobs.backend()
    monkeypatch.setattr(runner, "queue_limit", 0)
    monkeypatch.setattr(runner, "workers", 0)
    response = client_with_key.post("/v1/avatars", {"avatar_id": "a1", "video_path": str(path)}, format="json")
    assert_error(response, 503, "queue_full")
    assert int(response["Retry-After"]) > 0
    assert_nothing_kept(isolated_storage)


# --- POST /v1/avatars/upload ------------------------------------------------------------------


def test_upload_answers_201_and_reaches_ready(client_with_key, isolated_storage, face_video):
    response = upload(client_with_key, face_video[0], "avatar_tutor_9", query="?wait=60", apply_blur="true")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["avatar_id"] == "avatar_tutor_9" and body["source"] == "upload" and body["apply_blur"] is True
    assert body["state"] == "ready"


@pytest.mark.parametrize("value, expected", [("true", True), ("True", True), ("1", True), ("false", False), ("False", False), ("0", False)])
def test_upload_booleans_accept_the_contract_spellings(client_with_key, face_video, value, expected, monkeypatch):
    monkeypatch.setattr(jobs.backend(), "_job", lambda avatar_id, cancel: None)  # no need to process here
    response = upload(client_with_key, face_video[0], "a1", apply_blur=value)
    assert response.status_code == 201 and response.json()["apply_blur"] is expected


def test_upload_without_a_file_is_400(client_with_key, isolated_storage):
    response = client_with_key.post("/v1/avatars/upload", {"avatar_id": "a1"}, format="multipart")
    assert "video_file" in assert_error(response, 400, "invalid_request")["message"]
    assert_nothing_kept(isolated_storage)


@pytest.mark.parametrize("fixture, status, code", BAD_VIDEOS)
def test_upload_refuses_bad_videos_at_once_and_keeps_nothing(client_with_key, isolated_storage, request, fixture, status, code):
    response = upload(client_with_key, request.getfixturevalue(fixture), "a1")
    body = assert_error(response, status, code)
    if code == "invalid_video":
        assert body["details"]["reason"] in ("too_short", "resolution_too_low")
    assert_nothing_kept(isolated_storage)


def test_empty_upload_is_refused(client_with_key, isolated_storage, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert_error(upload(client_with_key, empty, "a1"), 415, "unsupported_media")
    assert_nothing_kept(isolated_storage)


def test_upload_over_the_size_limit_is_413(client_with_key, isolated_storage, face_video, settings):
    settings.AVATAR_MAX_UPLOAD_BYTES = 10_000
    assert_error(upload(client_with_key, face_video[0], "a1"), 413, "file_too_large")
    assert_nothing_kept(isolated_storage)


def test_upload_for_an_unknown_tutor_is_404(client_with_key, isolated_storage, face_video):
    assert_error(upload(client_with_key, face_video[0], "a1", tutor_id="77"), 404, "not_found")
    assert_nothing_kept(isolated_storage)


def test_upload_with_a_taken_id_is_409(client_with_key, isolated_storage, face_video, monkeypatch):
    monkeypatch.setattr(jobs.backend(), "_job", lambda avatar_id, cancel: None)
    assert upload(client_with_key, face_video[0], "a1").status_code == 201
    assert_error(upload(client_with_key, face_video[0], "a1"), 409, "avatar_exists")
    assert Avatar.objects.count() == 1
    assert len(files_under(isolated_storage / "media")) == 1


def test_wait_must_be_a_number_of_seconds_up_to_300(client_with_key, face_video):
    assert_error(upload(client_with_key, face_video[0], "a1", query="?wait=301"), 400, "invalid_request")
    assert_error(upload(client_with_key, face_video[0], "a1", query="?wait=soon"), 400, "invalid_request")


# --- GET /v1/avatars, GET/DELETE /v1/avatars/{id} ---------------------------------------------


def make_rows(count: int, **fields) -> list[Avatar]:
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    return [
        Avatar.objects.create(avatar_id=f"av{i}", source="upload", created_at=now + timedelta(seconds=i), **fields)
        for i in range(count)
    ]


def test_list_is_newest_first_with_the_seed_shape(client_with_key):
    make_rows(3, state=AvatarState.READY)
    response = client_with_key.get("/v1/avatars")
    assert response.status_code == 200
    assert response.json() == {"total": 3, "avatars": ["av2", "av1", "av0"]}


def test_list_filters_and_pages(client_with_key):
    tutor = Tutor.objects.create(name="Ada")
    make_rows(5, state=AvatarState.READY)
    Avatar.objects.create(avatar_id="failed1", source="upload", state=AvatarState.FAILED, tutor=tutor)
    assert client_with_key.get("/v1/avatars?state=failed").json() == {"total": 1, "avatars": ["failed1"]}
    assert client_with_key.get(f"/v1/avatars?tutor_id={tutor.pk}").json() == {"total": 1, "avatars": ["failed1"]}
    page = client_with_key.get("/v1/avatars?state=ready&limit=2&offset=1").json()
    assert page == {"total": 5, "avatars": ["av3", "av2"]}


@pytest.mark.parametrize("query", ["state=done", "limit=0", "limit=501", "offset=-1", "tutor_id=x"])
def test_list_refuses_bad_filters(client_with_key, query):
    assert_error(client_with_key.get(f"/v1/avatars?{query}"), 400, "invalid_request")


def test_get_unknown_avatar_is_404(client_with_key):
    assert_error(client_with_key.get("/v1/avatars/nobody"), 404, "not_found")


def test_delete_removes_row_files_and_the_tutors_reference(client_with_key, isolated_storage, face_video):
    tutor = Tutor.objects.create(name="Grace")
    body = upload(client_with_key, face_video[0], "avatar_tutor_1", query="?wait=60", tutor_id=str(tutor.pk)).json()
    assert body["state"] == "ready"
    tutor.refresh_from_db()
    assert tutor.avatar_id == "avatar_tutor_1"
    response = client_with_key.delete("/v1/avatars/avatar_tutor_1")
    assert response.status_code == 200
    assert response.json() == {"status": "success", "avatar_id": "avatar_tutor_1", "message": "Avatar 'avatar_tutor_1' deleted."}
    tutor.refresh_from_db()
    assert tutor.avatar_id is None
    assert_nothing_kept(isolated_storage)
    assert_error(client_with_key.get("/v1/avatars/avatar_tutor_1"), 404, "not_found")


def test_delete_of_one_avatar_leaves_the_others(client_with_key, isolated_storage, face_video):
    upload(client_with_key, face_video[0], "keep", query="?wait=60")
    upload(client_with_key, face_video[0], "drop", query="?wait=60")
    client_with_key.delete("/v1/avatars/drop")
    assert client_with_key.get("/v1/avatars/keep").json()["state"] == "ready"
    assert (isolated_storage / "avatars" / "keep" / "coords.pkl").is_file()
    assert not (isolated_storage / "avatars" / "drop").exists()


def test_delete_unknown_avatar_is_404(client_with_key):
    assert_error(client_with_key.delete("/v1/avatars/nobody"), 404, "not_found")


def test_delete_cancels_a_running_job_and_removes_everything(client_with_key, isolated_storage, tmp_path):
    from testsupport.videos import write_face_video

    long_video = tmp_path / "long.mp4"
    write_face_video(long_video, width=640, height=360, seconds=12.0)
    assert upload(client_with_key, long_video, "busy").status_code == 201
    for _ in range(100):
        if Avatar.objects.get(avatar_id="busy").state == AvatarState.PROCESSING:
            break
        import time

        time.sleep(0.05)
    response = client_with_key.delete("/v1/avatars/busy")
    assert response.status_code == 200
    assert jobs.backend().wait_idle(5)
    assert_nothing_kept(isolated_storage)


def test_delete_of_a_queued_avatar_behind_a_busy_worker_answers_at_once(client_with_key, isolated_storage,
                                                                         face_video, monkeypatch):
    """The only worker is busy with another avatar: deleting a queued one takes it out of the
    queue without waiting for the job ahead (it used to wait the full 10 s, then warn)."""
    import threading
    import time

    runner = jobs.backend()
    assert runner.workers == 1
    gate, started = threading.Event(), []

    def held_job(avatar_id, stop):
        started.append(avatar_id)
        while not gate.wait(0.01) and not stop.is_set():
            pass

    monkeypatch.setattr(runner, "_job", held_job)
    assert upload(client_with_key, face_video[0], "running").status_code == 201
    assert upload(client_with_key, face_video[0], "waiting").status_code == 201
    while not started:
        time.sleep(0.01)
    asked = time.monotonic()
    response = client_with_key.delete("/v1/avatars/waiting")
    answered_after = time.monotonic() - asked
    assert response.status_code == 200, response.content
    print(f"DELETE of the queued avatar answered in {answered_after * 1000:.0f} ms")
    assert answered_after < 1.0, answered_after
    assert not Avatar.objects.filter(avatar_id="waiting").exists()
    gate.set()
    assert runner.wait_idle(10)
    assert started == ["running"]


# --- preview and reprocess --------------------------------------------------------------------


def test_preview_is_a_jpeg_once_ready_and_404_before(client_with_key, face_video, monkeypatch):
    runner = jobs.backend()
    real_job = runner._job
    monkeypatch.setattr(runner, "_job", lambda avatar_id, cancel: None)
    upload(client_with_key, face_video[0], "a1")
    assert_error(client_with_key.get("/v1/avatars/a1/preview"), 404, "not_found")
    monkeypatch.setattr(runner, "_job", real_job)
    runner.submit("a1")
    assert runner.wait_idle(60)
    response = client_with_key.get("/v1/avatars/a1/preview")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert response.content[:2] == b"\xff\xd8"


def test_reprocess_runs_again_from_the_stored_source(client_with_key, isolated_storage, face_video):
    upload(client_with_key, face_video[0], "a1", query="?wait=60")
    response = client_with_key.post("/v1/avatars/a1/reprocess", {"apply_blur": True}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["state"] == "queued" and response.json()["apply_blur"] is True
    assert jobs.backend().wait_idle(60)
    avatar = Avatar.objects.get(avatar_id="a1")
    assert avatar.state == AvatarState.READY and avatar.run == 2 and avatar.apply_blur


def test_reprocess_of_a_busy_avatar_is_409(client_with_key, face_video, monkeypatch):
    monkeypatch.setattr(jobs.backend(), "_job", lambda avatar_id, cancel: None)
    upload(client_with_key, face_video[0], "a1")
    assert_error(client_with_key.post("/v1/avatars/a1/reprocess"), 409, "avatar_busy")


def test_reprocess_unknown_avatar_is_404(client_with_key):
    assert_error(client_with_key.post("/v1/avatars/nobody/reprocess"), 404, "not_found")


# --- failures the job reports -----------------------------------------------------------------


def test_video_without_a_face_is_accepted_then_fails_with_no_face(client_with_key, isolated_storage, no_face_video):
    body = upload(client_with_key, no_face_video, "a1", query="?wait=60").json()
    assert body["state"] == "failed"
    assert body["error"]["code"] == "no_face" and "face" in body["error"]["message"]
    assert files_under(isolated_storage / "avatars") == []
    assert files_under(isolated_storage / "work") == []


# --- access and shape -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, url",
    [
        ("get", "/v1/avatars"),
        ("post", "/v1/avatars"),
        ("post", "/v1/avatars/upload"),
        ("get", "/v1/avatars/a1"),
        ("delete", "/v1/avatars/a1"),
        ("get", "/v1/avatars/a1/preview"),
        ("post", "/v1/avatars/a1/reprocess"),
    ],
)
def test_every_call_needs_a_key(method, url):
    response = getattr(APIClient(), method)(url)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_wrong_and_revoked_keys_are_401_and_authorization_token_works(api_key):
    from django.utils import timezone

    from avatars.models import ApiKey

    client = APIClient()
    client.credentials(HTTP_X_API_KEY="tk_wrong")
    assert_error(client.get("/v1/avatars"), 401, "not_authenticated")
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_key}")
    assert client.get("/v1/avatars").status_code == 200
    ApiKey.objects.update(revoked_at=timezone.now())
    assert_error(client.get("/v1/avatars"), 401, "not_authenticated")


def test_staff_session_works_and_other_users_are_refused(django_user_model):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    plain = django_user_model.objects.create_user("plain", password="pw")
    client = APIClient()
    client.force_login(staff)
    assert client.get("/v1/avatars").status_code == 200
    client.force_login(plain)
    assert_error(client.get("/v1/avatars"), 403, "permission_denied")


def test_unknown_endpoint_and_wrong_method_answer_in_the_error_shape(client_with_key):
    assert_error(client_with_key.get("/v1/nothing-here"), 404, "not_found")
    assert_error(client_with_key.put("/v1/avatars", {}, format="json"), 405, "method_not_allowed")


def test_upload_size_is_enforced_while_streaming_not_only_from_the_header(client_with_key, isolated_storage, face_video, settings):
    size = face_video[0].stat().st_size
    # Under the header check's allowance, over the limit: only the streaming handler can stop it.
    settings.AVATAR_MAX_UPLOAD_BYTES = size - 1000
    assert_error(upload(client_with_key, face_video[0], "a1"), 413, "file_too_large")
    assert_nothing_kept(isolated_storage)
    assert list(Path(settings.FILE_UPLOAD_TEMP_DIR).iterdir()) == []


def test_deleting_a_queued_avatar_while_the_only_worker_is_busy_answers_at_once(
        client_with_key, isolated_storage, face_video, monkeypatch, caplog):
    """The queued job is taken out of the queue: no wait for the running job, no warning, and it
    never runs."""
    import threading
    import time

    release, ran = threading.Event(), []

    def held_job(avatar_id, cancel):
        ran.append(avatar_id)
        while not release.wait(0.01) and not cancel.is_set():
            pass

    monkeypatch.setattr(jobs.backend(), "_job", held_job)
    try:
        for avatar_id in ("busy", "waiting"):
            assert upload(client_with_key, face_video[0], avatar_id).status_code == 201
        while not ran:
            time.sleep(0.01)
        started = time.monotonic()
        response = client_with_key.delete("/v1/avatars/waiting")
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert response.status_code == 200 and elapsed < 1.0, elapsed
    assert not Avatar.objects.filter(avatar_id="waiting").exists()
    assert "did not stop" not in caplog.text
    assert jobs.backend().wait_idle(10)
    assert ran == ["busy"]


# --- disk space ------------------------------------------------------------------------------------


def test_an_avatar_that_would_not_fit_on_the_disk_is_refused_507_and_nothing_is_kept(client_with_key, face_video,
                                                                                        isolated_storage, monkeypatch):
    from avatars import storage

    monkeypatch.setattr(storage, "work_space_free", lambda: 5 * 1024 * 1024)
    body = assert_error(upload(client_with_key, face_video[0], "too_big_for_disk"), 507, "insufficient_storage")
    assert body["details"]["needed_bytes"] > body["details"]["free_bytes"] == 5 * 1024 * 1024
    assert_nothing_kept(isolated_storage)


def test_a_job_whose_disk_filled_up_after_it_was_accepted_fails_with_the_named_error(client_with_key, face_video,
                                                                                       monkeypatch):
    from avatars import storage

    runner = jobs.backend()
    real_job = runner._job

    def disk_fills_first(avatar_id, stop):
        monkeypatch.setattr(storage, "work_space_free", lambda: 1024)
        real_job(avatar_id, stop)

    monkeypatch.setattr(runner, "_job", disk_fills_first)
    assert upload(client_with_key, face_video[0], "late").status_code == 201
    assert runner.wait_idle(30)
    body = client_with_key.get("/v1/avatars/late").json()
    assert body["state"] == "failed" and body["error"]["code"] == "insufficient_storage"
    assert "free disk space" in body["error"]["message"]


def test_a_ready_avatar_says_how_much_disk_it_takes(client_with_key, face_video, isolated_storage):
    body = upload(client_with_key, face_video[0], "sized", query="?wait=60").json()
    on_disk = sum(path.stat().st_size for path in files_under(isolated_storage / "avatars" / "sized"))
    assert body["state"] == "ready" and body["size_bytes"] == on_disk
