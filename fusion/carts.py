"""Event-sourced virtual carts: a cart is the list of changes applied to it, never edited.

A line is the net of one SKU's changes; its confidence is the lowest of the changes that make
it, its evidence every interaction and weight-change id behind them, and it needs review when
any of them did. Lines that net to zero or below are not billed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from walkout.messages import CartLine


@dataclass(frozen=True, slots=True)
class CartChange:
    sku: str
    delta: int  # +n: n units into the cart (pick); -n: out of it (put-back, hand-off)
    confidence: float
    evidence: tuple[str, ...]
    ts_ns: int
    review: bool = False
    reasons: tuple[str, ...] = ()
    # "pick", "put", or "handoff" (a unit this cart picked was put back by another shopper)
    why: str = "pick"


@dataclass(slots=True)
class Cart:
    session_id: str
    changes: list[CartChange] = field(default_factory=list)
    # Derived from ``changes`` as they are applied (kept so a long visit stays cheap).
    _qty: dict[str, int] = field(default_factory=dict)
    _last_pick_ns: dict[str, int] = field(default_factory=dict)
    _lines: dict[str, CartLine | None] = field(default_factory=dict)
    # Per SKU, over its changes so far: every evidence id (first-seen order), the lowest
    # confidence, and whether any needs review. A line is built from these without going
    # through the changes again (a snapshot is published after every change).
    _evidence: dict[str, dict[str, None]] = field(default_factory=dict)
    _min_confidence: dict[str, float] = field(default_factory=dict)
    _review: dict[str, bool] = field(default_factory=dict)

    def apply(self, change: CartChange) -> None:
        self.changes.append(change)
        sku = change.sku
        self._qty[sku] = self._qty.get(sku, 0) + change.delta
        evidence = self._evidence.get(sku)
        if evidence is None:
            self._evidence[sku] = dict.fromkeys(change.evidence)
            self._min_confidence[sku] = change.confidence
            self._review[sku] = bool(change.review)
        else:
            for e in change.evidence:  # a new id goes last; one seen before keeps its place
                evidence[e] = None
            if change.confidence < self._min_confidence[sku]:
                self._min_confidence[sku] = change.confidence
            if change.review:
                self._review[sku] = True
        self._lines.pop(sku, None)
        if change.delta > 0:
            self._last_pick_ns[sku] = max(self._last_pick_ns.get(sku, -1), change.ts_ns)

    def quantity(self, sku: str) -> int:
        return self._qty.get(sku, 0)

    def holdings(self) -> dict[str, int]:
        return dict(self._qty)

    def last_pick_ts_ns(self, sku: str) -> int:
        return self._last_pick_ns.get(sku, -1)

    def _line(self, sku: str) -> CartLine | None:
        if sku in self._lines:
            return self._lines[sku]
        qty = self._qty.get(sku, 0)
        line: CartLine | None = None
        if qty > 0:
            line = CartLine(
                sku=sku,
                quantity=qty,
                confidence=round(self._min_confidence[sku], 4),
                evidence=tuple(self._evidence[sku]),
                review=self._review[sku],
            )
        self._lines[sku] = line
        return line

    def lines(self) -> tuple[CartLine, ...]:
        return tuple(x for sku in sorted(self._qty) if (x := self._line(sku)) is not None)

    def review_reasons(self) -> tuple[str, ...]:
        """Why billed lines need review (a doubtful change that netted to nothing does not)."""
        reasons: list[str] = []
        for c in self.changes:
            if c.review and self._qty.get(c.sku, 0) > 0:
                for r in c.reasons or ("low_confidence",):
                    tag = f"{c.sku}:{r}"
                    if tag not in reasons:
                        reasons.append(tag)
        return tuple(reasons)
