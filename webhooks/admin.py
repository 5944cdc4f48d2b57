"""Webhooks in the Django admin: endpoints (a new one's secret is shown once), events, and each
delivery with its attempts and a redeliver action."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction

from common.errors import ServiceError
from webhooks import services, signing
from webhooks.events import EVENT_TYPES
from webhooks.models import Delivery, DeliveryAttempt, Endpoint, Event


class EndpointForm(forms.ModelForm):
    class Meta:
        model = Endpoint
        fields = ["url", "events", "active", "description"]
        help_texts = {"events": f'A JSON list of event types ({", ".join(EVENT_TYPES)}) or ["*"].'}

    def clean_url(self):
        try:
            return services.check_url(self.cleaned_data["url"])
        except ServiceError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_events(self):
        try:
            return services.check_events(self.cleaned_data["events"])
        except ServiceError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["url", "kind", "events", "active", "failing_since", "disabled_reason", "created_at"]
    list_filter = ["kind", "active"]
    search_fields = ["url", "description", "avatar_id"]
    readonly_fields = ["kind", "avatar_id", "tutor_id", "failing_since", "disabled_at", "disabled_reason",
                       "created_at", "updated_at"]

    def save_model(self, request, endpoint: Endpoint, form, change: bool) -> None:
        if not change:
            endpoint.secret = signing.new_secret()
            messages.warning(request, f"The endpoint's signing secret, shown this once: {endpoint.secret}")
        elif "active" in form.changed_data and endpoint.active:
            endpoint.failing_since = endpoint.disabled_at = None
            endpoint.disabled_reason = ""
        super().save_model(request, endpoint, form, change)


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["number", "started_at", "duration_ms", "status_code", "outcome", "error", "answer"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["event", "event_type", "endpoint", "state", "attempts", "last_status", "last_error",
                    "next_attempt_at", "delivered_at"]
    list_filter = ["state", "event__type"]
    search_fields = ["event__id", "endpoint__url"]
    fields = ["event", "endpoint", "state", "attempts", "first_attempt_at", "next_attempt_at", "delivered_at",
              "last_status", "last_error", "payload"]
    readonly_fields = fields
    inlines = [AttemptInline]
    actions = ["redeliver_selected"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="type")
    def event_type(self, delivery: Delivery) -> str:
        return delivery.event.type

    @admin.display(description="body")
    def payload(self, delivery: Delivery) -> str:
        return delivery.event.payload

    @admin.action(description="Redeliver the selected deliveries (same event id)")
    def redeliver_selected(self, request, queryset) -> None:
        with transaction.atomic():
            count = services.redeliver(list(queryset.values_list("pk", flat=True)))
        skipped = queryset.count() - count
        self.message_user(request, f"{count} delivery(ies) queued again" +
                          (f"; {skipped} still pending or in flight, left as they are." if skipped else "."))


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ["endpoint", "state", "attempts", "last_status", "last_error", "delivered_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "created_at"]
    list_filter = ["type"]
    search_fields = ["id"]
    fields = ["id", "type", "created_at", "payload"]
    readonly_fields = fields
    inlines = [DeliveryInline]

    def has_add_permission(self, request) -> bool:
        return False
