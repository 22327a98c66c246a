"""Procedural product packaging: a front-view sprite (BGR + alpha) per SKU and size.

Every SKU is drawn from its config ``packaging`` (shape, colours, label, size in mm): the body
shape, a shaded fill in the first colour, a band and a logo in the second colour, the label text
and a size badge taken from the digits of the SKU id. Look-alike pairs (same packaging, other
size) therefore share everything except their height and the badge ("330" against "440").
Sprites are drawn at twice the size and reduced with area interpolation for smooth edges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from walkout.schema import Packaging

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

_SS = 2  # supersampling factor
_FONT = cv2.FONT_HERSHEY_DUPLEX


@dataclass(frozen=True)
class Sprite:
    """A product image: ``bgr`` (h, w, 3) uint8 and ``alpha`` (h, w) float32 in 0..1."""

    bgr: U8
    alpha: F32

    @property
    def height(self) -> int:
        return int(self.bgr.shape[0])

    @property
    def width(self) -> int:
        return int(self.bgr.shape[1])


def hex_bgr(colour: str) -> tuple[int, int, int]:
    """``#rrggbb`` to an OpenCV BGR triple."""
    v = colour.lstrip("#")
    r, g, b = int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)
    return (b, g, r)


def _luma(c: tuple[int, int, int]) -> float:
    return 0.114 * c[0] + 0.587 * c[1] + 0.299 * c[2]


def _contrast(c: tuple[int, int, int]) -> tuple[int, int, int]:
    return (20, 20, 20) if _luma(c) > 140 else (245, 245, 245)


def shade(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    """A colour scaled by f (clipped to 255)."""
    return _shade(c, f)


def _shade(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return (
        int(min(255, c[0] * f)),
        int(min(255, c[1] * f)),
        int(min(255, c[2] * f)),
    )


def size_badge(sku: str) -> str:
    """The size printed on the pack: the first group of digits of the SKU id ("" if none)."""
    m = re.search(r"\d+", sku)
    return m.group(0) if m else ""


def _fit_text(
    img: U8, text: str, cx: int, cy: int, max_w: int, max_h: int, colour: tuple[int, int, int]
) -> None:
    if not text or max_w < 4 or max_h < 4:
        return
    (tw, th), _ = cv2.getTextSize(text, _FONT, 1.0, 2)
    scale = min(max_w / max(tw, 1), max_h / max(th, 1))
    thick = max(1, round(scale * 2.2))
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, thick)
    org = (int(cx - tw / 2), int(cy + th / 2))
    cv2.putText(img, text, org, _FONT, scale, colour, thick, cv2.LINE_AA)


def _cyl_shading(w: int) -> F32:
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)
    prof = 0.55 + 0.55 * np.sqrt(np.clip(1.0 - x * x, 0.0, 1.0))
    spec = 0.35 * np.exp(-(((x + 0.35) / 0.12) ** 2))  # a highlight left of centre
    return np.asarray(prof + spec, dtype=np.float32)


