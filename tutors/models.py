from django.db import models


class Tutor(models.Model):
    """A tutor of the platform. `avatar_id` names the tutor's ready avatar, as in the seed's table:
    a plain id rather than a foreign key, so existing clients that read it keep working.
    `pending_avatar_id` names the avatar being made from the tutor's newest video; the tutor
    switches to it in one step when it is ready (tutors/receivers.py) and keeps `avatar_id` until
    then; a failed one stays named here, with its error, until the next video."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    avatar_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    pending_avatar_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, null=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"
