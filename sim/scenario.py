"""Seeded scenarios: shoppers, their walks, reaches into lanes, and what ends up in their bags.

A scenario is planned in three steps, all from one ``numpy.random.Generator(PCG64(seed))``:

1. a *family* (``single``, ``busy``, ``same-shelf`` ...) writes shopper specs: account, group,
   entry time, stops (lane, reaches, a sync key for things that must happen together);
2. the scheduler turns specs into timelines: walking keyframes along routes around the
   gondolas, and reach timings (arm out, palm in the lane polygon, grasp, palm out, arm back);
3. the resolver replays every grasp and hand-off in time order against the lane contents
   (physical units, each with its own weight) and the shoppers' hands, so picks never take
   from an empty lane, puts never overfill one, and the expected receipts are what each visit
   really carries out.

No wall clock and no global random state enter, so a seed always gives the same scenario.
"""

from __future__ import annotations

import bisect
import itertools
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from sim.dataset import lookalike_pairs
from sim.floorplan import (
    Point,
    Router,
    along_of_point,
    camera_of_lane,
    facing_shelf,
    gondola_normal,
    stand_point,
)
from sim.overhead import PersonLook
from sim.shelf import BGR, random_arm_colours
from walkout.config import Store

START_TS_NS = 1_767_261_600_000_000_000  # 2026-01-01T10:00:00Z, the simulated clock's origin
ARM_OUT_S = 0.35  # arm from the side to the lane front
ARM_IN_S = 0.2  # lane front to the target unit
REST_S = 0.35  # pause between two reaches
HANDOFF_S = 1.2  # two shoppers face to face while one hands the other an item
# Two people standing at a shelf keep at least this far apart (body centres; shoulders are
# 0.4-0.5 m wide): whoever comes second stands beside the first, not inside them.
MIN_APART_M = 0.5
# Shoppers walk from shelf to shelf along the aisle this far behind where they stand, stepping
# in and back out, not along the line where others stand at the shelf (through their bodies).
STEP_BACK_M = 0.55
OUTSIDE_M = 0.9  # how far outside the gate line a shopper appears and vanishes
ENTRY_GAP_S = 2.0  # least time between two visits scanning in at the entry gate

Kind = Literal["pick", "put", "touch"]


@dataclass(frozen=True)
class Unit:
    """One physical item: its own weight, so plates move by exactly what moved."""

    uid: int
    sku: str
    weight_g: float


@dataclass
class ReachSpec:
    kind: Kind
    quantity: int = 1
    lane_id: str | None = None  # default: the stop's lane
    put_ref: tuple[int, int] | None = None  # (stop, reach) of this shopper's earlier pick
    tag: str = ""


@dataclass
class StopSpec:
    lane_id: str | None  # None: a meeting point in the aisle
    reaches: list[ReachSpec] = field(default_factory=list)
    lateral_m: float = 0.0
    sync: str | None = None
    meet_xy: Point | None = None
    handoff_to: int | None = None  # shopper index that receives what this one holds
    handoff_ref: tuple[int, int] | None = None
    handoff_from: int | None = None  # shopper index that hands this one something here
    optional: bool = True


@dataclass
class ShopperSpec:
    index: int
    shopper_id: str
    account_id: str
    group_id: str
    enter_at_s: float
    speed_mps: float
    look: PersonLook
    sleeve: BGR
    skin: BGR
    long_sleeve: bool
    gate_x_m: float
    exit_x_m: float
    stops: list[StopSpec] = field(default_factory=list)


@dataclass
class Reach:
    """A scheduled arm movement into one lane (times in seconds from the start)."""

    shopper: int
    stop: int
    index: int
    lane_id: str
    camera_id: str
    kind: Kind
    quantity: int
    t_start: float
    t_in: float
    t_grasp: float
    t_out: float
    t_end: float
    target_u: float
    target_v: float
    body_xy: Point
    tag: str
    put_ref: tuple[int, int] | None
    units: tuple[Unit, ...] = ()


@dataclass(frozen=True)
class Handoff:
    t: float
    giver: int
    taker: int
    ref: tuple[int, int] | None


