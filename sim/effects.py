"""Camera effects: lighting, sensor noise, motion blur and lossy compression."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Lighting:
    """Global gain, colour cast (BGR gains) and a soft spot of light (centre, radius, strength)."""

    gain: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    spot_xy: tuple[float, float] = (0.5, 0.3)  # share of width and height
    spot_radius: float = 0.8  # share of the image diagonal
    spot_strength: float = 0.25

    @staticmethod
    def random(rng: np.random.Generator) -> Lighting:
        warm = float(rng.uniform(-0.12, 0.12))
        return Lighting(
            gain=float(rng.uniform(0.6, 1.15)),
            tint=(1.0 - warm, 1.0 + float(rng.uniform(-0.04, 0.04)), 1.0 + warm),
            spot_xy=(float(rng.uniform(0.1, 0.9)), float(rng.uniform(-0.2, 0.6))),
            spot_radius=float(rng.uniform(0.4, 1.2)),
            spot_strength=float(rng.uniform(0.0, 0.3)),
        )


_GAIN_CACHE: dict[tuple[int, int, Lighting], F32] = {}


def gain_map(w: int, h: int, light: Lighting) -> F32:
    """Per-pixel, per-channel multiplier (h, w, 3) for a lighting setting (cached)."""
    key = (w, h, light)
    got = _GAIN_CACHE.get(key)
    if got is not None:
        return got
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = light.spot_xy[0] * w, light.spot_xy[1] * h
    r = light.spot_radius * float(np.hypot(w, h))
    dist2 = ((xs - cx) ** 2 + (ys - cy) ** 2) / (r * r)
    spot = 1.0 - light.spot_strength + light.spot_strength * 2.0 * np.exp(-dist2)
    g = (spot * light.gain)[..., None] * np.asarray(light.tint, np.float32)[None, None, :]
    out = np.asarray(g, np.float32)
    if len(_GAIN_CACHE) > 256:
        _GAIN_CACHE.clear()
    _GAIN_CACHE[key] = out
    return out


def apply_lighting(img: U8, light: Lighting) -> U8:
    h, w = img.shape[:2]
    g = gain_map(w, h, light)
    return np.asarray(np.clip(img.astype(np.float32) * g, 0, 255), np.uint8)


def add_noise(img: U8, rng: np.random.Generator, sd: float) -> U8:
    """Gaussian sensor noise with a little per-row banding."""
    if sd <= 0:
        return img
    h, w = img.shape[:2]
    noise = rng.normal(0.0, sd, (h, w, 1)).astype(np.float32)
    noise = noise + rng.normal(0.0, sd * 0.4, (h, w, 3)).astype(np.float32)
    noise += rng.normal(0.0, sd * 0.15, (h, 1, 1)).astype(np.float32)
    return np.asarray(np.clip(img.astype(np.float32) + noise, 0, 255), np.uint8)


def motion_kernel(length_px: int, angle_deg: float) -> F32:
    k = max(1, int(length_px))
    size = 2 * k + 1
    kern = np.zeros((size, size), np.float32)
    c = k
    dx = np.cos(np.radians(angle_deg)) * k
    dy = np.sin(np.radians(angle_deg)) * k
    cv2.line(
        kern,
        (round(c - dx), round(c - dy)),
        (round(c + dx), round(c + dy)),
        1.0,
        1,
        cv2.LINE_AA,
    )
    s = float(kern.sum())
    return kern / s if s > 0 else kern


def motion_blur(img: U8, length_px: int, angle_deg: float) -> U8:
    if length_px < 1:
        return img
    return np.asarray(cv2.filter2D(img, -1, motion_kernel(length_px, angle_deg)), np.uint8)


def jpeg(img: U8, quality: int) -> U8:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return img
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)
