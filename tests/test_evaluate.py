"""``walkout eval`` on a hand-made recording and run folder: numbers, report and plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

from walkout.cli import main
from walkout.evaluate import load_latency, load_steps
from walkout.recording import (
    ExpectedReceipt,
    Manifest,
    ReceiptLine,
    Truth,
    TruthInteraction,
    write_manifest,
    write_truth,
)

S = 1_000_000_000


def _recording(folder: Path) -> None:
    folder.mkdir()
    write_manifest(
        folder,
        Manifest(
            store_id="s",
            store_config="",
            store_config_sha256="",
            start_ts_ns=0,
            end_ts_ns=90 * S,
            truth="truth.json",
        ),
    )
    its = (
        TruthInteraction(
            id="t1",
            shopper_id="a",
            account_id="A",
            kind="pick",
            lane_id="G1-L00",
            sku="cola-330",
            quantity=2,
            start_ts_ns=10 * S,
            end_ts_ns=11 * S,
            camera_id="cam-g1-a",
        ),
        TruthInteraction(
            id="t2",
            shopper_id="b",
            account_id="B",
            kind="pick",
            lane_id="G1-L01",
            sku="cola-440",
            quantity=1,
            start_ts_ns=12 * S,
            end_ts_ns=13 * S,
            camera_id="cam-g1-a",
        ),
    )
    receipts = (
        ExpectedReceipt(
            account_id="A",
            group_id="ga",
            entry_ts_ns=S,
            exit_ts_ns=50 * S,
            lines=(ReceiptLine(sku="cola-330", quantity=2),),
        ),
        ExpectedReceipt(
            account_id="B",
            group_id="gb",
            entry_ts_ns=2 * S,
            exit_ts_ns=60 * S,
            lines=(ReceiptLine(sku="cola-440", quantity=1),),
        ),
    )
    write_truth(
        folder,
        Truth(
            scenario="lookalike-1",
            family="lookalike-putback",
            seed=1,
            store_id="s",
            start_ts_ns=0,
            end_ts_ns=90 * S,
            interactions=its,
            receipts=receipts,
        ),
    )


def _run(folder: Path) -> None:
    folder.mkdir()
    line = {"line_no": 1, "quantity": 2, "evidence": ["e1"], "review": False}
    (folder / "receipts.json").write_text(
        json.dumps(
            [
                {
                    "checkout_id": "co-a",
                    "account_id": "A",
                    "review": False,
                    "lines": [dict(line, sku="cola-330")],
                },
                {
                    "checkout_id": "co-b",
                    "account_id": "B",
                    "review": True,
                    "lines": [dict(line, sku="cola-330", quantity=1, evidence=["e2"])],
                },
            ]
        )
    )
    (folder / "carts.jsonl").write_text(
        json.dumps({"checkout_id": "co-a", "entry_ts_ns": S, "exit_ts_ns": 50 * S})
        + "\n"
        + json.dumps({"checkout_id": "co-b", "entry_ts_ns": 2 * S, "exit_ts_ns": 60 * S})
        + "\n"
    )
    ev = {
        "type": "ShelfInteraction",
        "lane_id": "G1-L00",
        "start_ts_ns": 10 * S,
        "end_ts_ns": 11 * S,
    }
    (folder / "events.jsonl").write_text(
        json.dumps(dict(ev, interaction_id="e1", deltas=[{"sku": "cola-330", "delta": -2}]))
        + "\n"
        + json.dumps(
            dict(
                ev, interaction_id="e2", lane_id="G1-L01", deltas=[{"sku": "cola-330", "delta": -1}]
            )
        )
        + "\n"
        + json.dumps(
            {
                "type": "WeightChange",
                "lane_id": "G1-L00",
                "delta_g": -690.0,
                "start_ts_ns": 10 * S,
                "end_ts_ns": 11 * S,
            }
        )
        + "\n"
    )
    (folder / "latency.json").write_text(
        json.dumps(
            {
                "realtime": False,
                "apply_ms": {"le": [1, 2, 5, 10, "+Inf"], "cumulative": [1, 3, 3, 4, 4]},
            }
        )
    )


def test_eval_cli_scores_and_writes_the_report(tmp_path: Path, capsys: object) -> None:
    _recording(tmp_path / "rec")
    _run(tmp_path / "run")
    assert main(["eval", str(tmp_path / "rec"), str(tmp_path / "run")]) == 0
    out = tmp_path / "run" / "eval"
    summary = json.loads((out / "summary.json").read_text())["overall"]
    # A is right (2 tp); B got a look-alike (1 fp, 1 fn)
    assert summary["line_counts"] == {"tp": 2, "fp": 1, "fn": 1}
    assert summary["exact_receipts"] == 0.5 and summary["review_rate"] == 0.5
    assert summary["event_counts"] == {"tp": 1, "fp": 1, "fn": 1}
    assert summary["plate_step_counts"] == {"tp": 1, "fp": 0, "fn": 1}
    assert summary["confusions"] == [{"true": "cola-440", "predicted": "cola-330", "count": 1}]
    for png in ("f1_per_family.png", "sku_confusions.png", "latency.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| lookalike-putback | 2 | 0.667 |" in (out / "report.md").read_text()


def test_eval_says_what_is_missing(tmp_path: Path, capsys: object) -> None:
    _recording(tmp_path / "rec")
    (tmp_path / "run").mkdir()
    assert main(["eval", str(tmp_path / "rec"), str(tmp_path / "run")]) == 1


def test_latency_histogram_from_the_replay(tmp_path: Path) -> None:
    _run(tmp_path / "run")
    lat = load_latency(tmp_path / "run")
    assert lat is not None and "applied" in lat.title
    assert lat.counts == (1, 2, 0, 1, 0) and lat.n == 4
    assert lat.quantile(0.5) == 2 and lat.quantile(0.99) == 10
    doc = {"realtime": True, "cart_update_ms": {"le": [100, "+Inf"], "cumulative": [0, 3]}}
    (tmp_path / "run" / "latency.json").write_text(json.dumps(doc))
    lat = load_latency(tmp_path / "run")
    assert lat is not None and "real-time" in lat.title and lat.quantile(0.5) == math.inf


def test_plate_steps_weigh_units_of_their_lane(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    config = Path(__file__).resolve().parents[1] / "configs" / "demo-store.yaml"
    step = {"type": "WeightChange", "start_ts_ns": 1, "end_ts_ns": 2}
    (run / "events.jsonl").write_text(
        json.dumps(dict(step, lane_id="G1-L00", delta_g=-691.0))  # cola-330: 345 g
        + "\n"
        + json.dumps(dict(step, lane_id="G1-L12", delta_g=170.0))  # chips-150: 165 g
        + "\n"
    )
    assert [s.units for s in load_steps(run)] == [1, 1]  # no store config: one unit each
    (run / "store.yaml").write_text(config.read_text())
    assert [s.units for s in load_steps(run)] == [2, 1]
