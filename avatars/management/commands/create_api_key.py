from django.core.management.base import BaseCommand

from avatars.models import ApiKey


class Command(BaseCommand):
    help = "Create an API key for the /v1/ API. The key is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who or what uses the key, e.g. web-server")

    def handle(self, *args, name: str, **options):
        row, key = ApiKey.issue(name)
        self.stderr.write(f"Created API key '{row.name}' (id {row.pk}). Store it now: only its hash is kept.")
        self.stdout.write(key)
