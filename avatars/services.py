"""The rules for avatars: what may be created, deleted, reprocessed, and how.

Every caller (the API, the admin, staff pages, management commands) goes through these
functions; none re-implements a rule.
"""

from __future__ import annotations

import logging
import re
import time
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from avatars import events, jobs, signals, storage, usage
from avatars.errors import (AvatarBusy, AvatarExists, AvatarInUse, InvalidVideo, QueueFull, SourceIncomplete,
                            UnsupportedMedia)
from avatars.models import ACTIVE_STATES, FINAL_STATES, Avatar, AvatarSource, AvatarState
from avatars.pipeline import PipelineError, VideoInfo, probe
from avatars.preparation import check_disk_space, output_warnings, video_limits
from common.errors import InvalidRequest, NotFound

logger = logging.getLogger(__name__)

AVATAR_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# Words the avatar routes use after /v1/avatars/: an avatar by that name could not be read back.
RESERVED_AVATAR_IDS = frozenset({"upload"})
MAX_WAIT_S = 300.0


def validate_avatar_id(avatar_id: str) -> str:
    if not isinstance(avatar_id, str) or not AVATAR_ID_PATTERN.fullmatch(avatar_id):
        raise InvalidRequest(
            "avatar_id must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit "
            "(for example avatar_tutor_5).",
            {"field": "avatar_id"},
        )
    if avatar_id.lower() in RESERVED_AVATAR_IDS:
        raise InvalidRequest(f"avatar_id '{avatar_id}' is reserved by the API's routes; choose another.",
                             {"field": "avatar_id"})
    return avatar_id


def get_avatar(avatar_id: str) -> Avatar:
    """The avatar, or NotFound; an id no avatar can have is InvalidRequest (400)."""
    if not isinstance(avatar_id, str) or not AVATAR_ID_PATTERN.fullmatch(avatar_id):
        validate_avatar_id(avatar_id)
    avatar = Avatar.objects.select_related("tutor").filter(avatar_id=avatar_id).first()
    if avatar is None:
        raise NotFound(f"Avatar '{avatar_id}' does not exist.")
    return avatar


def probe_video(local_path: Path) -> VideoInfo:
    """Refuse at once a file that is not a usable video, with the contract's codes."""
    try:
        return probe(local_path, video_limits())
    except PipelineError as exc:
        if exc.code == "not_a_video":
            raise UnsupportedMedia(exc.message, {"reason": exc.code}) from exc
        raise InvalidVideo(exc.message, {"reason": exc.code, **exc.details}) from exc


def resolve_import_path(video_path: str) -> Path:
    """The file `video_path` names, if it lies inside an import folder after following links.

    The refusal does not say whether the path exists outside the import folders, so the API
    cannot be used to probe the server's filesystem.
    """
    if not isinstance(video_path, str) or not video_path.strip() or "\x00" in video_path:
        raise InvalidRequest("video_path must be a file path.", {"field": "video_path"})
    outside = InvalidRequest(
        "video_path must be inside one of the server's import folders (setting AVATAR_IMPORT_DIRS); "
        "or upload the file to /v1/avatars/upload instead.",
        {"field": "video_path"},
    )
    try:
        resolved = Path(video_path).resolve()
    except (OSError, RuntimeError) as exc:  # a loop of links, a name too long for the filesystem
        raise outside from exc
    if not any(resolved.is_relative_to(folder) for folder in settings.AVATAR_IMPORT_DIRS):
        raise outside
    try:
        exists, is_file = resolved.exists(), resolved.is_file()
    except OSError as exc:
        raise InvalidRequest(f"'{video_path}' cannot be read as a file.", {"field": "video_path"}) from exc
    if not exists:
        raise NotFound(f"No video file at '{video_path}'.", {"field": "video_path"})
    if not is_file:
        raise InvalidRequest(f"'{video_path}' is not a file.", {"field": "video_path"})
    return resolved


