"""What a create says about its source: a video whose prepared files dwarf it (from the 201 on), and
a video file still being written (refused)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from avatars import jobs
from testsupport.videos import write_static_h264

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory):
    """10 s of a 1080p tutor who does not move: ~110 KB of H.264 that makes ~280 MB of frames."""
    path = tmp_path_factory.mktemp("still") / "still.mp4"
    write_static_h264(path, width=1920, height=1080, seconds=10.0)
    return path


def upload(client, path, avatar_id):
    return client.post("/v1/avatars/upload", {"avatar_id": avatar_id, "video_file": SimpleUploadedFile(
        path.name, path.read_bytes(), "video/mp4")}, format="multipart")


def test_a_still_clip_that_expands_a_thousandfold_says_so_at_201_and_in_the_avatar(client_with_key, still_clip,
                                                                                    face_video, gate_jobs):
    created = upload(client_with_key, still_clip, "still")
    assert created.status_code == 201, created.content
    [warning] = created.json()["warnings"]
    assert warning["code"] == "large_output" and warning["details"]["ratio"] > 1000, warning
    assert warning["details"]["source_bytes"] == still_clip.stat().st_size
    assert "MB of prepared files" in warning["message"]
    assert client_with_key.get("/v1/avatars/still").json()["warnings"] == [warning]
    # An ordinary clip (a moving tutor) says nothing.
    assert upload(client_with_key, face_video[0], "moving").json()["warnings"] == []
    client_with_key.delete("/v1/avatars/still")


def test_a_tutors_new_video_shows_the_warning_in_its_pending_avatar(client_with_key, still_clip, gate_jobs):
    created = client_with_key.post("/v1/tutors", {"name": "Still", "avatar_video": SimpleUploadedFile(
        still_clip.name, still_clip.read_bytes(), "video/mp4")}, format="multipart")
    assert created.status_code == 201, created.content
    assert created.json()["pending_avatar"]["warnings"][0]["code"] == "large_output"
    client_with_key.delete(f"/v1/tutors/{created.json()['id']}")
    assert jobs.backend().wait_idle(60)


# --- A source file still being written ---------------------------------------------------------

@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A 2 s MKV: a quarter of it reads as a video whose header says 50 frames and holds 12."""
    from testsupport.videos import drifting, write_face_video

    path = tmp_path_factory.mktemp("recording") / "recording.mkv"
    write_face_video(path, width=640, height=360, seconds=2.0, motion=drifting(640, 360, period_s=2.0))
    return path


def test_a_video_path_still_being_written_is_refused_not_prepared_from_part_of_it(client_with_key, recording,
                                                                                  settings, isolated_storage):
    import threading
    import time

    from avatars.models import Avatar

    settings.AVATAR_IMPORT_SETTLE_S = 1.0
    data = recording.read_bytes()
    target = isolated_storage / "import" / "recording.mkv"
    target.write_bytes(data[: len(data) // 4])
    done = threading.Event()

    def recorder():  # appends the rest over ~2 s, as a recorder writes its file
        pieces = [data[len(data) // 4:][index:index + 8192] for index in range(0, len(data) * 3 // 4, 8192)]
        for piece in pieces:
            time.sleep(2.0 / len(pieces))
            with target.open("ab") as handle:
                handle.write(piece)
        done.set()

    writer = threading.Thread(target=recorder)
    writer.start()
    try:
        time.sleep(0.2)
        refused = client_with_key.post("/v1/avatars", {"avatar_id": "recorded", "video_path": str(target)}, format="json")
    finally:
        writer.join()
    assert refused.status_code == 409, refused.content
    assert refused.json()["code"] == "source_incomplete" and refused["Retry-After"] == "5"
    assert not Avatar.objects.filter(avatar_id="recorded").exists()
    assert not (isolated_storage / "media" / "sources" / "recorded").exists()
    # Complete and still: taken.
    assert done.is_set() and target.read_bytes() == data
    taken = client_with_key.post("/v1/avatars", {"avatar_id": "recorded", "video_path": str(target)}, format="json")
    assert taken.status_code == 201, taken.content
    assert taken.json()["video"]["frame_count"] == 50
