"""Fusion core scenarios: scripted events in, carts out (demo store)."""

from __future__ import annotations

import pytest
from fusion_scenarios import ENTRY_XY, EXIT_XY, Scenario, demo_store, ns, run

from fusion.ids import checkout_id, session_id
from walkout.config import Store


@pytest.fixture(scope="module")
def store() -> Store:
    return demo_store()


def test_single_shopper_fused_pick(store: Store) -> None:
    sc = Scenario(store)
    sc.shopper(1, 0.0, 20.0, (5.0, 2.4, 7.0), (12.0, 2.4, 7.0))
    sc.entry(0.0, "acct-a")
    sc.take(8.0, "G1-L00", exit_xy=(2.4, 7.3))
    sc.exit(20.0)
    r = run(store, sc.messages())
    assert [o.account_id for o in r.opened] == ["acct-a"]
    assert r.cart("acct-a") == {"cola-330": 1}
    closed = r.closed_of("acct-a")
    sid = session_id("gate-in", "acct-a", ns(0.0))
    assert closed.session_id == sid
    assert closed.checkout_id == checkout_id("demo-001", sid)
    assert not closed.review
    assert closed.lines[0].confidence > 0.9
    assert len(closed.lines[0].evidence) == 2


def two_shoppers(store: Store, a_xy: tuple[float, float], b_xy: tuple[float, float]) -> Scenario:
    sc = Scenario(store)
    sc.shopper(1, 0.0, 24.0, (4.0, *a_xy), (14.0, *a_xy))
    sc.shopper(2, 1.5, 26.0, (5.5, *b_xy), (14.0, *b_xy))
    sc.entry(0.0, "acct-a")
    sc.entry(1.5, "acct-b")
    sc.exit(24.0)
    sc.exit(26.0)
    return sc


def two_hands_two_cans(sc: Scenario, x1: float, x2: float) -> Scenario:
    """Two hands take a can each from G1-L00 0.2 s apart, leaving at x1 and x2; one plate
    step of two cans."""
    sc.vision(8.0, "G1-L00", [("cola-330", -1, 0.95)], exit_xy=(x1, 7.35))
    sc.vision(8.2, "G1-L00", [("cola-330", -1, 0.95)], exit_xy=(x2, 7.35))
    sc.weight(8.1, "G1-L00", -690.0)
    return sc


def test_same_lane_same_moment_two_shoppers(store: Store) -> None:
    sc = two_shoppers(store, (2.2, 7.1), (2.6, 7.1))
    sc.vision(8.0, "G1-L00", [("cola-330", -1, 0.95)], exit_xy=(2.3, 7.35))
    sc.vision(8.2, "G1-L00", [("cola-330", -1, 0.95)], exit_xy=(2.5, 7.35))
    sc.weight(8.1, "G1-L00", -690.0)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"cola-330": 1}
    assert r.cart("acct-b") == {"cola-330": 1}
    assert not r.closed_of("acct-a").review and not r.closed_of("acct-b").review


def test_two_shoppers_too_close_to_tell_apart_each_taking_one_need_no_review(
    store: Store,
) -> None:
    """Shoulder to shoulder at one lane, one can each: which hand was whose is unclear, but
    either way each cart gets one can, so nothing is flagged. With a third shopper as close,
    one of the cans could be hers: then it is."""
    sc = two_hands_two_cans(two_shoppers(store, (2.35, 7.1), (2.45, 7.1)), 2.38, 2.42)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"cola-330": 1} and r.cart("acct-b") == {"cola-330": 1}
    assert not r.closed_of("acct-a").review and not r.closed_of("acct-b").review
    sc.shopper(3, 3.0, 28.0, (6.0, 2.4, 7.05), (14.0, 2.4, 7.05))
    sc.entry(3.0, "acct-c")
    sc.exit(28.0)
    r = run(store, sc.messages())
    assert any(r.closed_of(a).review for a in ("acct-a", "acct-b", "acct-c"))


def test_two_hands_at_once_nearer_one_shopper_are_shared_with_the_close_other(
    store: Store,
) -> None:
    """Both hands in the lane at the same time leave nearer to A, but B stands as close as
    the ambiguity margin: one shopper rarely takes from one lane with both hands at once, so
    one can each. A shopper alone takes both with two hands."""
    sc = two_hands_two_cans(two_shoppers(store, (2.3, 7.1), (2.5, 7.1)), 2.3, 2.32)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"cola-330": 1} and r.cart("acct-b") == {"cola-330": 1}
    alone = Scenario(store)
    alone.shopper(1, 0.0, 24.0, (4.0, 2.3, 7.1), (14.0, 2.3, 7.1))
    alone.entry(0.0, "acct-a")
    alone.exit(24.0)
    two_hands_two_cans(alone, 2.3, 2.32)
    assert run(store, alone.messages()).cart("acct-a") == {"cola-330": 2}


