from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from avatars import services, storage, usage
from avatars.models import ApiKey, Avatar, AvatarState
from common.errors import ServiceError


@admin.register(Avatar)
class AvatarAdmin(admin.ModelAdmin):
    list_display = ["avatar_id", "tutor", "state", "stage", "progress", "apply_blur", "source", "error_code", "size",
                    "created_at"]
    list_filter = ["state", "apply_blur", "source", "error_code"]
    search_fields = ["avatar_id", "tutor__name"]
    actions = ["reprocess_selected"]
    fields = ["avatar_id", "tutor", "state", "stage", "progress", "apply_blur", "source", "source_name",
              "error_code", "error_message", "video", "faces", "size", "avatar_path", "preview", "created_at",
              "updated_at", "ready_at"]
    readonly_fields = fields

    @admin.display(description="prepared size", ordering="size_bytes")
    def size(self, avatar: Avatar) -> str:
        return filesizeformat(avatar.size_bytes) if avatar.size_bytes is not None else "-"

    def has_add_permission(self, request) -> bool:
        return False  # avatars are made from a video: the Tutor form, the staff pages or the API

    @admin.display(description="avatar path")
    def avatar_path(self, avatar: Avatar) -> str:
        return str(storage.backend().avatar_path(avatar.avatar_id))

    @admin.display(description="preview")
    def preview(self, avatar: Avatar) -> str:
        if avatar.state != AvatarState.READY:
            return "-"
        return format_html('<img src="{}" style="max-width:320px">', reverse("avatar-preview", args=[avatar.avatar_id]))

    def delete_view(self, request, object_id, extra_context=None):
        # Refuse before Django's confirmation is accepted: an avatar shown in a session stays
        # (the API's DELETE says the same, 409 avatar_in_use).
        if request.method == "POST":
            avatar = self.get_object(request, unquote(object_id))
            if avatar is not None and usage.in_use(avatar.avatar_id):
                self.message_user(request, f"{avatar.avatar_id} is shown in an active session; end the session "
                                           "first (or delete it through the API with ?force=true).", messages.ERROR)
                return redirect(reverse("admin:avatars_avatar_change", args=[avatar.pk]))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, avatar: Avatar) -> None:
        services.delete_avatar(avatar.avatar_id)

    def delete_queryset(self, request, queryset) -> None:
        for avatar_id in list(queryset.values_list("avatar_id", flat=True)):
            try:
                services.delete_avatar(avatar_id)
            except ServiceError as exc:
                self.message_user(request, f"{avatar_id} was kept: {exc.message}", messages.ERROR)

    @admin.action(description="Reprocess the selected avatars")
    def reprocess_selected(self, request, queryset) -> None:
        for avatar_id in queryset.values_list("avatar_id", flat=True):
            try:
                services.reprocess_avatar(avatar_id)
            except ServiceError as exc:
                self.message_user(request, f"{avatar_id}: {exc.message}", messages.WARNING)
            else:
                self.message_user(request, f"{avatar_id}: queued for reprocessing.")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_selected"]

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if change:
            obj.save()
            return
        row, key = ApiKey.issue(obj.name)
        obj.pk, obj.prefix, obj.key_hash, obj.created_at = row.pk, row.prefix, row.key_hash, row.created_at
        self.message_user(request, f"API key for '{row.name}': {key} — copy it now, it is not shown again.",
                          messages.SUCCESS)

    @admin.action(description="Revoke the selected keys")
    def revoke_selected(self, request, queryset) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).")
