"""Upgrade every ready avatar prepared by an older pipeline (today: add its lip shapes and mouth
bank, so its tutor speaks with their own mouth), in one command:

    .venv/bin/python manage.py upgrade_avatars [--avatar ID ...] [--dry-run]

Each avatar stays ready and in use while it is upgraded; sessions that start afterwards use the
tutor's own mouth (or say why they cannot: the coverage's advice). Exits 0, or 1 when an avatar
failed to upgrade (the others are still done).
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from avatars import upgrades
from avatars.models import Avatar, AvatarState
from avatars.pipeline import lips


class Command(BaseCommand):
    help = "Add lip shapes and the mouth bank to ready avatars prepared before them."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--avatar", action="append", default=[], help="only this avatar id (repeatable)")
        parser.add_argument("--dry-run", action="store_true", help="list what would be upgraded")

    def handle(self, *args, avatar: list[str], dry_run: bool, **options) -> None:
        if not lips.available():
            self.stderr.write("The face-mesh model is not installed (requirements-models.txt): nothing can be upgraded.")
            sys.exit(1)
        avatars = Avatar.objects.filter(state=AvatarState.READY).order_by("id")
        if avatar:
            avatars = avatars.filter(avatar_id__in=avatar)
        failed = upgraded = 0
        for row in avatars:
            try:
                if not upgrades.needs_upgrade(row):
                    continue
                if dry_run:
                    self.stdout.write(f"{row.avatar_id}: would be upgraded")
                    continue
                coverage = upgrades.upgrade(row)
            except Exception as error:  # one avatar's trouble does not stop the others
                failed += 1
                self.stderr.write(f"{row.avatar_id}: failed: {error}")
                continue
            if coverage is None:
                self.stdout.write(f"{row.avatar_id}: not upgraded (see the log)")
                continue
            upgraded += 1
            self.stdout.write(f"{row.avatar_id}: upgraded; mouth coverage {coverage['verdict']}: {coverage['advice']}")
        self.stdout.write(f"{upgraded} upgraded, {failed} failed.")
        if failed:
            sys.exit(1)
