"""The other apps' signals, turned into webhook events (connected in WebhooksConfig.ready()).

Each event's `data` is the resource as the API shows it at that moment (the avatar, tutor or
session resource; an utterance as its speak answer shows it, with its session). The receivers run
in the sender's thread and transaction, never on an event loop (the stage's signals come from its
database threads): they record rows only, and delivery starts once that transaction commits.
A receiver's failure is logged and never spoils the change that sent the signal (a savepoint of
its own, and no exception out).
"""

from __future__ import annotations

import functools
import logging

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from avatars.api.serializers import AvatarSerializer
from avatars.models import Avatar, AvatarState
from avatars.signals import avatar_finished
from sessions_app.api.serializers import SessionSerializer, UtteranceSerializer
from sessions_app.models import SessionState, TutoringSession, Utterance
from sessions_app.signals import session_ended, utterance_ended, utterance_started
from tutors.api.serializers import TutorSerializer
from tutors.models import Tutor
from tutors.signals import tutor_avatar_switched
from webhooks.services import emit

logger = logging.getLogger(__name__)


def _never_raises(function):
    @functools.wraps(function)
    def guarded(*args, **kwargs):
        try:
            with transaction.atomic():
                function(*args, **kwargs)
        except Exception:
            logger.exception("webhooks: %s failed; no event recorded", function.__name__)
    return guarded


def _avatar_event(event_type: str, avatar: Avatar) -> None:
    emit(event_type, AvatarSerializer(avatar).data, avatar_id=avatar.avatar_id, tutor_id=avatar.tutor_id)


def _session_started(session: TutoringSession) -> None:
    emit("session.started", SessionSerializer(session).data)


@receiver(avatar_finished, dispatch_uid="webhooks.avatar_finished")
@_never_raises
def avatar_finished_event(sender, *, avatar_id: str, state: str, **kwargs) -> None:
    if state not in (AvatarState.READY, AvatarState.FAILED):
        return  # cancelled: deleted (avatar.deleted follows) or being prepared again
    avatar = Avatar.objects.filter(avatar_id=avatar_id).first()
    if avatar is None:
        return
    _avatar_event(f"avatar.{state}", avatar)
    if state == AvatarState.READY:
        # Sessions that waited for this avatar are active now. Read in this transaction, before
        # the tutor's sessions move to it (after commit): those were active already.
        for session in TutoringSession.objects.filter(avatar_id=avatar_id, state=SessionState.ACTIVE):
            _session_started(session)


@receiver(post_delete, sender=Avatar, dispatch_uid="webhooks.avatar_deleted")
@_never_raises
def avatar_deleted_event(sender, *, instance: Avatar, **kwargs) -> None:
    _avatar_event("avatar.deleted", instance)


@receiver(tutor_avatar_switched, dispatch_uid="webhooks.tutor_avatar_switched")
@_never_raises
def tutor_switched_event(sender, *, tutor_id: int, old_avatar_id: str, new_avatar_id: str, **kwargs) -> None:
    tutor = Tutor.objects.filter(pk=tutor_id).first()
    if tutor is not None:
        emit("tutor.avatar_switched", {**TutorSerializer(tutor).data, "previous_avatar_id": old_avatar_id},
             tutor_id=tutor_id)


@receiver(post_save, sender=TutoringSession, dispatch_uid="webhooks.session_created")
@_never_raises
def session_created_event(sender, *, instance: TutoringSession, created: bool, **kwargs) -> None:
    if created:
        _session_started(instance)  # `state` says "active", or "waiting" while its avatar is prepared


@receiver(session_ended, dispatch_uid="webhooks.session_ended")
@_never_raises
def session_ended_event(sender, *, session_id, **kwargs) -> None:
    session = TutoringSession.objects.filter(pk=session_id).first()
    if session is not None:
        emit("session.ended", SessionSerializer(session).data)


def _utterance_data(utterance: Utterance) -> dict:
    return {**UtteranceSerializer(utterance).data, "session_id": str(utterance.session_id),
            "text": utterance.text, "started_at": utterance.started_at, "ended_at": utterance.ended_at}


@receiver(utterance_started, dispatch_uid="webhooks.utterance_started")
@_never_raises
def utterance_started_event(sender, *, utterance_pk: int, **kwargs) -> None:
    utterance = Utterance.objects.filter(pk=utterance_pk).defer("pcm", "mouth").first()
    if utterance is not None:
        emit("utterance.started", _utterance_data(utterance))


@receiver(utterance_ended, dispatch_uid="webhooks.utterance_ended")
@_never_raises
def utterance_ended_event(sender, *, utterance_pk: int, reason: str, **kwargs) -> None:
    utterance = Utterance.objects.filter(pk=utterance_pk).defer("pcm", "mouth").first()
    if utterance is not None:
        emit("utterance.ended", {**_utterance_data(utterance), "reason": reason})
