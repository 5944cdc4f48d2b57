"""The /v1/sessions endpoints: parse, call a service, render."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from rest_framework import status
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.response import Response
from rest_framework.views import APIView

from avatars.authentication import key_from_headers
from common.api_input import validated
from common.api_schema import errors, extend_schema
from common.parsers import JSONParser, WavParser
from common.socket_auth import key_is_active
from sessions_app import services, speaking, transcripts
from sessions_app.errors import UnsupportedAudio
from sessions_app.live import media_viewers
from sessions_app.live.webrtc.signalling import answer_microphone, answer_offer
from sessions_app.api.serializers import (
    AppendSerializer,
    CreateSessionSerializer,
    SpeakQuerySerializer,
    SpeakSerializer,
    UtteranceSerializer,
    ViewerAnswerSerializer,
    ViewerAnsweredSerializer,
    ViewerOfferSerializer,
    WebRTCAnswerSerializer,
    WebRTCOfferSerializer,
    SessionListQuerySerializer,
    SessionListSerializer,
    SessionSerializer,
    TranscriptSerializer,
)


class SessionListCreateView(APIView):
    @extend_schema(operation_id="v1_sessions_list", parameters=[SessionListQuerySerializer],
                   responses={200: SessionListSerializer, **errors(400, 401)})
    def get(self, request):
        total, session_ids = services.list_session_ids(**validated(SessionListQuerySerializer, request.query_params))
        return Response({"total": total, "sessions": session_ids})

    @extend_schema(request=CreateSessionSerializer,
                   responses={201: SessionSerializer, **errors(400, 401, 404, 409, 429)})
    def post(self, request):
        session = services.create_session(**validated(CreateSessionSerializer, request.data))
        return Response(SessionSerializer(session).data, status=status.HTTP_201_CREATED)


class SessionDetailView(APIView):
    @extend_schema(responses={200: SessionSerializer, **errors(401, 404)})
    def get(self, request, session_id: str):
        return Response(SessionSerializer(services.get_session_counting_activity(session_id)).data)


class SessionEndView(APIView):
    @extend_schema(request=None, responses={200: SessionSerializer, **errors(401, 404)})
    def post(self, request, session_id: str):
        return Response(SessionSerializer(services.end_session(session_id)).data)


class SessionSpeakView(APIView):
    """Text (JSON) or recorded speech (audio/wav) for the tutor to say."""

    parser_classes = [JSONParser, WavParser]
    wav_max_bytes = 64 * 1024 * 1024  # two minutes of 16-bit stereo at 96 kHz, with room
    max_body_bytes = wav_max_bytes  # refused from its Content-Length before it is read (tutorplatform/request_bodies.py)

    @extend_schema(request={"application/json": SpeakSerializer, "audio/wav": OpenApiTypes.BINARY},
                   responses={202: UtteranceSerializer, **errors(400, 401, 404, 413, 415, 422, 429, 503)})
    def post(self, request, session_id: str):
        if request.content_type.lower().startswith("audio/"):
            interrupt = validated(SpeakQuerySerializer, request.query_params)["interrupt"]
            with speaking.audio_slot():  # before the body is read: it is held in memory until decoded
                body = self._data(request)
                body = body if isinstance(body, bytes) else b""  # an empty body parses as {}
                utterance = speaking.speak_audio(session_id, body, interrupt=interrupt)
        else:
            asked = validated(SpeakSerializer, self._data(request))
            utterance = speaking.speak_text(session_id, asked["text"], interrupt=asked["interrupt"], final=asked["final"])
        return Response(UtteranceSerializer(utterance).data, status=status.HTTP_202_ACCEPTED)

    @staticmethod
    def _data(request):
        try:
            return request.data
        except UnsupportedMediaType:
            raise UnsupportedAudio(
                f"Unsupported media type \"{request.content_type}\": send JSON {{\"text\": ...}} or an audio/wav body.") from None


class UtteranceAppendView(APIView):
    """The next piece of an open utterance's text (speak with "final": false opened it)."""

    parser_classes = [JSONParser]

    @extend_schema(request=AppendSerializer, responses={200: UtteranceSerializer, **errors(400, 401, 404, 409, 503)})
    def post(self, request, session_id: str, utterance_id: str):
        asked = validated(AppendSerializer, request.data)
        utterance = speaking.append_text(session_id, utterance_id, asked["text"], final=asked["final"])
        return Response(UtteranceSerializer(utterance).data)


class SessionTranscriptView(APIView):
    @extend_schema(responses={200: TranscriptSerializer, **errors(401, 404)})
    def get(self, request, session_id: str):
        return Response(TranscriptSerializer(transcripts.transcript(session_id)).data)


class SessionInterruptView(APIView):
    @extend_schema(request=None, responses={200: SessionSerializer, **errors(401, 404)})
    def post(self, request, session_id: str):
        return Response(SessionSerializer(speaking.interrupt(session_id)).data)


class SessionWebRTCView(APIView):
    """A viewer's WebRTC offer: the answer, and the session's media on a new peer connection."""

    parser_classes = [JSONParser]

    @extend_schema(request=WebRTCOfferSerializer,
                   responses={200: WebRTCAnswerSerializer, **errors(400, 401, 404, 429, 504)})
    def post(self, request, session_id: str):
        asked = validated(WebRTCOfferSerializer, request.data)
        media_viewers.refuse_if_scaled_out(session_id)
        key = key_from_headers(request)
        allowed = (lambda: key_is_active(key)) if key else (lambda: True)  # a revoked key ends the viewer
        return Response(answer_offer(session_id, asked["sdp"], asked["type"], allowed))


class SessionViewersView(APIView):
    """A new WebRTC viewer through the media server: its offer (the viewer answers)."""

    parser_classes = [JSONParser]

    @extend_schema(request=None, responses={201: ViewerOfferSerializer, **errors(401, 404, 409, 429, 503)})
    def post(self, request, session_id: str):
        return Response(media_viewers.add_viewer(session_id), status=status.HTTP_201_CREATED)


class SessionViewerAnswerView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(request=ViewerAnswerSerializer, responses={200: ViewerAnsweredSerializer, **errors(400, 401, 404, 409, 503)})
    def post(self, request, session_id: str, viewer_id: str):
        asked = validated(ViewerAnswerSerializer, request.data)
        return Response(media_viewers.answer_viewer(session_id, viewer_id, asked["sdp"], asked["type"]))


class SessionViewerView(APIView):
    @extend_schema(request=None, responses={204: None, **errors(401, 404, 409)})
    def delete(self, request, session_id: str, viewer_id: str):
        media_viewers.refuse_unless_scaled_out(session_id)
        media_viewers.leave(session_id, viewer_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionMicrophoneView(APIView):
    """The student's microphone on an audio-only WebRTC connection, when the session's media come
    from the media server (its streams carry nothing back)."""

    parser_classes = [JSONParser]

    @extend_schema(request=WebRTCOfferSerializer,
                   responses={200: WebRTCAnswerSerializer, **errors(400, 401, 404, 409, 429, 504)})
    def post(self, request, session_id: str):
        asked = validated(WebRTCOfferSerializer, request.data)
        key = key_from_headers(request)
        allowed = (lambda: key_is_active(key)) if key else (lambda: True)  # a revoked key ends the microphone
        return Response(answer_microphone(session_id, asked["sdp"], asked["type"], allowed))
