"""Scores of a run against a recording's truth (DESIGN.md section 6), as pure functions.

- Receipt line F1 (the AutoCheckout metric): per visit, lines are (sku, quantity); true
  positives per sku are min(predicted, true); precision, recall and F1 are micro-averaged.
- Exact receipts: share of true visits whose whole receipt is right (an empty visit with no
  receipt, or an empty receipt, counts as right).
- Event precision/recall: predicted picks and puts (one per sku and direction of a shelf
  interaction) matched one-to-one to true ones by lane, sku, direction and time window.
- Association accuracy: share of matched true events whose evidence ended up on the cart of the
  right account.
- Review rate: share of receipts flagged for a person.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from walkout.recording import ExpectedReceipt, Truth, TruthInteraction

# A predicted event may start or end this much outside the true interaction and still match.
EVENT_SLACK_NS = 1_500_000_000


@dataclass(frozen=True)
class PredictedReceipt:
    account_id: str
    checkout_id: str
    entry_ts_ns: int
    exit_ts_ns: int
    lines: Mapping[str, int]  # sku -> quantity
    review: bool = False
    evidence: Mapping[str, str] = field(default_factory=dict)  # evidence id -> sku


@dataclass(frozen=True)
class PredictedEvent:
    evidence_id: str
    lane_id: str
    sku: str
    delta: int  # -n: n units left the shelf (pick), +n put back
    start_ts_ns: int
    end_ts_ns: int


@dataclass(frozen=True)
class PredictedStep:
    """A weight-plate step: negative delta_g when something left the shelf."""

    lane_id: str
    delta_g: float
    start_ts_ns: int
    end_ts_ns: int
    # Units of the lane's SKU the step amounts to: two shoppers taking from one plate at the
    # same moment make one step of two units, and it accounts for both picks.
    units: int = 1


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def line_counts(predicted: Mapping[str, int], true: Mapping[str, int]) -> Counts:
    c = Counts()
    for sku in set(predicted) | set(true):
        p, t = max(predicted.get(sku, 0), 0), max(true.get(sku, 0), 0)
        tp = min(p, t)
        c.tp += tp
        c.fp += p - tp
        c.fn += t - tp
    return c


def match_receipts(
    expected: Sequence[ExpectedReceipt], predicted: Sequence[PredictedReceipt]
) -> tuple[list[tuple[ExpectedReceipt, PredictedReceipt | None]], list[PredictedReceipt]]:
    """Pair each true visit with the receipt of the same account nearest in entry time."""
    free = list(predicted)
    pairs: list[tuple[ExpectedReceipt, PredictedReceipt | None]] = []
    for exp in sorted(expected, key=lambda e: e.entry_ts_ns):
        same = [p for p in free if p.account_id == exp.account_id]
        if not same:
            pairs.append((exp, None))
            continue
        best = min(same, key=lambda p: abs(p.entry_ts_ns - exp.entry_ts_ns))
        free.remove(best)
        pairs.append((exp, best))
    return pairs, free


def _pred_events(events: Iterable[PredictedEvent]) -> list[tuple[str, str, int, PredictedEvent]]:
    return [(e.lane_id, e.sku, 1 if e.delta < 0 else -1, e) for e in events if e.delta != 0]


def match_events(
    truth: Sequence[TruthInteraction], events: Sequence[PredictedEvent]
) -> tuple[list[tuple[TruthInteraction, PredictedEvent | None]], list[PredictedEvent]]:
    """One-to-one: each true pick/put takes the unused predicted event of the same lane, sku
    and direction that overlaps it in time (with slack), nearest in start time."""
    pool = _pred_events(events)
    used: set[int] = set()
    pairs: list[tuple[TruthInteraction, PredictedEvent | None]] = []
    for t in sorted(truth, key=lambda x: x.start_ts_ns):
        if t.kind == "touch" or t.quantity <= 0:
            continue
        sign = 1 if t.kind == "pick" else -1
        best: int | None = None
        for i, (lane, sku, s, e) in enumerate(pool):
            if i in used or lane != t.lane_id or sku != t.sku or s != sign:
                continue
            if e.end_ts_ns < t.start_ts_ns - EVENT_SLACK_NS:
                continue
            if e.start_ts_ns > t.end_ts_ns + EVENT_SLACK_NS:
                continue
            if best is None or abs(e.start_ts_ns - t.start_ts_ns) < abs(
                pool[best][3].start_ts_ns - t.start_ts_ns
            ):
                best = i
        if best is not None:
            used.add(best)
        pairs.append((t, pool[best][3] if best is not None else None))
    unmatched = [e for i, (_, _, _, e) in enumerate(pool) if i not in used]
    return pairs, unmatched


@dataclass
class Score:
    family: str
    visits: int = 0
    receipts: int = 0
    lines: Counts = field(default_factory=Counts)
    exact: int = 0
    events: Counts = field(default_factory=Counts)
    plate_steps: Counts = field(default_factory=Counts)
    associated: int = 0  # matched true events whose evidence reached the right account
    association_total: int = 0
    reviewed: int = 0
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (true, predicted)

    def add(self, other: Score) -> None:
        self.visits += other.visits
        self.receipts += other.receipts
        self.lines.add(other.lines)
        self.exact += other.exact
        self.events.add(other.events)
        self.plate_steps.add(other.plate_steps)
        self.associated += other.associated
        self.association_total += other.association_total
        self.reviewed += other.reviewed
        self.confusions.update(other.confusions)

    @property
    def exact_rate(self) -> float:
        return self.exact / self.visits if self.visits else 1.0

    @property
    def association_accuracy(self) -> float:
        return self.associated / self.association_total if self.association_total else 1.0

    @property
    def review_rate(self) -> float:
        return self.reviewed / self.receipts if self.receipts else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "family": self.family,
            "visits": self.visits,
            "receipts": self.receipts,
            "line_precision": round(self.lines.precision, 4),
            "line_recall": round(self.lines.recall, 4),
            "line_f1": round(self.lines.f1, 4),
            "exact_receipts": round(self.exact_rate, 4),
            "event_precision": round(self.events.precision, 4),
            "event_recall": round(self.events.recall, 4),
            "plate_step_precision": round(self.plate_steps.precision, 4),
            "plate_step_recall": round(self.plate_steps.recall, 4),
            "association_accuracy": round(self.association_accuracy, 4),
            "review_rate": round(self.review_rate, 4),
            "line_counts": asdict(self.lines),
            "event_counts": asdict(self.events),
            "plate_step_counts": asdict(self.plate_steps),
            "confusions": [
                {"true": t, "predicted": p, "count": n}
                for (t, p), n in sorted(self.confusions.items())
            ],
        }


def _confusions(true: Mapping[str, int], pred: Mapping[str, int]) -> Counter[tuple[str, str]]:
    """Missing units of one sku paired with surplus units of another in the same receipt."""
    missing = Counter({s: q - pred.get(s, 0) for s, q in true.items() if q > pred.get(s, 0)})
    surplus = Counter({s: q - true.get(s, 0) for s, q in pred.items() if q > true.get(s, 0)})
    out: Counter[tuple[str, str]] = Counter()
    for ts in sorted(missing):
        for ps in sorted(surplus):
            n = min(missing[ts], surplus[ps])
            if n:
                out[(ts, ps)] += n
                missing[ts] -= n
                surplus[ps] -= n
    return out


def step_units(delta_g: float, unit_g: float | None) -> int:
    """Units of a lane's SKU a plate step amounts to (1 when the unit weight is unknown)."""
    return max(1, round(abs(delta_g) / unit_g)) if unit_g else 1


