"""``walkout train``: train, export, quantize and evaluate the shipped detector, offline.

One command reproduces the shipped model::

    walkout train                      # defaults: 2000 train / 400 val images, seed 1, 1 hour

It (1) writes the simulator's training set with ``walkout sim dataset`` unless it exists,
(2) trains ultralytics YOLO11n from its yaml (no downloads: ``YOLO_OFFLINE``, a private config
dir, bundled fonts, plots off), (3) exports ONNX (fp32, dynamic batch and size) and an int8
variant with onnxruntime's quantizer, (4) evaluates mAP50 / mAP50-95 per class of both files on
the held-out split (rendered from another seed), look-alike SKU pairs reported on their own,
(5) measures latency on this CPU and (6) writes the model and its card (``.md`` + ``.json``)
to ``models/``.

``--model models/walkout-det.onnx`` continues training from an exported model whose ``.pt`` is
gone: the weights are rebuilt into a checkpoint (see ``checkpoint_from_onnx``).

torch and ultralytics are imported only inside the training process. When they are missing
from the current interpreter the command re-runs itself under ``.venv-train/bin/python``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TRAIN_VENV = Path(".venv-train")
REEXEC_ENV = "WALKOUT_TRAIN_REEXEC"
INSTALL_HINT = (
    "training needs torch and ultralytics. Install them into a separate environment:\n"
    "  python3.11 -m venv .venv-train && .venv-train/bin/pip install "
    "torch==2.14.1 torchvision==0.29.1 ultralytics onnx onnxslim onnxruntime msgspec pyyaml\n"
    "or into this one with: pip install -e '.[train]'"
)


@dataclass(frozen=True)
class Option:
    flag: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] | None = None


OPTIONS: tuple[Option, ...] = (
    Option("--config", str, "configs/demo-store.yaml", "store config (classes, look-alikes)"),
    Option("--data", str, "", "existing dataset folder with data.yaml (default: write one)"),
    Option("--datasets-dir", str, "datasets", "where generated datasets go"),
    Option("--images", int, 2000, "train images to render"),
    Option("--val-images", int, 400, "held-out images to render (another seed)"),
    Option("--seed", int, 1, "dataset seed: train uses it, val uses seed + 1000"),
    Option(
        "--model",
        str,
        "yolo11n.yaml",
        "model yaml, a local .pt to fine-tune, or an exported walkout .onnx to continue from "
        "(its weights are rebuilt into a checkpoint, BatchNorm statistics re-estimated)",
    ),
    Option("--weights", str, "", "skip training: export and evaluate this .pt"),
    Option("--imgsz", int, 320, "training and export input size (pixels)"),
    Option("--epochs", int, 300, "epoch cap (the time budget usually ends training first)"),
    Option("--time-h", float, 1.0, "training time budget in hours (0: epochs only)"),
    Option("--patience", int, 30, "stop after this many epochs without improvement"),
    Option("--batch", int, 32, "training batch size"),
    # A short CPU budget gives few epochs: a higher learning rate than ultralytics' automatic
    # choice (tuned for fine-tuning), one warm-up epoch and mosaic off only for the last two.
    Option("--optimizer", str, "AdamW", "optimizer (ultralytics name, or auto)"),
    Option("--lr0", float, 0.002, "initial learning rate"),
    Option("--warmup-epochs", float, 1.0, "learning-rate warm-up epochs"),
    Option("--close-mosaic", int, 2, "final epochs trained without mosaic augmentation"),
    Option("--workers", int, 2, "dataloader workers"),
    Option("--train-seed", int, 0, "training seed"),
    Option("--run-dir", str, "runs/train/walkout-det", "ultralytics run folder"),
    Option("--out", str, "models/walkout-det.onnx", "shipped model path (card goes beside)"),
    Option(
        "--int8",
        str,
        "both",
        "int8 variants: dynamic (weights only), static (QDQ, calibrated), both or none",
        ("dynamic", "static", "both", "none"),
    ),
    Option("--calib-images", int, 64, "train images used to calibrate static int8"),
)
FLAGS = ("--resume",)


def register(sub: Any, area: str, help_text: str) -> None:
    p = sub.add_parser(
        area,
        help=help_text,
        description=__doc__.split("\n\n")[0] if __doc__ else help_text,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for opt in OPTIONS:
        p.add_argument(
            opt.flag, type=opt.type, default=opt.default, help=opt.help, choices=opt.choices
        )
    p.add_argument("--resume", action="store_true", help="resume the run in --run-dir")
    p.set_defaults(handler=handle)


def _argv(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    for opt in OPTIONS:
        out += [opt.flag, str(getattr(args, opt.flag[2:].replace("-", "_")))]
    return out + [f for f in FLAGS if getattr(args, f[2:].replace("-", "_"))]


def _has_training_stack() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "ultralytics"))


def dataset_dir(args: argparse.Namespace) -> Path:
    if args.data:
        return Path(args.data)
    name = f"sim-g{_generator()}-s{args.seed}-n{args.images}-v{args.val_images}"
    return Path(args.datasets_dir) / name


def ensure_dataset(args: argparse.Namespace) -> Path:
    """The dataset folder, rendered with ``walkout sim dataset`` when it is not there yet."""
    out = dataset_dir(args)
    if (out / "data.yaml").is_file():
        return out
    if args.data:
        raise SystemExit(f"walkout train: {out / 'data.yaml'} not found; is --data a dataset?")
    cmd = [
        sys.executable, "-m", "walkout.cli", "sim", "dataset", "--out", str(out),
        "--images", str(args.images), "--val-images", str(args.val_images),
        "--seed", str(args.seed), "--config", args.config,
    ]  # fmt: skip
    print(f"walkout train: rendering the dataset: {' '.join(cmd[2:])}", file=sys.stderr)
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0 or not (out / "data.yaml").is_file():
        raise SystemExit(f"walkout train: `walkout sim dataset` failed (exit {done.returncode})")
    return out


def handle(args: argparse.Namespace) -> int:
    if not args.weights:
        ensure_dataset(args)
    if _has_training_stack():
        return run(args, dataset_dir(args))
    py = TRAIN_VENV / "bin" / "python"
    if os.environ.get(REEXEC_ENV) or not py.exists():
        print(f"walkout train: {INSTALL_HINT}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env[REEXEC_ENV] = "1"
    root = str(Path.cwd())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    argv = [str(py), "-m", "edge.train", *_argv(args)]
    print(f"walkout train: running under {py} (torch is not in this environment)", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(str(py), argv, env)
    return 0  # not reached


def file_facts(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": digest}


def cpu_description() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs"


def offline_environment(config_dir: Path) -> None:
    """Settings ultralytics needs to run without a network; call before importing it."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    fonts = config_dir / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    import matplotlib

    # ultralytics fetches Arial for labels; matplotlib ships DejaVuSans, which serves as well.
    src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (fonts / name).exists():
            shutil.copyfile(src, fonts / name)


