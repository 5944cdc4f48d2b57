"""How tutors follow their avatars (connected in TutorsConfig.ready()): the avatars app announces
what happens to an avatar (avatars/signals.py) and the tutor's pointers move here, in the
avatar's own transaction, so the avatars app never imports the tutors app.

A new avatar made for a tutor becomes its pending one, under the tutor's row lock; an avatar
queued again stops being the tutor's ready one until it is ready again; a deleted avatar is no
longer named by any tutor.

When a tutor's pending avatar is ready, the tutor switches to it in one step: `avatar_id` goes
from the old ready avatar straight to the new one, so there is no moment without an avatar and
sessions never see "none". Sessions showing the old avatar move to the new one
(`tutor_avatar_switched`); then the old avatar is deleted, unless TUTOR_KEEP_REPLACED_AVATARS
or something still shows it. A pending avatar that fails or is cancelled changes nothing: the
tutor keeps its avatar, and the failed one stays named as pending, with its error, until the
next video.
"""

from __future__ import annotations

import logging
from functools import partial

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from avatars.models import AvatarState
from avatars.signals import avatar_creating, avatar_deleting, avatar_finished, avatar_requeued
from common.errors import NotFound
from tutors.models import Tutor
from tutors.signals import tutor_avatar_switched

logger = logging.getLogger(__name__)


@receiver(avatar_creating, dispatch_uid="tutors.claim_new_avatar")
def claim_new_avatar(sender, *, avatar_id: str, tutor_id: int | None, **kwargs) -> str | None:
    """The newest avatar made for a tutor is the one it switches to when ready; until then the
    tutor keeps its current avatar. Runs in the new avatar's transaction, before its row is
    written; answers the pending avatar the new one supersedes (tutors.services.replace_video
    deletes it).

    The tutor's row, locked, as it stands now (not as the request first read it): a tutor deleted
    meanwhile takes no new avatar (nothing would outlive it), and the pending avatar this one
    replaces is the one named now, even when another new video raced this one.
    tutors.services.delete_tutor takes the same lock."""
    if tutor_id is None:
        return None
    locked = Tutor.objects.select_for_update().filter(pk=tutor_id).values_list("avatar_id", "pending_avatar_id").first()
    if locked is None:
        raise NotFound(f"Tutor {tutor_id} does not exist.", {"field": "tutor_id"})
    current_id, pending_id = locked
    Tutor.objects.filter(pk=tutor_id).update(pending_avatar_id=avatar_id, updated_at=timezone.now())
    return pending_id if pending_id and pending_id != current_id else None


@receiver(avatar_requeued, dispatch_uid="tutors.follow_requeued_avatar")
def follow_requeued_avatar(sender, *, avatar_id: str, **kwargs) -> None:
    """Its files go now: a tutor showing it has none until the run is ready, then switches back to
    it, unless a newer video of the tutor is already being prepared."""
    Tutor.objects.filter(avatar_id=avatar_id, pending_avatar_id__isnull=True).update(
        avatar_id=None, pending_avatar_id=avatar_id, updated_at=timezone.now())
    Tutor.objects.filter(avatar_id=avatar_id).update(avatar_id=None, updated_at=timezone.now())


@receiver(avatar_deleting, dispatch_uid="tutors.forget_deleted_avatar")
def forget_deleted_avatar(sender, *, avatar_id: str, **kwargs) -> None:
    Tutor.objects.filter(avatar_id=avatar_id).update(avatar_id=None, updated_at=timezone.now())
    Tutor.objects.filter(pending_avatar_id=avatar_id).update(pending_avatar_id=None, updated_at=timezone.now())


@receiver(avatar_finished, dispatch_uid="tutors.switch_to_ready_avatar")
def switch_to_ready_avatar(sender, *, avatar_id: str, tutor_id: int | None, state: str, **kwargs) -> None:
    if state != AvatarState.READY or tutor_id is None:
        return
    with transaction.atomic():
        tutor = Tutor.objects.select_for_update().filter(pk=tutor_id).first()
        if tutor is None:
            return
        if tutor.pending_avatar_id not in (None, avatar_id):
            logger.info("tutor %s: avatar %s is ready, but a newer video (%s) is pending; not switching",
                        tutor_id, avatar_id, tutor.pending_avatar_id)
            return
        old_avatar_id = tutor.avatar_id
        # Conditional on what was read: a newer video named meanwhile keeps the tutor as it is.
        if not Tutor.objects.filter(pk=tutor_id, pending_avatar_id=tutor.pending_avatar_id).update(
                avatar_id=avatar_id, pending_avatar_id=None, updated_at=timezone.now()):
            return
    if old_avatar_id in (None, avatar_id):
        logger.info("tutor %s: avatar %s ready", tutor_id, avatar_id)
        return
    logger.info("tutor %s: switched from avatar %s to %s", tutor_id, old_avatar_id, avatar_id)
    transaction.on_commit(partial(_after_switch, tutor_id, old_avatar_id, avatar_id), robust=True)


def _after_switch(tutor_id: int, old_avatar_id: str, new_avatar_id: str) -> None:
    """Once the switch is committed: sessions follow, then the replaced avatar goes."""
    tutor_avatar_switched.send(sender=Tutor, tutor_id=tutor_id, old_avatar_id=old_avatar_id,
                               new_avatar_id=new_avatar_id)
    if not settings.TUTOR_KEEP_REPLACED_AVATARS:
        from avatars import services as avatar_services
        from common.errors import ServiceError

        try:
            avatar_services.delete_avatar(old_avatar_id)
        except ServiceError as exc:  # already gone, or still shown somewhere: keep it
            logger.info("tutor %s: replaced avatar %s kept (%s)", tutor_id, old_avatar_id, exc.code)
