"""A session watched live, whatever carries it to the viewer.

`watcher.py` runs one viewer's watch of a session (SessionWatcher: look, wait while the avatar is
prepared, stream, follow a switch, end) over a transport that provides a LiveViewer; the
transports are `websocket.py` (the WebSocket stream) and `webrtc/` (one peer connection per
viewer). `stage.py` is the session's clock and renderer in this process (one per session, however
many watch), `frames.py` the avatar's frames (encoded once, shared by every viewer), and
`listening.py` the student's voice that a viewer's microphone sends to the stage.
"""
