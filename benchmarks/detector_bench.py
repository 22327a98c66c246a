"""Detector path vs bare ``session.run`` vs ultralytics ``predict``, same model, same frames.

    python benchmarks/detector_bench.py [--rounds 15] [--model models/walkout-det.onnx]

Frames are 1280x720 shelf-camera images rendered by the simulator (a fixed seed), picked so
that the shipped model finds about 0, 20 and 50 objects in them (0: an empty grey frame; 50:
2x2 mosaics of shelf images). For each model variant (fp32, int8) and batch size (1, 4):

* ours: ``Detector.detect`` on the frames: letterbox into the preallocated input, one
  ``session.run``, numpy decoding, class-aware NMS, boxes mapped back to frame pixels;
* bare: ``session.run`` alone on the very input tensor our path built (same session);
* ultralytics: ``YOLO(model.onnx).predict`` on the same frames (its own ONNX Runtime session,
  preprocessing and torch NMS), same thresholds.

All three run interleaved in one process, round after round, so load from other work on the
machine hits them alike; figures are medians per frame. Ultralytics needs torch: when it is
missing here the script re-runs itself under ``.venv-train`` if that exists, and otherwise
skips that column with a note. Writes ``benchmarks/results/detector.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, markdown_header  # noqa: E402

from edge.detector import Detector  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = (0, 20, 50)
FRAME_HW = (720, 1280)
Frame = np.ndarray[Any, np.dtype[np.uint8]]


def _reexec_under_train_venv() -> None:
    py = ROOT / ".venv-train" / "bin" / "python"
    if os.environ.get("WALKOUT_BENCH_REEXEC") or not py.exists():
        return
    env = dict(os.environ, WALKOUT_BENCH_REEXEC="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    print("ultralytics is not installed here: re-running under .venv-train", file=sys.stderr)
    os.execve(str(py), [str(py), __file__, *sys.argv[1:]], env)


def render_candidates(config: Path, count: int, seed: int) -> list[Frame]:
    """1280x720 frames: shelf images scaled up, and 2x2 mosaics of them."""
    from sim.dataset import render_shelf_sample
    from walkout.config import load_store

    store = load_store(config)
    rng = np.random.Generator(np.random.PCG64(seed))
    h, w = FRAME_HW
    shelves = [render_shelf_sample(store, rng)[0] for _ in range(count)]
    singles: list[Frame] = [
        np.asarray(cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)
        for img in shelves
    ]
    mosaics: list[Frame] = []
    for i in range(0, len(shelves) - 3, 4):
        quarter = [cv2.resize(img, (w // 2, h // 2)) for img in shelves[i : i + 4]]
        mosaics.append(
            np.asarray(np.vstack([np.hstack(quarter[:2]), np.hstack(quarter[2:])]), np.uint8)
        )
    return singles + mosaics


def pick_frames(det: Detector, candidates: list[Frame], per_level: int) -> dict[int, list[Frame]]:
    """For each level, the candidates whose detection count is nearest to it."""
    counts = [len(det.detect_one(f)) for f in candidates]
    grey = np.full((*FRAME_HW, 3), 114, np.uint8)
    rng = np.random.default_rng(0)
    empty = [
        np.clip(grey + rng.normal(0, 3, grey.shape), 0, 255).astype(np.uint8)
        for _ in range(per_level)
    ]
    out: dict[int, list[Frame]] = {0: empty}
    for level in LEVELS[1:]:
        order = np.argsort([abs(c - level) for c in counts], kind="stable")[:per_level]
        out[level] = [candidates[i] for i in order]
    return out


def _timed(fn: Callable[[], object]) -> int:
    t = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t


def _bare(det: Detector, x: np.ndarray[Any, Any]) -> object:
    return det.session.run(None, {det.info.input_name: x})


def _ultra(yolo: Any, det: Detector, chunk: list[Frame], counts: list[int]) -> object:
    res = yolo.predict(
        chunk, imgsz=det.input_hw[0], conf=det.conf_threshold, iou=det.iou_threshold,
        device="cpu", verbose=False, batch=len(chunk),
    )  # fmt: skip
    counts.extend(len(r.boxes) for r in res)
    return res


def bench_variant(
    name: str,
    path: Path,
    frames: dict[int, list[Frame]],
    rounds: int,
    use_ultralytics: bool,
    threads: int,
) -> list[dict[str, Any]]:
    det = Detector(path, providers=["cpu"], intra_op_threads=threads, max_batch=4)
    yolo = None
    if use_ultralytics:
        from ultralytics import YOLO

        yolo = YOLO(str(path), task="detect")
    rows = []
    for batch in (1, 4):
        if batch > 1 and det.batch_size < batch:
            continue
        for level in LEVELS:
            pool = frames[level]
            chunks = [pool[i : i + batch] for i in range(0, len(pool) - batch + 1, batch)]
            inputs = []
            for chunk in chunks:  # the exact tensors our path feeds the model
                det.detect(chunk)
                inputs.append(det.last_input()[: len(chunk)].copy())
            counts = [len(d) for chunk in chunks for d in det.detect(chunk)]
            ucounts: list[int] = []
            for _ in range(2):  # warm-up, ultralytics builds its session lazily
                det.detect(chunks[0])
                if yolo is not None:
                    _ultra(yolo, det, chunks[0], ucounts)
            ucounts.clear()
            t_ours: list[float] = []
            t_bare: list[float] = []
            t_ultra: list[float] = []
            stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": []}
            own_ratio: list[float] = []  # whole call / its own session.run: robust to load
            for r in range(rounds):
                k = r % len(chunks)
                chunk, x = chunks[k], inputs[k]
                jobs: list[tuple[list[float], Callable[[], object]]] = [
                    (t_ours, partial(det.detect, chunk)),
                    (t_bare, partial(_bare, det, x)),
                ]
                if yolo is not None:
                    jobs.append((t_ultra, partial(_ultra, yolo, det, chunk, ucounts)))
                # rotate the order so no method always runs right after the same other one
                for j in range(len(jobs)):
                    sink, job = jobs[(j + r) % len(jobs)]
                    sink.append(_timed(job) / 1e6 / len(chunk))
                    if sink is t_ours:
                        lt = det.last_times
                        stages["preprocess"].append(lt.preprocess_ns / 1e6 / len(chunk))
                        stages["inference"].append(lt.inference_ns / 1e6 / len(chunk))
                        stages["postprocess"].append(lt.postprocess_ns / 1e6 / len(chunk))
                        own_ratio.append(sink[-1] * len(chunk) * 1e6 / lt.inference_ns)
            ours = statistics.median(t_ours)
            bare = statistics.median(t_bare)
            row: dict[str, Any] = {
                "variant": name,
                "batch": batch,
                "level": level,
                "objects_mean": round(float(np.mean(counts)), 1),
                "ours_ms": round(ours, 2),
                "bare_ms": round(bare, 2),
                "ours_over_bare": round(ours / bare, 3),
                "ours_over_own_run": round(statistics.median(own_ratio), 3),
                "stages_ms": {k: round(statistics.median(v), 3) for k, v in stages.items()},
                "rounds": rounds,
            }
            if t_ultra:
                ultra_ms = statistics.median(t_ultra)
                row["ultralytics_ms"] = round(ultra_ms, 2)
                row["ultralytics_over_ours"] = round(ultra_ms / ours, 3)
                row["ultralytics_objects_mean"] = round(float(np.mean(ucounts)), 1)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    return rows


def render_md(result: dict[str, Any]) -> str:
    out = [
        markdown_header("Detector: our path vs bare session.run vs ultralytics", result["machine"])
    ]
    out += [
        "",
        f"Model `{result['models']['fp32']}` (int8: `{result['models'].get('int8')}`), input "
        f"{result['input_hw'][0]}x{result['input_hw'][1]} max, rect letterbox: 1280x720 frames "
        f"run at {result['run_hw'][0]}x{result['run_hw'][1]}; {result['threads']} intra-op "
        f"threads; conf {result['conf']}, IoU {result['iou']}. Per-frame medians over "
        f"{result['rounds']} interleaved rounds. ours = preprocess + session.run + decode + NMS "
        "+ mapping back; bare = session.run alone on the same tensor; ultralytics = "
        "`YOLO(model.onnx).predict` on the same frames. ours/own run = our whole call over the "
        "session.run inside that same call (the overhead of our path, insensitive to load from "
        "other work that makes separate calls differ).",
        "",
        "| variant | batch | target objects | found | ours ms | bare ms | ours/bare | ours/own run "
        "| pre / infer / post ms | ultralytics ms | ultralytics/ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        st = r["stages_ms"]
        out.append(
            f"| {r['variant']} | {r['batch']} | {r['level']} | {r['objects_mean']} | "
            f"{r['ours_ms']} | {r['bare_ms']} | {r['ours_over_bare']} | {r['ours_over_own_run']} | "
            f"{st['preprocess']} / {st['inference']} / "
            f"{st['postprocess']} | {r.get('ultralytics_ms', 'n/a')} | "
            f"{r.get('ultralytics_over_ours', 'n/a')} |"
        )
    if "load_average_1m_at_end" in result:
        load = result["load_average_1m_at_end"]
        out += ["", f"Load average (1 min) at the end of the run: {load} on "
                f"{result['machine']['cores']} cores."]  # fmt: skip
    if result.get("note"):
        out += ["", result["note"]]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "walkout-det.onnx"))
    ap.add_argument("--int8", default=str(ROOT / "models" / "walkout-det-int8.onnx"))
    ap.add_argument("--config", default=str(ROOT / "configs" / "demo-store.yaml"))
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--frames-per-level", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-ultralytics", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "detector"))
    args = ap.parse_args()
    has_ultra = all(importlib.util.find_spec(m) for m in ("ultralytics", "torch"))
    if not has_ultra and not args.no_ultralytics:
        _reexec_under_train_venv()
    note = ""
    if not has_ultra and not args.no_ultralytics:
        note = (
            "ultralytics column skipped: ultralytics/torch are not installed (create "
            ".venv-train, see `walkout train --help`)."
        )
    use_ultra = has_ultra and not args.no_ultralytics
    if use_ultra:
        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / "runs" / ".ultralytics-config"))
    fp32 = Path(args.model)
    probe = Detector(fp32, providers=["cpu"], intra_op_threads=args.threads)
    frames = pick_frames(probe, render_candidates(Path(args.config), 48, args.seed),
                         args.frames_per_level)  # fmt: skip
    probe.detect_one(frames[20][0])
    run_hw = probe.last_input().shape[2:]
    variants = {"fp32": fp32}
    if Path(args.int8).is_file():
        variants["int8"] = Path(args.int8)
    rows: list[dict[str, Any]] = []
    for name, path in variants.items():
        rows += bench_variant(name, path, frames, args.rounds, use_ultra, args.threads)
    result = {
        "machine": describe("onnxruntime", "opencv-python", "numpy", "ultralytics", "torch"),
        "models": {k: str(Path(v).relative_to(ROOT)) if Path(v).is_absolute() and
                   Path(v).is_relative_to(ROOT) else str(v) for k, v in variants.items()},
        "input_hw": list(probe.input_hw),
        "run_hw": [int(v) for v in run_hw],
        "threads": args.threads,
        "conf": probe.conf_threshold,
        "iou": probe.iou_threshold,
        "rounds": args.rounds,
        "rows": rows,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "note": note,
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(render_md(result))
    print(render_md(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
