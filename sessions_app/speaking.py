"""What a session's tutor says: utterances queued by speak, played in order by the session's stage
(sessions_app/live/stage.py), cut by interrupt.

A text is said sentence by sentence: the first sentence is made before speak answers, the rest in
a background thread while the first already plays (a 60 s answer waited ~4 s for its whole
synthesis before; its first sentence takes 0.05-0.25 s). An utterance may also stay open: its text
then arrives in pieces (append), and every sentence is said as soon as it is complete. Each
sentence is a numbered piece (UtterancePiece); the stage plays them in order as they are made.

The database row is the truth: its state moves queued -> playing -> done | interrupted by
conditional updates only, and the session's count of queued utterances (which bounds the queue)
moves with it in the same transaction. Channel-layer messages only wake the stage early.
"""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from math import gcd
from typing import Iterator
import unicodedata
import uuid

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from common.channels import send_to_group
from common.errors import InvalidRequest, NotFound
from sessions_app.errors import InvalidAudio, QueueFull, SpeakBusy, UnsupportedAudio, UtteranceClosed
from sessions_app.models import SessionState, TutoringSession, Utterance, UtterancePiece, UtteranceState
from sessions_app.services import count_out_of_queue, drop_utterances, get_session, group_name
from sessions_app.signals import utterance_ended, utterance_started
from sessions_app.speech import mouth
from sessions_app.speech.audio import BadAudio, read_wav, resample
from sessions_app.speech.voices import Voice, load_voice

logger = logging.getLogger(__name__)


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
    return check_piece(text)


def check_piece(text: str) -> str:
    """A piece of a text arriving in pieces, as it is (its spaces join it to the next piece): it
    may be empty; InvalidRequest (400) when too long or with control characters."""
    text = text or ""
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


def speak_text(session_id, text: str, interrupt: bool = False, final: bool = True) -> Utterance:
    """Queue `text` to be said. With `final` false the utterance stays open: more text comes with
    append_text (the text may then be empty), and it waits in the queue until its first complete
    sentence has been made."""
    session = _active_session(session_id)
    text = clean_text(text) if final else check_piece(text)
    _refuse_if_full(session, interrupt)
    sentences, rest = split_sentences(text, final)
    sentences = quick_start(sentences)
    made: list[Spoken] = []
    if final:
        # The first sentence that sounds is made now: the utterance can play at once, and a text
        # with nothing to say is refused here rather than found out later.
        for sentence in sentences:
            made.append(say(sentence))
            if len(made[-1].samples):
                break
        if not any(len(piece.samples) for piece in made):
            raise InvalidRequest("text: The text has nothing the voice can say.")
    utterance = _queue(session, "text", text, interrupt, pieces=made, reserved=len(sentences), open=not final,
                       pending=rest)
    _make_later(session.session_id, utterance.pk, len(made), sentences[len(made):])
    return utterance


def append_text(session_id, utterance_id, text: str, final: bool) -> Utterance:
    """More of an open utterance's text; `final` closes it. Its complete sentences are said as soon
    as they are made; UtteranceClosed (409) once it is closed, played or dropped."""
    session = _active_session(session_id)
    text = check_piece(text)
    utterance = _utterance_of(session, utterance_id)
    limit = settings.SESSION_SPEAK_MAX_UTTERANCE_CHARS
    for _ in range(20):  # another append may change it first: read again and retry
        if not utterance.open or utterance.state not in (UtteranceState.QUEUED, UtteranceState.PLAYING):
            shown = "closed" if utterance.state in (UtteranceState.QUEUED, UtteranceState.PLAYING) else utterance.state
            raise UtteranceClosed(f"Utterance '{utterance.utterance_id}' is {shown}: nothing more can be appended; "
                                  "speak a new one.",
                                  {"utterance_id": str(utterance.utterance_id), "state": utterance.state,
                                   "open": utterance.open})
        if len(utterance.text) + len(text) > limit:
            raise InvalidRequest(f"text: An utterance holds at most {limit} characters "
                                 f"(it has {len(utterance.text)}, this piece {len(text)}).", {"max_chars": limit})
        sentences, rest = split_sentences(utterance.pending_text + text, final)
        if utterance.pieces == 0:
            sentences = quick_start(sentences)
        if Utterance.objects.filter(
                pk=utterance.pk, open=True, state__in=(UtteranceState.QUEUED, UtteranceState.PLAYING),
                pieces=utterance.pieces, pending_text=utterance.pending_text, text=utterance.text,
        ).update(pieces=F("pieces") + len(sentences), pending_text=rest, open=not final,
                 text=utterance.text + text, appended_at=timezone.now()):
            _make_later(session.session_id, utterance.pk, utterance.pieces, sentences)
            if final and not sentences:
                send_to_group(group_name(session.session_id), {"type": "session.speak"})  # it may be complete now
            return Utterance.objects.defer("pcm").get(pk=utterance.pk)
        utterance = Utterance.objects.defer("pcm").get(pk=utterance.pk)
    raise SpeakBusy("The utterance is being appended to by many requests at once; send the piece again.")


