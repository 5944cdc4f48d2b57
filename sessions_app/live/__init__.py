"""A session live, whatever carries it to the viewer, on one server or many.

`watcher.py` runs one viewer's watch of a session (SessionWatcher: look, wait while the avatar is
prepared, stream, follow a switch, end) over a transport that provides a LiveViewer; the
transports are `websocket.py` (the WebSocket stream), `webrtc/` (one peer connection per viewer)
and, in a stage worker, `publisher.py` (the session's media encoded once for the media server).
`stage.py` is the session's clock and renderer (one per session, however many watch), `frames.py`
the avatar's frames (encoded once, shared by every viewer), and `listening.py` the student's
voice that a viewer's microphone sends to the stage.

Past one machine (SESSION_MEDIA_SERVER="janus"): `placement.py` says which stage worker runs which
session, `stage_worker.py` is that worker's runtime, `janus.py` and `rtp.py` speak to Janus,
`media_viewers.py` gives viewers Janus's offers, and `relay.py` carries the WebSocket stream from
the worker to any web process over the channel layer.
"""
