"""The avatar row is the truth about a preparation job; files exist only when it is ready."""

from __future__ import annotations

import hashlib
import secrets

from django.db import models
from django.utils import timezone


class AvatarState(models.TextChoices):
    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATES = (AvatarState.QUEUED, AvatarState.PROCESSING)
FINAL_STATES = (AvatarState.READY, AvatarState.FAILED, AvatarState.CANCELLED)


class AvatarSource(models.TextChoices):
    UPLOAD = "upload"
    PATH = "path"


class Avatar(models.Model):
    avatar_id = models.CharField(max_length=64, unique=True)
    tutor = models.ForeignKey("tutors.Tutor", null=True, blank=True, on_delete=models.SET_NULL, related_name="avatars")
    state = models.CharField(max_length=16, choices=AvatarState.choices, default=AvatarState.QUEUED, db_index=True)
    stage = models.CharField(max_length=16, null=True, blank=True)
    progress = models.FloatField(default=0.0)
    frames_done = models.PositiveIntegerField(default=0)
    frames_total = models.PositiveIntegerField(default=0)
    apply_blur = models.BooleanField(default=False)
    source = models.CharField(max_length=16, choices=AvatarSource.choices)
    # The stored copy of the source video (a Django storage name), kept for reprocessing.
    source_file = models.CharField(max_length=255)
    source_name = models.CharField(max_length=255, blank=True, default="")
    error_code = models.CharField(max_length=32, null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    video = models.JSONField(null=True, blank=True)
    faces = models.JSONField(null=True, blank=True)
    # The mouth shapes the video holds and which renderer speaks with them (pipeline/mouth_bank.py);
    # null until ready, and for avatars prepared before lip shapes were measured.
    mouth_coverage = models.JSONField(null=True, blank=True)
    # Bytes of the prepared files, once ready (frames, crops, coordinates, preview).
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    # Counts preparation runs; progress writes name their run so a stale worker cannot overwrite a newer one.
    run = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    ready_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.avatar_id

    @property
    def error(self) -> dict | None:
        if not self.error_code:
            return None
        return {"code": self.error_code, "message": self.error_message or ""}


def hash_api_key(key: str) -> str:
    # The keys are 256-bit random tokens, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(models.Model):
    """A key for the /v1/ API. Only its hash is stored; the key itself is shown once, at creation."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, editable=False, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, name: str) -> tuple["ApiKey", str]:
        """Create a key; return the row and the plain key, which is not stored anywhere."""
        key = "tk_" + secrets.token_urlsafe(32)
        row = cls.objects.create(name=name, prefix=key[:10], key_hash=hash_api_key(key))
        return row, key
