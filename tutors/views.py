"""Staff pages: the tutor list (search, pages), the new-tutor form with its avatar video, the tutor
page that shows the avatar being prepared beside the one in use, edit and delete. Staff login
required; all writes go through the services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from avatars import services as avatar_services
from avatars.errors import FileTooLarge
from avatars.models import ACTIVE_STATES, AvatarState
from avatars.pipeline import mouth_bank
from avatars.pipeline.prepare import STAGE_WORDS
from avatars.pipeline.verdicts import SAME_VIDEO_FAILS_AGAIN
from avatars.uploads import SizeLimitUploadHandler, local_copy
from common.errors import ServiceError
from common.paging import page_of
from tutors import services
from tutors.forms import AvatarVideoForm, TutorEditForm, TutorForm
from tutors.models import Tutor


def _limit_upload(request) -> None:
    # Before the CSRF check reads the body: count the bytes while they stream in.
    request.upload_handlers.insert(0, SizeLimitUploadHandler(request))


def _go_to(request, url: str):
    """A redirect; for the page's own upload script (which shows the upload's progress), the
    address as JSON, so the messages for the next page are not spent on a followed redirect."""
    if request.headers.get("X-Requested-With") == "XMLHttpRequest":
        return JsonResponse({"redirect": url})
    return redirect(url)


def _attach_video(request, tutor: Tutor, upload, apply_blur: bool) -> None:
    """Start the tutor's avatar from an uploaded video; a refusal becomes a message on the page."""
    try:
        with local_copy(upload) as path:
            services.replace_video(tutor, local_path=path, original_name=upload.name or "video", apply_blur=apply_blur)
    except ServiceError as exc:
        messages.error(request, f"{exc.code}: {exc.message}", extra_tags=exc.code)


PAGE_SIZE = 25


