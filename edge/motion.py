"""Motion gating: infer a camera's frame only where something moves.

Each frame is shrunk to a small grey image (``width_px`` wide) and differenced against the
previous one. Zones (a shelf camera's lane polygons, each grown by ``grow_px`` so a hand is seen
just before it enters, plus the approach band along the bottom edge where arms come from; an
overhead camera's whole image) are a label image built once; one ``bincount`` of the changed
pixels by label gives the motion of every zone. The cost is a resize, a difference and a count:
well under a millisecond at 640x360.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]


class MotionGate:
    """Which zones of one camera moved since the last frame."""

    def __init__(
        self,
        width: int,
        height: int,
        zones: Mapping[str, Sequence[tuple[float, float]]] | None = None,
        *,
        width_px: int = 160,
        grow_px: float = 24.0,
        approach_band: float = 0.12,
        threshold: int = 16,
        min_changed: float = 0.004,
    ):
        if width_px < 8:
            raise ValueError(f"width_px must be >= 8, got {width_px}")
        self.scale = min(1.0, width_px / width)
        self.size = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
        w, h = self.size
        self.threshold = threshold
        self.min_changed = min_changed
        self.zone_ids: tuple[str, ...]
        label = np.zeros((h, w), np.int32)  # 0: no zone
        if zones:
            self.zone_ids = (*zones, "approach")
            grow = max(1, round(grow_px * self.scale))
            kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * grow + 1, 2 * grow + 1))
            for i, pts in enumerate(zones.values(), start=1):
                mask = np.zeros((h, w), np.uint8)
                poly = np.round(np.asarray(pts, np.float64) * self.scale).astype(np.int32)
                cv2.fillPoly(mask, [poly], 1)
                grown = cv2.dilate(mask, kernel)
                label[(grown > 0) & (label == 0)] = i
            band = max(1, round(h * approach_band))
            strip = label[h - band :, :]
            strip[strip == 0] = len(zones) + 1
        else:
            self.zone_ids = ("all",)
            label[:] = 1
        self._label = label.ravel()
        n = len(self.zone_ids) + 1
        self._zone_px = np.bincount(self._label, minlength=n)[1:].astype(np.float64)
        self._prev: Image | None = None
        self.brightness = 0.0  # mean grey level of the last frame (0..255)
        self.frames = 0
        self.moving_frames = 0

    def small(self, image: Image) -> Image:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        return np.asarray(cv2.resize(grey, self.size, interpolation=cv2.INTER_AREA), np.uint8)

    def update(self, image: Image) -> npt.NDArray[np.bool_]:
        """Per zone (``zone_ids`` order): did it move since the previous frame? The first
        frame counts as movement everywhere."""
        small = self.small(image)
        self.brightness = float(small.mean())
        prev, self._prev = self._prev, small
        self.frames += 1
        if prev is None or prev.shape != small.shape:
            self.moving_frames += 1
            return np.ones(len(self.zone_ids), np.bool_)
        diff = cv2.absdiff(small, prev)
        changed = (diff.ravel() > self.threshold).astype(np.int64)
        per_zone = np.bincount(self._label, weights=changed, minlength=len(self.zone_ids) + 1)
        moving = np.asarray(per_zone[1:] >= self.min_changed * self._zone_px, np.bool_)
        moving &= per_zone[1:] >= 2  # two changed pixels at least: not a single sensor blip
        if moving.any():
            self.moving_frames += 1
        return moving
