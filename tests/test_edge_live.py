"""The live loop: cameras through OpenCV URIs, gates and plates over real local sockets."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from test_edge_node import CONFIG, BlobDetector, overhead_frame, shelf_frame

from edge.gates import send_gate_line
from edge.live import LivePorts, run_live
from edge.node import EdgeNode
from edge.plate_server import PlateServer
from edge.sources import CaptureSettings, LiveSource
from walkout.config import load_store
from walkout.messages import AnyMessage, GateEvent, Heartbeat, TrackUpdate, WeightChange


def write(path: Path, frames: list[np.ndarray]) -> None:
    import cv2

    wr = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 15.0, (640, 360))
    for f in frames:
        wr.write(f)
    wr.release()


def test_live_node_reads_cameras_gates_and_plates(tmp_path: Path) -> None:
    store = load_store(CONFIG)
    write(tmp_path / "shelf.mp4", [shelf_frame(i, picks=False) for i in range(20)])
    write(tmp_path / "over.mp4", [overhead_frame(i) for i in range(20)])
    sources = {
        c: LiveSource(c, str(tmp_path / ("over.mp4" if c == "cam-ov-1" else "shelf.mp4")))
        for c in store.node_devices("edge-1")["cameras"]
    }
    msgs: list[AnyMessage] = []
    lock = threading.Lock()

    def publish(batch: object) -> None:
        with lock:
            msgs.extend(batch)  # type: ignore[call-overload]

    node = EdgeNode(store, "edge-1", BlobDetector(store), publish)
    stop = threading.Event()
    ports = LivePorts(gate_port=0, plate_port=0)
    t = threading.Thread(
        target=run_live,
        args=(node, stop),
        kwargs={"ports": ports, "sources": sources, "settings": CaptureSettings(stall_after_s=30)},
    )
    t.start()
    try:
        deadline = time.monotonic() + 10
        while not node.live_addresses and time.monotonic() < deadline:
            time.sleep(0.01)
        gate_addr, plate_addr = node.live_addresses["gates"], node.live_addresses["plates"]
        assert gate_addr is not None and plate_addr is not None
        assert send_gate_line(gate_addr, '{"gate_id": "gate-out", "kind": "exit"}') == "ok"
        now = time.time_ns()
        rng = np.random.default_rng(1)
        lines = []
        for k in range(60):
            w = 3010.0 - (345.0 if k >= 30 else 0.0) + rng.normal(0, 1.5)
            lines.append(f"{now + k * 40_000_000},P-G1-L00,{w:.2f}\n")
        with socket.create_connection(plate_addr, timeout=5) as s:
            s.sendall("".join(lines).encode() + b"9,P-nope,1.0\n")
            f = s.makefile("rb")
            assert f.readline().decode().startswith("error unknown plate 'P-nope'")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with lock:
                kinds = {type(m) for m in msgs}
            if {GateEvent, WeightChange, TrackUpdate} <= kinds:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive()
    (wc,) = [m for m in msgs if isinstance(m, WeightChange)]
    assert abs(wc.delta_g + 345) < 3
    assert [m.gate_id for m in msgs if isinstance(m, GateEvent)] == ["gate-out"]
    assert node.stats.frames >= 5  # live capture drops the oldest: a file decodes faster
    assert isinstance(msgs[-1], Heartbeat) and msgs[-1].status == "eos"


def test_plate_server_bounds_its_buffer() -> None:
    srv = PlateServer(["P-1"], max_pending=5).start()
    try:
        with socket.create_connection(srv.address, timeout=5) as s:
            s.sendall(b"".join(f"{i},P-1,{i}.0\n".encode() for i in range(8)))
            s.sendall(b"x,P-1,1\n")
            assert socket.SocketIO(s, "r").readline().startswith(b"error ts_ns must be")
        got = srv.poll()
        assert [r[0] for r in got] == [3, 4, 5, 6, 7] and srv.dropped == 3
    finally:
        srv.stop()
