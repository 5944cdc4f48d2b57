"""What a session's tutor says: utterances queued by speak, played in order by the session's stage
(sessions_app/stage.py), cut by interrupt.

The database row is the truth: its state moves queued -> playing -> done | interrupted by
conditional updates only, and the session's count of queued utterances (which bounds the queue)
moves with it in the same transaction. Channel-layer messages only wake the stage early.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Iterator
import unicodedata

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common.channels import send_to_group
from common.errors import InvalidRequest, NotFound, ServiceError
from sessions_app.models import SessionState, TutoringSession, Utterance, UtteranceState
from sessions_app.services import count_out_of_queue, drop_utterances, get_session, group_name
from sessions_app.signals import utterance_ended, utterance_started
from sessions_app.speech import mouth
from sessions_app.speech.audio import BadAudio, read_wav, resample
from sessions_app.speech.voices import Voice, load_voice

logger = logging.getLogger(__name__)


class QueueFull(ServiceError):
    code = "speak_queue_full"
    retry_after_s = 1


class SpeakBusy(ServiceError):
    code = "speak_busy"
    retry_after_s = 2


class InvalidAudio(ServiceError):
    code = "invalid_audio"


class UnsupportedAudio(ServiceError):
    code = "unsupported_media"


def voice() -> Voice:
    if settings.SESSION_VOICE_MODEL:
        return load_voice(settings.SESSION_VOICE, settings.SESSION_VOICE_MODEL)
    return load_voice(settings.SESSION_VOICE)


def preload_voice() -> None:
    """Load the voice in the background (~1 s), so the first speak does not wait for it."""
    def load() -> None:
        try:
            voice()
        except Exception:
            logger.exception("could not load the voice %s", settings.SESSION_VOICE)

    threading.Thread(target=load, name="voice-preload", daemon=True).start()


# Whitespace control characters a typed text may hold; every other control character (NUL among
# them, which the voice's phonemizer cannot take) and lone surrogates are refused.
_ALLOWED_CONTROLS = frozenset("\t\n\r")


def clean_text(text: str) -> str:
    """The text to say, stripped; InvalidRequest (400) for an empty or too long text, or one with
    control characters. The one check of every caller (the API, the staff page, anything later):
    speak_text applies it."""
    text = (text or "").strip()
    if not text:
        raise InvalidRequest("text: There is nothing to say: the text is empty.")
    if len(text) > settings.SESSION_SPEAK_MAX_CHARS:
        raise InvalidRequest(f"text: At most {settings.SESSION_SPEAK_MAX_CHARS} characters may be said at once "
                             f"(this text has {len(text)}).", {"max_chars": settings.SESSION_SPEAK_MAX_CHARS})
    for position, char in enumerate(text):
        if char not in _ALLOWED_CONTROLS and unicodedata.category(char) in ("Cc", "Cs"):
            raise InvalidRequest(f"text: The text holds a control character (U+{ord(char):04X} at position {position}); "
                                 "send plain text.", {"position": position})
    return text


_audio_slots: tuple[int, threading.BoundedSemaphore] | None = None
_audio_slots_lock = threading.Lock()


def _slots() -> threading.BoundedSemaphore:
    global _audio_slots
    with _audio_slots_lock:
        size = max(1, settings.SESSION_SPEAK_AUDIO_AT_ONCE)
        if _audio_slots is None or _audio_slots[0] != size:
            _audio_slots = (size, threading.BoundedSemaphore(size))
        return _audio_slots[1]


@contextmanager
def audio_slot() -> Iterator[None]:
    """One of the SESSION_SPEAK_AUDIO_AT_ONCE places for an audio body: hold it from before the
    body is read until it is decoded, so that however many arrive, only that many bodies (up to
    64 MB each, plus their work) are in memory at once. Waits up to SESSION_SPEAK_AUDIO_WAIT_S
    for a place, then SpeakBusy (503, Retry-After). Four 120 s 192 kHz bodies at once took a
    server up ~3 GB before."""
    slots = _slots()
    if not slots.acquire(timeout=max(0.0, settings.SESSION_SPEAK_AUDIO_WAIT_S)):
        raise SpeakBusy(f"{settings.SESSION_SPEAK_AUDIO_AT_ONCE} audio bodies are being decoded; "
                        "send it again in a moment.", {"at_once": settings.SESSION_SPEAK_AUDIO_AT_ONCE})
    try:
        yield
    finally:
        slots.release()


def speak_text(session_id, text: str, interrupt: bool = False) -> Utterance:
    session = _active_session(session_id)
    text = clean_text(text)
    _refuse_if_full(session, interrupt)
    speech = voice().synthesize(text)
    if len(speech.samples) == 0:
        raise InvalidRequest("text: The text has nothing the voice can say.")
    rate = settings.SESSION_AUDIO_RATE
    samples = resample(speech.samples, speech.rate, rate)
    if speech.phonemes:
        track = mouth.from_speech(speech.phonemes, samples, rate)
        shape = mouth.shape_from_phonemes(speech.phonemes, len(samples) / rate)
    else:
        track, shape = mouth.from_audio(samples, rate), mouth.shape_from_audio(samples, rate)
    return _queue(session, samples, track, shape, "text", text, interrupt)


def speak_audio(session_id, body: bytes, interrupt: bool = False) -> Utterance:
    session = _active_session(session_id)
    try:
        samples, source_rate = read_wav(body, settings.SESSION_SPEAK_MAX_AUDIO_S)
    except BadAudio as error:
        if error.code == "unsupported_audio":
            raise UnsupportedAudio(str(error)) from None
        raise InvalidAudio(str(error), {"reason": error.code}) from None
    _refuse_if_full(session, interrupt)
    rate = settings.SESSION_AUDIO_RATE
    samples = resample(samples, source_rate, rate)
    return _queue(session, samples, mouth.from_audio(samples, rate), mouth.shape_from_audio(samples, rate),
                  "audio", "", interrupt)


def interrupt(session_id) -> TutoringSession:
    """Cut what the tutor is saying and drop what waits to be said."""
    session = _active_session(session_id)
    _interrupt(session)
    return session


def _interrupt(session: TutoringSession) -> None:
    with transaction.atomic():
        last = Utterance.objects.filter(session=session).order_by("-id").values_list("id", flat=True).first()
        drop_utterances(session.pk, timezone.now())
    if last is not None:
        send_to_group(group_name(session.session_id), {"type": "session.interrupt", "up_to": last})


def _active_session(session_id) -> TutoringSession:
    session = get_session(session_id)
    if session.state != SessionState.ACTIVE:
        raise NotFound(f"Session '{session_id}' has ended.")
    return session


def _refuse_if_full(session: TutoringSession, interrupt: bool) -> None:
    """A first look before the synthesis (which costs CPU); _queue's conditional update decides."""
    if not interrupt and TutoringSession.objects.filter(
            pk=session.pk, queued_utterances__gte=settings.SESSION_MAX_QUEUED_UTTERANCES).exists():
        raise _queue_full()


