"""The event types, and which endpoints an event goes to."""

from __future__ import annotations

AVATAR_EVENTS = ["avatar.ready", "avatar.failed", "avatar.deleted"]
TUTOR_EVENTS = ["tutor.avatar_switched"]
SESSION_EVENTS = ["session.started", "session.ended"]
UTTERANCE_EVENTS = ["utterance.started", "utterance.ended"]
EVENT_TYPES = AVATAR_EVENTS + TUTOR_EVENTS + SESSION_EVENTS + UTTERANCE_EVENTS

# A create request's callback_url gets its resource's events only: an avatar's, or a tutor's
# (its switches and its avatars' events).
AVATAR_CALLBACK_EVENTS = AVATAR_EVENTS
TUTOR_CALLBACK_EVENTS = TUTOR_EVENTS + AVATAR_EVENTS
