"""``walkout edge record``: capture a node's live cameras into the recording format.

Each camera is read by its own :class:`~edge.sources.Capture` (non-dropping, so every frame
the camera delivered is kept) and written as ``cameras/<id>.mp4`` (mp4v) with its
``cameras/<id>.csv`` of ``frame_index,ts_ns``; the manifest names the store config it was made
with. Gates and plates are not captured here yet (their files are left out of the manifest).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2

from edge.sources import Capture, CaptureSettings, FrameSource, LiveSource
from walkout.config import Store
from walkout.recording import CameraTrack, Manifest, write_camera_timestamps, write_manifest

log = logging.getLogger(__name__)

SourceFactory = Callable[[str, str], FrameSource]


def _live(camera_id: str, uri: str) -> FrameSource:
    return LiveSource(camera_id, uri)


def record(
    store: Store,
    node_id: str,
    out: Path,
    duration_s: float,
    *,
    stop: threading.Event | None = None,
    make_source: SourceFactory = _live,
    settings: CaptureSettings | None = None,
) -> Manifest:
    """Record every camera of ``node_id`` for ``duration_s`` seconds (or until ``stop``)."""
    stop = stop or threading.Event()
    settings = settings or CaptureSettings(buffer_frames=64, blocking=True)
    cams = store.node_devices(node_id)["cameras"]
    if not cams:
        raise ValueError(f"node {node_id!r} runs no camera; nothing to record")
    (out / "cameras").mkdir(parents=True, exist_ok=True)
    captures = {c: Capture(make_source(c, store.cameras[c].source), settings) for c in cams}
    writers: dict[str, cv2.VideoWriter] = {}
    index: dict[str, list[int]] = {c: [] for c in cams}
    stamps: dict[str, list[int]] = {c: [] for c in cams}
    start_ns = time.time_ns()
    deadline = time.monotonic() + duration_s
    for c in captures.values():
        c.start()
    try:
        while time.monotonic() < deadline and not stop.is_set():
            got = False
            for cam_id, cap in captures.items():
                f = cap.get(timeout_s=0.0)
                if f is None:
                    continue
                got = True
                h, w = f.image.shape[:2]
                wr = writers.get(cam_id)
                if wr is None:
                    fps = store.cameras[cam_id].fps
                    path = out / "cameras" / f"{cam_id}.mp4"
                    wr = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
                    writers[cam_id] = wr
                wr.write(f.image)
                index[cam_id].append(f.index)
                stamps[cam_id].append(f.ts_ns)
            if not got:
                if all(c.done for c in captures.values()):
                    break
                time.sleep(0.002)
    finally:
        for c in captures.values():
            c.stop()
        for wr in writers.values():
            wr.release()
    tracks = {}
    for cam_id in cams:
        write_camera_timestamps(out / "cameras" / f"{cam_id}.csv", index[cam_id], stamps[cam_id])
        cam = store.cameras[cam_id]
        tracks[cam_id] = CameraTrack(
            video=f"cameras/{cam_id}.mp4",
            timestamps=f"cameras/{cam_id}.csv",
            fps=cam.fps,
            resolution=(cam.resolution[0], cam.resolution[1]),
            frames=len(index[cam_id]),
        )
        if not index[cam_id]:
            log.warning("camera %s delivered no frame while recording", cam_id)
    manifest = Manifest(
        origin="edge",
        store_id=store.cfg.store.id,
        store_config=store.path.read_text(),
        store_config_sha256=store.sha256,
        start_ts_ns=start_ns,
        end_ts_ns=time.time_ns(),
        cameras=tracks,
        plates=None,
        gates=None,
        retention_days=store.cfg.retention.clip_days,
    )
    write_manifest(out, manifest)
    return manifest
