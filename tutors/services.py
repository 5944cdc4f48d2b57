"""The rules for tutors: create (with an avatar video, as the seed's web server did), change,
replace the video without taking the tutor's avatar away, delete. Every caller (the API, the
staff pages, the admin) goes through these functions."""

from __future__ import annotations

import logging
from pathlib import Path

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from avatars import services as avatar_services
from avatars.errors import AvatarBusy, AvatarExists, AvatarInUse
from avatars.models import ACTIVE_STATES, Avatar
from avatars.usage import in_use
from common.errors import InvalidRequest, NotFound, ServiceError
from tutors.models import Tutor

logger = logging.getLogger(__name__)

MAX_NAME = 200


def get_tutor(tutor_id: int) -> Tutor:
    tutor = Tutor.objects.filter(pk=tutor_id).first()
    if tutor is None:
        raise NotFound(f"Tutor {tutor_id} does not exist.")
    return tutor


def list_tutors(*, search: str = "", limit: int = 50, offset: int = 0) -> tuple[int, list[Tutor]]:
    """Tutors whose name (or description) contains `search`, newest first."""
    tutors = Tutor.objects.all()
    if search:
        tutors = tutors.filter(Q(name__icontains=search) | Q(description__icontains=search))
    return tutors.count(), list(tutors.order_by("-created_at", "-id")[offset:offset + limit])


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidRequest("name must not be empty.", {"field": "name"})
    if len(name) > MAX_NAME:
        raise InvalidRequest(f"name must be at most {MAX_NAME} characters.", {"field": "name"})
    return name


def avatar_id_for_tutor(tutor: Tutor) -> str:
    """The id the seed's web server gives a tutor's avatar."""
    return f"avatar_tutor_{tutor.pk}"


def avatar_id_for_video(tutor: Tutor) -> str:
    """`avatar_tutor_<id>` (the seed's id) for a tutor's first video; later videos, whose
    predecessor still exists while they are prepared, `avatar_tutor_<id>_<n>`."""
    base = avatar_id_for_tutor(tutor)
    taken = set(Avatar.objects.filter(avatar_id__startswith=base).values_list("avatar_id", flat=True))
    if base not in taken:
        return base
    number = 2
    while f"{base}_{number}" in taken:
        number += 1
    return f"{base}_{number}"


def create_tutor(*, name: str, description: str = "", video: Path | None = None, video_name: str = "video",
                 apply_blur: bool = False) -> tuple[Tutor, Avatar | None]:
    """The seed's flow in one step: the tutor, then its avatar `avatar_tutor_<id>` from `video`.
    A refused video (or a full queue) refuses the whole request: no tutor is left behind."""
    name = _clean_name(name)
    if video is not None:
        avatar_services.probe_video(video)  # refuse a bad file before anything is written
    tutor = Tutor.objects.create(name=name, description=description or "")
    avatar = None
    if video is not None:
        # Not in one transaction with the tutor: the avatar's service copies the video outside
        # any (a long copy must not hold the database's write lock); a refusal removes the tutor.
        try:
            avatar = avatar_services.create_avatar_from_upload(
                avatar_id=avatar_id_for_tutor(tutor), local_path=video,
                original_name=video_name, apply_blur=apply_blur, tutor_id=tutor.pk,
            )
        except BaseException:
            Tutor.objects.filter(pk=tutor.pk).delete()
            raise
        tutor = get_tutor(tutor.pk)  # a DELETE may have come in between: 404, not a 500
    logger.info("tutor %s: created%s", tutor.pk, f" with avatar {avatar.avatar_id}" if avatar else "")
    return tutor, avatar


def update_tutor(tutor_id: int, *, name: str | None = None, description: str | None = None) -> Tutor:
    """One conditional update: a tutor deleted meanwhile is NotFound (saving the row read before
    raised "did not affect any rows", a 500)."""
    changes = {}
    if name is not None:
        changes["name"] = _clean_name(name)
    if description is not None:
        changes["description"] = description
    if changes and not Tutor.objects.filter(pk=tutor_id).update(**changes, updated_at=timezone.now()):
        raise NotFound(f"Tutor {tutor_id} does not exist.")
    return get_tutor(tutor_id)


# New avatar ids tried when racing requests take the one picked (each try copies the video again).
ID_TRIES = 10


