"""Speak bodies at their limits: text every caller refuses the same way, WAV headers and sample
formats, oversize bodies, and the memory one audio body may take."""

from __future__ import annotations

import pytest

from avatars import jobs, services as avatar_services
from avatars.models import AvatarSource
from sessions_app import services
from sessions_app.models import Utterance
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session_id(face_video) -> str:
    tutor = Tutor.objects.create(name="Ada")
    avatar_services.create_avatar(avatar_id="speaker", local_path=face_video[0], original_name="v.mp4",
                                  source=AvatarSource.UPLOAD, tutor_id=tutor.pk)
    assert jobs.backend().wait_idle(60)
    return str(services.create_session(tutor_id=tutor.pk, student_id=1).session_id)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == "error" and body["code"] == code and body["message"]
    return body


# --- One validation of the text, whoever asks ---------------------------------------------------

@pytest.mark.parametrize("text", ["Hello\x00there", "\x00", "Hi\x07 bell", "tab\tand newline\nare fine\x1b[31m"])
def test_the_staff_say_box_refuses_control_characters_like_the_api(admin_client, client_with_key, session_id, text):
    page = admin_client.post(f"/staff/sessions/{session_id}/speak", {"text": text})
    assert_error(page, 400, "invalid_request")
    api = client_with_key.post(f"/v1/sessions/{session_id}/speak", {"text": text}, format="json")
    assert_error(api, 400, "invalid_request")
    assert page.json()["message"] == api.json()["message"]
    assert not Utterance.objects.exists()


def test_text_with_tabs_and_newlines_is_still_said(admin_client, session_id):
    assert admin_client.post(f"/staff/sessions/{session_id}/speak", {"text": "One.\n\tTwo."}).status_code == 202
