"""/v1/webhooks through the real URLconf, and the URLs that are refused (in the contract's error
shape, with details.reason), for endpoints and for a create request's callback_url."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from avatars.models import Avatar
from tutors.models import Tutor
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = {"webhook_id", "url", "events", "active", "description", "disabled_reason", "disabled_at",
          "failing_since", "created_at", "updated_at"}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == "error" and body["code"] == code and body["message"], body
    return body


def test_create_list_get_change_and_delete_an_endpoint(client_with_key, receiver):
    created = client_with_key.post("/v1/webhooks", {"url": receiver.url, "events": ["avatar.ready", "session.ended"],
                                                    "description": "web server"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert set(body) == FIELDS | {"secret"} and body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert body["events"] == ["avatar.ready", "session.ended"] and body["active"] is True
    webhook_id = body["webhook_id"]
    # The secret is shown once: never again in a list or a read.
    listed = client_with_key.get("/v1/webhooks").json()
    assert listed["total"] == 1 and set(listed["webhooks"][0]) == FIELDS
    shown = client_with_key.get(f"/v1/webhooks/{webhook_id}").json()
    assert set(shown) == FIELDS and shown["url"] == receiver.url
    changed = client_with_key.patch(f"/v1/webhooks/{webhook_id}", {"events": ["*"], "active": False}, format="json")
    assert changed.status_code == 200 and changed.json()["events"] == ["*"] and changed.json()["active"] is False
    assert Endpoint.objects.get().active is False
    deleted = client_with_key.delete(f"/v1/webhooks/{webhook_id}")
    assert deleted.status_code == 200 and deleted.json()["webhook_id"] == webhook_id
    assert_error(client_with_key.get(f"/v1/webhooks/{webhook_id}"), 404, "not_found")
    assert_error(client_with_key.delete(f"/v1/webhooks/{webhook_id}"), 404, "not_found")
    assert_error(client_with_key.get("/v1/webhooks/not-a-uuid"), 404, "not_found")
    assert Endpoint.objects.count() == 0


def test_events_default_to_all_and_unknown_types_are_refused(client_with_key, receiver):
    body = client_with_key.post("/v1/webhooks", {"url": receiver.url}, format="json").json()
    assert body["events"] == ["*"]
    refused = assert_error(client_with_key.post("/v1/webhooks", {"url": receiver.url, "events": ["avatar.exploded"]},
                                                format="json"), 400, "invalid_request")
    assert refused["details"]["reason"] == "unknown_event" and "avatar.ready" in refused["details"]["known"]
    assert_error(client_with_key.post("/v1/webhooks", {"url": receiver.url, "events": []}, format="json"),
                 400, "invalid_request")
    assert_error(client_with_key.patch(f"/v1/webhooks/{body['webhook_id']}", {"events": ["nope"]}, format="json"),
                 400, "invalid_request")
    assert Endpoint.objects.count() == 1


def test_webhooks_need_an_api_key(receiver):
    assert_error(APIClient().get("/v1/webhooks"), 401, "not_authenticated")
    assert_error(APIClient().post("/v1/webhooks", {"url": receiver.url}, format="json"), 401, "not_authenticated")


REFUSED = [
    ("http://127.0.0.1:8000/hook", "private_address"),
    ("http://localhost/hook", "private_address"),
    ("http://[::1]/hook", "private_address"),
    ("http://10.1.2.3/hook", "private_address"),
    ("http://192.168.0.10/hook", "private_address"),
    ("http://172.16.5.4/hook", "private_address"),
    ("http://169.254.169.254/latest/meta-data", "private_address"),  # cloud metadata (link-local)
    ("http://100.64.0.1/hook", "private_address"),  # shared address space
    ("http://0.0.0.0/hook", "private_address"),
    ("http://224.0.0.1/hook", "private_address"),  # multicast
    ("http://[::ffff:127.0.0.1]/hook", "private_address"),  # IPv4-mapped loopback
    ("http://240.0.0.1/hook", "private_address"),  # reserved
    ("ftp://example.com/hook", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme"),
    ("http://" + "a" * 2100 + ".example.com/", "too_long"),
    ("http://user:pw@93.184.216.34/hook", "malformed"),
    ("http:///hook", "malformed"),
    ("http://93.184.216.34/ho ok", "malformed"),
    ("http://no-such-host.invalid/hook", "unresolvable"),
]


@pytest.mark.parametrize("url,reason", REFUSED)
def test_urls_webhooks_must_not_go_to_are_refused(client_with_key, settings, url, reason):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    body = assert_error(client_with_key.post("/v1/webhooks", {"url": url}, format="json"), 400, "invalid_request")
    assert body["details"]["reason"] == reason and body["details"]["field"] == "url", body
    assert Endpoint.objects.count() == 0


def test_a_change_to_a_refused_url_changes_nothing(client_with_key, receiver, settings):
    webhook_id = client_with_key.post("/v1/webhooks", {"url": receiver.url}, format="json").json()["webhook_id"]
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    body = assert_error(client_with_key.patch(f"/v1/webhooks/{webhook_id}", {"url": "http://10.0.0.1/x",
                                                                            "active": False}, format="json"),
                        400, "invalid_request")
    assert body["details"]["reason"] == "private_address"
    endpoint = Endpoint.objects.get()
    assert endpoint.url == receiver.url and endpoint.active is True


def test_a_refused_callback_url_refuses_the_create_and_leaves_nothing(client_with_key, settings, face_video,
                                                                      isolated_storage):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    video = Path(face_video[0])
    upload = client_with_key.post("/v1/avatars/upload", {
        "avatar_id": "with-callback", "callback_url": "http://169.254.169.254/",
        "video_file": SimpleUploadedFile("v.mp4", video.read_bytes(), "video/mp4")}, format="multipart")
    assert assert_error(upload, 400, "invalid_request")["details"] == {"field": "callback_url",
                                                                       "reason": "private_address"}
    imported = isolated_storage / "import" / "v.mp4"
    imported.write_bytes(video.read_bytes())
    by_path = client_with_key.post("/v1/avatars", {"avatar_id": "with-callback", "video_path": str(imported),
                                                   "callback_url": "ftp://example.com/"}, format="json")
    assert assert_error(by_path, 400, "invalid_request")["details"]["reason"] == "scheme"
    tutor = client_with_key.post("/v1/tutors", {"name": "Ada", "callback_url": "http://" + "a" * 3000 + ".com/"},
                                 format="json")
    assert assert_error(tutor, 400, "invalid_request")["details"]["reason"] == "too_long"
    assert Avatar.objects.count() == 0 and Tutor.objects.count() == 0 and Endpoint.objects.count() == 0
