"""Shelf interactions of one shelf camera: a single-threaded, deterministic state machine.

Per lane:

* **idle**: while nothing occludes the lane, every inferred frame's per-SKU item count is kept
  (the last ``count_frames``); a frame the motion gate skipped changes nothing.
* a hand whose box lies mostly inside the lane **opens** an interaction (the lane holding the
  largest share of the hand wins, so a hand passing over a lower lane on its way up opens that
  lane only briefly and, moving nothing, emits nothing). The "before" count is the median of the
  kept counts.
* the interaction **closes** when no hand has been in the lane for ``exit_frames`` inferred
  frames. While closing, the lane's counts are collected again, but only from frames where no
  hand, arm (the corridor from a hand down to the image's bottom edge, where arms come from) or
  person covers the lane. A hand the detector stops seeing mid-shelf (it did not leave through
  the bottom edge) still covers the lanes below it for ``hand_memory_s``. A hand that comes
  back before that reopens the same interaction.
* with ``count_frames`` clear frames (or after ``settle_s``), the "after" count is their median;
  after minus before, per SKU, are the deltas. What the hand held when it entered and when it
  left (items whose centre lies in the hand's box) corroborates the counts, and stands in for
  them when the lane never became clear, but only for a hand that stayed in the lane at least
  ``min_take_s`` (a hand passing through on its way to another lane moves nothing there). A
  put-back is not believed when the clear counts show no unit more (a take can hide from the
  count when the unit behind moves up into view; a put cannot). An interaction whose deltas
  are all zero (a touch) is counted, not emitted.

A count that changes with no hand seen is believed only when it holds for ``confirm_frames``
clear frames. If the camera was blind meanwhile (dark frames, a gap in the stream), the change
is reported as an interaction spanning the blind time, with confidence 0.5 and the lane's front
centre as exit position; otherwise the lane's count is re-based silently (counted in
``rebaselines``), since a hand that was seen all along did not move it.

The interaction id is ``{camera}:{lane}:f{start_frame:06d}``: the same recording gives the same
ids on every run.
"""

from __future__ import annotations

import collections
import enum
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.arms import U8, ArmRoots
from edge.detections import Detections
from edge.lanes import LaneRegions
from walkout.messages import ShelfInteraction, SkuDelta

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
FloorFn = Callable[[str, float], tuple[float, float] | None]


@dataclass(frozen=True)
class InteractionSettings:
    enter_fraction: float = 0.3  # share of the hand box inside a lane that makes it "in"
    exit_frames: int = 2  # inferred frames without the hand before the interaction closes
    count_frames: int = 3  # clear frames whose median gives a count
    occlusion_fraction: float = 0.01  # share of a lane an arm/person may cover and still count
    corridor_widen: float = 0.15  # the arm corridor is the hand box widened by this share
    settle_s: float = 2.0  # give up waiting for a clear lane after this long
    near_hand: float = 0.6  # a moving item this close to a hand (x the hand's size) is held
    min_hand_move_px: float = 5.0  # a hand must move this much between frames to carry
    hold_frames: int = 2  # frames at entry and at exit whose held items count as carried
    confirm_frames: int = 5  # clear frames in a row that confirm a count changed unseen
    exit_reach_lanes: float = 1.0  # the exit position may lie this many lane widths outside
    root_reach_lanes: float = 3.0  # ... and where the arm came from, this many
    # Arms whose roots are this many lane widths apart belong to different shoppers.
    arm_apart_lanes: float = 0.4
    # A hand in a lane for less than this is passing through (on its way to the lane above,
    # or back): taking or putting a unit needs the hand to stop. What it seems to hold then
    # is not evidence of a move; a changed count still is.
    min_take_s: float = 0.2
    # A hand that vanished from view without leaving through the bottom edge is most likely
    # still there, missed by the detector: its arm keeps covering the lanes below it (their
    # counts are not read) for this long after it was last seen.
    hand_memory_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.enter_fraction <= 1:
            raise ValueError(f"enter_fraction must be in (0, 1], got {self.enter_fraction}")
        if self.exit_frames < 1 or self.count_frames < 1:
            raise ValueError("exit_frames and count_frames must be >= 1")


class Phase(enum.Enum):
    IDLE = "idle"
    OPEN = "open"
    CLOSING = "closing"


@dataclass
class _Visit:
    """One hand's stay in a lane (from entering to leaving, re-entries included)."""

    hand_id: int
    start_frame: int
    start_ts_ns: int
    end_frame: int
    end_ts_ns: int
    open: bool = True
    missing: int = 0  # inferred frames since the hand was last in the lane
    # what the hand held in frames where that can be told (it moved since the last frame):
    # the first ones in the lane, and the latest ones after those (in the lane or leaving it)
    entry_held: list[I64] = field(default_factory=list)
    later_held: list[I64] = field(default_factory=list)
    hand_x_px: float = 0.0
    hand_xy: tuple[float, float] = (0.0, 0.0)
    hand_size_px: float = 0.0
    # Where the hand was last seen after leaving the lane: it heads back to its shopper, so
    # this side says more about whose hand it was than where it was inside the lane.
    out_x_px: float | None = None
    # Where its arm entered the image (bottom edge, pixels), in the frames it was in the lane.
    root_x_px: list[float] = field(default_factory=list)


