"""Service rules not visible through a single API call: crash recovery."""

from __future__ import annotations

import shutil

import pytest

from avatars import jobs, services, storage
from avatars.models import Avatar, AvatarState
from conftest import files_under

pytestmark = pytest.mark.django_db(transaction=True)


def test_jobs_left_queued_or_processing_by_a_crash_are_queued_again_and_finish(isolated_storage, face_video):
    import_path = isolated_storage / "import" / "v.mp4"
    shutil.copyfile(face_video[0], import_path)
    for avatar_id, state in (("was-queued", AvatarState.QUEUED), ("was-processing", AvatarState.PROCESSING)):
        Avatar.objects.create(
            avatar_id=avatar_id, source="path", state=state, progress=37.0, stage="detect", run=1,
            source_file=storage.store_source(avatar_id, import_path, "v.mp4"),
        )
    Avatar.objects.create(avatar_id="was-ready", source="path", state=AvatarState.READY, source_file="x")
    # What the dead process left: a half-written work folder and a half-published avatar folder.
    (isolated_storage / "work" / "was-processing-abc" / "full_imgs").mkdir(parents=True)
    (isolated_storage / "avatars" / "was-processing").mkdir(parents=True)
    (isolated_storage / "avatars" / "was-processing" / "partial.jpg").write_bytes(b"x")

    assert services.requeue_interrupted() == 2
    assert jobs.runner().wait_idle(60)
    assert Avatar.objects.get(avatar_id="was-queued").state == AvatarState.READY
    processed = Avatar.objects.get(avatar_id="was-processing")
    assert processed.state == AvatarState.READY and processed.run == 2
    assert not (isolated_storage / "avatars" / "was-processing" / "partial.jpg").exists()
    assert Avatar.objects.get(avatar_id="was-ready").state == AvatarState.READY
    assert files_under(isolated_storage / "work") == []