def _check_tutor(tutor_id: int | None) -> None:
    """NotFound at once, before any work, for a tutor that does not exist. Read through the
    Avatar's own foreign key: the avatars app imports nothing from the tutors app."""
    if tutor_id is None:
        return
    tutor_rows = Avatar._meta.get_field("tutor").related_model._default_manager
    if not tutor_rows.filter(pk=tutor_id).exists():
        raise NotFound(f"Tutor {tutor_id} does not exist.", {"field": "tutor_id"})


def _check_free(avatar_id: str) -> None:
    if Avatar.objects.filter(avatar_id=avatar_id).exists():
        raise AvatarExists(f"Avatar '{avatar_id}' already exists; delete it first or choose another id.")


def create_avatar(
    *,
    avatar_id: str,
    local_path: Path,
    original_name: str,
    source: str,
    apply_blur: bool = False,
    tutor_id: int | None = None,
) -> Avatar:
    """Store the video, write the queued row and queue the job; refuse (and keep nothing) if any
    step fails. `local_path` is read, never moved or deleted."""
    validate_avatar_id(avatar_id)
    _check_tutor(tutor_id)
    _check_free(avatar_id)
    state_before = _file_state(local_path)
    info = probe_video(local_path)
    source_bytes = state_before[0]
    check_disk_space(info.as_dict(), extra_bytes=source_bytes)  # the stored source too
    reservation = jobs.reserve()
    stored_name = None
    try:
        # The copy first, outside any transaction: copying a large upload inside one held the
        # database's write lock for its whole length (a 450 MB upload blocked writes for 0.9 s).
        stored_name = storage.store_source(avatar_id, local_path, original_name)
        state_after = _file_state(local_path)
        if state_after != state_before:  # written to while it was probed and copied: a partial copy
            raise _still_being_written(state_before, state_after)
        with transaction.atomic():
            # The apps built on avatars act in this transaction, before the row is written: the
            # tutors app locks the tutor's row, refuses a tutor deleted meanwhile (NotFound: nothing
            # is kept), names the new avatar as the tutor's pending one and answers the pending one
            # it supersedes (tutors/receivers.py).
            answers = signals.avatar_creating.send(sender=Avatar, avatar_id=avatar_id, tutor_id=tutor_id)
            superseded = next((answer for _, answer in answers if answer), None)
            avatar = Avatar.objects.create(
                avatar_id=avatar_id,
                tutor_id=tutor_id,
                apply_blur=apply_blur,
                source=source,
                source_file=stored_name,
                source_name=original_name[:255],
                video={**info.as_dict(), "source_bytes": source_bytes},
                state=AvatarState.QUEUED,
            )
            avatar.superseded_avatar_id = superseded  # for the caller: the replacement this one ends
    except IntegrityError as exc:
        reservation.release()
        if stored_name:
            storage.remove_source(stored_name)
        raise AvatarExists(f"Avatar '{avatar_id}' already exists; delete it first or choose another id.") from exc
    except BaseException:
        reservation.release()
        if stored_name:
            storage.remove_source(stored_name)
        raise
    try:
        _queue_when_committed(reservation, avatar_id)
    except Exception as exc:  # the queue (a broker) cannot be reached: keep nothing, say so
        logger.exception("avatar %s: could not be queued", avatar_id)
        Avatar.objects.filter(pk=avatar.pk).delete()
        storage.remove_source(stored_name)
        raise QueueFull("The job queue cannot be reached; try again in a minute.", retry_after_s=60) from exc
    logger.info("avatar %s: queued from %s (%s)", avatar_id, source, original_name)
    for warning in output_warnings(avatar.video):
        logger.warning("avatar %s: %s", avatar_id, warning["message"])
    return avatar


def _file_state(path: Path) -> tuple[int, int]:
    facts = Path(path).stat()
    return facts.st_size, facts.st_mtime_ns


def _still_being_written(before: tuple[int, int], after: tuple[int, int]) -> SourceIncomplete:
    return SourceIncomplete(
        f"The video file is still being written (it went from {before[0]} to {after[0]} bytes while it was read); "
        "send the request again once it is complete.", {"size_bytes": after[0]})


