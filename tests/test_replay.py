"""A simulated recording through the real edge, fusion and billing processes, twice.

The services run as separate processes over CurveZMQ on loopback, as ``walkout replay`` runs
them; two replays of one recording must give identical receipts, and the receipt must be the
one the simulator says the shopper should get.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from walkout.cli import main
from walkout.evaluate import score_folder
from walkout.recording import Recording

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "walkout-det.onnx"
CONFIG = ROOT / "configs" / "demo-store.yaml"

pytestmark = pytest.mark.slow


def _stable(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # settled_ts_ns is the wall clock of settlement; everything else must be identical
    return [{k: v for k, v in r.items() if k != "settled_ts_ns"} for r in receipts]


@pytest.mark.skipif(not MODEL.exists(), reason="the shipped detector models/walkout-det.onnx")
def test_two_replays_give_identical_receipts(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    args = ["--config", str(CONFIG), "--scenario", "single", "--seed", "11", "--duration", "20"]
    assert main(["sim", "record", *args, "--out", str(rec)]) == 0
    truth = Recording(rec).truth()
    assert truth is not None and truth.receipts
    runs = []
    for name in ("a", "b"):
        run = tmp_path / name
        assert main(["replay", str(rec), "--config", str(CONFIG), "--out", str(run)]) == 0
        runs.append(json.loads((run / "receipts.json").read_text()))
    assert _stable(runs[0]) == _stable(runs[1])
    assert len(runs[0]) == len(truth.receipts)
    score = score_folder(truth, tmp_path / "a")
    assert score.lines.f1 == 1.0, score.summary()
    replay = json.loads((tmp_path / "a" / "replay.json").read_text())
    assert replay["exit_codes"] == {"edge-2": 0, "edge-1": 0, "fusion": 0, "billing": 0}
