"""Score the edge alone against a simulated recording's truth, per scenario family.

* **plates**: every true pick/put on a lane with a plate should show as a weight step of the
  right sign on that plate, overlapping the interaction in time (with the same slack the event
  scoring uses), scored as ``walkout eval`` does (``walkout.scoring.match_steps``): a step of n
  units of the lane's SKU (two reaches into one lane at once make one step) finds up to n of
  them. A step that matches no true interaction is a false one.
* **shelf interactions**: predicted picks/puts (one per SKU and direction of each
  ShelfInteraction) matched one-to-one to true ones by lane, SKU, direction and time window
  (``walkout.scoring.match_events``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.detector import DetectorBackend
from edge.node import EdgeNode, NodeSettings
from edge.plates import plate_detector
from walkout.config import Store
from walkout.messages import AnyMessage, ShelfInteraction, WeightChange
from walkout.recording import Recording, TruthInteraction
from walkout.scoring import (
    Counts,
    PredictedEvent,
    PredictedStep,
    match_events,
    match_steps,
    step_units,
)

log = logging.getLogger(__name__)


class Tally(Counts):
    """The project's tp/fp/fn counts (walkout.scoring) with the dict the benchmark writes."""

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
        }


def _moves(truth: Iterable[TruthInteraction]) -> list[TruthInteraction]:
    return [t for t in truth if t.kind in ("pick", "put") and t.quantity > 0]


def plate_changes(store: Store, rec: Recording) -> list[WeightChange]:
    out: list[WeightChange] = []
    plates = {p.id: p for p in store.cfg.plates}
    for pid, series in sorted(rec.plates().items()):
        p = plates.get(pid)
        if p is None:
            continue
        det = plate_detector(store, pid, p.node)
        for ts, w in zip(series.ts_ns.tolist(), series.weight_g.tolist(), strict=True):
            change = det.push(ts, w)
            if change is not None:
                out.append(change)
    return out


def score_plates(
    store: Store, truth: Sequence[TruthInteraction], changes: Sequence[WeightChange]
) -> Tally:
    plated = {p.lane for p in store.cfg.plates}
    unit_g = store.lane_unit_g
    steps = [
        PredictedStep(
            c.lane_id,
            c.delta_g,
            c.start_ts_ns,
            c.end_ts_ns,
            step_units(c.delta_g, unit_g.get(c.lane_id)),
        )
        for c in changes
    ]
    counts = match_steps([t for t in _moves(truth) if t.lane_id in plated], steps)
    return Tally(counts.tp, counts.fp, counts.fn)


def predicted_events(msgs: Iterable[AnyMessage]) -> list[PredictedEvent]:
    return [
        PredictedEvent(
            evidence_id=m.interaction_id,
            lane_id=m.lane_id,
            sku=d.sku,
            delta=d.delta,
            start_ts_ns=m.start_ts_ns,
            end_ts_ns=m.end_ts_ns,
        )
        for m in msgs
        if isinstance(m, ShelfInteraction)
        for d in m.deltas
    ]


def score_interactions(
    truth: Sequence[TruthInteraction], events: Sequence[PredictedEvent]
) -> tuple[Tally, list[dict[str, Any]]]:
    pairs, unmatched = match_events(_moves(truth), events)
    tally = Tally()
    misses: list[dict[str, Any]] = []
    for t, e in pairs:
        if e is None:
            tally.fn += 1
            misses.append({"missed": t.id, "lane": t.lane_id, "sku": t.sku, "kind": t.kind})
        else:
            tally.tp += 1
    tally.fp = len(unmatched)
    misses += [{"false": e.evidence_id, "sku": e.sku, "delta": e.delta} for e in unmatched]
    return tally, misses


@dataclass
class RecordingScore:
    recording: str
    family: str
    seed: int | None
    plates: Tally
    interactions: Tally
    frames: int = 0
    inferred: int = 0
    wall_s: float = 0.0
    problems: list[dict[str, Any]] = field(default_factory=list)


def run_nodes(
    store: Store,
    folder: Path,
    detector: DetectorBackend,
    settings: NodeSettings | None = None,
) -> tuple[list[AnyMessage], int, int, float]:
    """Every node that runs a camera of the recording, one after another; all messages."""
    rec = Recording(folder)
    msgs: list[AnyMessage] = []
    frames = inferred = 0
    wall = 0.0
    for node in store.cfg.nodes:
        cams = store.node_devices(node.id)["cameras"]
        if not cams or not set(cams) <= set(rec.manifest.cameras):
            continue
        n = EdgeNode(store, node.id, detector, msgs.extend, settings=settings or NodeSettings())
        st = n.run_recording(folder)
        frames += st.frames
        inferred += st.inferred
        wall += st.wall_s
    return msgs, frames, inferred, wall


def score_recording(
    store: Store,
    folder: Path,
    detector: DetectorBackend | None,
    settings: NodeSettings | None = None,
) -> RecordingScore:
    rec = Recording(folder)
    truth = rec.truth()
    if truth is None:
        raise ValueError(f"{folder}: no truth.json; only simulated recordings can be scored")
    plates = score_plates(store, truth.interactions, plate_changes(store, rec))
    inter = Tally()
    problems: list[dict[str, Any]] = []
    frames = inferred = 0
    wall = 0.0
    if detector is not None:
        msgs, frames, inferred, wall = run_nodes(store, folder, detector, settings)
        inter, problems = score_interactions(truth.interactions, predicted_events(msgs))
    return RecordingScore(
        recording=str(folder),
        family=rec.manifest.family or truth.family,
        seed=rec.manifest.seed,
        plates=plates,
        interactions=inter,
        frames=frames,
        inferred=inferred,
        wall_s=round(wall, 3),
        problems=problems,
    )


def by_family(scores: Iterable[RecordingScore]) -> dict[str, dict[str, Any]]:
    fam: dict[str, dict[str, Any]] = {}
    for s in scores:
        f = fam.setdefault(s.family, {"recordings": 0, "plates": Tally(), "interactions": Tally()})
        f["recordings"] += 1
        f["plates"].add(s.plates)
        f["interactions"].add(s.interactions)
    return {
        k: {
            "recordings": v["recordings"],
            "plates": v["plates"].as_dict(),
            "interactions": v["interactions"].as_dict(),
        }
        for k, v in sorted(fam.items())
    }
