#!/usr/bin/env bash
# Install what the server needs, migrate, and serve HTTP (and WebSocket) on :9000 with the
# embedded defaults: SQLite, in-memory channel layer, files under ./data. Settings: README.
# The server is uvicorn (tutorplatform/server.py); SIGTERM shuts it down gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
install_requirements requirements.txt
python manage.py migrate --noinput
python manage.py collectstatic --noinput --verbosity 0
exec python -m tutorplatform.server
