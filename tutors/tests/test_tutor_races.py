"""Racing changes to one tutor through the real URLconf, in threads: two new videos at once, and
a delete while a new video arrives. Nothing may be left that no tutor uses, and no loser may
answer a 500 or an error the contract does not give for that call."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.test import APIClient

from avatars.models import Avatar
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 25


def race(*calls):
    """Run the calls in threads started together, each after 0-20 ms; their answers, in order."""
    answers = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index, call):
        try:
            start.wait()
            time.sleep(random.uniform(0, 0.02))
            answers[index] = call()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return answers


def client(api_key: str) -> APIClient:
    made = APIClient()
    made.credentials(HTTP_X_API_KEY=api_key)
    return made


def patch_video(api_key: str, tutor_id: int, video: Path):
    def call():
        upload = SimpleUploadedFile(video.name, video.read_bytes(), "video/mp4")
        return client(api_key).patch(f"/v1/tutors/{tutor_id}", {"avatar_video": upload}, format="multipart")
    return call


def source_folders() -> set[str]:
    folder = Path(settings.MEDIA_ROOT) / "sources"
    return {path.name for path in folder.iterdir()} if folder.exists() else set()


def test_two_new_videos_at_once_one_wins_and_the_other_is_deleted(api_key, face_video, gate_jobs):
    random.seed(23)
    tutor_id = client(api_key).post("/v1/tutors", {"name": "Ada"}, format="json").json()["id"]
    outcomes = Counter()
    for round_number in range(ROUNDS):
        first, second = race(patch_video(api_key, tutor_id, face_video[0]), patch_video(api_key, tutor_id, face_video[0]))
        statuses = (first.status_code, second.status_code)
        assert all(status in (200, 409) for status in statuses) and 200 in statuses, (
            round_number, first.content, second.content)
        refused = [answer.json()["code"] for answer in (first, second) if answer.status_code != 200]
        assert "avatar_exists" not in refused, round_number  # an id the client never chose
        tutor = Tutor.objects.get(pk=tutor_id)
        left = set(Avatar.objects.filter(tutor_id=tutor_id).values_list("avatar_id", flat=True))
        # One replacement wins; the other (and the previous round's) is gone, row and files.
        assert left == {tutor.pending_avatar_id}, (round_number, left, tutor.pending_avatar_id)
        assert source_folders() == left, (round_number, source_folders(), left)
        outcomes["both 200, one superseded and deleted" if statuses == (200, 200)
                 else f"one 200, one {refused}"] += 1
    print(f"racing PATCH with new videos, {ROUNDS} rounds: {dict(outcomes)}")


def test_a_delete_racing_a_new_video_leaves_nothing_of_the_tutor(api_key, face_video, gate_jobs):
    random.seed(5)
    outcomes = Counter()
    for round_number in range(ROUNDS):
        tutor_id = client(api_key).post("/v1/tutors", {"name": "Ada"}, format="json").json()["id"]
        deleting = lambda: client(api_key).delete(f"/v1/tutors/{tutor_id}")  # noqa: E731
        patched, deleted = race(patch_video(api_key, tutor_id, face_video[0]), deleting)
        assert deleted.status_code in (200, 404), deleted.content
        assert patched.status_code in (200, 404), patched.content  # never a 500
        if patched.status_code == 404:
            assert patched.json()["code"] == "not_found"
        assert not Tutor.objects.filter(pk=tutor_id).exists()
        assert not Avatar.objects.filter(avatar_id__startswith=f"avatar_tutor_{tutor_id}").exists(), round_number
        assert not Avatar.objects.filter(tutor_id=tutor_id).exists()
        assert not any(name.startswith(f"avatar_tutor_{tutor_id}") for name in source_folders()), round_number
        outcomes[f"PATCH {patched.status_code}, DELETE {deleted.status_code}"] += 1
    print(f"DELETE racing PATCH with a new video, {ROUNDS} rounds: {dict(outcomes)}")
