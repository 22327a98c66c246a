"""The shipped detector on frames the simulator renders with known boxes.

Frames come from a seed the training set never used; a true box counts as found when a box of
the same class overlaps it at IoU >= 0.5. Recall and precision must stay within a margin of
what the model card measured on the held-out split through the same detector, so a broken
export, a decoding or letterbox regression, or a card that does not describe the shipped model
fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.detector import Detector

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
CONFIG = ROOT / "configs" / "demo-store.yaml"
SEED = 424242  # not a training seed (train 1, val 1001)
FRAMES = 12

VARIANTS = ("walkout-det.onnx", "walkout-det-int8.onnx")
# 12 rendered frames (~250 boxes) against 400 held-out images: sampling noise plus int8 loss
MARGIN = 0.15


def floors() -> tuple[float, float]:
    card = json.loads((MODELS / "walkout-det.json").read_text())
    check = card["variants"]["fp32"]["edge_detector_check"]
    return max(0.0, check["recall"] - MARGIN), max(0.0, check["precision"] - MARGIN)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iou: np.ndarray = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
    return iou


@pytest.fixture(scope="module")
def rendered() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from sim.dataset import render_sample
    from walkout.config import load_store

    store = load_store(CONFIG)
    rng = np.random.Generator(np.random.PCG64(SEED))
    out = []
    for _ in range(FRAMES):
        image, labels = render_sample(store, rng)
        boxes = np.array([lb.box for lb in labels], np.float32).reshape(-1, 4)
        classes = np.array([lb.cls for lb in labels], np.int32)
        out.append((image, boxes, classes))
    return out


@pytest.mark.parametrize("name", VARIANTS)
def test_shipped_model_finds_rendered_boxes(
    name: str, rendered: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> None:
    path = MODELS / name
    if not path.is_file():
        pytest.skip(f"{path.name} is not in models/ (train it with `walkout train`)")
    det = Detector(path, providers=["cpu"])
    from sim.dataset import class_names
    from walkout.config import load_store

    assert det.names == class_names(load_store(CONFIG)), "model classes differ from the config"
    found_true = total_true = good_pred = total_pred = 0
    for image, boxes, classes in rendered:
        d = det.detect_one(image)
        total_true += len(boxes)
        total_pred += len(d)
        if not len(d) or not len(boxes):
            continue
        iou = _iou(d.xyxy, boxes)
        iou[d.class_id[:, None] != classes[None, :]] = 0.0
        found_true += int((iou.max(axis=0) >= 0.5).sum())
        good_pred += int((iou.max(axis=1) >= 0.5).sum())
    recall = found_true / max(1, total_true)
    precision = good_pred / max(1, total_pred)
    min_recall, min_precision = floors()
    assert total_true > 100
    assert found_true > 0, f"{name} found none of {total_true} rendered boxes"
    assert recall >= min_recall, f"{name}: recall {recall:.3f} < {min_recall}"
    assert precision >= min_precision, f"{name}: precision {precision:.3f} < {min_precision}"


def test_model_card_matches_the_shipped_file() -> None:
    card_path = MODELS / "walkout-det.json"
    if not card_path.is_file():
        pytest.skip("no model card in models/")
    import hashlib

    card = json.loads(card_path.read_text())
    for variant in card["variants"].values():
        path = MODELS / variant["file"]
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == variant["sha256"], path.name
