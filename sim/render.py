"""Per-camera frame rendering for a planned scenario.

Each camera renders on its own, in time order, from its own seeded generator, so cameras can
run in parallel processes and still give identical frames. Static parts are cached: a shelf
camera redraws its shelves only when a lane's contents change, an overhead camera draws its
floor once; per frame only arms, people, blur and noise are added.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from sim.canvas import Canvas
from sim.effects import Lighting, gain_map, motion_kernel
from sim.floorplan import along_of_point, lane_column_along
from sim.overhead import FloorView, PersonPose, draw_person
from sim.scenario import ARM_IN_S, HANDOFF_S, Reach, Scenario, Unit
from sim.shelf import (
    ArmPose,
    ShelfLayout,
    draw_arm,
    draw_background,
    draw_lip,
    draw_units,
    price_text,
)
from walkout.config import Store
from walkout.schema import Camera

U8 = npt.NDArray[np.uint8]
ARM_BELOW_PX = 45.0  # arms come from below the bottom edge of the image


@dataclass(frozen=True)
class Frame:
    index: int
    t_s: float
    image: U8 | None  # None: the camera dropped this frame


def frame_times(camera: Camera, duration_s: float, cam_index: int) -> npt.NDArray[np.float64]:
    """Capture times (s) of a camera's frames; cameras are not synchronised (small phase)."""
    period = 1.0 / camera.fps
    phase = ((cam_index * 3571) % 1000) / 1000.0 * period
    return np.arange(phase, duration_s, period, dtype=np.float64)


def _camera_rng(sc: Scenario, cam_index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([sc.seed, 0xCA3, cam_index]))


def _base_lighting(rng: np.random.Generator) -> Lighting:
    warm = float(rng.uniform(-0.05, 0.05))
    return Lighting(
        gain=float(rng.uniform(0.92, 1.06)),
        tint=(1.0 - warm, 1.0, 1.0 + warm),
        spot_xy=(float(rng.uniform(0.3, 0.7)), float(rng.uniform(-0.1, 0.3))),
        spot_radius=float(rng.uniform(0.6, 1.0)),
        spot_strength=float(rng.uniform(0.08, 0.2)),
    )


class _Noise:
    """A bank of pre-drawn noise frames applied with saturating uint8 adds."""

    def __init__(self, rng: np.random.Generator, w: int, h: int, sd: float, n: int = 4) -> None:
        self.pos: list[U8] = []
        self.neg: list[U8] = []
        for _ in range(n):
            z = rng.standard_normal((h, w, 1), np.float32) * sd
            z = z + rng.standard_normal((h, w, 3), np.float32) * (sd * 0.4)
            self.pos.append(np.clip(z, 0, 255).astype(np.uint8))
            self.neg.append(np.clip(-z, 0, 255).astype(np.uint8))
        self.rng = rng

    def apply(self, img: U8) -> U8:
        k = int(self.rng.integers(len(self.pos)))
        out = cv2.subtract(img, self.neg[k])
        return np.asarray(cv2.add(out, self.pos[k]), np.uint8)


def _light_gain(keys: list[tuple[float, float]], t: float) -> float:
    if not keys:
        return 1.0
    ts = [k[0] for k in keys]
    return float(np.interp(t, ts, [k[1] for k in keys]))


def _in_window(windows: list[tuple[float, float]], t: float) -> bool:
    return any(a <= t < b for a, b in windows)


