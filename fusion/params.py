"""Tuning of the fusion core: the store config's ``fusion`` section plus fusion's own constants."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

S_TO_NS = 1_000_000_000


@dataclass(frozen=True)
class FusionParams:
    allowed_lateness_ns: int = 3 * S_TO_NS
    reach_radius_m: float = 1.1
    ambiguity_margin_m: float = 0.25
    review_below_confidence: float = 0.6
    # How long after an interaction ends its partner (weight or vision) may still end.
    pair_window_ns: int = 1 * S_TO_NS
    # Slack around interaction intervals when deciding that vision and weight overlap.
    pair_slack_ns: int = 500_000_000
    # Softmax temperature of the association: p ~ exp(-distance / temperature).
    association_temperature_m: float = 0.15
    # Entry binding: tracks within this distance of the gate, seen this recently.
    gate_radius_m: float = 2.0
    gate_window_ns: int = 1 * S_TO_NS
    # A track that appears this soon after an entry scan, near the gate, joins that session.
    late_bind_window_ns: int = 3 * S_TO_NS
    # Lost-track re-link: a new track this close to a session's last position, this soon.
    relink_radius_m: float = 1.5
    relink_window_ns: int = 5 * S_TO_NS
    # A bound track not seen for this long counts as lost (a new track may take its place):
    # missing from the last frame of an overhead camera the edge infers at 7.5 Hz. Longer, and
    # an id switch of the tracker (old id gone, new id beside it a frame later) is missed.
    lost_after_ns: int = 200_000_000
    # A track lost before a shelf event and not seen since counts as standing where it was
    # last seen for this long (a shopper still at the shelf scores low for the detector).
    lost_hold_ns: int = 5 * S_TO_NS
    # Track samples kept per track (event time).
    track_history_ns: int = 120 * S_TO_NS
    # A group session whose members did not all pass the exit closes this long after the first.
    group_exit_grace_ns: int = 30 * S_TO_NS
    # Appearance (TrackUpdate looks, Hellinger distance 0..1): a shopper's look on a camera is
    # learned from the first ``look_model_looks`` looks of their bound tracks there. A bound
    # track whose looks, ``look_votes`` in a row, lie ``look_margin`` nearer another shopper's
    # look than its own one's, and within ``look_near`` of it, follows that shopper: the
    # tracker swapped ids. Looks within ``look_learn`` of the shopper's keep the look current.
    look_model_looks: int = 4
    look_votes: int = 3
    look_margin: float = 0.25
    look_near: float = 0.3
    look_learn: float = 0.2
    # Two tracks that each look like the other's shopper swap at once (one look each); the
    # tracks they were re-linked from swap too if they came this close on their camera.
    look_swap_within_m: float = 0.8
    # Evidence-only confidence ceilings (one modality cannot check itself).
    vision_only_cap: float = 0.9
    weight_only_cap: float = 0.9
    disagreement_factor: float = 0.8
    # Ablation for evaluation: "fused" uses everything; "vision" ignores weight changes and
    # "weight" ignores shelf interactions (the other messages still arrive and are logged).
    evidence: str = "fused"

    @classmethod
    def from_store(cls, store: Any, **overrides: Any) -> FusionParams:
        f = store.cfg.fusion
        base = cls(
            allowed_lateness_ns=int(f.allowed_lateness_s * S_TO_NS),
            reach_radius_m=f.reach_radius_m,
            ambiguity_margin_m=f.ambiguity_margin,
            review_below_confidence=f.review_below_confidence,
        )
        return replace(base, **overrides)
