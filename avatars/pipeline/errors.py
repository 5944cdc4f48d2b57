"""The pipeline's errors: the two ways a preparation run ends early (PipelineError,
PipelineCancelled), and what its parts raise inside it."""

from __future__ import annotations


class PipelineError(Exception):
    """The video cannot become an avatar. `code` is a stable word (no_face, too_short, ...) and
    `message` tells a person what was wrong and what to do about it."""

    def __init__(self, code: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


class PipelineCancelled(Exception):
    """The caller's cancel flag was raised; the run stopped between two frames."""


class FrameWriteError(Exception):
    """A frame or crop could not be written (disk full, permissions, storage gone)."""


class ChildProcessDied(RuntimeError):
    """The child ended without a result (killed, out of memory, crashed in native code)."""


class LipModelMissing(RuntimeError):
    """The face-mesh model file is not installed."""
