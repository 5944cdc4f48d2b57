"""One avatar preparation, the body of every job: run the pipeline on the avatar's source video
and publish the result.

Runs on a thread of the server's pool or in a Celery worker (`avatars/jobs/`). The row is the
truth: this module moves it through processing → ready / failed / cancelled (or back to queued
when the server shuts down mid-run), and files appear under the avatar's path only when it is
ready. A run sets the row's `stage` when it starts and clears it when it ends, whatever the
outcome (`run_in_progress`).
"""

from __future__ import annotations

import logging
import shutil
import threading
from functools import partial

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from avatars import storage
from avatars.errors import InsufficientStorage
from avatars.events import ProgressRecorder, publish_row
from avatars.signals import avatar_finished
from avatars.models import ACTIVE_STATES, Avatar, AvatarState
from avatars.pipeline import PipelineCancelled, PipelineError, PreparedAvatar, PrepareOptions, VideoLimits, prepare
from avatars.pipeline.child_process import prepare_in_child
from avatars.pipeline.device import compute_device
from avatars.pipeline.disk import estimated_output_bytes

logger = logging.getLogger(__name__)


class JobStop:
    """What a running job watches to know whether, and why, to stop between two frames:
    cancelled (its avatar was cancelled or deleted: the run ends as cancelled) or interrupted
    (the process is shutting down: the avatar goes back to the queue for the next start)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.interrupted = False

    def cancel(self) -> None:
        self._event.set()

    def interrupt(self) -> None:
        self.interrupted = True
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


def video_limits() -> VideoLimits:
    return VideoLimits(
        min_duration_s=settings.AVATAR_MIN_DURATION_S,
        max_duration_s=settings.AVATAR_MAX_DURATION_S,
        min_short_side=settings.AVATAR_MIN_SHORT_SIDE,
        max_long_side=settings.AVATAR_MAX_LONG_SIDE,
        max_total_pixels=settings.AVATAR_MAX_TOTAL_PIXELS,
    )


def check_disk_space(video: dict, extra_bytes: int = 0) -> None:
    """Refuse (InsufficientStorage) when the work folder has less free space than the prepared
    avatar of this video is estimated to take (avatars/pipeline/disk.py), plus `extra_bytes`.
    A row without video facts (made before they were recorded) is not checked."""
    if not video:
        return
    needed = estimated_output_bytes(int(video["width"]), int(video["height"]), int(video["frame_count"]),
                                    settings.AVATAR_FRAME_FORMAT, settings.AVATAR_CROP_SIZE) + extra_bytes
    free = storage.work_space_free()
    if free < needed:
        raise InsufficientStorage(
            f"The server has {free // 2**20} MB of free disk space; this avatar needs about "
            f"{needed // 2**20} MB. Free some space (delete avatars you no longer use) and try again.",
            {"free_bytes": free, "needed_bytes": needed},
        )


def output_warnings(video: dict | None, size_bytes: int | None = None) -> list[dict]:
    """What a client should know before it waits for the avatar: a video whose prepared files are
    more than AVATAR_OUTPUT_WARN_RATIO times its own size (every frame is stored whole, so a
    still or barely moving clip compresses far better than its frames: a 1 MB static 1080p
    clip made 1.58 GB). Measured files once ready, the estimate before."""
    if not video or not video.get("source_bytes"):
        return []
    source = int(video["source_bytes"])
    output = size_bytes or estimated_output_bytes(int(video["width"]), int(video["height"]),
                                                  int(video["frame_count"]), settings.AVATAR_FRAME_FORMAT,
                                                  settings.AVATAR_CROP_SIZE)
    ratio = output / max(1, source)
    if ratio <= settings.AVATAR_OUTPUT_WARN_RATIO:
        return []
    return [{
        "code": "large_output",
        "message": (f"This {source / 2**20:.1f} MB video makes {'' if size_bytes else 'about '}"
                    f"{output / 2**20:.0f} MB of prepared files ({ratio:.0f} times its size): every frame "
                    "is stored whole. A shorter clip, or a lower resolution, takes less disk."),
        "details": {"source_bytes": source, "output_bytes": output, "ratio": round(ratio, 1),
                    "estimated": not size_bytes},
    }]


def job_priority() -> int | str:
    """AVATAR_JOB_PRIORITY: "idle", or a niceness from 0 to 19."""
    value = str(settings.AVATAR_JOB_PRIORITY).strip().lower()
    return value if value == "idle" else min(19, max(0, int(value)))


def prepare_options(apply_blur: bool) -> PrepareOptions:
    return PrepareOptions(
        apply_blur=apply_blur,
        crop_size=settings.AVATAR_CROP_SIZE,
        frame_format=settings.AVATAR_FRAME_FORMAT,
        jpeg_quality=settings.AVATAR_JPEG_QUALITY,
        detect_every=settings.AVATAR_DETECT_EVERY,
        min_face_ratio=settings.AVATAR_MIN_FACE_RATIO,
        min_face_px=settings.AVATAR_MIN_FACE_PX,
        max_multiple_faces_ratio=settings.AVATAR_MAX_MULTIPLE_FACES_RATIO,
        face_detector=settings.AVATAR_FACE_DETECTOR,
        face_model=settings.AVATAR_FACE_MODEL or None,
        device=compute_device(),
        limits=video_limits(),
        max_output_bytes=settings.AVATAR_MAX_OUTPUT_BYTES or None,
    )


def run_avatar_job(avatar_id: str, stop: JobStop, in_child_process: bool | None = None) -> None:
    """Prepare one avatar, stopping between two frames when `stop` says so. `in_child_process`
    (default: the setting) runs the pipeline in a child process, which protects a server's API; a
    Celery worker is already a process of its own."""
    close_old_connections()
    if in_child_process is None:
        in_child_process = settings.AVATAR_JOB_IN_CHILD_PROCESS
    try:
        _run(avatar_id, stop, in_child_process)
    finally:
        # Worker threads outlive requests; never keep a connection (and SQLite's locks) idle.
        connection.close()


def run_in_progress(avatar_id: str) -> bool:
    """Whether a run of the avatar has started and not yet ended (its row has a stage)."""
    return Avatar.objects.filter(avatar_id=avatar_id, stage__isnull=False).exists()


def _run(avatar_id: str, stop: JobStop, in_child_process: bool) -> None:
    avatar = Avatar.objects.filter(avatar_id=avatar_id).first()
    if avatar is None or avatar.state not in ACTIVE_STATES:
        return  # deleted, or finished by an earlier job, before this one started
    run = avatar.run + 1
    if stop.interrupted:
        return  # shutting down before it started: the row stays queued for the next start
    if stop.is_set():
        _finish(avatar, avatar.run, state=AvatarState.CANCELLED)
        return
    try:
        check_disk_space(avatar.video)  # space may have gone since the avatar was accepted
    except InsufficientStorage as exc:
        logger.warning("avatar %s: not started: %s", avatar_id, exc.message)
        _finish(avatar, avatar.run, state=AvatarState.FAILED, error_code=exc.code, error_message=exc.message)
        return
    Avatar.objects.filter(pk=avatar.pk).update(
        state=AvatarState.PROCESSING, stage="probe", progress=0.0, frames_done=0, frames_total=0,
        run=run, error_code=None, error_message=None, updated_at=timezone.now(),
    )
    publish_row(avatar.pk)
    storage.clear_work_dirs_of(avatar_id)
    work_dir = storage.new_work_dir(avatar_id)
    logger.info("avatar %s: run %d started", avatar_id, run)
    try:
        with storage.local_source(avatar.source_file) as source:
            # In a child process by default: there it cannot slow the API down (see child_process.py).
            run_prepare = (partial(prepare_in_child, priority=job_priority()) if in_child_process else prepare)
            result = run_prepare(
                source, work_dir, prepare_options(avatar.apply_blur),
                on_progress=ProgressRecorder(avatar.pk, avatar_id, run), cancelled=stop.is_set,
            )
        if stop.is_set():
            raise PipelineCancelled()
        _publish(avatar, run, result)
    except PipelineCancelled:
        if stop.interrupted:
            logger.info("avatar %s: run %d interrupted by shutdown; back in the queue", avatar_id, run)
            _requeue(avatar, run)
        else:
            logger.info("avatar %s: run %d cancelled", avatar_id, run)
            _finish(avatar, run, state=AvatarState.CANCELLED)
    except PipelineError as exc:
        logger.info("avatar %s: run %d failed: %s", avatar_id, run, exc.code)
        _finish(avatar, run, state=AvatarState.FAILED, error_code=exc.code, error_message=exc.message)
    except Exception:
        logger.exception("avatar %s: run %d crashed", avatar_id, run)
        _finish(avatar, run, state=AvatarState.FAILED, error_code="internal_error",
                error_message="Preparing the avatar failed unexpectedly; reprocess it, and tell the "
                "operators if it fails again.")
    finally:
        # After a successful publish the folder has moved; otherwise nothing of the run may remain.
        shutil.rmtree(work_dir, ignore_errors=True)


def _publish(avatar: Avatar, run: int, result: PreparedAvatar) -> None:
    """Move the prepared files into place, then mark the row ready and announce it (the tutor
    switches to it: tutors/receivers.py)."""
    avatar_id = avatar.avatar_id
    size_bytes = storage.folder_size(result.out_dir)  # measured here: in a bucket it would cost a request a file
    storage.backend().publish_prepared(avatar_id, result.out_dir)
    with transaction.atomic():
        updated = Avatar.objects.filter(pk=avatar.pk, run=run, state=AvatarState.PROCESSING).update(
            state=AvatarState.READY, stage=None, progress=100.0,
            frames_done=result.frame_count, frames_total=result.frame_count,
            video={**result.video.as_dict(), "source_bytes": (avatar.video or {}).get("source_bytes")},
            faces={"detected_ratio": round(result.face_ratio, 4), "crop_size": result.crop_size},
            mouth_coverage=result.mouth_coverage or None,
            size_bytes=size_bytes,
            ready_at=timezone.now(), updated_at=timezone.now(),
        )
        if updated:
            _announce(avatar, AvatarState.READY)  # the tutor switches in this same transaction
    publish_row(avatar.pk)
    if not updated:
        # Deleted (or restarted) while the files were moving: what was just published belongs to no one.
        storage.backend().remove_prepared(avatar_id)
        logger.info("avatar %s: run %d finished after its avatar was deleted; files removed", avatar_id, run)
        return
    logger.info("avatar %s: run %d ready (%d frames)", avatar_id, run, result.frame_count)


def _requeue(avatar: Avatar, run: int) -> None:
    """Put an interrupted run's avatar back in the queue, unless it was cancelled or deleted
    meanwhile (only a row still processing this run is changed)."""
    storage.backend().remove_prepared(avatar.avatar_id)
    Avatar.objects.filter(pk=avatar.pk, run=run, state=AvatarState.PROCESSING).update(
        state=AvatarState.QUEUED, stage=None, progress=0.0, frames_done=0, updated_at=timezone.now(),
    )
    publish_row(avatar.pk)


def _finish(avatar: Avatar, run: int, *, state: str, error_code: str | None = None,
            error_message: str | None = None) -> None:
    """End a run that produced nothing: no files are left for a failed or cancelled avatar."""
    storage.backend().remove_prepared(avatar.avatar_id)
    with transaction.atomic():
        updated = Avatar.objects.filter(pk=avatar.pk, run=run).update(
            state=state, stage=None, error_code=error_code, error_message=error_message, updated_at=timezone.now(),
        )
        if updated:
            _announce(avatar, state, error_code)
    publish_row(avatar.pk)


def _announce(avatar: Avatar, state: str, error_code: str | None = None) -> None:
    """Tell the apps built on avatars that the run ended (avatars/signals.py), inside the
    transaction that marks the row. A receiver's failure is logged, never turned into a failed
    avatar."""
    for receiver, result in avatar_finished.send_robust(
        sender=Avatar, avatar_id=avatar.avatar_id, tutor_id=avatar.tutor_id, state=state, error_code=error_code,
    ):
        if isinstance(result, Exception):
            logger.error("avatar %s: %s failed on avatar_finished", avatar.avatar_id, receiver, exc_info=result)
