"""Prices, promotions and tax from the store config, in integer minor units.

Rules (the same for every receipt, so a receipt can be recomputed from its lines):

* Shelf prices are **tax-inclusive** (European practice): what the shopper pays for a line is
  ``quantity * unit_price - discount``, and the tax contained in it is computed **per line**:
  ``tax = round_half_up(line_total * rate_bp / (10_000 + rate_bp))``. The receipt's tax is the
  sum of its lines' taxes; its net revenue is total minus tax.
* Lines of the same SKU in a cart are merged into one receipt line (quantities summed, evidence
  ids concatenated in order, review flagged if any part was); receipt lines keep the order in
  which each SKU first appears.
* Promotions apply in config order; each unit counts toward at most one promotion (a unit in a
  meal deal is not also in a 3 for 2). ``multibuy``: per SKU of ``skus``, every complete group of
  ``buy`` units costs ``pay`` units. ``bundle``: one unit of each SKU of ``skus`` together costs
  ``price_minor``; the saving is split over the bundle's lines in proportion to their unit
  prices (largest remainder, ties to the earlier SKU). ``percent_off``: ``percent_bp`` off every
  remaining unit of ``category``, rounded half up per line.
* A SKU the catalog does not know is priced at 0 and flags the receipt for review (a person
  decides), rather than refusing the whole cart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from walkout.messages import CartLine
from walkout.schema import Product, Promotion, StoreConfig


def round_half_up_div(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero, exactly, for integers."""
    if denominator <= 0:
        raise ValueError(f"denominator must be positive, got {denominator}")
    sign = -1 if numerator < 0 else 1
    return sign * ((2 * abs(numerator) + denominator) // (2 * denominator))


def inclusive_tax(total_minor: int, rate_bp: int) -> int:
    """The tax contained in a tax-inclusive amount."""
    return round_half_up_div(total_minor * rate_bp, 10_000 + rate_bp)


@dataclass(frozen=True)
class PricedLine:
    line_no: int
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    discount_minor: int
    tax_rate_bp: int
    tax_minor: int
    total_minor: int
    promotion: str | None
    evidence: tuple[str, ...]
    review: bool
    confidence: float

    def as_dict(self) -> dict[str, object]:
        return {
            "line_no": self.line_no,
            "sku": self.sku,
            "name": self.name,
            "quantity": self.quantity,
            "unit_price_minor": self.unit_price_minor,
            "discount_minor": self.discount_minor,
            "tax_rate_bp": self.tax_rate_bp,
            "tax_minor": self.tax_minor,
            "total_minor": self.total_minor,
            "promotion": self.promotion,
            "evidence": list(self.evidence),
            "review": self.review,
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> PricedLine:
        promo = d.get("promotion")
        return cls(
            line_no=int(str(d["line_no"])),
            sku=str(d["sku"]),
            name=str(d["name"]),
            quantity=int(str(d["quantity"])),
            unit_price_minor=int(str(d["unit_price_minor"])),
            discount_minor=int(str(d["discount_minor"])),
            tax_rate_bp=int(str(d["tax_rate_bp"])),
            tax_minor=int(str(d["tax_minor"])),
            total_minor=int(str(d["total_minor"])),
            promotion=None if promo is None else str(promo),
            evidence=tuple(str(x) for x in d.get("evidence", []) or []),  # type: ignore[attr-defined]
            review=bool(d.get("review", False)),
            confidence=float(str(d.get("confidence", 1.0))),
        )


@dataclass(frozen=True)
class PricedCart:
    currency: str
    lines: tuple[PricedLine, ...]
    review_reasons: tuple[str, ...] = ()

    @property
    def subtotal_minor(self) -> int:
        return sum(x.quantity * x.unit_price_minor for x in self.lines)

    @property
    def discount_minor(self) -> int:
        return sum(x.discount_minor for x in self.lines)

    @property
    def tax_minor(self) -> int:
        return sum(x.tax_minor for x in self.lines)

    @property
    def total_minor(self) -> int:
        return sum(x.total_minor for x in self.lines)


@dataclass
class _Work:
    sku: str
    quantity: int
    unit_price_minor: int
    evidence: list[str]
    review: bool
    confidence: float
    free: int = 0
    discount_minor: int = 0
    promotions: list[str] = field(default_factory=list)


class Catalog:
    """Products, tax rates and promotions of one store."""

    def __init__(self, cfg: StoreConfig):
        self.currency = cfg.store.currency
        self.products: dict[str, Product] = {p.sku: p for p in cfg.products}
        self.tax_rate_bp: dict[str, int] = {t.id: t.rate_bp for t in cfg.tax_classes}
        self.promotions: tuple[Promotion, ...] = tuple(cfg.promotions)

    def price(self, lines: Sequence[CartLine]) -> PricedCart:
        work: dict[str, _Work] = {}
        reasons: list[str] = []
        for line in lines:
            w = work.get(line.sku)
            if w is None:
                product = self.products.get(line.sku)
                if product is None:
                    reasons.append(f"unknown sku {line.sku!r}: priced at 0, needs a person")
                price = product.price_minor if product is not None else 0
                w = work[line.sku] = _Work(line.sku, 0, price, [], product is None, 1.0)
            w.quantity += line.quantity
            w.evidence.extend(line.evidence)
            w.review = w.review or line.review
            w.confidence = min(w.confidence, line.confidence)
        for w in work.values():
            w.free = w.quantity
        for promo in self.promotions:
            self._apply(promo, work)
        out: list[PricedLine] = []
        for i, w in enumerate(work.values(), start=1):
            product = self.products.get(w.sku)
            rate = self.tax_rate_bp.get(product.tax_class, 0) if product else 0
            total = w.quantity * w.unit_price_minor - w.discount_minor
            out.append(
                PricedLine(
                    line_no=i,
                    sku=w.sku,
                    name=product.name if product else f"unknown item {w.sku}",
                    quantity=w.quantity,
                    unit_price_minor=w.unit_price_minor,
                    discount_minor=w.discount_minor,
                    tax_rate_bp=rate,
                    tax_minor=inclusive_tax(total, rate),
                    total_minor=total,
                    promotion="; ".join(w.promotions) or None,
                    evidence=tuple(w.evidence),
                    review=w.review,
                    confidence=w.confidence,
                )
            )
        return PricedCart(self.currency, tuple(out), tuple(reasons))

    def _apply(self, promo: Promotion, work: dict[str, _Work]) -> None:
        if promo.kind == "multibuy" and promo.buy and promo.pay is not None:
            for sku in promo.skus:
                w = work.get(sku)
                if w is None or promo.pay >= promo.buy:
                    continue
                groups = w.free // promo.buy
                if groups:
                    w.free -= groups * promo.buy
                    w.discount_minor += groups * (promo.buy - promo.pay) * w.unit_price_minor
                    w.promotions.append(promo.name)
        elif promo.kind == "bundle" and promo.price_minor is not None and promo.skus:
            members = [work.get(s) for s in dict.fromkeys(promo.skus)]
            if any(m is None for m in members):
                return
            parts = [m for m in members if m is not None]
            n = min(m.free for m in parts)
            full = sum(m.unit_price_minor for m in parts)
            if n == 0 or full <= promo.price_minor:
                return
            saving = full - promo.price_minor
            shares = [saving * m.unit_price_minor // full for m in parts]
            rest = saving - sum(shares)
            order = sorted(
                range(len(parts)),
                key=lambda i: (-(saving * parts[i].unit_price_minor % full), i),
            )
            for i in order[:rest]:
                shares[i] += 1
            for m, share in zip(parts, shares):
                m.free -= n
                m.discount_minor += n * share
                m.promotions.append(promo.name)
        elif promo.kind == "percent_off" and promo.percent_bp and promo.category:
            for w in work.values():
                product = self.products.get(w.sku)
                if product is None or product.category != promo.category or w.free == 0:
                    continue
                off = round_half_up_div(w.free * w.unit_price_minor * promo.percent_bp, 10_000)
                w.free = 0
                if off:
                    w.discount_minor += off
                    w.promotions.append(promo.name)