@dataclass
class Timeline:
    """Walking keyframes (t, x, y, heading) and the reaches of one shopper."""

    keys_t: list[float]
    keys_xy: list[Point]
    keys_heading: list[float]
    reaches: list[Reach]
    entry_s: float
    exit_s: float
    sync_arrivals: dict[str, float]
    exit_arrival_s: float
    handoffs: list[Handoff]

    def pose(self, t: float) -> tuple[Point, float, float] | None:
        """(xy, heading, stride) at time t, or None while outside the store."""
        if t < self.keys_t[0] or t > self.keys_t[-1]:
            return None
        i = max(0, bisect.bisect_right(self.keys_t, t) - 1)
        if i >= len(self.keys_t) - 1:
            return self.keys_xy[-1], self.keys_heading[-1], 0.0
        t0, t1 = self.keys_t[i], self.keys_t[i + 1]
        a, b = self.keys_xy[i], self.keys_xy[i + 1]
        f = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        x = a[0] + (b[0] - a[0]) * f
        y = a[1] + (b[1] - a[1]) * f
        moving = math.hypot(b[0] - a[0], b[1] - a[1]) > 1e-6
        stride = math.sin(2 * math.pi * math.hypot(x - a[0], y - a[1]) / 1.4) if moving else 0.0
        return (x, y), self.keys_heading[i], stride


@dataclass
class CameraFault:
    dark: list[tuple[float, float]] = field(default_factory=list)  # goes dark (black frames)
    drop: list[tuple[float, float, float]] = field(default_factory=list)  # (t0, t1, p drop)
    light_keys: list[tuple[float, float]] = field(default_factory=list)  # (t, gain)


@dataclass(frozen=True)
class PlateFault:
    drift_g_per_s: float
    noise_mult: float


@dataclass
class Scenario:
    family: str
    seed: int
    duration_s: float
    start_ts_ns: int
    shoppers: list[ShopperSpec]
    timelines: list[Timeline]
    reaches: list[Reach]  # resolved, sorted by t_in
    handoffs: list[Handoff]
    initial: dict[str, list[Unit]]  # lane -> units, slot order
    carried_out: dict[str, list[Unit]]  # group -> units taken out of the store
    camera_faults: dict[str, CameraFault]
    plate_faults: dict[str, PlateFault]
    lane_camera: dict[str, str]

    def ts_ns(self, t_s: float) -> int:
        return self.start_ts_ns + round(t_s * 1e9)


class ScenarioError(ValueError):
    """A scenario cannot be planned with these arguments."""


# ---------------------------------------------------------------- scheduling


def _ease(f: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * min(1.0, max(0.0, f)))


def _walk(
    keys: list[tuple[float, Point, float]], pts: list[Point], t: float, speed: float
) -> float:
    """Append walking keyframes along pts (pts[0] is the current position); returns the time."""
    for a, b in itertools.pairwise(pts):
        dist = math.hypot(b[0] - a[0], b[1] - a[1])
        if dist < 1e-6:
            continue
        heading = math.atan2(b[1] - a[1], b[0] - a[0])
        keys[-1] = (keys[-1][0], keys[-1][1], heading)
        t += dist / speed
        keys.append((t, b, heading))
    return t


