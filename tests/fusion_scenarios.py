"""Scripted event streams for the fusion tests: shoppers walk, scan, reach into lanes.

Times are seconds from the start of the scenario; positions are floor metres of the demo store
(G1 lane fronts at y = 7.6, x = 2.4, 3.2, 4.0, 4.8; entry gate at (1.1, 0.3); exit at (8.9, 0.3)).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fusion.core import FusionCore
from fusion.params import FusionParams
from fusion.pipeline import Pipeline
from walkout.config import Store, load_store
from walkout.messages import (
    AnyMessage,
    CartClosed,
    FloorTrack,
    GateEvent,
    Heartbeat,
    SessionOpened,
    ShelfInteraction,
    SkuDelta,
    TrackUpdate,
    WeightChange,
)

BASE_NS = 1_763_000_000_000_000_000
CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo-store.yaml"
ENTRY_XY = (1.1, 0.3)
EXIT_XY = (8.9, 0.3)


def ns(t_s: float) -> int:
    return BASE_NS + round(t_s * 1e9)


def demo_store() -> Store:
    return load_store(CONFIG)


Waypoint = tuple[float, float, float]  # (t_s, x_m, y_m)
Look = tuple[float, ...]
LOOK_EVERY_S = 0.4  # the edge sends a track's look at most this often


@dataclass
class Scenario:
    store: Store
    msgs: list[AnyMessage] = field(default_factory=list)
    paths: dict[tuple[str, int], list[Waypoint]] = field(default_factory=dict)
    tick_s: float = 0.1
    plates_down: set[str] = field(default_factory=set)  # edge-1 heartbeats report these down
    # per track: (from t_s, look) in time order; the track reports the latest one begun
    looks: dict[tuple[str, int], list[tuple[float, Look]]] = field(default_factory=dict)
    _n: int = 0

    def look(self, track_id: int, *spans: tuple[float, Look], camera: str = "cam-ov-1") -> None:
        """What the track's person looks like from each time on (a swap changes it)."""
        self.looks[(camera, track_id)] = sorted(spans)

    def walk(self, track_id: int, *waypoints: Waypoint, camera: str = "cam-ov-1") -> None:
        self.paths[(camera, track_id)] = sorted(waypoints)

    def shopper(self, track_id: int, t_in: float, t_out: float, *stops: Waypoint) -> None:
        """Enter at t_in (track at the entry gate), visit stops, leave by the exit at t_out."""
        self.walk(
            track_id,
            (t_in - 0.5, *ENTRY_XY),
            *stops,
            (t_out, *EXIT_XY),
            (t_out + 0.3, EXIT_XY[0], EXIT_XY[1] - 0.2),
        )

    def entry(self, t_s: float, account: str | None, group_size: int = 1) -> None:
        self.msgs.append(
            GateEvent(
                source_id="edge-1",
                event_ts_ns=ns(t_s),
                gate_id="gate-in",
                kind="entry",
                account_id=account,
                group_size=group_size,
                xy_m=ENTRY_XY,
            )
        )

    def exit(self, t_s: float, account: str | None = None) -> None:
        self.msgs.append(
            GateEvent(
                source_id="edge-1",
                event_ts_ns=ns(t_s),
                gate_id="gate-out",
                kind="exit",
                account_id=account,
                xy_m=EXIT_XY,
            )
        )

    def vision(
        self,
        t_s: float,
        lane: str,
        deltas: Sequence[tuple[str, int, float]],
        *,
        exit_xy: tuple[float, float] | None = None,
        arm_root: tuple[float, float] | None = None,
        dur_s: float = 1.0,
        camera: str = "cam-g1-a",
    ) -> str:
        self._n += 1
        iid = f"{camera}:{lane}:f{self._n:06d}"
        self.msgs.append(
            ShelfInteraction(
                source_id="edge-1",
                event_ts_ns=ns(t_s + dur_s),
                interaction_id=iid,
                camera_id=camera,
                lane_id=lane,
                start_ts_ns=ns(t_s),
                end_ts_ns=ns(t_s + dur_s),
                deltas=tuple(SkuDelta(s, d, c) for s, d, c in deltas),
                exit_xy_m=exit_xy,
                arm_root_xy_m=arm_root,
            )
        )
        return iid

    def weight(
        self,
        t_s: float,
        lane: str,
        delta_g: float,
        dur_s: float = 1.2,
        reported_s: float | None = None,
    ) -> str:
        """A plate step from t_s to t_s + dur_s, reported then (or at ``reported_s``)."""
        plate = self.store.lanes[lane].plate
        assert plate is not None
        self.msgs.append(
            WeightChange(
                source_id="edge-1",
                event_ts_ns=ns(t_s + dur_s if reported_s is None else reported_s),
                plate_id=plate,
                lane_id=lane,
                start_ts_ns=ns(t_s),
                end_ts_ns=ns(t_s + dur_s),
                delta_g=delta_g,
                sigma_g=1.5,
            )
        )
        return f"wc:{plate}:{ns(t_s)}"

    def take(
        self,
        t_s: float,
        lane: str,
        sku: str | None = None,
        units: int = 1,
        *,
        vision: bool = True,
        weight: bool = True,
        exit_xy: tuple[float, float] | None = None,
        arm_root: tuple[float, float] | None = None,
        seen_sku: str | None = None,
        confidence: float = 0.95,
        put: bool = False,
    ) -> None:
        """A pick (or a put-back) of ``units`` of ``sku``, as vision and the plate report it."""
        sku = sku or self.store.lanes[lane].sku
        sign = 1 if put else -1
        if vision:
            self.vision(
                t_s,
                lane,
                [(seen_sku or sku, sign * units, confidence)],
                exit_xy=exit_xy,
                arm_root=arm_root,
            )
        if weight:
            self.weight(t_s + 0.1, lane, sign * units * self.store.products[sku].unit_weight_g)

    def messages(self) -> list[AnyMessage]:
        """Every message in event-time order, tracks at 10 Hz, heartbeats, then end of stream."""
        out = list(self.msgs)
        times = [w[0] for path in self.paths.values() for w in path]
        t_end = max([*times, *((m.event_ts_ns - BASE_NS) / 1e9 for m in self.msgs)]) + 1
        t_start = min(times, default=0.0)
        steps = int((t_end - t_start) / self.tick_s) + 1
        every = max(1, round(LOOK_EVERY_S / self.tick_s))
        for cam in sorted({k[0] for k in self.paths}):
            for i in range(steps):
                t = t_start + i * self.tick_s
                tracks = []
                for (c, tid), path in sorted(self.paths.items()):
                    if c != cam or not path[0][0] <= t <= path[-1][0]:
                        continue
                    x, y = _interp(path, t)
                    spans = self.looks.get((c, tid), [])
                    now = [lk for t0, lk in spans if t0 <= t] if i % every == 0 else []
                    tracks.append(FloorTrack(tid, x, y, look=now[-1] if now else ()))
                if tracks:
                    out.append(
                        TrackUpdate(
                            source_id="edge-1",
                            event_ts_ns=ns(t),
                            camera_id=cam,
                            tracks=tuple(tracks),
                        )
                    )
        for src in ("edge-1", "edge-2"):
            for i in range(int(t_end - t_start) + 1):
                down = tuple(sorted(self.plates_down)) if src == "edge-1" else ()
                out.append(Heartbeat(source_id=src, event_ts_ns=ns(t_start + i), down=down))
        out.sort(key=lambda m: m.event_ts_ns)
        for src in ("edge-1", "edge-2"):
            out.append(Heartbeat(source_id=src, event_ts_ns=ns(t_end), status="eos"))
        return out


