"""The edge node: every device of one node, from frames and readings to events on the link.

One thread owns all the logic (motion gates, detector, interaction state machines, trackers,
plate step detectors), so a replay gives the same events on every run; capture runs in its own
threads behind bounded buffers. Frames are taken in capture-time order across cameras; frames of
several cameras taken at the same instant go to the detector in one batch. Plate readings and
gate events are interleaved by their timestamps. Every second of event time a Heartbeat goes
into the outbox (event_ts_ns = the latest processed capture time), and at the end of a finite
source one with status "eos".
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge.detections import Detections
from edge.detector import DetectorBackend
from edge.gates import recorded_gate_events
from edge.interactions import InteractionSettings, ShelfInteractions
from edge.lanes import LaneRegions
from edge.motion import MotionGate
from edge.overhead import OverheadTracking
from edge.plates import plate_detector
from edge.sources import Capture, CaptureSettings, Frame, VideoFileSource
from walkout.config import Store
from walkout.messages import AnyMessage, GateEvent, Heartbeat
from walkout.metrics import Registry
from walkout.recording import Recording

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[AnyMessage]], None]


@dataclass(frozen=True)
class NodeSettings:
    heartbeat_s: float = 1.0
    health_s: float = 5.0
    refresh_s: float = 2.0  # infer an idle shelf camera at least this often
    overhead_hz: float = 7.5  # inferred overhead frames per second while people are seen
    overhead_hold_s: float = 10.0  # ... and for this long after the last person was seen
    batch_window_ms: float = 40.0  # frames this close in capture time share one batch
    motion_gating: bool = True
    dark_level: float = 24.0  # mean grey below this: the camera sees nothing usable
    gap_s: float = 0.5  # no frame for this long: the camera was blind
    plate_stale_s: float = 2.0  # no reading for this long: the plate is reported down
    interaction: InteractionSettings = field(default_factory=InteractionSettings)


class CameraMetrics:
    def __init__(self, registry: Registry):
        r = registry
        self.frames_in = r.counter("edge_frames_in_total", "camera frames received")
        self.inferred = r.counter("edge_frames_inferred_total", "camera frames sent to inference")
        self.dropped = r.counter("edge_frames_dropped_total", "frames dropped: consumer behind")
        self.corrupt = r.counter("edge_frames_corrupt_total", "frames that could not be decoded")
        self.reconnects = r.counter("edge_reconnects_total", "camera reopen attempts")
        self.interactions = r.counter("edge_interactions_total", "shelf interactions emitted")
        self.touches = r.counter("edge_touches_total", "lane visits that moved no item")
        self.weight_changes = r.counter("edge_weight_changes_total", "plate steps emitted")
        self.gate_events = r.counter("edge_gate_events_total", "gate events emitted")
        self.track_updates = r.counter("edge_track_updates_total", "TrackUpdates emitted")
        self.inference_ms = r.histogram("edge_inference_ms", "detector time per batch (ms)")
        self.stage_ms = r.histogram("edge_stage_ms", "time per frame by stage (ms)")
        self.dark = r.counter("edge_frames_dark_total", "frames too dark to use, skipped")
        self.connected = r.gauge("edge_camera_up", "1 while the camera delivers frames")


class _Camera:
    """Per-camera state: its logic and its motion gate."""

    def __init__(
        self, node: EdgeNode, camera_id: str, names: Sequence[str], settings: NodeSettings
    ):
        store = node.store
        cam = store.cameras[camera_id]
        self.id = camera_id
        self.kind = cam.kind
        self.fps = cam.fps
        w, h = cam.resolution
        self.last_inferred_ns = -(10**19)
        self.last_ts_ns = 0
        self.dark_frames = 0
        self.frames = 0
        self.inferred = 0
        self.shelf: ShelfInteractions | None = None
        self.overhead: OverheadTracking | None = None
        if cam.kind == "shelf":
            regions = LaneRegions(cam.lanes, w, h)
            self.gate = MotionGate(w, h, cam.lanes)
            self.shelf = ShelfInteractions(
                node.node_id,
                camera_id,
                regions,
                names,
                list(store.products),
                floor_xy=node.lane_exit_xy,
                settings=settings.interaction,
            )
        else:
            assert cam.homography is not None
            # a person is a small part of a ceiling view: a few changed pixels count
            self.gate = MotionGate(w, h, None, min_changed=0.0005)
            self.overhead = OverheadTracking(
                node.node_id, camera_id, cam.homography, names, cam.fps
            )

    def wants_inference(self, frame: Frame, moving: bool, s: NodeSettings) -> bool:
        since_s = (frame.ts_ns - self.last_inferred_ns) / 1e9
        if not s.motion_gating:
            return True
        if self.shelf is not None:
            return moving or self.shelf.busy or self.shelf.needs_counts or since_s >= s.refresh_s
        assert self.overhead is not None
        # People standing at a shelf barely move and may score low for a few frames: keep
        # tracking at full rate while anyone was seen recently.
        recent = frame.ts_ns - self.overhead.last_people_ns < s.overhead_hold_s * 1e9
        people = self.overhead.people_seen > 0 or recent
        if not (moving or people):
            return since_s >= s.refresh_s
        return since_s >= 1.0 / s.overhead_hz - 1e-3


@dataclass
class NodeStats:
    frames: int = 0
    inferred: int = 0
    batches: int = 0
    messages: int = 0
    interactions: int = 0
    weight_changes: int = 0
    gate_events: int = 0
    track_updates: int = 0
    first_ts_ns: int = 0
    last_ts_ns: int = 0
    wall_s: float = 0.0
    stage_ns: dict[str, int] = field(default_factory=dict)

    def add_stage(self, name: str, ns: int) -> None:
        self.stage_ns[name] = self.stage_ns.get(name, 0) + ns


class EdgeNode:
    """Runs one node's devices. ``publish`` makes a list of messages durable (the outbox)."""

    def __init__(
        self,
        store: Store,
        node_id: str,
        detector: DetectorBackend,
        publish: Publish,
        *,
        settings: NodeSettings = NodeSettings(),
        registry: Registry | None = None,
        annotate: Callable[[Frame, Detections | None, _Camera], None] | None = None,
    ):
        if node_id not in {n.id for n in store.cfg.nodes}:
            known = ", ".join(n.id for n in store.cfg.nodes)
            raise ValueError(f"node {node_id!r} is not in the store config (nodes: {known})")
        self.store = store
        self.node_id = node_id
        self.detector = detector
        self.publish = publish
        self.settings = settings
        self.registry = registry or Registry()
        self.metrics = CameraMetrics(self.registry)
        self.devices = store.node_devices(node_id)
        names = detector.names
        self.cameras = {c: _Camera(self, c, names, settings) for c in self.devices["cameras"]}
        self.plates = {
            p.id: plate_detector(store, p.id, node_id)
            for p in store.cfg.plates
            if p.node == node_id
        }
        self.gate_ids = set(self.devices["gates"])
        self.annotate = annotate
        self.stats = NodeStats()
        self.last_recording: Path | None = None
        self.live_addresses: dict[str, tuple[str, int] | None] = {}
        self._pending: list[AnyMessage] = []
        self._next_heartbeat_ns = 0
        self._plate_seen_ns: dict[str, int] = {}
        self._started_ns = 0  # event time of the first frame or reading
        self._down: tuple[str, ...] = ()
        self._next_health = time.monotonic() + settings.health_s

    # ------------------------------------------------------------ geometry

    def lane_exit_xy(self, lane_id: str, across: float) -> tuple[float, float]:
        """The lane's front point, moved along the gondola by where the hand was across the
        lane (-0.5 left edge .. +0.5 right edge)."""
        x, y = self.store.lane_front_xy_m(lane_id)
        g = self.store.gondolas[self.store.lanes[lane_id].gondola]
        (x0, y0), (x1, y1) = g.front_m
        bay = 1.0 / g.columns
        return (round(x + (x1 - x0) * bay * across, 3), round(y + (y1 - y0) * bay * across, 3))

    # ------------------------------------------------------------ output

    def emit(self, msgs: Sequence[AnyMessage]) -> None:
        self._pending.extend(msgs)

    def flush(self) -> None:
        if self._pending:
            t = time.perf_counter_ns()
            self.publish(self._pending)
            self.stats.add_stage("publish", time.perf_counter_ns() - t)
            self.stats.messages += len(self._pending)
            self._pending = []

    def _heartbeat(self, ts_ns: int, status: str = "ok") -> None:
        stale = int(self.settings.plate_stale_s * 1e9)
        down = tuple(
            p
            for p in sorted(self.plates)
            if ts_ns - self._plate_seen_ns.get(p, self._started_ns) > stale
        )
        if down != self._down:
            self._down = down
            if down:
                log.warning(
                    "edge %s: no readings from plate(s) %s for %.1f s; fusion decides their "
                    "lanes from vision alone until they report again (check the plate's cable "
                    "and reader)",
                    self.node_id,
                    ", ".join(down),
                    self.settings.plate_stale_s,
                )
        self.emit([Heartbeat(source_id=self.node_id, event_ts_ns=ts_ns, status=status, down=down)])

    def advance_time(self, ts_ns: int) -> None:
        if ts_ns > self.stats.last_ts_ns:
            self.stats.last_ts_ns = ts_ns
        if not self.stats.first_ts_ns:
            self.stats.first_ts_ns = ts_ns
            self._started_ns = ts_ns
        if ts_ns >= self._next_heartbeat_ns:
            if self._next_heartbeat_ns:
                self._heartbeat(ts_ns)
            self._next_heartbeat_ns = ts_ns + int(self.settings.heartbeat_s * 1e9)

    # ------------------------------------------------------------ plates and gates

    def gate_event(self, event: GateEvent) -> None:
        self.emit([event])
        self.advance_time(event.event_ts_ns)
        self.stats.gate_events += 1
        self.metrics.gate_events.inc(gate=event.gate_id)

    def plate_reading(self, ts_ns: int, plate_id: str, weight_g: float) -> None:
        det = self.plates.get(plate_id)
        if det is None:
            return
        self._plate_seen_ns[plate_id] = ts_ns
        change = det.push(ts_ns, weight_g)
        if change is not None:
            self.emit([change])
            self.stats.weight_changes += 1
            self.metrics.weight_changes.inc(plate=plate_id)

    # ------------------------------------------------------------ frames

    def process_frames(self, frames: Sequence[Frame]) -> None:
        """Frames of several cameras taken at about the same instant."""
        st = self.stats
        s = self.settings
        todo: list[tuple[Frame, _Camera]] = []
        for f in frames:
            cam = self.cameras[f.camera_id]
            cam.frames += 1
            st.frames += 1
            self.metrics.frames_in.inc(camera=cam.id)
            t = time.perf_counter_ns()
            moving_zones = cam.gate.update(f.image)
            moving = bool(moving_zones.any()) if s.motion_gating else True
            st.add_stage("motion", time.perf_counter_ns() - t)
            gap = cam.last_ts_ns and (f.ts_ns - cam.last_ts_ns) / 1e9 > s.gap_s
            cam.last_ts_ns = f.ts_ns
            dark = cam.gate.brightness < s.dark_level
            if (dark or gap) and cam.shelf is not None:
                cam.shelf.blind()
            if dark:  # nothing to see: neither infer nor let black frames count as empty
                cam.dark_frames += 1
                self.metrics.dark.inc(camera=cam.id)
                continue
            if cam.wants_inference(f, moving, s):
                todo.append((f, cam))
            else:
                self._logic(f, cam, None)
        if todo:
            t = time.perf_counter_ns()
            results = self.detector.detect([f.image for f, _ in todo])
            dt = time.perf_counter_ns() - t
            st.add_stage("detect", dt)
            st.batches += 1
            self.metrics.inference_ms.observe(dt / 1e6)
            times = getattr(self.detector, "last_times", None)
            if times is not None:
                for name in ("preprocess", "inference", "postprocess"):
                    st.add_stage(f"detect.{name}", int(getattr(times, f"{name}_ns", 0)))
            for (f, cam), dets in zip(todo, results, strict=True):
                cam.inferred += 1
                cam.last_inferred_ns = f.ts_ns
                st.inferred += 1
                self.metrics.inferred.inc(camera=cam.id)
                self._logic(f, cam, dets)
        for f in frames:
            self.advance_time(f.ts_ns)

    def _logic(self, f: Frame, cam: _Camera, dets: Detections | None) -> None:
        t = time.perf_counter_ns()
        if cam.shelf is not None:
            events = cam.shelf.update(f.index, f.ts_ns, dets, f.image)
            if events:
                self.emit(events)
                self.stats.interactions += len(events)
                self.metrics.interactions.inc(len(events), camera=cam.id)
            self.stats.add_stage("interactions", time.perf_counter_ns() - t)
        elif cam.overhead is not None and dets is not None:
            self.emit([cam.overhead.update(f.index, f.ts_ns, dets, f.image)])
            self.stats.track_updates += 1
            self.metrics.track_updates.inc(camera=cam.id)
            self.stats.add_stage("track", time.perf_counter_ns() - t)
        if self.annotate is not None:
            self.annotate(f, dets, cam)

    def finish(self, end_ts_ns: int) -> None:
        for cam in self.cameras.values():
            if cam.shelf is not None:
                events = cam.shelf.flush()
                self.emit(events)
                self.stats.interactions += len(events)
        self.advance_time(end_ts_ns)
        self._heartbeat(max(end_ts_ns, self.stats.last_ts_ns), "eos")
        self.flush()

    def health_line(self, captures: Sequence[Capture] = ()) -> str:
        st = self.stats
        parts = [
            f"node {self.node_id}: frames {st.frames} inferred {st.inferred}",
            f"interactions {st.interactions} weight {st.weight_changes} gates {st.gate_events}",
        ]
        for c in captures:
            state = "up" if c.connected else f"DOWN ({c.last_error})"
            parts.append(
                f"{c.camera_id} {state} in {c.frames_in} dropped {c.dropped} "
                f"corrupt {c.corrupt} reconnects {c.reconnects}"
            )
        return "; ".join(parts)

    def maybe_health(self, captures: Sequence[Capture]) -> None:
        now = time.monotonic()
        if now >= self._next_health:
            self._next_health = now + self.settings.health_s
            log.info("%s", self.health_line(captures))
            for c in captures:
                self.metrics.connected.set(1.0 if c.connected else 0.0, camera=c.camera_id)

    # ------------------------------------------------------------ replay

    def run_recording(self, folder: str | Path, *, realtime: bool = False) -> NodeStats:
        """Everything of this node's devices in a recording, in capture-time order."""
        rec = Recording(folder)
        self.last_recording = Path(folder)
        wall0 = time.perf_counter()
        captures = []
        for cam_id in self.cameras:
            src = VideoFileSource(
                cam_id,
                rec.camera_video(cam_id),
                rec.path(rec.manifest.cameras[cam_id].timestamps),
            )
            captures.append(Capture(src, CaptureSettings(buffer_frames=4, blocking=True)).start())
        readings = _plate_stream(rec, set(self.plates))
        gates = list(recorded_gate_events(rec.gates(), self.node_id, self.gate_ids))
        gate_i = 0
        window_ns = int(self.settings.batch_window_ms * 1e6)
        next_reading = next(readings, None)
        t_first: int | None = None
        try:
            while True:
                heads = [(c.peek_ts_ns(timeout_s=60.0), c) for c in captures]
                live = [(t, c) for t, c in heads if t is not None]
                frame_ts = min((t for t, _ in live), default=None)
                horizon = frame_ts if frame_ts is not None else 2**63
                # readings and gates up to the next frame
                while next_reading is not None and next_reading[0] <= horizon:
                    self.plate_reading(*next_reading)
                    self.advance_time(next_reading[0])
                    next_reading = next(readings, None)
                while gate_i < len(gates) and gates[gate_i].event_ts_ns <= horizon:
                    self.gate_event(gates[gate_i])
                    gate_i += 1
                if frame_ts is None:
                    break
                if realtime:
                    t_first = frame_ts if t_first is None else t_first
                    lag_s = (frame_ts - t_first) / 1e9 - (time.perf_counter() - wall0)
                    if lag_s > 0:
                        time.sleep(lag_s)
                batch = []
                for t, c in live:
                    if t <= frame_ts + window_ns:
                        f = c.get(timeout_s=60.0)
                        if f is not None:
                            batch.append(f)
                batch.sort(key=lambda f: (f.ts_ns, f.camera_id))
                self.process_frames(batch)
                self.flush()
                self.maybe_health(captures)
            end = max(rec.manifest.end_ts_ns, self.stats.last_ts_ns)
            self.finish(end)
        finally:
            for c in captures:
                c.stop()
                self.metrics.dropped.inc(c.dropped, camera=c.camera_id)
                self.metrics.corrupt.inc(c.corrupt, camera=c.camera_id)
        self.stats.wall_s = time.perf_counter() - wall0
        log.info("%s", self.health_line(captures))
        return self.stats


def _plate_stream(rec: Recording, plate_ids: set[str]) -> Iterator[tuple[int, str, float]]:
    series = [s for pid, s in rec.plates().items() if pid in plate_ids]
    streams = [
        zip(s.ts_ns.tolist(), [s.plate_id] * len(s.ts_ns), s.weight_g.tolist(), strict=True)
        for s in series
    ]
    return heapq.merge(*streams, key=lambda r: r[0])