def match_steps(truth: Sequence[TruthInteraction], steps: Sequence[PredictedStep]) -> Counts:
    """True picks and puts against plate steps of the same lane and direction that overlap them
    in time; a step of n units matches up to n of them. Steps matching none are false."""
    c = Counts()
    units = [max(1, s.units) for s in steps]
    left = list(units)
    for t in sorted(truth, key=lambda x: x.start_ts_ns):
        if t.kind == "touch" or t.quantity <= 0:
            continue
        want_neg = t.kind == "pick"
        hit = next(
            (
                i
                for i, s in enumerate(steps)
                if left[i]
                and s.lane_id == t.lane_id
                and (s.delta_g < 0) == want_neg
                and s.end_ts_ns >= t.start_ts_ns - EVENT_SLACK_NS
                and s.start_ts_ns <= t.end_ts_ns + EVENT_SLACK_NS
            ),
            None,
        )
        if hit is None:
            c.fn += 1
        else:
            left[hit] -= 1
            c.tp += 1
    c.fp = sum(a == b for a, b in zip(left, units, strict=True))
    return c


def score_run(
    truth: Truth,
    receipts: Sequence[PredictedReceipt],
    events: Sequence[PredictedEvent],
    assigned: Mapping[str, str] | None = None,
    steps: Sequence[PredictedStep] = (),
) -> Score:
    """``assigned`` maps evidence ids to the account fusion gave them to (puts included); by
    default it is read from the receipts' line evidence, which only shows what stayed in a cart."""
    s = Score(family=truth.family)
    pairs, extra = match_receipts(truth.receipts, receipts)
    s.visits = len(pairs)
    s.receipts = len(receipts)
    s.reviewed = sum(r.review for r in receipts)
    for exp, pred in pairs:
        true_lines = {x.sku: x.quantity for x in exp.lines}
        pred_lines = dict(pred.lines) if pred else {}
        s.lines.add(line_counts(pred_lines, true_lines))
        pos_pred = {k: v for k, v in pred_lines.items() if v > 0}
        s.exact += pos_pred == true_lines
        s.confusions.update(_confusions(true_lines, pos_pred))
    for pred in extra:
        s.lines.add(line_counts(dict(pred.lines), {}))
    account_of_evidence = {ev: r.account_id for r in receipts for ev in r.evidence}
    account_of_evidence.update(assigned or {})
    ev_pairs, unmatched = match_events(truth.interactions, events)
    for t, e in ev_pairs:
        if e is None:
            s.events.fn += 1
            continue
        s.events.tp += 1
        s.association_total += 1
        s.associated += account_of_evidence.get(e.evidence_id) == t.account_id
    s.events.fp += len(unmatched)
    s.plate_steps = match_steps(truth.interactions, steps)
    return s
