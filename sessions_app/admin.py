from django.contrib import admin

from sessions_app import services
from sessions_app.models import SessionState, TutoringSession


@admin.register(TutoringSession)
class TutoringSessionAdmin(admin.ModelAdmin):
    list_display = ["session_id", "tutor", "student_id", "avatar_id", "state", "created_at", "last_activity_at", "ended_at", "end_reason"]
    list_filter = ["state", "end_reason"]
    search_fields = ["session_id", "avatar_id", "tutor__name", "student_id"]
    readonly_fields = ["session_id", "tutor", "student_id", "avatar_id", "state", "created_at", "last_activity_at",
                       "ended_at", "end_reason"]
    actions = ["end_selected"]

    def has_add_permission(self, request) -> bool:
        return False  # sessions are opened by the API, which applies the rules

    @admin.action(description="End the selected sessions")
    def end_selected(self, request, queryset) -> None:
        ids = list(queryset.filter(state=SessionState.ACTIVE).values_list("session_id", flat=True))
        for session_id in ids:
            services.end_session(session_id, reason="ended_by_staff")
        self.message_user(request, f"Ended {len(ids)} session(s).")