def test_crossing_arms(store: Store) -> None:
    sc = two_shoppers(store, (2.4, 7.1), (3.2, 7.1))
    # A reaches across into B's lane (cola-440) while B reaches into A's lane (cola-330).
    sc.take(8.0, "G1-L01", exit_xy=(3.0, 7.475))
    sc.take(8.1, "G1-L00", exit_xy=(2.6, 7.475))
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"cola-440": 1}
    assert r.cart("acct-b") == {"cola-330": 1}


def test_crossing_arms_told_by_where_the_arms_come_from(store: Store) -> None:
    """Each hand left its lane near the lane's middle, pointing at nobody in particular (or,
    for B, towards A): the shelf camera saw where each arm entered its view, in front of
    the other lane. Those points decide, without review."""
    sc = two_shoppers(store, (2.4, 7.1), (3.2, 7.1))
    sc.take(8.0, "G1-L01", exit_xy=(3.15, 7.6), arm_root=(2.55, 7.6))  # A's arm
    sc.take(8.1, "G1-L00", exit_xy=(2.6, 7.6), arm_root=(3.35, 7.6))  # B's arm
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"cola-440": 1}
    assert r.cart("acct-b") == {"cola-330": 1}
    assert not r.closed_of("acct-a").review and not r.closed_of("acct-b").review


def test_a_shopper_walking_through_the_arm_line_does_not_rival_the_one_standing_at_it(
    store: Store,
) -> None:
    """A stands at cola-330 and reaches in; B walks along the gondola behind A's arm during
    the reach, on its line for a moment. Where a body stays during the reach counts, not the
    nearest it came: A's can, no review. B standing there instead would have been a rival."""

    def a_reaches_while_b_walks(*b_path: tuple[float, float, float]) -> None:
        sc = Scenario(store)
        sc.shopper(1, 0.0, 24.0, (4.0, 2.4, 7.1), (14.0, 2.4, 7.1))
        sc.shopper(2, 1.5, 26.0, *b_path)
        sc.entry(0.0, "acct-a")
        sc.entry(1.5, "acct-b")
        sc.exit(24.0)
        sc.exit(26.0)
        sc.take(8.0, "G1-L00", exit_xy=(2.5, 7.6), arm_root=(2.5, 7.6))
        r = run(store, sc.messages())
        assert r.cart("acct-a") == {"cola-330": 1} and r.cart("acct-b") == {}
        assert not r.closed_of("acct-a").review

    a_reaches_while_b_walks((7.6, 4.4, 6.9), (9.8, 0.9, 6.9), (14.0, 0.9, 6.9))
    # B walks up to the shelf from across the aisle while A reaches, along A's arm, and
    # arrives after: far from the lane for most of the reach, so no rival either
    a_reaches_while_b_walks((8.0, 2.6, 4.0), (9.2, 2.6, 6.9), (14.0, 2.6, 6.9))
    still = two_shoppers(store, (2.4, 7.1), (2.6, 6.9))
    still.take(8.0, "G1-L00", exit_xy=(2.5, 7.6), arm_root=(2.5, 7.6))
    r = run(store, still.messages())
    assert r.closed_of("acct-a").review or r.closed_of("acct-b").review


def test_several_units_with_another_shopper_at_the_lane_are_flagged(store: Store) -> None:
    """One hand seen, the plate says two cans, and B stands at the lane beside A: B may have
    taken one with a hand the shelf camera did not tell apart from A's. A gets both, flagged.
    With nobody else in reach, two cans in one hand need no review."""
    sc = two_shoppers(store, (2.4, 7.1), (3.0, 7.1))
    sc.take(8.0, "G1-L00", units=2, exit_xy=(2.4, 7.6), arm_root=(2.4, 7.6))
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"cola-330": 2}
    closed = r.closed_of("acct-a")
    assert closed.review
    assert closed.review_reasons == ("cola-330:others_within_reach",)
    alone = two_shoppers(store, (2.4, 7.1), (6.0, 6.0))
    alone.take(8.0, "G1-L00", units=2, exit_xy=(2.4, 7.6), arm_root=(2.4, 7.6))
    r = run(store, alone.messages())
    assert r.cart("acct-a") == {"cola-330": 2} and not r.closed_of("acct-a").review


def test_a_take_and_a_put_back_at_once_by_two_shoppers_side_by_side(store: Store) -> None:
    """A took a can earlier. Standing side by side with B, too close to tell apart, the
    plate then falls by a can and rises by one half a second later, no hand seen: A, who
    holds one, put it back, and B took one (both flagged). Summed, the two steps would hide
    both; one by one with the take first, both would go to whoever stood nearer."""
    sc = Scenario(store)
    sc.shopper(1, 0.0, 24.0, (4.0, 2.4, 7.1), (14.0, 2.4, 7.1))
    sc.shopper(2, 1.5, 26.0, (7.0, 2.42, 7.1), (14.0, 2.42, 7.1))
    sc.entry(0.0, "acct-a")
    sc.entry(1.5, "acct-b")
    sc.exit(24.0)
    sc.exit(26.0)
    sc.take(4.5, "G1-L00", exit_xy=(2.4, 7.6), arm_root=(2.4, 7.6))
    sc.weight(9.0, "G1-L00", -346.0, dur_s=0.3)
    sc.weight(9.6, "G1-L00", 344.0, dur_s=0.3)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {} and r.cart("acct-b") == {"cola-330": 1}
    assert r.closed_of("acct-b").review
    # the plate reports both steps of the movement together, more than the pairing window
    # after the first ended: still decided together
    del sc.msgs[-2:]
    sc.weight(9.0, "G1-L00", -346.0, dur_s=0.3, reported_s=10.6)
    sc.weight(9.6, "G1-L00", 344.0, dur_s=0.3, reported_s=10.6)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {} and r.cart("acct-b") == {"cola-330": 1}


