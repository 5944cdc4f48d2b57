"""The mouth shapes an avatar's video holds, and whether they are enough to speak with.

Each measured frame (lips.py's features: openness, width, rounding, teeth) falls into the shape
classes a speaking mouth needs; a class counts as covered when enough frames show it. The
verdict and its advice are for a staff member: what to record again, and why.

Thresholds are relative to the tutor's own closed mouth where shapes differ between people (how
wide a mouth is), absolute where the feature is a ratio already (openness is the lips' gap over
the mouth's width). Measured on a real conversation video (FG-NET's talking face, 600 frames):
openness 0.003-0.02 closed, 0.1-0.2 while talking (99th percentile 0.21), teeth shown in ~11% of
frames, width 0.55-0.58 of the eye corners' distance closed, 0.70-0.73 in a smile.
Pure NumPy.
"""

from __future__ import annotations

import numpy as np

CLOSED_MAX = 0.04  # openness of lips that touch (m, b, p)
OPEN_MIN = 0.06  # a mouth that is speaking, not resting
WIDE_OPEN_MIN = 0.16  # an open vowel (a)
TEETH_MIN = 0.15  # share of the opening that is teeth
ROUNDED_WIDTH = 0.92  # width below this share of the closed mouth's: pursed, rounded (o, u, w)
SPREAD_WIDTH = 1.08  # above it: spread (i, e)
LIP_TEETH_MAX_OPEN = 0.1  # f/v: teeth on the lower lip, the mouth barely open
MIN_FRAMES = 3  # a class needs at least this many frames (0.12 s at 25 fps)
# The source video talks (its idle loop would replay talking) when this share of its frames is
# open: a conversation video that mostly listens still talked in 9-11% of its frames.
TALKING_SHARE = 0.02

CLASSES = {
    "closed": "closed lips (m, b, p)",
    "wide_open": "a wide open mouth (a)",
    "rounded": "rounded lips (o, u, w)",
    "spread": "spread lips (i, e)",
    "lip_teeth": "teeth on the lower lip (f, v)",
    "teeth": "teeth showing",
}
# Without these the renderer cannot speak from the bank at all: it falls back to the animator.
ESSENTIAL = ("closed", "wide_open")

PASSAGE = ("Bob brought a big map of the moon. We fly five funny fish over the wavy river, "
           "see each bee leave the tree, and who knew you could go through the blue pool? "
           "Father saw that the water was ready for the party.")
PASSAGE_WHY = ("Read aloud at a normal pace, this passage shows every mouth shape the tutor needs: "
               "closed lips (Bob, big, map, moon), rounded lips (who, you, through, pool), spread "
               "lips (see, each, bee, tree), teeth on the lip (fly, five, fish, over, river) and an "
               "open mouth (Father, water, party). Start and end with the mouth at rest for a "
               "second or two.")


def rest_width(features: np.ndarray) -> float:
    """The width of the tutor's closed mouth (median over closed frames; of all without any)."""
    valid = features[~np.isnan(features).any(axis=1)]
    if len(valid) == 0:
        return 0.0
    closed = valid[valid[:, 0] < CLOSED_MAX]
    return float(np.median((closed if len(closed) else valid)[:, 1]))


def classify(features: np.ndarray, rest: float) -> dict[str, np.ndarray]:
    """For each class, which frames show it ((frames,) bool; a frame may be in several)."""
    openness, width, _rounding, teeth = (features[:, k] for k in range(4))
    valid = ~np.isnan(features).any(axis=1)
    relative = width / rest if rest > 0 else np.ones_like(width)
    with np.errstate(invalid="ignore"):
        return {
            "closed": valid & (openness < CLOSED_MAX),
            "wide_open": valid & (openness >= WIDE_OPEN_MIN),
            "rounded": valid & (openness >= CLOSED_MAX) & (relative < ROUNDED_WIDTH),
            "spread": valid & (openness >= CLOSED_MAX) & (openness < WIDE_OPEN_MIN) & (relative > SPREAD_WIDTH),
            "lip_teeth": valid & (openness < LIP_TEETH_MAX_OPEN) & (teeth >= TEETH_MIN),
            "teeth": valid & (teeth >= TEETH_MIN),
        }


def coverage(features: np.ndarray | None, *, measured: bool = True) -> dict:
    """The avatar's mouth coverage, as avatar.json and the API show it.

    `features` is (frames, 5) (lips.FEATURES), NaN where no lip shape was measured; None (or `measured` False)
    when the avatar has no lip shapes at all (prepared before them, or without the model)."""
    if features is None or not measured or len(features) == 0 or np.isnan(features).all():
        return {
            "verdict": "unmeasured",
            "renderer": "animator",
            "advice": "This avatar has no lip shapes: its tutor speaks with the drawn mouth. "
                      "Prepare it again (or run `manage.py upgrade_avatars`) to use the tutor's own mouth.",
            "classes": {name: {"frames": 0, "covered": False, "label": label} for name, label in CLASSES.items()},
            "missing": list(CLASSES),
            "measured_frames": 0,
            "talking_share": None,
        }
    rest = rest_width(features)
    frames = classify(features, rest)
    valid = ~np.isnan(features).any(axis=1)
    counts = {name: int(mask.sum()) for name, mask in frames.items()}
    covered = {name: count >= MIN_FRAMES for name, count in counts.items()}
    missing = [name for name in CLASSES if not covered[name]]
    talking = float((features[valid, 0] >= OPEN_MIN).mean()) if valid.any() else 0.0
    if talking < TALKING_SHARE:
        verdict, renderer = "silent", "animator"
        advice = ("The video shows the tutor silent (or nearly): their own mouth cannot be used, so the "
                  "tutor speaks with the drawn mouth. Record them reading the passage on the upload page.")
    elif not all(covered[name] for name in ESSENTIAL):
        verdict, renderer = "insufficient", "animator"
        lacking = " and ".join(CLASSES[name] for name in ESSENTIAL if not covered[name])
        advice = (f"The video never shows {lacking} (a fixed smile, or a mouth held still): the tutor "
                  "speaks with the drawn mouth. Record them reading the passage on the upload page.")
    elif missing:
        verdict, renderer = "partial", "mouth_samples"
        labels = ", ".join(CLASSES[name] for name in missing)
        advice = (f"The video lacks {labels}: those sounds will borrow the nearest shape. For the best "
                  "result, record the tutor reading the passage on the upload page.")
    else:
        verdict, renderer = "good", "mouth_samples"
        advice = "The video shows every mouth shape the tutor needs."
    return {
        "verdict": verdict,
        "renderer": renderer,
        "advice": advice,
        "classes": {name: {"frames": counts[name], "covered": covered[name], "label": CLASSES[name]}
                    for name in CLASSES},
        "missing": missing,
        "measured_frames": int(valid.sum()),
        "talking_share": round(talking, 3),
    }
