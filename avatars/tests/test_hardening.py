"""The second adversarial round: races on an avatar's state, inputs that used to be 500s, names the
routes use, the admin's gaps. Races run many rounds; each round starts its callers together."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from avatars import jobs, storage
from avatars.models import Avatar, AvatarState
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 25


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == "error" and body["code"] == code and body["message"], body
    return body


@pytest.fixture
def submitted(monkeypatch) -> list[str]:
    """Jobs are recorded, not run: each race's outcome is read from the rows and this list."""
    calls: list[str] = []
    monkeypatch.setattr(jobs.backend(), "_submit", calls.append)
    return calls


def ready_avatar(avatar_id: str, face_video) -> Avatar:
    source = storage.store_source(avatar_id, face_video[0], "v.mp4")
    return Avatar.objects.create(avatar_id=avatar_id, source="upload", state=AvatarState.READY, source_file=source,
                                 video={"width": 640, "height": 360, "fps": 25.0, "frame_count": 50, "duration_s": 2.0})


def together(*calls):
    """Run the calls on threads released at the same moment; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        from django.db import connection

        barrier.wait()
        try:
            results[index] = call()
        except BaseException as exc:  # a 500 surfaces here (the test client re-raises it)
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    failed = [result for result in results if isinstance(result, BaseException)]
    if failed:
        raise AssertionError(f"a call failed: {failed[0]!r}") from failed[0]
    return results


def client(api_key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=api_key)
    return api


# --- 1, 2: every change of an avatar's state is one conditional update -----------------------------


def test_racing_reprocess_calls_queue_exactly_one_run_each_round(api_key, face_video, submitted):
    avatar = ready_avatar("raced", face_video)
    for round_number in range(ROUNDS):
        answers = together(*[lambda: client(api_key).post("/v1/avatars/raced/reprocess", {}, format="json")] * 3)
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [202, 409, 409], (round_number, [a.content for a in answers])
        assert all(a.json()["code"] == "avatar_busy" for a in answers if a.status_code == 409)
        assert Avatar.objects.get(pk=avatar.pk).state == AvatarState.QUEUED
        assert submitted.count("raced") == round_number + 1  # one job a round, never a lost one
        Avatar.objects.filter(pk=avatar.pk).update(state=AvatarState.READY)  # as if that run finished


def test_a_delete_racing_a_reprocess_never_brings_the_avatar_back(api_key, face_video, submitted):
    for round_number in range(ROUNDS):
        avatar_id = f"gone-{round_number}"
        ready_avatar(avatar_id, face_video)
        deleted, reprocessed = together(
            lambda: client(api_key).delete(f"/v1/avatars/{avatar_id}"),
            lambda: client(api_key).post(f"/v1/avatars/{avatar_id}/reprocess", {}, format="json"),
        )
        assert deleted.status_code == 200, deleted.content
        assert reprocessed.status_code in (202, 404, 409), reprocessed.content
        assert not Avatar.objects.filter(avatar_id=avatar_id).exists(), round_number


# --- 3: reprocess of an avatar a session shows ------------------------------------------------------


def test_reprocess_of_an_avatar_shown_in_a_session_is_refused_like_delete(client_with_key, face_video, submitted):
    from sessions_app import services as sessions

    avatar = ready_avatar("shown", face_video)
    tutor = Tutor.objects.create(name="Ada")
    session = sessions.create_session(tutor_id=tutor.pk, student_id=1, avatar_id=avatar.avatar_id)
    body = assert_error(client_with_key.post("/v1/avatars/shown/reprocess", {}, format="json"), 409, "avatar_in_use")
    assert body["details"]["sessions"] == [str(session.session_id)]
    assert Avatar.objects.get(pk=avatar.pk).state == AvatarState.READY and submitted == []


# --- 8: inputs that were 500s -------------------------------------------------------------------------


def test_json_nested_thousands_deep_is_400(client_with_key):
    body = "[" * 5000 + "]" * 5000
    response = client_with_key.post("/v1/avatars", body, content_type="application/json")
    assert_error(response, 400, "invalid_request")
    deep_object = '{"a":' * 5000 + "1" + "}" * 5000
    assert_error(client_with_key.post("/v1/sessions", deep_object, content_type="application/json"), 400,
                 "invalid_request")


@pytest.mark.parametrize("path", [
    "/v1/avatars?offset=100000000000000000000", "/v1/avatars?offset=1e20", "/v1/avatars?tutor_id=1e30",
    "/v1/avatars?tutor_id=100000000000000000000000000000", "/v1/sessions?student_id=9223372036854775808",
    "/v1/sessions?offset=99999999999999999999", "/v1/tutors?offset=99999999999999999999",
])
def test_numbers_too_large_for_the_database_are_400(client_with_key, path):
    assert_error(client_with_key.get(path), 400, "invalid_request")


def test_a_student_id_past_64_bits_is_400(client_with_key):
    tutor = Tutor.objects.create(name="Ada")
    response = client_with_key.post("/v1/sessions", {"tutor_id": tutor.pk, "student_id": 2**63}, format="json")
    assert_error(response, 400, "invalid_request")
    response = client_with_key.post("/v1/sessions", {"tutor_id": 2**70, "student_id": 1}, format="json")
    assert_error(response, 400, "invalid_request")


def test_ids_too_long_for_the_database_in_a_path_are_404(client_with_key, django_user_model):
    assert_error(client_with_key.get("/v1/tutors/99999999999999999999999"), 404, "not_found")
    staff = APIClient()
    staff.force_login(django_user_model.objects.create_superuser("staff", "s@example.com", "pw"))
    assert staff.get("/staff/tutors/99999999999999999999999/").status_code == 404


def test_a_loop_of_links_or_an_overlong_name_in_the_import_folder_is_400(client_with_key, isolated_storage):
    folder = isolated_storage / "import"
    os.symlink(folder / "loop-b", folder / "loop-a")
    os.symlink(folder / "loop-a", folder / "loop-b")
    for video_path in (folder / "loop-a", folder / ("x" * 300 + ".mp4"), folder / ("d" * 300) / "v.mp4"):
        response = client_with_key.post("/v1/avatars", {"avatar_id": "a1", "video_path": str(video_path)},
                                         format="json")
        assert_error(response, 400, "invalid_request")
    assert Avatar.objects.count() == 0


def test_an_upload_whose_file_name_has_a_300_character_extension_is_accepted(client_with_key, face_video,
                                                                             isolated_storage, submitted):
    name = "lesson." + "m" * 300
    upload = SimpleUploadedFile(name, face_video[0].read_bytes() + b"\0" * 70_000, "video/mp4")  # on disk, not memory
    response = client_with_key.post("/v1/avatars/upload", {"avatar_id": "long-name", "video_file": upload},
                                    format="multipart")
    assert response.status_code == 201, response.content
    assert len(Path(Avatar.objects.get(avatar_id="long-name").source_file).name) <= 140


# --- 9: ids the routes use; ids no avatar can have ----------------------------------------------------


def test_an_avatar_cannot_be_named_after_a_route(client_with_key, face_video, isolated_storage):
    import shutil

    shutil.copyfile(face_video[0], isolated_storage / "import" / "v.mp4")
    for avatar_id in ("upload", "Upload"):
        response = client_with_key.post("/v1/avatars", {"avatar_id": avatar_id,
                                                        "video_path": str(isolated_storage / "import" / "v.mp4")},
                                        format="json")
        assert_error(response, 400, "invalid_request")
    assert Avatar.objects.count() == 0


def test_an_id_no_avatar_can_have_is_400_not_404(client_with_key):
    for path in ("/v1/avatars/has%20space", "/v1/avatars/-starts-with-dash", "/v1/avatars/" + "x" * 65):
        assert_error(client_with_key.get(path), 400, "invalid_request")
        assert_error(client_with_key.delete(path), 400, "invalid_request")
    assert_error(client_with_key.get("/v1/avatars/valid_but_missing"), 404, "not_found")


# --- 6, 7: the admin -------------------------------------------------------------------------------


def test_a_body_over_the_upload_limit_is_refused_on_every_path_the_admin_included(settings):
    from asgiref.sync import async_to_sync
    from channels.testing import HttpCommunicator

    from tutorplatform.asgi import application

    settings.AVATAR_MAX_UPLOAD_BYTES = 1024 * 1024
    too_big = str(2 * 1024 * 1024).encode()
    for path in ("/admin/tutors/tutor/add/", "/staff/tutors/new", "/v1/tutors"):
        communicator = HttpCommunicator(application, "POST", path, body=b"x" * 1000,
                                        headers=[(b"content-type", b"multipart/form-data; boundary=b"),
                                                 (b"content-length", too_big)])
        response = async_to_sync(communicator.get_response)()
        assert response["status"] == 413, (path, response)
        assert json.loads(response["body"])["code"] == "file_too_large"


def test_deleting_an_avatar_shown_in_a_session_from_the_admin_keeps_it_and_says_why(face_video, django_user_model,
                                                                                      submitted):
    from django.test import Client

    from sessions_app import services as sessions

    avatar = ready_avatar("in-session", face_video)
    sessions.create_session(tutor_id=Tutor.objects.create(name="Ada").pk, student_id=1, avatar_id="in-session")
    admin = Client()
    admin.force_login(django_user_model.objects.create_superuser("admin", "a@example.com", "pw"))
    page = admin.post(f"/admin/avatars/avatar/{avatar.pk}/delete/", {"post": "yes"}, follow=True)
    assert page.status_code == 200 and "active session" in page.content.decode()
    bulk = admin.post("/admin/avatars/avatar/", {"action": "delete_selected", "_selected_action": [avatar.pk],
                                                 "post": "yes"}, follow=True)
    assert bulk.status_code == 200 and "was kept" in bulk.content.decode()
    assert Avatar.objects.filter(pk=avatar.pk).exists()


# --- requests Django refuses while reading them: the contract's JSON, not an HTML page ---------------


def test_too_many_fields_or_files_or_too_large_fields_get_the_contracts_json(client_with_key):
    from django.test.client import encode_multipart

    fields = {f"f{number}": "x" for number in range(10_001)}
    response = client_with_key.post("/v1/avatars", fields, format="multipart")
    assert_error(response, 400, "invalid_request")
    files = {f"file{number}": SimpleUploadedFile(f"{number}.mp4", b"x") for number in range(150)}
    response = client_with_key.post("/v1/avatars/upload", {"avatar_id": "many", **files}, format="multipart")
    assert_error(response, 400, "invalid_request")
    big_json = json.dumps({"avatar_id": "big", "video_path": "x" * (3 * 1024 * 1024)})
    response = client_with_key.post("/v1/avatars", big_json, content_type="application/json")
    assert response.status_code in (400, 413) and response.json()["status"] == "error"
    boundary = "b"
    big_form = encode_multipart(boundary, {"avatar_id": "big", "notes": "y" * (3 * 1024 * 1024)})
    response = client_with_key.post("/v1/avatars/upload", big_form,
                                    content_type=f"multipart/form-data; boundary={boundary}")
    assert_error(response, 413, "file_too_large")
    assert Avatar.objects.count() == 0


def test_a_wait_for_an_avatar_deleted_meanwhile_answers_404_not_a_stale_201(client_with_key, face_video, gate_jobs):
    import time

    def delete_soon():
        from django.db import connection

        try:
            deadline = time.monotonic() + 20
            while not Avatar.objects.filter(avatar_id="short-lived").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # the request is waiting by now
            client(client_with_key._credentials["HTTP_X_API_KEY"]).delete("/v1/avatars/short-lived")
        finally:
            connection.close()

    deleter = threading.Thread(target=delete_soon)
    deleter.start()
    upload = SimpleUploadedFile("v.mp4", face_video[0].read_bytes(), "video/mp4")
    response = client_with_key.post("/v1/avatars/upload?wait=30", {"avatar_id": "short-lived", "video_file": upload},
                                    format="multipart")
    deleter.join()
    body = assert_error(response, 404, "not_found")
    assert "deleted while the request waited" in body["message"]
    assert not Avatar.objects.filter(avatar_id="short-lived").exists()


# --- logins and what the pages keep ----------------------------------------------------------------


def test_wrong_passwords_lock_the_login_out_for_a_while(django_user_model, settings):
    from django.core.cache import cache
    from django.test import Client

    cache.clear()
    settings.LOGIN_MAX_FAILURES = 3
    django_user_model.objects.create_superuser("staff", "s@example.com", "right-password-1")
    browser = Client()
    for _ in range(3):
        assert browser.post("/admin/login/", {"username": "staff", "password": "wrong"}).status_code == 200
    locked = browser.post("/admin/login/", {"username": "staff", "password": "right-password-1"})
    assert locked.status_code == 429 and int(locked["Retry-After"]) == settings.LOGIN_LOCKOUT_S
    # Another address trying the same user name is locked out too; after the lockout, it works.
    other = Client(REMOTE_ADDR="10.0.0.9")
    assert other.post("/admin/login/", {"username": "staff", "password": "right-password-1"}).status_code == 429
    cache.clear()
    assert browser.post("/admin/login/", {"username": "staff", "password": "right-password-1"}).status_code == 302
    cache.clear()


def test_a_login_with_a_foreign_next_lands_on_the_staff_pages(django_user_model):
    from django.core.cache import cache
    from django.test import Client

    cache.clear()
    django_user_model.objects.create_superuser("staff", "s@example.com", "right-password-1")
    response = Client().post("/admin/login/?next=https://evil.example/", {
        "username": "staff", "password": "right-password-1", "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/staff/"


def test_a_new_api_key_shown_once_is_not_kept_in_a_cookie(django_user_model):
    from django.test import Client

    admin = Client()
    admin.force_login(django_user_model.objects.create_superuser("admin", "a@example.com", "pw"))
    response = admin.post("/admin/avatars/apikey/add/", {"name": "web-server"})
    assert response.status_code == 302
    assert "messages" not in response.cookies  # the message with the key lives in the session
    page = admin.get(response["Location"]).content.decode()
    assert "copy it now" in page


# --- the output is budgeted, not only the input -------------------------------------------------------


def test_a_run_whose_output_passes_the_budget_fails_with_output_too_large(face_video, tmp_path):
    from avatars.pipeline import PipelineError, PrepareOptions, prepare

    with pytest.raises(PipelineError) as refused:
        prepare(face_video[0], tmp_path / "out", PrepareOptions(max_output_bytes=1_000_000))
    assert refused.value.code == "output_too_large" and refused.value.details == {"max_bytes": 1_000_000}
    # The same clip within a budget its size allows.
    prepared = prepare(face_video[0], tmp_path / "ok", PrepareOptions(max_output_bytes=50_000_000))
    assert prepared.frame_count == 50