def test_put_back_misread_as_a_look_alike_nobody_holds_is_what_the_shopper_held(
    store: Store,
) -> None:
    """Vision reads the ice tea going back as orange juice (530 g, ice tea 540 g): the plate
    fits both, but nobody inside holds orange juice, so it is the ice tea."""
    sc = Scenario(store)
    sc.shopper(1, 0.0, 20.0, (5.0, 3.2, 7.15), (15.0, 3.2, 7.15))
    sc.entry(0.0, "acct-a")
    sc.take(8.0, "G1-L11", "icetea-500")
    sc.vision(12.0, "G1-L11", [("ojuice-500", 1, 0.72)])
    sc.weight(12.1, "G1-L11", 535.0)  # halfway between the two unit weights
    sc.exit(20.0)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {}
    assert r.core.stats.puts_unmatched == 0


def test_hand_tracked_only_after_the_plate_step_asks_who_stood_there_during_it(
    store: Store,
) -> None:
    """The plate stepped while A stood at the lane; the hand was tracked only later, as A
    left and B stepped in. Both stood there within the time the event took: review, not a
    silent B."""
    sc = Scenario(store)
    sc.shopper(1, 0.0, 22.0, (5.0, 2.4, 7.15), (9.3, 2.4, 7.15), (10.3, 4.4, 6.0))
    sc.shopper(2, 1.5, 24.0, (6.0, 5.5, 5.0), (9.6, 4.0, 6.5), (10.0, 2.5, 7.15), (14.0, 2.5, 7.15))
    sc.entry(0.0, "acct-a")
    sc.entry(1.5, "acct-b")
    sc.weight(8.3, "G1-L00", -store.products["cola-330"].unit_weight_g)
    sc.vision(10.0, "G1-L00", [("cola-330", -1, 0.9)], dur_s=0.2, arm_root=(2.45, 7.6))
    sc.exit(22.0)
    sc.exit(24.0)
    r = run(store, sc.messages())
    carts = [r.cart("acct-a"), r.cart("acct-b")]
    assert sorted(carts, key=len) == [{}, {"cola-330": 1}]
    billed = next(c for c in r.closed if c.lines)
    assert billed.lines[0].review


def test_hand_off_put_back_by_the_other_shopper(store: Store) -> None:
    sc = Scenario(store)
    sc.shopper(1, 0.0, 24.0, (4.0, 4.0, 7.1), (7.0, 4.0, 7.1), (9.0, 3.0, 6.0), (14.0, 3.0, 6.0))
    sc.shopper(2, 1.5, 26.0, (5.0, 3.0, 6.0), (9.0, 3.0, 6.0), (11.0, 4.0, 7.1), (14.0, 4.0, 7.1))
    sc.entry(0.0, "acct-a")
    sc.entry(1.5, "acct-b")
    sc.exit(24.0)
    sc.exit(26.0)
    sc.take(5.0, "G1-L12", exit_xy=(4.0, 7.35))  # A picks chips, hands them to B
    sc.take(12.0, "G1-L12", exit_xy=(4.0, 7.35), put=True)  # B puts them back
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {}
    assert r.cart("acct-b") == {}
    assert r.core.stats.handoffs == 1


def test_several_units_at_once_counted_by_weight(store: Store) -> None:
    sc = Scenario(store)
    sc.shopper(1, 0.0, 20.0, (5.0, 2.4, 7.0), (12.0, 2.4, 7.0))
    sc.entry(0.0, "acct-a")
    sc.vision(8.0, "G1-L00", [("cola-330", -2, 0.9)], exit_xy=(2.4, 7.3))  # vision saw 2
    sc.weight(8.1, "G1-L00", -3 * 345.0 + 2.0)  # the plate says 3
    sc.take(10.0, "G1-L10", units=2, exit_xy=(2.4, 7.3))  # both agree on 2 energy drinks
    sc.exit(20.0)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"cola-330": 3, "energy-250": 2}


def test_wrong_lane_put_back_then_picked_by_another(store: Store) -> None:
    sc = two_shoppers(store, (3.2, 7.1), (3.2, 7.1))
    sc.paths.clear()
    sc.shopper(1, 0.0, 24.0, (4.0, 4.0, 7.1), (7.0, 4.0, 7.1), (8.0, 2.4, 7.1), (10.0, 2.4, 7.1))
    sc.shopper(2, 1.5, 26.0, (12.0, 2.4, 7.1), (15.0, 2.4, 7.1))
    sc.take(5.0, "G1-L12", exit_xy=(4.0, 7.35))  # A picks chips-150
    sc.take(8.5, "G1-L00", "chips-150", put=True, exit_xy=(2.4, 7.35))  # into the cola lane
    # B takes from the cola lane: weight only, 165 g: the misplaced bag, not a can.
    sc.take(13.0, "G1-L00", "chips-150", vision=False)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {}
    assert r.cart("acct-b") == {"chips-150": 1}
    assert r.core.stock["G1-L00"]["chips-150"] == 0


