"""What the avatars app announces, for the apps built on it (tutors point to their avatars and
switch to a new one, sessions start or end with theirs); the avatars app never imports them.

Sent by avatars.services inside the transaction that changes the avatar's row, so a receiver's
row changes commit or roll back with it (a receiver's exception, a ServiceError included, undoes
the change and reaches the caller: the request is refused and nothing is kept):

`avatar_creating`: a new avatar is about to be written, with `avatar_id` and `tutor_id` (the
tutor it is made for, or None). Sent before the row is written: a receiver that locks a row (the
tutor's) holds it before the new avatar exists, and one that refuses leaves nothing written. A
receiver may answer the id of an earlier avatar the new one supersedes; the caller finds it as
the new avatar's `superseded_avatar_id`.

`avatar_requeued`: an avatar is queued again from its source (`avatar_id`); its prepared files go
at once, so nothing may go on naming it as ready.

`avatar_deleting`: an avatar's row is about to be deleted (`avatar_id`).

`avatar_finished`: a run of an avatar ended. Sent by the process that ran it (a server's job
thread or a Celery worker) inside the transaction that marks the row, with `avatar_id`,
`tutor_id` (or None), `state` ("ready", "failed" or "cancelled") and `error_code` (or None).
A receiver's row changes commit with that one (a tutor switches to its new avatar in the same
step as the avatar becomes ready); anything slower or outside the database it defers with
`transaction.on_commit`, and it keeps its changes in a savepoint of its own (`atomic()`), so
that its failure cannot spoil the row's (this one is sent robustly: a failure is logged).
"""

from django.dispatch import Signal

avatar_creating = Signal()
avatar_requeued = Signal()
avatar_deleting = Signal()
avatar_finished = Signal()
