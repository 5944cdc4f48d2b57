"""The settings the test suite runs with: the real ones, with state kept out of ./data.

Unless DATA_DIR is set, all state of a test run goes to a fresh temporary folder.
"""

import os
import tempfile

os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="avatar-tests-"))
os.environ.setdefault("AVATAR_REQUEUE_ON_START", "false")
os.environ.setdefault("SESSION_IDLE_SWEEP", "false")

from tutorplatform.settings import *  # noqa: E402,F403