def test_equal_weights_told_apart_by_vision(store: Store) -> None:
    sc = Scenario(store)
    sc.shopper(1, 0.0, 20.0, (5.0, 4.0, 7.1), (12.0, 4.0, 7.1))
    sc.entry(0.0, "acct-a")
    # Orange juice (530 g) sits misplaced in the water lane (530 g): the plate cannot tell.
    sc.take(6.0, "G1-L02", "ojuice-500", put=True, vision=False, weight=False)
    sc.take(8.0, "G1-L02", "ojuice-500", exit_xy=(4.0, 7.35))
    sc.take(10.0, "G1-L02", exit_xy=(4.0, 7.35))  # and one water
    sc.exit(20.0)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"ojuice-500": 1, "water-500": 1}


def test_look_alikes_told_apart_by_weight(store: Store) -> None:
    sc = Scenario(store)
    sc.shopper(1, 0.0, 20.0, (5.0, 2.8, 7.1), (12.0, 2.8, 7.1))
    sc.entry(0.0, "acct-a")
    sc.take(8.0, "G1-L00", "cola-330", seen_sku="cola-440", confidence=0.6, exit_xy=(2.5, 7.35))
    sc.take(10.0, "G1-L01", "cola-440", seen_sku="cola-330", confidence=0.6, exit_xy=(3.1, 7.35))
    sc.exit(20.0)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"cola-330": 1, "cola-440": 1}


@pytest.mark.parametrize(
    ("tick_s", "lost", "found"),
    [
        (0.1, (5.0, 3.0, 5.0), (6.0, 3.2, 5.3)),  # lost at (3, 5), seen again a second later
        # The overhead tracker drops A's track and starts a new one next to it two frames
        # later (7.5 Hz, as the edge infers overhead cameras): an id switch.
        (1 / 7.5, (5.0, 2.2, 6.8), (5.2, 2.25, 6.85)),
        # The new track starts half a metre away a frame before the old one is last reported:
        # when it appears A's track is still live, so it is bound only once that one is lost.
        (1 / 7.5, (5.0, 2.2, 6.8), (4.9, 2.5, 7.2)),
    ],
    ids=["lost-and-found", "id-switch", "id-switch-overlapping"],
)
def test_lost_track_is_relinked(
    store: Store, tick_s: float, lost: tuple[float, float, float], found: tuple[float, float, float]
) -> None:
    sc = Scenario(store)
    sc.tick_s = tick_s
    sc.walk(1, (-0.5, 1.1, 0.3), lost)
    sc.walk(7, found, (8.0, 2.4, 7.1), (11.0, 2.4, 7.1), (20.0, 8.9, 0.3))
    sc.shopper(2, 2.0, 22.0, (6.0, 6.5, 2.0), (14.0, 6.5, 2.0))  # someone else, far away
    sc.entry(0.0, "acct-a")
    sc.entry(2.0, "acct-b")
    sc.take(9.0, "G1-L00", exit_xy=(2.4, 7.35))
    sc.exit(20.0)
    sc.exit(22.0)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"cola-330": 1}
    assert r.cart("acct-b") == {}
    assert r.core.stats.relinked_tracks == 1


@pytest.mark.parametrize(
    ("vision", "weight", "modal_cap"),
    [(True, False, 0.9), (False, True, 0.9), (True, True, 1.0)],
    ids=["vision-only", "weight-only", "fused"],
)
def test_vision_only_weight_only_fused(
    store: Store, vision: bool, weight: bool, modal_cap: float
) -> None:
    sc = Scenario(store)
    if not weight:  # vision alone decides where the lane's plate is reported down
        sc.plates_down.add("P-G1-L13")
    sc.shopper(1, 0.0, 20.0, (5.0, 4.8, 7.1), (12.0, 4.8, 7.1))
    sc.entry(0.0, "acct-a")
    sc.take(8.0, "G1-L13", vision=vision, weight=weight, exit_xy=(4.8, 7.35))
    sc.exit(20.0)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"chips-200": 1}
    line = r.closed_of("acct-a").lines[0]
    assert 0.8 <= line.confidence <= modal_cap
    assert not line.review


def test_two_candidates_within_margin_flag_review(store: Store) -> None:
    sc = two_shoppers(store, (2.3, 7.0), (2.5, 7.0))
    sc.take(8.0, "G1-L00", vision=False)  # weight only: no hand to tell them apart
    r = run(store, sc.messages())
    carts = [r.cart("acct-a"), r.cart("acct-b")]
    assert sorted(carts, key=len) == [{}, {"cola-330": 1}]
    flagged = [c for c in r.closed if c.lines]
    assert flagged[0].review and flagged[0].lines[0].review
    assert flagged[0].lines[0].confidence < 0.9
    assert any("ambiguous_shopper" in x for x in flagged[0].review_reasons)