def lookalike_pairs(config_path: str) -> list[tuple[str, str]]:
    """SKU pairs whose packaging differs only in size (same shape, colours and label)."""
    from walkout.config import load_store

    products = load_store(config_path).cfg.products
    pairs = []
    for i, a in enumerate(products):
        for b in products[i + 1 :]:
            pa, pb = a.packaging, b.packaging
            if (pa.shape, list(pa.colors), pa.label) == (pb.shape, list(pb.colors), pb.label):
                pairs.append((a.sku, b.sku))
    return pairs


def read_names(data_yaml: Path) -> list[str]:
    import yaml

    names = yaml.safe_load(data_yaml.read_text())["names"]
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    return [str(n) for n in names]


def train(
    args: argparse.Namespace, data: Path, run_dir: Path, device: str, start: str
) -> dict[str, Any]:
    from ultralytics import YOLO

    last = run_dir / "weights" / "last.pt"
    started = time.monotonic()
    if args.resume and last.is_file():
        model = YOLO(str(last))
        model.train(resume=True)
    else:
        model = YOLO(start)
        model.train(
            data=str((data / "data.yaml").resolve()),
            imgsz=args.imgsz,
            epochs=args.epochs,
            time=args.time_h or None,
            patience=args.patience,
            batch=args.batch,
            optimizer=args.optimizer,
            lr0=args.lr0,
            warmup_epochs=args.warmup_epochs,
            close_mosaic=args.close_mosaic,
            workers=args.workers,
            device=device,
            plots=False,
            project=str(run_dir.parent),
            name=run_dir.name,
            exist_ok=True,
            seed=args.train_seed,
            deterministic=True,
            cache="ram",
        )
    save_dir = Path(getattr(model.trainer, "save_dir", run_dir))
    rows = _results_rows(save_dir / "results.csv")
    return {
        # relative to where `walkout train` ran: the card must not carry this machine's paths
        "weights": os.path.relpath(save_dir / "weights" / "best.pt"),
        "model": args.model,
        "device": device,
        "epochs_run": len(rows),
        "epochs_cap": args.epochs,
        "time_budget_h": args.time_h,
        "patience": args.patience,
        "batch": args.batch,
        "optimizer": args.optimizer,
        "lr0": args.lr0,
        "seed": args.train_seed,
        "wall_s": round(time.monotonic() - started, 1),
        "last_epoch": rows[-1] if rows else {},
    }


