"""Floor geometry for the simulator: walking routes around gondolas, where shoppers stand,
and which shelf camera sees a lane.

Routes come from a small visibility graph over the corners of the gondolas (grown by a
clearance), so shoppers walk the aisles instead of through shelves.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from walkout.config import Store

F64 = npt.NDArray[np.float64]
Point = tuple[float, float]

CLEARANCE_M = 0.35  # how far from a shelf a route keeps
AISLE_M = 1.0  # how far from a shelf's corners a route turns where the floor has room
STAND_OFF_M = 0.45  # where a shopper stands in front of the lane they reach into


@dataclass(frozen=True)
class Obstacle:
    corners: F64  # 4x2, floor metres


def gondola_normal(store: Store, gondola_id: str) -> tuple[F64, F64, F64]:
    """(front left, front right, unit normal pointing into the shelf) of a gondola."""
    g = store.gondolas[gondola_id]
    a = np.asarray(g.front_m[0], np.float64)
    b = np.asarray(g.front_m[1], np.float64)
    d = (b - a) / np.linalg.norm(b - a)
    return a, b, np.array([-d[1], d[0]])


def obstacles(store: Store, grow_m: float) -> list[Obstacle]:
    out = []
    for g in store.cfg.gondolas:
        a, b, n = gondola_normal(store, g.id)
        d = (b - a) / np.linalg.norm(b - a)
        depth = g.depth_m
        pts = np.array(
            [
                a - d * grow_m - n * grow_m,
                b + d * grow_m - n * grow_m,
                b + d * grow_m + n * (depth + grow_m),
                a - d * grow_m + n * (depth + grow_m),
            ]
        )
        out.append(Obstacle(pts))
    return out


def _seg_hits_poly(p: F64, q: F64, poly: F64) -> bool:
    """Whether segment p-q passes through the inside of a convex polygon (Cyrus-Beck clip)."""
    d = q - p
    t0, t1 = 0.0, 1.0
    area = 0.0
    for i in range(len(poly)):
        a, b = poly[i], poly[(i + 1) % len(poly)]
        area += a[0] * b[1] - b[0] * a[1]
    sign = 1.0 if area > 0 else -1.0
    for i in range(len(poly)):
        a, b = poly[i], poly[(i + 1) % len(poly)]
        e = b - a
        # inward normal of edge a-b
        n = np.array([-e[1], e[0]]) * sign
        num = float(np.dot(n, p - a))
        den = float(np.dot(n, d))
        if abs(den) < 1e-12:
            if num <= 0:
                return False  # parallel and outside this edge
            continue
        t = -num / den
        if den > 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 >= t1 - 1e-9:
            return False
    return t1 - t0 > 1e-9


class Router:
    """Shortest walking routes on the floor that keep clear of the gondolas."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.blocks = [o.corners for o in obstacles(store, CLEARANCE_M - 0.05)]

        def corners(grow_m: float) -> list[F64]:
            return [c for o in obstacles(store, grow_m) for c in o.corners if self.on_floor(c)]

        self.nodes = corners(CLEARANCE_M)
        # Round a shelf's end wide, behind whoever stands at its end lane, where there is room.
        self.wide_nodes = corners(AISLE_M)
        self._cache: dict[tuple[Point, Point], list[Point]] = {}

    def _clear(self, p: F64, q: F64) -> bool:
        return not any(_seg_hits_poly(p, q, b) for b in self.blocks)

    def on_floor(self, p: Point | F64) -> bool:
        """Whether a point is on the floor, 0.1 m in from its walls."""
        w, d = self.store.cfg.floor.width_m, self.store.cfg.floor.depth_m
        return bool(0.1 <= p[0] <= w - 0.1 and 0.1 <= p[1] <= d - 0.1)

    def clear(self, p: Point, q: Point) -> bool:
        """Whether the straight walk from p to q keeps clear of every shelf."""
        return self._clear(np.asarray(p, np.float64), np.asarray(q, np.float64))

    def route(self, start: Point, goal: Point) -> list[Point]:
        """Waypoints from start to goal (both included)."""
        key = (start, goal)
        got = self._cache.get(key)
        if got is None:
            got = self._route(start, goal)
            self._cache[key] = got
        return list(got)

    def _route(self, start: Point, goal: Point) -> list[Point]:
        s, g = np.asarray(start, np.float64), np.asarray(goal, np.float64)
        if self._clear(s, g):
            return [start, goal]
        return (
            self._search(start, goal, self.wide_nodes)
            or self._search(start, goal, self.nodes)
            or [start, goal]
        )  # no clear route: walk straight (a config with walled aisles)

    def _search(self, start: Point, goal: Point, nodes: list[F64]) -> list[Point] | None:
        s, g = np.asarray(start, np.float64), np.asarray(goal, np.float64)
        pts = [s, g, *nodes]
        dist = {0: 0.0}
        prev: dict[int, int] = {}
        heap = [(0.0, 0)]
        done: set[int] = set()
        while heap:
            du, u = heapq.heappop(heap)
            if u in done:
                continue
            done.add(u)
            if u == 1:
                break
            for v in range(len(pts)):
                if v in done or v == u:
                    continue
                if not self._clear(pts[u], pts[v]):
                    continue
                nd = du + float(np.linalg.norm(pts[u] - pts[v]))
                if nd < dist.get(v, math.inf):
                    dist[v] = nd
                    prev[v] = u
                    heapq.heappush(heap, (nd, v))
        if 1 not in prev:
            return None
        path = [1]
        while path[-1] != 0:
            path.append(prev[path[-1]])
        return [(float(pts[i][0]), float(pts[i][1])) for i in reversed(path)]


def stand_point(store: Store, lane_id: str, lateral_m: float = 0.0) -> Point:
    """Where a shopper stands to reach into a lane (in the aisle, facing the shelf)."""
    lane = store.lanes[lane_id]
    a, b, n = gondola_normal(store, lane.gondola)
    d = (b - a) / np.linalg.norm(b - a)
    fx, fy = store.lane_front_xy_m(lane_id)
    p = np.array([fx, fy]) - n * STAND_OFF_M + d * lateral_m
    return float(p[0]), float(p[1])


def facing_shelf(store: Store, lane_id: str) -> float:
    """Heading (radians, floor frame) of someone facing the lane's gondola."""
    _, _, n = gondola_normal(store, store.lanes[lane_id].gondola)
    return math.atan2(n[1], n[0])


def camera_of_lane(store: Store) -> dict[str, str]:
    """Each lane's shelf camera (the first in config order that sees it)."""
    out: dict[str, str] = {}
    for cam in store.cfg.cameras:
        if cam.kind != "shelf":
            continue
        for lane_id in cam.lanes:
            out.setdefault(lane_id, cam.id)
    return out


def lane_column_along(store: Store, lane_id: str) -> float:
    """Position of a lane's centre along its gondola front, in metres from the left end."""
    lane = store.lanes[lane_id]
    g = store.gondolas[lane.gondola]
    a, b, _ = gondola_normal(store, g.id)
    return float(np.linalg.norm(b - a)) * (lane.column + 0.5) / g.columns


def along_of_point(store: Store, gondola_id: str, xy: Point) -> float:
    """Position of a floor point projected on a gondola front, metres from the left end."""
    a, b, _ = gondola_normal(store, gondola_id)
    d = (b - a) / np.linalg.norm(b - a)
    return float(np.dot(np.asarray(xy) - a, d))
