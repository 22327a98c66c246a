"""The edge node end to end on a real recording folder (mp4v videos through OpenCV).

The cameras film a toy world of coloured blocks, and a colour-blob detector stands in for the
ONNX model (the shipped model is not needed to test the node's plumbing): red blocks are
cola-330 cans, white is a hand, blue is a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.detections import Detections
from edge.node import EdgeNode, NodeSettings
from walkout.config import Store, load_store
from walkout.messages import (
    AnyMessage,
    GateEvent,
    Heartbeat,
    ShelfInteraction,
    TrackUpdate,
    WeightChange,
)
from walkout.recording import (
    CameraTrack,
    GateRecord,
    Manifest,
    write_camera_timestamps,
    write_gates,
    write_manifest,
    write_plates,
)

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo-store.yaml"
T0 = 1_767_225_600_000_000_000
FPS = 15.0
N_FRAMES = 60
W, H = 640, 360


class BlobDetector:
    """Finds solid colour blocks: red -> cola-330, white -> hand, blue -> person."""

    def __init__(self, store: Store):
        self.names = [*store.products, "hand", "person"]
        self.calls = 0
        self.frames = 0
        self._colours = [
            (self.names.index("cola-330"), (0, 0, 200), (90, 90, 255)),
            (self.names.index("hand"), (200, 200, 200), (255, 255, 255)),
            (self.names.index("person"), (200, 0, 0), (255, 90, 90)),
        ]

    def detect(
        self, frames: Sequence[np.ndarray], regions: Sequence[object] | None = None
    ) -> list[Detections]:
        self.calls += 1
        self.frames += len(frames)
        out = []
        for img in frames:
            boxes, classes = [], []
            for cls, lo, hi in self._colours:
                mask = cv2.inRange(img, np.array(lo), np.array(hi))
                n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
                for x, y, w, h, area in stats[1:n]:
                    if area >= 150:
                        boxes.append((x, y, x + w, y + h))
                        classes.append(cls)
            if boxes:
                out.append(
                    Detections(
                        np.array(boxes, np.float32),
                        np.full(len(boxes), 0.9, np.float32),
                        np.array(classes, np.int32),
                    )
                )
            else:
                out.append(Detections.empty())
        return out


def hand_y(i: int) -> float | None:
    """The hand rises from below the image to the top lane (frames 15..35) and goes back."""
    if not 15 <= i <= 35:
        return None
    k = i - 15
    return 400 - 32 * k if k <= 10 else 80 + 32 * (k - 10)


def shelf_frame(i: int, picks: bool) -> np.ndarray:
    img = np.full((H, W, 3), 120, np.uint8)
    taken = picks and i >= 25
    for j, x in enumerate((80, 140, 200, 260)):
        if taken and j == 1:
            continue
        cv2.rectangle(img, (x, 60), (x + 40, 110), (0, 0, 255), -1)
    y = hand_y(i) if picks else None
    if y is not None:
        cv2.rectangle(img, (130, int(y) - 30), (190, int(y) + 30), (255, 255, 255), -1)
        if taken:
            cv2.rectangle(img, (145, int(y) - 15), (175, int(y) + 15), (0, 0, 255), -1)
    return img


def overhead_frame(i: int) -> np.ndarray:
    img = np.full((H, W, 3), 90, np.uint8)
    x = 100 + 4 * i
    cv2.rectangle(img, (x, 150), (x + 40, 190), (255, 0, 0), -1)
    return img


def make_recording(folder: Path, store: Store, dark: range = range(0)) -> None:
    (folder / "cameras").mkdir(parents=True)
    cams = {}
    ts = [T0 + round(i * 1e9 / FPS) for i in range(N_FRAMES)]
    for cam_id in store.node_devices("edge-1")["cameras"]:
        path = folder / "cameras" / f"{cam_id}.mp4"
        wr = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (W, H))
        for i in range(N_FRAMES):
            if store.cameras[cam_id].kind == "overhead":
                wr.write(overhead_frame(i))
            else:
                img = shelf_frame(i, picks=cam_id == "cam-g1-a")
                wr.write(img // 16 if i in dark else img)
        wr.release()
        write_camera_timestamps(folder / "cameras" / f"{cam_id}.csv", range(N_FRAMES), ts)
        cams[cam_id] = CameraTrack(
            video=f"cameras/{cam_id}.mp4",
            timestamps=f"cameras/{cam_id}.csv",
            fps=FPS,
            resolution=(W, H),
            frames=N_FRAMES,
        )
    rng = np.random.default_rng(0)
    rows = []
    for k in range(int(4.0 * 25)):
        t = T0 + k * 40_000_000
        w = 250 + 8 * 345 - (345 if t > T0 + 2_000_000_000 else 0) + rng.normal(0, 1.5)
        rows.append((t, "P-G1-L00", w))
        rows.append((t, "P-G1-L01", 250 + 8 * 460 + rng.normal(0, 1.5)))
    rows.sort(key=lambda r: r[0])
    write_plates(folder / "plates.csv", rows)
    write_gates(
        folder / "gates.jsonl",
        [GateRecord(ts_ns=T0 + 100, gate_id="gate-in", kind="entry", account_id="acct-1")],
    )
    text = CONFIG.read_text()
    write_manifest(
        folder,
        Manifest(
            store_id="demo-001",
            store_config=text,
            store_config_sha256=store.sha256,
            start_ts_ns=T0,
            end_ts_ns=T0 + 4_000_000_000,
            cameras=cams,
        ),
    )


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[AnyMessage], EdgeNode]:
    store = load_store(CONFIG)
    folder = tmp_path_factory.mktemp("rec")
    make_recording(folder, store)
    published: list[AnyMessage] = []
    node = EdgeNode(store, "edge-1", BlobDetector(store), published.extend)
    node.run_recording(folder)
    return published, node


def test_one_pick_one_weight_step_one_gate(replay: tuple[list[AnyMessage], EdgeNode]) -> None:
    msgs, _ = replay
    (si,) = [m for m in msgs if isinstance(m, ShelfInteraction)]
    assert si.lane_id == "G1-L00" and si.camera_id == "cam-g1-a"
    assert [(d.sku, d.delta) for d in si.deltas] == [("cola-330", -1)]
    assert si.interaction_id.startswith("cam-g1-a:G1-L00:f0000")
    assert T0 + 1_000_000_000 < si.start_ts_ns < si.end_ts_ns < T0 + 2_500_000_000
    assert si.exit_xy_m is not None and abs(si.exit_xy_m[1] - 7.6) < 1e-6
    assert 2.0 <= si.exit_xy_m[0] <= 2.8  # inside the first bay of G1
    (wc,) = [m for m in msgs if isinstance(m, WeightChange)]
    assert wc.plate_id == "P-G1-L00" and wc.delta_g == pytest.approx(-345, abs=3)
    (ge,) = [m for m in msgs if isinstance(m, GateEvent)]
    assert ge.gate_id == "gate-in" and ge.account_id == "acct-1"


def test_heartbeats_every_second_and_eos_last(replay: tuple[list[AnyMessage], EdgeNode]) -> None:
    msgs, _ = replay
    hbs = [m for m in msgs if isinstance(m, Heartbeat)]
    assert msgs[-1] is hbs[-1] and hbs[-1].status == "eos"
    assert hbs[-1].event_ts_ns == T0 + 4_000_000_000
    assert [h.status for h in hbs[:-1]] == ["ok"] * (len(hbs) - 1) and len(hbs) >= 4
    gaps = np.diff([h.event_ts_ns for h in hbs[:-1]])
    assert (gaps >= 1_000_000_000).all() and (gaps < 1_200_000_000).all()
    event_ts = [m.event_ts_ns for m in msgs if not isinstance(m, Heartbeat)]
    assert max(event_ts) <= hbs[-1].event_ts_ns


def test_overhead_tracks_at_5_hz_on_the_floor(replay: tuple[list[AnyMessage], EdgeNode]) -> None:
    msgs, _ = replay
    ups = [m for m in msgs if isinstance(m, TrackUpdate)]
    span_s = (ups[-1].event_ts_ns - ups[0].event_ts_ns) / 1e9
    assert len(ups) / span_s >= 5.0
    tracked = [u for u in ups if u.tracks]
    ids = {t.track_id for u in tracked for t in u.tracks}
    assert len(tracked) >= len(ups) - 3 and len(ids) == 1
    last = tracked[-1].tracks[0]
    # homography of cam-ov-1: 1/64 m per pixel; the block's centre x is 120 + 4 * frame
    assert last.x_m == pytest.approx((120 + 4 * tracked[-1].frame_index) / 64, abs=0.05)
    assert last.y_m == pytest.approx(170 / 64, abs=0.05)


def test_motion_gate_skips_idle_shelves(replay: tuple[list[AnyMessage], EdgeNode]) -> None:
    _, node = replay
    st = node.stats
    assert st.frames == 5 * N_FRAMES
    idle = node.cameras["cam-g2-a"]
    assert idle.inferred <= 3 + N_FRAMES / FPS / node.settings.refresh_s + 1
    assert node.cameras["cam-g1-a"].inferred >= 20
    assert st.inferred < st.frames / 2


def test_replay_is_deterministic(replay: tuple[list[AnyMessage], EdgeNode], tmp_path: Path) -> None:
    msgs, node = replay
    again: list[AnyMessage] = []
    EdgeNode(node.store, "edge-1", BlobDetector(node.store), again.extend).run_recording(
        Path(str(node.last_recording))
    )
    assert again == msgs


def test_infer_every_frame_gives_the_same_interactions(
    replay: tuple[list[AnyMessage], EdgeNode],
) -> None:
    msgs, node = replay
    every: list[AnyMessage] = []
    EdgeNode(
        node.store,
        "edge-1",
        BlobDetector(node.store),
        every.extend,
        settings=NodeSettings(motion_gating=False),
    ).run_recording(Path(str(node.last_recording)))
    pick = [m for m in msgs if isinstance(m, ShelfInteraction)]
    assert [m for m in every if isinstance(m, ShelfInteraction)] == pick


def test_a_pick_while_the_camera_was_dark_is_still_reported(tmp_path: Path) -> None:
    store = load_store(CONFIG)
    make_recording(tmp_path / "rec", store, dark=range(12, 40))
    msgs: list[AnyMessage] = []
    node = EdgeNode(store, "edge-1", BlobDetector(store), msgs.extend)
    node.run_recording(tmp_path / "rec")
    (si,) = [m for m in msgs if isinstance(m, ShelfInteraction)]
    assert si.lane_id == "G1-L00" and [(d.sku, d.delta) for d in si.deltas] == [("cola-330", -1)]
    assert si.confidence == 0.5 and si.start_ts_ns < T0 + 1_000_000_000 < si.end_ts_ns
    assert node.cameras["cam-g1-a"].dark_frames == 28


def test_unknown_node_is_refused(replay: tuple[list[AnyMessage], EdgeNode]) -> None:
    _, node = replay
    with pytest.raises(ValueError, match="node 'edge-9' is not in the store config"):
        EdgeNode(node.store, "edge-9", BlobDetector(node.store), print)


def test_published_over_the_reliable_link_and_drained(
    replay: tuple[list[AnyMessage], EdgeNode], tmp_path: Path
) -> None:
    """Outbox + Sender on one side, Receiver on real loopback sockets with CurveZMQ."""
    import socket

    from walkout import keys
    from walkout.link import LinkTiming, Outbox, Receiver, Sender, SqliteLog

    msgs, node = replay
    kd = tmp_path / "keys"
    keys.generate(kd, ["fusion", "edge-1"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    timing = LinkTiming(heartbeat_s=0.2, silent_after_s=0.6, resend_after_s=0.5)
    receiver = Receiver(
        endpoint,
        SqliteLog(tmp_path / "log.sqlite"),
        server_keys=keys.load(kd, "fusion", secret=True),
        allow=keys.allowlist(kd, ["edge-1"]),
        timing=timing,
    ).start()
    outbox = Outbox(tmp_path / "outbox.sqlite", "edge-1")
    sender = Sender(
        outbox,
        endpoint,
        client_keys=keys.load(kd, "edge-1", secret=True),
        server_public_key=keys.load(kd, "fusion", secret=False).public,
        timing=timing,
    ).start()
    try:
        EdgeNode(
            node.store, "edge-1", BlobDetector(node.store), lambda m: outbox.put_many(list(m))
        ).run_recording(Path(str(node.last_recording)))
        assert sender.wait_drained(20.0)
    finally:
        sender.stop()
        receiver.stop()
        outbox.close()
    log = SqliteLog(tmp_path / "log.sqlite")
    try:
        got = [m for _, m in log]
    finally:
        log.close()
    assert [type(m).__name__ for m in got] == [type(m).__name__ for m in msgs]
    assert [m.seq for m in got] == list(range(1, len(msgs) + 1))
    assert got[-1].status == "eos"  # type: ignore[union-attr]
