"""Event-sourced virtual carts: a cart is the list of changes applied to it, never edited.

A line is the net of one SKU's changes; its confidence is the lowest of the changes that make
it, its evidence every interaction and weight-change id behind them, and it needs review when
any of them did. Lines that net to zero or below are not billed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from walkout.messages import CartLine


@dataclass(frozen=True)
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


@dataclass
class Cart:
    session_id: str
    changes: list[CartChange] = field(default_factory=list)

    def apply(self, change: CartChange) -> None:
        self.changes.append(change)

    def quantity(self, sku: str) -> int:
        return sum(c.delta for c in self.changes if c.sku == sku)

    def holdings(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            out[c.sku] = out.get(c.sku, 0) + c.delta
        return out

    def last_pick_ts_ns(self, sku: str) -> int:
        return max((c.ts_ns for c in self.changes if c.sku == sku and c.delta > 0), default=-1)

    def lines(self) -> tuple[CartLine, ...]:
        out = []
        for sku in sorted({c.sku for c in self.changes}):
            changes = [c for c in self.changes if c.sku == sku]
            qty = sum(c.delta for c in changes)
            if qty <= 0:
                continue
            evidence: list[str] = []
            for c in changes:
                evidence.extend(e for e in c.evidence if e not in evidence)
            out.append(
                CartLine(
                    sku=sku,
                    quantity=qty,
                    confidence=round(min(c.confidence for c in changes), 4),
                    evidence=tuple(evidence),
                    review=any(c.review for c in changes),
                )
            )
        return tuple(out)

    def review_reasons(self) -> tuple[str, ...]:
        reasons: list[str] = []
        for c in self.changes:
            if c.review:
                for r in c.reasons or ("low_confidence",):
                    tag = f"{c.sku}:{r}"
                    if tag not in reasons:
                        reasons.append(tag)
        return tuple(reasons)
