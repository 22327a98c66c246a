"""Shelf interaction state machine on scripted detections: picks, puts, touches, pass-overs."""

from __future__ import annotations

import numpy as np
import pytest

from edge.detections import Detections
from edge.interactions import InteractionSettings, ShelfInteractions
from edge.lanes import LaneRegions

NAMES = ["cola", "chips", "hand", "person"]
HAND = 2
T0 = 1_767_225_600_000_000_000
DT = 66_666_667
# two lanes stacked: top (y 20..150) and bottom (y 180..330) over x 20..300
POLYS = {
    "L-top": [(20.0, 20.0), (300.0, 20.0), (300.0, 150.0), (20.0, 150.0)],
    "L-bot": [(20.0, 180.0), (300.0, 180.0), (300.0, 330.0), (20.0, 330.0)],
}


def items(n_top: int, n_bot: int, top_cls: int = 0, bot_cls: int = 1) -> list[tuple]:
    out = [((30 + 40 * i, 60, 60 + 40 * i, 140), top_cls) for i in range(n_top)]
    out += [((30 + 40 * i, 220, 60 + 40 * i, 320), bot_cls) for i in range(n_bot)]
    return out


def dets(boxes: list[tuple]) -> Detections:
    if not boxes:
        return Detections.empty()
    return Detections(
        np.array([b for b, _ in boxes], np.float32),
        np.full(len(boxes), 0.9, np.float32),
        np.array([c for _, c in boxes], np.int32),
    )


def machine() -> ShelfInteractions:
    regions = LaneRegions(POLYS, 320, 360)
    return ShelfInteractions(
        "edge-1",
        "cam",
        regions,
        NAMES,
        ["cola", "chips"],
        floor_xy=lambda lane, across: (1.0 + across, 2.0),
        settings=InteractionSettings(count_frames=3, exit_frames=2),
    )


def play(frames: list[list[tuple] | None]) -> list:
    m = machine()
    out = []
    for i, f in enumerate(frames):
        out += m.update(i, T0 + i * DT, None if f is None else dets(f))
    out += m.flush()
    return out


def hand_at(y: float, x: float = 150) -> tuple:
    return ((x - 25, y - 25, x + 25, y + 25), HAND)


def reach(top: int, bot: int, *, target_y: float, take: int, cls: int = 0) -> list[list[tuple]]:
    """Hand rises from the bottom edge to target_y, stays there about a third of a second (a
    grasp; a hand only passing through a lane moves nothing) and goes back; ``take`` > 0 picks
    items of the top lane, < 0 puts one back (the hand carries it in)."""
    path_up = [350, 300, 250, 200, target_y, target_y, target_y, target_y]
    frames = []
    held_in = [((130, 0, 170, 40), cls)] if take < 0 else []
    for y in path_up:
        frames.append(items(top, bot) + [hand_at(y)] + [_shift(h, y) for h in held_in])
    top_after = top - take
    held_out = [((130, 0, 170, 40), cls)] * max(take, 0)
    for y in [target_y, 200, 250, 300, 350]:
        frames.append(items(top_after, bot) + [hand_at(y)] + [_shift(h, y) for h in held_out])
    return frames


def _shift(h: tuple, y: float) -> tuple:
    (x1, _, x2, _), c = h
    return ((x1, y - 20, x2, y + 20), c)


@pytest.mark.parametrize(
    ("take", "expected"),
    [(1, {"cola": -1}), (2, {"cola": -2}), (-1, {"cola": 1}), (0, None)],
)
def test_reach_into_top_lane(take: int, expected: dict[str, int] | None) -> None:
    idle = [items(5, 4)] * 4
    after = [items(5 - take, 4)] * 5
    events = play(idle + reach(5, 4, target_y=80, take=take) + after)
    if expected is None:
        assert events == []
        return
    (e,) = events
    assert e.lane_id == "L-top" and {d.sku: d.delta for d in e.deltas} == expected
    assert e.interaction_id == "cam:L-top:f000008"
    assert e.start_ts_ns == T0 + 8 * DT and e.start_ts_ns < e.end_ts_ns
    assert e.confidence >= 0.9 and e.exit_xy_m == pytest.approx((1.0 - 0.0357, 2.0), abs=0.01)
    assert e.evidence_frames[0] < 8 < e.evidence_frames[-1] and e.source_id == "edge-1"


