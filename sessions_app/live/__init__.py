"""A session watched live, whatever carries it to the viewer.

`frames.py` the avatar's frames (encoded once, shared by every viewer); `stage.py` the session's
clock and renderer in this process (one per session, however many watch); `watcher.py` what every
way of watching shares (the viewer places, the session's look, joining its stage); `websocket.py`
the WebSocket stream; `webrtc/` WebRTC delivery (one peer connection per viewer); `listening.py`
the student's voice that a viewer's microphone sends to the stage.
"""