def _schedule(
    store: Store,
    router: Router,
    spec: ShopperSpec,
    rng_dwell: list[float],
    min_start: dict[str, float],
    exit_min: float | None,
    lane_camera: dict[str, str],
) -> Timeline:
    entry_y = gate_y(store, "entry")
    exit_y = gate_y(store, "exit")
    start = (spec.gate_x_m, entry_y - OUTSIDE_M)
    t = spec.enter_at_s - OUTSIDE_M / spec.speed_mps
    keys: list[tuple[float, Point, float]] = [(t, start, math.pi / 2)]
    t = _walk(keys, [start, (spec.gate_x_m, entry_y)], t, spec.speed_mps)
    entry_s = t
    pos = (spec.gate_x_m, entry_y)
    t = _walk(keys, [pos, (spec.gate_x_m, entry_y + 0.5)], t, spec.speed_mps)
    pos = (spec.gate_x_m, entry_y + 0.5)
    reaches: list[Reach] = []
    handoffs: list[Handoff] = []
    arrivals: dict[str, float] = {}
    dwell_i = 0
    at_lane: str | None = None  # the lane whose stand point ``pos`` is
    for si, stop in enumerate(spec.stops):
        if stop.lane_id is not None:
            goal = stand_point(store, stop.lane_id, stop.lateral_m)
            face = facing_shelf(store, stop.lane_id)
        else:
            assert stop.meet_xy is not None
            goal = stop.meet_xy
            face = 0.0
        path = _aisle_route(store, router, pos, at_lane, goal, stop.lane_id)
        t = _walk(keys, path, t, spec.speed_mps)
        if goal != pos:  # a meeting at the stand point just used leaves ``at_lane`` as it was
            at_lane = stop.lane_id
        pos = goal
        if stop.sync is not None:
            arrivals[stop.sync] = t
            t = max(t, min_start.get(stop.sync, t))
        partner = stop.handoff_to if stop.handoff_to is not None else stop.handoff_from
        if stop.lane_id is None and partner is not None:
            face = 0.0 if partner > spec.index else math.pi  # towards each other
        keys[-1] = (keys[-1][0], keys[-1][1], face)
        keys.append((t, pos, face))
        if stop.handoff_to is not None:
            t += HANDOFF_S / 2
            handoffs.append(Handoff(t, spec.index, stop.handoff_to, stop.handoff_ref))
            t += HANDOFF_S / 2
        elif stop.handoff_from is not None:
            t += HANDOFF_S  # the taker stays until the item is in their hand
        for ri, rs in enumerate(stop.reaches):
            lane_id = rs.lane_id or stop.lane_id
            assert lane_id is not None
            dwell = rng_dwell[dwell_i % len(rng_dwell)]
            dwell_i += 1
            t_start = t
            t_in = t_start + ARM_OUT_S
            t_grasp = t_in + ARM_IN_S + dwell / 2
            t_out = t_in + 2 * ARM_IN_S + dwell
            t_end = t_out + ARM_OUT_S
            u = 0.2 + 0.6 * ((spec.index * 7 + si * 3 + ri) % 5) / 4
            reaches.append(
                Reach(
                    spec.index,
                    si,
                    ri,
                    lane_id,
                    lane_camera[lane_id],
                    rs.kind,
                    rs.quantity,
                    t_start,
                    t_in,
                    t_grasp,
                    t_out,
                    t_end,
                    u,
                    0.62,
                    pos,
                    rs.tag,
                    rs.put_ref,
                )
            )
            t = t_end + REST_S
        keys.append((t, pos, face))
    exit_front = (spec.exit_x_m, exit_y + 0.6)
    t = _walk(keys, _aisle_route(store, router, pos, at_lane, exit_front, None), t, spec.speed_mps)
    exit_arrival = t
    if exit_min is not None and exit_min > t:
        keys.append((exit_min, exit_front, -math.pi / 2))
        t = exit_min
    t = _walk(keys, [exit_front, (spec.exit_x_m, exit_y)], t, spec.speed_mps)
    exit_s = t
    t = _walk(
        keys, [(spec.exit_x_m, exit_y), (spec.exit_x_m, exit_y - OUTSIDE_M)], t, spec.speed_mps
    )
    return Timeline(
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        reaches,
        entry_s,
        exit_s,
        arrivals,
        exit_arrival,
        handoffs,
    )


def _aisle_route(
    store: Store,
    router: Router,
    pos: Point,
    from_lane: str | None,
    goal: Point,
    to_lane: str | None,
) -> list[Point]:
    """Waypoints from pos to goal: out from a shelf's stand point into the aisle first, and
    into the goal's stand point from the aisle last (see STEP_BACK_M)."""
    if goal == pos:
        return [pos]
    a, b = pos, goal
    if from_lane is not None:
        a = _stepped_back(store, router, from_lane, pos)
    if to_lane is not None:
        b = _stepped_back(store, router, to_lane, goal)
    path = [pos] if a != pos else []
    path += router.route(a, b)
    return [*path, goal] if b != goal else path


def _stepped_back(store: Store, router: Router, lane_id: str, xy: Point) -> Point:
    """The aisle point behind a stand point; the stand point itself where a wall or another
    shelf is in the way."""
    _, _, n = gondola_normal(store, store.lanes[lane_id].gondola)
    back = (xy[0] - float(n[0]) * STEP_BACK_M, xy[1] - float(n[1]) * STEP_BACK_M)
    return back if router.on_floor(back) and router.clear(xy, back) else xy


