"""What the sessions app announces, for the apps built on it (webhooks); it never imports them.
Each is sent once per change, by whoever made the change with its conditional update, from
synchronous code (a request, or a database thread of the stage: never on the event loop), inside
the transaction that made it when there is one (a receiver defers anything slow with
`transaction.on_commit`).

- `session_ended` (sender TutoringSession): `session_id`, `reason`. The session is ended.
- `utterance_started` (sender Utterance): `utterance_pk`. The stage took it to play.
- `utterance_ended` (sender Utterance): `utterance_pk`, `reason` ("done" or "interrupted"). Only
  for an utterance that had started (one dropped from the queue never started).
"""

from django.dispatch import Signal

session_ended = Signal()
utterance_started = Signal()
utterance_ended = Signal()