def _queue_full() -> QueueFull:
    limit = settings.SESSION_MAX_QUEUED_UTTERANCES
    return QueueFull(f"{limit} utterances are already waiting to be said; wait for one to play, or interrupt.",
                     {"max_queued": limit})


def _queue(session: TutoringSession, samples: np.ndarray, track: np.ndarray, shape: np.ndarray, source: str,
           text: str, interrupt: bool) -> Utterance:
    if interrupt:
        _interrupt(session)
    with transaction.atomic():
        taken = TutoringSession.objects.filter(
            pk=session.pk, state=SessionState.ACTIVE,
            queued_utterances__lt=settings.SESSION_MAX_QUEUED_UTTERANCES,
        ).update(queued_utterances=F("queued_utterances") + 1)
        if not taken:
            if TutoringSession.objects.filter(pk=session.pk, state=SessionState.ACTIVE).exists():
                raise _queue_full()
            raise NotFound(f"Session '{session.session_id}' has ended.")
        utterance = Utterance.objects.create(
            session=session, text=text, source=source, rate=settings.SESSION_AUDIO_RATE,
            sample_count=len(samples), pcm=samples.astype("<i2").tobytes(),
            mouth=track.astype("<f4").tobytes(), mouth_shape=shape.astype("<f4").tobytes())
    send_to_group(group_name(session.session_id), {"type": "session.speak"})
    logger.info("session %s: utterance %s queued (%s, %.2f s)", session.session_id, utterance.utterance_id,
                source, utterance.duration_s)
    return utterance


# --- For the stage ---------------------------------------------------------------------------

def claim_next(session_id) -> Utterance | None:
    """The next queued utterance of the session, now playing; None when none waits (or the
    session is no longer active)."""
    _finish_stale(session_id)
    for _ in range(5):  # another stage may take the same one first: try the next
        with transaction.atomic():
            candidate = (Utterance.objects.filter(session_id=session_id, state=UtteranceState.QUEUED,
                                                  session__state=SessionState.ACTIVE)
                         .order_by("id").values_list("id", flat=True).first())
            if candidate is None:
                return None
            if Utterance.objects.filter(pk=candidate, state=UtteranceState.QUEUED).update(
                    state=UtteranceState.PLAYING, started_at=timezone.now()):
                count_out_of_queue(session_id, 1)
                utterance_started.send(sender=Utterance, utterance_pk=candidate)
                return Utterance.objects.get(pk=candidate)
    return None


# An utterance still `playing` this long after it should have ended has no stage left to end it
# (its process stopped, or its stage was cancelled while claiming it).
STALE_AFTER_S = 10.0


def _finish_stale(session_id) -> None:
    now = timezone.now()
    for pk, started_at, count, rate in Utterance.objects.filter(
            session_id=session_id, state=UtteranceState.PLAYING).values_list("pk", "started_at", "sample_count", "rate"):
        if started_at is None or (now - started_at).total_seconds() > count / rate + STALE_AFTER_S:
            finish(pk, "interrupted")


def finish(utterance_pk: int, reason: str) -> bool:
    """The stage played it to its end ("done") or cut it ("interrupted"); its audio is dropped."""
    state = UtteranceState.DONE if reason == "done" else UtteranceState.INTERRUPTED
    with transaction.atomic():
        finished = bool(Utterance.objects.filter(pk=utterance_pk, state=UtteranceState.PLAYING).update(
            state=state, ended_at=timezone.now(), pcm=b""))
        if finished:
            utterance_ended.send(sender=Utterance, utterance_pk=utterance_pk, reason=reason)
    return finished


def playing_utterance_id(session: TutoringSession) -> str | None:
    if session.state != SessionState.ACTIVE:
        return None
    found = (Utterance.objects.filter(session=session, state=UtteranceState.PLAYING)
             .order_by("-id").values_list("utterance_id", flat=True).first())
    return str(found) if found else None
