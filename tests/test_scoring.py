"""Scoring against truth: the AutoCheckout receipt metric, exact receipts, events, association."""

from __future__ import annotations

import pytest

from walkout.recording import ExpectedReceipt, ReceiptLine, Truth, TruthInteraction
from walkout.scoring import (
    PredictedEvent,
    PredictedReceipt,
    PredictedStep,
    line_counts,
    match_steps,
    score_run,
)

S = 1_000_000_000


@pytest.mark.parametrize(
    ("pred", "true", "tp_fp_fn"),
    [
        ({"a": 2}, {"a": 2}, (2, 0, 0)),
        ({"a": 3}, {"a": 2}, (2, 1, 0)),
        ({"a": 1}, {"a": 2}, (1, 0, 1)),
        ({"a": 1, "b": 1}, {"a": 1, "c": 2}, (1, 1, 2)),
        ({}, {"a": 1}, (0, 0, 1)),
        ({"a": -1}, {}, (0, 0, 0)),  # a negative line (more put back than taken) is no line
    ],
)
def test_line_counts(pred: dict[str, int], true: dict[str, int], tp_fp_fn: tuple[int, ...]) -> None:
    c = line_counts(pred, true)
    assert (c.tp, c.fp, c.fn) == tp_fp_fn


def _it(
    n: int, account: str, kind: str, lane: str, sku: str, q: int, t_s: float
) -> TruthInteraction:
    return TruthInteraction(
        id=f"t{n}",
        shopper_id=account,
        account_id=account,
        kind=kind,  # type: ignore[arg-type]
        lane_id=lane,
        sku=sku,
        quantity=q,
        start_ts_ns=int(t_s * S),
        end_ts_ns=int((t_s + 1) * S),
        camera_id="cam",
    )


def _truth() -> Truth:
    its = (
        _it(1, "A", "pick", "L1", "cola-330", 2, 10),
        _it(2, "B", "pick", "L2", "chips-150", 1, 12),
        _it(3, "B", "put", "L2", "chips-150", 1, 20),
        _it(4, "A", "touch", "L3", "water-500", 0, 25),
        _it(5, "B", "pick", "L4", "ojuice-500", 1, 30),
    )
    receipts = (
        ExpectedReceipt(
            account_id="A",
            group_id="vA",
            entry_ts_ns=1 * S,
            exit_ts_ns=50 * S,
            lines=(ReceiptLine(sku="cola-330", quantity=2),),
        ),
        ExpectedReceipt(
            account_id="B",
            group_id="vB",
            entry_ts_ns=2 * S,
            exit_ts_ns=60 * S,
            lines=(ReceiptLine(sku="ojuice-500", quantity=1),),
        ),
    )
    return Truth(
        scenario="x",
        family="handoff",
        seed=1,
        store_id="s",
        start_ts_ns=0,
        end_ts_ns=70 * S,
        interactions=its,
        receipts=receipts,
    )


def _ev(eid: str, lane: str, sku: str, delta: int, t_s: float) -> PredictedEvent:
    return PredictedEvent(
        evidence_id=eid,
        lane_id=lane,
        sku=sku,
        delta=delta,
        start_ts_ns=int(t_s * S),
        end_ts_ns=int((t_s + 1.2) * S),
    )


def test_perfect_run() -> None:
    events = [
        _ev("e1", "L1", "cola-330", -2, 10.1),
        _ev("e2", "L2", "chips-150", -1, 12),
        _ev("e3", "L2", "chips-150", 1, 20.2),
        _ev("e5", "L4", "ojuice-500", -1, 30),
    ]
    receipts = [
        PredictedReceipt("A", "co-a", 1 * S, 50 * S, {"cola-330": 2}, evidence={"e1": "cola-330"}),
        PredictedReceipt(
            "B", "co-b", 2 * S, 60 * S, {"ojuice-500": 1}, evidence={"e5": "ojuice-500"}
        ),
    ]
    s = score_run(_truth(), receipts, events, assigned={"e2": "B", "e3": "B"})
    assert s.lines.f1 == 1.0 and s.exact_rate == 1.0
    assert (s.events.tp, s.events.fp, s.events.fn) == (4, 0, 0)
    assert s.association_accuracy == 1.0 and s.review_rate == 0.0


def test_lookalike_swap_wrong_shopper_and_phantom_event() -> None:
    events = [
        _ev("e1", "L1", "cola-440", -2, 10),  # look-alike confusion
        _ev("e2", "L2", "chips-150", -1, 12),
        _ev("e3", "L2", "chips-150", 1, 20),
        _ev("e5", "L4", "ojuice-500", -1, 30),
        _ev("e9", "L3", "water-500", -1, 25),  # the touch was taken for a pick
        _ev("e8", "L4", "ojuice-500", -1, 45),  # far outside any true window
    ]
    receipts = [
        PredictedReceipt(
            "A",
            "co-a",
            1 * S,
            50 * S,
            {"cola-440": 2, "water-500": 1},
            review=True,
            evidence={"e1": "cola-440", "e9": "water-500", "e5": "x"},
        ),
        PredictedReceipt("B", "co-b", 2 * S, 60 * S, {"ojuice-500": 1}),
    ]
    s = score_run(_truth(), receipts, events)
    # lines: A has 0 tp, 3 fp, 2 fn; B is right.
    assert (s.lines.tp, s.lines.fp, s.lines.fn) == (1, 3, 2)
    assert s.exact == 1 and s.visits == 2
    assert s.confusions[("cola-330", "cola-440")] == 2
    # events: t1 unmatched (wrong sku), t2/t3/t5 matched; e1, e9, e8 are false positives
    assert (s.events.tp, s.events.fp, s.events.fn) == (3, 3, 1)
    # e5 went to A's cart, e2/e3 have no known account
    assert s.association_total == 3 and s.associated == 0
    assert s.review_rate == 0.5


def test_missing_receipt_and_unexpected_receipt() -> None:
    receipts = [PredictedReceipt("Z", "co-z", 0, 1, {"cola-330": 1})]
    s = score_run(_truth(), receipts, [])
    assert (s.lines.tp, s.lines.fp, s.lines.fn) == (0, 1, 3)
    assert s.exact == 0 and s.events.recall == 0.0


def test_plate_steps_count_the_units_they_weigh() -> None:
    # Two shoppers take a unit each from one plate at the same moment: the plate reads one
    # step of two units, which finds both picks; a one-unit step finds only one, and a step
    # in the other direction or another lane finds none (and is false).
    picks = [_it(1, "A", "pick", "L1", "a", 1, 10), _it(2, "B", "pick", "L1", "a", 1, 10.2)]
    double = PredictedStep("L1", -500.0, 10 * S, 11 * S, units=2)
    assert _steps(picks, [double]) == (2, 0, 0)
    single = PredictedStep("L1", -250.0, 10 * S, 11 * S)
    assert _steps(picks, [single]) == (1, 0, 1)
    wrong = [
        PredictedStep("L1", 250.0, 10 * S, 11 * S),
        PredictedStep("L2", -250.0, 10 * S, 11 * S),
    ]
    assert _steps(picks, wrong) == (0, 2, 2)
    # a two-unit step that meets one pick still found it: not a false step
    assert _steps(picks[:1], [double]) == (1, 0, 0)


def _steps(truth: list[TruthInteraction], steps: list[PredictedStep]) -> tuple[int, int, int]:
    c = match_steps(truth, steps)
    return c.tp, c.fp, c.fn