def weights_provenance(weights: Path, depth: int = 0) -> dict[str, Any]:
    """What an ultralytics checkpoint says about the run that made it, and, when that run
    fine-tuned another local checkpoint, about that one (``fine_tuned_from``), and so on."""
    import torch

    ckpt = torch.load(str(weights), map_location="cpu", weights_only=False)
    if isinstance(ckpt.get("walkout_provenance"), dict):  # rebuilt from an exported model
        return dict(ckpt["walkout_provenance"])
    targs = ckpt.get("train_args") or {}
    facts: dict[str, Any] = {
        "weights": weights.name,
        "model": targs.get("model"),
        "epochs_cap": targs.get("epochs"),
        "time_budget_h": targs.get("time"),
        "patience": targs.get("patience"),
        "batch": targs.get("batch"),
        "optimizer": targs.get("optimizer"),
        "lr0": targs.get("lr0"),
        "imgsz": targs.get("imgsz"),
        "seed": targs.get("seed"),
        "device": targs.get("device"),
        "date": ckpt.get("date"),
        "data": _relative(targs.get("data")),
        "run_dir": _relative(
            targs.get("save_dir")
            or (Path(targs["project"]) / targs["name"] if targs.get("project") else None)
        ),
        "warmup_epochs": targs.get("warmup_epochs"),
        "close_mosaic": targs.get("close_mosaic"),
    }
    parent = Path(str(targs.get("model") or ""))
    if parent.suffix == ".pt" and parent.is_file() and depth < 8:
        facts["fine_tuned_from"] = weights_provenance(parent, depth + 1)
    epoch = ckpt.get("epoch", -1)
    rows = _results_rows(weights.parent.parent / "results.csv")
    if isinstance(epoch, int) and epoch >= 0:
        facts["epochs_run"] = epoch + 1
    elif rows:
        facts["epochs_run"] = len(rows)
    if rows:
        facts["last_epoch"] = rows[-1]
    return facts


def _relative(path: object) -> str | None:
    """A path from a checkpoint as the reproduce commands write it (relative to here)."""
    if not path:
        return None
    p = Path(str(path))
    if p.name == "data.yaml":
        p = p.parent
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _generator() -> int:
    """The simulator's dataset generator version (imported late: it pulls in the renderers)."""
    from sim.dataset import GENERATOR_VERSION

    return GENERATOR_VERSION


