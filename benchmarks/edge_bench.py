"""One edge node on the demo store's cameras vs ultralytics' own predict/track loop.

    python benchmarks/edge_bench.py [--recording DIR] [--family busy --seed 901 --duration 30]

Footage: a simulated recording (made here with the simulator when ``--recording`` is not
given). The node is ``edge-1`` of the demo store (four shelf cameras and one overhead camera).
Measured, all on this machine in one run:

* **node**: ``EdgeNode.run_recording`` as fast as possible (decode threads, motion gating,
  batched inference, interactions, ByteTrack, publishing into a list): sustained camera frames
  per second = frames / wall time, and the cost of each stage per frame;
* **node, every frame inferred** (motion gate off): the same, to show what gating saves and
  that interaction accuracy does not suffer (both scored against the recording's truth);
* **bare session.run** on one preprocessed input of the model: the floor for inference;
* **video decode** alone (``VideoCapture.read`` over the same files);
* **ultralytics**: ``YOLO(model.onnx).track(video, tracker="bytetrack.yaml", stream=True)`` on
  every camera video of the node, the same model, image size and thresholds, run under
  ``.venv-train`` (it needs torch); frames per second = frames / wall time.

With ``--families`` (``all`` or a comma list) and ``--seeds``, also scores shelf interactions
and plate steps per scenario family on fresh recordings of those seeds, once with the model and
once with an oracle detector drawn from the simulator's truth (the logic alone).

Writes ``benchmarks/results/edge.json`` and ``edge.md`` with the machine description.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from machine import describe, markdown_header  # noqa: E402

from edge.detector import Detector  # noqa: E402
from edge.evaluate import predicted_events, score_interactions  # noqa: E402
from edge.node import EdgeNode, NodeSettings  # noqa: E402
from walkout.config import Store, load_store  # noqa: E402
from walkout.messages import AnyMessage  # noqa: E402
from walkout.recording import Recording  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
NODE = "edge-1"

ULTRA_SCRIPT = r"""
import json, os, sys, time
from pathlib import Path
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
from ultralytics import YOLO
model, imgsz, conf, iou = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
videos = sys.argv[5:]
frames = 0
boxes = 0
t0 = time.perf_counter()
for v in videos:
    yolo = YOLO(model, task="detect")  # a fresh tracker per camera, as one loop per stream
    for r in yolo.track(source=v, stream=True, persist=True, tracker="bytetrack.yaml",
                        imgsz=imgsz, conf=conf, iou=iou, device="cpu", verbose=False):
        frames += 1
        boxes += len(r.boxes)