def _utterance_of(session: TutoringSession, utterance_id) -> Utterance:
    try:
        key = uuid.UUID(str(utterance_id))
    except ValueError:
        key = None
    found = key and Utterance.objects.defer("pcm").filter(session=session, utterance_id=key).first()
    if not found:
        raise NotFound(f"Session '{session.session_id}' has no utterance '{utterance_id}'.")
    return found


# --- Sentences -------------------------------------------------------------------------------

# A sentence ends at . ! ? or … (with any closing quotes or brackets) followed by white space, or
# at a line break. A piece of text ending in ! ? … or in a word and "." ends its sentence too (an
# LLM's next piece usually starts with the space), unless the word is a common abbreviation or a
# number ("3." may go on as "3.14").
_BOUNDARY = re.compile(r"[.!?…]+[\"')\]”’»]*(?=\s)|\n")
_ENDS = re.compile(r"(?:[!?…]|(?<=[^\W\d_]{2})\.)[\"')\]”’»]*$")
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "prof", "sr", "jr", "vs", "etc", "eg", "ie", "no", "fig"})
# A sentence longer than this is said in parts, cut at a comma, semicolon or colon (else a space):
# a long first sentence would hold back the first sound (Piper makes ~14 s of speech a second here).
MAX_PIECE_CHARS = 240


def _abbreviation(text: str, dot_at: int) -> bool:
    word = re.search(r"([^\W\d_][\w.]*)$", text[:dot_at])
    return bool(word) and word.group(1).replace(".", "").lower() in _ABBREVIATIONS


