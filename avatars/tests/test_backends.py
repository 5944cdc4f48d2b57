"""Which engines the settings chose: the second test run (scripts/test.sh) sets DATABASE_URL and
REDIS_URL and must really be talking to PostgreSQL and Redis."""

from __future__ import annotations

import os

import pytest
from channels.layers import get_channel_layer
from django.db import connection


@pytest.mark.skipif(not os.environ.get("DATABASE_URL"), reason="DATABASE_URL is not set (SQLite run)")
@pytest.mark.django_db
def test_database_url_selects_postgresql():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        assert "PostgreSQL" in cursor.fetchone()[0]


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set (in-memory layer run)")
def test_redis_url_selects_the_redis_channel_layer():
    from asgiref.sync import async_to_sync

    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisChannelLayer"
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.send)(channel, {"type": "probe", "n": 1})
    assert async_to_sync(layer.receive)(channel) == {"type": "probe", "n": 1}


def test_without_urls_the_embedded_defaults_are_used():
    if os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL"):
        pytest.skip("this run uses external engines")
    assert connection.vendor == "sqlite"
    assert type(get_channel_layer()).__name__ == "InMemoryChannelLayer"
