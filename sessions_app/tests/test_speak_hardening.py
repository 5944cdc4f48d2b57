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


# --- Audio bodies -------------------------------------------------------------------------------

def speak_wav(client, session_id, body: bytes):
    return client.generic("POST", f"/v1/sessions/{session_id}/speak", body, content_type="audio/wav")


def test_a_float_wav_is_415_and_an_extensible_pcm_wav_is_said(client_with_key, session_id):
    import numpy as np

    from testsupport.audio import wav_header_bytes

    tone = (np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 10000).astype(np.int16)
    as_float = (tone / 32768).astype("<f4").tobytes()
    body = assert_error(speak_wav(client_with_key, session_id, wav_header_bytes(as_float, 16000, 1, 32, tag=3)),
                        415, "unsupported_media")
    assert "32-bit float" in body["message"]
    six = np.repeat(tone[:, None], 6, axis=1).astype("<i2").tobytes()
    said = speak_wav(client_with_key, session_id, wav_header_bytes(six, 16000, 6, 16, tag=0xFFFE, extensible_subformat=1))
    assert said.status_code == 202, said.content
    assert said.json()["duration_s"] == 1.0


def test_audio_bodies_beyond_the_ones_being_decoded_are_503_with_retry_after(client_with_key, session_id, settings):
    from sessions_app import speaking
    from testsupport.audio import syllables, wav_bytes

    settings.SESSION_SPEAK_AUDIO_AT_ONCE = 1
    settings.SESSION_SPEAK_AUDIO_WAIT_S = 0.2
    body = wav_bytes(syllables(1.0, 16000), 16000)
    with speaking.audio_slot():  # one body is being decoded
        busy = speak_wav(client_with_key, session_id, body)
        text = client_with_key.post(f"/v1/sessions/{session_id}/speak", {"text": "Hello."}, format="json")
    assert_error(busy, 503, "speak_busy")
    assert busy["Retry-After"] == "2"
    assert text.status_code == 202  # text takes no audio place
    assert speak_wav(client_with_key, session_id, body).status_code == 202  # the place is free again
    assert Utterance.objects.count() == 2
