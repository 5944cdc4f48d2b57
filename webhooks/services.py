"""The rules for webhooks: registering endpoints, recording events, running one delivery attempt
and deciding what follows it.

Emitting never waits on a receiver: `emit` records the event and one delivery per endpoint that
wants it (a few rows, in the caller's transaction when there is one) and hands the deliveries to
the background once that transaction commits (webhooks/dispatch.py).
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from common.errors import InvalidRequest, NotFound
from webhooks import addresses, dispatch, sender, signing
from webhooks.events import EVENT_TYPES
from webhooks.models import Delivery, DeliveryAttempt, DeliveryState, Endpoint, EndpointKind, Event

logger = logging.getLogger(__name__)


# --- Endpoints ---------------------------------------------------------------------------------

def check_url(url: object, field: str = "url") -> str:
    """The URL if webhooks may go there, else UrlRefused (400 invalid_request, details.reason)."""
    addresses.check(url, max_length=settings.WEBHOOK_MAX_URL_LENGTH,
                    allow_private=settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES, field=field)
    return url


def check_events(events: object) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(item, str) for item in events):
        raise InvalidRequest("events: A non-empty list of event types (or [\"*\"]) is required.",
                             {"field": "events", "known": EVENT_TYPES})
    unknown = [item for item in events if item != "*" and item not in EVENT_TYPES]
    if unknown:
        raise InvalidRequest(f"events: Unknown event type(s): {', '.join(unknown)}.",
                             {"field": "events", "reason": "unknown_event", "known": EVENT_TYPES})
    return list(dict.fromkeys(events))


def create_endpoint(*, url: str, events: list[str], active: bool = True, description: str = "",
                    kind: str = EndpointKind.ENDPOINT, avatar_id: str = "", tutor_id: int | None = None) -> Endpoint:
    check_url(url, "callback_url" if kind == EndpointKind.CALLBACK else "url")
    events = check_events(events)
    return Endpoint.objects.create(kind=kind, url=url, events=events, active=active, description=description,
                                   secret=signing.new_secret(), avatar_id=avatar_id, tutor_id=tutor_id)


def get_endpoint(webhook_id) -> Endpoint:
    try:
        key = uuid.UUID(str(webhook_id))
    except ValueError:
        key = None
    endpoint = Endpoint.objects.filter(pk=key, kind=EndpointKind.ENDPOINT).first() if key else None
    if endpoint is None:
        raise NotFound(f"Webhook '{webhook_id}' does not exist.")
    return endpoint


def list_endpoints(*, limit: int = 50, offset: int = 0) -> tuple[int, list[Endpoint]]:
    endpoints = Endpoint.objects.filter(kind=EndpointKind.ENDPOINT).order_by("-created_at")
    return endpoints.count(), list(endpoints[offset:offset + limit])


def update_endpoint(webhook_id, *, url: str | None = None, events: list[str] | None = None,
                    active: bool | None = None, description: str | None = None) -> Endpoint:
    endpoint = get_endpoint(webhook_id)
    changes: dict = {"updated_at": timezone.now()}
    if url is not None:
        changes["url"] = check_url(url)
    if events is not None:
        changes["events"] = check_events(events)
    if description is not None:
        changes["description"] = description
    if active is not None:
        changes["active"] = active
        if active:  # switched on again (after being disabled, say): its failures start afresh
            changes.update(failing_since=None, disabled_at=None, disabled_reason="")
    Endpoint.objects.filter(pk=endpoint.pk).update(**changes)
    endpoint.refresh_from_db()
    return endpoint


def delete_endpoint(webhook_id) -> None:
    endpoint = get_endpoint(webhook_id)
    Endpoint.objects.filter(pk=endpoint.pk).delete()  # its deliveries go with it; a lane skips them


# --- Events ------------------------------------------------------------------------------------

def emit(event_type: str, data: dict, *, avatar_id: str | None = None, tutor_id: int | None = None) -> Event | None:
    """Record the event for every active endpoint that wants it and queue the deliveries (after
    the caller's transaction commits). Registered endpoints get every event they name; a
    callback only its avatar's (`avatar_id`) or its tutor's (`tutor_id`). None when no endpoint
    wants it (nothing is recorded)."""
    scope = Q(kind=EndpointKind.ENDPOINT)
    if avatar_id:
        scope |= Q(kind=EndpointKind.CALLBACK, avatar_id=avatar_id)
    if tutor_id is not None:
        scope |= Q(kind=EndpointKind.CALLBACK, tutor_id=tutor_id)
    endpoints = [endpoint for endpoint in Endpoint.objects.filter(scope, active=True) if endpoint.wants(event_type)]
    if not endpoints:
        return None
    now = timezone.now()
    event_id = f"evt_{uuid.uuid4().hex}"
    payload = json.dumps({"id": event_id, "type": event_type, "created_at": now, "data": data},
                         cls=DjangoJSONEncoder, separators=(",", ":"))
    with transaction.atomic():
        event = Event.objects.create(id=event_id, type=event_type, created_at=now, payload=payload)
        deliveries = Delivery.objects.bulk_create(
            [Delivery(endpoint=endpoint, event=event, next_attempt_at=now) for endpoint in endpoints])
    queued = [(delivery.pk, delivery.endpoint_id) for delivery in deliveries]
    transaction.on_commit(partial(_hand_over, queued), robust=True)
    return event


def _hand_over(queued: list[tuple[int, uuid.UUID]]) -> None:
    for delivery_id, endpoint_id in queued:
        dispatch.submit(delivery_id, endpoint_id)


# --- Deliveries --------------------------------------------------------------------------------

def retry_delay_s(attempts: int) -> float:
    """The wait after the `attempts`-th failed attempt: BASE * 2^(n-1), capped, +-10 % jitter (so
    that many endpoints failing together do not come back together)."""
    delay = min(settings.WEBHOOK_RETRY_BASE_S * 2 ** (attempts - 1), settings.WEBHOOK_RETRY_MAX_DELAY_S)
    return delay * random.uniform(0.9, 1.1)


def should_retry(answer: sender.Answer) -> bool:
    """Timeouts, network errors, 5xx, 408 and 429 are worth another try; other answers are final."""
    if answer.refused:
        return False
    if answer.status is None:
        return True
    return answer.status >= 500 or answer.status in (408, 429)


def run_delivery(delivery_id: int) -> None:
    """One attempt of a pending delivery that is due: claim it, send it, record the attempt, and
    queue the next attempt or settle it. Called by the background workers only."""
    now = timezone.now()
    claim_s = settings.WEBHOOK_TIMEOUT_S + 60
    if not Delivery.objects.filter(pk=delivery_id, state=DeliveryState.PENDING).update(
            state=DeliveryState.SENDING, claimed_until=now + timedelta(seconds=claim_s)):
        return  # already sent, being sent elsewhere, or gone with its endpoint
    delivery = Delivery.objects.select_related("endpoint", "event").filter(pk=delivery_id).first()
    if delivery is None:
        return
    endpoint, event = delivery.endpoint, delivery.event
    first_attempt_at = delivery.first_attempt_at or now
    number = delivery.attempts + 1
    if not endpoint.active:
        answer = sender.Answer(None, "", "the endpoint is disabled" + (f": {endpoint.disabled_reason}"
                                                                       if endpoint.disabled_reason else ""), 0,
                               refused=True)
    else:
        body = event.payload.encode()
        answer = sender.post(
            endpoint.url, body, signing.headers(event.id, event.type, int(time.time()), body, endpoint.secret),
            timeout_s=settings.WEBHOOK_TIMEOUT_S, max_answer_bytes=settings.WEBHOOK_MAX_ANSWER_BYTES,
            allow_private=settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES, max_url_length=settings.WEBHOOK_MAX_URL_LENGTH)
    finished = timezone.now()
    succeeded = answer.status is not None and 200 <= answer.status < 300
    delay = retry_delay_s(number)
    window_ends = first_attempt_at + timedelta(seconds=settings.WEBHOOK_RETRY_WINDOW_S)
    retry = not succeeded and should_retry(answer) and finished + timedelta(seconds=delay) <= window_ends
    error = answer.error or ("" if succeeded else _final_reason(answer, retry))
    outcome = "succeeded" if succeeded else ("retry" if retry else "failed")
    with transaction.atomic():
        DeliveryAttempt.objects.create(delivery_id=delivery_id, number=number, started_at=now,
                                       duration_ms=answer.duration_ms, status_code=answer.status,
                                       answer=answer.body, error=error, outcome=outcome)
        Delivery.objects.filter(pk=delivery_id, state=DeliveryState.SENDING).update(
            state=DeliveryState.SUCCEEDED if succeeded else (DeliveryState.PENDING if retry else DeliveryState.FAILED),
            attempts=F("attempts") + 1, first_attempt_at=first_attempt_at, claimed_until=None,
            next_attempt_at=finished + timedelta(seconds=delay) if retry else finished,
            delivered_at=finished if succeeded else None, last_status=answer.status, last_error=error)
    if endpoint.active:
        _note_health(endpoint, succeeded, error or f"HTTP {answer.status}", finished)
    logger.info("webhook %s -> %s: attempt %d %s (%s, %d ms)", event.id, endpoint.url, number, outcome,
                answer.status or answer.error, answer.duration_ms)
    if retry:
        dispatch.submit(delivery_id, endpoint.pk, delay)


def _final_reason(answer: sender.Answer, retry_possible: bool) -> str:
    if answer.status is not None and 300 <= answer.status < 400:
        return f"HTTP {answer.status}: redirects are not followed"
    if should_retry(answer) and not retry_possible:
        return f"HTTP {answer.status}: retries stopped after WEBHOOK_RETRY_WINDOW_S"
    return ""


def _note_health(endpoint: Endpoint, succeeded: bool, last_error: str, now) -> None:
    """A success clears the endpoint's failing streak; a failure starts one, and a streak longer
    than WEBHOOK_DISABLE_AFTER_S disables the endpoint, saying why."""
    if succeeded:
        Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(failing_since=None)
        return
    Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
    cutoff = now - timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_S)
    if Endpoint.objects.filter(pk=endpoint.pk, active=True, failing_since__lte=cutoff).update(
            active=False, disabled_at=now, updated_at=now,
            disabled_reason=f"Disabled: every delivery failed for {settings.WEBHOOK_DISABLE_AFTER_S / 3600:g} h "
                            f"(last: {last_error[:300]})."):
        logger.warning("webhook endpoint %s (%s) disabled: failing since more than %g s", endpoint.pk,
                       endpoint.url, settings.WEBHOOK_DISABLE_AFTER_S)


def redeliver(delivery_ids) -> int:
    """Send finished deliveries again (the admin's button): same event, same id, a fresh retry
    window. Deliveries pending or in flight are left as they are."""
    now = timezone.now()
    ids = list(Delivery.objects.filter(pk__in=delivery_ids, state__in=[DeliveryState.SUCCEEDED, DeliveryState.FAILED])
               .values_list("pk", "endpoint_id"))
    queued = []
    for pk, endpoint_id in ids:
        if Delivery.objects.filter(pk=pk, state__in=[DeliveryState.SUCCEEDED, DeliveryState.FAILED]).update(
                state=DeliveryState.PENDING, next_attempt_at=now, first_attempt_at=None, delivered_at=None):
            queued.append((pk, endpoint_id))
    transaction.on_commit(partial(_hand_over, queued), robust=True)
    return len(queued)


def take_back_unfinished() -> int:
    """At start: queue again the deliveries an earlier process left pending, or sending past their
    claim (it stopped mid-attempt: at least once means sending again)."""
    now = timezone.now()
    Delivery.objects.filter(state=DeliveryState.SENDING, claimed_until__lt=now).update(
        state=DeliveryState.PENDING, claimed_until=None)
    count = 0
    for pk, endpoint_id, due in Delivery.objects.filter(state=DeliveryState.PENDING).values_list(
            "pk", "endpoint_id", "next_attempt_at"):
        dispatch.submit(pk, endpoint_id, max(0.0, (due - now).total_seconds()))
        count += 1
    return count


def prune(keep_days: float) -> int:
    """Delete events older than `keep_days` whose deliveries are all finished (with their
    deliveries and attempts): the tables do not grow for ever."""
    cutoff = timezone.now() - timedelta(days=keep_days)
    unfinished = Delivery.objects.filter(state__in=[DeliveryState.PENDING, DeliveryState.SENDING]).values("event_id")
    deleted, _ = Event.objects.filter(created_at__lt=cutoff).exclude(id__in=unfinished).delete()
    return deleted
