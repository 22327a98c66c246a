"""What fusion decided, exported for ``walkout eval``: the events it made durable, the carts it
closed, and which account each piece of evidence was given to.

The assignments are derived by running fusion's own deterministic core over its log again, so
they are exactly what the service decided without the service having to keep a second record.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from fusion.core import FusionCore
from fusion.params import FusionParams
from fusion.pipeline import Pipeline
from fusion.service import expected_sources
from walkout.config import Store
from walkout.eventlog import SqliteLog
from walkout.storage import connect

EVENTS = "events.jsonl"
CARTS = "carts.jsonl"
ASSIGNMENTS = "assignments.jsonl"


class _Assignment(msgspec.Struct, frozen=True):
    evidence_id: str
    session_id: str
    account_id: str
    sku: str
    delta: int
    confidence: float
    review: bool
    why: str
    ts_ns: int


def export_fusion(
    data_dir: str | Path, out: str | Path, store: Store, params: FusionParams | None = None
) -> dict[str, int]:
    """Write events.jsonl, carts.jsonl and assignments.jsonl into ``out``; returns counts."""
    data, dest = Path(data_dir), Path(out)
    log_path, state_path = data / "log.db", data / "fusion.db"
    for p in (log_path, state_path):
        if not p.exists():
            raise FileNotFoundError(f"{p}: missing; was 'walkout fusion run' given --data {data}?")
    enc = msgspec.json.Encoder()
    core = FusionCore.from_store(store, params)
    pipeline = Pipeline(core, expected_sources(store), core.p.allowed_lateness_ns)
    log = SqliteLog(log_path)
    n_events = 0
    try:
        with (dest / EVENTS).open("wb") as f:
            for _pos, msg in log:
                f.write(enc.encode(msg) + b"\n")
                pipeline.ingest(msg)
                n_events += 1
    finally:
        log.close()
    n_assign = 0
    with (dest / ASSIGNMENTS).open("wb") as f:
        for sid in sorted(core.sessions):
            s = core.sessions[sid]
            for c in s.cart.changes:
                for ev in c.evidence:
                    rec = _Assignment(ev, sid, s.account_id, c.sku, c.delta, c.confidence,
                                      c.review, c.why, c.ts_ns)  # fmt: skip
                    f.write(enc.encode(rec) + b"\n")
                    n_assign += 1
    conn = connect(state_path, "NORMAL")
    try:
        rows = conn.execute(
            "SELECT checkout_id, session_id, account_id, entry_ts_ns, exit_ts_ns, review, "
            "lines_json FROM checkouts ORDER BY exit_ts_ns, checkout_id"
        ).fetchall()
    finally:
        conn.close()
    with (dest / CARTS).open("wb") as f:
        for cid, sid, acct, entry, exit_, review, lines in rows:
            cart = {
                "checkout_id": cid, "session_id": sid, "account_id": acct,
                "entry_ts_ns": entry, "exit_ts_ns": exit_, "review": bool(review),
                "lines": msgspec.json.decode(lines),
            }  # fmt: skip
            f.write(enc.encode(cart) + b"\n")
    return {"events": n_events, "assignments": n_assign, "carts": len(rows)}