def split_sentences(text: str, final: bool) -> tuple[list[str], str]:
    """The complete sentences of `text` (stripped, each at most MAX_PIECE_CHARS) and what is left
    of an unfinished last one (as it is); with `final`, the rest is a sentence too."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if match.group().startswith(".") and _abbreviation(text, match.start()):
            continue
        sentences.append(text[start:match.end()])
        start = match.end()
    rest = text[start:]
    if final or (_ENDS.search(rest.rstrip()) and not _abbreviation(rest, len(rest.rstrip()) - 1)):
        sentences.append(rest)
        rest = ""
    parts = [part for sentence in sentences for part in _cut(sentence.strip()) if part]
    if len(rest) > MAX_PIECE_CHARS:
        *ready, rest = _cut(rest)
        parts += [part.strip() for part in ready if part.strip()]
    return parts, rest


def _cut(text: str, most: int = MAX_PIECE_CHARS) -> list[str]:
    parts = []
    while len(text) > most:
        head = text[:most]
        at = max(head.rfind(", "), head.rfind("; "), head.rfind(": "))
        at = at + 1 if at > most // 3 else head.rfind(" ")
        at = at if at > 0 else most
        parts.append(text[:at].strip())
        text = text[at:]
    return parts + [text]


# An utterance's first piece is what holds back its first sound: a sentence of 100 characters
# (~6 s of speech) took 0.8 s to make beside a busy stage (bench/answer_bench.py), so a long
# first sentence is said in two: cut after its last comma, semicolon or colon within this many
# characters, else before a joining word ("and", "which", ...) there, where speech pauses anyway;
# with neither, it is said whole. The rest follows while the first part plays.
FIRST_PIECE_CHARS = 70
_JOINS = re.compile(r"\s(?=(?:and|but|or|so|because|which|that|who|when|where|while|if|to|with|for)\s)", re.I)


def quick_start(sentences: list[str]) -> list[str]:
    """The sentences of an utterance from its first on, the first cut short when it is long."""
    if not sentences or len(sentences[0]) <= FIRST_PIECE_CHARS:
        return sentences
    first, head = sentences[0], sentences[0][:FIRST_PIECE_CHARS]
    at = max(head.rfind(", "), head.rfind("; "), head.rfind(": "))
    at = at + 1 if at >= 15 else max((m.start() for m in _JOINS.finditer(head) if m.start() >= 15), default=-1)
    if at < 0:
        return sentences
    return [first[:at].strip(), first[at:].strip(), *sentences[1:]]


# --- Making the speech -------------------------------------------------------------------------

@dataclass(frozen=True)
class Spoken:
    """A sentence's audio at the session's rate and its mouth tracks, one value per
    mouth.TRACK_STEP_S exactly (the audio is padded to whole steps so that pieces laid end to end
    keep their tracks in step with their sound)."""

    samples: np.ndarray
    mouth: np.ndarray
    shape: np.ndarray


def say(sentence: str) -> Spoken:
    speech = voice().synthesize(sentence)
    rate = settings.SESSION_AUDIO_RATE
    samples = resample(speech.samples, speech.rate, rate)
    if len(samples) == 0:
        return Spoken(samples, np.zeros(0, np.float32), np.zeros((0, 2), np.float32))
    whole = rate // gcd(rate, round(1 / mouth.TRACK_STEP_S))  # samples in a whole number of steps
    samples = np.concatenate([samples, np.zeros(-len(samples) % whole, np.int16)])
    if speech.phonemes:
        track = mouth.from_speech(speech.phonemes, samples, rate)
        shape = mouth.shape_from_phonemes(speech.phonemes, len(samples) / rate)
    else:
        track, shape = mouth.from_audio(samples, rate), mouth.shape_from_audio(samples, rate)
    steps = round(len(samples) / rate / mouth.TRACK_STEP_S)
    return Spoken(samples, _fit(track, steps), _fit(shape, steps))


def _fit(track: np.ndarray, steps: int) -> np.ndarray:
    if len(track) >= steps:
        return track[:steps]
    return np.concatenate([track, np.zeros((steps - len(track), *track.shape[1:]), track.dtype)])


# Sentences after the first are made here, one job per speak or append (its sentences in order);
# two threads, as the stages render beside them on the same cores.
_makers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="speech")
_making = 0
_making_lock = threading.Condition()


def _make_later(session_id, utterance_pk: int, first_index: int, sentences: list[str]) -> None:
    global _making
    if not sentences:
        return
    with _making_lock:
        _making += 1
    _makers.submit(_make, session_id, utterance_pk, first_index, sentences)


def _make(session_id, utterance_pk: int, first_index: int, sentences: list[str]) -> None:
    global _making
    try:
        for offset, sentence in enumerate(sentences):
            try:
                spoken = say(sentence)
            except Exception:  # the piece is still stored (silent): the ones after it must play
                logger.exception("utterance %s: sentence %d could not be said", utterance_pk, first_index + offset)
                spoken = say_nothing()
            if not _store_piece(utterance_pk, first_index + offset, spoken):
                return  # interrupted or ended: nothing more to make
            send_to_group(group_name(session_id), {"type": "session.speak"})
    finally:
        connection.close()  # this thread's own connection: a pool thread keeps none open
        with _making_lock:
            _making -= 1
            _making_lock.notify_all()


def say_nothing() -> Spoken:
    return Spoken(np.zeros(0, np.int16), np.zeros(0, np.float32), np.zeros((0, 2), np.float32))


def wait_made(timeout_s: float) -> bool:
    """Whether every sentence handed to the background was made (or given up) within `timeout_s`."""
    with _making_lock:
        return _making_lock.wait_for(lambda: _making == 0, timeout_s)


def _store_piece(utterance_pk: int, index: int, spoken: Spoken) -> bool:
    with transaction.atomic():
        if not Utterance.objects.filter(pk=utterance_pk, state__in=(UtteranceState.QUEUED, UtteranceState.PLAYING)).update(
                sample_count=F("sample_count") + len(spoken.samples)):
            return False
        _piece(utterance_pk, index, spoken).save()
    return True


def _piece(utterance_pk: int, index: int, spoken: Spoken) -> UtterancePiece:
    return UtterancePiece(utterance_id=utterance_pk, index=index, sample_count=len(spoken.samples),
                          pcm=spoken.samples.astype("<i2").tobytes(), mouth=spoken.mouth.astype("<f4").tobytes(),
                          mouth_shape=spoken.shape.astype("<f4").tobytes())


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
    return _queue(session, "audio", "", interrupt, samples=samples, track=mouth.from_audio(samples, rate),
                  shape=mouth.shape_from_audio(samples, rate))


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


def _queue(session: TutoringSession, source: str, text: str, interrupt: bool, *, samples: np.ndarray | None = None,
           track: np.ndarray | None = None, shape: np.ndarray | None = None, pieces: list[Spoken] = (),
           reserved: int = 0, open: bool = False, pending: str = "") -> Utterance:
    """Queue an utterance: an audio body's `samples` (and tracks), or a text's first `pieces`
    made of the `reserved` sentences it has so far."""
    if interrupt:
        _interrupt(session)
    empty = np.zeros(0, np.float32)
    samples = np.zeros(0, np.int16) if samples is None else samples
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
            sample_count=len(samples) + sum(len(piece.samples) for piece in pieces),
            pcm=samples.astype("<i2").tobytes(),
            mouth=(empty if track is None else track).astype("<f4").tobytes(),
            mouth_shape=(empty if shape is None else shape).astype("<f4").tobytes(),
            open=open, pieces=reserved, pending_text=pending, appended_at=timezone.now() if open else None)
        UtterancePiece.objects.bulk_create([_piece(utterance.pk, index, piece) for index, piece in enumerate(pieces)])
    send_to_group(group_name(session.session_id), {"type": "session.speak"})
    logger.info("session %s: utterance %s queued (%s, %.2f s so far%s)", session.session_id, utterance.utterance_id,
                source, utterance.duration_s, ", open" if open else "")
    return utterance


# --- For the stage ---------------------------------------------------------------------------

def claim_next(session_id) -> Utterance | None:
    """The next queued utterance of the session, now playing; None when none waits, when the next
    has no sound made yet (an open one whose first sentence is not complete: those after it wait
    behind it), or when the session is no longer active."""
    _finish_stale(session_id)
    for _ in range(5):  # another stage may take the same one first: try the next
        with transaction.atomic():
            candidate = (Utterance.objects.filter(session_id=session_id, state=UtteranceState.QUEUED,
                                                  session__state=SessionState.ACTIVE)
                         .order_by("id").values("id", "sample_count", "open", "pieces").first())
            if candidate is None:
                return None
            pk = candidate["id"]
            if not candidate["sample_count"]:
                if close_abandoned(session_id, pk):
                    continue  # look at it again, closed
                if candidate["open"] or UtterancePiece.objects.filter(utterance_id=pk).count() < candidate["pieces"]:
                    return None  # its first sound is still being made
                # Closed with nothing to say (an open one that never had a sentence): over, unplayed.
                if Utterance.objects.filter(pk=pk, state=UtteranceState.QUEUED).update(
                        state=UtteranceState.DONE, ended_at=timezone.now()):
                    count_out_of_queue(session_id, 1)
                continue
            if Utterance.objects.filter(pk=pk, state=UtteranceState.QUEUED).update(
                    state=UtteranceState.PLAYING, started_at=timezone.now()):
                count_out_of_queue(session_id, 1)
                utterance_started.send(sender=Utterance, utterance_pk=pk)
                return Utterance.objects.get(pk=pk)
    return None


@dataclass(frozen=True)
class MoreAudio:
    pieces: list[tuple[bytes, bytes, bytes]]  # (pcm, mouth, mouth_shape) of the next pieces, in order
    complete: bool  # nothing more will come: the utterance is closed and every piece is here


def more_audio(utterance_pk: int, from_index: int) -> MoreAudio:
    """The pieces of a playing utterance made since `from_index` (the next ones in order only)."""
    rows = list(UtterancePiece.objects.filter(utterance_id=utterance_pk, index__gte=from_index)
                .order_by("index").values_list("index", "pcm", "mouth", "mouth_shape"))
    pieces = []
    for index, pcm, track, shape in rows:
        if index != from_index + len(pieces):
            break  # a later sentence was made first: it waits for the one before it
        pieces.append((bytes(pcm), bytes(track), bytes(shape)))
    # Read after the pieces: a piece made in between is then counted, never taken as the last.
    state = Utterance.objects.filter(pk=utterance_pk).values("open", "pieces", "state", "session_id").first()
    if state is None or state["state"] != UtteranceState.PLAYING:
        return MoreAudio(pieces, True)
    if state["open"] and close_abandoned(state["session_id"], utterance_pk):
        return MoreAudio(pieces, False)
    return MoreAudio(pieces, not state["open"] and from_index + len(pieces) >= state["pieces"])


def close_abandoned(session_id, utterance_pk: int) -> bool:
    """Close an open utterance that nothing was appended to for SESSION_SPEAK_OPEN_TIMEOUT_S (its
    client went away): its unfinished sentence is said, and it ends when played. True if closed."""
    cutoff = timezone.now() - timedelta(seconds=settings.SESSION_SPEAK_OPEN_TIMEOUT_S)
    found = Utterance.objects.filter(pk=utterance_pk, open=True, appended_at__lt=cutoff).values(
        "pieces", "pending_text").first()
    if found is None:
        return False
    sentences, _ = split_sentences(found["pending_text"], final=True)
    if not Utterance.objects.filter(pk=utterance_pk, open=True, pieces=found["pieces"],
                                    pending_text=found["pending_text"]).update(
            open=False, pending_text="", pieces=F("pieces") + len(sentences)):
        return False
    logger.info("utterance %s: closed, nothing was appended for %s s", utterance_pk, settings.SESSION_SPEAK_OPEN_TIMEOUT_S)
    _make_later(session_id, utterance_pk, found["pieces"], sentences)
    return True


# An utterance still `playing` this long after it should have ended has no stage left to end it
# (its process stopped, or its stage was cancelled while claiming it).
STALE_AFTER_S = 10.0


def _finish_stale(session_id) -> None:
    now = timezone.now()
    for pk, started_at, count, rate, appended_at in Utterance.objects.filter(
            session_id=session_id, state=UtteranceState.PLAYING).values_list(
                "pk", "started_at", "sample_count", "rate", "appended_at"):
        # One that grows as it plays may wait for its next sentence up to the open timeout.
        if started_at is None or ((now - started_at).total_seconds() > count / rate + STALE_AFTER_S and (
                appended_at is None or (now - appended_at).total_seconds()
                > settings.SESSION_SPEAK_OPEN_TIMEOUT_S + STALE_AFTER_S)):
            finish(pk, "interrupted")


def end_orphaned(session_id) -> int:
    """A stage of the session starts on a stage worker, so no other runs (its last one died, or
    handed it over): what is still `playing` cannot be resumed and ends interrupted; the queue
    behind it plays on. The number ended."""
    return sum(finish(pk, "interrupted") for pk in Utterance.objects.filter(
        session_id=session_id, state=UtteranceState.PLAYING).values_list("pk", flat=True))


def finish(utterance_pk: int, reason: str) -> bool:
    """The stage played it to its end ("done") or cut it ("interrupted"); its audio is dropped."""
    state = UtteranceState.DONE if reason == "done" else UtteranceState.INTERRUPTED
    with transaction.atomic():
        finished = bool(Utterance.objects.filter(pk=utterance_pk, state=UtteranceState.PLAYING).update(
            state=state, ended_at=timezone.now(), pcm=b"", open=False))
        if finished:
            UtterancePiece.objects.filter(utterance_id=utterance_pk).delete()
            utterance_ended.send(sender=Utterance, utterance_pk=utterance_pk, reason=reason)
    return finished


def playing_utterance_id(session: TutoringSession) -> str | None:
    if session.state != SessionState.ACTIVE:
        return None
    found = (Utterance.objects.filter(session=session, state=UtteranceState.PLAYING)
             .order_by("-id").values_list("utterance_id", flat=True).first())
    return str(found) if found else None
