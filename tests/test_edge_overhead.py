"""Overhead looks: the colour signature a track carries so fusion can undo tracker id swaps.

People are drawn by the simulator's overhead renderer on its floor, boxes from its id map.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from fusion_scenarios import CONFIG

from edge.detections import Detections
from edge.overhead import LOOK_DIMS, OverheadTracking, look_signature
from sim.canvas import Canvas
from sim.effects import Lighting, apply_lighting
from sim.overhead import FloorView, PersonLook, PersonPose, draw_person
from walkout.config import Store, load_store
from walkout.messages import TrackUpdate

RED_TOP = (30, 30, 140)
BLUE_TOP = (120, 60, 20)
GREEN_TOP = (60, 120, 30)


@pytest.fixture(scope="module")
def store() -> Store:
    return load_store(CONFIG)


def _view(store: Store) -> FloorView:
    cam = next(c for c in store.cfg.cameras if c.kind == "overhead")
    return FloorView(cam, store)


def _look(top: tuple[int, int, int]) -> PersonLook:
    return PersonLook(top=top, hair=(30, 45, 70), skin=(140, 170, 210), cap=None, bag=None,
                      shoulder_m=0.46)  # fmt: skip


def _scene(
    store: Store, people: list[tuple[PersonLook, tuple[float, float]]], seed: int = 3
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    view = _view(store)
    cv = Canvas(view.draw_floor(seed=seed), track_ids=True)
    for oid, (look, xy) in enumerate(people):
        draw_person(cv, view, look, PersonPose(xy, heading_rad=math.pi / 2), oid)
    boxes = cv.visible_boxes()
    return cv.img, [boxes[i][0] for i in range(len(people))]


def _hellinger(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return math.sqrt(max(0.0, 1.0 - sum(math.sqrt(x * y) for x, y in zip(a, b, strict=True))))


def test_the_same_person_looks_alike_elsewhere_and_under_other_light(store: Store) -> None:
    view = _view(store)
    centre = view.to_floor((view.size[0] / 2, view.size[1] / 2))
    there = (centre[0] + 1.5, centre[1] - 0.8)
    img, (box,) = _scene(store, [(_look(RED_TOP), centre)])
    red = look_signature(img, box)
    assert len(red) == LOOK_DIMS
    assert sum(red) == pytest.approx(1.0, abs=2e-3)
    img2, (box2,) = _scene(store, [(_look(RED_TOP), there)], seed=9)
    dim = apply_lighting(img2, Lighting(gain=0.7, tint=(0.92, 1.0, 1.08), spot_strength=0.2))
    img3, (box3,) = _scene(store, [(_look(BLUE_TOP), centre)])
    img4, (box4,) = _scene(store, [(_look(GREEN_TOP), centre)])
    same = _hellinger(red, look_signature(dim, box2))
    assert same < 0.2
    for other in (look_signature(img3, box3), look_signature(img4, box4)):
        assert _hellinger(red, other) > 0.5


def test_a_look_is_sent_only_when_the_person_stands_clear_and_not_every_frame(
    store: Store,
) -> None:
    view = _view(store)
    cam = view.camera
    c = view.to_floor((view.size[0] / 2, view.size[1] / 2))
    far = (c[0] + 2.0, c[1])
    near = (c[0] + 0.35, c[1])
    names = [p.sku for p in store.cfg.products] + ["hand", "person"]
    person = names.index("person")
    ov = OverheadTracking("edge-1", cam.id, cam.homography or (), names, fps=15.0,
                          look_interval_s=0.4)  # fmt: skip
    sent: list[TrackUpdate] = []
    for i in range(12):  # 15 fps: apart for 0.4 s, then the second person steps close
        second = far if i < 6 else near
        img, boxes = _scene(store, [(_look(RED_TOP), c), (_look(BLUE_TOP), second)])
        dets = Detections(np.array(boxes, np.float32), np.full(2, 0.9, np.float32),
                          np.full(2, person, np.int32))  # fmt: skip
        sent.append(ov.update(i, int(i / 15 * 1e9), dets, img))
    looks = [[bool(t.look) for t in u.tracks] for u in sent]
    tracked = [u for u in sent if len(u.tracks) == 2]
    assert tracked, looks
    # while apart (0.4 s): each track's look once at most
    apart = [sum(t.look != () for t in u.tracks) for u in sent[:6]]
    assert 0 < sum(apart) <= 4
    # side by side (boxes grown by a quarter touch): no looks at all
    assert all(not t.look for u in sent[7:] for t in u.tracks)
