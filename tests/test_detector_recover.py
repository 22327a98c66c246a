"""Rebuilding a trainable checkpoint from the shipped ONNX detector (training environment only).

``walkout train --model models/walkout-det.onnx`` continues training from an exported model
when its ``.pt`` is gone. These tests need torch and ultralytics, which live in the ``train``
extra, so ``make test`` skips them; run them with the training environment's pytest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ultralytics")

from edge import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "walkout-det.onnx"
CONFIG = ROOT / "configs" / "demo-store.yaml"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cv2

    from sim.dataset import render_sample
    from walkout.config import load_store

    store = load_store(CONFIG)
    rng = np.random.Generator(np.random.PCG64(515151))
    out = tmp_path_factory.mktemp("images")
    for i in range(12):
        image, _ = render_sample(store, rng)
        cv2.imwrite(str(out / f"{i:03d}.jpg"), image)
    return out


def _letterboxed(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path))
    h, w = image.shape[:2]
    scale = 320 / max(h, w)
    nh, nw = round(h * scale), round(w * scale)
    canvas = np.full((320, 320, 3), 114, np.uint8)
    canvas[(320 - nh) // 2 : (320 - nh) // 2 + nh, (320 - nw) // 2 : (320 - nw) // 2 + nw] = (
        cv2.resize(image, (nw, nh))
    )
    return np.ascontiguousarray(canvas[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255


def test_the_rebuilt_checkpoint_computes_what_the_file_computes(
    images: Path, tmp_path: Path
) -> None:
    import onnxruntime as ort

    out = tmp_path / "rebuilt.pt"
    provenance = train.checkpoint_from_onnx(MODEL, images, out, calib_images=8)
    ckpt = torch.load(str(out), map_location="cpu", weights_only=False)
    model = ckpt["ema"].float().eval()
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    probe = sorted(images.glob("*.jpg"))[-1]  # not among the calibration images' first picks
    x = _letterboxed(probe)
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = model(torch.from_numpy(x))[0].numpy()
    # stored in half precision, as ultralytics stores checkpoints
    assert np.abs(got - expected).max() <= 2e-3 * np.abs(expected).max()
    digest = hashlib.sha256(MODEL.read_bytes()).hexdigest()
    assert provenance["recovered_from"]["sha256"] == digest
    card = json.loads(MODEL.with_suffix(".json").read_text())
    facts = train.weights_provenance(out)
    assert facts["recovered_from"]["sha256"] == digest
    assert facts.get("epochs_run") == card["training"].get("epochs_run")


def test_train_mode_on_the_calibration_images_starts_where_the_export_left_off(
    images: Path, tmp_path: Path
) -> None:
    """In train mode BatchNorm normalizes by the batch's own statistics. On the calibration
    images those are the statistics stored, so every layer, and the features the head gets,
    come out as in eval mode: fine-tuning starts from the exported function."""
    out = tmp_path / "rebuilt.pt"
    train.checkpoint_from_onnx(MODEL, images, out, calib_images=12)
    model = torch.load(str(out), map_location="cpu", weights_only=False)["ema"].float()
    x = torch.from_numpy(np.concatenate([_letterboxed(p) for p in sorted(images.glob("*"))]))
    seen: list[list[torch.Tensor]] = []
    model.model[-1].register_forward_pre_hook(lambda m, a: seen.append([t.clone() for t in a[0]]))
    with torch.no_grad():
        model.eval()(x)
        model.train()(x)
    assert len(seen) == 2
    for a, b in zip(seen[0], seen[1], strict=True):
        # (the stored statistics are half precision, as ultralytics stores checkpoints)
        assert float((a - b).abs().max()) <= 1e-2 * float(a.abs().max())
    # and a model whose BatchNorm was left as identity (the folded bias only) is far off:
    # the test can tell
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
    with torch.no_grad():
        model.eval()(x)
    assert float((seen[2][0] - seen[0][0]).abs().max()) > 0.1 * float(seen[0][0].abs().max())


def test_a_model_of_another_architecture_is_refused_with_what_to_do(
    images: Path, tmp_path: Path
) -> None:
    odd = tmp_path / "odd.onnx"
    shutil.copyfile(MODEL, odd)
    card = json.loads(MODEL.with_suffix(".json").read_text())
    card["architecture"] = "yolo11s.yaml"
    odd.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(SystemExit, match=r"yolo11s\.yaml with 26 classes needs"):
        train.checkpoint_from_onnx(odd, images, tmp_path / "odd.pt", calib_images=4)