def gate_y(store: Store, kind: str) -> float:
    for g in store.cfg.gates:
        if g.kind == kind:
            return float((g.line_m[0][1] + g.line_m[1][1]) / 2)
    raise ScenarioError(f"the store config has no {kind} gate; add one under 'gates'")


def _gate_x(store: Store, kind: str, rng: np.random.Generator) -> float:
    for g in store.cfg.gates:
        if g.kind == kind:
            x0, x1 = sorted((g.line_m[0][0], g.line_m[1][0]))
            return float(rng.uniform(x0 + 0.2 * (x1 - x0), x1 - 0.2 * (x1 - x0)))
    raise ScenarioError(f"the store config has no {kind} gate; add one under 'gates'")


def schedule_all(
    store: Store, specs: list[ShopperSpec], dwell: list[list[float]], lane_camera: dict[str, str]
) -> list[Timeline]:
    """Everyone's timeline; a shopper who would stand where another already stands at a
    shelf (two lanes one above the other share a stand point) steps aside and plans again."""
    tls = _schedule_once(store, specs, dwell, lane_camera)
    for _ in range(8):
        if not _step_aside(store, specs, tls):
            break
        tls = _schedule_once(store, specs, dwell, lane_camera)
    return tls


def _step_aside(store: Store, specs: list[ShopperSpec], tls: list[Timeline]) -> bool:
    """Move the later of the first two shoppers standing closer than MIN_APART_M at the same
    time beside the other, along the shelf; False when nobody stands in anybody."""
    stands: list[tuple[float, float, int, int, Point]] = []  # start, end, shopper, stop, body
    for i, tl in enumerate(tls):
        spans: dict[int, list[Reach]] = {}
        for r in tl.reaches:
            spans.setdefault(r.stop, []).append(r)
        for stop, rs in spans.items():
            start = min(r.t_start for r in rs)
            stands.append((start, max(r.t_end for r in rs) + REST_S, i, stop, rs[0].body_xy))
    stands.sort()
    for k, (start, _, i, stop, body) in enumerate(stands):
        for _, o_end, j, _, other in stands[:k]:
            if j == i or o_end <= start or math.dist(body, other) >= MIN_APART_M:
                continue
            spec = specs[i].stops[stop]
            assert spec.lane_id is not None
            lane = store.lanes[spec.lane_id]
            base = along_of_point(store, lane.gondola, stand_point(store, spec.lane_id))
            rel = along_of_point(store, lane.gondola, other) - base
            gap = MIN_APART_M + 0.05
            spec.lateral_m = min(rel - gap, rel + gap, key=abs)
            return True
    return False


def _schedule_once(
    store: Store, specs: list[ShopperSpec], dwell: list[list[float]], lane_camera: dict[str, str]
) -> list[Timeline]:
    router = Router(store)
    mins: dict[str, float] = {}
    tls = [_schedule(store, router, s, dwell[s.index], mins, None, lane_camera) for s in specs]
    for _ in range(2):  # sync stops start when the last shopper of the key arrives
        for tl in tls:
            for key, t in tl.sync_arrivals.items():
                mins[key] = max(mins.get(key, 0.0), t)
        tls = [_schedule(store, router, s, dwell[s.index], mins, None, lane_camera) for s in specs]
    exit_min: dict[str, float] = {}
    for s, tl in zip(specs, tls, strict=True):
        exit_min[s.group_id] = max(exit_min.get(s.group_id, 0.0), tl.exit_arrival_s)
    return [
        _schedule(
            store,
            router,
            s,
            dwell[s.index],
            mins,
            exit_min[s.group_id] + 0.3 * _group_rank(specs, s),
            lane_camera,
        )
        for s in specs
    ]


def _group_rank(specs: list[ShopperSpec], spec: ShopperSpec) -> int:
    return [s.index for s in specs if s.group_id == spec.group_id].index(spec.index)


# ---------------------------------------------------------------- resolving


