"""``walkout train`` without torch: CLI wiring, re-execution, look-alikes and the model card."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge import train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo-store.yaml"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="area")
    train.register(sub, "train", "train")
    return parser.parse_args(["train", *argv])


def test_module_import_pulls_in_no_training_stack() -> None:
    code = (
        "import sys, edge.train; "
        "print(sorted(m for m in ('torch', 'ultralytics', 'onnxruntime', 'cv2') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_options_round_trip_through_argv() -> None:
    args = parse("--images", "50", "--time-h", "0.5", "--int8", "static", "--resume")
    again = parse(*train._argv(args))
    assert vars(again) == vars(args)
    assert train._argv_changed(args) == ["--images", "50", "--time-h", "0.5", "--int8", "static"]


def test_default_dataset_folder_names_its_seed_and_size() -> None:
    assert train.dataset_dir(parse()) == Path("datasets/sim-g2-s1-n2000-v400")
    assert train.dataset_dir(parse("--data", "x/y")) == Path("x/y")


def test_without_torch_or_training_env_it_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .venv-train here
    monkeypatch.setattr(train, "_has_training_stack", lambda: False)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "data.yaml").write_text("names: {0: a}\n")
    assert train.handle(parse("--data", "ds")) == 2
    err = capsys.readouterr().err
    assert "pip install -e '.[train]'" in err and ".venv-train" in err


def test_missing_dataset_given_with_data_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"nope/data\.yaml not found"):
        train.ensure_dataset(parse("--data", str(tmp_path / "nope")))


def test_lookalike_pairs_come_from_the_config() -> None:
    assert train.lookalike_pairs(str(CONFIG)) == [
        ("cola-330", "cola-440"),
        ("chips-150", "chips-200"),
    ]


def test_read_names_accepts_dict_and_list(tmp_path: Path) -> None:
    p = tmp_path / "data.yaml"
    p.write_text("names:\n  1: hand\n  0: cola-330\n")
    assert train.read_names(p) == ["cola-330", "hand"]
    p.write_text("names: [a, b]\n")
    assert train.read_names(p) == ["a", "b"]


def _metrics(ap: float) -> dict[str, Any]:
    return {
        "map50": ap,
        "map50_95": ap / 2,
        "sku_map50": ap,
        "sku_min_ap50": ap,
        "hand_ap50": ap,
        "person_ap50": ap,
        "per_class": {
            "cola-330": {
                "ap50": ap,
                "ap50_95": 0.5,
                "precision": 0.9,
                "recall": 0.8,
                "instances": 10,
            },
        },
        "lookalikes": [{"pair": ["cola-330", "cola-440"], "ap50": [ap, ap], "ap50_95": [0.5, 0.5]}],
    }


def test_model_card_renders_every_variant_and_the_lookalikes() -> None:
    card = {
        "model": "walkout-det.onnx",
        "architecture": "yolo11n.yaml",
        "input_size": [320, 320],
        "input": "dynamic",
        "classes": ["cola-330", "cola-440", "hand", "person"],
        "data": {
            "source": "walkout sim dataset",
            "config": "c.yaml",
            "train_seed": 1,
            "val_seed": 1001,
            "train_images": 5,
            "train_boxes": 50,
            "val_images": 2,
            "val_boxes": 20,
        },
        "training": {
            "epochs_run": 3,
            "epochs_cap": 300,
            "time_budget_h": 1.0,
            "patience": 30,
            "batch": 32,
            "device": "cpu",
            "wall_s": 12.0,
        },
        "variants": {
            "fp32": {
                "file": "walkout-det.onnx",
                "bytes": 11_000_000,
                "metrics": _metrics(0.95),
                "latency": {"session_run_median_ms": 14.1},
                "edge_detector_check": {
                    "conf_threshold": 0.25,
                    "precision": 0.97,
                    "recall": 0.93,
                    "true_positives": 93,
                    "false_positives": 3,
                    "false_negatives": 7,
                    "iou_threshold": 0.5,
                    "lookalikes": [
                        {
                            "pair": ["cola-330", "cola-440"],
                            "true": [10, 10],
                            "found_right": [7, 9],
                            "called_the_other": [3, 1],
                        }
                    ],
                },
            },
            "int8-dynamic": {
                "file": "walkout-det-int8.onnx",
                "bytes": 3_700_000,
                "metrics": _metrics(0.94),
                "latency": {"session_run_median_ms": 18.0},
            },
        },
        "environment": {
            "cpu": "x",
            "python": "3.11",
            "torch": "t",
            "ultralytics": "u",
            "onnxruntime": "o",
        },
        "reproduce": "walkout train",
    }
    md = train.render_card(card)
    assert "| fp32 | `walkout-det.onnx` | 11.0 MB | 0.95 |" in md
    assert "| int8-dynamic | `walkout-det-int8.onnx` | 3.7 MB | 0.94 |" in md
    assert "true cola-330: 7 of 10 found as cola-330, 3 called cola-440" in md
    assert "- cola-330 / cola-440: AP50 0.95 / 0.95" in md
    assert "precision 0.97, recall 0.93" in md
    assert "reproduce: `walkout train`" in md
    # a model fine-tuned twice lists every run and reproduces them in order
    first = {"model": "yolo11n.yaml", "data": "datasets/sim-s1-n2000-v400", "lr0": 0.002,
             "time_budget_h": 1.0, "epochs_run": 9, "run_dir": "runs/train/a"}  # fmt: skip
    second = {"model": "runs/train/a/weights/best.pt", "data": "datasets/sim-s1-n2000-v400",
              "lr0": 0.001, "epochs_run": 15, "run_dir": "runs/train/b",
              "fine_tuned_from": first}  # fmt: skip
    card["training"] = {**card["training"], "fine_tuned_from": second}
    md = train.render_card(card)
    assert "in 3 runs" in md
    assert "- run 1: 9 epochs from `yolo11n.yaml`" in md
    assert "- run 2: 15 epochs from `runs/train/a/weights/best.pt`" in md
    assert (
        "reproduce: `walkout train --data datasets/sim-s1-n2000-v400 --model yolo11n.yaml "
        "--time-h 1.0 --lr0 0.002 --run-dir runs/train/a` then `walkout train --data "
        "datasets/sim-s1-n2000-v400 --model runs/train/a/weights/best.pt --lr0 0.001 "
        "--run-dir runs/train/b` then `walkout train`" in md
    )
    assert "reproduce in kind, not bit for bit" in md  # rendered by an earlier generator
    assert "rebuilt" not in md
    # the third run continued from the second's exported model (its .pt was gone)
    second["recovered_from"] = {"file": "walkout-det.onnx", "sha256": "ab12", "calib_images": 256}
    md = train.render_card(card)
    assert (
        "- run 3 started from run 2's exported model (`walkout-det.onnx`, sha256 ab12), its "
        "weights rebuilt from that file" in md
    )


def test_edge_detector_check_counts_hits_misses_and_lookalike_confusion(tmp_path: Path) -> None:
    import cv2
    import numpy as np
    from test_detector import BOXES_SCORES, build_model

    model = build_model(tmp_path / "m.onnx", BOXES_SCORES)
    # the tiny model sees: cola-330 [220,190,420,290], cola-440 [220,194,420,294] and a hand
    # [60,400,100,440] in a white 640x480 frame
    data = tmp_path / "ds"
    (data / "images" / "val").mkdir(parents=True)
    (data / "labels" / "val").mkdir(parents=True)
    cv2.imwrite(str(data / "images" / "val" / "a.jpg"), np.full((480, 640, 3), 255, np.uint8))
    truth = [(0, (220, 190, 420, 290)), (2, (60, 400, 100, 440)), (1, (500, 10, 600, 60))]
    rows = [
        f"{c} {(x0 + x1) / 1280} {(y0 + y1) / 960} {(x1 - x0) / 640} {(y1 - y0) / 480}"
        for c, (x0, y0, x1, y1) in truth
    ]
    (data / "labels" / "val" / "a.txt").write_text("\n".join(rows) + "\n")
    names = ["cola-330", "cola-440", "hand"]
    check = train.our_path_check(model, data, names, [("cola-330", "cola-440")])
    assert (check["true_positives"], check["false_positives"], check["false_negatives"]) == (
        2,
        1,
        1,
    )
    assert check["lookalikes"] == [
        {"pair": ["cola-330", "cola-440"], "true": [1, 1], "found_right": [1, 0],
         "called_the_other": [0, 0]}
    ]  # fmt: skip
