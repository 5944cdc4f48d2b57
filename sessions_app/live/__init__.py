"""Live tutoring sessions: the stage, its media and the servers that carry it."""
