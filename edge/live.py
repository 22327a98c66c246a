"""The live loop: cameras through OpenCV, newest frame first, until interrupted."""

from __future__ import annotations

import logging
import threading
import time

from edge.node import EdgeNode
from edge.sources import Capture, CaptureSettings, LiveSource

log = logging.getLogger(__name__)


def run_live(
    node: EdgeNode,
    stop: threading.Event | None = None,
    settings: CaptureSettings | None = None,
) -> None:
    """Run the node's cameras live (drop-oldest capture, watchdog reopen) until ``stop``."""
    stop = stop or threading.Event()
    settings = settings or CaptureSettings()
    captures = [
        Capture(LiveSource(cam_id, node.store.cameras[cam_id].source), settings).start()
        for cam_id in node.cameras
    ]
    if node.plates:
        log.warning(
            "node %s: live plate readers are not wired yet; %d plates are not read",
            node.node_id,
            len(node.plates),
        )
    try:
        while not stop.is_set():
            frames = [f for f in (c.get(timeout_s=0.0) for c in captures) if f is not None]
            if not frames:
                time.sleep(0.005)
                node._advance_time(time.time_ns())
                node._flush()
                node._maybe_health(captures)
                continue
            node.process_frames(frames)
            node._flush()
            node._maybe_health(captures)
    finally:
        for c in captures:
            c.stop()
        node.finish(time.time_ns())
