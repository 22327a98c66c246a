"""Where a hand's arm comes from, in a shelf camera's image.

A shopper reaches into a shelf from the aisle: in the shelf camera the arm enters at the
image's bottom edge, below the shopper's body, and runs up to the hand. Where the hand is tells
the lane; where its arm enters tells whose hand it is. When two shoppers reach past each other
(crossed arms), or stand side by side at one lane, the hands' own positions point at the wrong
shopper or at neither, while the arms' roots do not.

The detector has no arm class. What differs from the empty shelf does: :class:`ArmRoots` keeps
a background image (the last frame with no hand in view while no interaction was open), and
for each hand

1. takes the pixels that differ from the background in a ring around the hand (between one
   and two and a half hand sizes away, and not above it: arms come from below) and finds the
   direction most of them lie in: the forearm;
2. follows that direction to the bottom edge;
3. keeps the result within the columns where something crosses the image's bottom rows (the
   arms' roots): a forearm held nearly level would otherwise point far beyond its shoulder.

All of it runs on a quarter-size image, only on frames with hands; an empty shelf costs
nothing.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

SCALE = 4  # the difference image is computed at 1 / SCALE of the frame size
DIFF_LEVEL = 30  # a pixel differs from the background by more than this (any channel)
STRIP_PX = 8  # the bottom rows (full-size pixels) where arms enter
RING = (1.0, 2.5)  # the forearm is looked for between these many hand sizes from the hand
BINS = 36  # direction histogram (10 degrees a bin)
MIN_PIXELS = 4  # fewer differing pixels in the ring than this: no direction


class ArmRoots:
    """Arm roots (x on the image's bottom edge) of the hands in a shelf camera's frames."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self._frame: U8 | None = None  # the latest frame with nobody reaching in
        self._bg: U8 | None = None  # ... reduced, once a hand needs it

    def learn(self, image: U8) -> None:
        """A frame with nobody reaching in: the new background. Only kept here (an idle
        shelf costs nothing per frame); it is reduced when the next hand needs it."""
        self._frame, self._bg = image, None

    def roots(self, image: U8, hand_xy: F32, hand_size: F32) -> F32:
        """Root x (full-size pixels) of each hand's arm; NaN where it cannot be told."""
        out = np.full(len(hand_xy), np.nan, np.float32)
        if self._bg is None and self._frame is not None:
            self._bg, self._frame = _half(self._frame), None
        if self._bg is None or not len(hand_xy):
            return out
        half = _half(image)
        if half.shape != self._bg.shape:  # the source changed size: start over
            self._bg = None
            return out
        diff = cv2.absdiff(half, self._bg)
        fg = (diff.max(axis=2) if diff.ndim == 3 else diff) > DIFF_LEVEL
        hh = fg.shape[0]
        strip = np.flatnonzero(fg[max(0, hh - STRIP_PX // SCALE) :].any(axis=0))
        if not len(strip):
            return out  # nothing enters from below: the arms come from elsewhere
        lo, hi = float(strip[0] * SCALE), float((strip[-1] + 1) * SCALE)
        for k in range(len(hand_xy)):
            angle = self._direction(fg, hand_xy[k] / SCALE, float(hand_size[k]) / SCALE)
            if angle is None:
                continue
            cx, cy = float(hand_xy[k, 0]), float(hand_xy[k, 1])
            dx, dy = math.cos(angle), math.sin(angle)
            if dy > 0.05:
                x = cx + (self.height - cy) * dx / dy
            else:  # level: it points to one side only
                x = -math.inf if dx < 0 else math.inf
            out[k] = min(max(x, lo), hi)
        return out

    @staticmethod
    def _direction(fg: npt.NDArray[np.bool_], c: F32, size: float) -> float | None:
        """Direction (radians, image frame: y down) of most differing pixels around ``c``."""
        r_in, r_out = RING[0] * size, RING[1] * size
        hh, hw = fg.shape
        cx, cy = float(c[0]), float(c[1])
        x0, x1 = max(0, int(cx - r_out)), min(hw, int(cx + r_out) + 1)
        y0, y1 = max(0, int(cy - 0.3 * r_out)), min(hh, int(cy + r_out) + 1)
        if x1 <= x0 or y1 <= y0:
            return None
        ys, xs = np.nonzero(fg[y0:y1, x0:x1])
        dx = xs.astype(np.float32) + (x0 - cx)
        dy = ys.astype(np.float32) + (y0 - cy)
        r = np.hypot(dx, dy)
        keep = (r >= r_in) & (r <= r_out) & (dy > -0.3 * r)
        if int(keep.sum()) < MIN_PIXELS:
            return None
        width = 2 * math.pi / BINS
        bins = ((np.arctan2(dy[keep], dx[keep]) + math.pi) / width).astype(np.int64)
        hist = np.bincount(np.minimum(bins, BINS - 1), minlength=BINS)
        smooth = np.convolve(np.r_[hist[-1:], hist, hist[:1]], [1, 2, 1], "valid")
        k = int(smooth.argmax())
        return -math.pi + (k + 0.5) * width


def _half(image: U8) -> U8:
    h, w = image.shape[:2]
    return np.asarray(
        cv2.resize(image, (w // SCALE, h // SCALE), interpolation=cv2.INTER_AREA), np.uint8
    )
