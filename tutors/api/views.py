"""The /v1/tutors endpoints: parse, call a service, render. No rules live here."""

from __future__ import annotations

from contextlib import nullcontext

from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from avatars.api.serializers import DeleteQuerySerializer
from avatars.uploads import SizeLimitUploadHandler, local_copy
from common.api_input import validated
from common.parsers import JSONParser
from common.api_schema import errors, extend_schema
from tutors import services
from webhooks import callbacks
from tutors.api.serializers import (
    CreateTutorSerializer,
    TutorDeletedSerializer,
    TutorListQuerySerializer,
    TutorListSerializer,
    TutorSerializer,
    UpdateTutorSerializer,
    tutor_list_context,
)


class _AcceptsVideos:
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def initialize_request(self, request, *args, **kwargs):
        # Before anything reads the body: count the video's bytes while they stream in.
        request.upload_handlers.insert(0, SizeLimitUploadHandler(request))
        return super().initialize_request(request, *args, **kwargs)


def _video(upload):
    """The uploaded video as a local file for the services, or nothing."""
    return local_copy(upload) if upload is not None else nullcontext(None)


class TutorListCreateView(_AcceptsVideos, APIView):
    @extend_schema(operation_id="v1_tutors_list", parameters=[TutorListQuerySerializer],
                   responses={200: TutorListSerializer, **errors(400, 401)})
    def get(self, request):
        total, tutors = services.list_tutors(**validated(TutorListQuerySerializer, request.query_params))
        data = TutorSerializer(tutors, many=True, context=tutor_list_context(tutors)).data
        return Response({"total": total, "tutors": data})

    @extend_schema(request={"application/json": CreateTutorSerializer, "multipart/form-data": CreateTutorSerializer},
                   responses={201: TutorSerializer, **errors(400, 401, 409, 413, 415, 422, 503, 507)})
    def post(self, request):
        data = validated(CreateTutorSerializer, request.data)
        callback_url = callbacks.read(request.data)
        upload = data.pop("avatar_video")
        with _video(upload) as path:
            tutor, _ = services.create_tutor(name=data["name"], description=data["description"], video=path,
                                             video_name=(upload.name if upload else None) or "video",
                                             apply_blur=data["apply_blur"])
        body = TutorSerializer(tutor).data
        callback_secret = callbacks.register(callback_url, tutor_id=tutor.pk)
        if callback_secret:
            body["callback_secret"] = callback_secret  # shown this once
        return Response(body, status=status.HTTP_201_CREATED)


class TutorDetailView(_AcceptsVideos, APIView):
    @extend_schema(responses={200: TutorSerializer, **errors(401, 404)})
    def get(self, request, tutor_id: int):
        return Response(TutorSerializer(services.get_tutor(tutor_id)).data)

    @extend_schema(request={"application/json": UpdateTutorSerializer, "multipart/form-data": UpdateTutorSerializer},
                   responses={200: TutorSerializer, **errors(400, 401, 404, 409, 413, 415, 422, 503, 507)})
    def patch(self, request, tutor_id: int):
        data = validated(UpdateTutorSerializer, request.data)
        upload = data.pop("avatar_video")
        tutor = services.get_tutor(tutor_id)
        if upload is not None:
            # The video first: a refused one changes nothing, not even the name.
            with _video(upload) as path:
                services.replace_video(tutor, local_path=path, original_name=upload.name or "video",
                                       apply_blur=data["apply_blur"])
        tutor = services.update_tutor(tutor_id, name=data.get("name"), description=data.get("description"))
        return Response(TutorSerializer(tutor).data)

    @extend_schema(parameters=[DeleteQuerySerializer],
                   responses={200: TutorDeletedSerializer, **errors(400, 401, 404, 409)})
    def delete(self, request, tutor_id: int):
        force = validated(DeleteQuerySerializer, request.query_params)["force"]
        services.delete_tutor(tutor_id, force=force)
        return Response({"status": "success", "tutor_id": tutor_id,
                         "message": f"Tutor {tutor_id} and its avatars deleted."})
