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
    assert jobs.backend().wait_idle(60)
    assert Avatar.objects.get(avatar_id="was-queued").state == AvatarState.READY
    processed = Avatar.objects.get(avatar_id="was-processing")
    assert processed.state == AvatarState.READY and processed.run == 2
    assert not (isolated_storage / "avatars" / "was-processing" / "partial.jpg").exists()
    assert Avatar.objects.get(avatar_id="was-ready").state == AvatarState.READY
    assert files_under(isolated_storage / "work") == []


def test_a_job_created_inside_a_callers_transaction_waits_for_its_commit(isolated_storage, face_video):
    """The Django admin saves inside a transaction: a job queued before the commit would find no
    row (another thread, another connection) and never run, leaving the avatar queued."""
    import time

    from django.db import transaction

    import_path = isolated_storage / "import" / "v.mp4"
    shutil.copyfile(face_video[0], import_path)
    with transaction.atomic():
        services.create_avatar_from_path(avatar_id="in-transaction", video_path=str(import_path))
        time.sleep(0.5)  # time enough for a worker to have looked for the row
        assert jobs.backend().counts() == (0, 0)  # nothing queued, nothing reserved yet
    assert jobs.backend().wait_idle(60)
    assert Avatar.objects.get(avatar_id="in-transaction").state == AvatarState.READY


def test_a_transaction_rolled_back_queues_nothing_and_keeps_the_queue_free(isolated_storage, face_video):
    from django.db import transaction

    import_path = isolated_storage / "import" / "v.mp4"
    shutil.copyfile(face_video[0], import_path)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.create_avatar_from_path(avatar_id="rolled-back", video_path=str(import_path))
        raise RuntimeError("the caller fails after the service")
    assert not Avatar.objects.filter(avatar_id="rolled-back").exists()
    assert jobs.backend().counts() == (0, 0)  # no job, and the reserved slot is free again


def test_of_two_reprocess_calls_that_both_saw_the_avatar_finished_only_one_queues_a_run(monkeypatch):
    """The second caller read the row before the first queued it: its conditional update finds
    the row no longer finished and refuses, rather than queueing a second run."""
    from avatars.errors import AvatarBusy

    Avatar.objects.create(avatar_id="twice", source="path", state=AvatarState.READY, source_file="x")
    stale = Avatar.objects.get(avatar_id="twice")  # what both callers read: ready
    submitted = []
    monkeypatch.setattr(jobs.backend(), "_submit", submitted.append)
    monkeypatch.setattr(services, "get_avatar", lambda avatar_id: Avatar.objects.get(avatar_id=avatar_id))
    services.reprocess_avatar("twice")
    monkeypatch.setattr(services, "get_avatar", lambda avatar_id: stale)
    with pytest.raises(AvatarBusy):
        services.reprocess_avatar("twice")
    assert submitted == ["twice"]
    assert jobs.backend().counts()[0] == 0  # the refused call gave its reserved place back
    assert Avatar.objects.get(avatar_id="twice").state == AvatarState.QUEUED
