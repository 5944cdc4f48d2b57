from django.contrib import admin, messages

from avatars.uploads import local_copy
from common.errors import ServiceError
from tutors import services
from tutors.forms import TutorForm
from tutors.models import Tutor


@admin.register(Tutor)
class TutorAdmin(admin.ModelAdmin):
    """Adding or changing a tutor may take an avatar video: saved through the same service as the
    staff pages (the tutor first, then its avatar `avatar_tutor_<id>`)."""

    form = TutorForm
    list_display = ["id", "name", "avatar_id", "replacement", "created_at"]
    search_fields = ["name", "avatar_id"]
    list_filter = [("avatar_id", admin.EmptyFieldListFilter)]
    readonly_fields = ["avatar_id", "replacement", "created_at"]
    fields = ["name", "description", "video", "apply_blur", "avatar_id", "replacement", "created_at"]

    @admin.display(description="new video")
    def replacement(self, tutor: Tutor) -> str:
        avatar = services.pending_avatar(tutor)
        if avatar is None:
            return "-"
        if avatar.error_code:
            return f"{avatar.avatar_id}: {avatar.state} ({avatar.error_code})"
        return f"{avatar.avatar_id}: {avatar.state} ({avatar.progress:.0f}%)"

    def save_model(self, request, obj: Tutor, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        video = form.cleaned_data.get("video")
        if not video:
            return
        try:
            with local_copy(video) as path:
                avatar = services.replace_video(obj, local_path=path, original_name=video.name or "video",
                                                apply_blur=form.cleaned_data.get("apply_blur", False))
        except ServiceError as exc:
            self.message_user(request, f"The tutor was saved, but the video was refused: {exc.code}: {exc.message}",
                              messages.ERROR)
        else:
            self.message_user(request, f"Avatar '{avatar.avatar_id}' is being prepared from the video; the tutor "
                                       "keeps its current avatar until it is ready.")