class ShelfCameraRenderer:
    """Frames of one shelf camera: lanes whose units change, arms that reach in."""

    def __init__(self, store: Store, sc: Scenario, camera: Camera, cam_index: int) -> None:
        self.store = store
        self.sc = sc
        self.camera = camera
        self.cam_index = cam_index
        lane_ids = list(camera.lanes)
        self.layout = ShelfLayout.build(
            camera,
            {lid: [store.lanes[lid].sku] for lid in lane_ids},
            {lid: store.lanes[lid].capacity for lid in lane_ids},
            store.products,
        )
        self.background = draw_background(self.layout)
        self.reaches = [r for r in sc.reaches if r.lane_id in camera.lanes]
        self.contents: dict[str, list[Unit]] = {lid: list(sc.initial[lid]) for lid in lane_ids}
        # lane changes in time order: (t, lane, units removed, units added)
        self.changes = sorted(
            (
                (
                    r.t_grasp,
                    r.lane_id,
                    r.units if r.kind == "pick" else (),
                    r.units if r.kind == "put" else (),
                )
                for r in self.reaches
                if r.units
            ),
            key=lambda c: c[0],
        )
        self.fault = sc.camera_faults.get(camera.id)
        rng = _camera_rng(sc, cam_index)
        self.rng = rng
        self.light = _base_lighting(rng)
        self.noise = _Noise(rng, *camera.resolution, sd=float(rng.uniform(1.5, 3.5)))
        self._people = {s.index: s for s in sc.shoppers}
        self._along_x = self._along_to_x()

    def _along_to_x(self) -> tuple[float, float]:
        """Linear map from metres along the gondola front to image x at the bottom edge."""
        pts = []
        for lid, poly in self.camera.lanes.items():
            q = np.asarray(poly, np.float64)
            pts.append((lane_column_along(self.store, lid), float((q[2, 0] + q[3, 0]) / 2)))
        pts.sort()
        (a0, x0), (a1, x1) = pts[0], pts[-1]
        if abs(a1 - a0) < 1e-6:
            return (x0, 300.0)
        scale = (x1 - x0) / (a1 - a0)
        return (x0 - a0 * scale, scale)

    def _static(self, gain: float) -> U8:
        cv = Canvas(self.background.copy())
        for lid, view in self.layout.lanes.items():
            draw_units(
                cv, self.layout, view, [u.sku for u in self.contents[lid]], self.store.products
            )
            draw_lip(
                cv, self.layout, view, price_text(self.store.products[self.store.lanes[lid].sku])
            )
        return cv.img

    def arm_pose(self, r: Reach, t: float) -> tuple[ArmPose, float] | None:
        """The arm of reach r at time t and its hand speed (px/s), or None if not out."""
        if not (r.t_start <= t <= r.t_end):
            return None
        w, h = self.camera.resolution
        view = self.layout.lanes[r.lane_id]
        gondola = self.store.lanes[r.lane_id].gondola
        along = along_of_point(self.store, gondola, r.body_xy) + 0.15
        ex = float(np.clip(self._along_x[0] + along * self._along_x[1], -80, w + 80))
        entry = (ex, h + ARM_BELOW_PX)
        edge = view.point(r.target_u, 1.0)
        target = view.point(r.target_u, r.target_v)
        hand, speed = _hand_path(r, t, entry, edge, target)
        person = self._people[r.shopper]
        holding = r.units and (
            (r.kind == "pick" and t >= r.t_grasp) or (r.kind == "put" and t < r.t_grasp)
        )
        held = tuple(u.sku for u in r.units) if holding else ()
        closed = 0.85 if held else (0.55 if r.t_in + ARM_IN_S <= t <= r.t_out - ARM_IN_S else 0.15)
        width = 70.0 * self.layout.px_per_mm * 1.25
        return ArmPose(
            entry, hand, width, person.sleeve, person.skin, person.long_sleeve, held, closed
        ), speed

    def frames(self) -> Iterator[Frame]:
        times = frame_times(self.camera, self.sc.duration_s, self.cam_index)
        w, h = self.camera.resolution
        ci = 0
        static_key: tuple[int, float] | None = None
        static_lit: U8 = self.background
        static_raw: U8 = self.background
        version = 0
        for i, t in enumerate(times):
            t = float(t)
            while ci < len(self.changes) and self.changes[ci][0] <= t:
                _, lid, removed, added = self.changes[ci]
                gone = {u.uid for u in removed}
                self.contents[lid] = [u for u in self.contents[lid] if u.uid not in gone]
                self.contents[lid].extend(added)
                version += 1
                ci += 1
            fault = self.fault
            if (
                fault
                and fault.drop
                and any(a <= t < b and self.rng.random() < p for a, b, p in fault.drop)
            ):
                yield Frame(i, t, None)
                continue
            gain = round(_light_gain(fault.light_keys if fault else [], t), 3)
            if static_key != (version, gain):
                if static_key is None or static_key[0] != version:
                    static_raw = self._static(gain)
                light = _scaled(self.light, gain)
                static_lit = _lit(static_raw, light)
                static_key = (version, gain)
            light = _scaled(self.light, gain)
            arms = [(r, p) for r in self.reaches if (p := self.arm_pose(r, t)) is not None]
            if arms:
                raw = static_raw.copy()
                cv = Canvas(raw)
                x0, y0, x1, y1 = w, h, 0, 0
                for _r, (pose, _speed) in sorted(arms, key=lambda a: -a[1][0].entry[1]):
                    draw_arm(cv, pose, self.layout, self.store.products)
                    bx0, by0, bx1, by1 = _arm_box(pose, self.layout.px_per_mm, w, h)
                    x0, y0, x1, y1 = min(x0, bx0), min(y0, by0), max(x1, bx1), max(y1, by1)
                img = static_lit.copy()
                if x1 > x0 and y1 > y0:
                    crop = raw[y0:y1, x0:x1]
                    g = gain_map(w, h, light)[y0:y1, x0:x1]
                    lit = np.clip(crop.astype(np.float32) * g, 0, 255).astype(np.uint8)
                    fast = max(arms, key=lambda a: a[1][1])
                    speed = fast[1][1]
                    blur = int(min(4.0, speed / self.camera.fps * 0.25))
                    if blur >= 1:
                        # blur only the moving arm, not the shelf behind it
                        pose = fast[1][0]
                        ang = math.degrees(
                            math.atan2(pose.hand[1] - pose.entry[1], pose.hand[0] - pose.entry[0])
                        )
                        moved = np.any(crop != static_raw[y0:y1, x0:x1], axis=2)
                        mask = cv2.dilate(
                            moved.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=blur
                        )
                        blurred = cv2.filter2D(lit, -1, motion_kernel(blur, ang))
                        lit = np.where(mask[..., None] > 0, blurred, lit).astype(np.uint8)
                    img[y0:y1, x0:x1] = lit
            else:
                img = static_lit.copy()
            if fault and _in_window(fault.dark, t):
                img = (img // 16).astype(np.uint8)
            yield Frame(i, t, self.noise.apply(img))


def _scaled(light: Lighting, gain: float) -> Lighting:
    return Lighting(
        light.gain * gain, light.tint, light.spot_xy, light.spot_radius, light.spot_strength
    )


def _lit(img: U8, light: Lighting) -> U8:
    h, w = img.shape[:2]
    return np.asarray(np.clip(img.astype(np.float32) * gain_map(w, h, light), 0, 255), np.uint8)


def _arm_box(pose: ArmPose, px_per_mm: float, w: int, h: int) -> tuple[int, int, int, int]:
    pad = pose.width_px * 1.6 + 270 * px_per_mm * 1.2
    xs = (pose.entry[0], pose.hand[0])
    ys = (pose.entry[1], pose.hand[1])
    x0 = int(max(0, min(xs) - pad))
    x1 = int(min(w, max(xs) + pad))
    y0 = int(max(0, min(ys) - pad))
    y1 = int(min(h, max(ys) + pad))
    return x0, y0, x1, y1


def _hand_path(
    r: Reach,
    t: float,
    entry: tuple[float, float],
    edge: tuple[float, float],
    target: tuple[float, float],
) -> tuple[tuple[float, float], float]:
    """Palm position at t: entry -> lane edge (at t_in) -> target, dwell, and back."""

    def lerp(a: tuple[float, float], b: tuple[float, float], f: float) -> tuple[float, float]:
        e = 0.5 - 0.5 * math.cos(math.pi * min(1.0, max(0.0, f)))
        return (a[0] + (b[0] - a[0]) * e, a[1] + (b[1] - a[1]) * e)

    def dist(a: tuple[float, float], b: tuple[float, float]) -> float:
        return math.hypot(b[0] - a[0], b[1] - a[1])

    t_at = r.t_in + ARM_IN_S
    t_leave = r.t_out - ARM_IN_S
    if t < r.t_in:
        f = (t - r.t_start) / (r.t_in - r.t_start)
        return lerp(entry, edge, f), 1.6 * dist(entry, edge) / (r.t_in - r.t_start)
    if t < t_at:
        return lerp(edge, target, (t - r.t_in) / ARM_IN_S), dist(edge, target) / ARM_IN_S
    if t <= t_leave:
        wig = 2.0 * math.sin(7.0 * (t - t_at))
        return (target[0] + wig, target[1] + 0.5 * wig), 10.0
    if t <= r.t_out:
        return lerp(target, edge, (t - t_leave) / ARM_IN_S), dist(edge, target) / ARM_IN_S
    f = (t - r.t_out) / (r.t_end - r.t_out)
    return lerp(edge, entry, f), 1.6 * dist(entry, edge) / (r.t_end - r.t_out)


class OverheadCameraRenderer:
    """Frames of one overhead camera: the floor and the shoppers seen from above."""

    def __init__(self, store: Store, sc: Scenario, camera: Camera, cam_index: int) -> None:
        self.store = store
        self.sc = sc
        self.camera = camera
        self.cam_index = cam_index
        self.view = FloorView(camera, store)
        rng = _camera_rng(sc, cam_index)
        self.rng = rng
        light = _base_lighting(rng)
        self.floor = _lit(self.view.draw_floor(seed=cam_index), light)
        self.noise = _Noise(rng, *camera.resolution, sd=float(rng.uniform(1.5, 3.0)))
        self.fault = sc.camera_faults.get(camera.id)

    def poses(self, t: float) -> list[tuple[int, PersonPose]]:
        out = []
        for s, tl in zip(self.sc.shoppers, self.sc.timelines, strict=True):
            p = tl.pose(t)
            if p is None:
                continue
            xy, heading, stride = p
            reach = None
            for r in tl.reaches:
                if r.t_start <= t <= r.t_end:
                    reach = self.store.lane_front_xy_m(r.lane_id)
            for hnd in tl.handoffs:
                if abs(t - hnd.t) < HANDOFF_S / 2:
                    other = self.sc.timelines[hnd.taker].pose(t)
                    if other is not None:
                        reach = other[0]
            out.append((s.index, PersonPose(xy, heading, reach, stride)))
        return out

    def frames(self) -> Iterator[Frame]:
        times = frame_times(self.camera, self.sc.duration_s, self.cam_index)
        for i, t in enumerate(times):
            t = float(t)
            fault = self.fault
            if (
                fault
                and fault.drop
                and any(a <= t < b and self.rng.random() < p for a, b, p in fault.drop)
            ):
                yield Frame(i, t, None)
                continue
            img = self.floor.copy()
            cv = Canvas(img)
            for idx, pose in self.poses(t):
                draw_person(cv, self.view, self.sc.shoppers[idx].look, pose)
            gain = _light_gain(fault.light_keys if fault else [], t)
            if abs(gain - 1.0) > 1e-3:
                img = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
            if fault and _in_window(fault.dark, t):
                img = (img // 16).astype(np.uint8)
            yield Frame(i, t, self.noise.apply(img))


def renderer_for(
    store: Store, sc: Scenario, camera_id: str
) -> ShelfCameraRenderer | OverheadCameraRenderer:
    cams = store.cfg.cameras
    idx = next(i for i, c in enumerate(cams) if c.id == camera_id)
    cam = cams[idx]
    if cam.kind == "shelf":
        return ShelfCameraRenderer(store, sc, cam, idx)
    return OverheadCameraRenderer(store, sc, cam, idx)
