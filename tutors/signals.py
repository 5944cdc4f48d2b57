"""What the tutors app announces: `tutor_avatar_switched` (sender Tutor; `tutor_id`,
`old_avatar_id`, `new_avatar_id`), sent once a tutor has switched from one ready avatar to a newer
one, before the old one is deleted. Sessions showing the old avatar move to the new one."""

from django.dispatch import Signal

tutor_avatar_switched = Signal()