def _initial_units(store: Store, rng: np.random.Generator) -> dict[str, list[Unit]]:
    out: dict[str, list[Unit]] = {}
    uid = 0
    for lane in store.cfg.lanes:
        p = store.products[lane.sku]
        units = []
        for _ in range(lane.initial_count):
            w = float(rng.normal(p.unit_weight_g, p.weight_sd_g))
            units.append(Unit(uid, lane.sku, round(max(1.0, w), 2)))
            uid += 1
        out[lane.id] = units
    return out


def resolve(
    store: Store,
    specs: list[ShopperSpec],
    timelines: list[Timeline],
    initial: dict[str, list[Unit]],
) -> tuple[list[Reach], list[Handoff], dict[str, list[Unit]]]:
    """Apply every grasp and hand-off in time order; returns reaches with their units."""
    lanes = {k: list(v) for k, v in initial.items()}
    held: dict[int, list[Unit]] = {s.index: [] for s in specs}
    got: dict[tuple[int, int, int], tuple[Unit, ...]] = {}
    events: list[tuple[float, int, object]] = []
    for tl in timelines:
        for r in tl.reaches:
            events.append((r.t_grasp, 0, r))
        for h in tl.handoffs:
            events.append((h.t, 1, h))
    events.sort(key=lambda e: (e[0], e[1], _event_key(e[2])))
    out_reaches: list[Reach] = []
    out_handoffs: list[Handoff] = []
    for _, _, ev in events:
        if isinstance(ev, Handoff):
            give = held[ev.giver]
            if ev.ref is not None:
                want = {u.uid for u in got.get((ev.giver, *ev.ref), ())}
                moving = [u for u in give if u.uid in want]
            else:
                moving = list(give)
            if not moving:
                continue
            held[ev.giver] = [u for u in give if u not in moving]
            held[ev.taker].extend(moving)
            out_handoffs.append(ev)
            continue
        assert isinstance(ev, Reach)
        r = ev
        lane = lanes[r.lane_id]
        cap = store.lanes[r.lane_id].capacity
        units: tuple[Unit, ...] = ()
        if r.kind == "pick" and lane:
            sku = lane[-1].sku
            n = 0
            while n < min(r.quantity, len(lane)) and lane[-1 - n].sku == sku:
                n += 1
            units = tuple(lane[len(lane) - n :])
            del lane[len(lane) - n :]
            held[r.shopper].extend(units)
        elif r.kind == "put" and r.put_ref is not None:
            want = {u.uid for u in got.get((r.shopper, *r.put_ref), ())}
            mine = [u for u in held[r.shopper] if u.uid in want]
            room = cap - len(lane)
            units = tuple(mine[: max(0, room)])
            # units of one put share one SKU (the truth line names one SKU)
            if units:
                units = tuple(u for u in units if u.sku == units[0].sku)
            lane.extend(units)
            held[r.shopper] = [u for u in held[r.shopper] if u not in units]
        if r.kind in ("pick", "put") and not units:
            r.kind = "touch"
        r.quantity = len(units)
        r.units = units
        got[(r.shopper, r.stop, r.index)] = units
        out_reaches.append(r)
    carried: dict[str, list[Unit]] = {}
    for s in specs:
        carried.setdefault(s.group_id, []).extend(held[s.index])
    out_reaches.sort(key=lambda r: (r.t_in, r.shopper, r.stop, r.index))
    return out_reaches, out_handoffs, carried


def _event_key(ev: object) -> tuple[int, int, int]:
    if isinstance(ev, Reach):
        return (ev.shopper, ev.stop, ev.index)
    assert isinstance(ev, Handoff)
    return (ev.giver, ev.taker, 0)


# ---------------------------------------------------------------- families