def wait_until_settled(path: Path) -> None:
    """A file changed less than AVATAR_IMPORT_SETTLE_S ago is watched until it has been still that
    long; SourceIncomplete if it changes meanwhile. A recorder's MKV being written was prepared
    from the 112 of its 625 frames that existed when it was named, without a word."""
    before = _file_state(path)
    quiet_s = time.time() - before[1] / 1e9
    settle_s = settings.AVATAR_IMPORT_SETTLE_S
    if quiet_s < settle_s:
        time.sleep(min(settle_s, settle_s - quiet_s))
        after = _file_state(path)
        if after != before:
            raise _still_being_written(before, after)


def create_avatar_from_path(*, avatar_id: str, video_path: str, apply_blur: bool = False,
                            tutor_id: int | None = None) -> Avatar:
    """The seed's POST /v1/avatars: a video already on the server, inside an import folder. A
    file still being written is refused (SourceIncomplete), here and while it is copied."""
    validate_avatar_id(avatar_id)
    local_path = resolve_import_path(video_path)
    wait_until_settled(local_path)
    return create_avatar(avatar_id=avatar_id, local_path=local_path, original_name=local_path.name,
                         source=AvatarSource.PATH, apply_blur=apply_blur, tutor_id=tutor_id)


def create_avatar_from_upload(*, avatar_id: str, local_path: Path, original_name: str,
                              apply_blur: bool = False, tutor_id: int | None = None) -> Avatar:
    """The seed's POST /v1/avatars/upload: `local_path` is the uploaded file's temporary copy."""
    return create_avatar(avatar_id=avatar_id, local_path=local_path, original_name=original_name,
                         source=AvatarSource.UPLOAD, apply_blur=apply_blur, tutor_id=tutor_id)


def wait_for_avatar(avatar: Avatar, timeout_s: float) -> Avatar:
    """Hold until the avatar is ready, failed or cancelled, or `timeout_s` passes; the row as it
    then stands. Polls the row, so it works whichever process runs the job."""
    deadline = time.monotonic() + min(max(0.0, timeout_s), MAX_WAIT_S)
    while avatar.state not in FINAL_STATES and time.monotonic() < deadline:
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        fresh = Avatar.objects.select_related("tutor").filter(pk=avatar.pk).first()
        if fresh is None:
            raise NotFound(f"Avatar '{avatar.avatar_id}' was deleted while the request waited for it.")
        avatar = fresh
    return avatar


def _refuse_if_shown(avatar_id: str, advice: str) -> None:
    """AvatarInUse (409) while active sessions show the avatar, naming them."""
    showing = usage.in_use(avatar_id)
    if showing:
        count = sum(len(ids) for ids in showing.values())
        raise AvatarInUse(f"Avatar '{avatar_id}' is shown in {count} active session(s); {advice}.", showing)


def delete_avatar(avatar_id: str, force: bool = False) -> None:
    """Cancel a running job, then remove the row, its files and the tutor's references to it.

    An avatar that active tutoring sessions show is refused (avatar_in_use), unless `force`,
    which ends those sessions first.
    """
    avatar = get_avatar(avatar_id)
    if not force:
        _refuse_if_shown(avatar_id, "end them first, or delete with ?force=true to end them")
    usage.release(avatar_id)
    if avatar.state in ACTIVE_STATES and not cancel_job(avatar_id, wait_s=10.0):
        logger.warning("avatar %s: its running job did not stop within 10 s; deleting anyway", avatar_id)
    with transaction.atomic():
        # Whatever names it (a tutor's avatar or pending avatar) lets go in the same step.
        signals.avatar_deleting.send(sender=Avatar, avatar_id=avatar_id)
        avatar.delete()
    storage.backend().remove_prepared(avatar_id)
    storage.remove_source(avatar.source_file)
    # Whoever watches its progress learns that it is gone.
    events.publish({**events.progress_message(avatar), "state": AvatarState.CANCELLED, "stage": None})
    logger.info("avatar %s: deleted", avatar_id)


