"""``walkout sim record``: plan a scenario and write a complete recording folder.

The folder follows :mod:`walkout.recording`: manifest, per-camera mp4v video and frame
timestamps (a dropped frame is a missing row), plate readings, gate events and the truth (every
reach into a lane and the expected receipt of every visit). Cameras render in parallel worker
processes; each has its own seeded generator, so the output does not depend on scheduling.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from sim.render import renderer_for
from sim.scenario import FAMILIES, Scenario, ScenarioError, plan
from sim.sensors import gate_records, plate_rows
from walkout.config import ConfigError, Store, load_store
from walkout.recording import (
    CAMERAS,
    GATES,
    PLATES,
    TRUTH,
    CameraTrack,
    ExpectedReceipt,
    Manifest,
    ReceiptLine,
    Truth,
    TruthInteraction,
    TruthShopper,
    write_camera_timestamps,
    write_gates,
    write_manifest,
    write_plates,
    write_truth,
)


@dataclass(frozen=True)
class CameraResult:
    camera_id: str
    frames: int
    dropped: int
    render_s: float


def build_truth(store: Store, sc: Scenario) -> Truth:
    """Every reach as a truth interaction and, per visit, what it carried out."""
    gates = gate_records(store, sc)
    entry_ts = {}
    for g in gates:
        if g.kind == "entry" and g.account_id is not None:
            entry_ts[(g.account_id, g.ts_ns)] = g.ts_ns
    shoppers = tuple(
        TruthShopper(
            shopper_id=s.shopper_id,
            account_id=s.account_id,
            group_id=s.group_id,
            entry_ts_ns=sc.ts_ns(tl.entry_s),
            exit_ts_ns=sc.ts_ns(tl.exit_s),
        )
        for s, tl in zip(sc.shoppers, sc.timelines, strict=True)
    )
    inters = []
    for n, r in enumerate(sc.reaches):
        spec = sc.shoppers[r.shopper]
        sku = r.units[0].sku if r.units else store.lanes[r.lane_id].sku
        inters.append(
            TruthInteraction(
                id=f"ti-{n + 1:04d}",
                shopper_id=spec.shopper_id,
                account_id=spec.account_id,
                kind=r.kind,
                lane_id=r.lane_id,
                sku=sku,
                quantity=r.quantity,
                start_ts_ns=sc.ts_ns(r.t_in),
                end_ts_ns=sc.ts_ns(r.t_out),
                camera_id=r.camera_id,
                family_tag=r.tag or sc.family,
            )
        )
    receipts = []
    for gid in dict.fromkeys(s.group_id for s in sc.shoppers):
        members = [s for s in shoppers if s.group_id == gid]
        counts = Counter(u.sku for u in sc.carried_out.get(gid, []))
        receipts.append(
            ExpectedReceipt(
                account_id=members[0].account_id,
                group_id=gid,
                entry_ts_ns=min(m.entry_ts_ns for m in members),
                exit_ts_ns=max(m.exit_ts_ns for m in members),
                lines=tuple(ReceiptLine(sku=k, quantity=q) for k, q in sorted(counts.items())),
            )
        )
    receipts.sort(key=lambda r: (r.exit_ts_ns, r.group_id))
    return Truth(
        scenario=f"{sc.family}-{sc.seed}",
        family=sc.family,
        seed=sc.seed,
        store_id=store.cfg.store.id,
        start_ts_ns=sc.start_ts_ns,
        end_ts_ns=sc.ts_ns(sc.duration_s),
        shoppers=shoppers,
        interactions=tuple(inters),
        receipts=tuple(receipts),
    )


def _render_camera(store: Store, sc: Scenario, camera_id: str, out: str) -> CameraResult:
    t0 = time.perf_counter()
    cam = store.cameras[camera_id]
    rend = renderer_for(store, sc, camera_id)
    video = Path(out) / CAMERAS / f"{camera_id}.mp4"
    fourcc = cv2.VideoWriter.fourcc(*"mp4v")
    writer = cv2.VideoWriter(str(video), fourcc, cam.fps, cam.resolution)
    if not writer.isOpened():
        raise OSError(f"cannot open a video writer for {video}; does OpenCV have mp4v support?")
    idx: list[int] = []
    ts: list[int] = []
    dropped = 0
    try:
        for f in rend.frames():
            if f.image is None:
                dropped += 1
                continue
            writer.write(f.image)
            idx.append(f.index)
            ts.append(sc.ts_ns(f.t_s))
    finally:
        writer.release()
    write_camera_timestamps(Path(out) / CAMERAS / f"{camera_id}.csv", idx, ts)
    return CameraResult(camera_id, len(idx), dropped, time.perf_counter() - t0)


_WORKER: dict[str, Any] = {}


def _init_worker(store: Store, sc: Scenario, out: str) -> None:
    cv2.setNumThreads(1)
    _WORKER.update(store=store, sc=sc, out=out)


def _worker_camera(camera_id: str) -> CameraResult:
    return _render_camera(_WORKER["store"], _WORKER["sc"], camera_id, _WORKER["out"])


def record(
    store: Store,
    family: str,
    seed: int,
    duration_s: float,
    out: Path,
    workers: int | None = None,
    cameras: list[str] | None = None,
) -> dict[str, Any]:
    """Plan and write a recording; returns a summary (counts and timings)."""
    t0 = time.perf_counter()
    sc = plan(store, family, seed, duration_s)
    out.mkdir(parents=True, exist_ok=True)
    (out / CAMERAS).mkdir(exist_ok=True)
    cam_ids = cameras if cameras is not None else [c.id for c in store.cfg.cameras]
    unknown = [c for c in cam_ids if c not in store.cameras]
    if unknown:
        raise ScenarioError(f"unknown camera(s) {', '.join(unknown)}; see the config's cameras")
    n_workers = workers if workers is not None else min(len(cam_ids), os.cpu_count() or 1, 4)
    results: list[CameraResult] = []
    if n_workers <= 1 or len(cam_ids) <= 1:
        results = [_render_camera(store, sc, c, str(out)) for c in cam_ids]
    else:
        # Not "fork": a caller with threads (ZeroMQ, ONNX Runtime, a test runner) can leave a
        # lock held in the forked child, which then hangs. The fork server starts clean.
        ctx = multiprocessing.get_context("forkserver" if sys.platform == "linux" else "spawn")
        with ProcessPoolExecutor(
            n_workers, mp_context=ctx, initializer=_init_worker, initargs=(store, sc, str(out))
        ) as pool:
            results = list(pool.map(_worker_camera, cam_ids))
    write_plates(out / PLATES, plate_rows(store, sc))
    write_gates(out / GATES, gate_records(store, sc))
    truth = build_truth(store, sc)
    write_truth(out, truth)
    by_id = {r.camera_id: r for r in results}
    config_text = store.path.read_text(encoding="utf-8")
    manifest = Manifest(
        origin="sim",
        store_id=store.cfg.store.id,
        store_config=config_text,
        store_config_sha256=store.sha256,
        start_ts_ns=sc.start_ts_ns,
        end_ts_ns=sc.ts_ns(duration_s),
        cameras={
            c: CameraTrack(
                video=f"{CAMERAS}/{c}.mp4",
                timestamps=f"{CAMERAS}/{c}.csv",
                fps=store.cameras[c].fps,
                resolution=store.cameras[c].resolution,
                frames=by_id[c].frames,
            )
            for c in cam_ids
        },
        plates=PLATES,
        gates=GATES,
        truth=TRUTH,
        scenario=truth.scenario,
        family=family,
        seed=seed,
        retention_days=store.cfg.retention.clip_days,
    )
    write_manifest(out, manifest)
    return {
        "out": str(out),
        "family": family,
        "seed": seed,
        "duration_s": duration_s,
        "shoppers": len(sc.shoppers),
        "visits": len(truth.receipts),
        "interactions": len(truth.interactions),
        "frames": sum(r.frames for r in results),
        "dropped": sum(r.dropped for r in results),
        "wall_s": round(time.perf_counter() - t0, 3),
    }


def _record_cmd(args: argparse.Namespace) -> int:
    try:
        store = load_store(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        summary = record(
            store,
            args.scenario,
            args.seed,
            args.duration,
            Path(args.out),
            args.workers,
            args.cameras.split(",") if args.cameras else None,
        )
    except ScenarioError as exc:
        print(f"walkout sim record: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def _families_cmd(args: argparse.Namespace) -> int:
    for name, (_fn, text) in FAMILIES.items():
        print(f"{name:18s} {text}")
    return 0


def register_commands(cmds: Any, default_config: str) -> None:
    rec = cmds.add_parser("record", help="record a simulated scenario into a recording folder")
    rec.add_argument(
        "--scenario",
        required=True,
        choices=list(FAMILIES),
        help="scenario family (see 'walkout sim families')",
    )
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--duration", type=float, default=60.0, help="store seconds to record")
    rec.add_argument("--out", required=True, help="recording folder (created)")
    rec.add_argument("--config", default=default_config)
    rec.add_argument(
        "--workers",
        type=int,
        default=None,
        help="camera render processes (default: CPU cores, at most 4)",
    )
    rec.add_argument(
        "--cameras", default=None, help="comma-separated camera ids to render (default: all)"
    )
    rec.set_defaults(handler=_record_cmd)
    fam = cmds.add_parser("families", help="list the scenario families")
    fam.set_defaults(handler=_families_cmd)
