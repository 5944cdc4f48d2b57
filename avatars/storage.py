"""Where source videos and prepared avatars live.

Source videos go through Django's storage API (a copy is kept so an avatar can be reprocessed).
Prepared avatars are made in a local work folder and then published:

- on the embedded default (local files), under AVATAR_ROOT/<avatar_id> in one rename, so a reader
  never sees a half-written avatar; removal renames first and deletes after, for the same reason;
- with S3 settings (AVATAR_S3_BUCKET), through Django's storage API under the prefix
  `avatars/<avatar_id>/`; the avatar's row turns ready only after every file is uploaded, and
  readers only read ready avatars, so publishing is still one step as far as anyone can see.
"""

from __future__ import annotations

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

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def uses_object_storage() -> bool:
    """Whether prepared avatars go to an object store (S3) rather than local folders."""
    return bool(settings.AVATAR_S3_BUCKET)


def _prefix(avatar_id: str) -> str:
    return f"avatars/{avatar_id}/"


def avatar_path(avatar_id: str) -> str:
    """Where the prepared files live: a local folder, or an s3:// prefix."""
    if uses_object_storage():
        return f"s3://{settings.AVATAR_S3_BUCKET}/{_prefix(avatar_id)}"
    return str(settings.AVATAR_ROOT / avatar_id)


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


def publish_prepared(avatar_id: str, work_dir: Path) -> str:
    """Make the finished `work_dir` the avatar's files, replacing any previous ones."""
    if uses_object_storage():
        remove_prepared(avatar_id)
        for path in sorted(work_dir.rglob("*")):
            if path.is_file():
                with open(path, "rb") as handle:
                    default_storage.save(_prefix(avatar_id) + path.relative_to(work_dir).as_posix(), File(handle))
        shutil.rmtree(work_dir, ignore_errors=True)
        return avatar_path(avatar_id)
    root = settings.AVATAR_ROOT
    root.mkdir(parents=True, exist_ok=True)
    incoming = root / f".incoming-{uuid.uuid4().hex}"
    shutil.move(str(work_dir), incoming)  # a rename when both are on one filesystem
    target = root / avatar_id
    if target.exists():
        _remove_tree(target)
    os.rename(incoming, target)
    return str(target)


def remove_prepared(avatar_id: str) -> None:
    if uses_object_storage():
        for name in _stored_names(_prefix(avatar_id)):
            default_storage.delete(name)
        return
    target = settings.AVATAR_ROOT / avatar_id
    if target.exists():
        _remove_tree(target)


def _stored_names(prefix: str) -> list[str]:
    """Every stored file name under `prefix` (Django's storage API lists one level at a time)."""
    try:
        folders, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return []
    names = [prefix + name for name in files]
    for folder in folders:
        names.extend(_stored_names(f"{prefix}{folder}/"))
    return names


def _remove_tree(path: Path) -> None:
    # Rename out of the way first, so the avatar's path never shows a half-deleted tree.
    doomed = path.with_name(f".deleting-{uuid.uuid4().hex}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def read_prepared(avatar_id: str, relative: str) -> bytes:
    """The bytes of one prepared file (e.g. "preview.jpg", "full_imgs/00000000.jpg")."""
    if uses_object_storage():
        with default_storage.open(_prefix(avatar_id) + relative, "rb") as handle:
            return handle.read()
    return (settings.AVATAR_ROOT / avatar_id / relative).read_bytes()


def add_prepared(avatar_id: str, folder: Path) -> None:
    """Add (or replace) the files of `folder` to a published avatar's files, at the same relative
    paths (an upgrade adding what a newer preparation makes). Files only ever appear whole: each is
    written beside and renamed into place, or uploaded."""
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(folder).as_posix()
        if uses_object_storage():
            name = _prefix(avatar_id) + relative
            if default_storage.exists(name):
                default_storage.delete(name)
            with open(path, "rb") as handle:
                default_storage.save(name, File(handle))
            continue
        target = settings.AVATAR_ROOT / avatar_id / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        shutil.copyfile(path, partial)
        os.replace(partial, target)


def prepared_exists(avatar_id: str, relative: str) -> bool:
    if uses_object_storage():
        return default_storage.exists(_prefix(avatar_id) + relative)
    return (settings.AVATAR_ROOT / avatar_id / relative).is_file()


def list_prepared(avatar_id: str, folder: str) -> list[str]:
    """File names in one folder of a prepared avatar (e.g. "full_imgs")."""
    if uses_object_storage():
        return default_storage.listdir(f"{_prefix(avatar_id)}{folder}/")[1]
    return os.listdir(settings.AVATAR_ROOT / avatar_id / folder)


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
