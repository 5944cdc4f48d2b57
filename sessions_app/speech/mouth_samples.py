"""The tutor's own mouth: each frame of speech shows a mouth recorded in the avatar's video.

Sample-based synthesis, as Video Rewrite (Bregler et al. 1997) and unit selection (Liu &
Ostermann 2009) did it, with the avatar's prepared material (avatars/pipeline/lips.py): every
measured frame of the video is a sample, its lower face kept as a small JPEG (`mouth_imgs/`),
its lip shape as four numbers and its facial points.

Per output frame:
1. **Selection.** The target shape (how open, how spread or rounded, teeth on the lip) is turned
   into the tutor's own terms (their widest opening, their closed mouth's width) and every sample
   is scored: shape distance + head-turn distance (a sample from a similar pose warps less) +
   blur (a smeared sample costs more) + a switch cost, waived for the sample shown last (so a
   still target keeps one sample: no flicker). Letting the recording's next frame continue for
   free, too, made the mouth lag the sound by a frame (it played recorded motion past the target).
   One sample per frame, never an average: teeth stay as sharp as recorded.
2. **Alignment.** A similarity transform from the sample's still points (eye corners, nose) to
   the frame's carries the sample's lower face onto the frame's head pose.
3. **Colour.** The sample is shifted by the mean colour difference in the blend's edge band, so
   light that changed over the video does not show as a patch.
4. **Blend.** Over the lower face: the hull of both mouths and both jaw lines (the frame's and the
   sample's, so an opening jaw carries the chin down with it) under the nose, feathered by a
   Gaussian of a tenth of the mouth's width. Outside the mask every pixel is the frame's own.

**The mouth rests during silence.** When the video shows the tutor talking (coverage's
`talking_share` ≥ 0.02, which any video the bank can speak from has), silent frames are rendered too, with a closed resting mouth (the sample
nearest the tutor's median closed mouth, held by the switch cost), so the idle loop does not
replay the recorded talking. A video of a quiet tutor is shown as recorded between utterances.

**Fallback.** An avatar without lip shapes (prepared before them, or without the model) or whose
video holds no closed or no open mouth (coverage verdict `silent` / `unmeasured`) speaks through
`MouthAnimator`, and `description` says so (the session header carries it).

Measured on this 2-core machine (720x576 real talking video, bench/mouth_bench.py): see the README.
"""

from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np

from avatars.pipeline import lips, mouth_bank
from sessions_app.speech.renderer import MIN_OPENNESS, AvatarMaterial, FrameSpeech, MouthAnimator

# Scoring (features in the tutor's terms; each term is a squared distance over its scale).
OPEN_SCALE = 0.02  # openness (gap / mouth width)
WIDTH_SCALE = 0.06  # width / the closed mouth's width
TEETH_SCALE = 0.2  # share of the opening that is teeth
YAW_SCALE = 0.04  # the nose's sideways offset / the eyes' distance
BLUR_WEIGHT = 8.0  # a sample with no detail costs as much as being ~0.07 too open
SWITCH_COST = 0.3  # leaving the last sample
# The speech tracks' openness that means "as wide as this tutor opens": a synthesised sentence's
# track peaks at 0.3-0.5 (phoneme shape x loudness), so 1.0 was never reached and the samples
# chosen stayed near closed (the mouth measured on rendered frames correlated with the sound at
# 0.20 with 1.0; 0.49-0.61 with 0.35 and speech/mouth.py's loudness weight).
TRACK_OPEN = 0.35
REST_SWITCH_COST = 6.0  # ... while resting: a resting mouth changes only for a clearly better pose
SPREAD_WIDTH_GAIN = 0.12  # spread +1 -> 12% wider than the closed mouth; rounded -1 -> 15% narrower
ROUND_WIDTH_GAIN = 0.15
FEATHER = 0.1  # the mask's Gaussian, in mouth widths
UNDER_NOSE = 0.12  # the mask's top edge, below the nose's bottom, in mouth widths
PATCH_CACHE = 96  # decoded samples kept (a lower face at 720p is ~150 KB)