def replace_video(tutor: Tutor, *, local_path: Path, original_name: str, apply_blur: bool = False) -> Avatar:
    """Start a new avatar for the tutor from a video. The tutor keeps its current avatar (and
    its sessions keep running) until the new one is ready, then switches in one step
    (tutors/receivers.py). A refused file changes nothing; a replacement still being prepared
    gives way to this newer one, and is deleted.

    Racing videos for one tutor: the avatar id is reserved by the row's unique key (a request
    whose id another took first takes the next one), and the replacement superseded is the one
    the tutor names when this one is written, under the tutor's row lock (taken in the avatar's
    transaction: tutors/receivers.py `claim_new_avatar`), so whichever is written last wins and
    the other is deleted, files and all (two PATCHes 0-20 ms apart left the first one ready,
    owned by the tutor, used by nothing; or answered `409 avatar_exists` for an id the client
    never chose). A tutor deleted meanwhile: NotFound,
    and nothing is left."""
    avatar_services.probe_video(local_path)
    for attempt in range(ID_TRIES):
        try:
            # The new avatar first: if it is refused (disk, queue), the previous replacement stays.
            avatar = avatar_services.create_avatar_from_upload(
                avatar_id=avatar_id_for_video(tutor), local_path=local_path, original_name=original_name,
                apply_blur=apply_blur, tutor_id=tutor.pk,
            )
            break
        except AvatarExists:
            if attempt == ID_TRIES - 1:
                raise
    previous = avatar.superseded_avatar_id
    if previous:
        try:  # the replacement this one supersedes (queued, processing, failed or even ready): never used
            avatar_services.delete_avatar(previous)
            logger.info("tutor %s: avatar %s superseded by %s and deleted", tutor.pk, previous, avatar.avatar_id)
        except ServiceError as exc:
            logger.info("tutor %s: superseded avatar %s kept (%s)", tutor.pk, previous, exc.code)
    tutor = get_tutor(tutor.pk)  # a DELETE may have come in between: 404, not a 500
    logger.info("tutor %s: new video, avatar %s pending (keeps %s until it is ready)",
                tutor.pk, avatar.avatar_id, tutor.avatar_id or "none")
    return avatar


def avatars_of(tutor: Tutor) -> list[Avatar]:
    """Every avatar made for the tutor, or that it shows, newest first."""
    named = [avatar_id for avatar_id in (tutor.avatar_id, tutor.pending_avatar_id) if avatar_id]
    return list(Avatar.objects.filter(Q(tutor=tutor) | Q(avatar_id__in=named)).order_by("-created_at"))


def delete_tutor(tutor_id: int, force: bool = False) -> None:
    """Delete the tutor and its avatars. Refused (avatar_in_use) while an active session shows one
    of them, unless `force`, which ends those sessions first.

    A new video may arrive while this runs: its avatar is written under the tutor's row lock
    (taken in the avatar's transaction: tutors/receivers.py `claim_new_avatar`), which this takes
    too before the row goes, so either the avatar is there to be seen (and is deleted on the next
    pass) or the tutor is gone first (and the video is refused with 404). Nothing outlives its tutor."""
    tutor = get_tutor(tutor_id)
    deleted = 0
    for _ in range(ID_TRIES):
        avatars = avatars_of(tutor)
        showing: dict[str, list[str]] = {}
        for avatar in avatars:
            for kind, ids in in_use(avatar.avatar_id).items():
                showing.setdefault(kind, []).extend(ids)
        if showing and not force:
            count = sum(len(ids) for ids in showing.values())
            raise AvatarInUse(f"Tutor {tutor_id}'s avatar is shown in {count} active session(s); end them first, "
                              "or delete with ?force=true to end them.", showing)
        # Jobs first (a running one stops between two frames), then ready avatars.
        for avatar in sorted(avatars, key=lambda avatar: avatar.state not in ACTIVE_STATES):
            try:
                avatar_services.delete_avatar(avatar.avatar_id, force=force)
                deleted += 1
            except NotFound:
                pass
        with transaction.atomic():
            locked = Tutor.objects.select_for_update().filter(pk=tutor_id).first()
            if locked is None:
                raise NotFound(f"Tutor {tutor_id} does not exist.")
            if not avatars_of(locked):
                locked.delete()
                logger.info("tutor %s: deleted with %d avatar(s)", tutor_id, deleted)
                return
        tutor = locked  # a new video came in meanwhile: its avatar goes on the next pass
    raise AvatarBusy(f"New videos for tutor {tutor_id} keep arriving while it is deleted; try again.")


def current_avatar(tutor: Tutor) -> Avatar | None:
    """The avatar the tutor shows now (its ready one), or None."""
    if not tutor.avatar_id:
        return None
    return Avatar.objects.filter(avatar_id=tutor.avatar_id).first()


def pending_avatar(tutor: Tutor) -> Avatar | None:
    """The avatar being made from the tutor's newest video (or the one that failed), or None."""
    if not tutor.pending_avatar_id:
        return None
    return Avatar.objects.filter(avatar_id=tutor.pending_avatar_id).first()


def tutors_with_avatars(tutors: list[Tutor]) -> list[tuple[Tutor, Avatar | None, Avatar | None]]:
    """(tutor, current avatar, pending avatar) for a page of tutors, in two queries."""
    named = {avatar_id for tutor in tutors for avatar_id in (tutor.avatar_id, tutor.pending_avatar_id) if avatar_id}
    by_id = {avatar.avatar_id: avatar for avatar in Avatar.objects.filter(avatar_id__in=named)}
    return [(tutor, by_id.get(tutor.avatar_id or ""), by_id.get(tutor.pending_avatar_id or "")) for tutor in tutors]
