"""Where arms come from in a shelf camera's image: drawn arms on a textured shelf."""

from __future__ import annotations

import cv2
import numpy as np
from test_edge_interactions import dets, hand_at, items, machine

from edge.arms import ArmRoots

W, H = 640, 360


def shelf(width: int = W, height: int = H, seed: int = 3) -> np.ndarray:
    """A busy background: coloured blocks like packs on shelves."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 200, np.uint8)
    for _ in range(60):
        x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(img, (x, y), (x + 40, y + 60), colour, -1)
    return img


def with_arms(bg: np.ndarray, arms: list[tuple[tuple[int, int], tuple[int, int]]]) -> np.ndarray:
    """Arms from a root below the bottom edge to a hand, sleeve then skin."""
    img = bg.copy()
    for (rx, ry), (hx, hy) in arms:
        cv2.line(img, (rx, ry), (hx, hy), (40, 120, 40), 34)
        cv2.circle(img, (hx, hy), 26, (150, 190, 230), -1)
    return img


def x_at_bottom(root: tuple[int, int], hand: tuple[int, int], height: int = H) -> float:
    (rx, ry), (hx, hy) = root, hand
    return rx + (hx - rx) * (ry - height) / (ry - hy)


def test_crossed_arms_point_back_to_where_each_entered() -> None:
    bg = shelf()
    a = ((200, 400), (460, 110))  # from the left, reaching right
    b = ((480, 400), (150, 140))  # from the right, reaching left: the arms cross
    img = with_arms(bg, [a, b])
    roots = ArmRoots(W, H)
    roots.learn(bg)
    hands = np.array([a[1], b[1]], np.float32)
    got = roots.roots(img, hands, np.array([52, 52], np.float32))
    assert abs(got[0] - x_at_bottom(*a)) < 30
    assert abs(got[1] - x_at_bottom(*b)) < 30


def test_unknown_without_a_background_or_an_arm_from_below() -> None:
    bg = shelf()
    hand = np.array([[300, 150]], np.float32)
    size = np.array([52], np.float32)
    roots = ArmRoots(W, H)
    img = with_arms(bg, [((300, 400), (300, 150))])
    assert np.isnan(roots.roots(img, hand, size)).all()  # nothing learned yet
    roots.learn(bg)
    floating = bg.copy()
    cv2.circle(floating, (300, 150), 26, (150, 190, 230), -1)  # a hand with no arm below it
    assert np.isnan(roots.roots(floating, hand, size)).all()


def test_an_interaction_reports_where_its_arm_came_from() -> None:
    """A hand picks at the left of the top lane; its arm comes in from the right, where its
    shopper stands. The exit point is on the left; the arm's root is on the right."""
    w, h = 320, 360
    m = machine()  # lanes of a 320 x 360 image; across the lane -0.5..0.5 is floor x 0.5..1.5
    bg = shelf(w, h)
    root = (290, 420)
    path = [(270, 330), (200, 250), (120, 170), (80, 90), (80, 90), (80, 90), (80, 90)]
    frames: list[tuple[list[tuple], np.ndarray]] = [(items(5, 4), bg)] * 4
    frames += [([*items(5, 4), hand_at(y, x)], with_arms(bg, [(root, (x, y))])) for x, y in path]
    back = [(80, 90), (60, 200), (40, 300)]
    frames += [
        (
            [*items(4, 4), hand_at(y, x), ((x - 20, y - 20, x + 20, y + 20), 0)],
            with_arms(bg, [(root, (x, y))]),
        )
        for x, y in back
    ]
    frames += [(items(4, 4), bg)] * 5
    out = []
    for i, (boxes, img) in enumerate(frames):
        out += m.update(i, i * 66_666_667, dets(boxes), img)
    out += m.flush()
    (e,) = out
    assert {d.sku: d.delta for d in e.deltas} == {"cola": -1}
    assert e.exit_xy_m is not None and e.exit_xy_m[0] < 1.0
    assert e.arm_root_xy_m is not None and e.arm_root_xy_m[0] > 1.3


def test_two_shoppers_at_one_lane_each_get_a_unit_the_count_lost() -> None:
    """Two arms, from the left and the right, in the top lane at once; no hand is seen
    carrying anything, and the lane's count falls by two: one unit each, each event with its
    own arm's root."""
    w, h = 320, 360
    m = machine()  # lanes of a 320 x 360 image; across the lane -0.5..0.5 is floor x 0.5..1.5
    bg = shelf(w, h)
    left, right = (30, 420), (290, 420)
    ys = [330, 250, 170, 90, 90, 90, 90, 90, 170, 250, 330]
    frames: list[tuple[list[tuple], np.ndarray]] = [(items(5, 4), bg)] * 4
    for k, y in enumerate(ys):
        shelf_items = items(5, 4) if k < 6 else items(3, 4)
        hands = [hand_at(y, 110), hand_at(y, 210)]
        frames.append((shelf_items + hands, with_arms(bg, [(left, (110, y)), (right, (210, y))])))
    frames += [(items(3, 4), bg)] * 5
    out = []
    for i, (boxes, img) in enumerate(frames):
        out += m.update(i, i * 66_666_667, dets(boxes), img)
    out += m.flush()
    assert sorted(d.delta for e in out for d in e.deltas) == [-1, -1]
    roots = sorted(e.arm_root_xy_m[0] for e in out if e.arm_root_xy_m is not None)
    assert len(roots) == 2 and roots[0] < 0.8 and roots[1] > 1.2


def test_the_count_beyond_what_one_hand_carried_is_the_other_arms() -> None:
    """Two arms from the left and the right in the top lane at once; only the right hand is
    seen carrying a unit out, and the count falls by two: the other unit is the left arm's,
    not a second unit in the right hand. With one arm only, the count's two are its own."""
    w, h = 320, 360
    bg = shelf(w, h)
    left, right = (30, 420), (290, 420)
    ys = [330, 250, 170, 90, 90, 90, 90, 90, 170, 250, 330]

    def run(arms: list[tuple[tuple[int, int], int]]) -> list:
        m = machine()  # across the top lane -0.5..0.5 is floor x 0.5..1.5
        frames: list[tuple[list[tuple], np.ndarray]] = [(items(5, 4), bg)] * 4
        for k, y in enumerate(ys):
            boxes = items(5, 4) if k < 6 else items(3, 4)
            for _, x in arms:
                boxes.append(hand_at(y, x))
            if k >= 6:  # the last arm's hand carries one unit out
                x = arms[-1][1]
                boxes.append(((x - 20, y - 20, x + 20, y + 20), 0))
            frames.append((boxes, with_arms(bg, [(root, (x, y)) for root, x in arms])))
        frames += [(items(3, 4), bg)] * 5
        out = []
        for i, (boxes, img) in enumerate(frames):
            out += m.update(i, i * 66_666_667, dets(boxes), img)
        return out + m.flush()

    two = run([(left, 110), (right, 210)])
    assert sorted(d.delta for e in two for d in e.deltas) == [-1, -1]
    roots = sorted(e.arm_root_xy_m[0] for e in two if e.arm_root_xy_m is not None)
    assert len(roots) == 2 and roots[0] < 0.8 and roots[1] > 1.2
    (one,) = run([(right, 210)])
    assert [d.delta for d in one.deltas] == [-2]
