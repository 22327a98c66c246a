"""Reconciling a day: a clean report gives no finding; every injected fault is found, nothing else.

A day of visits is settled through the simulated provider (holds, captures, charges above the
hold, refunds); its settlement report is then damaged on purpose, one fault of each kind at a
seeded random place, and the findings must be exactly the injected faults.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

import pytest

from billing.reconcile import post_settlement, reconcile, write_csv, write_html
from billing.settle import Billing
from billing.simprovider import SimulatedProvider, read_report, utc_day, write_report
from billing.simulation import DAY0_NS, visits
from walkout.config import Store, load_store

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo-store.yaml"
DAY = utc_day(DAY0_NS)


@functools.cache
def demo_store() -> Store:
    return load_store(CONFIG)


def settled_day(root: Path, seed: int) -> tuple[Billing, SimulatedProvider]:
    def clock() -> int:
        return DAY0_NS + 60_000_000_000

    provider = SimulatedProvider(root / "provider.sqlite", clock_ns=clock, synchronous="OFF")
    b = Billing.from_store(
        demo_store(), root / "billing.sqlite", provider, clock_ns=clock, synchronous="OFF"
    )
    skus = ["coffee-250", "cola-330", "rice-1000", "sandwich-ham", "ojuice-500", "water-500"]
    rng = random.Random(seed)
    for i, v in enumerate(visits(24, skus, seed=seed, max_lines=6)):
        if i % 4:  # a quarter of the shoppers have no hold (the hold failed or came late)
            b.open_session(v.opened)
        r = b.settle(v.closed)
        if rng.random() < 0.3:
            b.refund(r.receipt_no, 1, "damaged")
    return b, provider


def test_clean_day_has_no_findings(tmp_path: Path) -> None:
    b, provider = settled_day(tmp_path, seed=1)
    rows = provider.settlement_report(DAY)
    assert {r["type"] for r in rows} == {"charge", "fee", "refund", "payout"}
    assert reconcile(b.db, rows) == []
    # Fees and the payout post once; the clearing account is then empty.
    assert post_settlement(b.db, rows) > 0
    assert post_settlement(b.db, rows) == 0
    assert b.ledger.balance("payment_clearing") == 0
    assert b.ledger.check() == []


def inject(
    rows: list[dict[str, str]], rng: random.Random
) -> tuple[list[dict[str, str]], set[tuple[str, str]]]:
    """Damage a report: one fault of each kind; returns the rows and the expected findings."""
    rows = [dict(r) for r in rows]
    expected: set[tuple[str, str]] = set()
    charges = [r for r in rows if r["type"] == "charge"]
    refunds = [r for r in rows if r["type"] == "refund"]
    dropped, changed, doubled = rng.sample(charges, 3)
    # Missing capture: the charge and its fee never settled.
    rows = [
        r
        for r in rows
        if r["source_id"] != dropped["source_id"]
        or r["type"] not in ("charge", "fee")
        or r["idempotency_key"] != dropped["idempotency_key"]
    ]
    expected.add(("missing_capture", dropped["reference"]))
    changed["amount_minor"] = str(int(changed["amount_minor"]) - 1)
    expected.add(("amount_mismatch", changed["reference"]))
    rows.append({**doubled, "balance_transaction_id": "txn_dup_1"})
    expected.add(("duplicate", doubled["reference"]))
    lost = rng.choice(refunds)
    rows.remove(lost)
    expected.add(("refund_not_settled", lost["reference"]))
    rows.append(
        {
            **charges[0],
            "balance_transaction_id": "txn_x",
            "source_id": "pay_unknown",
            "idempotency_key": "someone-else",
            "reference": "R-X",
            "amount_minor": "777",
        }
    )
    expected.add(("orphan_settlement_line", "R-X"))
    return rows, expected


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_injected_faults_are_found_and_nothing_else(tmp_path: Path, seed: int) -> None:
    b, provider = settled_day(tmp_path, seed)
    report = write_report(tmp_path / "settlement.csv", provider.settlement_report(DAY))
    rows, expected = inject(read_report(report), random.Random(seed))
    findings = reconcile(b.db, rows)
    assert {(f.kind, f.receipt_no) for f in findings} == expected
    assert len(findings) == len(expected)
    csv_path = write_csv(tmp_path / "out" / "m.csv", findings)
    html_path = write_html(tmp_path / "out" / "m.html", findings, "day")
    assert len(csv_path.read_text().splitlines()) == len(findings) + 1
    assert "orphan_settlement_line" in html_path.read_text()


def test_unanswered_capture_is_a_missing_capture(tmp_path: Path) -> None:
    """A receipt whose capture never got an answer is listed, though the report is clean."""
    b, provider = settled_day(tmp_path, seed=5)
    v = visits(1, ["coffee-250"], seed=99)[0]
    b.provider = _Silent()  # type: ignore[assignment]
    r = b.settle(v.closed)
    assert r.status == "due"
    findings = reconcile(b.db, provider.settlement_report(DAY))
    assert [(f.kind, f.receipt_no) for f in findings] == [("missing_capture", r.receipt_no)]


class _Silent:
    """A provider that never answers."""

    def __getattr__(self, name: str) -> object:
        from billing.provider import ProviderTimeout

        def call(*args: object, **kw: object) -> None:
            raise ProviderTimeout("no answer")

        return call


def test_cli_settlement_report_and_reconcile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from billing.cli import register

    b, provider = settled_day(tmp_path, seed=6)
    b.db.close()
    provider.close()
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="area"), "billing", "billing")

    def run(*argv: str) -> int:
        args = parser.parse_args(["billing", *argv, "--data", str(tmp_path)])
        return int(args.handler(args))

    report = tmp_path / "settlement.csv"
    assert run("settlement-report", "--day", DAY, "--out", str(report)) == 0
    out = tmp_path / "rec"
    assert run("reconcile", "--report", str(report), "--out", str(out), "--post") == 0
    assert "0 mismatches" in capsys.readouterr().out
    rows = read_report(report)
    rows.pop(next(i for i, r in enumerate(rows) if r["type"] == "refund"))
    write_report(report, rows)
    assert run("reconcile", "--report", str(report), "--out", str(out)) == 1
    text = (out / "settlement-mismatches.csv").read_text()
    assert text.count("refund_not_settled") == 1 and len(text.splitlines()) == 2
    assert run("reconcile", "--report", str(tmp_path / "nope.csv")) == 2


def test_a_receipt_collected_twice_is_a_duplicate(tmp_path: Path) -> None:
    """Our own bug (two collections for one receipt) shows even when the report agrees."""
    b, provider = settled_day(tmp_path, seed=7)
    r = b.receipt("R-000002")
    assert r is not None and r.status == "paid"
    with b.db.transaction():
        b._plan(
            "chg:extra",
            "charge",
            session_id=r.session_id,
            account_id=r.account_id,
            amount_minor=100,
            checkout_id=r.checkout_id,
            receipt_no=r.receipt_no,
        )
    b.resume()
    findings = reconcile(b.db, provider.settlement_report(DAY))
    assert [(f.kind, f.receipt_no, f.actual_minor) for f in findings] == [
        ("duplicate", "R-000002", r.total_minor + 100)
    ]
