"""How tutors follow their avatars (connected in TutorsConfig.ready()).

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
from avatars.signals import avatar_finished
from tutors.models import Tutor
from tutors.signals import tutor_avatar_switched

logger = logging.getLogger(__name__)


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
