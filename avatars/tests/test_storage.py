"""The prepared files' backend is chosen once from the settings, and again when they change."""

from __future__ import annotations

from avatars import storage


def test_the_backend_follows_the_settings_and_is_kept_between_calls(settings, isolated_storage):
    local = storage.backend()
    assert isinstance(local, storage.LocalStorage) and not local.object_storage
    assert storage.backend() is local  # chosen once
    assert local.avatar_path("a1") == str(isolated_storage / "avatars" / "a1")

    settings.AVATAR_S3_BUCKET = "lessons"
    on_s3 = storage.backend()
    assert isinstance(on_s3, storage.S3Storage) and on_s3.object_storage
    assert on_s3.avatar_path("a1") == "s3://lessons/avatars/a1/"

    settings.AVATAR_S3_BUCKET = ""
    settings.AVATAR_ROOT = isolated_storage / "elsewhere"
    assert storage.backend().avatar_path("a1") == str(isolated_storage / "elsewhere" / "a1")


def test_local_files_are_published_read_listed_added_to_and_removed(isolated_storage, tmp_path):
    work = tmp_path / "run"
    (work / "full_imgs").mkdir(parents=True)
    (work / "full_imgs" / "00000000.jpg").write_bytes(b"frame")
    (work / "avatar.json").write_text("{}")
    prepared = storage.backend()
    assert prepared.publish_prepared("a1", work) == str(isolated_storage / "avatars" / "a1") and not work.exists()
    assert prepared.list_prepared("a1", "full_imgs") == ["00000000.jpg"]
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "avatar.json").write_text('{"v": 2}')
    prepared.add_prepared("a1", extra)
    assert prepared.read_prepared("a1", "avatar.json") == b'{"v": 2}'
    assert storage.read_prepared("a1", "full_imgs/00000000.jpg") == b"frame"
    prepared.remove_prepared("a1")
    assert not prepared.prepared_exists("a1", "avatar.json") and list((isolated_storage / "avatars").iterdir()) == []
