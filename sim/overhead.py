"""The overhead-camera view: the floor from the ceiling with gondolas, gates and people.

Floor positions map to pixels through the inverse of the camera's image-to-floor homography
from the store config, so a person drawn at (x, y) metres is where the edge's homography will
put them back. People are seen from above: a shadow, shoulders in their clothing colour, arms
(one reaching toward a shelf while they take something), a head with hair or a cap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from sim.canvas import NO_ID, Canvas
from sim.shelf import CLOTHES, SKIN_TONES
from sim.sprites import hex_bgr, shade
from walkout.config import Store
from walkout.schema import Camera

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
BGR = tuple[int, int, int]

HAIR: tuple[BGR, ...] = (
    (20, 20, 25),
    (30, 45, 70),
    (40, 70, 110),
    (60, 110, 170),
    (150, 150, 155),
    (200, 200, 205),
    (20, 30, 50),
)


@dataclass(frozen=True)
class PersonLook:
    """How a shopper looks from above (drawn from a seeded generator)."""

    top: BGR
    hair: BGR
    skin: BGR
    cap: BGR | None
    bag: BGR | None
    shoulder_m: float

    @staticmethod
    def random(rng: np.random.Generator) -> PersonLook:
        cap = CLOTHES[int(rng.integers(len(CLOTHES)))] if rng.random() < 0.2 else None
        bag = CLOTHES[int(rng.integers(len(CLOTHES)))] if rng.random() < 0.3 else None
        return PersonLook(
            top=CLOTHES[int(rng.integers(len(CLOTHES)))],
            hair=HAIR[int(rng.integers(len(HAIR)))],
            skin=SKIN_TONES[int(rng.integers(len(SKIN_TONES)))],
            cap=cap,
            bag=bag,
            shoulder_m=float(rng.uniform(0.40, 0.52)),
        )


@dataclass(frozen=True)
class PersonPose:
    xy_m: tuple[float, float]
    heading_rad: float  # direction the person faces, floor frame
    reach_xy_m: tuple[float, float] | None = None  # where one hand reaches, if anywhere
    stride: float = 0.0  # -1..1, swings the arms while walking


class FloorView:
    """Floor-to-pixel mapping and the static floor image of one overhead camera."""

    def __init__(self, camera: Camera, store: Store) -> None:
        if camera.homography is None:
            raise ValueError(
                f"camera {camera.id} has no homography; overhead cameras need one in the config"
            )
        self.camera = camera
        self.size = camera.resolution
        hom = np.asarray(camera.homography, np.float64).reshape(3, 3)
        self._hom = hom
        self.floor_to_img = np.linalg.inv(hom)
        # pixels per metre at the image centre (for sizes)
        c = self.to_px(np.array([[*self.to_floor((self.size[0] / 2, self.size[1] / 2))]]))
        c2 = self.to_px(
            np.array([[*self.to_floor((self.size[0] / 2, self.size[1] / 2))]])
            + np.array([[1.0, 0.0]])
        )
        self.px_per_m = float(np.hypot(*(c2[0] - c[0])))
        self.store = store

    def to_floor(self, uv: tuple[float, float]) -> tuple[float, float]:
        p = self._hom @ np.array([uv[0], uv[1], 1.0])
        return float(p[0] / p[2]), float(p[1] / p[2])

    def to_px(self, xy_m: npt.ArrayLike) -> F64:
        p = np.asarray(xy_m, np.float64).reshape(-1, 2)
        ph = np.hstack([p, np.ones((len(p), 1))]) @ self.floor_to_img.T
        return np.asarray(ph[:, :2] / ph[:, 2:3], np.float64)

    def draw_floor(self, tile: BGR = (200, 205, 208), seed: int = 0) -> U8:
        """Tiles, gondolas with product tops, gate lines and mats."""
        w, h = self.size
        img = np.empty((h, w, 3), np.uint8)
        img[:] = tile
        cv = Canvas(img)
        rng = np.random.Generator(np.random.PCG64(seed))
        # 0.5 m floor tiles with slight colour variation and grout lines
        fw, fd = self.store.cfg.floor.width_m, self.store.cfg.floor.depth_m
        for i in range(math.ceil(fw / 0.5)):
            for j in range(math.ceil(fd / 0.5)):
                q = self.to_px(
                    [
                        [i * 0.5, j * 0.5],
                        [i * 0.5 + 0.5, j * 0.5],
                        [i * 0.5 + 0.5, j * 0.5 + 0.5],
                        [i * 0.5, j * 0.5 + 0.5],
                    ]
                )
                if q[:, 0].max() < 0 or q[:, 1].max() < 0 or q[:, 0].min() > w or q[:, 1].min() > h:
                    continue
                f = float(rng.uniform(0.93, 1.04))
                cv.poly(q, (int(tile[0] * f), int(tile[1] * f), int(tile[2] * f)))
                cv2.polylines(img, [np.round(q).astype(np.int32)], True, (150, 155, 158), 1)
        # walls outside the floor
        outer = self.to_px(np.array([[0, 0], [fw, 0], [fw, fd], [0, fd]]))
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round(outer).astype(np.int32)], 255)
        img[mask == 0] = (70, 70, 75)
        for g in self.store.cfg.gondolas:
            (x0, y0), (x1, y1) = g.front_m
            d = np.array([x1 - x0, y1 - y0])
            d /= np.linalg.norm(d)
            nrm = np.array([-d[1], d[0]]) * g.depth_m  # into the shelf
            a, b = np.array([x0, y0]), np.array([x1, y1])
            cv.poly(self.to_px([a, b, b + nrm, a + nrm]), (95, 98, 104))
            cv.poly(
                self.to_px([a + nrm * 0.05, b + nrm * 0.05, b + nrm * 0.95, a + nrm * 0.95]),
                (160, 165, 170),
            )
            for lane in self.store.cfg.lanes:
                if lane.gondola != g.id or lane.level != g.levels - 1:
                    continue
                pk = self.store.products[lane.sku].packaging
                col = hex_bgr(pk.colors[0])
                t0 = lane.column / g.columns
                t1 = (lane.column + 1) / g.columns
                for k in range(4):
                    for r in range(2):
                        t = t0 + (t1 - t0) * (k + 0.5) / 4
                        p = a + (b - a) * t + nrm * (0.2 + 0.45 * r)
                        c = self.to_px([p])[0]
                        cv.circle((float(c[0]), float(c[1])), max(1.5, 0.045 * self.px_per_m), col)
        for gate in self.store.cfg.gates:
            (x0, y0), (x1, y1) = gate.line_m
            col = (60, 160, 60) if gate.kind == "entry" else (60, 60, 180)
            mat = self.to_px([[x0, y0 - 0.25], [x1, y0 - 0.25], [x1, y1 + 0.6], [x0, y1 + 0.6]])
            cv.poly(mat, (60, 62, 66))
            p = self.to_px([[x0, y0], [x1, y1]])
            cv2.line(
                img,
                tuple(np.round(p[0]).astype(int)),
                tuple(np.round(p[1]).astype(int)),
                col,
                max(2, int(0.05 * self.px_per_m)),
                cv2.LINE_AA,
            )
            for end in p:
                cv.circle((float(end[0]), float(end[1])), 0.08 * self.px_per_m, (40, 40, 40))
        return img


def draw_person(
    cv: Canvas, view: FloorView, look: PersonLook, pose: PersonPose, oid: int = NO_ID
) -> None:
    """One person from above: shadow, arms, shoulders, bag, head."""
    ppm = view.px_per_m
    c = view.to_px([pose.xy_m])[0]
    cx, cy = float(c[0]), float(c[1])
    fwd = np.array([math.cos(pose.heading_rad), math.sin(pose.heading_rad)])
    np.array([-fwd[1], fwd[0]])
    # direction in the image (the homography may flip or scale axes)
    f_img = view.to_px([np.array(pose.xy_m) + fwd * 0.1])[0] - c
    f_img /= np.linalg.norm(f_img) + 1e-9
    s_img = np.array([-f_img[1], f_img[0]])
    ang = math.degrees(math.atan2(s_img[1], s_img[0]))
    sh = look.shoulder_m * ppm
    shadow = cv.img
    cv2.ellipse(
        shadow,
        (int(cx + 0.06 * ppm), int(cy + 0.08 * ppm)),
        (int(sh * 0.55), int(sh * 0.34)),
        ang,
        0,
        360,
        (90, 92, 95),
        -1,
        cv2.LINE_AA,
    )
    arm_w = 0.09 * ppm
    for sgn in (-1.0, 1.0):
        root = np.array([cx, cy]) + s_img * sgn * sh * 0.45
        if pose.reach_xy_m is not None and sgn > 0:
            tip = view.to_px([pose.reach_xy_m])[0]
            v = tip - root
            n = float(np.linalg.norm(v))
            if n > 0.75 * ppm:
                tip = root + v / n * 0.75 * ppm
            cv.capsule(
                (float(root[0]), float(root[1])),
                (float(tip[0]), float(tip[1])),
                arm_w,
                look.top,
                oid,
            )
            cv.circle((float(tip[0]), float(tip[1])), arm_w * 0.6, look.skin, oid)
        else:
            tip = root + f_img * pose.stride * sgn * 0.18 * ppm + s_img * sgn * 0.03 * ppm
            cv.capsule(
                (float(root[0]), float(root[1])),
                (float(tip[0]), float(tip[1])),
                arm_w,
                look.top,
                oid,
            )
    if look.bag is not None:
        bp = np.array([cx, cy]) - s_img * sh * 0.62
        cv.ellipse((float(bp[0]), float(bp[1])), (0.13 * ppm, 0.08 * ppm), ang, look.bag, oid)
    cv.ellipse((cx, cy), (sh / 2, sh * 0.3), ang, look.top, oid)
    darker = shade(look.top, 0.8)
    cv.ellipse(
        (cx - f_img[0] * 0.02 * ppm, cy - f_img[1] * 0.02 * ppm),
        (sh * 0.38, sh * 0.2),
        ang,
        darker,
        oid,
    )
    head = 0.1 * ppm
    hx, hy = cx + f_img[0] * 0.03 * ppm, cy + f_img[1] * 0.03 * ppm
    nose = (hx + f_img[0] * head * 0.75, hy + f_img[1] * head * 0.75)
    cv.circle(nose, head * 0.35, look.skin, oid)
    if look.cap is not None:
        cv.circle((hx, hy), head * 1.02, look.cap, oid)
        cv.ellipse(
            (hx + f_img[0] * head * 0.8, hy + f_img[1] * head * 0.8),
            (head * 0.55, head * 0.35),
            ang,
            shade(look.cap, 0.7),
            oid,
        )
    else:
        cv.circle((hx, hy), head, look.hair, oid)
        light = shade(look.hair, 1.3)
        cv.circle(
            (hx - f_img[0] * head * 0.25, hy - f_img[1] * head * 0.25), head * 0.35, light, oid
        )


def people_in_view(
    view: FloorView, positions: Sequence[tuple[float, float]], margin_m: float = 0.6
) -> list[int]:
    """Indices of positions close enough to the camera's field of view to be drawn."""
    w, h = view.size
    px = (
        view.to_px(np.asarray(positions, np.float64).reshape(-1, 2))
        if positions
        else np.zeros((0, 2))
    )
    m = margin_m * view.px_per_m
    return [i for i, (u, v) in enumerate(px) if -m <= u <= w + m and -m <= v <= h + m]
