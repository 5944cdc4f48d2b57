"""Tutors and their avatar videos: the seed's web-server flow, through the avatar services."""

from __future__ import annotations

from pathlib import Path

from avatars import services as avatar_services
from avatars.models import Avatar
from tutors.models import Tutor


def create_tutor(*, name: str, description: str = "") -> Tutor:
    return Tutor.objects.create(name=name, description=description)


def set_tutor_video(tutor: Tutor, *, local_path: Path, original_name: str, apply_blur: bool = False) -> Avatar:
    """Make `avatar_tutor_<id>` from a new video. The video is checked first: a refused file
    (ServiceError) leaves the tutor's current avatar as it was."""
    avatar_services.probe_video(local_path)
    avatar_id = avatar_services.avatar_id_for_tutor(tutor)
    if Avatar.objects.filter(avatar_id=avatar_id).exists():
        avatar_services.delete_avatar(avatar_id)
    return avatar_services.create_avatar_from_upload(
        avatar_id=avatar_id, local_path=local_path, original_name=original_name,
        apply_blur=apply_blur, tutor_id=tutor.pk,
    )


def current_avatar(tutor: Tutor) -> Avatar | None:
    """The tutor's newest avatar, whatever its state (the ready one is also in tutor.avatar_id)."""
    return Avatar.objects.filter(tutor=tutor).order_by("-created_at").first()


def tutors_with_avatars() -> list[tuple[Tutor, Avatar | None]]:
    tutors = list(Tutor.objects.all())
    newest: dict[int, Avatar] = {}
    for avatar in Avatar.objects.filter(tutor__in=tutors).order_by("created_at"):
        newest[avatar.tutor_id] = avatar
    return [(tutor, newest.get(tutor.pk)) for tutor in tutors]
