"""The settings the test suite runs with: the real ones, with state kept out of ./data.

Unless DATA_DIR is set, all state of a test run goes to a fresh temporary folder.
"""

import os
import tempfile

os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="avatar-tests-"))
os.environ.setdefault("AVATAR_REQUEUE_ON_START", "false")
os.environ.setdefault("SESSION_IDLE_SWEEP", "false")
# Tests write import files just before naming them: watch them briefly (the tests of the rule set more).
os.environ.setdefault("AVATAR_IMPORT_SETTLE_S", "0.2")

from tutorplatform.settings import *  # noqa: E402,F403
