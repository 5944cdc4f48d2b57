"""Where source videos and prepared avatars live.

Source videos go through Django's storage API (a copy is kept so an avatar can be reprocessed).
Prepared avatars are made in a local work folder (the work-folder functions below) and then
published through `backend()`: `LocalStorage` (the embedded default, under AVATAR_ROOT/<avatar_id>)
or `S3Storage` (with AVATAR_S3_BUCKET), one interface (`PreparedStorage`), chosen once from the
settings.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.signals import setting_changed
from django.dispatch import receiver

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class PreparedStorage:
    """Where an avatar's prepared files are published and read: one interface, two backends,
    chosen once from the settings by `backend()`."""

    object_storage = False  # whether the files live in an object store (S3) rather than local folders

    def avatar_path(self, avatar_id: str) -> str:
        """Where the prepared files live: a local folder, or an s3:// prefix."""
        raise NotImplementedError

    def publish_prepared(self, avatar_id: str, work_dir: Path) -> str:
        """Make the finished `work_dir` the avatar's files, replacing any previous ones; their path."""
        raise NotImplementedError

    def remove_prepared(self, avatar_id: str) -> None:
        raise NotImplementedError

    def read_prepared(self, avatar_id: str, relative: str) -> bytes:
        """The bytes of one prepared file (e.g. "preview.jpg", "full_imgs/00000000.jpg")."""
        raise NotImplementedError

    def add_prepared(self, avatar_id: str, folder: Path) -> None:
        """Add (or replace) the files of `folder` to a published avatar's files, at the same
        relative paths (an upgrade adding what a newer preparation makes). Files only ever appear
        whole."""
        raise NotImplementedError

    def prepared_exists(self, avatar_id: str, relative: str) -> bool:
        raise NotImplementedError

    def list_prepared(self, avatar_id: str, folder: str) -> list[str]:
        """File names in one folder of a prepared avatar (e.g. "full_imgs")."""
        raise NotImplementedError


class LocalStorage(PreparedStorage):
    """Local folders under `root` (AVATAR_ROOT): published in one rename, so a reader never sees a
    half-written avatar; removed by a rename first and a delete after, for the same reason."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def avatar_path(self, avatar_id: str) -> str:
        return str(self.root / avatar_id)

    def publish_prepared(self, avatar_id: str, work_dir: Path) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        incoming = self.root / f".incoming-{uuid.uuid4().hex}"
        shutil.move(str(work_dir), incoming)  # a rename when both are on one filesystem
        target = self.root / avatar_id
        if target.exists():
            _remove_tree(target)
        os.rename(incoming, target)
        return str(target)

    def remove_prepared(self, avatar_id: str) -> None:
        target = self.root / avatar_id
        if target.exists():
            _remove_tree(target)

    def read_prepared(self, avatar_id: str, relative: str) -> bytes:
        return (self.root / avatar_id / relative).read_bytes()

    def add_prepared(self, avatar_id: str, folder: Path) -> None:
        for path, relative in _files_of(folder):
            # Written beside and renamed into place.
            target = self.root / avatar_id / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
            shutil.copyfile(path, partial)
            os.replace(partial, target)

    def prepared_exists(self, avatar_id: str, relative: str) -> bool:
        return (self.root / avatar_id / relative).is_file()

    def list_prepared(self, avatar_id: str, folder: str) -> list[str]:
        return os.listdir(self.root / avatar_id / folder)


class S3Storage(PreparedStorage):
    """An object store (AVATAR_S3_BUCKET), through Django's storage API, under the prefix
    `avatars/<avatar_id>/`. The avatar's row turns ready only after every file is uploaded, and
    readers only read ready avatars, so publishing is still one step as far as anyone can see."""

    object_storage = True

    def __init__(self, bucket: str, files=default_storage) -> None:
        self.bucket = bucket
        self.files = files

    @staticmethod
    def _prefix(avatar_id: str) -> str:
        return f"avatars/{avatar_id}/"

    def avatar_path(self, avatar_id: str) -> str:
        return f"s3://{self.bucket}/{self._prefix(avatar_id)}"

    def publish_prepared(self, avatar_id: str, work_dir: Path) -> str:
        self.remove_prepared(avatar_id)
        for path, relative in _files_of(work_dir):
            with open(path, "rb") as handle:
                self.files.save(self._prefix(avatar_id) + relative, File(handle))
        shutil.rmtree(work_dir, ignore_errors=True)
        return self.avatar_path(avatar_id)

    def remove_prepared(self, avatar_id: str) -> None:
        for name in self._stored_names(self._prefix(avatar_id)):
            self.files.delete(name)

    def _stored_names(self, prefix: str) -> list[str]:
        """Every stored file name under `prefix` (Django's storage API lists one level at a time)."""
        try:
            folders, files = self.files.listdir(prefix)
        except FileNotFoundError:
            return []
        names = [prefix + name for name in files]
        for folder in folders:
            names.extend(self._stored_names(f"{prefix}{folder}/"))
        return names

    def read_prepared(self, avatar_id: str, relative: str) -> bytes:
        with self.files.open(self._prefix(avatar_id) + relative, "rb") as handle:
            return handle.read()

    def add_prepared(self, avatar_id: str, folder: Path) -> None:
        for path, relative in _files_of(folder):
            name = self._prefix(avatar_id) + relative
            if self.files.exists(name):
                self.files.delete(name)
            with open(path, "rb") as handle:
                self.files.save(name, File(handle))

    def prepared_exists(self, avatar_id: str, relative: str) -> bool:
        return self.files.exists(self._prefix(avatar_id) + relative)

    def list_prepared(self, avatar_id: str, folder: str) -> list[str]:
        return self.files.listdir(f"{self._prefix(avatar_id)}{folder}/")[1]


@functools.cache
def backend() -> PreparedStorage:
    """The prepared files' storage the settings name: S3 when AVATAR_S3_BUCKET is set, else local
    folders under AVATAR_ROOT. Chosen once; chosen again when a test changes those settings."""
    if settings.AVATAR_S3_BUCKET:
        return S3Storage(settings.AVATAR_S3_BUCKET)
    return LocalStorage(settings.AVATAR_ROOT)


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs) -> None:
    if setting in ("AVATAR_S3_BUCKET", "AVATAR_ROOT", "STORAGES"):
        backend.cache_clear()