class _Builder:
    def __init__(self, store: Store, rng: np.random.Generator, duration_s: float) -> None:
        self.store = store
        self.rng = rng
        self.duration_s = duration_s
        self.specs: list[ShopperSpec] = []
        self.groups = 0
        self.camera_faults: dict[str, CameraFault] = {}
        self.plate_faults: dict[str, PlateFault] = {}
        self.lane_camera = camera_of_lane(store)
        self.lanes = [lane.id for lane in store.cfg.lanes if lane.id in self.lane_camera]
        if not self.lanes:
            raise ScenarioError("no lane of the store config is seen by a shelf camera")

    def group(self, size: int, enter_at_s: float) -> list[int]:
        self.groups += 1
        account = f"acct-{int(self.rng.integers(10_000, 99_999))}"
        gid = f"visit-{self.groups:02d}"
        out = []
        for k in range(size):
            idx = len(self.specs)
            sleeve, skin, long_sleeve = random_arm_colours(self.rng)
            look = PersonLook.random(self.rng)
            look = PersonLook(sleeve, look.hair, skin, look.cap, look.bag, look.shoulder_m)
            self.specs.append(
                ShopperSpec(
                    idx,
                    f"shopper-{idx + 1:02d}",
                    account,
                    gid,
                    enter_at_s + 0.8 * k,
                    float(self.rng.uniform(1.15, 1.45)),
                    look,
                    sleeve,
                    skin,
                    long_sleeve,
                    _gate_x(self.store, "entry", self.rng),
                    _gate_x(self.store, "exit", self.rng),
                )
            )
            out.append(idx)
        return out

    def lane(self) -> str:
        return self.lanes[int(self.rng.integers(len(self.lanes)))]

    def shopping_stops(self, idx: int, n: int, multi: bool = False) -> None:
        lanes = [self.lane() for _ in range(n)]
        lanes = list(dict.fromkeys(lanes))
        lanes.sort(key=self._route_order)
        for lane in lanes:
            q = int(self.rng.integers(2, 4)) if multi else 1
            stop = StopSpec(
                lane,
                [ReachSpec("pick", q, tag="multi-unit" if q > 1 else "")],
                lateral_m=float(self.rng.uniform(-0.15, 0.15)),
            )
            if not multi and self.rng.random() < 0.25:  # changes their mind: puts it back
                stop.reaches.append(
                    ReachSpec("put", 1, put_ref=(len(self.specs[idx].stops), 0), tag="put-back")
                )
            self.specs[idx].stops.append(stop)

    def _route_order(self, lane_id: str) -> tuple[float, float]:
        x, y = self.store.lane_front_xy_m(lane_id)
        return (round(y / 2.0), x)

    def pair_lanes(self) -> tuple[str, str]:
        """Two lanes side by side on one level seen by one camera."""
        by_cam: dict[tuple[str, int], list[str]] = {}
        for lid in self.lanes:
            lane = self.store.lanes[lid]
            by_cam.setdefault((self.lane_camera[lid], lane.level), []).append(lid)
        pairs = []
        for ids in by_cam.values():
            ids = sorted(ids, key=lambda i: self.store.lanes[i].column)
            pairs += [
                (a, b)
                for a, b in itertools.pairwise(ids)
                if self.store.lanes[b].column == self.store.lanes[a].column + 1
            ]
        if not pairs:
            raise ScenarioError("no two adjacent lanes share a shelf camera in this config")
        return pairs[int(self.rng.integers(len(pairs)))]


def _single(b: _Builder) -> None:
    (i,) = b.group(1, 0.5)
    b.shopping_stops(i, int(b.rng.integers(2, 4)))


def _busy(b: _Builder) -> None:
    n = int(b.rng.integers(4, 9))
    spread = max(1.0, b.duration_s * 0.4)
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(min(int(b.rng.choice([1, 1, 1, 2, 3])), n - sum(sizes)))
    starts = sorted(float(x) for x in b.rng.uniform(0.3, spread, len(sizes)))
    t_free = 0.0
    for size, start in zip(sizes, starts, strict=True):
        # one visit at a time through the entry gate: the next scan waits for the last member
        start = max(start, t_free)
        t_free = start + 0.8 * (size - 1) + ENTRY_GAP_S
        for i in b.group(size, start):
            b.shopping_stops(i, int(b.rng.integers(1, 3)))


def _same_shelf(b: _Builder) -> None:
    lane = b.lane()
    for k, i in enumerate(b.group(1, 0.5) + b.group(1, 0.5 + ENTRY_GAP_S)):
        b.specs[i].stops.append(
            StopSpec(
                lane,
                [ReachSpec("pick", 1, tag="same-shelf")],
                lateral_m=-0.3 if k == 0 else 0.3,
                sync="same",
                optional=False,
            )
        )


