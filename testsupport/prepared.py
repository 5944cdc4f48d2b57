"""A prepared avatar's folder read as sessions read it from storage (for tests and benches that
prepare with the pipeline alone, without the server)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np

from avatars.pipeline import lips
from sessions_app.speech.renderer import AvatarMaterial


def material_from_folder(folder: Path) -> tuple[AvatarMaterial, list[Path]]:
    """(the AvatarMaterial of the prepared avatar in `folder`, its full frames' paths in order)."""
    manifest = json.loads((folder / "avatar.json").read_text())
    names = sorted((folder / "full_imgs").iterdir(), key=lambda path: int(path.stem))
    with open(folder / "coords.pkl", "rb") as handle:
        coords = pickle.load(handle)
    landmarks = np.load(folder / "landmarks.npy") if (folder / "landmarks.npy").exists() else None

    def read(path: Path) -> np.ndarray:
        return cv2.imread(str(path), cv2.IMREAD_COLOR)

    bank = {}
    if (folder / lips.FEATURES_FILE).exists():
        bank = {"lip_points": np.load(folder / lips.POINTS_FILE), "lip_features": np.load(folder / lips.FEATURES_FILE),
                "mouth_boxes": np.load(folder / lips.BOXES_FILE),
                "read_mouth": lambda i: read(folder / "mouth_imgs" / f"{names[i].stem}.jpg")}
    material = AvatarMaterial(len(names), manifest["source"]["width"], manifest["source"]["height"], manifest["fps"],
                              coords, landmarks, lambda i: read(folder / "face_imgs" / f"{names[i].stem}.png"), **bank)
    return material, names