def test_group_shares_one_cart_and_closes_after_both_exit(store: Store) -> None:
    sc = Scenario(store)
    sc.shopper(1, 0.0, 20.0, (5.0, 2.4, 7.1), (12.0, 2.4, 7.1))
    sc.walk(2, (-0.5, 1.3, 0.4), (5.0, 8.3, 5.4), (12.0, 8.3, 5.4), (25.0, 8.9, 0.3))
    sc.entry(0.0, "acct-g", group_size=2)
    sc.take(8.0, "G1-L00", exit_xy=(2.4, 7.35))
    sc.take(9.0, "G3-L02", exit_xy=(8.45, 5.4))
    sc.exit(20.0)
    sc.exit(25.0)
    r = run(store, sc.messages())
    assert len(r.opened) == 1 and r.opened[0].group_size == 2
    assert r.cart("acct-g") == {"cola-330": 1, "yogurt-500": 1}
    assert r.closed_of("acct-g").exit_ts_ns == ns(25.0)


def test_late_event_applied_while_open_dropped_after_close(store: Store) -> None:
    sc = Scenario(store)
    sc.shopper(1, 0.0, 20.0, (5.0, 2.4, 7.1), (12.0, 2.4, 7.1))
    sc.entry(0.0, "acct-a")
    sc.exit(20.0)
    msgs = sc.messages()
    late = Scenario(store)
    late.take(8.0, "G1-L00", vision=False)  # arrives with the 14 s heartbeat: 5 s late
    late.take(9.0, "G1-L00", vision=False)  # arrives after the end: the cart has closed
    at = next(i for i, m in enumerate(msgs) if m.event_ts_ns >= ns(14.0))
    msgs = [*msgs[:at], late.msgs[0], *msgs[at:], late.msgs[1]]
    r = run(store, msgs)
    assert r.cart("acct-a") == {"cola-330": 1}
    assert r.pipeline.late == 2
    assert r.core.stats.late_dropped == 1


def test_replay_is_deterministic(store: Store) -> None:
    sc = two_shoppers(store, (2.2, 7.1), (2.6, 7.1))
    sc.take(8.0, "G1-L00", exit_xy=(2.3, 7.35))
    sc.take(9.0, "G1-L00", vision=False)
    msgs = sc.messages()
    assert run(store, msgs).closed == run(store, msgs).closed


def test_touch_on_a_plated_lane_bills_nothing(store: Store) -> None:
    sc = Scenario(store)
    sc.shopper(1, 0.0, 20.0, (5.0, 2.4, 7.0), (12.0, 2.4, 7.0))
    sc.entry(0.0, "acct-a")
    # Vision believes a can left the lane; the plate did not move: a touch.
    sc.vision(8.0, "G1-L00", [("cola-330", -1, 0.9)], exit_xy=(2.4, 7.3))
    sc.exit(20.0)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {}
    assert not r.closed_of("acct-a").review
    assert r.core.stats.vision_unconfirmed == 1


def test_plate_decides_direction_and_count_vision_the_sku(store: Store) -> None:
    sc = Scenario(store)
    sc.shopper(1, 0.0, 20.0, (5.0, 2.4, 7.0), (12.0, 2.4, 7.0))
    sc.entry(0.0, "acct-a")
    sc.take(6.0, "G1-L00", units=2, exit_xy=(2.4, 7.3))
    # Vision reads the put-back as a pick of 3; the plate gained one can.
    sc.vision(9.0, "G1-L00", [("cola-330", -3, 0.9)], exit_xy=(2.4, 7.3))
    sc.weight(9.1, "G1-L00", 345.0)
    sc.exit(20.0)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"cola-330": 1}


def test_two_hands_two_units_one_plate_step_split(store: Store) -> None:
    sc = two_shoppers(store, (2.0, 7.1), (2.9, 7.1))
    sc.vision(8.0, "G1-L00", [("cola-330", -1, 0.9)], exit_xy=(2.1, 7.35))
    sc.vision(8.1, "G1-L00", [("cola-330", -2, 0.9)], exit_xy=(2.8, 7.35))
    sc.weight(8.2, "G1-L00", -690.0)  # two cans in all
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"cola-330": 1}
    assert r.cart("acct-b") == {"cola-330": 1}


def test_exit_without_tracks_goes_to_the_shopper_last_seen_near_it(store: Store) -> None:
    sc = Scenario(store)
    # Both tracks are lost before the exit: A was last seen near it, B at the back.
    sc.walk(1, (-0.5, 1.1, 0.3), (8.0, 2.4, 7.0), (12.0, 8.0, 1.5))
    sc.walk(2, (1.0, 1.1, 0.3), (12.0, 6.5, 7.0))
    sc.entry(0.0, "acct-a")
    sc.entry(1.5, "acct-b")
    sc.exit(14.0)
    r = run(store, sc.messages())
    assert [c.account_id for c in r.closed] == ["acct-a"]
    assert r.core.stats.guessed_exits == 1