def provenance_chain(training: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs behind a model, the first (trained from a yaml) first, this one last."""
    chain = [training]
    while isinstance(chain[-1].get("fine_tuned_from"), dict) and len(chain) < 10:
        chain.append(chain[-1]["fine_tuned_from"])
    return chain[::-1]


def run_command(run: dict[str, Any]) -> str:
    """The ``walkout train`` command of an earlier run, from its checkpoint's arguments."""
    parts = ["walkout train"]
    for flag, key in (
        ("--data", "data"),
        ("--model", "model"),
        ("--imgsz", "imgsz"),
        ("--time-h", "time_budget_h"),
        ("--lr0", "lr0"),
        ("--warmup-epochs", "warmup_epochs"),
        ("--close-mosaic", "close_mosaic"),
        ("--run-dir", "run_dir"),
    ):
        if run.get(key) is not None:
            parts += [flag, str(run[key])]
    return " ".join(parts)


def _results_rows(path: Path) -> list[dict[str, float]]:
    import csv

    if not path.is_file():
        return []
    with path.open() as fh:
        return [
            {k.strip(): float(v) for k, v in row.items() if k and v not in (None, "")}
            for row in csv.DictReader(fh)
        ]


def export_fp32(weights: Path, imgsz: int, out: Path) -> Path:
    from ultralytics import YOLO

    exported = YOLO(str(weights)).export(
        format="onnx", imgsz=imgsz, simplify=True, dynamic=True, batch=4, device="cpu"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exported, out)
    scrub_paths(out)
    return out


def _architecture_of(model_path: Path) -> str:
    """The ultralytics yaml an exported model was built from: its card, else its metadata."""
    import re

    import onnx

    card = model_path.with_suffix(".json")
    if card.is_file():
        arch = json.loads(card.read_text()).get("architecture")
        if arch:
            return str(arch)
    meta = {
        p.key: p.value for p in onnx.load(str(model_path), load_external_data=False).metadata_props
    }
    found = re.search(r"YOLO(v?\d+)([nslmx])\b", meta.get("description", ""))
    if found is None:
        raise SystemExit(
            f"walkout train: {model_path}: cannot tell which model yaml it was exported from "
            "(no model card beside it and no 'YOLO11n'-style description in its metadata); "
            "fine-tune its .pt instead"
        )
    return f"yolo{found.group(1).lower()}{found.group(2)}.yaml"


def checkpoint_from_onnx(
    model_path: Path, images: Path, out: Path, calib_images: int = 256
) -> dict[str, Any]:
    """Rebuild a trainable ultralytics checkpoint from an exported detector.

    Export folds each BatchNorm into the convolution before it (``W' = W * g / s``, bias
    ``b' = beta - g * mu / s``), so the ONNX file holds one weight and one bias per convolution.
    The model is rebuilt from its yaml, each convolution gets the folded weight, and each
    BatchNorm is set so that it passes its input through plus the folded bias, for the batch
    statistics it will see: the mean and variance of every convolution's output over
    ``calib_images`` training images become its running statistics, its scale the matching
    standard deviation and its shift the bias plus the mean. In eval mode that is exactly the
    exported function; in train mode, on batches like the calibration images, nearly so, so
    fine-tuning starts where the exported model left off rather than from scrambled
    activations. Returns provenance for the card: the file's hash and, when a card lies beside
    it, the training runs behind it.
    """
    import ast
    import copy
    import datetime

    import cv2
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import numpy_helper
    from ultralytics.nn.modules import Conv
    from ultralytics.nn.tasks import DetectionModel

    arch = _architecture_of(model_path)
    proto = onnx.load(str(model_path))
    weights = {i.name: numpy_helper.to_array(i).copy() for i in proto.graph.initializer}
    meta = {p.key: p.value for p in proto.metadata_props}
    names = ast.literal_eval(meta["names"])
    imgsz = int(max(ast.literal_eval(meta.get("imgsz", "[320, 320]"))))
    model = DetectionModel(arch, nc=len(names), verbose=False)
    model.names = names
    convs = {n: m for n, m in model.named_modules() if isinstance(m, Conv)}
    biases: dict[str, Any] = {}

    def take(key: str, shape: tuple[int, ...]) -> Any:
        if key not in weights:
            raise SystemExit(
                f"walkout train: {model_path} has no weight {key!r}: it was not exported from "
                f"{arch} with {len(names)} classes"
            )
        value = weights[key]
        if tuple(value.shape) != shape:
            raise SystemExit(
                f"walkout train: {model_path}: weight {key} has shape {list(value.shape)}, "
                f"{arch} with {len(names)} classes needs {list(shape)}"
            )
        return torch.from_numpy(value)

    with torch.no_grad():
        for n, m in convs.items():
            m.conv.weight.copy_(take(f"{n}.conv.weight", tuple(m.conv.weight.shape)))
            biases[n] = take(f"{n}.conv.bias", (m.conv.out_channels,))
            m.bn.running_mean.zero_()
            m.bn.running_var.fill_(1.0)
            m.bn.weight.fill_(float(np.sqrt(1.0 + m.bn.eps)))
            m.bn.bias.copy_(biases[n])
        for n, m in model.named_modules():  # plain convolutions: the head's last layers
            inside = any(n.startswith(c + ".") for c in convs)
            if isinstance(m, torch.nn.Conv2d) and not inside and not n.endswith("dfl.conv"):
                m.weight.copy_(take(f"{n}.weight", tuple(m.weight.shape)))
                if m.bias is not None:
                    m.bias.copy_(take(f"{n}.bias", tuple(m.bias.shape)))
    model.eval()

    def batch(paths: Sequence[Path]) -> Any:
        out = np.full((len(paths), imgsz, imgsz, 3), 114, np.uint8)
        for k, path in enumerate(paths):
            image = cv2.imread(str(path))
            if image is None:
                raise SystemExit(f"walkout train: cannot read {path}; the dataset is damaged")
            h, w = image.shape[:2]
            scale = imgsz / max(h, w)
            nh, nw = round(h * scale), round(w * scale)
            y0, x0 = (imgsz - nh) // 2, (imgsz - nw) // 2
            out[k, y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(image, (nw, nh))
        rgb = np.ascontiguousarray(out[..., ::-1].transpose(0, 3, 1, 2))
        return torch.from_numpy(rgb).float() / 255.0

    paths = sorted(images.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"walkout train: no images in {images} to re-estimate BatchNorm with")
    picked = np.random.default_rng(0).choice(len(paths), min(calib_images, len(paths)), False)
    paths = [paths[i] for i in sorted(picked)]
    probe = batch(paths[:2])
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: probe.numpy()})[0]

    def mismatch() -> float:
        with torch.no_grad():
            got = model(probe)[0].numpy()
        return float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-9))

    if (err := mismatch()) > 1e-3:
        raise SystemExit(
            f"walkout train: {model_path} rebuilt as {arch} differs from the file by {err:.1e} "
            "(relative): it was not exported from that yaml; fine-tune its .pt instead"
        )
    sums: dict[str, list[Any]] = {n: [0, 0.0, 0.0] for n in convs}

    def hook(name: str) -> Any:
        def record(_m: Any, _i: Any, y: Any) -> None:
            y = y.double()
            s = sums[name]
            s[0] += y.shape[0] * y.shape[2] * y.shape[3]
            s[1] = s[1] + y.sum((0, 2, 3))
            s[2] = s[2] + (y * y).sum((0, 2, 3))

        return record

    handles = [m.conv.register_forward_hook(hook(n)) for n, m in convs.items()]
    with torch.no_grad():
        for i in range(0, len(paths), 16):
            model(batch(paths[i : i + 16]))
    for handle in handles:
        handle.remove()
    with torch.no_grad():
        for n, m in convs.items():
            count, s1, s2 = sums[n]
            mean = s1 / count
            var = (s2 / count - mean * mean).clamp_min(1e-6)
            m.bn.running_mean.copy_(mean.float())
            m.bn.running_var.copy_(var.float())
            m.bn.weight.copy_(torch.sqrt(var + m.bn.eps).float())
            m.bn.bias.copy_(biases[n] + mean.float())
    if (err := mismatch()) > 1e-3:
        raise SystemExit(f"walkout train: re-estimating BatchNorm changed the model ({err:.1e})")
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    card = model_path.with_suffix(".json")
    earlier = json.loads(card.read_text()).get("training") if card.is_file() else None
    provenance: dict[str, Any] = {
        **(earlier or {"model": arch}),
        "recovered_from": {"file": model_path.name, "sha256": digest, "calib_images": len(paths)},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "epoch": -1,
            "best_fitness": None,
            "model": None,
            "ema": copy.deepcopy(model).half(),
            "updates": 0,
            "optimizer": None,
            "train_args": {"model": arch, "imgsz": imgsz},
            "walkout_provenance": provenance,
            "date": datetime.datetime.now(datetime.UTC).isoformat(),
            "version": meta.get("version"),
        },
        str(out),
    )
    log.info("rebuilt %s from %s (%s)", out, model_path, digest[:12])
    return provenance