def _body_mask(shape: str, w: int, h: int) -> U8:
    """The silhouette (0/255) of a pack shape in a w x h box."""
    m = np.zeros((h, w), np.uint8)
    if shape == "can":
        r = max(2, int(0.07 * w))
        cv2.rectangle(m, (0, r), (w - 1, h - 1 - r), 255, -1)
        cv2.ellipse(m, (w // 2, r), (w // 2 - 1, r), 0, 0, 360, 255, -1)
        cv2.ellipse(m, (w // 2, h - 1 - r), (w // 2 - 1, r), 0, 0, 360, 255, -1)
    elif shape == "bottle":
        neck_w = max(2, int(0.36 * w))
        shoulder = int(0.30 * h)
        neck_top = int(0.06 * h)
        pts = np.array(
            [
                [w // 2 - neck_w // 2, neck_top],
                [w // 2 + neck_w // 2, neck_top],
                [w // 2 + neck_w // 2, int(0.14 * h)],
                [w - 1, shoulder],
                [w - 1, h - 1],
                [0, h - 1],
                [0, shoulder],
                [w // 2 - neck_w // 2, int(0.14 * h)],
            ],
            np.int32,
        )
        cv2.fillPoly(m, [pts], 255, cv2.LINE_8)
        cap_w = int(neck_w * 1.15)
        cv2.rectangle(m, (w // 2 - cap_w // 2, 0), (w // 2 + cap_w // 2, neck_top + 2), 255, -1)
    elif shape == "bag":
        teeth = 7
        top = int(0.06 * h)
        xs = np.linspace(0, w - 1, teeth * 2 + 1)
        upper = [[int(x), 0 if i % 2 == 0 else top] for i, x in enumerate(xs)]
        lower = [[int(x), h - 1 if i % 2 == 0 else h - 1 - top] for i, x in enumerate(xs)]
        bulge = int(0.04 * w)
        pts = np.array(
            [
                *upper,
                [w - 1, top],
                [w - 1 - 0, h // 2],
                [w - 1, h - 1 - top],
                *lower[::-1],
                [0, h - 1 - top],
                [bulge, h // 2],
                [0, top],
            ],
            np.int32,
        )
        cv2.fillPoly(m, [pts], 255, cv2.LINE_8)
    elif shape == "carton":
        gable = int(0.16 * h)
        pts = np.array(
            [[w // 2, 0], [w - 1, gable], [w - 1, h - 1], [0, h - 1], [0, gable]], np.int32
        )
        cv2.fillPoly(m, [pts], 255, cv2.LINE_8)
    elif shape == "jar":
        lid = int(0.2 * h)
        inset = int(0.06 * w)
        cv2.rectangle(m, (inset, 0), (w - 1 - inset, lid), 255, -1)
        r = int(0.12 * w)
        cv2.rectangle(m, (0, lid), (w - 1, h - 1 - r), 255, -1)
        cv2.rectangle(m, (r, h - 1 - r), (w - 1 - r, h - 1), 255, -1)
        cv2.circle(m, (r, h - 1 - r), r, 255, -1)
        cv2.circle(m, (w - 1 - r, h - 1 - r), r, 255, -1)
    elif shape == "tube":
        cap_h = int(0.12 * h)
        top_w = int(0.9 * w)
        bot_w = int(0.55 * w)
        pts = np.array(
            [
                [w // 2 - top_w // 2, 0],
                [w // 2 + top_w // 2, 0],
                [w // 2 + bot_w // 2, h - cap_h],
                [w // 2 - bot_w // 2, h - cap_h],
            ],
            np.int32,
        )
        cv2.fillPoly(m, [pts], 255, cv2.LINE_8)
        cap_w = int(0.42 * w)
        cv2.rectangle(m, (w // 2 - cap_w // 2, h - cap_h), (w // 2 + cap_w // 2, h - 1), 255, -1)
    elif shape == "bar":
        crimp = int(0.06 * h)
        cv2.rectangle(m, (0, crimp), (w - 1, h - 1 - crimp), 255, -1)
        inset = int(0.05 * w)
        cv2.rectangle(m, (inset, 0), (w - 1 - inset, h - 1), 255, -1)
    else:  # box
        cv2.rectangle(m, (0, 0), (w - 1, h - 1), 255, -1)
    return m


def _draw(packaging: Packaging, sku: str, w: int, h: int) -> tuple[U8, U8]:
    shape = packaging.shape
    c1 = hex_bgr(packaging.colors[0])
    c2 = hex_bgr(packaging.colors[1] if len(packaging.colors) > 1 else "#ffffff")
    img = np.empty((h, w, 3), np.uint8)
    img[:] = c1
    mask = _body_mask(shape, w, h)
    text_c = _contrast(c1)
    badge = size_badge(sku)

    if shape == "can":
        r = max(2, int(0.07 * w))
        img[: 2 * r + 1] = (190, 190, 195)  # aluminium top
        img[h - 2 * r - 1 :] = (170, 170, 175)
        # swoosh logo in the second colour
        cv2.ellipse(
            img,
            (int(w * 0.2), int(h * 0.72)),
            (int(w * 0.9), int(h * 0.12)),
            -18,
            180,
            360,
            c2,
            max(2, h // 24),
            cv2.LINE_AA,
        )
        cv2.circle(img, (w // 2, int(h * 0.30)), int(w * 0.22), c2, -1, cv2.LINE_AA)
        cv2.circle(img, (w // 2, int(h * 0.30)), int(w * 0.12), c1, -1, cv2.LINE_AA)
        _fit_text(img, packaging.label, w // 2, int(h * 0.52), int(w * 0.86), int(h * 0.11), text_c)
        _fit_text(img, badge, w // 2, int(h * 0.86), int(w * 0.55), int(h * 0.07), text_c)
    elif shape == "bottle":
        body = _shade(c1, 1.1)
        img[:] = body
        cap_c = _shade(c2, 0.6) if _luma(c2) > 120 else c2
        img[: int(0.08 * h)] = cap_c
        y0, y1 = int(0.42 * h), int(0.78 * h)
        img[y0:y1] = c2
        cv2.circle(img, (w // 2, int(y0 + 0.3 * (y1 - y0))), int(w * 0.16), c1, -1, cv2.LINE_AA)
        _fit_text(
            img,
            packaging.label,
            w // 2,
            int(y0 + 0.66 * (y1 - y0)),
            int(w * 0.84),
            int((y1 - y0) * 0.3),
            _contrast(c2),
        )
        _fit_text(img, badge, w // 2, int(h * 0.88), int(w * 0.5), int(h * 0.06), text_c)
    elif shape == "bag":
        band_y = int(0.62 * h)
        pts = np.array(
            [
                [0, band_y],
                [w, band_y - int(0.15 * h)],
                [w, band_y + int(0.05 * h)],
                [0, band_y + int(0.2 * h)],
            ],
            np.int32,
        )
        cv2.fillPoly(img, [pts], c2, cv2.LINE_AA)
        cv2.circle(img, (w // 2, int(h * 0.27)), int(min(w, h) * 0.17), c2, -1, cv2.LINE_AA)
        cv2.circle(
            img, (w // 2, int(h * 0.27)), int(min(w, h) * 0.10), _shade(c1, 0.8), -1, cv2.LINE_AA
        )
        _fit_text(img, packaging.label, w // 2, int(h * 0.48), int(w * 0.85), int(h * 0.1), text_c)
        _fit_text(
            img,
            badge + ("g" if badge else ""),
            w // 2,
            int(h * 0.86),
            int(w * 0.45),
            int(h * 0.06),
            text_c,
        )
        # crinkles
        for fx in (0.18, 0.5, 0.82):
            cv2.line(
                img,
                (int(w * fx), int(h * 0.05)),
                (int(w * fx), int(h * 0.11)),
                _shade(c1, 0.75),
                1,
                cv2.LINE_AA,
            )
    elif shape == "carton":
        gable = int(0.16 * h)
        img[: gable + 2] = _shade(c1, 0.85)
        img[int(0.55 * h) : int(0.72 * h)] = c2
        cv2.circle(img, (w // 2, int(h * 0.38)), int(w * 0.22), c2, -1, cv2.LINE_AA)
        _fit_text(
            img, packaging.label, w // 2, int(h * 0.635), int(w * 0.86), int(h * 0.1), _contrast(c2)
        )
        _fit_text(img, badge, w // 2, int(h * 0.86), int(w * 0.5), int(h * 0.06), text_c)
    elif shape == "jar":
        lid = int(0.2 * h)
        img[: lid + 1] = c2
        img[int(0.35 * h) : int(0.85 * h)] = _shade(c2, 1.0)
        cv2.rectangle(img, (int(w * 0.08), int(0.38 * h)), (int(w * 0.92), int(0.82 * h)), c1, -1)
        _fit_text(
            img, packaging.label, w // 2, int(h * 0.6), int(w * 0.75), int(h * 0.22), _contrast(c1)
        )
        _fit_text(img, badge, w // 2, int(h * 0.1), int(w * 0.4), int(h * 0.1), _contrast(c2))
    elif shape == "tube":
        cap_h = int(0.12 * h)
        img[h - cap_h :] = c2
        img[: int(0.05 * h)] = _shade(c1, 0.8)
        img[int(0.2 * h) : int(0.3 * h)] = c2
        # label runs along the tube
        tmp = np.zeros((w, h, 3), np.uint8)
        tmp[:] = c1
        _fit_text(
            tmp, packaging.label, int(h * 0.55), w // 2, int(h * 0.5), int(w * 0.5), _contrast(c1)
        )
        rot = cv2.rotate(tmp, cv2.ROTATE_90_COUNTERCLOCKWISE)
        y0, y1 = int(0.33 * h), int(0.82 * h)
        img[y0:y1] = np.where(rot[y0:y1] != c1, rot[y0:y1], img[y0:y1])
        _fit_text(img, badge, w // 2, int(h * 0.25), int(w * 0.5), int(h * 0.06), _contrast(c2))
    elif shape == "bar":
        crimp = int(0.06 * h)
        img[: crimp + 1] = _shade(c1, 0.8)
        img[h - crimp - 1 :] = _shade(c1, 0.8)
        img[int(0.15 * h) : int(0.32 * h)] = c2
        tmp = np.zeros((w, h, 3), np.uint8)
        tmp[:] = c1
        _fit_text(
            tmp, packaging.label, int(h * 0.62), w // 2, int(h * 0.55), int(w * 0.55), _contrast(c1)
        )
        rot = cv2.rotate(tmp, cv2.ROTATE_90_COUNTERCLOCKWISE)
        y0, y1 = int(0.35 * h), int(0.92 * h)
        img[y0:y1] = np.where(rot[y0:y1] != c1, rot[y0:y1], img[y0:y1])
        _fit_text(img, badge, w // 2, int(h * 0.235), int(w * 0.5), int(h * 0.1), _contrast(c2))
    else:  # box
        img[: int(0.22 * h)] = c2
        cv2.circle(img, (int(w * 0.5), int(h * 0.42)), int(min(w, h) * 0.16), c2, -1, cv2.LINE_AA)
        cv2.circle(img, (int(w * 0.5), int(h * 0.42)), int(min(w, h) * 0.08), c1, -1, cv2.LINE_AA)
        _fit_text(img, packaging.label, w // 2, int(h * 0.68), int(w * 0.86), int(h * 0.16), text_c)
        _fit_text(img, badge, w // 2, int(h * 0.11), int(w * 0.45), int(h * 0.12), _contrast(c2))

    # Shading: cylinders get a horizontal profile, flat packs a soft vertical fall-off.
    if shape in ("can", "bottle", "jar", "tube"):
        prof = _cyl_shading(w)[None, :, None]
    else:
        x = np.linspace(-1.0, 1.0, w, dtype=np.float32)
        prof = (0.92 + 0.1 * (1 - x * x) - 0.04 * x)[None, :, None]
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    lit = img.astype(np.float32) * prof * (1.04 - 0.1 * y)
    img = np.clip(lit, 0, 255).astype(np.uint8)
    # dark outline so packs in a row separate
    edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    img[edge > 0] = (img[edge > 0].astype(np.float32) * 0.55).astype(np.uint8)
    return img, mask


_CACHE: dict[tuple[object, ...], Sprite] = {}


def _cached(packaging: Packaging, sku: str, w: int, h: int) -> Sprite:
    key = (sku, packaging.shape, tuple(packaging.colors), packaging.label, w, h)
    got = _CACHE.get(key)
    if got is not None:
        return got
    bw, bh = w * _SS, h * _SS
    img, mask = _draw(packaging, sku, bw, bh)
    bgr = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    bgr.setflags(write=False)
    alpha.setflags(write=False)
    if len(_CACHE) > 4096:
        _CACHE.clear()
    sp = Sprite(bgr=np.asarray(bgr, np.uint8), alpha=alpha)
    _CACHE[key] = sp
    return sp


def product_sprite(packaging: Packaging, sku: str, px_per_mm: float) -> Sprite:
    """The front view of one unit at ``px_per_mm`` (cached; do not modify the arrays)."""
    w = max(4, round(packaging.size_mm[0] * px_per_mm))
    h = max(6, round(packaging.size_mm[1] * px_per_mm))
    return _cached(packaging, sku, w, h)
