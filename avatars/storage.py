"""Where source videos and prepared avatars live.

Source videos go through Django's storage API (a copy is kept so an avatar can be reprocessed).
Prepared avatars are published under AVATAR_ROOT/<avatar_id> in one rename from the work folder,
so a reader never sees a half-written avatar; removal renames first and deletes after, for the
same reason.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def avatar_path(avatar_id: str) -> Path:
    return settings.AVATAR_ROOT / avatar_id


def preview_file(avatar_id: str) -> Path:
    return avatar_path(avatar_id) / "preview.jpg"


def new_work_dir(avatar_id: str) -> Path:
    """A fresh, not yet existing folder for one run (the pipeline creates it)."""
    settings.AVATAR_WORK_DIR.mkdir(parents=True, exist_ok=True)
    return settings.AVATAR_WORK_DIR / f"{avatar_id}-{uuid.uuid4().hex[:12]}"


def clear_work_dirs() -> None:
    """Remove what runs that died with the process left in the work folder."""
    if settings.AVATAR_WORK_DIR.is_dir():
        for child in settings.AVATAR_WORK_DIR.iterdir():
            shutil.rmtree(child, ignore_errors=True)


def publish_prepared(avatar_id: str, work_dir: Path) -> Path:
    """Make the finished `work_dir` the avatar's files, replacing any previous ones at once."""
    root = settings.AVATAR_ROOT
    root.mkdir(parents=True, exist_ok=True)
    incoming = root / f".incoming-{uuid.uuid4().hex}"
    shutil.move(str(work_dir), incoming)  # a rename when both are on one filesystem
    target = avatar_path(avatar_id)
    if target.exists():
        _remove_tree(target)
    os.rename(incoming, target)
    return target


def remove_prepared(avatar_id: str) -> None:
    target = avatar_path(avatar_id)
    if target.exists():
        _remove_tree(target)


def _remove_tree(path: Path) -> None:
    # Rename out of the way first, so the avatar's path never shows a half-deleted tree.
    doomed = path.with_name(f".deleting-{uuid.uuid4().hex}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def store_source(avatar_id: str, local_path: str | os.PathLike, original_name: str) -> str:
    """Copy a source video into storage; return its storage name."""
    stem = _UNSAFE_NAME_CHARS.sub("_", Path(original_name).name)[-100:] or "video"
    with open(local_path, "rb") as handle:
        return default_storage.save(f"sources/{avatar_id}/{stem}", File(handle))


def remove_source(name: str) -> None:
    if name and default_storage.exists(name):
        default_storage.delete(name)
    folder = Path(settings.MEDIA_ROOT) / Path(name).parent
    if name and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


@contextmanager
def local_source(name: str) -> Iterator[Path]:
    """A local file path for a stored source video, for as long as the block runs."""
    yield Path(default_storage.path(name))
