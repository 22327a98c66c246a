"""Evidence fusion: which SKU and how many units a shelf event moved, and how sure we are.

Inputs are what vision saw (SKU and count per :class:`~walkout.messages.SkuDelta`), what the
lane's weight plate measured (grams, with its noise), and priors: what the lane holds now
(the live planogram, including misplaced units) for a pick, and what the shopper carries for a
put-back. Every candidate (sku, count) is scored:

* weight: Gaussian log-likelihood of the measured change given ``count`` units, with spread
  ``sqrt(count) * weight_sd_g + sigma_g`` (the catalog's unit spread plus the plate's noise);
* vision: log of the detector's confidence for its SKU (the rest shared by the others), and
  its count taken as given when there is no weight to dispute it;
* prior: tempered log share of the SKU in the lane (pick) or in the cart (put).

The decision is the best candidate; its confidence is its posterior share, capped when only
one modality spoke, and lowered when vision and weight disagree. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from walkout.messages import SkuDelta

Modality = Literal["fused", "vision", "weight"]

PRIOR_ALPHA = 0.2  # pseudo-count: a SKU the lane is not known to hold is unlikely, not impossible
PRIOR_TEMPER = 0.5  # priors count half as much as direct evidence
MAX_UNITS = 8
UNEXPLAINED_Z = 4.0
LOG_TENTH = math.log(0.1)  # each unit vision's count is off by costs a factor of ten


@dataclass(frozen=True, slots=True)
class Unit:
    """The catalog facts evidence fusion needs about one SKU."""

    weight_g: float
    sd_g: float


@dataclass(frozen=True, slots=True)
class WeightEvidence:
    delta_g: float
    sigma_g: float


@dataclass(frozen=True, slots=True)
class Decision:
    sku: str
    units: int  # > 0
    kind: Literal["pick", "put"]
    confidence: float
    modality: Modality
    reasons: tuple[str, ...] = ()


def weight_z(delta_g: float, sigma_g: float, unit: Unit, units: int) -> float:
    spread = math.sqrt(units) * unit.sd_g + max(sigma_g, 0.1)
    return (abs(delta_g) - units * unit.weight_g) / spread


def best_count(delta_g: float, sigma_g: float, unit: Unit) -> tuple[int, float]:
    """The unit count that best explains a weight change, and its z-score."""
    n = max(1, round(abs(delta_g) / unit.weight_g))
    return n, weight_z(delta_g, sigma_g, unit, n)


def _score_and_sku(t: tuple[float, str, int, float]) -> tuple[float, str]:
    return (t[0], t[1])


def _vision_main(vision: Sequence[SkuDelta]) -> SkuDelta:
    return max(vision, key=lambda d: (abs(d.delta), d.confidence, d.sku))


def decide(
    catalog: Mapping[str, Unit],
    *,
    vision: Sequence[SkuDelta] = (),
    weight: WeightEvidence | None = None,
    prior_counts: Mapping[str, int] | None = None,
    vision_only_cap: float = 0.9,
    weight_only_cap: float = 0.9,
    disagreement_factor: float = 0.8,
) -> Decision | None:
    """Fuse one shelf event on one lane into a cart change; None when nothing moved."""
    if vision:
        vision = [d for d in vision if d.delta != 0 and d.sku in catalog]
    prior_counts = prior_counts or {}
    if not vision and weight is None:
        return None
    # Direction: vision says it when it saw something; else the sign of the weight change.
    main = _vision_main(vision) if vision else None
    if main is not None:
        kind: Literal["pick", "put"] = "pick" if main.delta < 0 else "put"
    else:
        assert weight is not None
        kind = "pick" if weight.delta_g < 0 else "put"
    reasons: list[str] = []
    if main is not None and weight is not None and (weight.delta_g < 0) != (kind == "pick"):
        reasons.append("weight_direction_disagrees")
        weight = None  # a plate that moved the other way says nothing about this event
    held = {s for s, c in prior_counts.items() if c > 0 and s in catalog}
    if main is not None:
        held.update(d.sku for d in vision)
        held.add(main.sku)
    candidates = sorted(held)
    if not candidates:
        return None
    k = len(candidates)
    v_sku = main.sku if main is not None else None
    v_units = abs(main.delta) if main is not None else 0
    v_conf = min(0.98, max(0.05, main.confidence)) if main is not None else 0.0
    # Prior: tempered log share of the SKU among what the lane (or cart) holds, with a
    # pseudo-count so that a SKU it is not known to hold stays possible.
    prior_total = 0
    for c in prior_counts.values():
        prior_total += max(0, c)
    prior_norm = prior_total + PRIOR_ALPHA * max(k, 1)
    if weight is not None:
        # weight_z() below, inlined: the same arithmetic in the same order.
        grams, sigma = abs(weight.delta_g), max(weight.sigma_g, 0.1)
    scored: list[tuple[float, str, int, float]] = []  # (log score, sku, units, z)
    for sku in candidates:
        unit = catalog[sku]
        prior = PRIOR_TEMPER * math.log(
            (max(0, prior_counts.get(sku, 0)) + PRIOR_ALPHA) / prior_norm
        )
        if main is not None:
            vis = math.log(v_conf) if sku == v_sku else math.log((1 - v_conf) / max(1, k - 1))
        else:
            vis = 0.0
        base = vis + prior
        if weight is None:
            scored.append((base, sku, v_units, 0.0))
            continue
        # Counts far from what the weight says score nothing: try the neighbours only.
        unit_g, sd_g = unit.weight_g, unit.sd_g
        near = round(grams / unit_g)
        # The distinct counts among near - 1, near, near + 1 and vision's, within 1..MAX_UNITS,
        # in increasing order.
        counts = [n for n in (near - 1, near, near + 1) if 1 <= n <= MAX_UNITS]
        if 1 <= v_units <= MAX_UNITS and v_units not in counts:
            counts.append(v_units)
            counts.sort()
        for n in counts:
            z = (grams - n * unit_g) / (math.sqrt(n) * sd_g + sigma)
            if main is not None:
                count_term = 0.0 if n == v_units else LOG_TENTH * abs(n - v_units)
            else:
                count_term = -0.05 * n  # fewer units when the weight cannot tell
            scored.append((base + count_term - 0.5 * z * z, sku, n, z))
    if not scored:
        return None  # more units than a lane holds of anything: no decision (counted upstream)
    top = max(scored)
    total = sum([math.exp(t[0] - top[0]) for t in scored])
    _, sku, units, z = max(scored, key=_score_and_sku)
    confidence = 1.0 / total
    if main is not None and weight is not None:
        modality: Modality = "fused"
        if sku != v_sku:
            reasons.append("vision_sku_overruled_by_weight")
        if units != v_units:
            reasons.append("vision_count_overruled_by_weight")
        if sku != v_sku or units != v_units:
            confidence *= disagreement_factor
    elif main is not None:
        modality = "vision"
        # One candidate: the posterior is trivially 1; the detector's own score is the doubt.
        confidence = min(vision_only_cap, confidence if k > 1 else v_conf)
    else:
        modality = "weight"
        confidence = min(confidence, weight_only_cap)
    if weight is not None and abs(z) > UNEXPLAINED_Z:
        reasons.append("weight_unexplained")
        confidence *= 0.5
    return Decision(sku, units, kind, round(confidence, 4), modality, tuple(reasons))


def decide_many(
    catalog: Mapping[str, Unit],
    visions: Sequence[Sequence[SkuDelta]],
    weight: WeightEvidence | None,
    *,
    disagreement_factor: float = 0.8,
) -> list[list[Decision]]:
    """Several vision interactions sharing one weight change (two hands in one lane at once).

    Each interaction keeps what vision saw; the summed weight checks the total. A total that
    does not fit lowers every share's confidence and says so.
    """
    out: list[list[Decision]] = []
    expected_g = 0.0
    var_g = (weight.sigma_g if weight else 0.0) ** 2
    for vision in visions:
        decisions = []
        for d in vision:
            if d.delta == 0 or d.sku not in catalog:
                continue
            unit = catalog[d.sku]
            n = abs(d.delta)
            expected_g += math.copysign(n * unit.weight_g, d.delta)
            var_g += n * unit.sd_g**2
            kind: Literal["pick", "put"] = "pick" if d.delta < 0 else "put"
            decisions.append(Decision(d.sku, n, kind, min(0.98, d.confidence), "fused"))
        out.append(decisions)
    if weight is None:
        return [
            [Decision(d.sku, d.units, d.kind, d.confidence, "vision") for d in ds] for ds in out
        ]
    z = (weight.delta_g - expected_g) / math.sqrt(max(var_g, 0.01))
    if abs(z) <= 3.0:
        return out
    return [
        [
            Decision(
                d.sku,
                d.units,
                d.kind,
                round(d.confidence * disagreement_factor * 0.7, 4),
                "fused",
                ("weight_total_mismatch",),
            )
            for d in ds
        ]
        for ds in out
    ]
