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


def _processes_mentioning(text: str) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            out.append(int(proc.name))
    return out


@pytest.mark.skipif(not MODEL.exists(), reason="the shipped detector models/walkout-det.onnx")
def test_a_terminated_replay_stops_the_services_it_started(tmp_path: Path) -> None:
    """A SIGTERM to ``walkout replay`` (a CI timeout, a supervisor) must not leave its edge,
    fusion and billing processes running: they sit in sessions of their own."""
    import signal
    import subprocess
    import sys
    import time

    rec, run = tmp_path / "rec", tmp_path / "run"
    args = ["--config", str(CONFIG), "--scenario", "single", "--seed", "12", "--duration", "20"]
    assert main(["sim", "record", *args, "--out", str(rec)]) == 0
    cmd = [sys.executable, "-m", "walkout.cli", "replay", str(rec), "--config", str(CONFIG)]
    proc = subprocess.Popen([*cmd, "--out", str(run)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(_processes_mentioning(str(run))) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)  # the replay itself and its four services
    assert len(_processes_mentioning(str(run))) >= 5, "the services did not start"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 20
    while _processes_mentioning(str(run)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(str(run)) == []
