"""Bringing avatars prepared by an older pipeline up to today's files, without preparing them again.

Today's addition is the lip shapes (pipeline/lips.py) and the mouth coverage: an avatar prepared
before them speaks with the animator (its coverage says `unmeasured`) until it is upgraded. The
upgrade measures the lips on the avatar's published frames and adds the files preparation now
writes; the avatar stays ready and in use throughout (new files appear whole; the manifest, which
is what says they exist, is written last). A run that starts meanwhile (a reprocess) wins: the row
is only marked when its run is unchanged.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from avatars import storage
from avatars.models import Avatar, AvatarState
from avatars.pipeline import lips, mouth_bank
from avatars.pipeline.prepare import MANIFEST_VERSION

logger = logging.getLogger(__name__)


def needs_upgrade(avatar: Avatar) -> bool:
    if avatar.state != AvatarState.READY:
        return False
    manifest = json.loads(storage.backend().read_prepared(avatar.avatar_id, "avatar.json"))
    return manifest.get("format_version", 1) < MANIFEST_VERSION or not manifest.get("lips")


def upgrade(avatar: Avatar) -> dict | None:
    """Measure the avatar's lips and add its mouth bank; its new coverage, or None when it was
    not upgraded (not ready, already current, no facial points to place the face mesh, or its
    run changed meanwhile)."""
    if not needs_upgrade(avatar):
        return None
    avatar_id, run = avatar.avatar_id, avatar.run
    prepared = storage.backend()
    manifest = json.loads(prepared.read_prepared(avatar_id, "avatar.json"))
    if not manifest.get("landmarks") or not prepared.prepared_exists(avatar_id, "landmarks.npy"):
        logger.info("avatar %s: no facial points (prepared with a detector without them): not upgraded", avatar_id)
        return None
    five_points = np.load(io.BytesIO(prepared.read_prepared(avatar_id, "landmarks.npy")))
    names = sorted(prepared.list_prepared(avatar_id, "full_imgs"), key=lambda name: int(Path(name).stem))

    def frames():
        for name in names:
            data = prepared.read_prepared(avatar_id, f"full_imgs/{name}")
            yield int(Path(name).stem), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    work = Path(tempfile.mkdtemp(prefix=f"upgrade-{avatar_id}-"))
    try:
        facts, features = lips.measure_frames(frames(), five_points, work)
        coverage = mouth_bank.coverage(features)
        prepared.add_prepared(avatar_id, work)
        manifest.update(format_version=MANIFEST_VERSION, lips=facts, mouth_coverage=coverage)
        manifest_dir = work / "manifest"
        manifest_dir.mkdir()
        (manifest_dir / "avatar.json").write_text(json.dumps(manifest, indent=1))
        prepared.add_prepared(avatar_id, manifest_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    marked = Avatar.objects.filter(pk=avatar.pk, run=run, state=AvatarState.READY).update(mouth_coverage=coverage)
    if not marked:
        logger.info("avatar %s: prepared again while upgrading; the new run's files stand", avatar_id)
        return None
    logger.info("avatar %s: upgraded (lip shapes of %d frames; coverage %s)", avatar_id,
                facts["measured_frames"], coverage["verdict"])
    return coverage
