"""Lane regions of one shelf camera, precomputed once: a label image and integral images.

Every per-frame question the interaction logic asks ("which lane is this item in", "how much of
this hand lies in each lane", "how much of each lane does this arm cover") is answered with
numpy lookups over all boxes at once, never by drawing or looping over pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]


class LaneRegions:
    """The lane polygons of one camera (image pixels), in a fixed order ``lane_ids``."""

    def __init__(
        self, polygons: Mapping[str, Sequence[tuple[float, float]]], width: int, height: int
    ):
        if width < 1 or height < 1:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        self.lane_ids: tuple[str, ...] = tuple(polygons)
        self.width, self.height = width, height
        self.polygons = {k: np.asarray(v, np.float32) for k, v in polygons.items()}
        label = np.full((height, width), -1, np.int16)
        integrals = []
        areas = []
        x_spans = []
        for i, lane in enumerate(self.lane_ids):
            mask = np.zeros((height, width), np.uint8)
            pts = np.round(self.polygons[lane]).astype(np.int32)
            cv2.fillPoly(mask, [pts], 1)
            label[mask > 0] = i
            integrals.append(cv2.integral(mask, sdepth=cv2.CV_64F))
            areas.append(float(mask.sum()))
            x_spans.append((float(pts[:, 0].min()), float(pts[:, 0].max())))
        self.label = label
        self._integral: F64 = (
            np.stack(integrals) if integrals else np.zeros((0, height + 1, width + 1))
        )
        self.areas: F64 = np.asarray(areas, np.float64)
        self.x_spans = x_spans

    def __len__(self) -> int:
        return len(self.lane_ids)

    def lane_at(self, points: F32) -> I32:
        """Lane index (-1 for none) of each ``[N, 2]`` point."""
        if len(points) == 0:
            return np.zeros(0, np.int32)
        x = np.clip(np.round(points[:, 0]).astype(np.int64), 0, self.width - 1)
        y = np.clip(np.round(points[:, 1]).astype(np.int64), 0, self.height - 1)
        return self.label[y, x].astype(np.int32)

    def _pixels_inside(self, xyxy: F32) -> F64:
        """``[N, L]`` number of each lane's pixels inside each box."""
        n = len(xyxy)
        if n == 0 or len(self.lane_ids) == 0:
            return np.zeros((n, len(self.lane_ids)))
        x1 = np.clip(np.floor(xyxy[:, 0]), 0, self.width).astype(np.int64)
        y1 = np.clip(np.floor(xyxy[:, 1]), 0, self.height).astype(np.int64)
        x2 = np.clip(np.ceil(xyxy[:, 2]), 0, self.width).astype(np.int64)
        y2 = np.clip(np.ceil(xyxy[:, 3]), 0, self.height).astype(np.int64)
        ii = self._integral
        out: F64 = ii[:, y2, x2] - ii[:, y1, x2] - ii[:, y2, x1] + ii[:, y1, x1]
        return out.T

    def box_fraction_inside(self, xyxy: F32) -> F64:
        """``[N, L]`` share of each box's area that lies in each lane."""
        inside = self._pixels_inside(xyxy)
        w = np.clip(xyxy[:, 2] - xyxy[:, 0], 1, None)
        h = np.clip(xyxy[:, 3] - xyxy[:, 1], 1, None)
        out: F64 = inside / (w * h)[:, None]
        return out

    def lane_fraction_covered(self, xyxy: F32) -> F64:
        """``[N, L]`` share of each lane's area covered by each box."""
        inside = self._pixels_inside(xyxy)
        out: F64 = inside / np.clip(self.areas, 1, None)[None, :]
        return out

    def across(self, lane_index: int, x_px: float, reach: float = 0.0) -> float:
        """Where ``x_px`` lies across the lane, from -0.5 (left edge) to +0.5 (right edge);
        up to ``reach`` lane widths beyond either edge (a hand already on its way out)."""
        x0, x1 = self.x_spans[lane_index]
        if x1 <= x0:
            return 0.0
        return float(np.clip((x_px - x0) / (x1 - x0), -reach, 1.0 + reach)) - 0.5
