"""WebRTC delivery of a session: one peer connection per viewer, its video and audio tracks fed
from the session's stage (sessions_app/live/stage.py), so the picture is drawn once per session
however many watch; encoding (VP8 or H.264, Opus) is aiortc's, per viewer, off the event loop."""
