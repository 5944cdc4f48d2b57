"""The rules for tutoring sessions: who may open one, how many, when they end."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common.channels import send_to_group
from common.errors import InvalidRequest, NotFound
from sessions_app.errors import AvatarNotReady, SessionLimit
from avatars.models import ACTIVE_STATES, Avatar, AvatarState
from sessions_app.models import SessionState, TutoringSession, Utterance, UtterancePiece, UtteranceState
from sessions_app.signals import session_ended, utterance_ended
from tutors.models import Tutor

logger = logging.getLogger(__name__)


def group_name(session_id) -> str:
    return f"session.{session_id}"


def create_session(*, tutor_id: int, student_id: int, avatar_id: str | None = None) -> TutoringSession:
    """Open a session of `tutor_id` with `student_id`, shown through `avatar_id` (when None, the
    tutor's ready avatar, else the one being made from its video).

    An avatar still queued or processing is accepted: the session waits for it (`waiting`), its
    stream says so and starts the frames when the avatar is ready, and it ends with the reason
    `avatar_failed` if the avatar fails (sessions_app/receivers.py). That is the seed's client:
    it opens the session right after its upload answered 201."""
    end_idle_sessions()
    tutor = Tutor.objects.filter(pk=tutor_id).first()
    if tutor is None:
        raise NotFound(f"Tutor {tutor_id} does not exist.", {"field": "tutor_id"})
    avatar_id = avatar_id or tutor.avatar_id or tutor.pending_avatar_id
    if not avatar_id:
        raise AvatarNotReady(f"Tutor {tutor_id} has no avatar yet; create one from a video first, "
                             "or name an avatar_id.", {"tutor_id": tutor_id})
    avatar = Avatar.objects.filter(avatar_id=avatar_id).first()
    if avatar is None:
        raise NotFound(f"Avatar '{avatar_id}' does not exist.", {"field": "avatar_id"})
    if avatar.tutor_id is not None and avatar.tutor_id != tutor.pk:
        # A session shows its own tutor: an avatar made for another tutor is refused (one made
        # for no tutor, through /v1/avatars without tutor_id, may be shown by any).
        raise InvalidRequest(f"Avatar '{avatar_id}' is tutor {avatar.tutor_id}'s, not tutor {tutor_id}'s; "
                             "name an avatar of this tutor, or none to use its own.", {"field": "avatar_id"})
    if avatar.state not in (AvatarState.READY, *ACTIVE_STATES):
        raise AvatarNotReady(f"Avatar '{avatar_id}' is {avatar.state}; it will not become ready. Use another, "
                             "or reprocess it.", {"avatar_id": avatar_id, "state": avatar.state,
                                                  "error": avatar.error})
    with transaction.atomic():  # count and insert under one write lock: the limit holds under races
        active = TutoringSession.objects.filter(state=SessionState.ACTIVE).count()
        if active >= settings.SESSION_MAX_ACTIVE:
            raise SessionLimit(f"{active} sessions are active, the most this server streams at once; "
                               "end one or try again later.", {"limit": settings.SESSION_MAX_ACTIVE})
        session = TutoringSession.objects.create(tutor=tutor, student_id=student_id, avatar_id=avatar_id)
    logger.info("session %s: opened for tutor %s, student %s, avatar %s", session.session_id, tutor_id, student_id, avatar_id)
    return session


def get_session(session_id) -> TutoringSession:
    """The session, or NotFound."""
    session = session_or_none(session_id)
    if session is None:
        raise NotFound(f"Session '{session_id}' does not exist.")
    return session


def session_or_none(session_id) -> TutoringSession | None:
    """The session, or None (also for an id that is not a UUID)."""
    try:
        key = uuid.UUID(str(session_id))
    except ValueError:
        return None
    return TutoringSession.objects.filter(pk=key).first()


def get_session_counting_activity(session_id) -> TutoringSession:
    """A client asks about a session: settle idleness first, then count the request as activity
    (which keeps the session from ending as idle). NotFound when there is none."""
    end_idle_sessions()
    session = get_session(session_id)
    touch(session)
    return session


def touch(session: TutoringSession) -> None:
    """Note activity (a request, a viewer), which keeps an active session from ending as idle."""
    if session.state == SessionState.ACTIVE:
        TutoringSession.objects.filter(pk=session.pk, state=SessionState.ACTIVE).update(last_activity_at=timezone.now())


def end_session(session_id, reason: str = "ended") -> TutoringSession:
    """End a session (ending an ended one changes nothing) and close its viewers' sockets."""
    session = get_session(session_id)
    if session.state == SessionState.ACTIVE:
        now = timezone.now()
        with transaction.atomic():
            ended = TutoringSession.objects.filter(pk=session.pk, state=SessionState.ACTIVE).update(
                state=SessionState.ENDED, ended_at=now, end_reason=reason)
            drop_utterances(session.pk, now)
            if ended:
                session_ended.send(sender=TutoringSession, session_id=session.session_id, reason=reason)
        send_to_group(group_name(session.session_id), {"type": "session.ended", "reason": reason})
        logger.info("session %s: ended (%s)", session.session_id, reason)
        # Read again without refresh_from_db: a tutor deleted meanwhile took the row with it
        # (that raised DoesNotExist, a 500); the session is then gone: NotFound.
        session = get_session(session.session_id)
    return session


def drop_utterances(session_pk, now) -> None:
    """Cut what the session's tutor is saying and drop what waits to be said (an interrupt, or
    the session's end; sessions_app/speaking.py queues and plays utterances)."""
    dropped = Utterance.objects.filter(session_id=session_pk, state=UtteranceState.QUEUED).update(
        state=UtteranceState.INTERRUPTED, ended_at=now, pcm=b"", open=False)
    for pk in Utterance.objects.filter(session_id=session_pk, state=UtteranceState.PLAYING).values_list("pk", flat=True):
        if Utterance.objects.filter(pk=pk, state=UtteranceState.PLAYING).update(
                state=UtteranceState.INTERRUPTED, ended_at=now, pcm=b"", open=False):
            utterance_ended.send(sender=Utterance, utterance_pk=pk, reason="interrupted")
    count_out_of_queue(session_pk, dropped)
    # Their sentences' audio goes too (a sentence still being made is not stored: its utterance is
    # no longer queued or playing).
    UtterancePiece.objects.filter(utterance__session_id=session_pk,
                                  utterance__state=UtteranceState.INTERRUPTED).delete()


def count_out_of_queue(session_pk, count: int) -> None:
    """`count` utterances left the queue (played or dropped): the session's queue bound moves with them."""
    if count:
        TutoringSession.objects.filter(pk=session_pk, queued_utterances__gte=count).update(
            queued_utterances=F("queued_utterances") - count)


def end_idle_sessions() -> int:
    """End the active sessions with no request and no viewer for SESSION_IDLE_TIMEOUT_S."""
    cutoff = timezone.now() - timedelta(seconds=settings.SESSION_IDLE_TIMEOUT_S)
    idle = list(TutoringSession.objects.filter(state=SessionState.ACTIVE, last_activity_at__lt=cutoff)
                .values_list("session_id", flat=True))
    for session_id in idle:
        end_session(session_id, reason="idle")
    return len(idle)


def active_sessions_using(avatar_id: str) -> list[TutoringSession]:
    return list(TutoringSession.objects.filter(avatar_id=avatar_id, state=SessionState.ACTIVE))


def end_sessions_showing(avatar_id: str, reason: str = "avatar_deleted") -> None:
    """The avatar is being deleted (or will never be ready): end every active session that shows it."""
    for session in active_sessions_using(avatar_id):
        end_session(session.session_id, reason=reason)


def move_sessions(tutor_id: int, old_avatar_id: str, new_avatar_id: str) -> int:
    """The tutor switched avatars: its active sessions showing the old one show the new one from
    now on (their streams switch within a few seconds, at once when the message reaches them)."""
    moved = list(TutoringSession.objects.filter(tutor_id=tutor_id, avatar_id=old_avatar_id, state=SessionState.ACTIVE)
                 .values_list("session_id", flat=True))
    TutoringSession.objects.filter(session_id__in=moved, state=SessionState.ACTIVE).update(avatar_id=new_avatar_id)
    for session_id in moved:
        send_to_group(group_name(session_id), {"type": "session.avatar_changed", "avatar_id": new_avatar_id})
    if moved:
        logger.info("tutor %s: %d session(s) moved from avatar %s to %s", tutor_id, len(moved), old_avatar_id, new_avatar_id)
    return len(moved)


def wake_sessions_waiting_for(avatar_id: str) -> None:
    """The avatar is ready: streams waiting for it start now rather than at their next look."""
    for session in active_sessions_using(avatar_id):
        send_to_group(group_name(session.session_id), {"type": "session.avatar_changed", "avatar_id": avatar_id})


def shown_state(session: TutoringSession, avatar_state: str | None) -> str:
    """What clients see: an active session whose avatar is not ready yet is `waiting`."""
    if session.state == SessionState.ACTIVE and avatar_state in ACTIVE_STATES:
        return "waiting"
    return session.state


def list_session_ids(*, state: str | None = None, tutor_id: int | None = None, student_id: int | None = None,
                     limit: int = 50, offset: int = 0) -> tuple[int, list[str]]:
    end_idle_sessions()
    sessions = TutoringSession.objects.all()
    if state:
        sessions = sessions.filter(state=state)
    if tutor_id:
        sessions = sessions.filter(tutor_id=tutor_id)
    if student_id is not None:
        sessions = sessions.filter(student_id=student_id)
    total = sessions.count()
    ids = sessions.order_by("-created_at").values_list("session_id", flat=True)[offset : offset + limit]
    return total, [str(session_id) for session_id in ids]
