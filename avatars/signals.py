"""What the avatars app announces, for the apps built on it (tutors switch to a new avatar,
sessions start or end with theirs); the avatars app never imports them.

`avatar_finished`: a run of an avatar ended. Sent by the process that ran it (a server's job
thread or a Celery worker) inside the transaction that marks the row, with `avatar_id`,
`tutor_id` (or None), `state` ("ready", "failed" or "cancelled") and `error_code` (or None).
A receiver's row changes commit with that one (a tutor switches to its new avatar in the same
step as the avatar becomes ready); anything slower or outside the database it defers with
`transaction.on_commit`, and it keeps its changes in a savepoint of its own (`atomic()`), so
that its failure cannot spoil the row's.
"""

from django.dispatch import Signal

avatar_finished = Signal()