def scrub_paths(model_path: Path, root: Path | None = None) -> None:
    """Make paths in the model's metadata relative to the repository: ultralytics writes the
    dataset's absolute path into ``description``, and a shipped file must not carry one."""
    import onnx

    base = str((root or Path.cwd()).resolve()) + os.sep
    model = onnx.load(str(model_path))
    changed = False
    for prop in model.metadata_props:
        if base in prop.value:
            prop.value = prop.value.replace(base, "")
            changed = True
    if changed:
        onnx.save(model, str(model_path))


def _copy_metadata(src: Path, dst: Path) -> None:
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    model = onnx.load(str(dst))
    have = {p.key for p in model.metadata_props}
    for key, value in meta.items():
        if key not in have:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(model, str(dst))


def quantize_dynamic_int8(fp32: Path, out: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QUInt8)
    _copy_metadata(fp32, out)
    return out


def _head_decode_nodes(model_path: Path) -> list[str]:
    """Nodes of the detect head after its conv branches: box decoding and the final concat.

    Boxes (0..imgsz) and class scores (0..1) share the output tensor; one 8-bit scale for
    both would wipe out the scores, so these stay in float.
    """
    import re

    import onnx

    graph = onnx.load(str(model_path)).graph
    index = re.compile(r"^/model\.(\d+)/")
    heads = [int(m.group(1)) for n in graph.node if (m := index.match(n.name))]
    if not heads:
        return []
    prefix = f"/model.{max(heads)}/"
    return [
        n.name
        for n in graph.node
        if n.name.startswith(prefix) and "/cv2." not in n.name and "/cv3." not in n.name
    ]


def quantize_static_int8(fp32: Path, out: Path, data: Path, imgsz: int, count: int) -> Path:
    import cv2
    import numpy as np
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from edge.detector import preprocess

    files = sorted((data / "images" / "train").glob("*.jpg"))[:count]
    if not files:
        raise SystemExit(f"walkout train: no calibration images in {data / 'images' / 'train'}")

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.items = iter(files)

        def get_next(self) -> dict[str, Any] | None:
            path = next(self.items, None)
            if path is None:
                return None
            image = cv2.imread(str(path))
            tensor, _ = preprocess(np.asarray(image, dtype=np.uint8), (imgsz, imgsz))
            return {"images": tensor}

    quantize_static(
        str(fp32),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=_head_decode_nodes(fp32),
    )
    _copy_metadata(fp32, out)
    return out