def _interp(path: list[Waypoint], t: float) -> tuple[float, float]:
    for (t0, x0, y0), (t1, x1, y1) in itertools.pairwise(path):
        if t0 <= t <= t1:
            a = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
            return (x0 + (x1 - x0) * a, y0 + (y1 - y0) * a)
    return path[-1][1], path[-1][2]


@dataclass
class Result:
    opened: list[SessionOpened]
    closed: list[CartClosed]
    core: FusionCore
    pipeline: Pipeline

    def cart(self, account: str) -> dict[str, int]:
        """The closed cart of an account as {sku: quantity}."""
        found = [c for c in self.closed if c.account_id == account]
        assert len(found) == 1, f"expected one CartClosed for {account}, got {len(found)}"
        return {line.sku: line.quantity for line in found[0].lines}

    def closed_of(self, account: str) -> CartClosed:
        return next(c for c in self.closed if c.account_id == account)


def run(store: Store, msgs: Sequence[AnyMessage], params: FusionParams | None = None) -> Result:
    params = params or FusionParams.from_store(store)
    core = FusionCore.from_store(store, params)
    expected = [n.id for n in store.cfg.nodes if any(store.node_devices(n.id).values())]
    pipe = Pipeline(core, expected, params.allowed_lateness_ns)
    opened: list[SessionOpened] = []
    closed: list[CartClosed] = []
    for m in msgs:
        for out in pipe.ingest(m).outputs:
            if isinstance(out.message, SessionOpened):
                opened.append(out.message)
            else:
                closed.append(out.message)
    return Result(opened, closed, core, pipe)
