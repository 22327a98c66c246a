"""Billing settlements per second with durable commits, beside a bare SQLite commit loop.

    python benchmarks/billing_bench.py [--carts 600] [--rounds 3]

Bare: one INSERT of a receipt-sized row and one COMMIT per iteration, SQLite WAL with
synchronous=FULL, the floor of "one durable write per settlement".

Settlement: a CartClosed (seeded, 1-5 lines from the demo store, promotions and tax) becomes a
receipt, a sale in the ledger, a stored capture (idempotency key committed before the call), the
capture at the simulated provider (its own SQLite database) and the recorded answer with the
collection posted to the ledger. Billing's database runs WAL + synchronous=FULL. The hold
for each session is placed before the clock starts. Variants:

* ``one by one``: ``Billing.settle`` per cart (two billing commits + one provider commit);
* ``inbox batch of 32``: ``Billing.settle_many`` as the inbox worker calls it for a batch of
  carts taken from the durable inbox (two billing commits per batch, one provider commit per
  call);
* ``provider not durable``: one by one, with the simulated provider at synchronous=OFF, to show
  what billing's own commits cost when the provider is a remote service.

Rounds alternate the variants; medians. Writes benchmarks/results/billing.json and billing.md.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from machine import describe, markdown_header

from billing.settle import Billing
from billing.simprovider import SimulatedProvider
from billing.simulation import visits
from walkout.config import Store, load_store

RESULTS = Path(__file__).resolve().parent / "results"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo-store.yaml"
ROW = b"x" * 600  # about the size of a receipt row with its lines


def bare_commits(root: Path, n: int) -> float:
    conn = sqlite3.connect(root / "bare.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT NOT NULL, v BLOB NOT NULL)")
    t0 = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (?, ?, ?)", (i, f"co-{i}", ROW))
        conn.execute("COMMIT")
    dt = time.perf_counter() - t0
    conn.close()
    return n / dt


def settlements(
    store: Store, root: Path, n: int, *, batch: int, provider_sync: str, seed: int
) -> float:
    provider = SimulatedProvider(root / "provider.sqlite", synchronous=provider_sync)
    b = Billing.from_store(store, root / "billing.sqlite", provider, synchronous="FULL")
    vs = visits(n, list(store.products), seed=seed)
    for v in vs:
        b.open_session(v.opened)
    carts = [v.closed for v in vs]
    t0 = time.perf_counter()
    if batch == 1:
        for c in carts:
            b.settle(c)
    else:
        for i in range(0, n, batch):
            b.settle_many(carts[i : i + batch])
    dt = time.perf_counter() - t0
    paid = b.db.scalar("SELECT COUNT(*) FROM receipts WHERE status = 'paid'")
    problems = b.ledger.check()
    b.db.close()
    provider.close()
    if paid != n or problems:
        raise SystemExit(f"benchmark run is wrong: {paid} of {n} paid, ledger {problems}")
    return n / dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--carts", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    store = load_store(CONFIG)
    variants: dict[str, Callable[[Path, int], float]] = {
        "bare": lambda root, r: bare_commits(root, args.carts),
        "one_by_one": lambda root, r: settlements(
            store, root, args.carts, batch=1, provider_sync="FULL", seed=r
        ),
        "inbox_batch_32": lambda root, r: settlements(
            store, root, args.carts, batch=32, provider_sync="FULL", seed=r
        ),
        "provider_not_durable": lambda root, r: settlements(
            store, root, args.carts, batch=1, provider_sync="OFF", seed=r
        ),
    }
    runs: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.rounds):
        for name, fn in variants.items():
            with tempfile.TemporaryDirectory(prefix="billing-bench-") as tmp:
                rate = fn(Path(tmp), r)
            runs[name].append(rate)
            print(f"round {r + 1}: {name:<22} {rate:10,.0f} /s", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    bare = med["bare"]
    result: dict[str, Any] = {
        "machine": describe("msgspec", "pyzmq"),
        "sqlite": sqlite3.sqlite_version,
        "carts_per_round": args.carts,
        "rounds": args.rounds,
        "per_second_median": med,
        "per_second_runs": runs,
        "ratio_to_bare": {k: v / bare for k, v in med.items()},
        "target_ratio": 0.30,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "billing.json").write_text(json.dumps(result, indent=2) + "\n")
    labels = {
        "bare": "bare SQLite commit loop (WAL, synchronous=FULL, 1 insert per commit)",
        "one_by_one": "settlement one by one (billing FULL, provider FULL)",
        "inbox_batch_32": "settlement, inbox batch of 32 (billing FULL, provider FULL)",
        "provider_not_durable": "settlement one by one (billing FULL, provider OFF)",
    }
    rows = "".join(f"| {labels[k]} | {med[k]:,.0f} | {med[k] / bare:.2f} |\n" for k in variants)
    md = markdown_header("Billing settlement benchmark", result["machine"]) + (
        f"\nSQLite {sqlite3.sqlite_version}. {args.carts} carts per round, {args.rounds} rounds "
        "alternating; medians. A settlement is a CartClosed priced into a receipt, the sale "
        "posted, the capture stored, made at the simulated provider and recorded with its "
        "ledger collection. Target: settlements at least 0.30 of the bare loop.\n\n"
        "| path | per second | ratio to bare |\n|---|---:|---:|\n" + rows
    )
    (RESULTS / "billing.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