@dataclass
class _Lane:
    index: int
    lane_id: str
    history: collections.deque[I64]
    phase: Phase = Phase.IDLE
    visits: list[_Visit] = field(default_factory=list)
    before: I64 | None = None
    after: list[I64] = field(default_factory=list)
    after_frames: list[int] = field(default_factory=list)
    before_frames: list[int] = field(default_factory=list)
    # the lane's agreed count, and when it was last seen
    stable: I64 | None = None
    stable_ts_ns: int = 0
    stable_frame: int = 0
    odd: list[I64] = field(default_factory=list)  # clear counts that disagree with it
    odd_frames: list[int] = field(default_factory=list)
    odd_ts_ns: int = 0
    blind: bool = False  # the camera saw nothing for a while since the count was agreed
    blind_before: bool = False  # ... and the hands came before a clear look at the lane

    @property
    def end_ts_ns(self) -> int:
        return max((v.end_ts_ns for v in self.visits), default=0)


@dataclass(frozen=True)
class FrameView:
    """What one inferred frame says about every lane of the camera."""

    counts: I64  # [L, S] items per lane and SKU class (not counting items in a hand)
    clear: npt.NDArray[np.bool_]  # [L] nothing covers the lane
    hand_lane: npt.NDArray[np.int64]  # [H] lane index each hand is in (-1: none)
    hand_x_px: npt.NDArray[np.float32]  # [H]
    hand_xy: npt.NDArray[np.float32]  # [H, 2] centres
    hand_size_px: npt.NDArray[np.float32]  # [H] the larger side of each hand box
    hand_moving: npt.NDArray[np.bool_]  # [H] moved since the last frame: ``held`` is known
    hand_id: I64  # [H] track id of each hand within this camera
    held: I64  # [H, S] items each hand holds
    # [H] where each hand's arm enters the image at its bottom edge (x, pixels; NaN: unknown)
    root_x_px: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))


