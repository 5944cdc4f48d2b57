"""What the avatars app announces, for the apps built on it (tutors switch to a new avatar,
sessions start or end with theirs); the avatars app never imports them.

`avatar_finished`: a run of an avatar ended. Sent by the process that ran it (a server's job
thread or a Celery worker) after the row is committed, with `avatar_id`, `tutor_id` (or None),
`state` ("ready", "failed" or "cancelled") and `error_code` (or None).
"""

from django.dispatch import Signal

avatar_finished = Signal()
