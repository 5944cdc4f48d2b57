from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from django.core.validators import ProhibitNullCharactersValidator
from rest_framework import serializers

from avatars.models import Avatar
from avatars.services import AVATAR_ID_PATTERN
from common.api_input import MAX_DB_INT, MAX_OFFSET
from sessions_app.live import placement
from sessions_app.models import SessionState
from sessions_app.services import shown_state
from sessions_app.speaking import playing_utterance_id


class CreateSessionSerializer(serializers.Serializer):
    tutor_id = serializers.IntegerField(min_value=1, max_value=MAX_DB_INT)
    student_id = serializers.IntegerField(min_value=0, max_value=MAX_DB_INT)
    avatar_id = serializers.RegexField(
        AVATAR_ID_PATTERN, max_length=64, required=False, allow_null=True, default=None,
        error_messages={"invalid": "Must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit."},
    )


class SessionListQuerySerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=SessionState.values, required=False)
    tutor_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_DB_INT)
    student_id = serializers.IntegerField(required=False, min_value=0, max_value=MAX_DB_INT)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET, default=0)


class SessionSerializer(serializers.Serializer):
    """The session resource of api.md: what the API answers, and its OpenAPI description."""

    session_id = serializers.UUIDField()
    tutor_id = serializers.IntegerField()
    student_id = serializers.IntegerField()
    avatar_id = serializers.CharField()
    state = serializers.SerializerMethodField()
    avatar_state = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    end_reason = serializers.CharField(allow_blank=True)
    stream_url = serializers.CharField(read_only=True)
    speaking = serializers.SerializerMethodField()
    utterance_id = serializers.SerializerMethodField()
    queued_utterances = serializers.IntegerField(
        help_text="Utterances waiting to be said. They play only while someone watches the session's "
                  "stream: spoken to a session nobody watches, they wait here until a viewer comes.")

    webrtc = serializers.SerializerMethodField()
    stage = serializers.SerializerMethodField()

    @extend_schema_field(serializers.DictField())
    def get_webrtc(self, session) -> dict:
        """How a WebRTC viewer connects: `viewer_offers` (POST the offer to `url`; the server in one
        process) or `server_offers` (POST {} to `url` for the media server's offer, then answer)."""
        sid = session.session_id
        if placement.scaled_out():
            return {"signalling": "server_offers", "url": f"/v1/sessions/{sid}/viewers"}
        return {"signalling": "viewer_offers", "url": f"/v1/sessions/{sid}/webrtc"}

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_stage(self, session) -> dict | None:
        """Where the session's stage runs when stages run in stage workers: {"worker", "placed_at",
        "moves", "alive"} (null before it is placed, and on a server that runs stages itself)."""
        if not placement.scaled_out() or session.state != SessionState.ACTIVE:
            return None
        where = placement.placement_of(session.session_id)
        if where is None or where.worker is None:
            return None
        return {"worker": where.worker.name, "placed_at": where.placed_at, "moves": where.moves,
                "alive": placement.worker_alive(where)}

    def _avatar_state(self, session) -> str | None:
        if not hasattr(session, "_avatar_state"):
            session._avatar_state = Avatar.objects.filter(avatar_id=session.avatar_id).values_list(
                "state", flat=True).first()
        return session._avatar_state

    @extend_schema_field(serializers.ChoiceField(choices=["waiting", *SessionState.values]))
    def get_state(self, session) -> str:
        """`waiting` while an active session's avatar is still being prepared."""
        return shown_state(session, self._avatar_state(session))

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_avatar_state(self, session) -> str | None:
        """The state of the avatar the session shows (null once it is deleted)."""
        return self._avatar_state(session)


    def _playing(self, session) -> str | None:
        if not hasattr(session, "_playing"):
            session._playing = playing_utterance_id(session)
        return session._playing

    def get_speaking(self, session) -> bool:
        """Whether the tutor is saying something now (an utterance is playing on its stream)."""
        return self._playing(session) is not None

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_utterance_id(self, session) -> str | None:
        """The utterance playing now, if any."""
        return self._playing(session)