def cancel_job(avatar_id: str, wait_s: float = 0.0) -> bool:
    """Stop the avatar's job, queued or running. The row is marked cancelled first, in one
    conditional update: a job not yet started is skipped (the thread pool drops it from its queue
    at once, a Celery worker skips a row that is no longer queued), a running one stops between
    two frames and removes its own work folder. Waits up to `wait_s` for a running job; True when
    none is left running."""
    Avatar.objects.filter(avatar_id=avatar_id, state__in=ACTIVE_STATES).update(
        state=AvatarState.CANCELLED, updated_at=timezone.now()
    )
    return jobs.cancel(avatar_id, wait_s)


def reprocess_avatar(avatar_id: str, apply_blur: bool | None = None) -> Avatar:
    """Run the pipeline again from the stored source video (optionally changing the blur).
    Refused while active sessions show the avatar (its files go at once; avatar_in_use, as for
    delete) and while a run is queued or processing (avatar_busy)."""
    avatar = get_avatar(avatar_id)
    if avatar.state in ACTIVE_STATES:
        raise AvatarBusy(f"Avatar '{avatar_id}' is {avatar.state}; wait for it to finish or delete it.")
    _refuse_if_shown(avatar_id, "they would lose its frames; end them first")
    reservation = jobs.reserve()
    try:
        with transaction.atomic():
            # One conditional update: of two reprocess calls racing, only one queues a run.
            changes = dict(state=AvatarState.QUEUED, stage=None, progress=0.0, frames_done=0, frames_total=0,
                           error_code=None, error_message=None, ready_at=None, size_bytes=None,
                           updated_at=timezone.now())
            if apply_blur is not None:
                changes["apply_blur"] = apply_blur
            if not Avatar.objects.filter(pk=avatar.pk, state__in=FINAL_STATES).update(**changes):
                if not Avatar.objects.filter(pk=avatar.pk).exists():
                    raise NotFound(f"Avatar '{avatar_id}' does not exist.")  # deleted meanwhile
                raise AvatarBusy(f"Avatar '{avatar_id}' is already queued or processing; wait for it to finish "
                                 "or delete it.")
            # Its files go now: whatever shows it as ready stops, in the same step (a tutor has
            # none until the run is ready, then switches back to it: tutors/receivers.py).
            signals.avatar_requeued.send(sender=Avatar, avatar_id=avatar_id)
            avatar = Avatar.objects.select_related("tutor").get(pk=avatar.pk)  # the row as queued (a delete may follow)
        # Files exist only for a ready avatar; the new run publishes its own.
        storage.backend().remove_prepared(avatar_id)
    except BaseException:
        reservation.release()
        raise
    _queue_when_committed(reservation, avatar_id)
    return avatar


def _queue_when_committed(reservation: jobs.Reservation, avatar_id: str) -> None:
    """Queue the avatar's job once its row is committed: the worker (another thread, or another
    machine) reads the row, and before the commit it would find none and never run. Outside a
    transaction that is now, and a queue that cannot be reached raises here. Inside a caller's
    transaction (the Django admin saves in one) the job is queued when it commits, and nothing is
    queued if it rolls back; the reserved slot is given back at once, since a rollback would never
    return it (a job queued on commit is not refused)."""
    if not transaction.get_connection().in_atomic_block:
        reservation.submit(avatar_id)
        return
    reservation.release()
    transaction.on_commit(partial(jobs.submit, avatar_id), robust=True)


def requeue_interrupted() -> int:
    """Queue again the jobs a crash left queued or processing; run at server start. (With Celery
    the broker does this: a job whose worker died is delivered again, so nothing to do here.)"""
    if jobs.uses_celery():
        return 0
    storage.clear_work_dirs()
    interrupted = list(Avatar.objects.filter(state__in=ACTIVE_STATES).order_by("created_at"))
    for avatar in interrupted:
        Avatar.objects.filter(pk=avatar.pk).update(
            state=AvatarState.QUEUED, stage=None, progress=0.0, frames_done=0, updated_at=timezone.now()
        )
        storage.backend().remove_prepared(avatar.avatar_id)
        jobs.submit(avatar.avatar_id)
    if interrupted:
        logger.info("re-queued %d interrupted avatar jobs", len(interrupted))
    return len(interrupted)
