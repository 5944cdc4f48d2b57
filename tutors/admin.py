from django.contrib import admin

from tutors.models import Tutor


@admin.register(Tutor)
class TutorAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "avatar_id", "created_at"]
    search_fields = ["name", "avatar_id"]
    list_filter = [("avatar_id", admin.EmptyFieldListFilter)]
    readonly_fields = ["avatar_id", "created_at"]
