"""Source videos and prepared avatars on an S3-compatible store: a real server (moto's server
mode) on loopback, started here, talked to over HTTP by django-storages and boto3."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from avatars import jobs
from conftest import files_under
from testsupport.s3_server import BUCKET, MOTO_SERVER, start_s3_server
from tutorplatform.settings import s3_storages


@pytest.fixture(scope="module")
def s3_endpoint():
    if MOTO_SERVER is None:
        pytest.skip("moto_server is not installed (requirements-test.txt installs moto[server])")
    server = start_s3_server()
    yield server.url, server.client
    server.stop()


@pytest.fixture
def on_s3(settings, s3_endpoint):
    url, client = s3_endpoint
    settings.AVATAR_S3_BUCKET = BUCKET
    settings.STORAGES = s3_storages(BUCKET, url, "test", "test", "us-east-1")
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])


def keys(client, prefix: str) -> list[str]:
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


@pytest.mark.django_db(transaction=True)
def test_upload_prepare_preview_stream_and_delete_on_s3(client_with_key, on_s3, face_video, isolated_storage):
    response = client_with_key.post("/v1/avatars/upload?wait=60", {"avatar_id": "on_s3", "video_file": SimpleUploadedFile(
        "tutor.mp4", face_video[0].read_bytes(), "video/mp4")}, format="multipart")
    body = response.json()
    assert response.status_code == 201 and body["state"] == "ready", body
    assert body["avatar_path"] == f"s3://{BUCKET}/avatars/on_s3/"
    stored = keys(on_s3, "avatars/on_s3/")
    assert len([k for k in stored if k.startswith("avatars/on_s3/full_imgs/")]) == 50
    assert len([k for k in stored if k.startswith("avatars/on_s3/face_imgs/")]) == 50
    assert {"avatars/on_s3/coords.pkl", "avatars/on_s3/avatar.json", "avatars/on_s3/preview.jpg"} <= set(stored)
    assert keys(on_s3, "sources/on_s3/") == ["sources/on_s3/tutor.mp4"]
    # Nothing of the avatar is kept on local disk.
    assert files_under(isolated_storage / "avatars") == [] and files_under(isolated_storage / "work") == []
    preview = client_with_key.get("/v1/avatars/on_s3/preview")
    assert preview.status_code == 200 and preview.content[:2] == b"\xff\xd8"

    from sessions_app.live.frames import AvatarFrames
    from avatars.models import Avatar

    frames = AvatarFrames.of(Avatar.objects.get(avatar_id="on_s3"))
    assert frames.frame_count == 50 and (frames.width, frames.height) == (640, 360)

    assert client_with_key.delete("/v1/avatars/on_s3").status_code == 200
    assert keys(on_s3, "avatars/on_s3/") == [] and keys(on_s3, "sources/on_s3/") == []


@pytest.mark.django_db(transaction=True)
def test_reprocess_replaces_the_files_on_s3(client_with_key, on_s3, face_video):
    client_with_key.post("/v1/avatars/upload?wait=60", {"avatar_id": "again", "video_file": SimpleUploadedFile(
        "tutor.mp4", face_video[0].read_bytes(), "video/mp4")}, format="multipart")
    client_with_key.post("/v1/avatars/again/reprocess", {"apply_blur": True}, format="json")
    assert jobs.backend().wait_idle(60)
    assert client_with_key.get("/v1/avatars/again").json()["state"] == "ready"
    assert len(keys(on_s3, "avatars/again/full_imgs/")) == 50