wall = time.perf_counter() - t0
print(json.dumps({"frames": frames, "wall_s": wall, "boxes": boxes}))
"""


def make_recording(store: Store, family: str, seed: int, duration_s: float, out: Path) -> Path:
    from sim.record import record

    record(store, family, seed, duration_s, out)
    return out


def run_node(
    store: Store, folder: Path, det: Detector, gating: bool
) -> tuple[dict[str, Any], list[AnyMessage]]:
    msgs: list[AnyMessage] = []
    node = EdgeNode(store, NODE, det, msgs.extend, settings=NodeSettings(motion_gating=gating))
    st = node.run_recording(folder)
    per_frame = {k: round(v / 1e6 / max(st.frames, 1), 3) for k, v in sorted(st.stage_ns.items())}
    per_inferred = {
        k: round(v / 1e6 / max(st.inferred, 1), 3)
        for k, v in sorted(st.stage_ns.items())
        if k.startswith("detect")
    }
    return {
        "frames": st.frames,
        "inferred": st.inferred,
        "batches": st.batches,
        "wall_s": round(st.wall_s, 3),
        "camera_fps": round(st.frames / st.wall_s, 1),
        "inferred_share": round(st.inferred / max(st.frames, 1), 3),
        "stage_ms_per_frame": per_frame,
        "detect_ms_per_inferred_frame": per_inferred,
        "interactions": st.interactions,
        "track_updates": st.track_updates,
    }, msgs


def bare_session_ms(det: Detector, rounds: int = 50) -> float:
    h, w = det.input_hw
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32).astype(det.info.input_dtype)
    name = det.info.input_name
    det.session.run(None, {name: x})
    times = []
    for _ in range(rounds):
        t = time.perf_counter_ns()
        det.session.run(None, {name: x})
        times.append(time.perf_counter_ns() - t)
    return round(statistics.median(times) / 1e6, 3)


def decode_ms(videos: list[Path]) -> float:
    frames, t0 = 0, time.perf_counter()
    for v in videos:
        cap = cv2.VideoCapture(str(v))
        while cap.read()[0]:
            frames += 1
        cap.release()
    return round((time.perf_counter() - t0) * 1e3 / max(frames, 1), 3)


def ultralytics_track(model: Path, det: Detector, videos: list[Path]) -> dict[str, Any]:
    py = ROOT / ".venv-train" / "bin" / "python"
    if not py.exists():
        return {"skipped": "no .venv-train with ultralytics and torch"}
    with tempfile.TemporaryDirectory() as cfg:
        env = dict(os.environ, YOLO_CONFIG_DIR=cfg, YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0")
        fonts = Path(cfg) / "Ultralytics"
        fonts.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(py),
            "-c",
            ULTRA_SCRIPT,
            str(model),
            str(det.input_hw[0]),
            str(det.conf_threshold),
            str(det.iou_threshold),
            *map(str, videos),
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-5:]}
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["camera_fps"] = round(out["frames"] / out["wall_s"], 1)
    out["wall_s"] = round(out["wall_s"], 3)
    return out


def accuracy_by_family(
    store: Store, det: Detector, families: list[str], seeds: list[int], duration_s: float
) -> dict[str, Any]:
    from test_edge_oracle import run_with_oracle

    from edge.evaluate import RecordingScore, Tally, by_family, plate_changes, score_plates

    model_scores: list[RecordingScore] = []
    oracle = {f: Tally() for f in families}
    with tempfile.TemporaryDirectory() as tmp:
        for fam in families:
            for seed in seeds:
                folder = make_recording(store, fam, seed, duration_s, Path(tmp) / f"{fam}-{seed}")
                rec = Recording(folder)
                truth = rec.truth()
                assert truth is not None
                msgs: list[AnyMessage] = []
                for node in store.cfg.nodes:
                    if store.node_devices(node.id)["cameras"]:
                        EdgeNode(store, node.id, det, msgs.extend).run_recording(folder)
                inter, _ = score_interactions(truth.interactions, predicted_events(msgs))
                plates = score_plates(store, truth.interactions, plate_changes(store, rec))
                model_scores.append(
                    RecordingScore(str(folder), fam, seed, plates=plates, interactions=inter)
                )
                o, _ = score_interactions(
                    truth.interactions, predicted_events(run_with_oracle(store, folder))
                )
                oracle[fam].add(o)
                print(fam, seed, "model", inter, "oracle", o, "plates", plates, flush=True)
    out = by_family(model_scores)
    for fam in out:
        out[fam]["interactions_oracle_detector"] = oracle[fam].as_dict()
    return out


def render_md(r: dict[str, Any]) -> str:
    g, e, u = r["node"], r["node_every_frame"], r["ultralytics"]
    lines = [
        markdown_header("Edge node throughput", r["machine"]),
        *([f"Note: {r['note']}\n"] if r.get("note") else []),
        f"Footage: `{r['recording']['scenario']}` ({r['recording']['duration_s']} s of store "
        f"time), node `{NODE}`: {', '.join(r['cameras'])}; model `{r['model']}` at "
        f"{r['input_hw'][0]}x{r['input_hw'][1]}, {r['threads']} intra-op threads.\n",
        "| run | camera frames | inferred | wall s | camera frames/s |",
        "|---|---:|---:|---:|---:|",
        f"| node (motion-gated) | {g['frames']} | {g['inferred']} | {g['wall_s']} | "
        f"**{g['camera_fps']}** |",
        f"| node, every frame inferred | {e['frames']} | {e['inferred']} | {e['wall_s']} | "
        f"{e['camera_fps']} |",
    ]
    if "camera_fps" in u:
        lines.append(
            f"| ultralytics `track()` (ByteTrack) | {u['frames']} | {u['frames']} | "
            f"{u['wall_s']} | {u['camera_fps']} |"
        )
        lines.append(
            f"\nNode vs ultralytics: **{r['ratio_vs_ultralytics']}x** the camera frames per "
            "second.\n"
        )
    else:
        lines.append(f"\nultralytics: {u}\n")
    lines += [
        "Per-frame cost by stage (ms, averaged over all camera frames of the gated run; "
        "decode runs in the capture threads):\n",
        "| stage | ms/frame |",
        "|---|---:|",
        f"| decode (VideoCapture.read alone) | {r['decode_ms_per_frame']} |",
    ]
    lines += [f"| {k} | {v} |" for k, v in g["stage_ms_per_frame"].items()]
    lines += [
        f"\nDetector per inferred frame: {g['detect_ms_per_inferred_frame']}; bare "
        f"`session.run` (batch 1): {r['bare_session_run_ms']} ms.\n",
        "Shelf interactions against the recording's truth:\n",
        "| run | tp | fp | fn | precision | recall |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, key in (("motion-gated", "accuracy_gated"), ("every frame", "accuracy_every")):
        a = r[key]
        lines.append(
            f"| {name} | {a['tp']} | {a['fp']} | {a['fn']} | {a['precision']} | {a['recall']} |"
        )
    fam = r.get("accuracy_by_family")
    if fam:
        lines += [
            f"\nPer scenario family (seeds {r['accuracy_seeds']}, {r['accuracy_duration_s']} s "
            "each; recall/precision of shelf interactions with the model and with the oracle "
            "detector, and of plate steps):\n",
            "| family | model P | model R | oracle P | oracle R | plates P | plates R |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, v in fam.items():
            m, o, p = v["interactions"], v["interactions_oracle_detector"], v["plates"]
            lines.append(
                f"| {name} | {m['precision']} | {m['recall']} | {o['precision']} | "
                f"{o['recall']} | {p['precision']} | {p['recall']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "demo-store.yaml"))
    ap.add_argument("--model", default=str(ROOT / "models" / "walkout-det.onnx"))
    ap.add_argument("--recording", type=Path)
    ap.add_argument("--family", default="busy")
    ap.add_argument("--seed", type=int, default=901)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-ultralytics", action="store_true")
    ap.add_argument("--note", default="", help="a line on the run's conditions for the report")
    ap.add_argument("--families", default="", help="'all' or a comma list: score per family")
    ap.add_argument("--seeds", default="201", help="seeds for --families (not tuned on)")
    ap.add_argument("--family-duration", type=float, default=40.0)
    ap.add_argument("--out", default=str(RESULTS / "edge"))
    args = ap.parse_args()
    store = load_store(args.config)
    tmp = None
    folder = args.recording
    if folder is None:
        tmp = tempfile.TemporaryDirectory()
        folder = make_recording(
            store, args.family, args.seed, args.duration, Path(tmp.name) / "rec"
        )
    rec = Recording(folder)
    truth = rec.truth()
    cams = store.node_devices(NODE)["cameras"]
    videos = [rec.camera_video(c) for c in cams]
    det = Detector.from_config(store.cfg.detector, ROOT, intra_op_threads=args.threads)
    model = Path(args.model)
    if model.resolve() != (ROOT / store.cfg.detector.model).resolve():
        det = Detector(model, providers=["cpu"], intra_op_threads=args.threads)
    bare = bare_session_ms(det)
    dec = decode_ms(videos)
    gated, msgs_g = run_node(store, folder, det, gating=True)
    every, msgs_e = run_node(store, folder, det, gating=False)
    ultra = (
        {"skipped": "--no-ultralytics"}
        if args.no_ultralytics
        else ultralytics_track(model, det, videos)
    )
    gated_again, _ = run_node(store, folder, det, gating=True)
    node_cams = set(cams)
    node_truth = [t for t in (truth.interactions if truth else ()) if t.camera_id in node_cams]
    acc_g, _ = score_interactions(node_truth, predicted_events(msgs_g))
    acc_e, _ = score_interactions(node_truth, predicted_events(msgs_e))
    result: dict[str, Any] = {
        "machine": describe("onnxruntime", "opencv-python", "numpy", "trackers"),
        "note": args.note,
        "recording": {
            "scenario": truth.scenario if truth else str(folder),
            "duration_s": rec.manifest.duration_s,
        },
        "cameras": cams,
        "model": str(model.relative_to(ROOT)) if model.is_relative_to(ROOT) else str(model),
        "input_hw": list(det.input_hw),
        "threads": args.threads,
        "bare_session_run_ms": bare,
        "decode_ms_per_frame": dec,
        "node": gated,
        "node_repeat_camera_fps": gated_again["camera_fps"],
        "node_every_frame": every,
        "ultralytics": ultra,
        "accuracy_gated": acc_g.as_dict(),
        "accuracy_every": acc_e.as_dict(),
    }
    if "camera_fps" in ultra:
        result["ratio_vs_ultralytics"] = round(gated["camera_fps"] / ultra["camera_fps"], 2)
    if args.families:
        from sim.scenario import FAMILIES

        fams = list(FAMILIES) if args.families == "all" else args.families.split(",")
        seeds = [int(x) for x in args.seeds.split(",")]
        result["accuracy_seeds"] = seeds
        result["accuracy_duration_s"] = args.family_duration
        result["accuracy_by_family"] = accuracy_by_family(
            store, det, fams, seeds, args.family_duration
        )
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(render_md(result))
    print(render_md(result))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
