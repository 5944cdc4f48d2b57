"""The /v1/sessions endpoints: parse, call a service, render."""

from __future__ import annotations

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api_input import validated
from common.api_schema import errors, extend_schema
from sessions_app import services
from sessions_app.api.serializers import (
    CreateSessionSerializer,
    SessionListQuerySerializer,
    SessionListSerializer,
    SessionSerializer,
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