class MouthSampleRenderer:
    """SESSION_RENDERER: the tutor's own mouth from the avatar's mouth bank (see module doc)."""

    def __init__(self, material: AvatarMaterial) -> None:
        self.material = material
        self.coverage = mouth_bank.coverage(material.lip_features) if material.lip_features is not None \
            else mouth_bank.coverage(None)
        reason = self._cannot_speak_because(material)
        if reason is not None:
            self._fallback = MouthAnimator(material)
            self.renders_silence = False
            self.description = {"name": "animator", "fallback": True, "reason": reason,
                                "coverage": self.coverage["verdict"], "rest": "source"}
            return
        self._fallback = None
        self._prepare_bank(material)
        self.renders_silence = self.coverage["talking_share"] is not None and \
            self.coverage["talking_share"] >= mouth_bank.TALKING_SHARE
        self.description = {"name": "mouth_samples", "fallback": False, "reason": None,
                            "coverage": self.coverage["verdict"], "missing": self.coverage["missing"],
                            "rest": "composited" if self.renders_silence else "source",
                            "samples": int(len(self.bank))}
        self._last: int | None = None  # the bank position shown last
        self._last_sample: int | None = None  # ... and its frame of the video
        self._patches: OrderedDict[int, np.ndarray] = OrderedDict()

    # --- set-up --------------------------------------------------------------------------------
    def _cannot_speak_because(self, material: AvatarMaterial) -> str | None:
        if material.lip_points is None or material.lip_features is None or material.read_mouth is None:
            return ("this avatar has no lip shapes (prepared before they were measured, or without the "
                    "face-mesh model): prepare it again, or run manage.py upgrade_avatars")
        if self.coverage["renderer"] != "mouth_samples":
            return f"the video holds too few mouth shapes ({self.coverage['verdict']}): {self.coverage['advice']}"
        return None

    def _prepare_bank(self, material: AvatarMaterial) -> None:
        features, points = material.lip_features, material.lip_points
        usable = ~np.isnan(features).any(axis=1) & (material.mouth_boxes[:, 0] >= 0)
        self.bank = np.flatnonzero(usable)
        self.rest_width = mouth_bank.rest_width(features)
        bank_features = features[self.bank]
        opening = bank_features[:, 0]
        # The tutor's widest opening: a track's TRACK_OPEN maps to it (95th percentile of open frames).
        open_frames = opening[opening >= mouth_bank.OPEN_MIN]
        self.widest = float(np.percentile(open_frames, 95)) if len(open_frames) else mouth_bank.WIDE_OPEN_MIN
        # ... and teeth 1.0 to its most teeth shown (90th percentile of frames showing teeth).
        showing = bank_features[:, 3][bank_features[:, 3] >= mouth_bank.TEETH_MIN]
        self.teeth_high = float(np.percentile(showing, 90)) if len(showing) else 0.0
        self.features = np.column_stack([opening, bank_features[:, 1] / max(self.rest_width, 1e-6),
                                         bank_features[:, 3]]).astype(np.float32)
        # Blurred samples cost more: below the bank's 75th percentile of sharpness, by how far.
        sharp = bank_features[:, 4]
        reference = max(float(np.percentile(sharp, 75)), 1e-6)
        self.blur_cost = (BLUR_WEIGHT * np.clip(1 - sharp / reference, 0, 1) ** 2).astype(np.float32)
        # Where each frame's head is: its still points, smoothed over neighbouring frames (the mesh
        # jitters by ~0.5 px a frame; a resting mouth aligned to raw points shimmered with it).
        self.still = _smooth_in_time(points[:, lips.STILL])
        self.yaw = _yaw(points)  # every frame's (NaN where unmeasured)
        self.bank_yaw = self.yaw[self.bank]
        # The resting mouth: closed, of the median closed width, teeth hidden.
        closed = (opening < mouth_bank.CLOSED_MAX)
        self.rest_cost = (opening / OPEN_SCALE) ** 2 + ((self.features[:, 1] - 1) / WIDTH_SCALE) ** 2 \
            + 10 * self.features[:, 2] + np.where(closed, 0, 1e3) + self.blur_cost

    # --- rendering -----------------------------------------------------------------------------
    def render(self, frame: np.ndarray, index: int, speech: FrameSpeech) -> np.ndarray:
        if self._fallback is not None:
            return self._fallback.render(frame, index, speech) if speech.openness >= MIN_OPENNESS else frame
        points = self.material.lip_points[index] if index < len(self.material.lip_points) else None
        if points is None or np.isnan(points).any():
            # No mesh on this frame (a turned head): the recorded frame, as the animator would.
            return frame
        sample = self.choose(index, speech)
        return self.paste(frame, index, sample)

    def target_of(self, speech: FrameSpeech | None) -> tuple[float, float, float] | None:
        """(openness, width / closed width, lip-teeth) wanted, in the tutor's terms; None: rest."""
        if speech is None or speech.openness < MIN_OPENNESS:
            return None
        spread = float(np.clip(speech.spread, -1.0, 1.0))
        width = 1 + (SPREAD_WIDTH_GAIN * spread if spread > 0 else ROUND_WIDTH_GAIN * spread)
        opening = float(np.clip(speech.openness / TRACK_OPEN, 0, 1)) * self.widest
        return (opening, width, float(np.clip(speech.teeth, 0, 1)))

    def choose(self, index: int, speech: FrameSpeech | None) -> int:
        """The frame of the video whose mouth frame `index` shows (one sample, never a mix)."""
        target = self.target_of(speech)
        yaw = self.yaw[index] if index < len(self.yaw) and not np.isnan(self.yaw[index]) else 0.0
        pose = ((self.bank_yaw - yaw) / YAW_SCALE) ** 2
        if target is None:
            cost = self.rest_cost + 0.5 * pose
            switch = REST_SWITCH_COST
        else:
            openness, width, teeth = target
            cost = ((self.features[:, 0] - openness) / OPEN_SCALE) ** 2 \
                + ((self.features[:, 1] - width) / WIDTH_SCALE) ** 2 \
                + ((self.features[:, 2] - teeth * self.teeth_high) / TEETH_SCALE) ** 2 \
                + 0.5 * pose + self.blur_cost
            switch = SWITCH_COST
        cost = cost + switch
        if self._last is not None:
            cost[self._last] -= switch
        chosen = int(np.argmin(cost))
        self._last = chosen
        self._last_sample = int(self.bank[chosen])
        return self._last_sample

    def paste(self, frame: np.ndarray, index: int, sample: int) -> np.ndarray:
        """Frame `index` (`frame`) with the lower face of video frame `sample`, aligned,
        colour-matched, blended."""
        points = self.material.lip_points[index]
        source_points = self.material.lip_points[sample]
        transform = _similarity(self.still[sample], self.still[index])
        if transform is None:
            return frame
        patch = self._patch(sample)
        px0, py0 = self.material.mouth_boxes[sample][:2]
        mouth_width = float(np.linalg.norm(points[lips.OUTER][10] - points[lips.OUTER][0]))
        # The mask: both mouths and jaw lines, under the nose.
        moved = source_points @ transform[:, :2].T + transform[:, 2]
        nose = points[lips.STILL][[11, 13, 12]] + _down(points) * UNDER_NOSE * mouth_width
        outline = np.concatenate([points[lips.OUTER], points[lips.JAWLINE][3:-3], moved[lips.OUTER],
                                  moved[lips.JAWLINE][3:-3], nose])
        feather = max(1.5, FEATHER * mouth_width)
        height, width = frame.shape[:2]
        x0, y0 = np.floor(outline.min(0) - 3 * feather).astype(int)
        x1, y1 = np.ceil(outline.max(0) + 3 * feather).astype(int)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
        if x1 - x0 < 4 or y1 - y0 < 4:
            return frame
        region = (x1 - x0, y1 - y0)
        # Sample patch pixel p -> frame: transform(p + patch origin); then into the region.
        to_region = transform.copy()
        to_region[:, 2] += transform[:, :2] @ np.array([px0, py0], np.float64) - np.array([x0, y0])
        # Bicubic: a bilinear warp at a half-pixel shift halves the finest detail (teeth edges).
        warped = cv2.warpAffine(patch, to_region, region, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        # Where the sample has pixels: its patch's corners, carried into the region.
        h, w = patch.shape[:2]
        corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64) @ to_region[:, :2].T \
            + to_region[:, 2]
        alpha = _feathered_hull(outline - (x0, y0), region, feather, within=corners)
        target = frame[y0:y1, x0:x1].astype(np.float32)
        source = warped.astype(np.float32)
        # The colour shift is read on skin: the edge band above the lower lip (cheeks, under the
        # nose); below it the band crosses the jaw line into the neck and the background.
        band = (alpha > 0.05) & (alpha < 0.6)
        band[max(0, int(points[lips.OUTER][15][1]) - y0):] = False
        if band.sum() >= 8:
            source += (target[band].mean(axis=0) - source[band].mean(axis=0))
        blended = target + alpha[..., None] * (source - target)
        out = frame.copy()
        out[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out

    def _patch(self, sample: int) -> np.ndarray:
        patch = self._patches.get(sample)
        if patch is None:
            patch = self.material.read_mouth(sample)
            self._patches[sample] = patch
            if len(self._patches) > PATCH_CACHE:
                self._patches.popitem(last=False)
        else:
            self._patches.move_to_end(sample)
        return patch


# The mask is drawn and feathered at 1/MASK_SCALE of the picture, then enlarged: shrinking by 14
# pixels and a Gaussian of 14 over a 300x250 region cost 5.0 ms of CPU at full size (most of a
# frame's budget), 0.16 ms so.
MASK_SCALE = 4


def _feathered_hull(outline: np.ndarray, size: tuple[int, int], feather: float,
                    within: np.ndarray | None = None) -> np.ndarray:
    """(h, w) float32 in [0, 1]: 1 inside the convex hull of `outline` (and inside the polygon
    `within`) shrunk by `feather`, fading to 0 at its edge (the feather stays inside)."""
    width, height = size
    small = (max(2, -(-width // MASK_SCALE)), max(2, -(-height // MASK_SCALE)))
    hull = cv2.convexHull(np.round(outline / MASK_SCALE).astype(np.int32))
    mask = np.zeros((small[1], small[0]), np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    if within is not None:
        allowed = np.zeros_like(mask)
        cv2.fillConvexPoly(allowed, np.round(within / MASK_SCALE).astype(np.int32), 255)
        mask &= allowed
    sigma = max(0.6, feather / MASK_SCALE)
    radius = max(1, int(round(sigma)))
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    return cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR).astype(np.float32) * np.float32(1 / 255)


def _similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """The least-squares similarity (rotation, uniform scale, shift) taking `source` points to
    `target` points (Umeyama 1991), as a 2x3 matrix; None for degenerate points."""
    source = source.astype(np.float64)
    target = target.astype(np.float64)
    mean_s, mean_t = source.mean(0), target.mean(0)
    s, t = source - mean_s, target - mean_t
    variance = (s ** 2).sum()
    if variance < 1e-6:
        return None
    a = (s * t).sum()  # sum of dot products
    b = (s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]).sum()  # sum of cross products
    scale_cos, scale_sin = a / variance, b / variance
    rotation = np.array([[scale_cos, -scale_sin], [scale_sin, scale_cos]])
    shift = mean_t - rotation @ mean_s
    return np.column_stack([rotation, shift])


def _smooth_in_time(still: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """(frames, n, 2) points smoothed along the frames by a Gaussian (NaN frames are skipped and
    stay NaN)."""
    radius = int(3 * sigma)
    weights = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    valid = ~np.isnan(still).any(axis=(1, 2))
    filled = np.where(valid[:, None, None], still, 0.0)
    total = np.zeros_like(filled, dtype=np.float64)
    norm = np.zeros(len(still))
    for offset, weight in zip(range(-radius, radius + 1), weights):
        shifted = np.roll(filled, offset, axis=0)
        present = np.roll(valid, offset)
        if offset > 0:
            present[:offset] = False
        elif offset < 0:
            present[offset:] = False
        total += weight * shifted * present[:, None, None]
        norm += weight * present
    out = (total / np.maximum(norm, 1e-9)[:, None, None]).astype(np.float32)
    out[~valid] = np.nan
    return out


def _down(points: np.ndarray) -> np.ndarray:
    """The unit vector down the face (perpendicular to the eye line)."""
    still = points[lips.STILL]
    across = still[3] - still[0]
    across = across / max(float(np.linalg.norm(across)), 1e-6)
    return np.array([-across[1], across[0]])


def _yaw(points: np.ndarray) -> np.ndarray:
    """Per frame, how far the head is turned: the nose tip's sideways offset from the eyes' middle,
    over the eyes' distance (NaN where unmeasured)."""
    still = points[:, lips.STILL]
    left, right, nose = still[:, 0], still[:, 3], still[:, 10]
    across = right - left
    distance = np.linalg.norm(across, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (((nose - (left + right) / 2) * across).sum(axis=1) / distance ** 2).astype(np.float32)
