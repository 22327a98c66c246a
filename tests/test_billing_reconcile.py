"""Reconciling a day: a clean report gives no finding; every injected fault is found, nothing else.

A day of visits is settled through the simulated provider (holds, captures, charges above the
hold, refunds); its settlement report is then damaged on purpose, hypothesis choosing how many
faults of each kind (none to three) and where, and the findings must be exactly the injected
faults, counted per kind and idempotency key.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.reconcile import KINDS, post_settlement, reconcile, write_csv, write_html
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


Faults = dict[str, int]


def inject(
    rows: list[dict[str, str]], rng: random.Random, counts: Faults
) -> tuple[list[dict[str, str]], Counter[tuple[str, str]]]:
    """Damage a report with ``counts[kind]`` faults of each kind, at distinct rows chosen by
    ``rng``; returns the rows and the findings expected, as (kind, idempotency key)."""
    rows = [dict(r) for r in rows]
    expected: Counter[tuple[str, str]] = Counter()
    charges = [r for r in rows if r["type"] == "charge"]
    refunds = [r for r in rows if r["type"] == "refund"]
    n_drop, n_change, n_double = (
        counts.get("missing_capture", 0),
        counts.get("amount_mismatch", 0),
        counts.get("duplicate", 0),
    )
    picked = rng.sample(charges, n_drop + n_change + n_double)
    dropped = picked[:n_drop]
    changed = picked[n_drop : n_drop + n_change]
    doubled = picked[n_drop + n_change :]
    gone = {(d["idempotency_key"], t) for d in dropped for t in ("charge", "fee")}
    # A missing capture: the charge and its fee never settled.
    rows = [r for r in rows if (r["idempotency_key"], r["type"]) not in gone]
    expected.update(("missing_capture", d["idempotency_key"]) for d in dropped)
    for c in changed:
        c["amount_minor"] = str(int(c["amount_minor"]) + rng.choice((-1, 1, 100)))
        expected[("amount_mismatch", c["idempotency_key"])] += 1
    for i, d in enumerate(doubled):
        rows.insert(rng.randrange(len(rows)), {**d, "balance_transaction_id": f"txn_dup_{i}"})
        expected[("duplicate", d["idempotency_key"])] += 1
    for lost in rng.sample(refunds, counts.get("refund_not_settled", 0)):
        rows.remove(lost)
        expected[("refund_not_settled", lost["idempotency_key"])] += 1
    for i in range(counts.get("orphan_settlement_line", 0)):
        kind = rng.choice(("charge", "refund"))
        rows.append(
            {
                **charges[0],
                "type": kind,
                "balance_transaction_id": f"txn_x{i}",
                "source_id": f"pay_unknown_{i}",
                "idempotency_key": f"someone-else-{i}",
                "reference": "R-X",
                "amount_minor": str(777 if kind == "charge" else -777),
            }
        )
        expected[("orphan_settlement_line", f"someone-else-{i}")] += 1
    return rows, expected


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Billing, list[dict[str, str]]]:
    b, provider = settled_day(tmp_path_factory.mktemp("day"), seed=2)
    rows = provider.settlement_report(DAY)
    assert len([r for r in rows if r["type"] == "refund"]) >= 3
    return b, rows


fault_counts = st.fixed_dictionaries(
    {
        "missing_capture": st.integers(0, 3),
        "amount_mismatch": st.integers(0, 3),
        "duplicate": st.integers(0, 3),
        "refund_not_settled": st.integers(0, 3),
        "orphan_settlement_line": st.integers(0, 2),
    }
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(counts=fault_counts, seed=st.integers(0, 2**32))
def test_injected_faults_are_found_and_nothing_else(
    day: tuple[Billing, list[dict[str, str]]], counts: Faults, seed: int
) -> None:
    b, clean = day
    rows, expected = inject(clean, random.Random(seed), counts)
    findings = reconcile(b.db, rows)
    assert Counter((f.kind, f.op_key) for f in findings) == expected


def test_findings_are_written_as_csv_and_html(
    day: tuple[Billing, list[dict[str, str]]], tmp_path: Path
) -> None:
    b, clean = day
    counts = dict.fromkeys(KINDS, 1)
    rows, expected = inject(clean, random.Random(1), counts)
    findings = reconcile(b.db, rows)
    assert len(findings) == sum(expected.values()) == len(KINDS)
    csv_path = write_csv(tmp_path / "out" / "m.csv", findings)
    html_path = write_html(tmp_path / "out" / "m.html", findings, "day")
    assert len(csv_path.read_text().splitlines()) == len(findings) + 1
    page = html_path.read_text()
    assert all(f"<li>{k}: 1</li>" in page for k in KINDS)


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
