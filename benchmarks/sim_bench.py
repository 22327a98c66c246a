"""Simulator speed: store-seconds recorded per wall second for the demo store, all cameras.

    python benchmarks/sim_bench.py [--scenario busy] [--duration 30] [--rounds 3]

Full recording: ``sim.record.record`` (plan, render all 8 cameras, mp4v encode, plates, gates,
truth) with 1 and with 2 worker processes, rounds alternating. Per frame, on one core: the
shelf and overhead renderers alone (no encoding), against the floor any recorder pays: copying a
rendered shelf frame and writing it with the same mp4v VideoWriter.
Writes benchmarks/results/sim.json and sim.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, markdown_header

from sim.record import record
from sim.render import renderer_for
from sim.scenario import plan
from walkout.config import Store, load_store

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def full_round(store: Store, scenario: str, seed: int, duration_s: float, workers: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        record(store, scenario, seed, duration_s, Path(d) / "rec", workers=workers)
        return duration_s / (time.perf_counter() - t0)


def per_frame_ms(store: Store, scenario: str, seed: int, duration_s: float) -> dict[str, float]:
    """Median ms per frame of each renderer kind, and of a bare copy + mp4v write."""
    sc = plan(store, scenario, seed, duration_s)
    out: dict[str, list[float]] = {"shelf": [], "overhead": [], "bare_copy_mp4v_write": []}
    for cam in store.cfg.cameras:
        rend = renderer_for(store, sc, cam.id)
        t0 = time.perf_counter()
        n = sum(1 for _ in rend.frames())
        out[cam.kind].append((time.perf_counter() - t0) * 1e3 / max(1, n))
    cam = store.cfg.cameras[0]
    w, h = cam.resolution
    # the floor is measured on a real rendered shelf frame (noise included), not a synthetic one
    first = next(f for f in renderer_for(store, sc, cam.id).frames() if f.image is not None)
    assert first.image is not None
    frame = first.image
    with tempfile.TemporaryDirectory() as d:
        writer = cv2.VideoWriter(
            str(Path(d) / "x.mp4"), cv2.VideoWriter.fourcc(*"mp4v"), cam.fps, (w, h)
        )
        n = int(duration_s * cam.fps)
        t0 = time.perf_counter()
        for _ in range(n):
            writer.write(frame.copy())
        writer.release()
        out["bare_copy_mp4v_write"].append((time.perf_counter() - t0) * 1e3 / n)
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="busy")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--config", default=str(ROOT / "configs" / "demo-store.yaml"))
    args = ap.parse_args()
    cv2.setNumThreads(1)
    store = load_store(args.config)
    load_before = os.getloadavg()
    one: list[float] = []
    two: list[float] = []
    for r in range(args.rounds):
        one.append(full_round(store, args.scenario, args.seed, args.duration, 1))
        two.append(full_round(store, args.scenario, args.seed, args.duration, 2))
        print(f"round {r + 1}: 1 worker {one[-1]:.2f}, 2 workers {two[-1]:.2f} store-s/wall-s")
    frame = per_frame_ms(store, args.scenario, args.seed, args.duration)
    load_after = os.getloadavg()
    cams = len(store.cfg.cameras)
    fps = store.cfg.cameras[0].fps
    result: dict[str, Any] = {
        "benchmark": "sim",
        "machine": describe("opencv-python", "numpy"),
        "scenario": args.scenario,
        "seed": args.seed,
        "duration_s": args.duration,
        "cameras": cams,
        "fps": fps,
        "store_s_per_wall_s_1_worker": one,
        "store_s_per_wall_s_2_workers": two,
        "median_1_worker": statistics.median(one),
        "median_2_workers": statistics.median(two),
        "per_frame_ms": frame,
        # other work on the machine while it ran (1-minute load average before and after)
        "loadavg_1min_before_after": [load_before[0], load_after[0]],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sim.json").write_text(json.dumps(result, indent=2) + "\n")
    base = frame["bare_copy_mp4v_write"]
    m1, m2 = result["median_1_worker"], result["median_2_workers"]
    md = markdown_header("Simulator speed benchmark", result["machine"]) + (
        f"\nScenario `{args.scenario}` seed {args.seed}, {args.duration:g} s of store time, "
        f"{cams} cameras at {fps:g} fps ({cams * fps:g} frames per store second), "
        f"{args.rounds} rounds alternating; medians. 1-minute load average "
        f"{load_before[0]:.1f} before and {load_after[0]:.1f} after (other work shared the "
        "cores).\n\n"
        "| full recording (plan, render, mp4v, plates, gates, truth) | store s / wall s | "
        "60 s scenario takes |\n|---|---:|---:|\n"
        f"| 1 worker process | {m1:.2f} | {60 / m1:.1f} s |\n"
        f"| 2 worker processes | {m2:.2f} | {60 / m2:.1f} s |\n\n"
        "Per frame, one core (median over cameras of the kind):\n\n"
        "| step | ms / frame | ratio to bare copy + mp4v write |\n|---|---:|---:|\n"
        f"| bare frame copy + mp4v write (floor) | {base:.2f} | 1.00 |\n"
        f"| shelf camera render (no encode) | {frame['shelf']:.2f} | "
        f"{frame['shelf'] / base:.2f} |\n"
        f"| overhead camera render (no encode) | {frame['overhead']:.2f} | "
        f"{frame['overhead'] / base:.2f} |\n"
    )
    (RESULTS / "sim.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