def _crossing(b: _Builder) -> None:
    left, right = b.pair_lanes()
    (a,) = b.group(1, 0.5)
    (c,) = b.group(1, 0.5 + ENTRY_GAP_S)
    b.specs[a].stops.append(
        StopSpec(
            left,
            [ReachSpec("pick", 1, lane_id=right, tag="crossing-arms")],
            sync="cross",
            optional=False,
        )
    )
    b.specs[c].stops.append(
        StopSpec(
            right,
            [ReachSpec("pick", 1, lane_id=left, tag="crossing-arms")],
            sync="cross",
            optional=False,
        )
    )


def _handoff(b: _Builder) -> None:
    (a,) = b.group(1, 0.5)
    (c,) = b.group(1, 0.5 + ENTRY_GAP_S)
    lane = b.lane()
    b.specs[a].stops.append(StopSpec(lane, [ReachSpec("pick", 1, tag="handoff")], optional=False))
    sx, sy = stand_point(b.store, lane)
    meet_a = (sx, sy)
    meet_c = (sx + 0.55, sy)
    b.specs[a].stops.append(
        StopSpec(
            None, meet_xy=meet_a, sync="meet", handoff_to=c, handoff_ref=(0, 0), optional=False
        )
    )
    b.specs[c].stops.append(
        StopSpec(None, meet_xy=meet_c, sync="meet", handoff_from=a, optional=False)
    )


def _multi(b: _Builder) -> None:
    (i,) = b.group(1, 0.5)
    b.shopping_stops(i, int(b.rng.integers(1, 3)), multi=True)


def _wrong_lane(b: _Builder) -> None:
    (i,) = b.group(1, 0.5)
    first = b.lane()
    others = [
        x
        for x in b.lanes
        if b.store.lanes[x].sku != b.store.lanes[first].sku
        and b.store.lanes[x].gondola == b.store.lanes[first].gondola
    ]
    second = others[int(b.rng.integers(len(others)))] if others else b.lane()
    b.specs[i].stops.append(StopSpec(first, [ReachSpec("pick", 1)], optional=False))
    b.specs[i].stops.append(
        StopSpec(
            second,
            [
                ReachSpec("pick", 1),
                ReachSpec("put", 1, put_ref=(0, 0), tag="wrong-lane"),
            ],
            optional=False,
        )
    )


def _lookalike(b: _Builder) -> None:
    (i,) = b.group(1, 0.5)
    sku_lane = {b.store.lanes[x].sku: x for x in b.lanes}
    pairs = [(x, y) for x, y in lookalike_pairs(b.store) if x in sku_lane and y in sku_lane]
    if not pairs:
        raise ScenarioError("the config has no look-alike or equal-weight SKU pair on shelves")
    x, y = pairs[int(b.rng.integers(len(pairs)))]
    if b.rng.random() < 0.5:
        x, y = y, x
    b.specs[i].stops.append(StopSpec(sku_lane[x], [ReachSpec("pick", 1)], optional=False))
    b.specs[i].stops.append(
        StopSpec(
            sku_lane[y],
            [
                ReachSpec("pick", 1),
                ReachSpec("put", 1, put_ref=(0, 0), tag="lookalike-putback"),
            ],
            optional=False,
        )
    )


def _touch(b: _Builder) -> None:
    (i,) = b.group(1, 0.5)
    lane = b.lane()
    b.specs[i].stops.append(StopSpec(lane, [ReachSpec("touch", 0, tag="touch")], optional=False))
    b.shopping_stops(i, 1)


def _lighting(b: _Builder) -> None:
    _single(b)
    d = b.duration_s
    for cam in b.store.cfg.cameras:
        t0 = float(b.rng.uniform(0.15, 0.45)) * d
        low = float(b.rng.uniform(0.45, 0.7))
        keys = [
            (0.0, 1.0),
            (t0, 1.0),
            (t0 + 0.4, low),
            (t0 + 0.25 * d, low),
            (t0 + 0.25 * d + 1.0, 1.15),
            (d, 1.15),
        ]
        b.camera_faults.setdefault(cam.id, CameraFault()).light_keys = keys


