from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_health_is_open_and_reports_device_and_queue():
    response = Client().get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["device"] in ("cpu", "cuda:0")
    assert body["workers"] == 1 and body["queued"] >= 0 and body["processing"] >= 0 and body["version"]
    assert body["detector"] == "yunet-libfacedetection"


@pytest.mark.django_db
def test_health_names_the_detector_the_setting_chooses(settings):
    settings.AVATAR_FACE_DETECTOR = "haar"
    assert Client().get("/health").json()["detector"] == "opencv-haar-frontalface-default"


@pytest.mark.django_db
def test_health_is_503_degraded_when_the_data_folder_is_unusable(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings.AVATAR_ROOT = blocker / "avatars"
    response = Client().get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded" and "data folder" in response.json()["reason"]


@pytest.mark.django_db
def test_openapi_schema_and_offline_docs_page():
    client = Client()
    schema = client.get("/api/schema/?format=json").json()
    assert {"/v1/avatars", "/v1/avatars/upload", "/v1/avatars/{avatar_id}"} <= set(schema["paths"])
    assert "ApiKey" in schema["components"]["securitySchemes"]
    docs = client.get("/api/docs/").content.decode()
    # Swagger UI comes from this server (drf-spectacular-sidecar), not from a CDN.
    assert "swagger-ui" in docs and "cdn" not in docs.lower()
