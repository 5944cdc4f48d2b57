"""Where the whole head is, from one detected face: the square the crop is built around.

A face detector's box is not the head, and each detector draws it differently: YuNet's spans
about hairline to chin, the Haar cascade's brow to lower lip. Neither grows when the head tilts,
while the head's upright bounding box does (a face 0.8 as wide as tall, tilted 30 degrees, needs
a box ~1.25x taller); and YuNet's facial points barely follow an in-plane tilt (measured on the
astronaut photo turned by ±30 degrees: the eye line moved at most 6 degrees), so they cannot
measure it. So the head square is centred on the face and large enough for any tilt up to ±30
degrees: measured on the real people's clips of the test set, the true face box (hairline to
chin, ear to ear) then stays inside the crop while its area stays under 4x the face's.
Pure arithmetic: no OpenCV, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from avatars.pipeline.detect import FaceBox


@dataclass(frozen=True)
class HeadGeometry:
    """How one detector's box relates to the head: the square's centre below the box centre and
    its side, both in box heights; and the box's height in the Haar cascade's terms (the size the
    background blur's person shape was drawn for)."""

    shift_down: float
    side: float
    haar_size: float = 1.0

    def square(self, face: FaceBox) -> tuple[float, float, float]:
        """(cx, cy, side) of the head's square, in frame pixels."""
        return face.cx, face.cy + self.shift_down * face.h, self.side * face.h


# YuNet: centred on its box (its bottom is just above the chin, its top under the hairline); 1.6 box heights hold
# the face tilted 30 degrees with room for tracking error.
# Measured on the real people's photos: the cascade's box is ~0.9 of YuNet's height (0.76-1.02),
# around the same centre.
YUNET_HEAD = HeadGeometry(shift_down=0.0, side=1.6, haar_size=0.9)
# The Haar cascade (square boxes, brow to lower lip): forehead and chin need the square moved down.
HAAR_HEAD = HeadGeometry(shift_down=0.1, side=1.55)

GEOMETRIES = {"yunet": YUNET_HEAD, "haar": HAAR_HEAD}
