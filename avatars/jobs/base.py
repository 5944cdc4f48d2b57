"""What every job backend offers, and the queue reservation they share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Reservation:
    """A place in the queue, taken before the avatar row is written so that a full queue refuses
    the request before anything is stored. Submit it or release it, exactly once; what either
    does is the backend's (`on_submit(avatar_id)`, `on_release()`)."""

    def __init__(self, on_submit: Callable[[str], None], on_release: Callable[[], None] = lambda: None) -> None:
        self._on_submit = on_submit
        self._on_release = on_release
        self._open = True

    def submit(self, avatar_id: str) -> None:
        if self._open:
            self._open = False
            self._on_submit(avatar_id)

    def release(self) -> None:
        if self._open:
            self._open = False
            self._on_release()


class JobBackend(Protocol):
    """Runs avatar jobs. A backend does not change avatar rows itself: the job function
    (`avatars.preparation.run_avatar_job`) and the services do."""

    workers: int  # job slots in this process (0 where the workers run elsewhere)

    @classmethod
    def from_settings(cls) -> JobBackend:
        """The backend configured from Django's settings."""

    def reserve(self) -> Reservation:
        """A place in the queue, or QueueFull."""

    def submit(self, avatar_id: str) -> None:
        """Queue a job without a reservation (re-queueing after a crash must never be refused)."""

    def cancel(self, avatar_id: str, wait_s: float = 0.0) -> bool:
        """Stop the avatar's job: a queued one at once, a running one between two frames, waiting
        up to `wait_s` for it. True when no job of that avatar is left running."""

    def counts(self) -> tuple[int, int]:
        """(queued, processing) jobs."""

    def stop(self, wait_s: float) -> bool:
        """The process is shutting down: take no more jobs, leave the queued ones queued (their
        rows stay queued; the next start runs them), interrupt the running ones and wait up to
        `wait_s` for them. True when none is left running."""
