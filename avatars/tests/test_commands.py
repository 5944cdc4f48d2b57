from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from avatars.models import ApiKey, hash_api_key


@pytest.mark.django_db
def test_create_api_key_prints_a_working_key_alone_on_the_last_line():
    out = StringIO()
    call_command("create_api_key", "web-server", stdout=out, stderr=StringIO())
    key = out.getvalue().strip().splitlines()[-1]
    row = ApiKey.objects.get(name="web-server")
    assert row.key_hash == hash_api_key(key) and key not in (row.key_hash, row.prefix)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    assert client.get("/v1/avatars").status_code == 200