def _dropout(b: _Builder) -> None:
    _single(b)
    first_lane = next(s.lane_id for s in b.specs[0].stops if s.lane_id)
    cam = b.lane_camera[first_lane]
    # timed against the plan later (see plan()); placeholders here
    b.camera_faults[cam] = CameraFault(dark=[(-1.0, -1.0)], drop=[(-1.0, -1.0, 0.3)])


def _plate_drift(b: _Builder) -> None:
    _single(b)
    touched = {s.lane_id for s in b.specs[0].stops if s.lane_id}
    for lid in [*sorted(touched), b.lane()]:
        plate = b.store.lanes[lid].plate
        if plate:
            b.plate_faults[plate] = PlateFault(
                float(b.rng.uniform(0.3, 1.2)) * float(b.rng.choice([-1, 1])),
                float(b.rng.uniform(2.0, 4.0)),
            )


FAMILIES: dict[str, tuple[Callable[[_Builder], None], str]] = {
    "single": (_single, "one shopper, a few picks, sometimes a put-back"),
    "busy": (_busy, "4 to 8 shoppers at once, some in groups on one account"),
    "same-shelf": (_same_shelf, "two shoppers take from the same lane at the same moment"),
    "crossing-arms": (_crossing, "two shoppers reach past each other into adjacent lanes"),
    "handoff": (_handoff, "one shopper picks and hands the item to another, who leaves with it"),
    "multi-unit": (_multi, "several units taken in one grasp"),
    "wrong-lane": (_wrong_lane, "an item put back into a lane of another SKU"),
    "lookalike-putback": (_lookalike, "put back into a look-alike or equal-weight SKU's lane"),
    "touch": (_touch, "a hand touches a lane without taking anything"),
    "lighting": (_lighting, "lights dim and come back brighter during the visit"),
    "camera-dropout": (_dropout, "a shelf camera drops frames and goes dark for seconds"),
    "plate-drift": (_plate_drift, "weight plates drift and get noisier"),
}


def plan(store: Store, family: str, seed: int, duration_s: float) -> Scenario:
    """Plan a scenario; raises ScenarioError if the family is unknown or it cannot fit."""
    if family not in FAMILIES:
        raise ScenarioError(
            f"unknown scenario family {family!r}; choose one of {', '.join(FAMILIES)}"
        )
    # the family name is mixed in so families built on one another still differ per seed
    rng = np.random.Generator(np.random.PCG64([seed, zlib.crc32(family.encode())]))
    b = _Builder(store, rng, duration_s)
    FAMILIES[family][0](b)
    dwell = [[float(x) for x in rng.uniform(0.45, 1.4, 16)] for _ in b.specs]
    initial = _initial_units(store, rng)
    while True:
        tls = schedule_all(store, b.specs, dwell, b.lane_camera)
        end = max(tl.keys_t[-1] for tl in tls)
        if end <= duration_s - 0.3:
            break
        # too long: drop the last optional stop of the shopper who finishes last
        late = max(range(len(tls)), key=lambda i: tls[i].keys_t[-1])
        opt = [k for k, s in enumerate(b.specs[late].stops) if s.optional]
        if not opt or len(b.specs[late].stops) <= 1:
            need = math.ceil(end + 0.5)
            raise ScenarioError(
                f"scenario {family!r} (seed {seed}) needs about {need} s of store time; "
                f"--duration {duration_s:g} is too short"
            )
        del b.specs[late].stops[opt[-1]]
    reaches, handoffs, carried = resolve(store, b.specs, tls, initial)
    for cam, fault in b.camera_faults.items():
        if fault.dark and fault.dark[0][0] < 0:
            first = next((r for r in reaches if r.camera_id == cam), None)
            t = first.t_in if first else duration_s / 3
            fault.dark = [(max(0.0, t - 1.0), min(duration_s, t + 2.0))]
            fault.drop = [
                (max(0.0, t - 4.0), max(0.0, t - 1.0), 0.3),
                (min(duration_s, t + 2.0), min(duration_s, t + 5.0), 0.3),
            ]
    return Scenario(
        family,
        seed,
        duration_s,
        START_TS_NS,
        b.specs,
        tls,
        reaches,
        handoffs,
        initial,
        carried,
        b.camera_faults,
        b.plate_faults,
        b.lane_camera,
    )
