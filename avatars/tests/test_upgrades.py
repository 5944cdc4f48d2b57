"""Avatars prepared before lip shapes keep speaking (with the animator, named as the fallback)
until `manage.py upgrade_avatars` adds their mouth bank, in place, while they stay ready."""

from __future__ import annotations

import json
import shutil

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from avatars.models import Avatar, AvatarSource, AvatarState
from avatars.pipeline import PrepareOptions, lips, prepare
from sessions_app.live.frames import AvatarFrames, avatar_material
from sessions_app.speech.mouth_samples import MouthSampleRenderer
from testsupport.talking_footage import talking_clip

pytestmark = [pytest.mark.django_db, pytest.mark.skipif(not lips.available(), reason="no face-mesh model")]


@pytest.fixture(scope="module")
def old_avatar_files(tmp_path_factory):
    """A real talking avatar as the previous pipeline made it: no lip shapes, manifest version 2."""
    out = tmp_path_factory.mktemp("old") / "avatar"
    prepare(talking_clip(95, 35), out, PrepareOptions(lip_shapes=False))
    manifest = json.loads((out / "avatar.json").read_text())
    manifest["format_version"] = 2
    manifest.pop("lips", None)
    manifest.pop("mouth_coverage", None)
    (out / "avatar.json").write_text(json.dumps(manifest))
    return out


def test_an_old_avatar_speaks_with_the_named_fallback_until_upgraded(settings, old_avatar_files, api_key):
    shutil.copytree(old_avatar_files, settings.AVATAR_ROOT / "old_one")
    avatar = Avatar.objects.create(avatar_id="old_one", state=AvatarState.READY, source=AvatarSource.UPLOAD,
                                   source_file="x.mp4", run=1, ready_at=timezone.now(), progress=100.0)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key)
    before = client.get("/v1/avatars/old_one").json()["mouth_coverage"]
    assert before["verdict"] == "unmeasured" and "upgrade_avatars" in before["advice"]
    renderer = MouthSampleRenderer(avatar_material(AvatarFrames.of(avatar)))
    assert renderer.description["fallback"] is True and "upgrade_avatars" in renderer.description["reason"]

    call_command("upgrade_avatars")

    avatar.refresh_from_db()
    assert avatar.state == AvatarState.READY and avatar.mouth_coverage["renderer"] == "mouth_samples"
    folder = settings.AVATAR_ROOT / "old_one"
    manifest = json.loads((folder / "avatar.json").read_text())
    assert manifest["format_version"] == 3 and manifest["lips"]["measured_frames"] > 0.9 * manifest["frame_count"] / lips.MEASURE_EVERY
    assert len(list((folder / "mouth_imgs").iterdir())) == manifest["lips"]["measured_frames"]
    after = client.get("/v1/avatars/old_one").json()["mouth_coverage"]
    assert after == avatar.mouth_coverage
    renderer = MouthSampleRenderer(avatar_material(AvatarFrames.of(avatar)))
    assert renderer.description["name"] == "mouth_samples" and renderer.description["fallback"] is False
    # Once current, a second run leaves it alone.
    call_command("upgrade_avatars")
    assert json.loads((folder / "avatar.json").read_text()) == manifest


def test_an_avatar_prepared_again_meanwhile_is_not_marked(settings, old_avatar_files, monkeypatch):
    from avatars import upgrades

    shutil.copytree(old_avatar_files, settings.AVATAR_ROOT / "racing")
    avatar = Avatar.objects.create(avatar_id="racing", state=AvatarState.READY, source=AvatarSource.UPLOAD,
                                   source_file="x.mp4", run=1, ready_at=timezone.now(), progress=100.0)
    backend = upgrades.storage.backend()
    real_add = backend.add_prepared

    def add_and_restart(avatar_id, folder):
        real_add(avatar_id, folder)
        Avatar.objects.filter(pk=avatar.pk).update(run=2, state=AvatarState.PROCESSING)

    monkeypatch.setattr(backend, "add_prepared", add_and_restart)
    assert upgrades.upgrade(avatar) is None
    avatar.refresh_from_db()
    assert avatar.mouth_coverage is None
