"""The /v1/avatars endpoints: parse, call a service, render. No rules live here."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from avatars import selectors, services, storage
from avatars.api.schema import WAIT, AvatarListSerializer, DeletedSerializer, OpenApiResponse, errors, extend_schema
from avatars.api.serializers import (
    AvatarAcceptedSerializer,
    AvatarCreatedSerializer,
    AvatarListQuerySerializer,
    AvatarSerializer,
    CreateFromPathSerializer,
    CreateFromUploadSerializer,
    DeleteQuerySerializer,
    ReprocessSerializer,
    WaitQuerySerializer,
)
from avatars.models import AvatarState
from avatars.uploads import SizeLimitUploadHandler, local_copy, too_large
from common.api_input import validated
from common.parsers import JSONParser
from common.errors import NotFound
from webhooks import callbacks


def _wait_seconds(request) -> float:
    # Read before anything is created: a bad ?wait= must not leave an avatar behind its 400.
    return validated(WaitQuerySerializer, request.query_params)["wait"]


def _created(avatar, how: str, wait_s: float, callback_url: str | None) -> Response:
    """The seed's 201: the avatar resource plus status/message/mock, optionally after ?wait=N;
    the message says the state the answer carries; with a callback_url, its `callback_secret`
    (shown this once)."""
    callback_secret = callbacks.register(callback_url, avatar_id=avatar.avatar_id)  # before waiting: it may be ready
    if wait_s:
        avatar = services.wait_for_avatar(avatar, wait_s)
    body = AvatarCreatedSerializer(avatar, context={"message": _created_message(avatar, how)}).data
    if callback_secret:
        body["callback_secret"] = callback_secret
    return Response(body, status=status.HTTP_201_CREATED)


def _created_message(avatar, how: str) -> str:
    name = f"Avatar '{avatar.avatar_id}' {how}"
    if avatar.state == AvatarState.READY:
        return f"{name}; it is ready."
    if avatar.state == AvatarState.FAILED:
        code = avatar.error_code or "failed"
        return f"{name}; it failed ({code}): {avatar.error_message or 'see error'}"
    if avatar.state == AvatarState.CANCELLED:
        return f"{name}; it was cancelled."
    return f"{name}; it is being prepared."


class AvatarListCreateView(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(operation_id="v1_avatars_list", parameters=[AvatarListQuerySerializer],
                   responses={200: AvatarListSerializer, **errors(400, 401)})
    def get(self, request):
        query = validated(AvatarListQuerySerializer, request.query_params)
        total, avatar_ids = selectors.list_avatar_ids(**query)
        return Response({"total": total, "avatars": avatar_ids})

    @extend_schema(request=CreateFromPathSerializer, parameters=[WAIT],
                   responses={201: AvatarCreatedSerializer, **errors(400, 401, 404, 409, 415, 422, 503, 507)})
    def post(self, request):
        wait_s = _wait_seconds(request)
        data = validated(CreateFromPathSerializer, request.data)
        callback_url = callbacks.read(request.data)
        avatar = services.create_avatar_from_path(**data)
        return _created(avatar, "accepted", wait_s, callback_url)


class AvatarUploadView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    def initialize_request(self, request, *args, **kwargs):
        # Before anything reads the body (CSRF checks do): count bytes while they stream in.
        request.upload_handlers.insert(0, SizeLimitUploadHandler(request))
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(request={"multipart/form-data": CreateFromUploadSerializer}, parameters=[WAIT],
                   responses={201: AvatarCreatedSerializer, **errors(400, 401, 404, 409, 413, 415, 422, 503, 507)})
    def post(self, request):
        limit = settings.AVATAR_MAX_UPLOAD_BYTES
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit + 64 * 1024:  # form fields' overhead
            raise too_large(limit)
        wait_s = _wait_seconds(request)
        data = validated(CreateFromUploadSerializer, request.data)
        callback_url = callbacks.read(request.data)
        upload = data.pop("video_file")
        with local_copy(upload) as local_path:
            avatar = services.create_avatar_from_upload(
                local_path=local_path, original_name=upload.name or "video", **data
            )
        return _created(avatar, "uploaded", wait_s, callback_url)


class AvatarDetailView(APIView):
    @extend_schema(responses={200: AvatarSerializer, **errors(400, 401, 404)})
    def get(self, request, avatar_id: str):
        return Response(AvatarSerializer(services.get_avatar(avatar_id)).data)

    @extend_schema(parameters=[DeleteQuerySerializer], responses={200: DeletedSerializer, **errors(400, 401, 404, 409)})
    def delete(self, request, avatar_id: str):
        force = validated(DeleteQuerySerializer, request.query_params)["force"]
        services.delete_avatar(avatar_id, force=force)
        return Response({"status": "success", "avatar_id": avatar_id, "message": f"Avatar '{avatar_id}' deleted."})


class AvatarPreviewView(APIView):
    @extend_schema(responses={(200, "image/jpeg"): OpenApiResponse(description="A JPEG still of the avatar"),
                              **errors(400, 401, 404)})
    def get(self, request, avatar_id: str):
        avatar = services.get_avatar(avatar_id)
        if avatar.state != AvatarState.READY or not storage.backend().prepared_exists(avatar_id, "preview.jpg"):
            raise NotFound(f"Avatar '{avatar_id}' has no preview until it is ready (it is {avatar.state}).")
        return HttpResponse(storage.backend().read_prepared(avatar_id, "preview.jpg"), content_type="image/jpeg")


class AvatarReprocessView(APIView):
    @extend_schema(request=ReprocessSerializer, responses={202: AvatarAcceptedSerializer, **errors(400, 401, 404, 409, 503)})
    def post(self, request, avatar_id: str):
        data = validated(ReprocessSerializer, request.data)
        avatar = services.reprocess_avatar(avatar_id, apply_blur=data["apply_blur"])
        message = f"Avatar '{avatar_id}' queued for reprocessing."
        return Response(AvatarAcceptedSerializer(avatar, context={"message": message}).data,
                        status=status.HTTP_202_ACCEPTED)
