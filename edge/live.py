"""The live loop: cameras through OpenCV (newest frame first), gates and plates over local TCP
line protocols, until stopped."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from edge.gates import GateServer
from edge.node import EdgeNode
from edge.plate_server import PlateServer
from edge.sources import Capture, CaptureSettings, FrameSource, LiveSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LivePorts:
    """TCP ports for the gate and plate controllers; None: not served."""

    host: str = "127.0.0.1"
    gate_port: int | None = None
    plate_port: int | None = None


def run_live(
    node: EdgeNode,
    stop: threading.Event | None = None,
    *,
    ports: LivePorts = LivePorts(),
    settings: CaptureSettings | None = None,
    sources: dict[str, FrameSource] | None = None,
) -> None:
    """Run the node's devices live until ``stop`` is set (or Ctrl-C)."""
    stop = stop or threading.Event()
    settings = settings or CaptureSettings()
    sources = sources or {
        cam_id: LiveSource(cam_id, node.store.cameras[cam_id].source) for cam_id in node.cameras
    }
    captures = [Capture(src, settings).start() for src in sources.values()]
    gates = plates = None
    if ports.gate_port is not None:
        gates = GateServer(node.node_id, node.gate_ids, host=ports.host, port=ports.gate_port)
        log.info("gate controllers: connect to %s:%d", *gates.start().address)
    elif node.gate_ids:
        log.warning(
            "node %s runs gates but no --gate-port is set: gates are not read", node.node_id
        )
    if ports.plate_port is not None:
        plates = PlateServer(node.plates, host=ports.host, port=ports.plate_port)
        log.info("plate controllers: connect to %s:%d", *plates.start().address)
    elif node.plates:
        log.warning(
            "node %s runs %d plates but no --plate-port is set: plates are not read",
            node.node_id,
            len(node.plates),
        )
    node.live_addresses = {
        "gates": gates.address if gates else None,
        "plates": plates.address if plates else None,
    }
    try:
        while not stop.is_set():
            if gates is not None:
                for event in gates.poll():
                    node.gate_event(event)
            if plates is not None:
                for reading in plates.poll():
                    node.plate_reading(*reading)
            frames = [f for f in (c.get(timeout_s=0.0) for c in captures) if f is not None]
            if frames:
                node.process_frames(frames)
            else:
                time.sleep(0.005)
                node.advance_time(time.time_ns())
            node.flush()
            node.maybe_health(captures)
    finally:
        for c in captures:
            c.stop()
        if gates is not None:
            gates.stop()
        if plates is not None:
            plates.stop()
        node.finish(time.time_ns())