def test_passing_over_the_bottom_lane_emits_nothing_for_it() -> None:
    idle = [items(5, 4)] * 4
    events = play(idle + reach(5, 4, target_y=80, take=1) + [items(4, 4)] * 5)
    assert [e.lane_id for e in events] == ["L-top"]


def test_skipped_frames_change_nothing_and_ids_are_deterministic() -> None:
    idle: list[list[tuple] | None] = [items(5, 4)] * 3 + [None] * 20
    # the bottom lane: take a chips bag (the hand is in the lane from frame 24, y=300)
    frames = (
        idle
        + [[*items(5, 4), hand_at(y)] for y in (350, 300, 260, 260)]
        + [[*items(5, 3), hand_at(y), ((130, y - 20, 170, y + 20), 1)] for y in (260, 330, 360)]
    )
    frames += [items(5, 3)] * 5
    a, b = play(frames), play(frames)
    assert a == b and len(a) == 1
    assert a[0].lane_id == "L-bot" and a[0].deltas[0].sku == "chips"
    assert a[0].deltas[0].delta == -1 and a[0].interaction_id == "cam:L-bot:f000024"


def test_no_clear_view_after_falls_back_to_what_the_hand_carried() -> None:
    idle = [items(5, 4)] * 4
    person = ((0, 0, 320, 360), 3)
    # a person steps in front of the shelf as the hand leaves and stays to the end
    moves = reach(5, 4, target_y=80, take=1)
    frames = idle + moves[:7] + [[*f, person] for f in moves[7:]]
    frames += [[*items(4, 4), person]] * 3
    (e,) = play(frames)
    assert e.deltas[0].delta == -1 and e.confidence < 0.9


def test_a_detector_without_hands_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="no 'hand'"):
        ShelfInteractions("e", "c", LaneRegions(POLYS, 320, 360), ["cola"], ["cola"])


def test_count_that_changed_while_the_camera_was_blind_is_reported() -> None:
    m = machine()
    frames = [items(5, 4)] * 4
    out = []
    for i, f in enumerate(frames):
        out += m.update(i, T0 + i * DT, dets(f))
    m.blind()  # e.g. 40 dark frames: the node does not pass them on
    for i in range(44, 52):
        out += m.update(i, T0 + i * DT, dets(items(3, 4)))
    (e,) = out
    assert [(d.sku, d.delta) for d in e.deltas] == [("cola", -2)]
    assert e.confidence == 0.5 and e.interaction_id == "cam:L-top:f000044"
    assert e.start_ts_ns == T0 + 3 * DT and e.end_ts_ns == T0 + 44 * DT
    assert e.exit_xy_m == (1.0, 2.0)  # the lane's front centre


def test_count_flicker_and_unseen_drift_without_blindness_emit_nothing() -> None:
    m = machine()
    seq = [items(5, 4)] * 4 + [items(4, 4)] * 2 + [items(5, 4)] * 3 + [items(4, 4)] * 8
    out = []
    for i, f in enumerate(seq):
        out += m.update(i, T0 + i * DT, dets(f))
    assert out == [] and m.rebaselines == 1


