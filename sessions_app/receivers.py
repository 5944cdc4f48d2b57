"""How sessions follow the avatars they show (connected in SessionsAppConfig.ready()): a session
waiting for its avatar starts when it is ready and ends (`avatar_failed`) when it fails or is
cancelled; a tutor's sessions move with the tutor to its new avatar."""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.dispatch import receiver

from avatars.models import AvatarState
from avatars.signals import avatar_finished
from sessions_app import services
from tutors.signals import tutor_avatar_switched


@receiver(avatar_finished, dispatch_uid="sessions.follow_avatar")
def follow_avatar(sender, *, avatar_id: str, state: str, **kwargs) -> None:
    # Once the avatar's new state is committed: a woken stream must find it ready.
    if state == AvatarState.READY:
        transaction.on_commit(partial(services.wake_sessions_waiting_for, avatar_id), robust=True)
    else:
        transaction.on_commit(partial(services.end_sessions_showing, avatar_id, reason="avatar_failed"), robust=True)


@receiver(tutor_avatar_switched, dispatch_uid="sessions.follow_tutor")
def follow_tutor(sender, *, tutor_id: int, old_avatar_id: str, new_avatar_id: str, **kwargs) -> None:
    services.move_sessions(tutor_id, old_avatar_id, new_avatar_id)
