"""Webhook endpoints, the events recorded for them, and each delivery with its attempts.

An event is recorded once, its JSON body frozen (`payload`), so that every attempt sends the same
bytes with the same `id`. A delivery is one event for one endpoint; its state moves
pending -> sending -> succeeded | failed (or back to pending for a retry) by conditional updates
only, so a delivery is never attempted twice at once.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class EndpointKind(models.TextChoices):
    ENDPOINT = "endpoint"  # registered through /v1/webhooks or the admin: every event it names
    CALLBACK = "callback"  # a create request's callback_url: that avatar's or tutor's events only


class Endpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=EndpointKind.choices, default=EndpointKind.ENDPOINT, db_index=True)
    url = models.CharField(max_length=4096)
    events = models.JSONField(default=list, help_text='Event types, or ["*"] for all.')
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True, default="")
    # Kept as is (not hashed): every delivery is signed with it. Shown once, at creation.
    secret = models.CharField(max_length=100)
    # A callback's resource: the avatar, or the tutor (whose avatars' events it gets too).
    avatar_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    tutor_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Since when every attempt failed (None after a success); past WEBHOOK_DISABLE_AFTER_S it is disabled.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


class Event(models.Model):
    id = models.CharField(primary_key=True, max_length=40, editable=False)
    type = models.CharField(max_length=40, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    payload = models.TextField()  # the exact JSON body every attempt sends

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "webhook event"

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class DeliveryState(models.TextChoices):
    PENDING = "pending"  # waiting for its (next) attempt at next_attempt_at
    SENDING = "sending"  # an attempt is in flight
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # gave up: a final answer (4xx), a refused address, or the retry window ran out


class Delivery(models.Model):
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    first_attempt_at = models.DateTimeField(null=True, blank=True)  # the retry window runs from here
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A `sending` delivery whose process died is taken back after this (webhooks/startup.py).
    claimed_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="one_delivery_per_endpoint_event")]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint.url}"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_set")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)  # None: no answer (timeout, network, refused)
    answer = models.TextField(blank=True, default="")  # the start of the receiver's answer
    error = models.TextField(blank=True, default="")
    outcome = models.CharField(max_length=16)  # succeeded, retry, failed

    class Meta:
        ordering = ["number"]
