"""The edge node's interaction logic on real simulated footage, with an oracle detector.

The oracle is a detector double that knows the simulator's truth: for each frame it redraws the
camera's scene (lane contents at that moment, arms, held items) on an id canvas and returns the
boxes of what is visible, as a perfect detector would. It isolates the interaction logic, motion
gating and timing from the model's errors; the model's own numbers come from the benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.detections import Detections
from edge.node import EdgeNode
from edge.sources import Frame
from walkout.config import Store, load_store

sim = pytest.importorskip("sim.render")

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo-store.yaml"


class SimOracle:
    """Boxes from the simulator's truth for the frames the node is about to infer."""

    def __init__(self, store: Store, family: str, seed: int, duration_s: float):
        from sim.dataset import class_names
        from sim.render import renderer_for
        from sim.scenario import plan

        self.store = store
        self.sc = plan(store, family, seed, duration_s)
        self.names = class_names(store)
        self._cls = {n: i for i, n in enumerate(self.names)}
        self._renderers: dict[str, Any] = {}
        self._state: dict[str, tuple[int, dict[str, list[Any]]]] = {}
        self._pending: dict[int, Frame] = {}
        self._renderer_for = renderer_for

    def attach(self, node: EdgeNode) -> None:
        """Let the oracle see which camera and time each image belongs to."""
        inner = node.process_frames

        def process_frames(frames: Sequence[Frame]) -> None:
            self._pending = {id(f.image): f for f in frames}
            inner(frames)

        node.process_frames = process_frames  # type: ignore[method-assign]

    def detect(
        self, frames: Sequence[np.ndarray], regions: Sequence[object] | None = None
    ) -> list[Detections]:
        return [self._one(self._pending[id(img)]) for img in frames]

    def _contents(self, rend: Any, camera_id: str, t: float) -> dict[str, list[Any]]:
        start: dict[str, list[Any]] = {lid: list(self.sc.initial[lid]) for lid in rend.camera.lanes}
        ci, contents = self._state.get(camera_id, (0, start))
        while ci < len(rend.changes) and rend.changes[ci][0] <= t:
            _, lid, removed, added = rend.changes[ci]
            gone = {u.uid for u in removed}
            contents[lid] = [u for u in contents[lid] if u.uid not in gone] + list(added)
            ci += 1
        self._state[camera_id] = (ci, contents)
        return contents

    def _one(self, f: Frame) -> Detections:
        from sim.canvas import Canvas
        from sim.dataset import _Ids, _labels
        from sim.shelf import draw_arm, draw_background, draw_units

        cam = self.store.cameras[f.camera_id]
        if cam.kind != "shelf":
            return Detections.empty()
        rend: Any = self._renderers.get(f.camera_id)
        if rend is None:
            rend = self._renderers[f.camera_id] = self._renderer_for(
                self.store, self.sc, f.camera_id
            )
        t = (f.ts_ns - self.sc.start_ts_ns) / 1e9
        contents = self._contents(rend, f.camera_id, t)
        cv = Canvas(draw_background(rend.layout), track_ids=True)
        ids = _Ids()
        for lid, view in rend.layout.lanes.items():
            skus = [u.sku for u in contents[lid]]
            oids = [ids.new(self._cls[s]) for s in skus]
            draw_units(cv, rend.layout, view, skus, self.store.products, oids)
        arms = [(r, p) for r in rend.reaches if (p := rend.arm_pose(r, t)) is not None]
        for _r, (pose, _speed) in sorted(arms, key=lambda a: -a[1][0].entry[1]):
            hand = ids.new(self._cls["hand"])
            items = [ids.new(self._cls[s]) for s in pose.held]
            draw_arm(cv, pose, rend.layout, self.store.products, hand, items)
        labels = _labels(cv, ids, len(self.store.cfg.products))
        if not labels:
            return Detections.empty()
        return Detections(
            np.array([lb.box for lb in labels], np.float32),
            np.full(len(labels), 0.9, np.float32),
            np.array([lb.cls for lb in labels], np.int32),
        )


def run_with_oracle(store: Store, folder: Path) -> list[Any]:
    from walkout.recording import Recording

    m = Recording(folder).manifest
    assert m.seed is not None
    msgs: list[Any] = []
    for node_cfg in store.cfg.nodes:
        cams = store.node_devices(node_cfg.id)["cameras"]
        if not cams or not set(cams) <= set(m.cameras):
            continue
        oracle = SimOracle(store, m.family, m.seed, m.duration_s)
        node = EdgeNode(store, node_cfg.id, oracle, msgs.extend)
        oracle.attach(node)
        node.run_recording(folder)
    return msgs


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path]:
    from sim.record import record

    store = load_store(CONFIG)
    out = tmp_path_factory.mktemp("sim") / "rec"
    cams = store.node_devices("edge-2")["cameras"]
    # one shopper who picks from G3 (seen by edge-2's cameras) among other lanes
    record(store, "single", 1, 30.0, out, workers=1, cameras=cams)
    return store, out


def test_oracle_interactions_match_truth_on_simulated_footage(
    recording: tuple[Store, Path],
) -> None:
    from edge.evaluate import predicted_events, score_interactions
    from walkout.recording import Recording

    store, folder = recording
    truth = Recording(folder).truth()
    assert truth is not None
    msgs = run_with_oracle(store, folder)
    cams = set(store.node_devices("edge-2")["cameras"])
    seen = [t for t in truth.interactions if t.camera_id in cams]
    assert seen, "the scenario should reach into a lane these cameras see"
    tally, problems = score_interactions(seen, predicted_events(msgs))
    assert tally.recall == 1.0 and tally.precision == 1.0, problems