def read_prepared(avatar_id: str, relative: str) -> bytes:
    """backend().read_prepared, kept by name for the live-session modules that read frames with it."""
    return backend().read_prepared(avatar_id, relative)


def _files_of(folder: Path) -> Iterator[tuple[Path, str]]:
    """Each file under `folder` with its path relative to it, in a stable order."""
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            yield path, path.relative_to(folder).as_posix()


def _remove_tree(path: Path) -> None:
    # Rename out of the way first, so the avatar's path never shows a half-deleted tree.
    doomed = path.with_name(f".deleting-{uuid.uuid4().hex}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def new_work_dir(avatar_id: str) -> Path:
    """A fresh, not yet existing folder for one run (the pipeline creates it)."""
    settings.AVATAR_WORK_DIR.mkdir(parents=True, exist_ok=True)
    return settings.AVATAR_WORK_DIR / f"{avatar_id}-{uuid.uuid4().hex[:12]}"


def clear_work_dirs_of(avatar_id: str) -> None:
    """Remove what earlier runs of this avatar left behind (a worker killed mid-run on this
    machine): one run per avatar runs at a time, so none of it is in use."""
    if settings.AVATAR_WORK_DIR.is_dir():
        for child in settings.AVATAR_WORK_DIR.glob(f"{avatar_id}-*"):
            shutil.rmtree(child, ignore_errors=True)


def clear_work_dirs() -> None:
    """Remove what runs that died with the process left in the work folder."""
    if settings.AVATAR_WORK_DIR.is_dir():
        for child in settings.AVATAR_WORK_DIR.iterdir():
            shutil.rmtree(child, ignore_errors=True)


def work_space_free() -> int:
    """Free bytes where runs write (and, on local storage, publish: the same filesystem)."""
    folder = Path(settings.AVATAR_WORK_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(folder).free


def folder_size(folder: Path) -> int:
    """Bytes of the files under a local folder."""
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def store_source(avatar_id: str, local_path: str | os.PathLike, original_name: str) -> str:
    """Copy a source video into storage; return its storage name."""
    stem = _UNSAFE_NAME_CHARS.sub("_", Path(original_name).name)[-100:] or "video"
    with open(local_path, "rb") as handle:
        return default_storage.save(f"sources/{avatar_id}/{stem}", File(handle))


def remove_source(name: str) -> None:
    if not name:
        return
    if default_storage.exists(name):
        default_storage.delete(name)
    if isinstance(default_storage, FileSystemStorage):
        folder = Path(settings.MEDIA_ROOT) / Path(name).parent
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


@contextmanager
def local_source(name: str) -> Iterator[Path]:
    """A local file path for a stored source video, for as long as the block runs: the file
    itself on local storage, a temporary download from an object store."""
    try:
        local = Path(default_storage.path(name))
    except NotImplementedError:  # not a local filesystem
        local = None
    if local is not None:
        yield local
        return
    settings.AVATAR_WORK_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=settings.AVATAR_WORK_DIR, prefix="source-", suffix=Path(name).suffix) as copy:
        with default_storage.open(name, "rb") as stored:
            shutil.copyfileobj(stored, copy, 1024 * 1024)
        copy.flush()
        yield Path(copy.name)
