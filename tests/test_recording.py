"""The recording folder format: round trips, determinism and errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from walkout.recording import (
    CameraTrack,
    GateRecord,
    Manifest,
    ReceiptLine,
    Recording,
    RecordingError,
    Truth,
    TruthInteraction,
    TruthShopper,
    config_sha256,
    expected_receipts,
    write_camera_timestamps,
    write_gates,
    write_manifest,
    write_plates,
    write_truth,
)

T0 = 1_700_000_000_000_000_000


def _shoppers() -> list[TruthShopper]:
    return [
        TruthShopper(
            shopper_id="a1", account_id="acct-1", group_id="v1", entry_ts_ns=T0, exit_ts_ns=T0 + 60
        ),
        TruthShopper(
            shopper_id="a2",
            account_id="acct-1",
            group_id="v1",
            entry_ts_ns=T0 + 1,
            exit_ts_ns=T0 + 70,
        ),
        TruthShopper(
            shopper_id="b1",
            account_id="acct-2",
            group_id="v2",
            entry_ts_ns=T0 + 2,
            exit_ts_ns=T0 + 50,
        ),
    ]


def _it(n: int, shopper: str, account: str, kind: str, sku: str, qty: int) -> TruthInteraction:
    return TruthInteraction(
        id=f"i{n}",
        shopper_id=shopper,
        account_id=account,
        kind=kind,  # type: ignore[arg-type]
        lane_id="G1-L00",
        sku=sku,
        quantity=qty,
        start_ts_ns=T0 + n,
        end_ts_ns=T0 + n + 1,
        camera_id="cam-g1-a",
    )


def test_expected_receipts_net_per_group_visit() -> None:
    its = [
        _it(1, "a1", "acct-1", "pick", "cola-330", 2),
        _it(2, "a2", "acct-1", "pick", "chips-150", 1),
        _it(3, "a2", "acct-1", "put", "cola-330", 1),  # a group member puts back a1's item
        _it(4, "b1", "acct-2", "pick", "water-500", 1),
        _it(5, "b1", "acct-2", "put", "water-500", 1),
        _it(6, "b1", "acct-2", "touch", "ojuice-500", 0),
    ]
    receipts = expected_receipts(_shoppers(), its)
    assert [(r.group_id, [(x.sku, x.quantity) for x in r.lines]) for r in receipts] == [
        ("v2", []),
        ("v1", [("chips-150", 1), ("cola-330", 1)]),
    ]
    v1 = receipts[1]
    assert (v1.entry_ts_ns, v1.exit_ts_ns) == (T0, T0 + 70)


def _write(folder: Path) -> Manifest:
    (folder / "cameras").mkdir(parents=True)
    cfg = "version: 1\n"
    m = Manifest(
        store_id="demo-001",
        store_config=cfg,
        store_config_sha256=config_sha256(cfg),
        start_ts_ns=T0,
        end_ts_ns=T0 + 5_000_000_000,
        truth="truth.json",
        cameras={
            "cam-g1-a": CameraTrack(
                video="cameras/cam-g1-a.mp4",
                timestamps="cameras/cam-g1-a.csv",
                fps=15.0,
                resolution=(640, 360),
                frames=3,
            )
        },
    )
    write_manifest(folder, m)
    write_camera_timestamps(folder / "cameras/cam-g1-a.csv", [0, 1, 3], [T0, T0 + 66, T0 + 200])
    write_plates(folder / "plates.csv", [(T0, "P-G1-L00", 1250.5), (T0 + 40, "P-G1-L00", 1251.0)])
    write_gates(
        folder / "gates.jsonl",
        [GateRecord(ts_ns=T0, gate_id="gate-in", kind="entry", account_id="acct-1", group_size=2)],
    )
    its = [_it(1, "a1", "acct-1", "pick", "cola-330", 2)]
    write_truth(
        folder,
        Truth(
            scenario="single-0",
            family="single",
            seed=7,
            store_id="demo-001",
            start_ts_ns=T0,
            end_ts_ns=T0 + 5,
            shoppers=tuple(_shoppers()),
            interactions=tuple(its),
            receipts=expected_receipts(_shoppers(), its),
        ),
    )
    return m


def test_round_trip_and_byte_identical(tmp_path: Path) -> None:
    m = _write(tmp_path / "a")
    _write(tmp_path / "b")
    for name in (
        "manifest.json",
        "truth.json",
        "plates.csv",
        "gates.jsonl",
        "cameras/cam-g1-a.csv",
    ):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    rec = Recording(tmp_path / "a")
    assert rec.manifest == m
    idx, ts = rec.camera_timestamps("cam-g1-a")
    assert idx.tolist() == [0, 1, 3] and ts.dtype == np.int64
    plates = rec.plates()
    assert plates["P-G1-L00"].weight_g.tolist() == [1250.5, 1251.0]
    assert rec.gates()[0].group_size == 2
    truth = rec.truth()
    assert truth is not None
    by_group = {r.group_id: r.lines for r in truth.receipts}
    assert by_group == {"v1": (ReceiptLine(sku="cola-330", quantity=2),), "v2": ()}


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="not a folder"):
        Recording(tmp_path / "missing")
    _write(tmp_path / "r")
    rec = Recording(tmp_path / "r")
    with pytest.raises(RecordingError, match=r"no camera 'cam-x'.*cam-g1-a"):
        rec.camera_video("cam-x")
    (tmp_path / "r" / "plates.csv").write_text("ts_ns,plate_id,weight_g\n12,P,notanumber\n")
    with pytest.raises(RecordingError, match=r"plates.csv:2: bad row"):
        rec.plates()
    (tmp_path / "r" / "manifest.json").write_text("{")
    with pytest.raises(RecordingError, match=r"manifest\.json: not valid JSON"):
        Recording(tmp_path / "r")
