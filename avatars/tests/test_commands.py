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


@pytest.mark.django_db(transaction=True)
def test_prepare_avatar_command_makes_a_ready_avatar_and_shows_progress(face_video, isolated_storage):
    from avatars.models import Avatar

    out, err = StringIO(), StringIO()
    call_command("prepare_avatar", str(face_video[0]), "--avatar-id", "cli1", "--blur", stdout=out, stderr=err)
    assert "Avatar 'cli1' is ready: 50 frames" in out.getvalue()
    assert "100.0%" in err.getvalue() or "ready" in err.getvalue()
    avatar = Avatar.objects.get(avatar_id="cli1")
    assert avatar.state == "ready" and avatar.apply_blur
    assert (isolated_storage / "avatars" / "cli1" / "coords.pkl").is_file()


@pytest.mark.django_db(transaction=True)
def test_prepare_avatar_for_a_tutor_follows_the_replacement_rule_and_says_what_it_changed(face_video):
    """The tutor keeps its avatar while the new one is prepared, then switches; the replaced one
    is deleted (TUTOR_KEEP_REPLACED_AVATARS is off); another tutor's avatar is never touched."""
    from avatars.models import Avatar
    from tutors.models import Tutor

    ada, bo = Tutor.objects.create(name="Ada"), Tutor.objects.create(name="Bo")
    call_command("prepare_avatar", str(face_video[0]), "--avatar-id", "ada-1", "--tutor", str(ada.pk),
                 stdout=StringIO(), stderr=StringIO())
    call_command("prepare_avatar", str(face_video[0]), "--avatar-id", "bo-1", "--tutor", str(bo.pk),
                 stdout=StringIO(), stderr=StringIO())
    out = StringIO()
    call_command("prepare_avatar", str(face_video[0]), "--avatar-id", "ada-2", "--tutor", str(ada.pk),
                 stdout=out, stderr=StringIO())
    assert f"Tutor {ada.pk} keeps avatar 'ada-1' until 'ada-2' is ready" in out.getvalue()
    assert f"Tutor {ada.pk} now shows 'ada-2' instead of 'ada-1' (deleted)" in out.getvalue()
    ada.refresh_from_db(), bo.refresh_from_db()
    assert (ada.avatar_id, ada.pending_avatar_id, bo.avatar_id) == ("ada-2", None, "bo-1")
    assert not Avatar.objects.filter(avatar_id="ada-1").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fixture, code", [("no_face_video", "no_face"), ("not_a_video", "unsupported_media"),
                                           ("short_video", "invalid_video")])
def test_prepare_avatar_command_fails_with_the_named_error(request, fixture, code):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as caught:
        call_command("prepare_avatar", str(request.getfixturevalue(fixture)), "--avatar-id", "cli2",
                     stdout=StringIO(), stderr=StringIO())
    assert str(caught.value).startswith(f"{code}: ")


def test_prepare_avatar_command_exits_non_zero_from_the_shell(tmp_path, not_a_video):
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATA_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, check=True)
    result = subprocess.run([sys.executable, "manage.py", "prepare_avatar", str(not_a_video), "--avatar-id", "x"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "unsupported_media" in result.stderr