def evaluate(
    model_path: Path,
    data: Path,
    imgsz: int,
    names: list[str],
    pairs: list[tuple[str, str]],
    work_dir: Path,
) -> dict[str, Any]:
    """mAP per class of an exported model on the held-out split, through ultralytics."""
    from ultralytics import YOLO

    metrics = YOLO(str(model_path), task="detect").val(
        data=str((data / "data.yaml").resolve()),
        imgsz=imgsz,
        batch=1,
        split="val",
        plots=False,
        device="cpu",
        verbose=False,
        project=str(work_dir.resolve()),
        name=model_path.stem,
        exist_ok=True,
    )
    box = metrics.box
    per_class: dict[str, dict[str, float]] = {}
    for i, c in enumerate(box.ap_class_index):
        per_class[names[int(c)]] = {
            "ap50": round(float(box.ap50[i]), 4),
            "ap50_95": round(float(box.ap[i]), 4),
            "precision": round(float(box.p[i]), 4),
            "recall": round(float(box.r[i]), 4),
            "instances": int(metrics.nt_per_class[int(c)]),
        }
    skus = [n for n in names if n not in ("hand", "person") and n in per_class]
    sku_ap50 = [per_class[n]["ap50"] for n in skus]
    lookalikes = []
    for a, b in pairs:
        if a not in names or b not in names:
            continue
        lookalikes.append(
            {
                "pair": [a, b],
                "ap50": [per_class.get(a, {}).get("ap50"), per_class.get(b, {}).get("ap50")],
                "ap50_95": [
                    per_class.get(a, {}).get("ap50_95"),
                    per_class.get(b, {}).get("ap50_95"),
                ],
            }
        )
    return {
        "map50": round(float(box.map50), 4),
        "map50_95": round(float(box.map), 4),
        "sku_map50": round(sum(sku_ap50) / len(sku_ap50), 4) if sku_ap50 else None,
        "sku_min_ap50": min(sku_ap50) if sku_ap50 else None,
        "hand_ap50": per_class.get("hand", {}).get("ap50"),
        "person_ap50": per_class.get("person", {}).get("ap50"),
        "per_class": per_class,
        "lookalikes": lookalikes,
    }


def our_path_check(
    model_path: Path, data: Path, names: list[str], pairs: list[tuple[str, str]]
) -> dict[str, Any]:
    """Precision/recall at IoU 0.5 of ``edge.detector.Detector`` on the held-out images (the
    backend the edge runs, not ultralytics' pipeline), and how often a look-alike SKU is
    called by its twin's name: each true box against the best-overlapping detection."""
    import cv2
    import numpy as np

    from edge.detections import box_iou
    from edge.detector import Detector

    det = Detector(model_path, providers=["cpu"])
    tp = fp = fn = 0
    background = len(names)
    confusion = np.zeros((len(names), len(names) + 1), dtype=np.int64)  # [true][called]
    for img_path in sorted((data / "images" / "val").glob("*.jpg")):
        image = np.asarray(cv2.imread(str(img_path)), dtype=np.uint8)
        h, w = image.shape[:2]
        label_path = data / "labels" / "val" / f"{img_path.stem}.txt"
        rows = np.loadtxt(label_path, ndmin=2) if label_path.stat().st_size else np.empty((0, 5))
        true_cls = rows[:, 0].astype(int)
        cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
        true_xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        found = det.detect_one(image)
        iou = box_iou(found.xyxy, true_xyxy)  # [pred][true]
        if len(true_cls):
            best = iou.argmax(axis=0) if len(found) else np.zeros(len(true_cls), dtype=int)
            hit = iou.max(axis=0) >= 0.5 if len(found) else np.zeros(len(true_cls), bool)
            called = np.where(hit, found.class_id[best] if len(found) else background, background)
            np.add.at(confusion, (true_cls, called), 1)
        same = iou * (found.class_id[:, None] == true_cls[None, :])
        used = np.zeros(len(true_cls), dtype=bool)
        for i in np.argsort(-found.confidence, kind="stable"):  # greedy, best score first
            cand = np.where(used, 0.0, same[i]) if len(true_cls) else same[i]
            j = int(np.argmax(cand)) if len(cand) else -1
            if j >= 0 and cand[j] >= 0.5:
                used[j] = True
                tp += 1
            else:
                fp += 1
        fn += int((~used).sum())
    lookalikes = []
    for a, b in pairs:
        if a in names and b in names:
            ia, ib = names.index(a), names.index(b)
            lookalikes.append(
                {
                    "pair": [a, b],
                    "true": [int(confusion[ia].sum()), int(confusion[ib].sum())],
                    "found_right": [int(confusion[ia, ia]), int(confusion[ib, ib])],
                    "called_the_other": [int(confusion[ia, ib]), int(confusion[ib, ia])],
                }
            )
    return {
        "conf_threshold": det.conf_threshold,
        "iou_threshold": det.iou_threshold,
        "precision": round(tp / max(1, tp + fp), 4),
        "recall": round(tp / max(1, tp + fn), 4),
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "lookalikes": lookalikes,
    }


