"""The recording folder: what ``walkout sim record`` and ``walkout edge record`` write and
``walkout replay`` reads.

Layout (every path relative to the folder)::

    manifest.json            Manifest: store config text and hash, start/end, devices, origin
    cameras/<id>.mp4         per camera, the video (mp4v)
    cameras/<id>.csv         per camera, ``frame_index,ts_ns``: one row per frame in the video,
                             in order; a frame the camera dropped is a missing frame_index
    plates.csv               ``ts_ns,plate_id,weight_g`` sorted by ts_ns
    gates.jsonl              one GateRecord per line, sorted by ts_ns
    truth.json               simulated recordings only: every true interaction and the
                             expected receipt of every account visit

Times are epoch nanoseconds from the device clock. The writers are deterministic (fixed field
order, no wall clock), so the same simulated scenario gives byte-identical files.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

FORMAT = "walkout-recording"
VERSION = 1

MANIFEST = "manifest.json"
PLATES = "plates.csv"
GATES = "gates.jsonl"
TRUTH = "truth.json"
CAMERAS = "cameras"

_T = TypeVar("_T")


class RecordingError(Exception):
    """A recording folder is missing a file or holds something unreadable."""


# ------------------------------------------------------------------ manifest


class CameraTrack(msgspec.Struct, frozen=True, kw_only=True):
    video: str  # relative path, e.g. cameras/cam-g1-a.mp4
    timestamps: str  # relative path, e.g. cameras/cam-g1-a.csv
    fps: float
    resolution: tuple[int, int]  # width, height
    frames: int = 0


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    format: str = FORMAT
    version: int = VERSION
    origin: Literal["sim", "edge"] = "sim"
    store_id: str
    store_config: str  # the config text the recording was made with
    store_config_sha256: str
    start_ts_ns: int
    end_ts_ns: int
    cameras: dict[str, CameraTrack] = {}
    plates: str | None = PLATES
    gates: str | None = GATES
    truth: str | None = None
    scenario: str = ""
    family: str = ""
    seed: int | None = None
    retention_days: int | None = None

    @property
    def duration_s(self) -> float:
        return (self.end_ts_ns - self.start_ts_ns) / 1e9


# ------------------------------------------------------------------ gates


class GateRecord(msgspec.Struct, frozen=True, kw_only=True):
    ts_ns: int
    gate_id: str
    kind: Literal["entry", "exit"]
    account_id: str | None = None
    group_size: int = 1
    xy_m: tuple[float, float] | None = None


# ------------------------------------------------------------------ truth


class TruthShopper(msgspec.Struct, frozen=True, kw_only=True):
    shopper_id: str
    account_id: str
    # shoppers of one group share an account and one cart; group_id names the visit
    group_id: str
    entry_ts_ns: int
    exit_ts_ns: int


class TruthInteraction(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    shopper_id: str
    account_id: str
    kind: Literal["pick", "put", "touch"]
    lane_id: str
    sku: str
    quantity: int  # units moved; 0 for a touch
    start_ts_ns: int
    end_ts_ns: int
    camera_id: str
    family_tag: str = ""


class ReceiptLine(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    quantity: int


class ExpectedReceipt(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str
    group_id: str
    entry_ts_ns: int
    exit_ts_ns: int
    lines: tuple[ReceiptLine, ...] = ()


class Truth(msgspec.Struct, frozen=True, kw_only=True):
    scenario: str
    family: str
    seed: int
    store_id: str
    start_ts_ns: int
    end_ts_ns: int
    shoppers: tuple[TruthShopper, ...] = ()
    interactions: tuple[TruthInteraction, ...] = ()
    receipts: tuple[ExpectedReceipt, ...] = ()


def expected_receipts(
    shoppers: Sequence[TruthShopper], interactions: Iterable[TruthInteraction]
) -> tuple[ExpectedReceipt, ...]:
    """Net picks minus puts per visit (group), positive lines only, sorted by sku."""
    visits: dict[str, list[TruthShopper]] = {}
    for s in shoppers:
        visits.setdefault(s.group_id, []).append(s)
    group_of = {s.shopper_id: s.group_id for s in shoppers}
    net: dict[str, dict[str, int]] = {g: {} for g in visits}
    for it in interactions:
        if it.kind == "touch":
            continue
        sign = 1 if it.kind == "pick" else -1
        g = net[group_of[it.shopper_id]]
        g[it.sku] = g.get(it.sku, 0) + sign * it.quantity
    out = []
    for gid, members in visits.items():
        lines = tuple(ReceiptLine(sku=k, quantity=q) for k, q in sorted(net[gid].items()) if q > 0)
        out.append(
            ExpectedReceipt(
                account_id=members[0].account_id,
                group_id=gid,
                entry_ts_ns=min(m.entry_ts_ns for m in members),
                exit_ts_ns=max(m.exit_ts_ns for m in members),
                lines=lines,
            )
        )
    out.sort(key=lambda r: (r.exit_ts_ns, r.group_id))
    return tuple(out)


# ------------------------------------------------------------------ files


def _json_bytes(obj: msgspec.Struct) -> bytes:
    return msgspec.json.format(msgspec.json.encode(obj), indent=1) + b"\n"


def _read_struct(path: Path, kind: type[_T]) -> _T:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RecordingError(
            f"{path}: cannot read ({exc.strerror}); is this a recording folder?"
        ) from exc
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise RecordingError(f"{path}: {exc}; re-record or fix the file") from exc
    except msgspec.DecodeError as exc:
        raise RecordingError(f"{path}: not valid JSON ({exc}); the file is damaged") from exc


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    p = Path(folder) / MANIFEST
    p.write_bytes(_json_bytes(manifest))
    return p


def read_manifest(folder: str | Path) -> Manifest:
    m = _read_struct(Path(folder) / MANIFEST, Manifest)
    if m.format != FORMAT or m.version > VERSION:
        raise RecordingError(
            f"{Path(folder) / MANIFEST}: format {m.format!r} version {m.version}; this build "
            f"reads {FORMAT!r} up to version {VERSION}"
        )
    return m


def write_truth(folder: str | Path, truth: Truth) -> Path:
    p = Path(folder) / TRUTH
    p.write_bytes(_json_bytes(truth))
    return p


def read_truth(folder: str | Path) -> Truth:
    return _read_struct(Path(folder) / TRUTH, Truth)


def write_camera_timestamps(
    path: str | Path, frame_index: Iterable[int], ts_ns: Iterable[int]
) -> None:
    buf = io.StringIO()
    buf.write("frame_index,ts_ns\n")
    for i, t in zip(frame_index, ts_ns, strict=True):
        buf.write(f"{int(i)},{int(t)}\n")
    Path(path).write_text(buf.getvalue())


def read_camera_timestamps(
    path: str | Path,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(frame_index, ts_ns) of every frame in the camera's video, in order."""
    p = Path(path)
    try:
        with p.open() as f:
            header = f.readline().strip()
            if header != "frame_index,ts_ns":
                raise RecordingError(f"{p}: header {header!r}, expected 'frame_index,ts_ns'")
            data = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except OSError as exc:
        raise RecordingError(f"{p}: cannot read ({exc.strerror})") from exc
    except ValueError as exc:
        raise RecordingError(f"{p}: a row is not two integers ({exc})") from exc
    if data.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return data[:, 0].copy(), data[:, 1].copy()


