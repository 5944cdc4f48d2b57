"""The seed's web-server client, as it talks to the API: unchanged clients must keep working."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from avatars.models import Avatar
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)


def test_web_server_upload_flow_sets_the_tutors_avatar(api_key, face_video):
    """httpx posts `data={"apply_blur": False, "tutor_id": 5}` as multipart: the strings "False"
    and "5". It treats 201 as success and reads `avatar_id` from the body."""
    tutor = Tutor.objects.create(name="Ms. Frizzle")
    avatar_id = f"avatar_tutor_{tutor.pk}"
    client = APIClient()
    with open(face_video[0], "rb") as video:
        response = client.post(
            "/v1/avatars/upload",
            {"avatar_id": avatar_id, "apply_blur": str(False), "tutor_id": str(tutor.pk), "video_file": video},
            format="multipart",
            HTTP_X_API_KEY=api_key,
        )
    assert response.status_code == 201, response.content
    assert response.json()["avatar_id"] == avatar_id
    assert response.json()["apply_blur"] is False and response.json()["tutor_id"] == tutor.pk

    waited = client.get(f"/v1/avatars/{avatar_id}", HTTP_X_API_KEY=api_key)
    for _ in range(600):
        if waited.json()["state"] in ("ready", "failed"):
            break
        import time

        time.sleep(0.1)
        waited = client.get(f"/v1/avatars/{avatar_id}", HTTP_X_API_KEY=api_key)
    assert waited.json()["state"] == "ready", waited.json()
    tutor.refresh_from_db()
    assert tutor.avatar_id == avatar_id
    assert Avatar.objects.get(avatar_id=avatar_id).tutor_id == tutor.pk


def test_seed_json_create_body_is_accepted_as_is(api_key, isolated_storage, face_video):
    import shutil

    video_path = isolated_storage / "import" / "video.mp4"
    shutil.copyfile(face_video[0], video_path)
    tutor = Tutor.objects.create(name="Tutor 123")
    body = {"avatar_id": "avatar_tutor_123", "video_path": str(video_path), "apply_blur": False, "tutor_id": tutor.pk}
    response = APIClient().post("/v1/avatars", body, format="json", HTTP_X_API_KEY=api_key)
    assert response.status_code == 201
    assert {"status", "avatar_id", "avatar_path", "message", "mock"} <= set(response.json())