def latency(model_path: Path, imgsz: int, runs: int = 40) -> dict[str, float]:
    """Median ``session.run`` time at batch 1 on this CPU (2 intra-op threads)."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    name = sess.get_inputs()[0].name
    for _ in range(5):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        sess.run(None, {name: x})
        times.append(time.perf_counter_ns() - t)
    return {"session_run_median_ms": round(float(np.median(times)) / 1e6, 2), "runs": runs}


def run(args: argparse.Namespace, data: Path) -> int:
    """Train (unless --weights), export, quantize, evaluate and write the model card."""
    run_dir = Path(args.run_dir).resolve()
    offline_environment(run_dir.parent / ".ultralytics-config")
    import onnxruntime
    import torch
    import ultralytics
    from ultralytics import settings

    settings.update({"sync": False})
    device = "0" if torch.cuda.is_available() else "cpu"
    if args.weights:
        weights = Path(args.weights)
        if not weights.is_file():
            raise SystemExit(f"walkout train: --weights {weights} not found")
        training: dict[str, Any] = weights_provenance(weights)
    else:
        init = Path(args.model)
        start = init
        if init.suffix == ".onnx":
            if not init.is_file():
                raise SystemExit(f"walkout train: --model {init} not found")
            start = run_dir.parent / "recovered" / f"{init.stem}.pt"
            checkpoint_from_onnx(init, data / "images" / "train", start)
        base = weights_provenance(start) if start.suffix == ".pt" and start.is_file() else None
        training = train(args, data, run_dir, device, str(start))
        if base is not None:
            training["fine_tuned_from"] = base
        weights = Path(training["weights"])
    if not weights.is_file():
        raise SystemExit(f"walkout train: {weights} not found; training produced no weights")
    names = read_names(data / "data.yaml")
    pairs = lookalike_pairs(args.config)
    out = Path(args.out)
    variants: dict[str, Path] = {"fp32": export_fp32(weights, args.imgsz, out)}
    if args.int8 in ("dynamic", "both"):
        variants["int8-dynamic"] = quantize_dynamic_int8(
            out, out.with_name(out.stem + "-int8.onnx")
        )
    if args.int8 in ("static", "both"):
        variants["int8-static"] = quantize_static_int8(
            out, out.with_name(out.stem + "-int8-qdq.onnx"), data, args.imgsz, args.calib_images
        )
    results: dict[str, Any] = {}
    for key, path in variants.items():
        log.info("evaluating %s (%s)", key, path)
        results[key] = {
            **file_facts(path),
            "metrics": evaluate(path, data, args.imgsz, names, pairs, run_dir / "val"),
            "latency": latency(path, args.imgsz),
        }
    results["fp32"]["edge_detector_check"] = our_path_check(out, data, names, pairs)
    card = {
        "model": out.name,
        "task": "detect",
        "architecture": Path(str(provenance_chain(training)[0].get("model") or args.model)).name,
        "input_size": [args.imgsz, args.imgsz],
        "input": "dynamic batch, height and width; trained and exported at imgsz",
        "classes": names,
        "data": _data_facts(data, args),
        "training": training,
        "variants": results,
        "lookalike_pairs": [list(p) for p in pairs],
        "environment": {
            "cpu": cpu_description(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "ultralytics": ultralytics.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "reproduce": " ".join(["walkout train", *_argv_changed(args, skip=("--weights",))]),
        "command": " ".join(["walkout train", *_argv_changed(args)]),
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    out.with_suffix(".md").write_text(render_card(card))
    print(json.dumps({k: v["metrics"]["map50"] for k, v in results.items()}))
    return 0


def _argv_changed(args: argparse.Namespace, skip: Sequence[str] = ()) -> list[str]:
    """Only the options that differ from the defaults."""
    out = []
    for opt in OPTIONS:
        value = getattr(args, opt.flag[2:].replace("-", "_"))
        if value != opt.default and opt.flag not in skip:
            out += [opt.flag, str(value)]
    return out


def _data_facts(data: Path, args: argparse.Namespace) -> dict[str, Any]:
    def count(split: str) -> tuple[int, int]:
        labels = list((data / "labels" / split).glob("*.txt"))
        boxes = sum(len(p.read_text().split("\n")) - 1 for p in labels)
        return len(labels), boxes

    train_n, train_boxes = count("train")
    val_n, val_boxes = count("val")
    return {
        "source": "walkout sim dataset",
        "config": args.config,
        "train_seed": args.seed,
        "val_seed": args.seed + 1000,
        "train_images": train_n,
        "train_boxes": train_boxes,
        "val_images": val_n,
        "val_boxes": val_boxes,
    }


def render_card(card: dict[str, Any]) -> str:
    """The model card as markdown, from the same dict as the JSON card."""
    d, t = card["data"], card["training"]
    command = card.get("command", card["reproduce"])
    exported = f" (these files: `{command}`)" if command != card["reproduce"] else ""
    fp32 = card["variants"]["fp32"]["metrics"]
    earlier = provenance_chain(t)[:-1]
    runs = f" in {len(earlier) + 1} runs (each fine-tunes the one before)" if earlier else ""
    lines = [
        f"# {card['model']}: the walkout detector",
        "",
        f"{card['architecture']} trained from scratch on the simulator's images{runs}; "
        f"input {card['input_size'][0]}x{card['input_size'][1]} ({card['input']}).",
        f"Classes ({len(card['classes'])}): every SKU of the demo store, then hand, person.",
        "",
        "## Data",
        f"- `{d['source']}` on `{d['config']}`: train seed {d['train_seed']} "
        f"({d['train_images']} images, {d['train_boxes']} boxes), held-out val seed "
        f"{d['val_seed']} ({d['val_images']} images, {d['val_boxes']} boxes)",
        "",
        "## Training",
        f"- epochs run: {t.get('epochs_run', '?')} (cap {t.get('epochs_cap', '?')}, time budget "
        f"{t.get('time_budget_h', '?')} h, patience {t.get('patience', '?')}), batch "
        f"{t.get('batch', '?')}, device {t.get('device', '?')}, wall {t.get('wall_s', '?')} s",
        *(
            f"- run {i + 1}: {r.get('epochs_run', '?')} epochs from `{r.get('model')}` on "
            f"`{r.get('data')}` (lr0 {r.get('lr0')}, time budget {r.get('time_budget_h')} h)"
            for i, r in enumerate(earlier)
        ),
        *(
            f"- run {i + 2} started from run {i + 1}'s exported model "
            f"(`{r['recovered_from'].get('file')}`, sha256 {r['recovered_from'].get('sha256')}), "
            "its weights rebuilt from that file (`--model FILE.onnx`: BatchNorm statistics "
            f"re-estimated on {r['recovered_from'].get('calib_images')} training images) as run "
            f"{i + 1}'s .pt was not kept; from scratch, give run {i + 2} run {i + 1}'s best.pt"
            for i, r in enumerate(earlier)
            if isinstance(r.get("recovered_from"), dict)
        ),
        *(
            [
                "- the earlier runs' datasets were rendered by an earlier simulator (another "
                "generator version): rendered again today they differ, so those runs "
                "reproduce in kind, not bit for bit"
            ]
            if any(f"sim-g{_generator()}-" not in str(r.get("data")) for r in earlier)
            else []
        ),
        f"- reproduce: {' then '.join(f'`{run_command(r)}`' for r in earlier)}"
        f"{' then ' if earlier else ''}`{card['reproduce']}`{exported}",
        "",
        "## Accuracy on the held-out split",
        "",
        "| variant | file | size | mAP50 | mAP50-95 | SKU mAP50 | SKU min AP50 | hand AP50 "
        "| person AP50 | session.run (batch 1) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, v in card["variants"].items():
        m = v["metrics"]
        lines.append(
            f"| {key} | `{v['file']}` | {v['bytes'] / 1e6:.1f} MB | {m['map50']} | "
            f"{m['map50_95']} | {m['sku_map50']} | {m['sku_min_ap50']} | {m['hand_ap50']} | "
            f"{m['person_ap50']} | {v['latency']['session_run_median_ms']} ms |"
        )
    lines += ["", "### Look-alike pairs (fp32)", ""]
    for item in fp32["lookalikes"]:
        a, b = item["pair"]
        lines.append(f"- {a} / {b}: AP50 {item['ap50'][0]} / {item['ap50'][1]}")
    check = card["variants"]["fp32"].get("edge_detector_check")
    if check:
        lines += [
            "",
            "### Through the edge detector (onnxruntime path, conf "
            f"{check['conf_threshold']}, NMS IoU {check['iou_threshold']}, match IoU 0.5)",
            f"- precision {check['precision']}, recall {check['recall']} "
            f"({check['true_positives']} TP, {check['false_positives']} FP, "
            f"{check['false_negatives']} FN)",
        ]
        for item in check["lookalikes"]:
            a, b = item["pair"]
            lines.append(
                f"- true {a}: {item['found_right'][0]} of {item['true'][0]} found as {a}, "
                f"{item['called_the_other'][0]} called {b}; true {b}: {item['found_right'][1]} "
                f"of {item['true'][1]} found as {b}, {item['called_the_other'][1]} called {a}"
            )
    lines += ["", "### Per class (fp32)", "", "| class | instances | AP50 | AP50-95 | P | R |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for name, c in fp32["per_class"].items():
        lines.append(
            f"| {name} | {c['instances']} | {c['ap50']} | {c['ap50_95']} | {c['precision']} | "
            f"{c['recall']} |"
        )
    env = card["environment"]
    lines += [
        "",
        "## Environment",
        f"- {env['cpu']}; Python {env['python']}, torch {env['torch']}, ultralytics "
        f"{env['ultralytics']}, onnxruntime {env['onnxruntime']}",
        "- latency: median of 40 `session.run` calls, batch 1, 2 intra-op threads, on a "
        "machine shared with other work (see benchmarks/results/detector.md for interleaved "
        "ratios)",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="walkout")
    sub = parser.add_subparsers(dest="area")
    register(sub, "train", "train and export the detector")
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    started = time.monotonic()
    code = int(args.handler(args))
    log.info("walkout train finished in %.0f s", time.monotonic() - started)
    return code


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["OPTIONS", "cpu_description", "ensure_dataset", "file_facts", "handle", "register"]
