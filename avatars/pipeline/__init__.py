"""The avatar preparation pipeline: a video file in, the prepared avatar files out.

Pure Python on OpenCV, NumPy and torch. Nothing here imports Django, touches the database or
knows about HTTP, so the same code serves the worker threads, a management command and the
benchmarks.
"""

from avatars.pipeline.errors import PipelineCancelled, PipelineError
from avatars.pipeline.prepare import PreparedAvatar, PrepareOptions, prepare
from avatars.pipeline.video import VideoInfo, VideoLimits, probe

__all__ = [
    "PipelineCancelled",
    "PipelineError",
    "PreparedAvatar",
    "PrepareOptions",
    "VideoInfo",
    "VideoLimits",
    "prepare",
    "probe",
]
