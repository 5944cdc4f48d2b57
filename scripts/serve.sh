#!/usr/bin/env bash
# Install what the server needs, migrate, and serve HTTP (and WebSocket) on :9000 with the
# embedded defaults: SQLite, in-memory channel layer, files under ./data. Settings: README.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
install_requirements requirements.txt
python manage.py migrate --noinput
python manage.py collectstatic --noinput --verbosity 0
exec daphne --bind "${HOST:-127.0.0.1}" --port "${PORT:-9000}" tutorplatform.asgi:application
