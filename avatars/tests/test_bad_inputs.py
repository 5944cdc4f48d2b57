"""Bad input, case by case: each gets its status and error code, and leaves no row and no file.

docs/reliability.md lists the same cases with their answers.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from avatars import jobs
from avatars.models import Avatar
from conftest import files_under
from testsupport.bad_files import make_bad_files
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    return make_bad_files(tmp_path_factory.mktemp("bad"))


def upload(client: APIClient, files: dict, name: str | None = "good.mp4", query: str = "", **fields):
    data = {"avatar_id": "avatar_tutor_1", **fields}
    if name is not None:
        data["video_file"] = SimpleUploadedFile(name, files[name].read_bytes(), "video/mp4")
    return client.post(f"/v1/avatars/upload{query}", {k: v for k, v in data.items() if v is not None}, format="multipart")


UPLOAD_CASES = [
    # (case, file, fields, query, status, code)
    ("text saved as .mp4", "text.mp4", {}, "", 415, "unsupported_media"),
    ("empty file", "empty.mp4", {}, "", 415, "unsupported_media"),
    ("PNG picture renamed .mp4", "picture.mp4", {}, "", 415, "unsupported_media"),
    ("JPEG photo renamed .mp4", "photo.mp4", {}, "", 415, "unsupported_media"),
    ("PDF renamed .mp4", "document.mp4", {}, "", 415, "unsupported_media"),
    ("audio only (WAV)", "audio.wav", {}, "", 415, "unsupported_media"),
    ("MP4 signature, garbage inside", "fake_signature.mp4", {}, "", 422, "invalid_video"),
    ("truncated MP4", "truncated.mp4", {}, "", 422, "invalid_video"),
    ("0.3 s clip", "short.mp4", {}, "", 422, "invalid_video"),
    ("320x180 video", "low_res.mp4", {}, "", 422, "invalid_video"),
    ("4352x2448 video", "huge_resolution.mp4", {}, "", 422, "invalid_video"),
    ("header claims 2 billion frames", "forged_frame_count.avi", {}, "", 422, "invalid_video"),
    ("no video_file field", None, {}, "", 400, "invalid_request"),
    ("no avatar_id", "good.mp4", {"avatar_id": None}, "", 400, "invalid_request"),
    ("apply_blur=maybe", "good.mp4", {"apply_blur": "maybe"}, "", 400, "invalid_request"),
    ("tutor_id=abc", "good.mp4", {"tutor_id": "abc"}, "", 400, "invalid_request"),
    ("tutor_id=-1", "good.mp4", {"tutor_id": "-1"}, "", 400, "invalid_request"),
    ("unknown tutor", "good.mp4", {"tutor_id": "999"}, "", 404, "not_found"),
    ("avatar_id with ../", "good.mp4", {"avatar_id": "../../etc/passwd"}, "", 400, "invalid_request"),
    ("avatar_id with spaces", "good.mp4", {"avatar_id": "my avatar"}, "", 400, "invalid_request"),
    ("avatar_id of 200 characters", "good.mp4", {"avatar_id": "a" * 200}, "", 400, "invalid_request"),
    ("empty avatar_id", "good.mp4", {"avatar_id": ""}, "", 400, "invalid_request"),
    ("avatar_id with non-ASCII letters", "good.mp4", {"avatar_id": "ävatar"}, "", 400, "invalid_request"),
    ("?wait=abc", "good.mp4", {}, "?wait=abc", 400, "invalid_request"),
    ("?wait=9999", "good.mp4", {}, "?wait=9999", 400, "invalid_request"),
]


def assert_nothing_kept(root: Path) -> None:
    assert Avatar.objects.count() == 0
    for folder in ("media", "avatars", "work"):
        assert files_under(root / folder) == [], folder
    assert os.listdir(settings.FILE_UPLOAD_TEMP_DIR) == []


@pytest.mark.parametrize("case, name, fields, query, status, code", UPLOAD_CASES, ids=[c[0] for c in UPLOAD_CASES])
def test_bad_upload(client_with_key, bad_files, isolated_storage, case, name, fields, query, status, code):
    response = upload(client_with_key, bad_files, name, query, **fields)
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == "error" and body["code"] == code and body["message"]
    assert_nothing_kept(isolated_storage)


def test_body_over_the_upload_limit(client_with_key, bad_files, isolated_storage, settings):
    settings.AVATAR_MAX_UPLOAD_BYTES = 100_000
    response = upload(client_with_key, bad_files)
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"
    assert_nothing_kept(isolated_storage)


def test_json_sent_to_the_upload_endpoint(client_with_key, isolated_storage):
    response = client_with_key.post("/v1/avatars/upload", {"avatar_id": "a1"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    assert_nothing_kept(isolated_storage)


def path_cases(root: Path, outside: Path) -> list[tuple[str, object, int, str]]:
    inside = root / "import"
    link = inside / "link.mp4"
    if not link.exists():
        os.symlink(outside / "good.mp4", link)
    (inside / "folder.mp4").mkdir(exist_ok=True)
    return [
        ("path outside the import folders", str(outside / "good.mp4"), 400, "invalid_request"),
        ("path escaping through ..", str(inside / ".." / ".." / outside.name / "good.mp4"), 400, "invalid_request"),
        ("symbolic link pointing outside", str(link), 400, "invalid_request"),
        ("a folder, not a file", str(inside / "folder.mp4"), 400, "invalid_request"),
        ("missing file inside the import folder", str(inside / "missing.mp4"), 404, "not_found"),
        ("empty video_path", "", 400, "invalid_request"),
        ("video_path with a NUL byte", str(inside / "a\x00.mp4"), 400, "invalid_request"),
        ("video_path not a string", 12345, 400, "invalid_request"),
        ("/etc/passwd", "/etc/passwd", 400, "invalid_request"),
    ]


def test_bad_video_paths(client_with_key, bad_files, isolated_storage):
    outside = bad_files["good.mp4"].parent
    cases = path_cases(isolated_storage, outside)
    for case, video_path, status, code in cases:
        response = client_with_key.post("/v1/avatars", {"avatar_id": "a1", "video_path": video_path}, format="json")
        assert (response.status_code, response.json()["code"]) == (status, code), case
        assert_nothing_kept(isolated_storage)
    print(f"{len(cases)} bad video_path cases")


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"just a string"'])
def test_malformed_json_bodies(client_with_key, isolated_storage, body):
    response = client_with_key.post("/v1/avatars", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    assert_nothing_kept(isolated_storage)


def test_a_duplicate_id_leaves_the_first_avatar_untouched(client_with_key, bad_files, isolated_storage, monkeypatch):
    monkeypatch.setattr(jobs.backend(), "_job", lambda avatar_id, cancel: None)
    assert upload(client_with_key, bad_files).status_code == 201
    before = files_under(isolated_storage / "media")
    response = upload(client_with_key, bad_files)
    assert response.status_code == 409 and response.json()["code"] == "avatar_exists"
    assert Avatar.objects.count() == 1 and files_under(isolated_storage / "media") == before


def test_two_racing_creates_of_one_id_exactly_one_wins(api_key, bad_files, isolated_storage, monkeypatch):
    monkeypatch.setattr(jobs.backend(), "_job", lambda avatar_id, cancel: None)
    barrier = threading.Barrier(4)
    statuses = []

    def create():
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=api_key)
        barrier.wait()
        statuses.append(upload(client, bad_files, avatar_id="raced").status_code)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409, 409, 409]
    assert Avatar.objects.filter(avatar_id="raced").count() == 1
    assert len(files_under(isolated_storage / "media")) == 1


def test_eight_parallel_uploads_under_the_limit_all_succeed(api_key, bad_files, isolated_storage):
    statuses = []

    def create(number: int):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=api_key)
        statuses.append(upload(client, bad_files, avatar_id=f"parallel{number}").status_code)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 8
    assert jobs.backend().wait_idle(120)
    assert sorted(Avatar.objects.values_list("state", flat=True)) == ["ready"] * 8


def test_unknown_tutor_on_the_path_endpoint(client_with_key, bad_files, isolated_storage):
    import shutil

    shutil.copyfile(bad_files["good.mp4"], isolated_storage / "import" / "good.mp4")
    response = client_with_key.post("/v1/avatars", {"avatar_id": "a1", "video_path": str(isolated_storage / "import" / "good.mp4"),
                                                     "tutor_id": 12345}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert Avatar.objects.count() == 0 and not Tutor.objects.exists()