class ShelfInteractions:
    """Interaction logic for one shelf camera. Feed every frame in order with ``update``."""

    def __init__(
        self,
        source_id: str,
        camera_id: str,
        regions: LaneRegions,
        names: Sequence[str],
        skus: Sequence[str],
        *,
        floor_xy: FloorFn | None = None,
        settings: InteractionSettings = InteractionSettings(),
    ):
        self.source_id = source_id
        self.camera_id = camera_id
        self.regions = regions
        self.s = settings
        self.floor_xy = floor_xy
        names = list(names)
        if "hand" not in names:
            raise ValueError(
                f"the detector's classes {names} have no 'hand'; shelf interactions need one"
            )
        self.hand_class = names.index("hand")
        self.person_class = names.index("person") if "person" in names else -1
        sku_set = set(skus)
        self.sku_classes = [i for i, n in enumerate(names) if n in sku_set]
        self.sku_names = [names[i] for i in self.sku_classes]
        # class id -> column of the per-SKU count arrays (-1: not a SKU)
        table = np.full(max(len(names), 1), -1, np.int64)
        for col, cls in enumerate(self.sku_classes):
            table[cls] = col
        self._col_of_class = table
        self.lanes = [
            _Lane(i, lane, collections.deque(maxlen=settings.count_frames))
            for i, lane in enumerate(regions.lane_ids)
        ]
        self.touches = 0
        self.arms = ArmRoots(regions.width, regions.height)
        self._had_hands = False
        self.emitted = 0
        self.rebaselines = 0
        # item boxes, their SKU columns and hand boxes of the last inferred frame
        no_boxes = np.zeros((0, 4), np.float32)
        self._prev: tuple[F32, I64, F32] = (no_boxes, np.zeros(0, np.int64), no_boxes)
        # item boxes of the last inferred frame with no hand or person in view
        self._rest: tuple[F32, I64] = (no_boxes, np.zeros(0, np.int64))
        self._hand_ids = np.zeros(0, np.int64)
        self._hand_pts = np.zeros((0, 2), np.float32)
        # hands that vanished mid-shelf: track id -> (last box, first frame time it was missing)
        self._unseen_hands: dict[int, tuple[F32, int]] = {}
        self._next_hand_id = 1

    # ------------------------------------------------------------ per frame

    @property
    def busy(self) -> bool:
        """True while any lane has an open or closing interaction (the motion gate keeps
        inferring this camera meanwhile)."""
        return any(lane.phase is not Phase.IDLE for lane in self.lanes)

    @property
    def needs_counts(self) -> bool:
        """True while a lane's count is not agreed yet or looks changed: keep inferring."""
        return any(lane.stable is None or lane.odd for lane in self.lanes)

    def blind(self) -> None:
        """The camera saw nothing usable (dark frames, a gap in the stream): a count that has
        changed when it sees again changed unseen, and is reported as such."""
        for lane in self.lanes:
            lane.blind = True

    def view(self, dets: Detections, ts_ns: int) -> FrameView:
        r = self.regions
        prev_hands, prev_ids = self._prev[2], self._hand_ids
        n_lanes, n_skus = len(r), len(self.sku_classes)
        cls = dets.class_id.astype(np.int64)
        col = np.where((cls >= 0) & (cls < len(self._col_of_class)), cls, 0)
        sku_col = np.where(
            (cls >= 0) & (cls < len(self._col_of_class)), self._col_of_class[col], -1
        )
        is_item = sku_col >= 0
        hands = dets.xyxy[cls == self.hand_class]
        items = dets.xyxy[is_item]
        item_col = sku_col[is_item]

        held_by = np.full(len(items), -1, np.int64)
        held = np.zeros((len(hands), n_skus), np.int64)
        moving = np.zeros(len(hands), np.bool_)
        hand_size = np.zeros(len(hands), np.float32)
        if len(hands):
            hand_size = np.maximum(hands[:, 2] - hands[:, 0], hands[:, 3] - hands[:, 1])
        # hands come and go through the bottom edge, where their boxes get clipped: the top
        # middle of the box moves with the hand
        hand_c: F32 = np.stack([(hands[:, 0] + hands[:, 2]) / 2, hands[:, 1]], axis=1).astype(
            np.float32
        )
        if len(hands):
            held_by, moving = self._held_by(items, item_col, hands, hand_c, hand_size)
            ok = held_by >= 0
            np.add.at(held, (held_by[ok], item_col[ok]), 1)
        self._prev = (items.copy(), item_col.copy(), hands.copy())
        people = self.person_class >= 0 and bool((cls == self.person_class).any())
        if not len(hands) and not people:
            self._rest = (items.copy(), item_col.copy())

        counts = np.zeros((n_lanes, max(n_skus, 1)), np.int64)[:, :n_skus]
        free = held_by < 0
        if n_lanes and free.any():
            centers = (items[free, :2] + items[free, 2:]) / 2
            lane_of = r.lane_at(centers.astype(np.float32))
            inside = lane_of >= 0
            np.add.at(counts, (lane_of[inside], item_col[free][inside]), 1)

        hand_lane = np.full(len(hands), -1, np.int64)
        if len(hands) and n_lanes:
            frac = r.box_fraction_inside(hands)
            best_lane = frac.argmax(axis=1)
            ok = frac[np.arange(len(hands)), best_lane] >= self.s.enter_fraction
            hand_lane[ok] = best_lane[ok]

        hand_id = self._track_hands(hand_c, hand_size)
        occluders = [dets.xyxy[cls == self.person_class]] if self.person_class >= 0 else []
        arms = self._remember_hands(hands, hand_id, prev_hands, prev_ids, ts_ns)
        if len(arms):
            w = arms[:, 2] - arms[:, 0]
            corridor = arms.copy()
            corridor[:, 0] -= w * self.s.corridor_widen
            corridor[:, 2] += w * self.s.corridor_widen
            corridor[:, 3] = r.height
            occluders.append(corridor)
        clear = np.ones(n_lanes, np.bool_)
        if occluders and n_lanes:
            boxes = np.concatenate(occluders).astype(np.float32)
            if len(boxes):
                cover = r.lane_fraction_covered(boxes)
                clear = np.asarray(~(cover > self.s.occlusion_fraction).any(axis=0), np.bool_)
        return FrameView(
            counts=counts,
            clear=clear,
            hand_lane=hand_lane,
            hand_x_px=((hands[:, 0] + hands[:, 2]) / 2).astype(np.float32),
            hand_xy=((hands[:, :2] + hands[:, 2:]) / 2).astype(np.float32).reshape(-1, 2),
            hand_size_px=hand_size.astype(np.float32),
            hand_moving=moving,
            hand_id=hand_id,
            held=held,
        )

    def _held_by(
        self, items: F32, item_col: I64, hands: F32, hand_c: F32, hand_size: F32
    ) -> tuple[I64, npt.NDArray[np.bool_]]:
        """Which hand (or -1) holds each item: an item next to a moving hand that moved with
        it since the last frame. A unit the hand merely passes over stays put (or, partly
        hidden, seems to drift by half the hand's motion at most), so it is not taken for
        held. Motion is read from the box edges the image border does not cut."""
        held_by = np.full(len(items), -1, np.int64)
        moving = np.zeros(len(hands), np.bool_)
        prev_items, prev_col, prev_hands = self._prev
        if not len(prev_hands):
            return held_by, moving
        w, h_img = self.regions.width, self.regions.height
        prev_hand_c = np.stack(
            [(prev_hands[:, 0] + prev_hands[:, 2]) / 2, prev_hands[:, 1]], axis=1
        )
        gap = _box_gap(items, hands)
        best_err = np.full(len(items), np.inf)
        for h in range(len(hands)):
            d = np.hypot(*(prev_hand_c - hand_c[h]).T)
            j = int(d.argmin())
            if d[j] > 3 * hand_size[h]:
                continue
            sx, sy, okx, oky = _edge_shift(hands[h : h + 1], prev_hands[j : j + 1], w, h_img)
            step = np.array([sx[0, 0] if okx[0, 0] else 0.0, sy[0, 0] if oky[0, 0] else 0.0])
            moved = float(np.hypot(*step))
            if moved < self.s.min_hand_move_px:
                continue
            moving[h] = True
            near = gap[:, h] <= self.s.near_hand * hand_size[h]
            if not near.any() or not len(prev_items):
                continue
            dx, dy, ix, iy = _edge_shift(items, prev_items, w, h_img)
            same = item_col[:, None] == prev_col[None, :]
            # an axis the border cuts for the item or the hand says nothing either way
            ux = ix & okx[0, 0]
            uy = iy & oky[0, 0]
            e_move = np.hypot(np.where(ux, dx - step[0], 0), np.where(uy, dy - step[1], 0))
            e_stay = np.hypot(np.where(ux, dx, 0), np.where(uy, dy, 0))
            known = same & (ux | uy)
            e_move_min = np.where(known, e_move, np.inf).min(axis=1)
            e_stay_min = np.where(known, e_stay, np.inf).min(axis=1)
            ok = near & (e_move_min <= max(0.35 * moved, 6.0)) & (e_move_min < 0.5 * e_stay_min)
            # a unit still standing where units of its kind rest (a hand passing in front of it
            # hides part of it, so its box seems to move) is not held
            ok &= ~_inside_same(items, item_col, *self._rest, 0.8)
            better = ok & (e_move_min < best_err)
            held_by[better] = h
            best_err[better] = e_move_min[better]
        return held_by, moving

    def _remember_hands(
        self, hands: F32, ids: I64, prev_hands: F32, prev_ids: I64, now: int
    ) -> F32:
        """This frame's hand boxes plus the last boxes of hands that vanished mid-shelf within
        ``hand_memory_s`` (a hand last seen at the bottom edge has left and is forgotten)."""
        memory_ns = self.s.hand_memory_s * 1e9
        unseen = self._unseen_hands
        for hid in ids.tolist():
            unseen.pop(int(hid), None)
        for hid, box in zip(prev_ids.tolist(), prev_hands, strict=True):
            if hid not in ids and box[3] < self.regions.height * 0.95:
                unseen[int(hid)] = (box, now)  # missing since this frame
        for hid in [h for h, (_, gone) in unseen.items() if now - gone > memory_ns]:
            del unseen[hid]
        if not unseen:
            return hands
        ghosts = np.stack([box for box, _ in unseen.values()]).astype(np.float32)
        return np.concatenate([hands, ghosts]) if len(hands) else ghosts

    def _track_hands(self, pts: F32, size: F32) -> I64:
        """Ids for this frame's hands: greedy nearest match to the last frame's hands (closest
        pairs first), a new id for a hand nothing matches. Deterministic."""
        ids = np.zeros(len(pts), np.int64)
        prev_pts, prev_ids = self._hand_pts, self._hand_ids
        taken_new: set[int] = set()
        taken_old: set[int] = set()
        if len(pts) and len(prev_pts):
            d = _dist(pts, prev_pts)
            for flat in np.argsort(d, axis=None, kind="stable"):
                i, j = divmod(int(flat), len(prev_pts))
                if i in taken_new or j in taken_old or d[i, j] > 3 * max(float(size[i]), 1.0):
                    continue
                ids[i] = prev_ids[j]
                taken_new.add(i)
                taken_old.add(j)
        for i in range(len(pts)):
            if i not in taken_new:
                ids[i] = self._next_hand_id
                self._next_hand_id += 1
        self._hand_pts, self._hand_ids = pts.copy(), ids.copy()
        return ids

    def update(
        self, frame_index: int, ts_ns: int, dets: Detections | None, image: U8 | None = None
    ) -> list[ShelfInteraction]:
        """One frame of the camera. ``dets`` is None when the frame was not inferred (the
        motion gate saw nothing move and no interaction was open). With the ``image``, each
        interaction also says where the arm came from (see :mod:`edge.arms`)."""
        if dets is None:
            if image is not None and not self.busy:
                self.arms.learn(image)
            return self._timeouts(ts_ns)
        v = self.view(dets, ts_ns)
        if image is not None:
            inside = np.flatnonzero(v.hand_lane >= 0)  # only hands in a lane open visits
            if len(inside):
                roots = np.full(len(v.hand_id), np.nan, np.float32)
                roots[inside] = self.arms.roots(image, v.hand_xy[inside], v.hand_size_px[inside])
                v = replace(v, root_x_px=roots)
            elif not self.busy and not self._had_hands:
                self.arms.learn(image)
            self._had_hands = bool(len(v.hand_id))
        out: list[ShelfInteraction] = []
        for lane in self.lanes:
            i = lane.index
            seen: set[int] = set()
            for h in np.flatnonzero(v.hand_lane == i).tolist():
                seen.add(int(v.hand_id[h]))
                self._hand_seen(lane, frame_index, ts_ns, v, h)
            for visit in lane.visits:
                if visit.hand_id in seen:
                    continue
                visit.missing += 1
                self._track_exit_hold(visit, v)
                if visit.open and visit.missing >= self.s.exit_frames:
                    visit.open = False
            if lane.visits:
                lane.phase = Phase.OPEN if any(x.open for x in lane.visits) else Phase.CLOSING
            if lane.phase is Phase.IDLE:
                if v.clear[i]:
                    event = self._idle_count(lane, frame_index, ts_ns, v.counts[i].copy())
                    if event is not None:
                        out.append(event)
            elif lane.phase is Phase.CLOSING:
                if v.clear[i]:
                    lane.after.append(v.counts[i].copy())
                    lane.after_frames.append(frame_index)
                late = (ts_ns - lane.end_ts_ns) / 1e9 >= self.s.settle_s
                if len(lane.after) >= self.s.count_frames or late:
                    out += self._finish(lane)
        return out

    def _hand_seen(self, lane: _Lane, frame_index: int, ts_ns: int, v: FrameView, h: int) -> None:
        hid = int(v.hand_id[h])
        if lane.phase is Phase.IDLE:
            lane.blind_before = lane.blind
            if lane.stable is not None:
                lane.before = lane.stable
            else:
                lane.before = _median(list(lane.history)) if lane.history else None
            lane.odd, lane.odd_frames = [], []
        lane.phase = Phase.OPEN
        lane.after, lane.after_frames = [], []  # a hand in the lane: counts start over
        visit = next((x for x in lane.visits if x.hand_id == hid), None)
        if visit is None:
            visit = _Visit(hid, frame_index, ts_ns, frame_index, ts_ns)
            lane.visits.append(visit)
        elif not visit.open or visit.missing:
            # the hand came back: the same interaction; what it brings now is what it may leave
            # (it may have been to another lane meanwhile)
            visit.open = True
            visit.entry_held, visit.later_held = [], []
        if v.hand_moving[h]:
            self._note_held(visit, v.held[h].copy())
        visit.missing = 0
        visit.end_frame, visit.end_ts_ns = frame_index, ts_ns
        visit.hand_x_px = float(v.hand_x_px[h])
        visit.out_x_px = None
        visit.hand_xy = (float(v.hand_xy[h, 0]), float(v.hand_xy[h, 1]))
        visit.hand_size_px = float(v.hand_size_px[h])
        if h < len(v.root_x_px) and np.isfinite(v.root_x_px[h]):
            visit.root_x_px.append(float(v.root_x_px[h]))

    def _note_held(self, visit: _Visit, held: I64, leaving: bool = False) -> None:
        if not leaving and not visit.later_held and len(visit.entry_held) < self.s.hold_frames:
            visit.entry_held.append(held)
        else:  # a frame is evidence of the entry or of the exit, never of both
            visit.later_held = [*visit.later_held[-(self.s.hold_frames - 1) :], held]

    def _track_exit_hold(self, visit: _Visit, v: FrameView) -> None:
        """Right after leaving, the hand is still near where it left the lane (perhaps over
        another lane already): what it holds then is carried out."""
        if visit.missing > self.s.exit_frames + 1 or not len(v.held):
            return
        same = np.flatnonzero(v.hand_id == visit.hand_id)
        if len(same):
            h = int(same[0])
        else:
            d = np.hypot(v.hand_xy[:, 0] - visit.hand_xy[0], v.hand_xy[:, 1] - visit.hand_xy[1])
            h = int(d.argmin())
            if d[h] > 2.5 * max(visit.hand_size_px, 1.0):
                return
        visit.hand_xy = (float(v.hand_xy[h, 0]), float(v.hand_xy[h, 1]))
        visit.out_x_px = visit.hand_xy[0]
        if v.hand_moving[h]:
            self._note_held(visit, v.held[h].copy(), leaving=True)

    def _exit_across(self, lane_index: int, visit: _Visit) -> float:
        if visit.out_x_px is None:
            return self.regions.across(lane_index, visit.hand_x_px)
        return self.regions.across(lane_index, visit.out_x_px, reach=self.s.exit_reach_lanes)

    def _arms_apart_px(self, lane_index: int) -> float:
        """How far apart (pixels, at the bottom edge) two arm roots in this lane must be to
        belong to different shoppers."""
        x0, x1 = self.regions.x_spans[lane_index]
        return self.s.arm_apart_lanes * max(x1 - x0, 1.0)

    def _other_arms(
        self, lane_index: int, carrier: _Visit, visits: list[_Visit], min_take_ns: float
    ) -> list[_Visit]:
        """The longest-staying hand of each arm, other than the carrier's, that stayed long
        enough to grasp, on arms whose roots are clearly apart from the carrier's (longest
        first)."""
        if not carrier.root_x_px:
            return []
        apart = self._arms_apart_px(lane_index)
        arms: list[tuple[float, _Visit]] = [(float(np.median(carrier.root_x_px)), carrier)]
        out: list[_Visit] = []
        for x in sorted(visits, key=lambda v: (v.start_ts_ns - v.end_ts_ns, v.hand_id)):
            if x is carrier or not x.root_x_px or x.end_ts_ns - x.start_ts_ns < min_take_ns:
                continue
            root = float(np.median(x.root_x_px))
            if all(abs(root - r) > apart for r, _ in arms):
                arms.append((root, x))
                out.append(x)
        return out

    def _split_by_arm(
        self, lane_index: int, visits: list[_Visit], counted: I64, min_take_ns: float
    ) -> list[tuple[_Visit, I64]]:
        """Who changed a count that no hand was seen carrying.

        The hand that stayed longest, unless the hands that stayed long enough to grasp came
        on arms from clearly different places (two shoppers at one lane, at once) and the
        count of one SKU moved one way by at least a unit for each of those arms: then each
        arm's longest hand gets an equal share (the remainder to the arms that stayed
        longest). Hands on one arm (the detector often sees a forearm as several) count once.
        """

        def dwell(x: _Visit) -> tuple[int, int]:
            return (x.end_ts_ns - x.start_ts_ns, -x.hand_id)

        longest = max(visits, key=dwell)
        skus = np.flatnonzero(counted)
        units = int(abs(counted[skus[0]])) if len(skus) == 1 else 0
        grasping = sorted(
            (
                (float(np.median(x.root_x_px)), x)
                for x in visits
                if x.root_x_px and x.end_ts_ns - x.start_ts_ns >= min_take_ns
            ),
            key=lambda t: t[0],
        )
        if units < 2 or len(grasping) < 2:
            return [(longest, counted)]
        apart = self._arms_apart_px(lane_index)
        arms: list[list[_Visit]] = [[grasping[0][1]]]
        for (prev, _), (root, x) in itertools.pairwise(grasping):
            if root - prev > apart:
                arms.append([])
            arms[-1].append(x)
        if len(arms) < 2 or len(arms) > units:
            return [(longest, counted)]
        reps = sorted((max(a, key=dwell) for a in arms), key=dwell, reverse=True)
        sign = int(np.sign(counted[skus[0]]))
        out = []
        for k, x in enumerate(reps):
            share = np.zeros_like(counted)
            share[skus[0]] = sign * (units // len(reps) + (1 if k < units % len(reps) else 0))
            out.append((x, share))
        return out

    def _root_across(self, lane_index: int, visit: _Visit) -> float | None:
        """Where the visit's arm came from, across the lane (lane widths from its centre)."""
        if not visit.root_x_px:
            return None
        x = float(np.median(visit.root_x_px))
        return self.regions.across(lane_index, x, reach=self.s.root_reach_lanes)

    def _timeouts(self, ts_ns: int) -> list[ShelfInteraction]:
        out = []
        for lane in self.lanes:
            if lane.phase is Phase.CLOSING and (ts_ns - lane.end_ts_ns) / 1e9 >= self.s.settle_s:
                out += self._finish(lane)
        return out

    def flush(self) -> list[ShelfInteraction]:
        """End of the stream: finish every interaction with what is known."""
        out = []
        for lane in self.lanes:
            if lane.phase is not Phase.IDLE:
                out += self._finish(lane)
        return out

    # ------------------------------------------------------------ decisions

    def _idle_count(
        self, lane: _Lane, frame_index: int, ts_ns: int, counts: I64
    ) -> ShelfInteraction | None:
        lane.history.append(counts)
        if lane.stable is None:
            if len(lane.history) >= self.s.count_frames:
                lane.stable = _median(list(lane.history))
                lane.stable_ts_ns, lane.stable_frame = ts_ns, frame_index
                lane.before_frames = [frame_index]
            return None
        if np.array_equal(counts, lane.stable):
            lane.odd, lane.odd_frames = [], []
            lane.stable_ts_ns, lane.stable_frame = ts_ns, frame_index
            lane.before_frames = [frame_index]
            lane.blind = False
            return None
        if not lane.odd:
            lane.odd_ts_ns = ts_ns
        lane.odd.append(counts)
        lane.odd_frames.append(frame_index)
        if len(lane.odd) < self.s.confirm_frames:
            return None
        new = _median(lane.odd)
        old = lane.stable
        event = None
        if not np.array_equal(new, old) and lane.blind:
            # items moved while the camera could not see: report it, less sure and without
            # a hand position (the lane's front centre stands in)
            event = self._event(
                lane,
                new - old,
                0.5,
                start_frame=lane.odd_frames[0],
                start_ts_ns=lane.stable_ts_ns,
                end_ts_ns=lane.odd_ts_ns,
                across=0.0,
                evidence=(lane.stable_frame, *lane.odd_frames[: self.s.confirm_frames]),
            )
        elif not np.array_equal(new, old):
            self.rebaselines += 1  # seen all along, no hand: the detector's view drifted
        lane.stable = new
        lane.stable_ts_ns, lane.stable_frame = ts_ns, frame_index
        lane.odd, lane.odd_frames = [], []
        lane.blind = False
        return event

    def _event(
        self,
        lane: _Lane,
        delta: I64,
        conf: float,
        *,
        start_frame: int,
        start_ts_ns: int,
        end_ts_ns: int,
        across: float,
        evidence: Sequence[int],
        suffix: str = "",
        hand_id: int | None = None,
        root_across: float | None = None,
    ) -> ShelfInteraction:
        deltas = tuple(
            SkuDelta(sku=self.sku_names[j], delta=int(delta[j]), confidence=conf)
            for j in np.flatnonzero(delta)
        )
        exit_xy = root_xy = None
        if self.floor_xy is not None:
            exit_xy = self.floor_xy(lane.lane_id, across)
            if root_across is not None:
                root_xy = self.floor_xy(lane.lane_id, root_across)
        self.emitted += 1
        return ShelfInteraction(
            source_id=self.source_id,
            event_ts_ns=end_ts_ns,
            interaction_id=f"{self.camera_id}:{lane.lane_id}:f{start_frame:06d}{suffix}",
            camera_id=self.camera_id,
            lane_id=lane.lane_id,
            start_ts_ns=start_ts_ns,
            end_ts_ns=end_ts_ns,
            deltas=deltas,
            exit_xy_m=exit_xy,
            arm_root_xy_m=root_xy,
            hand_track_id=hand_id,
            confidence=conf,
            evidence_frames=tuple(sorted(set(evidence))),
        )

    def _finish(self, lane: _Lane) -> list[ShelfInteraction]:
        n = len(self.sku_classes)
        zero = np.zeros(n, np.int64)
        after = _median(lane.after) if lane.after else None
        counted = after - lane.before if lane.before is not None and after is not None else None
        visits = sorted(lane.visits, key=lambda x: (x.start_frame, x.hand_id))
        # what each hand left on the shelf: what it brought minus what it took away (with no
        # later evidence, it took away what it brought)
        min_take_ns = self.s.min_take_s * 1e9
        by_hand = [
            _max_rows(x.entry_held, zero) - _max_rows(x.later_held, _max_rows(x.entry_held, zero))
            if x.end_ts_ns - x.start_ts_ns >= min_take_ns
            else zero
            for x in visits
        ]
        if counted is not None and not (counted > 0).any():
            # A unit a hand brought in and left is on the shelf: a clear count taken before
            # and after that shows no unit more is the better witness (what seemed held on
            # entering was a unit of the lane the hand passed over). A take can hide from the
            # count (the unit behind moves up into view); a put cannot. (When the count shows
            # a unit more of another SKU, say a look-alike, the hand's SKU stands.)
            by_hand = [np.where(d > 0, 0, d) for d in by_hand]
        total = np.sum(by_hand, axis=0) if by_hand else zero
        deltas: list[tuple[_Visit, I64, float]] = []
        if total.any() or any(d.any() for d in by_hand):
            # the hands are the better witnesses of what moved (a unit taken from the front
            # row can leave the visible count unchanged when the one behind it comes into
            # view); the count tells the quantity when units in one hand hide each other
            carriers = [x for x, e in zip(visits, by_hand, strict=True) if e.any()]
            for x, d in zip(visits, by_hand, strict=True):
                if not d.any():
                    continue
                conf = 0.8
                if counted is not None:
                    conf = 0.97 if np.array_equal(counted, total) else 0.85
                    if len(carriers) == 1:
                        same = (np.sign(counted) == np.sign(d)) & (d != 0)
                        more = np.where(same & (np.abs(counted) > np.abs(d)), counted - d, 0)
                        others = self._other_arms(lane.index, x, visits, min_take_ns)
                        if more.any() and others:
                            # the count moved more than the hand was seen carrying, and
                            # another shopper's arm stayed in the lane long enough to take:
                            # the rest is that arm's (one hand with several units comes on
                            # one arm)
                            for k, y in enumerate(others):
                                share = np.sign(more) * (
                                    np.abs(more) // len(others) + (np.abs(more) % len(others) > k)
                                )
                                if share.any():
                                    deltas.append((y, share.astype(np.int64), 0.6))
                        else:
                            d = d + more
                deltas.append((x, d, conf))
        elif counted is not None and counted.any() and visits:
            for x, d in self._split_by_arm(lane.index, visits, counted, min_take_ns):
                deltas.append((x, d, 0.6))
        out: list[ShelfInteraction] = []
        if lane.blind_before and counted is not None and visits:
            # the lane was not seen between going blind and the first hand: what the count
            # says beyond what the hands did changed unseen
            unseen = counted - np.sum([d for _, d, _ in deltas], axis=0) if deltas else counted
            if unseen.any():
                first = visits[0]
                out.append(
                    self._event(
                        lane,
                        unseen,
                        0.5,
                        start_frame=first.start_frame,
                        start_ts_ns=lane.stable_ts_ns,
                        end_ts_ns=first.start_ts_ns,
                        across=0.0,
                        evidence=(lane.stable_frame, first.start_frame),
                        suffix=".unseen",
                    )
                )
        starts: dict[int, int] = {}
        for x, d, conf in deltas:
            k = starts.get(x.start_frame, 0)
            starts[x.start_frame] = k + 1
            evidence = (
                *lane.before_frames[-1:],
                x.start_frame,
                x.end_frame,
                *lane.after_frames[: self.s.count_frames],
            )
            out.append(
                self._event(
                    lane,
                    d,
                    conf,
                    start_frame=x.start_frame,
                    start_ts_ns=x.start_ts_ns,
                    end_ts_ns=x.end_ts_ns,
                    across=self._exit_across(lane.index, x),
                    evidence=evidence,
                    suffix=f".{k}" if k else "",
                    hand_id=x.hand_id,
                    root_across=self._root_across(lane.index, x),
                )
            )
        if not out:
            self.touches += len(visits) or 1
        net = np.sum([d for _, d, _ in deltas], axis=0) if deltas else zero
        lane.blind_before = False
        # the after count is the new truth of the lane
        lane.history.clear()
        for c in lane.after[-self.s.count_frames :]:
            lane.history.append(c)
        if after is not None:
            lane.stable = after
            lane.stable_ts_ns, lane.stable_frame = lane.end_ts_ns, lane.after_frames[-1]
        elif lane.stable is not None:
            lane.stable = np.maximum(lane.stable + net, 0)
        lane.before_frames = lane.after_frames[-1:]
        lane.odd, lane.odd_frames = [], []
        lane.blind = False
        lane.phase = Phase.IDLE
        lane.before = None
        lane.after, lane.after_frames = [], []
        lane.visits = []
        return out


def _max_rows(rows: list[I64], zero: I64) -> I64:
    if not rows:
        return zero
    out: I64 = np.max(np.stack(rows), axis=0)
    return out


def _dist(a: npt.NDArray[np.floating[Any]], b: npt.NDArray[np.floating[Any]]) -> F32:
    """``[A, B]`` distances between points."""
    d = a[:, None, :] - b[None, :, :]
    out: F32 = np.hypot(d[..., 0], d[..., 1]).astype(np.float32)
    return out


def _edge_shift(
    cur: F32, prev: F32, width: int, height: int
) -> tuple[F32, F32, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """``[C, P]`` shift of each current box against each previous one along x and y, averaged
    over the edges the image border cuts in neither frame; ``okx``/``oky`` say whether any such
    edge exists."""
    lo = np.array([1.0, 1.0, width - 2.0, height - 2.0], np.float32)
    free_cur = np.stack(
        [cur[:, 0] > lo[0], cur[:, 1] > lo[1], cur[:, 2] < lo[2], cur[:, 3] < lo[3]], axis=1
    )
    free_prev = np.stack(
        [prev[:, 0] > lo[0], prev[:, 1] > lo[1], prev[:, 2] < lo[2], prev[:, 3] < lo[3]], axis=1
    )
    free = free_cur[:, None, :] & free_prev[None, :, :]
    diff = cur[:, None, :] - prev[None, :, :]
    wx = free[..., [0, 2]].astype(np.float32)
    wy = free[..., [1, 3]].astype(np.float32)
    nx, ny = wx.sum(-1), wy.sum(-1)
    dx = (diff[..., [0, 2]] * wx).sum(-1) / np.maximum(nx, 1)
    dy = (diff[..., [1, 3]] * wy).sum(-1) / np.maximum(ny, 1)
    return dx.astype(np.float32), dy.astype(np.float32), nx > 0, ny > 0


def _inside_same(
    boxes: F32, cols: I64, ref: F32, ref_cols: I64, share: float
) -> npt.NDArray[np.bool_]:
    """Which boxes lie, by at least ``share`` of their area, inside a reference box of the
    same class."""
    if not len(boxes) or not len(ref):
        return np.zeros(len(boxes), np.bool_)
    x1 = np.maximum(boxes[:, None, 0], ref[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], ref[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], ref[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], ref[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
    same = cols[:, None] == ref_cols[None, :]
    out: npt.NDArray[np.bool_] = ((inter / area[:, None] >= share) & same).any(axis=1)
    return out


def _box_gap(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``[A, B]`` distance between boxes (0 where they touch or overlap)."""
    dx = np.maximum(0, np.maximum(b[None, :, 0] - a[:, None, 2], a[:, None, 0] - b[None, :, 2]))
    dy = np.maximum(0, np.maximum(b[None, :, 1] - a[:, None, 3], a[:, None, 1] - b[None, :, 3]))
    out: npt.NDArray[np.float32] = np.hypot(dx, dy).astype(np.float32)
    return out


def _median(rows: list[I64]) -> I64:
    stack = np.stack(rows)
    out: I64 = np.floor(np.median(stack, axis=0) + 0.5).astype(np.int64)
    return out