def test_plate_reported_down_lets_vision_decide(store: Store) -> None:
    sc = Scenario(store)
    sc.plates_down.add("P-G1-L00")
    sc.shopper(1, 0.0, 20.0, (5.0, 2.4, 7.0), (12.0, 2.4, 7.0))
    sc.entry(0.0, "acct-a")
    sc.vision(8.0, "G1-L00", [("cola-330", -1, 0.95)], exit_xy=(2.4, 7.3))
    sc.exit(20.0)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"cola-330": 1}


def test_doubtful_change_that_nets_to_nothing_needs_no_review(store: Store) -> None:
    sc = two_shoppers(store, (2.3, 7.0), (2.5, 7.0))
    sc.take(8.0, "G1-L00", vision=False)  # ambiguous: flagged
    sc.take(10.0, "G1-L00", vision=False, put=True)  # and put back by the same shopper
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {} and r.cart("acct-b") == {}
    assert not r.closed_of("acct-a").review and not r.closed_of("acct-b").review


def test_new_track_is_not_relinked_to_a_shopper_still_in_view(store: Store) -> None:
    sc = Scenario(store)
    # A's first track is lost at the cola lane and A is picked up again as track 4 (re-link).
    sc.walk(1, (-0.5, 1.1, 0.3), (4.0, 3.05, 7.1), (5.0, 3.05, 7.1))
    sc.walk(4, (5.4, 3.0, 7.0), (7.0, 2.0, 7.0), (20.0, 2.0, 7.0))
    # B stands next to where A was lost; B's track drops out and comes back as track 3.
    sc.walk(2, (1.0, 1.1, 0.3), (6.0, 3.1, 7.2), (8.0, 3.1, 7.2))
    sc.walk(3, (9.0, 3.1, 7.1), (20.0, 3.1, 7.1))
    sc.entry(0.0, "acct-a")
    sc.entry(1.5, "acct-b")
    r = run(store, sc.messages())
    sid = {s.account_id: s.session_id for s in r.core.sessions.values()}
    assert r.core.bound[("cam-ov-1", 4)] == sid["acct-a"]
    assert r.core.bound[("cam-ov-1", 3)] == sid["acct-b"]


def test_track_lost_at_the_shelf_still_counts_there(store: Store) -> None:
    sc = Scenario(store)
    sc.walk(1, (-0.5, 1.1, 0.3), (5.0, 2.4, 7.0), (7.0, 2.4, 7.0))  # lost at t=7, at the lane
    sc.walk(2, (1.0, 1.1, 0.3), (6.0, 4.0, 6.2), (20.0, 4.0, 6.2))  # someone 1.8 m away
    sc.entry(0.0, "acct-a")
    sc.entry(1.5, "acct-b")
    sc.take(10.0, "G1-L00", exit_xy=(2.4, 7.3))
    r = run(store, sc.messages())
    assert r.core.sessions[session_id("gate-in", "acct-a", ns(0.0))].cart.holdings() == {
        "cola-330": 1
    }


def test_a_shopper_seen_elsewhere_is_not_still_where_their_track_was_lost(store: Store) -> None:
    """A's track is lost at the cola lane as A steps away (out of one camera's view); A is
    picked up again at once and seen walking off while B, now at the lane, takes a cola.
    Where A's lost track was last seen does not make A B's rival: A was seen elsewhere."""
    sc = Scenario(store)
    sc.walk(1, (-0.5, 1.1, 0.3), (5.0, 2.4, 7.0), (7.0, 2.4, 7.0))
    sc.walk(3, (7.2, 2.5, 6.6), (9.0, 4.5, 5.0), (20.0, 8.9, 0.3))
    sc.walk(2, (1.0, 1.1, 0.3), (8.0, 2.75, 7.1), (20.0, 2.75, 7.1))
    sc.entry(0.0, "acct-a")
    sc.entry(1.5, "acct-b")
    sc.take(10.0, "G1-L00", exit_xy=(2.4, 7.3))
    r = run(store, sc.messages())
    assert r.core.bound[("cam-ov-1", 3)] == session_id("gate-in", "acct-a", ns(0.0))
    b = r.core.sessions[session_id("gate-in", "acct-b", ns(1.5))]
    assert b.cart.holdings() == {"cola-330": 1}
    assert not any(line.review for line in b.cart.lines())


def test_plate_change_beyond_what_a_lane_holds_decides_nothing(store: Store) -> None:
    sc = Scenario(store)
    sc.shopper(1, 0.0, 20.0, (5.0, 2.4, 7.0), (12.0, 2.4, 7.0))
    sc.entry(0.0, "acct-a")
    sc.vision(8.0, "G1-L00", [("cola-330", -1, 0.9)], exit_xy=(2.4, 7.3))
    sc.weight(8.1, "G1-L00", -3630.0)  # eleven cans' worth from an eight-can lane
    sc.take(12.0, "G1-L00", exit_xy=(2.4, 7.3))  # and a normal pick afterwards
    sc.exit(20.0)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"cola-330": 1}
    assert r.core.stats.unassigned == 1


