"""How a delivery is signed: HMAC-SHA256, keyed with the endpoint's secret, over
"<Webhook-Timestamp>.<raw body>", sent as `Webhook-Signature: v1=<hex>` (docs/api.md, "Webhooks",
has the receiver's side)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCHEME = "v1"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def headers(event_id: str, event_type: str, timestamp: int, body: bytes, secret: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "tutor-avatar-webhooks/1",
        "Webhook-Id": event_id,
        "Webhook-Event": event_type,
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": signature(secret, timestamp, body),
    }


def verify(secret: str, header_timestamp: str, header_signature: str, body: bytes, now: float,
           tolerance_s: float = 300) -> bool:
    """The receiver's check (as docs/api.md shows it): the signature matches and the timestamp is recent."""
    try:
        timestamp = int(header_timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, given.strip()) for given in header_signature.split(","))