def write_plates(
    path: str | Path, rows: Iterable[tuple[int, str, float]], decimals: int = 2
) -> None:
    """Rows of (ts_ns, plate_id, weight_g); the caller sorts them by ts_ns."""
    buf = io.StringIO()
    buf.write("ts_ns,plate_id,weight_g\n")
    for ts, pid, w in rows:
        buf.write(f"{int(ts)},{pid},{w:.{decimals}f}\n")
    Path(path).write_text(buf.getvalue())


@dataclass(frozen=True)
class PlateSeries:
    plate_id: str
    ts_ns: npt.NDArray[np.int64]
    weight_g: npt.NDArray[np.float64]


def read_plates(path: str | Path) -> dict[str, PlateSeries]:
    p = Path(path)
    ts: dict[str, list[int]] = {}
    w: dict[str, list[float]] = {}
    try:
        with p.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header != ["ts_ns", "plate_id", "weight_g"]:
                raise RecordingError(f"{p}: header {header}, expected ts_ns,plate_id,weight_g")
            for n, row in enumerate(reader, start=2):
                try:
                    t, pid, g = int(row[0]), row[1], float(row[2])
                except (ValueError, IndexError) as exc:
                    raise RecordingError(f"{p}:{n}: bad row {row} ({exc})") from exc
                ts.setdefault(pid, []).append(t)
                w.setdefault(pid, []).append(g)
    except OSError as exc:
        raise RecordingError(f"{p}: cannot read ({exc.strerror})") from exc
    return {
        pid: PlateSeries(pid, np.asarray(ts[pid], np.int64), np.asarray(w[pid], np.float64))
        for pid in ts
    }


_gate_encoder = msgspec.json.Encoder()
_gate_decoder = msgspec.json.Decoder(GateRecord)


def write_gates(path: str | Path, records: Iterable[GateRecord]) -> None:
    Path(path).write_bytes(b"".join(_gate_encoder.encode(r) + b"\n" for r in records))


def read_gates(path: str | Path) -> list[GateRecord]:
    p = Path(path)
    out = []
    try:
        lines = p.read_bytes().splitlines()
    except OSError as exc:
        raise RecordingError(f"{p}: cannot read ({exc.strerror})") from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(_gate_decoder.decode(line))
        except msgspec.DecodeError as exc:
            raise RecordingError(f"{p}:{n}: {exc}") from exc
    return out


def config_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------ reader


class Recording:
    """A recording folder opened for reading."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise RecordingError(
                f"{self.folder}: not a folder; make one with 'walkout sim record' or "
                "'walkout edge record'"
            )
        self.manifest = read_manifest(self.folder)

    def path(self, relative: str) -> Path:
        return self.folder / relative

    def camera_video(self, camera_id: str) -> Path:
        return self.path(self._camera(camera_id).video)

    def camera_timestamps(
        self, camera_id: str
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        return read_camera_timestamps(self.path(self._camera(camera_id).timestamps))

    def plates(self) -> dict[str, PlateSeries]:
        return read_plates(self.path(self.manifest.plates)) if self.manifest.plates else {}

    def gates(self) -> list[GateRecord]:
        return read_gates(self.path(self.manifest.gates)) if self.manifest.gates else []

    def truth(self) -> Truth | None:
        return read_truth(self.folder) if self.manifest.truth else None

    def _camera(self, camera_id: str) -> CameraTrack:
        try:
            return self.manifest.cameras[camera_id]
        except KeyError:
            known = ", ".join(sorted(self.manifest.cameras)) or "none"
            raise RecordingError(
                f"{self.folder / MANIFEST}: no camera {camera_id!r} (recorded: {known})"
            ) from None