def _look(hue_bin: int, grey: float = 0.2) -> tuple[float, ...]:
    """A look signature (12 hue bins, 4 grey levels) mostly of one hue."""
    out = [0.0] * 16
    out[hue_bin] = 1.0 - grey
    out[13] = grey
    return tuple(out)


RED, BLUE, GREEN = _look(0), _look(8), _look(4)


def _passing_pair(
    sc: Scenario, look_a: tuple[float, ...], look_b: tuple[float, ...], group: bool = False
) -> None:
    """A (track 1) walks to the back of the store, B (track 2) to the G1 shelf; they pass
    within 0.2 m at t = 9 and the overhead tracker swaps their ids: from then on track 1
    follows B and track 2 follows A. The looks each track reports change with the person."""
    a_before = [(-0.5, *ENTRY_XY), (6.0, 3.0, 4.0), (9.0, 3.0, 5.0)]
    b_before = [(2.5, *ENTRY_XY), (6.0, 3.6, 5.4), (9.0, 3.2, 5.0)]
    b_after = [(12.0, 2.4, 7.1), (16.0, 2.4, 7.1), (20.0, *EXIT_XY), (20.3, 8.9, 0.1)]
    a_after = [(12.0, 6.0, 3.0), (22.0, *EXIT_XY), (22.3, 8.9, 0.1)]
    sc.walk(1, *a_before, *b_after)
    sc.walk(2, *b_before, *a_after)
    sc.look(1, (-1.0, look_a), (9.2, look_b))
    sc.look(2, (2.0, look_b), (9.2, look_a))
    sc.entry(0.0, "acct-a", group_size=2 if group else 1)
    sc.entry(3.0, "acct-b")
    # B (on track 1 since the swap) stands at the G1 cola lane from t = 12 and takes a can;
    # A is far away at (6, 3). B leaves at t = 20, A at t = 22.
    sc.take(13.0, "G1-L00", exit_xy=(2.4, 7.35))
    sc.exit(20.0)
    sc.exit(22.0)


def test_looks_undo_an_id_swap_of_two_shoppers_passing_close(store: Store) -> None:
    sc = Scenario(store)
    _passing_pair(sc, RED, BLUE)
    r = run(store, sc.messages())
    # track 1 went on with B after t = 9: B took the can and left first
    assert r.core.stats.look_swaps == 2
    assert r.cart("acct-b") == {"cola-330": 1}
    assert r.cart("acct-a") == {}
    by_account = {c.account_id: c for c in r.closed}
    assert by_account["acct-b"].exit_ts_ns == ns(20.0)
    assert by_account["acct-a"].exit_ts_ns == ns(22.0)
    # each binding moved where the tracks came closest, not when the looks told
    a = next(s for s in r.core.sessions.values() if s.account_id == "acct-a")
    assert a.bindings[("cam-ov-1", 1)][1] == pytest.approx(ns(9.0), abs=2e8)


def test_without_looks_the_swap_stands(store: Store) -> None:
    """The same walk with no looks: what fusion did before, and what it does for shoppers who
    look alike. The can goes to A, who was far away: the tracker's swap is believed."""
    for look_a, look_b in (((), ()), (RED, RED)):
        sc = Scenario(store)
        _passing_pair(sc, look_a, look_b)
        r = run(store, sc.messages())
        assert r.core.stats.look_swaps == 0
        assert r.cart("acct-a") == {"cola-330": 1}
        assert r.cart("acct-b") == {}


def test_a_look_that_changes_with_no_one_like_it_moves_nothing(store: Store) -> None:
    """A shopper whose look changes (a jacket taken off, a shadow) while nobody else looks
    like the new look keeps their track: a swap needs another shopper the track now matches."""
    sc = Scenario(store)
    sc.shopper(1, 0.0, 20.0, (5.0, 2.4, 7.1), (12.0, 2.4, 7.1))
    sc.shopper(2, 3.0, 22.0, (8.0, 6.5, 2.0), (14.0, 6.5, 2.0))
    sc.look(1, (-1.0, RED), (8.0, GREEN))
    sc.look(2, (2.0, BLUE))
    sc.entry(0.0, "acct-a")
    sc.entry(3.0, "acct-b")
    sc.take(9.0, "G1-L00", exit_xy=(2.4, 7.35))
    sc.exit(20.0)
    sc.exit(22.0)
    r = run(store, sc.messages())
    assert r.core.stats.look_swaps == 0
    assert r.cart("acct-a") == {"cola-330": 1}


def test_a_group_member_swapped_with_another_shopper_is_given_back(store: Store) -> None:
    """A's account admits two (tracks 1 and 3, red and green); each member gets a look of
    their own. Track 1 is swapped with B's (blue) as in the pair above: the can B takes after
    the swap still goes to B, and A's cart closes when the group has left."""
    sc = Scenario(store)
    _passing_pair(sc, RED, BLUE, group=True)
    member = [(-0.5, 1.2, 0.5), (6.0, 6.5, 2.0), (21.0, 6.5, 2.0), (23.0, *EXIT_XY)]
    sc.walk(3, *member, (23.3, 8.9, 0.1))
    sc.look(3, (-1.0, GREEN))
    sc.exit(23.0)
    r = run(store, sc.messages())
    assert r.core.stats.look_swaps == 2
    assert r.cart("acct-b") == {"cola-330": 1}
    assert r.cart("acct-a") == {}


