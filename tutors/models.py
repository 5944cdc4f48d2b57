from django.db import models


class Tutor(models.Model):
    """A tutor of the platform. `avatar_id` names the tutor's ready avatar, as in the seed's table:
    a plain id rather than a foreign key, so existing clients that read it keep working."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    avatar_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"