class SpokenTextField(serializers.CharField):
    """A CharField without DRF's own NUL check: the text's one validation is the service's
    (speaking.clean_text), so the API and the staff page refuse the same text the same way."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.validators = [validator for validator in self.validators
                           if not isinstance(validator, ProhibitNullCharactersValidator)]


class SpeakSerializer(serializers.Serializer):
    text = SpokenTextField(allow_blank=True, trim_whitespace=False,
                                 help_text="What the tutor says (at most SESSION_SPEAK_MAX_CHARS characters).")
    interrupt = serializers.BooleanField(default=False, help_text="Cut what is being said (and drop what waits) first.")
    final = serializers.BooleanField(default=True, help_text=(
        "false: the text is the first piece of an answer that arrives in pieces (it may be empty); "
        "more comes with POST .../utterances/{utterance_id}/append."))


class AppendSerializer(serializers.Serializer):
    text = SpokenTextField(allow_blank=True, trim_whitespace=False, required=False, default="",
                           help_text="The next piece of the text, as it is (its spaces join it to the pieces around it).")
    final = serializers.BooleanField(default=False, help_text="The last piece: the utterance closes.")


class SpeakQuerySerializer(serializers.Serializer):
    """With an audio/wav body, `interrupt` comes in the query string."""

    interrupt = serializers.BooleanField(default=False)


class UtteranceSerializer(serializers.Serializer):
    utterance_id = serializers.UUIDField()
    state = serializers.CharField()
    duration_s = serializers.SerializerMethodField()
    source = serializers.CharField()
    open = serializers.BooleanField(help_text="More text may still be appended.")

    def get_duration_s(self, utterance) -> float:
        """Seconds of speech made so far: a text grows as its later sentences are made."""
        return round(utterance.duration_s, 3)


class SessionListSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    sessions = serializers.ListField(child=serializers.UUIDField())


class WebRTCOfferSerializer(serializers.Serializer):
    sdp = serializers.CharField(trim_whitespace=False, help_text="The viewer's SDP offer (recvonly or sendrecv video and/or audio).")
    type = serializers.CharField(help_text='"offer"')


class WebRTCAnswerSerializer(serializers.Serializer):
    type = serializers.CharField(help_text='"answer"')
    sdp = serializers.CharField(help_text="The server's SDP answer, with all its ICE candidates (no trickle).")
    codecs = serializers.DictField(child=serializers.CharField(),
                                   help_text='The codec each track is sent with, e.g. {"video": "VP8", "audio": "opus"}.')


class ViewerOfferSerializer(serializers.Serializer):
    """The media server's offer to a new viewer (SESSION_MEDIA_SERVER="janus")."""

    viewer_id = serializers.UUIDField()
    type = serializers.CharField(help_text='"offer"')
    sdp = serializers.CharField(help_text="The media server's SDP offer (video, audio and a data channel), with its ICE candidates.")
    answer_url = serializers.CharField(help_text="Where the viewer POSTs its answer.")
    ice_servers = serializers.ListField(child=serializers.DictField(), help_text="STUN/TURN servers for the viewer's peer connection.")
    session = serializers.DictField(allow_null=True, help_text="The stream's header as it was last sent ({\"type\": \"session\", ...}).")


class ViewerAnswerSerializer(serializers.Serializer):
    sdp = serializers.CharField(trim_whitespace=False, help_text="The viewer's SDP answer to the media server's offer.")
    type = serializers.CharField(help_text='"answer"')


class ViewerAnsweredSerializer(serializers.Serializer):
    viewer_id = serializers.UUIDField()
    state = serializers.CharField(help_text='"answered"')


class TranscriptEntrySerializer(serializers.Serializer):
    """A tutor's utterance (utterance_id, source, text, state, open, duration_s, created_at,
    started_at, ended_at) or a student's turn (turn_id, text, start_pts_us, end_pts_us, started_at)."""

    speaker = serializers.ChoiceField(choices=["tutor", "student"])
    utterance_id = serializers.UUIDField(required=False, help_text="tutor: the utterance")
    turn_id = serializers.UUIDField(required=False, help_text="student: the turn")
    source = serializers.CharField(required=False, help_text='tutor: "text" or "audio"')
    text = serializers.CharField(allow_null=True, help_text="what was said (so far); null for an audio body")
    state = serializers.CharField(required=False)
    open = serializers.BooleanField(required=False)
    duration_s = serializers.FloatField(required=False)
    start_pts_us = serializers.IntegerField(required=False, help_text="student: on the session stream's clock")
    end_pts_us = serializers.IntegerField(required=False)
    barge_in = serializers.BooleanField(required=False, help_text="student: the turn began over the tutor and cut it")
    created_at = serializers.DateTimeField(required=False)
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(required=False, allow_null=True)


class TranscriptSerializer(serializers.Serializer):
    session_id = serializers.UUIDField()
    state = serializers.CharField()
    entries = TranscriptEntrySerializer(many=True)