def test_tracks_relinked_from_a_swapped_pair_undo_that_swap_too(store: Store) -> None:
    """Two shoppers stand side by side at the G3 shelf, seen by cam-ov-2, which swaps their
    ids as they stand close (t = 9.5) and then reach across each other (A takes toothpaste
    from G3-L11 in front of B, B a sandwich from G3-L10 in front of A; the arm roots say who
    reached). They walk back into cam-ov-1's view, whose new tracks are re-linked from where
    cam-ov-2's swapped tracks ended: each to the other shopper. Their first looks, one each,
    say so together; both swap, and so do the cam-ov-2 tracks they were re-linked from (from
    where those came closest), before the shelf events are decided."""
    sc = Scenario(store)
    ov1, ov2 = "cam-ov-1", "cam-ov-2"
    a_spot, b_spot = (8.3, 6.8), (8.3, 6.45)
    sc.walk(1, (-0.5, *ENTRY_XY), (3.5, 6.0, 3.0), camera=ov1)
    sc.walk(2, (1.5, *ENTRY_XY), (5.5, 6.4, 3.0), camera=ov1)
    a_way = [(3.4, 6.0, 3.0), (8.0, *a_spot), (9.4, *a_spot)]
    b_way = [(5.4, 6.4, 3.0), (8.0, *b_spot), (9.4, *b_spot)]
    b_on = [(9.6, *b_spot), (11.5, *b_spot), (12.5, 8.0, 5.6)]
    a_on = [(9.6, *a_spot), (11.5, *a_spot), (12.5, 8.6, 5.9)]
    sc.walk(11, *a_way, *b_on, camera=ov2)
    sc.walk(12, *b_way, *a_on, camera=ov2)
    # cam-ov-1 sees them too from t = 11 (the views overlap) as they turn to leave: B (on
    # track 11 since the swap) and A (on 12) get new tracks there
    b_out = [(15.0, 7.0, 2.0), (22.0, *EXIT_XY), (22.3, 8.9, 0.1)]
    a_out = [(15.0, 8.6, 2.4), (20.0, *EXIT_XY), (20.3, 8.9, 0.1)]
    sc.walk(5, (11.0, *b_spot), (12.5, 8.0, 5.6), *b_out, camera=ov1)
    sc.walk(6, (11.0, *a_spot), (12.5, 8.6, 5.9), *a_out, camera=ov1)
    sc.look(1, (-1.0, RED), camera=ov1)
    sc.look(2, (1.0, BLUE), camera=ov1)
    # side by side from t = 8 until they leave cam-ov-2's view: no looks then
    sc.look(11, (3.0, RED), (8.0, ()), camera=ov2)
    sc.look(12, (5.0, BLUE), (8.0, ()), camera=ov2)
    sc.look(5, (11.0, BLUE), camera=ov1)
    sc.look(6, (11.0, RED), camera=ov1)
    sc.entry(0.0, "acct-a")
    sc.entry(2.0, "acct-b")
    # arm roots on the shelf front (x = 8.6), level with each shopper
    sc.take(10.2, "G3-L11", arm_root=(8.6, a_spot[1]), exit_xy=(8.5, 6.3))
    sc.take(10.3, "G3-L10", arm_root=(8.6, b_spot[1]), exit_xy=(8.5, 6.9))
    sc.exit(20.0)
    sc.exit(22.0)
    r = run(store, sc.messages())
    assert r.cart("acct-a") == {"toothpaste-75": 1}
    assert r.cart("acct-b") == {"sandwich-ham": 1}
    assert r.core.stats.look_swaps == 4


def test_a_swap_is_told_by_another_camera_that_knows_both_shoppers(store: Store) -> None:
    """cam-ov-1 never saw B clear of others (no look of B there), so after the swap track 1
    looks like nobody it knows. cam-ov-2 saw both apart earlier: there the look is B's, and
    far from A's, so track 1 goes to B."""
    sc = Scenario(store)
    _passing_pair(sc, RED, BLUE)
    sc.look(1, (-1.0, RED), (9.2, BLUE))
    sc.look(2, (2.0, ()))  # no look of B on cam-ov-1
    sc.walk(21, (1.0, 1.54, 1.15), (6.0, 3.0, 4.0), camera="cam-ov-2")
    sc.walk(22, (3.5, 1.81, 1.76), (6.0, 3.6, 5.4), camera="cam-ov-2")
    sc.look(21, (0.0, RED), camera="cam-ov-2")
    sc.look(22, (3.0, BLUE), camera="cam-ov-2")
    r = run(store, sc.messages())
    assert r.cart("acct-b") == {"cola-330": 1}
    assert r.cart("acct-a") == {}
    b = next(s for s in r.core.sessions.values() if s.account_id == "acct-b")
    assert ("cam-ov-1", 1) in b.bindings
    assert r.core.stats.look_swaps == 1  # track 2 sent no look: it stays as the tracker said