def test_two_hands_in_one_lane_at_once_are_two_interactions() -> None:
    """Two shoppers pick from the top lane together: one event per hand, each with its own
    exit position and id, both starting on the same frame."""

    def hands(y: float, taken: bool) -> list[tuple]:
        out = []
        for x in (80.0, 230.0):
            out.append(hand_at(y, x))
            if taken:
                out.append(((x - 20, y - 20, x + 20, y + 20), 0))
        return out

    frames = [items(6, 4)] * 4
    frames += [items(6, 4) + hands(y, False) for y in (350, 300, 250, 200, 90, 90, 90)]
    frames += [items(4, 4) + hands(y, True) for y in (90, 90, 200, 250, 300, 350)]
    frames += [items(4, 4)] * 5
    events = play(frames)
    assert len(events) == 2
    assert {e.interaction_id for e in events} == {"cam:L-top:f000008", "cam:L-top:f000008.1"}
    assert all([(d.sku, d.delta) for d in e.deltas] == [("cola", -1)] for e in events)
    xs = sorted(e.exit_xy_m[0] for e in events if e.exit_xy_m)
    assert xs[0] < 1.0 < xs[1] and {e.hand_track_id for e in events} == {1, 2}


def test_exit_position_follows_the_hand_on_its_way_out() -> None:
    """A hand picks at the right of the lane and leaves towards the left (its shopper stands
    there, arm across): the exit position is on the left, where the hand went."""
    idle = [items(5, 4)] * 4
    up = [[*items(5, 4), hand_at(y, 250)] for y in (350, 300, 250, 200, 80, 80)]
    out = [
        [*items(4, 4), hand_at(y, x), ((x - 20, y - 20, x + 20, y + 20), 0)]
        for y, x in ((80, 250), (200, 160), (250, 90), (300, 40), (350, 30))
    ]
    events = play(idle + up + out + [items(4, 4)] * 5)
    (e,) = events
    assert {d.sku: d.delta for d in e.deltas} == {"cola": -1}
    assert e.exit_xy_m is not None and e.exit_xy_m[0] < 1.0 - 0.2


def test_a_hand_the_detector_loses_mid_shelf_still_covers_the_lane_below() -> None:
    """The hand crosses the bottom lane on its way up and the detector stops seeing it there;
    meanwhile its arm hides a unit of the bottom lane. That lane's count must not be read as a
    pick (its arm is still in front of it), and nothing is emitted once the arm is gone."""
    idle = [items(5, 4)] * 4
    up = [[*items(5, 4), hand_at(y)] for y in (350, 300, 250)]
    # lost by the detector for 6 frames (0.4 s); one bottom-lane unit hidden behind the arm
    lost = [items(5, 3)] * 6
    back = [[*items(5, 4), hand_at(y)] for y in (300, 350)]
    events = play(idle + up + lost + back + [items(5, 4)] * 6)
    assert events == []


def test_a_put_the_clear_count_does_not_show_is_a_touch() -> None:
    """A hand reaches in with a unit seemingly moving along with it (one of the lane's own,
    passed over on the way in) and leaves empty; the lane's clear count before and after is
    the same: nothing was put back."""
    idle = [items(5, 4)] * 4
    unit = ((130, 0, 170, 40), 0)
    up = [[*items(5, 4), hand_at(y), _shift(unit, y)] for y in (350, 300, 250, 200, 80, 80)]
    stay = [[*items(5, 4), hand_at(y)] for y in (80, 80, 200, 250, 300, 350)]
    assert play(idle + up + stay + [items(5, 4)] * 5) == []
    # the same hand, and the clear count shows the unit it brought: a put-back
    left = [[*items(5 if y == 80 else 6, 4), hand_at(y)] for y in (80, 80, 200, 250, 300, 350)]
    (e,) = play(idle + up + left + [items(6, 4)] * 5)
    assert [(d.sku, d.delta) for d in e.deltas] == [("cola", 1)]
    # the count shows the unit it brought, read as the other SKU (a look-alike): the hand's
    # SKU stands
    looks = [*items(5, 4), ((230, 60, 260, 140), 1)]
    left = [[*(items(5, 4) if y == 80 else looks), hand_at(y)] for y in (80, 80, 200, 250, 300)]
    (e,) = play(idle + up + left + [looks] * 5)
    assert [(d.sku, d.delta) for d in e.deltas] == [("cola", 1)]
