"""A live tutoring session: a student with a tutor, shown through one ready avatar."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class SessionState(models.TextChoices):
    ACTIVE = "active"
    ENDED = "ended"


# Why a session ended (`end_reason`), in words for people; the API and the pages keep the code.
END_REASON_WORDS = {
    "ended": "ended through the API",
    "ended_by_staff": "ended by staff",
    "idle": "no request and no viewer for too long",
    "avatar_failed": "its avatar could not be made",
    "avatar_deleted": "its avatar was deleted",
}


class TutoringSession(models.Model):
    session_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tutor = models.ForeignKey("tutors.Tutor", on_delete=models.CASCADE, related_name="sessions")
    student_id = models.PositiveBigIntegerField(db_index=True)
    # The avatar by its id, as the tutor's `avatar_id` is: an ended session still says which it
    # used after that avatar is deleted.
    avatar_id = models.CharField(max_length=64, db_index=True)
    state = models.CharField(max_length=16, choices=SessionState.choices, default=SessionState.ACTIVE, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Requests and viewers keep a session alive; past SESSION_IDLE_TIMEOUT_S without either it ends.
    last_activity_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, blank=True, default="")
    # Utterances waiting to play: counted by conditional updates, so a full queue is refused
    # without a read-count-insert race.
    queued_utterances = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "tutoring session"

    def __str__(self) -> str:
        return f"{self.session_id} ({self.state})"

    @property
    def stream_url(self) -> str:
        return f"/ws/sessions/{self.session_id}/"


class UtteranceState(models.TextChoices):
    QUEUED = "queued"
    PLAYING = "playing"
    DONE = "done"
    INTERRUPTED = "interrupted"


class Utterance(models.Model):
    """Something the tutor says in a session: its audio at the session's rate and how open the
    mouth is over it. Played in order of `id`; the audio is dropped once it has been played."""

    utterance_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(TutoringSession, on_delete=models.CASCADE, related_name="utterances")
    text = models.TextField(blank=True, default="")  # empty for an audio body
    source = models.CharField(max_length=8)  # "text" or "audio"
    state = models.CharField(max_length=16, choices=UtteranceState.choices, default=UtteranceState.QUEUED, db_index=True)
    rate = models.PositiveIntegerField()
    sample_count = models.PositiveIntegerField()
    pcm = models.BinaryField(default=b"")  # mono int16 little-endian at `rate`
    mouth = models.BinaryField(default=b"")  # float32 openness per speech.mouth.TRACK_STEP_S
    mouth_shape = models.BinaryField(default=b"")  # float32 (spread, teeth) pairs, same steps
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # A text is said sentence by sentence: each sentence handed to the voice is a numbered piece
    # (UtterancePiece), played in order of its number as soon as it is made. `pieces` counts the
    # numbers handed out; `open` says more text may still be appended (an answer that arrives in
    # pieces); `pending_text` is its unfinished last sentence, said when it ends or the utterance
    # closes. `sample_count` grows with every piece made: the duration known so far.
    open = models.BooleanField(default=False)
    pieces = models.PositiveIntegerField(default=0)
    pending_text = models.TextField(blank=True, default="")
    appended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    @property
    def duration_s(self) -> float:
        return self.sample_count / self.rate


class UtterancePiece(models.Model):
    """One sentence of an utterance, spoken: its audio and mouth tracks, as Utterance's fields.
    Deleted once the utterance has been played or dropped."""

    utterance = models.ForeignKey(Utterance, on_delete=models.CASCADE, related_name="made_pieces")
    index = models.PositiveIntegerField()
    sample_count = models.PositiveIntegerField()
    pcm = models.BinaryField(default=b"")
    mouth = models.BinaryField(default=b"")
    mouth_shape = models.BinaryField(default=b"")

    class Meta:
        ordering = ["utterance_id", "index"]
        constraints = [models.UniqueConstraint(fields=["utterance", "index"], name="one_piece_per_index")]


class StudentTurn(models.Model):
    """Something the student said (a turn of their microphone's audio, recognised), kept for the
    session's transcript."""

    turn_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(TutoringSession, on_delete=models.CASCADE, related_name="student_turns")
    text = models.TextField()
    start_pts_us = models.BigIntegerField()  # on the session stream's clock
    end_pts_us = models.BigIntegerField()
    started_at = models.DateTimeField(default=timezone.now)  # wall time: orders it among utterances
    barge_in = models.BooleanField(default=False)  # it began while the tutor spoke, and cut the tutor

    class Meta:
        ordering = ["started_at", "id"]


# --- Live sessions past one machine (SESSION_MEDIA_SERVER="janus") -------------------------------

class StageWorker(models.Model):
    """A stage-worker process (`manage.py stage_worker`): it runs the stages of the sessions placed
    on it. Alive while its heartbeat is fresh (STAGE_WORKER_DEAD_AFTER_S)."""

    name = models.CharField(max_length=64, unique=True)
    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now, db_index=True)
    # False once it is stopping (SIGTERM): it takes no new session and hands its own over.
    accepting = models.BooleanField(default=True)
    max_sessions = models.PositiveIntegerField(default=0)  # 0: no limit

    def __str__(self) -> str:
        return self.name


class StagePlacement(models.Model):
    """Where a session's stage runs: the worker that holds it, and the media server's mountpoint its
    media goes to. Taken by one conditional update (create, or a move from a dead worker), so two
    workers never run one session's stage."""

    session = models.OneToOneField(TutoringSession, primary_key=True, on_delete=models.CASCADE,
                                   related_name="placement")
    worker = models.ForeignKey(StageWorker, null=True, blank=True, on_delete=models.SET_NULL, related_name="placements")
    placed_at = models.DateTimeField(default=timezone.now)
    moves = models.PositiveIntegerField(default=0)  # times it was placed again (failover, hand-over)
    mountpoint_id = models.PositiveBigIntegerField(unique=True)
    # Set by the worker once the mountpoint exists: the ports Janus takes the session's RTP on.
    video_port = models.PositiveIntegerField(default=0)
    video_rtcp_port = models.PositiveIntegerField(default=0)  # Janus asks for keyframes through it
    audio_port = models.PositiveIntegerField(default=0)
    data_port = models.PositiveIntegerField(default=0)
    # The stream's JSON header ({"type": "session", ...}) as its publisher last sent it: new
    # viewers get it with their offer (a data channel opened later missed it).
    header = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.session_id} on {self.worker_id}"


class MediaViewer(models.Model):
    """A WebRTC viewer of a session through the media server: its Janus session and handle. Kept
    alive by the worker that holds the session's stage; removed when it hangs up or leaves."""

    viewer_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(TutoringSession, on_delete=models.CASCADE, related_name="media_viewers")
    janus_session = models.PositiveBigIntegerField()
    janus_handle = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)
