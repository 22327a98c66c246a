"""A drawing surface that can also record which object owns each pixel.

Detection labels must be exact, including for partly hidden objects, so every drawing call can
write an object id into an id map beside the image; the visible box of an object is the
bounding box of the pixels it still owns after everything in front of it was drawn.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from sim.sprites import Sprite

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), pixels

NO_ID = -1


class Canvas:
    """An image plus an optional id map; ids >= 0 are labelled objects, -1 is scenery."""

    def __init__(self, img: U8, track_ids: bool = False) -> None:
        self.img = img
        h, w = img.shape[:2]
        self.ids: I32 | None = np.full((h, w), NO_ID, np.int32) if track_ids else None
        self._boxes: dict[int, Box] = {}
        self.full_pixels: dict[int, int] = {}  # unoccluded pixel count of sprite objects

    @property
    def size(self) -> tuple[int, int]:
        return int(self.img.shape[1]), int(self.img.shape[0])

    def _touch(self, oid: int, box: Box) -> None:
        if oid < 0 or self.ids is None:
            return
        old = self._boxes.get(oid)
        if old is not None:
            box = (
                min(old[0], box[0]),
                min(old[1], box[1]),
                max(old[2], box[2]),
                max(old[3], box[3]),
            )
        self._boxes[oid] = box

    def poly(self, pts: npt.ArrayLike, colour: tuple[int, int, int], oid: int = NO_ID) -> None:
        p = np.asarray(pts, np.float64).reshape(-1, 2)
        ip = np.round(p * 16).astype(np.int32)
        cv2.fillPoly(self.img, [ip], colour, cv2.LINE_AA, shift=4)
        if self.ids is not None:
            cv2.fillPoly(self.ids, [ip], oid, cv2.LINE_8, shift=4)
            self._touch(oid, _bounds(p))

    def circle(
        self, c: tuple[float, float], r: float, colour: tuple[int, int, int], oid: int = NO_ID
    ) -> None:
        self.ellipse(c, (r, r), 0.0, colour, oid)

    def ellipse(
        self,
        c: tuple[float, float],
        axes: tuple[float, float],
        angle_deg: float,
        colour: tuple[int, int, int],
        oid: int = NO_ID,
    ) -> None:
        ic = (round(c[0] * 16), round(c[1] * 16))
        ia = (max(1, round(axes[0] * 16)), max(1, round(axes[1] * 16)))
        cv2.ellipse(self.img, ic, ia, angle_deg, 0, 360, colour, -1, cv2.LINE_AA, shift=4)
        if self.ids is not None:
            cv2.ellipse(self.ids, ic, ia, angle_deg, 0, 360, oid, -1, cv2.LINE_8, shift=4)
            r = max(axes)
            self._touch(oid, _bounds(np.array([[c[0] - r, c[1] - r], [c[0] + r, c[1] + r]])))

    def capsule(
        self,
        a: tuple[float, float],
        b: tuple[float, float],
        width: float,
        colour: tuple[int, int, int],
        oid: int = NO_ID,
    ) -> None:
        """A thick segment with round ends (a limb or a finger)."""
        ax, ay = a
        bx, by = b
        d = np.array([bx - ax, by - ay], np.float64)
        n = float(np.hypot(*d))
        if n < 1e-6:
            self.circle(a, width / 2, colour, oid)
            return
        nv = np.array([-d[1], d[0]]) / n * width / 2
        pa, pb = np.array([ax, ay]), np.array([bx, by])
        pts = np.array([pa + nv, pb + nv, pb - nv, pa - nv])
        self.poly(pts, colour, oid)
        self.circle(a, width / 2, colour, oid)
        self.circle(b, width / 2, colour, oid)

    def sprite(self, sp: Sprite, x0: int, y0: int, oid: int = NO_ID, gain: float = 1.0) -> None:
        """Alpha-blend a sprite with its top-left corner at (x0, y0), clipped to the image."""
        w, h = self.size
        sx0, sy0 = max(0, -x0), max(0, -y0)
        dx0, dy0 = max(0, x0), max(0, y0)
        dx1, dy1 = min(w, x0 + sp.width), min(h, y0 + sp.height)
        if dx1 <= dx0 or dy1 <= dy0:
            return
        sx1, sy1 = sx0 + (dx1 - dx0), sy0 + (dy1 - dy0)
        a = sp.alpha[sy0:sy1, sx0:sx1, None]
        src = sp.bgr[sy0:sy1, sx0:sx1].astype(np.float32)
        if gain != 1.0:
            src = src * gain
        dst = self.img[dy0:dy1, dx0:dx1]
        dst[:] = np.clip(src * a + dst.astype(np.float32) * (1.0 - a), 0, 255).astype(np.uint8)
        if self.ids is not None and oid != NO_ID:
            ids = self.ids[dy0:dy1, dx0:dx1]
            own = a[..., 0] > 0.5
            ids[own] = oid
            self.full_pixels[oid] = self.full_pixels.get(oid, 0) + int((sp.alpha > 0.5).sum())
            self._touch(oid, (dx0, dy0, dx1, dy1))

    def visible_boxes(self, min_pixels: int = 12) -> dict[int, tuple[Box, int]]:
        """Each labelled object's visible box and visible pixel count (hidden ones left out)."""
        out: dict[int, tuple[Box, int]] = {}
        if self.ids is None:
            return out
        for oid, (x0, y0, x1, y1) in self._boxes.items():
            region = self.ids[y0:y1, x0:x1] == oid
            count = int(region.sum())
            if count < min_pixels:
                continue
            rows = np.flatnonzero(region.any(axis=1))
            cols = np.flatnonzero(region.any(axis=0))
            out[oid] = (
                (
                    x0 + int(cols[0]),
                    y0 + int(rows[0]),
                    x0 + int(cols[-1]) + 1,
                    y0 + int(rows[-1]) + 1,
                ),
                count,
            )
        return out

    def drawn_pixels(self, oid: int) -> int:
        """How many pixels an object would own if nothing covered it (its box area, upper bound)."""
        b = self._boxes.get(oid)
        return 0 if b is None else (b[2] - b[0]) * (b[3] - b[1])


def _bounds(p: npt.NDArray[np.float64]) -> Box:
    x0 = int(np.floor(p[:, 0].min())) - 1
    y0 = int(np.floor(p[:, 1].min())) - 1
    x1 = int(np.ceil(p[:, 0].max())) + 2
    y1 = int(np.ceil(p[:, 1].max())) + 2
    return (max(0, x0), max(0, y0), max(0, x1), max(0, y1))
