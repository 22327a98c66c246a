"""Billing scenarios: pricing, settlement, review, refunds, export and the finance CLI."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.cli import register
from billing.export import receipts_json
from billing.pricing import Catalog, inclusive_tax, round_half_up_div
from billing.provider import ProviderTimeout
from billing.settle import Billing, BillingError
from billing.simprovider import Faults, SimulatedProvider
from billing.simulation import DAY0_NS, visits
from walkout.config import Store, load_store
from walkout.messages import CartClosed, CartLine, SessionOpened

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo-store.yaml"
SKUS_ALL = [
    "cola-330",
    "water-500",
    "ojuice-500",
    "sandwich-ham",
    "choc-milk",
    "gummy-200",
    "coffee-250",
    "tissues-80",
]


@functools.cache
def demo_catalog() -> Catalog:
    return Catalog(load_store(CONFIG).cfg)


@pytest.fixture(scope="module")
def store() -> Store:
    return load_store(CONFIG)


def clock() -> int:
    return DAY0_NS + 3_600_000_000_000


def make(store: Store, tmp: Path, faults: Faults | None = None) -> Billing:
    provider = SimulatedProvider(tmp / "provider.sqlite", faults, clock_ns=clock)
    return Billing.from_store(store, tmp / "billing.sqlite", provider, clock_ns=clock)


def cart(lines: list[tuple[str, int]], *, co: str = "co-1", review: bool = False) -> CartClosed:
    return CartClosed(
        source_id="fusion",
        event_ts_ns=DAY0_NS + 2,
        checkout_id=co,
        session_id=f"s-{co}",
        account_id="acct-1",
        store_id="demo-001",
        entry_ts_ns=DAY0_NS,
        exit_ts_ns=DAY0_NS + 1,
        lines=tuple(
            CartLine(sku=s, quantity=q, evidence=(f"ev-{s}",), review=review) for s, q in lines
        ),
        review=review,
    )


def opened(co: str = "co-1") -> SessionOpened:
    return SessionOpened(
        source_id="fusion",
        event_ts_ns=DAY0_NS,
        session_id=f"s-{co}",
        account_id="acct-1",
        store_id="demo-001",
    )


@pytest.mark.parametrize(
    ("num", "den", "expected"),
    [(5, 10, 1), (4, 10, 0), (15, 10, 2), (-5, 10, -1), (-4, 10, 0), (0, 7, 0)],
)
def test_round_half_up(num: int, den: int, expected: int) -> None:
    assert round_half_up_div(num, den) == expected


def test_inclusive_tax_per_line() -> None:
    # 1.19 EUR at 19 % contains 0.19 EUR; 0.99 contains 0.158 -> 0.16.
    assert inclusive_tax(119, 1900) == 19
    assert inclusive_tax(99, 1900) == 16
    assert inclusive_tax(107, 700) == 7


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # sku, quantity -> (line total, discount, promotion) per line
        ([("water-500", 3)], [(158, 79, "Water 3 for 2")]),
        ([("water-500", 7)], [(79 * 5, 79 * 2, "Water 3 for 2")]),
        ([("water-500", 2)], [(158, 0, None)]),
        (
            [("sandwich-ham", 1), ("ojuice-500", 1)],
            [(291, 58, "Meal deal sandwich + juice"), (158, 31, "Meal deal sandwich + juice")],
        ),
        ([("choc-milk", 3)], [(321, 36, "10 % off sweets")]),
        ([("cola-330", 2)], [(198, 0, None)]),
    ],
)
def test_promotions(store: Store, lines: list[tuple[str, int]], expected: list[object]) -> None:
    priced = Catalog(store.cfg).price([CartLine(sku=s, quantity=q) for s, q in lines])
    got = [(x.total_minor, x.discount_minor, x.promotion) for x in priced.lines]
    assert got == expected
    assert priced.total_minor == priced.subtotal_minor - priced.discount_minor


def test_bundle_units_count_once(store: Store) -> None:
    priced = Catalog(store.cfg).price(
        [CartLine(sku="sandwich-ham", quantity=1), CartLine(sku="ojuice-500", quantity=3)]
    )
    juice = priced.lines[1]
    assert juice.discount_minor == 31  # only one juice is in the meal deal
    assert juice.total_minor == 3 * 189 - 31


def test_same_sku_lines_merge_and_unknown_sku_flags(store: Store) -> None:
    priced = Catalog(store.cfg).price(
        [
            CartLine(sku="cola-330", quantity=1, evidence=("a",)),
            CartLine(sku="nope", quantity=1),
            CartLine(sku="cola-330", quantity=2, evidence=("b",)),
        ]
    )
    assert [(x.sku, x.quantity, x.evidence) for x in priced.lines] == [
        ("cola-330", 3, ("a", "b")),
        ("nope", 1, ()),
    ]
    assert priced.lines[1].total_minor == 0 and priced.lines[1].review
    assert priced.review_reasons


def test_settle_once_with_hold(store: Store, tmp_path: Path) -> None:
    b = make(store, tmp_path)
    hold = b.open_session(opened())
    assert hold is not None and hold.status == "succeeded"
    c = cart([("water-500", 3), ("coffee-250", 1)])
    first = b.settle(c)
    again = b.settle(c)
    assert first.receipt_no == again.receipt_no == "R-000001"
    assert again.status == "paid"
    assert [(o.kind, o.amount_minor) for o in b.ops(first.receipt_no)] == [
        ("capture", first.total_minor)
    ]
    assert b.provider.captured_total(first.receipt_no) == first.total_minor  # type: ignore[attr-defined]
    assert b.ledger.check() == []
    assert b.ledger.balance("customer_receivables") == 0
    assert b.ledger.balance("payment_clearing") == first.total_minor


def test_total_above_hold_charges_the_rest(store: Store, tmp_path: Path) -> None:
    b = make(store, tmp_path)
    b.open_session(opened())
    r = b.settle(cart([("coffee-250", 12)]))
    ops = {o.kind: o.amount_minor for o in b.ops(r.receipt_no)}
    assert ops == {"capture": 5_000, "charge": r.total_minor - 5_000}
    assert r.status == "paid"


def test_empty_cart_releases_hold(store: Store, tmp_path: Path) -> None:
    b = make(store, tmp_path)
    b.open_session(opened())
    r = b.settle(cart([]))
    assert r.total_minor == 0 and r.status == "paid"
    assert [o.kind for o in b.ops(r.receipt_no)] == ["release"]
    assert b.provider.open_authorizations() == []  # type: ignore[attr-defined]


def test_declined_card_leaves_receivable_open(store: Store, tmp_path: Path) -> None:
    b = make(store, tmp_path, Faults(decline_accounts=frozenset({"acct-1"})))
    b.open_session(opened())
    r = b.settle(cart([("cola-330", 1)]))
    assert r.status == "declined"
    assert b.ledger.balance("customer_receivables") == r.total_minor
    assert b.ledger.check() == []


def test_flagged_receipt_waits_for_a_person(store: Store, tmp_path: Path) -> None:
    b = make(store, tmp_path)
    b.open_session(opened())
    r = b.settle(cart([("chips-150", 2)], review=True))
    assert r.status == "review" and r.review
    assert b.ops(r.receipt_no) == []
    with pytest.raises(BillingError, match="reason"):
        b.correct(r.receipt_no, [("chips-200", 1)], "", "ana")
    fixed = b.correct(r.receipt_no, [("chips-200", 1)], "video shows the large bag", "ana")
    assert fixed.status == "paid" and fixed.revision == 1
    assert [x.sku for x in fixed.lines] == ["chips-200"]
    assert fixed.lines[0].evidence == ()  # evidence only follows a sku that was on the receipt
    # The first sale is reversed, the corrected one posted; the ledger keeps both.
    assert b.ledger.txn_ids(r.receipt_no)[:3] == [
        f"sale:{r.receipt_no}:r0",
        f"rev:sale:{r.receipt_no}:r0",
        f"sale:{r.receipt_no}:r1",
    ]
    assert b.ledger.balance("customer_receivables") == 0
    assert b.ledger.check() == []
    with pytest.raises(BillingError, match="not waiting for review"):
        b.approve(r.receipt_no, "ana")


def test_approve(store: Store, tmp_path: Path) -> None:
    b = make(store, tmp_path)
    r = b.settle(cart([("chips-150", 1)], review=True))
    assert b.approve(r.receipt_no, "ana").status == "paid"
    assert [o.kind for o in b.ops(r.receipt_no)] == ["charge"]  # no hold: charged


def test_refund_line_once(store: Store, tmp_path: Path) -> None:
    b = make(store, tmp_path)
    b.open_session(opened())
    r = b.settle(cart([("cola-330", 2), ("coffee-250", 1)]))
    ops = b.refund(r.receipt_no, 2, "damaged")
    assert [(o.kind, o.status, o.amount_minor) for o in ops] == [
        ("refund", "succeeded", r.lines[1].total_minor)
    ]
    assert b.refund(r.receipt_no, 2, "damaged") == ops  # a repeated request changes nothing
    with pytest.raises(BillingError, match=r"lines 1\.\.2"):
        b.refund(r.receipt_no, 3, "x")
    assert b.ledger.balance("refunds") == r.lines[1].total_minor - r.lines[1].tax_minor
    assert b.ledger.check() == []


def test_export_contract_order(store: Store, tmp_path: Path) -> None:
    b = make(store, tmp_path)
    vs = visits(5, list(store.products), seed=3)
    for v in reversed(vs):
        b.open_session(v.opened)
        b.settle(v.closed)
    data = receipts_json(tmp_path / "billing.sqlite")
    by_exit = sorted(vs, key=lambda v: (v.closed.exit_ts_ns, v.closed.checkout_id))
    assert [d["checkout_id"] for d in data] == [v.closed.checkout_id for v in by_exit]
    keys = {
        "receipt_no",
        "checkout_id",
        "session_id",
        "account_id",
        "currency",
        "lines",
        "subtotal_minor",
        "discount_minor",
        "tax_minor",
        "total_minor",
        "review",
        "status",
        "settled_ts_ns",
    }
    assert set(data[0]) == keys
    assert set(data[0]["lines"][0]) == {
        "line_no",
        "sku",
        "name",
        "quantity",
        "unit_price_minor",
        "discount_minor",
        "tax_minor",
        "total_minor",
        "promotion",
        "evidence",
        "review",
    }
    assert all(d["total_minor"] == sum(x["total_minor"] for x in d["lines"]) for d in data)


def test_cli_receipts_review_refund(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    b = make(store, tmp_path)
    b.open_session(opened())
    paid = b.settle(cart([("cola-330", 2)]))
    flagged = b.settle(cart([("gummy-200", 1)], co="co-2", review=True))
    b.provider.close()  # type: ignore[attr-defined]
    b.db.close()

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="area"), "billing", "billing")

    def run(*argv: str) -> tuple[int, str]:
        args = parser.parse_args(["billing", *argv, "--data", str(tmp_path)])
        code = args.handler(args)
        return code, capsys.readouterr().out

    code, out = run("receipts", "list")
    assert code == 0 and paid.receipt_no in out and flagged.receipt_no in out
    code, out = run("receipts", "search", "gummy")
    assert flagged.receipt_no in out and paid.receipt_no not in out
    code, out = run("receipts", "show", paid.receipt_no)
    assert "Fizz Cola 330 ml can" in out and "1.98 EUR" in out
    html = tmp_path / "r.html"
    run("receipts", "show", paid.receipt_no, "--html", str(html))
    assert "<h1>Receipt R-000001</h1>" in html.read_text()
    code, out = run("review", "list", "--config", str(CONFIG))
    assert flagged.receipt_no in out and paid.receipt_no not in out
    code, out = run("review", "approve", flagged.receipt_no, "--config", str(CONFIG))
    assert code == 0 and "paid" in out
    code, out = run(
        "refund", paid.receipt_no, "--line", "1", "--reason", "dented", "--config", str(CONFIG)
    )
    assert code == 0 and "succeeded" in out
    code, _ = run("receipts", "show", "R-999999")
    assert code == 2


def _no_answer(*args: object, **kw: object) -> None:
    raise ProviderTimeout("no answer")


def test_hold_learnt_after_settlement_is_released(store: Store, tmp_path: Path) -> None:
    """The hold was placed but its answer lost, and still unknown when the cart closed."""
    b = make(store, tmp_path, Faults(script={"auth:s-co-1": "timeout_after"}))
    assert b.open_session(opened()).status == "pending"  # type: ignore[union-attr]
    provider = b.provider
    real = provider.authorize
    provider.authorize = _no_answer  # type: ignore[method-assign,assignment]
    r = b.settle(cart([("cola-330", 1)]))
    assert [(o.kind, o.status) for o in b.ops(r.receipt_no)] == [("charge", "succeeded")]
    provider.authorize = real  # type: ignore[method-assign]
    assert b.resume() == 2  # the hold's answer (replayed), then its release
    assert [o.kind for o in b.ops(r.receipt_no)] == ["charge", "release"]
    assert provider.open_authorizations() == []  # type: ignore[attr-defined]
    assert provider.captured_total(r.receipt_no) == r.total_minor  # type: ignore[attr-defined]


def test_flagged_receipt_keeps_a_late_hold_for_approval(store: Store, tmp_path: Path) -> None:
    b = make(store, tmp_path, Faults(script={"auth:s-co-1": "unavailable"}))
    assert b.open_session(opened()).status == "pending"  # type: ignore[union-attr]
    provider = b.provider
    real = provider.authorize
    provider.authorize = _no_answer  # type: ignore[method-assign,assignment]
    r = b.settle(cart([("cola-330", 1)], review=True))
    provider.authorize = real  # type: ignore[method-assign]
    b.resume()
    assert b.ops(r.receipt_no) == []
    approved = b.approve(r.receipt_no, "ana")
    assert approved.status == "paid"
    assert [o.kind for o in b.ops(r.receipt_no)] == ["capture"]


def test_lapsed_hold_falls_back_to_a_charge(store: Store, tmp_path: Path) -> None:
    now = [DAY0_NS]
    provider = SimulatedProvider(tmp_path / "provider.sqlite", clock_ns=lambda: now[0])
    b = Billing.from_store(store, tmp_path / "billing.sqlite", provider, clock_ns=lambda: now[0])
    b.open_session(opened())
    r = b.settle(cart([("cola-330", 1)], review=True))
    now[0] += 8 * 86_400 * 10**9  # the person approves after the hold lapsed
    paid = b.approve(r.receipt_no, "ana")
    assert [(o.kind, o.status) for o in b.ops(r.receipt_no)] == [
        ("capture", "declined"),
        ("charge", "succeeded"),
    ]
    assert paid.status == "paid"
    assert provider.captured_total(r.receipt_no) == r.total_minor
    assert b.ledger.check() == [] and b.ledger.balance("customer_receivables") == 0


def test_cart_of_another_store_is_refused(store: Store, tmp_path: Path) -> None:
    b = make(store, tmp_path)
    other = msgspec.structs.replace(cart([("cola-330", 1)]), store_id="elsewhere")
    with pytest.raises(BillingError, match="store 'elsewhere'"):
        b.settle(other)
    assert b.receipt_by_checkout("co-1") is None


@settings(max_examples=80, deadline=None)
@given(
    picks=st.lists(
        st.tuples(st.sampled_from(SKUS_ALL), st.integers(min_value=1, max_value=9)),
        min_size=0,
        max_size=8,
    ),
    seed=st.randoms(use_true_random=False),
)
def test_pricing_invariants(picks: list[tuple[str, int]], seed: random.Random) -> None:
    """Totals add up, nothing is negative, tax is the per-line formula, order does not matter."""
    catalog = demo_catalog()
    lines = [CartLine(sku=s, quantity=q) for s, q in picks]
    priced = catalog.price(lines)
    shuffled = list(lines)
    seed.shuffle(shuffled)
    again = catalog.price(shuffled)
    assert again.total_minor == priced.total_minor and again.tax_minor == priced.tax_minor
    assert priced.total_minor == priced.subtotal_minor - priced.discount_minor
    for x in priced.lines:
        assert 0 <= x.discount_minor <= x.quantity * x.unit_price_minor
        assert x.total_minor == x.quantity * x.unit_price_minor - x.discount_minor
        assert x.tax_minor == inclusive_tax(x.total_minor, x.tax_rate_bp)
        assert 0 <= x.tax_minor <= x.total_minor
    assert sum(x.quantity for x in priced.lines) == sum(q for _, q in picks)


def test_same_checkout_with_other_lines_keeps_the_first_receipt(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = make(store, tmp_path)
    first = b.settle(cart([("cola-330", 1)]))
    again = b.settle(cart([("cola-330", 5)]))
    assert again == first
    assert "arrived again with other lines" in caplog.text
    assert [o.kind for o in b.ops(first.receipt_no)] == ["charge"]