@staff_member_required
def tutor_list(request):
    search = request.GET.get("q", "").strip()
    total, _ = services.list_tutors(search=search, limit=1)
    number, paging = page_of(request, total, PAGE_SIZE)
    _, tutors = services.list_tutors(search=search, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    return render(request, "staff/tutor_list.html", {
        "rows": services.tutors_with_avatars(tutors), "search": search, "paging": paging,
    })


@csrf_exempt
@staff_member_required
def tutor_create(request):
    if request.method == "POST":
        _limit_upload(request)
    try:
        return _tutor_create(request)
    except FileTooLarge as exc:
        messages.error(request, f"{exc.code}: {exc.message}", extra_tags=exc.code)
        return render(request, "staff/tutor_form.html", {"form": TutorForm(), "passage": READING_PASSAGE}, status=413)


@csrf_protect
def _tutor_create(request):
    form = TutorForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        # The seed's order, in one step: the tutor, then its avatar from the video; a refused
        # video re-shows the form with the error and what was typed, and no tutor is made.
        upload = form.cleaned_data.get("video")
        try:
            if upload:
                with local_copy(upload) as path:
                    tutor, _ = services.create_tutor(
                        name=form.cleaned_data["name"], description=form.cleaned_data["description"],
                        video=path, video_name=upload.name or "video", apply_blur=form.cleaned_data["apply_blur"])
            else:
                tutor, _ = services.create_tutor(name=form.cleaned_data["name"],
                                                 description=form.cleaned_data["description"])
        except ServiceError as exc:
            messages.error(request, f"{exc.code}: {exc.message}", extra_tags=exc.code)
            return render(request, "staff/tutor_form.html", {"form": form, "passage": READING_PASSAGE}, status=400)
        return _go_to(request, reverse("staff-tutor", kwargs={"tutor_id": tutor.pk}))
    return render(request, "staff/tutor_form.html", {"form": form, "passage": READING_PASSAGE},
                  status=400 if request.method == "POST" else 200)


@staff_member_required
def tutor_detail(request, tutor_id: int):
    tutor = get_object_or_404(Tutor, pk=tutor_id)
    pending = services.pending_avatar(tutor)
    current = services.current_avatar(tutor)
    avatar = pending or current
    # The card follows the avatar being made from the newest video, when there is one; the
    # tutor's ready avatar is named above it and stays in use until the new one is ready.
    return render(request, "staff/tutor_detail.html", {
        "tutor": tutor, "avatar": avatar, "pending": pending, "video_form": AvatarVideoForm(),
        # A refusal about the video itself would only repeat: the page offers another video.
        "same_video_fails_again": bool(avatar and avatar.error_code in SAME_VIDEO_FAILS_AGAIN),
        "same_video_codes": sorted(SAME_VIDEO_FAILS_AGAIN), "stage_names": STAGE_WORDS,
        # A session shows the ready avatar, or waits for one being prepared (as the API allows).
        "can_start_session": bool((current and current.state == AvatarState.READY)
                                  or (pending and pending.state in ACTIVE_STATES)),
        "coverage": _coverage(avatar), "passage": READING_PASSAGE,
    })


# What the tutor reads aloud while recorded, and why: shown where a video is uploaded.
READING_PASSAGE = {"text": mouth_bank.PASSAGE, "why": mouth_bank.PASSAGE_WHY}


def _coverage(avatar) -> dict | None:
    """The mouth coverage of a ready avatar (an avatar prepared before lip shapes: 'unmeasured')."""
    if avatar is None or avatar.state != AvatarState.READY:
        return None
    return avatar.mouth_coverage or mouth_bank.coverage(None)


@csrf_exempt
@staff_member_required
@require_POST
def tutor_video(request, tutor_id: int):
    _limit_upload(request)
    try:
        return _tutor_video(request, tutor_id)
    except FileTooLarge as exc:
        messages.error(request, f"{exc.code}: {exc.message}", extra_tags=exc.code)
        return redirect("staff-tutor", tutor_id=tutor_id)


@csrf_protect
def _tutor_video(request, tutor_id: int):
    tutor = get_object_or_404(Tutor, pk=tutor_id)
    form = AvatarVideoForm(request.POST, request.FILES)
    if form.is_valid() and form.cleaned_data.get("video"):
        _attach_video(request, tutor, form.cleaned_data["video"], form.cleaned_data["apply_blur"])
    else:
        messages.error(request, "invalid_request: choose a video file to upload.", extra_tags="invalid_request")
    return redirect("staff-tutor", tutor_id=tutor.pk)


@staff_member_required
def tutor_edit(request, tutor_id: int):
    tutor = get_object_or_404(Tutor, pk=tutor_id)
    form = TutorEditForm(request.POST or None, instance=tutor)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_tutor(tutor.pk, name=form.cleaned_data["name"], description=form.cleaned_data["description"])
        except ServiceError as exc:
            messages.error(request, f"{exc.code}: {exc.message}", extra_tags=exc.code)
        else:
            messages.success(request, "Saved.")
            return redirect("staff-tutor", tutor_id=tutor.pk)
    return render(request, "staff/tutor_edit.html", {"tutor": tutor, "form": form},
                  status=400 if request.method == "POST" else 200)


@staff_member_required
@require_POST
def tutor_delete(request, tutor_id: int):
    tutor = get_object_or_404(Tutor, pk=tutor_id)
    try:
        services.delete_tutor(tutor.pk, force=request.POST.get("force") == "true")
    except ServiceError as exc:
        messages.error(request, f"{exc.code}: {exc.message}", extra_tags=exc.code)
        return redirect("staff-tutor", tutor_id=tutor.pk)
    messages.success(request, f"Tutor {tutor.name} and its avatars were deleted.")
    return redirect("staff-tutors")


@staff_member_required
@require_POST
def tutor_reprocess(request, tutor_id: int):
    tutor = get_object_or_404(Tutor, pk=tutor_id)
    avatar = services.pending_avatar(tutor) or services.current_avatar(tutor)
    if avatar is None:
        messages.error(request, "not_found: this tutor has no avatar video to reprocess; upload one.")
    else:
        try:
            avatar_services.reprocess_avatar(avatar.avatar_id)
        except ServiceError as exc:
            messages.error(request, f"{exc.code}: {exc.message}", extra_tags=exc.code)
    return redirect("staff-tutor", tutor_id=tutor.pk)
