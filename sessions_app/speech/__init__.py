"""Speech for live sessions, without Django: voices (text to audio with phoneme timings), audio
bodies (WAV in, the session's rate out), mouth openness tracks, the media clock, and the frame
renderers that make the avatar's mouth move. sessions_app.speaking and sessions_app.live.stage use it."""
