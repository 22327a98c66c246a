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
  person covers the lane. A hand that comes back before that reopens the same interaction.
* with ``count_frames`` clear frames (or after ``settle_s``), the "after" count is their median;
  after minus before, per SKU, are the deltas. What the hand held when it entered and when it
  left (items whose centre lies in the hand's box) corroborates the counts, and stands in for
  them when the lane never became clear. An interaction whose deltas are all zero (a touch) is
  counted, not emitted.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

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
class _Lane:
    index: int
    lane_id: str
    history: collections.deque[I64]
    phase: Phase = Phase.IDLE
    start_frame: int = 0
    start_ts_ns: int = 0
    end_frame: int = 0
    end_ts_ns: int = 0
    before: I64 | None = None
    after: list[I64] = field(default_factory=list)
    after_frames: list[int] = field(default_factory=list)
    before_frames: list[int] = field(default_factory=list)
    missing: int = 0
    hand_x_px: float = 0.0
    carried_in: I64 | None = None
    carried_out: I64 | None = None
    # what the hand held in frames where that can be told (it moved since the last frame):
    # the first ones in the lane, and the latest ones after those (in the lane or leaving it)
    entry_held: list[I64] = field(default_factory=list)
    later_held: list[I64] = field(default_factory=list)
    hand_xy: tuple[float, float] = (0.0, 0.0)
    hand_size_px: float = 0.0
    # the lane's agreed count, and when it was last seen
    stable: I64 | None = None
    stable_ts_ns: int = 0
    stable_frame: int = 0
    odd: list[I64] = field(default_factory=list)  # clear counts that disagree with it
    odd_frames: list[int] = field(default_factory=list)
    odd_ts_ns: int = 0
    blind: bool = False  # the camera saw nothing for a while since the count was agreed


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
    held: I64  # [H, S] items each hand holds


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
        self.emitted = 0
        self.rebaselines = 0
        # item boxes, their SKU columns and hand boxes of the last inferred frame
        no_boxes = np.zeros((0, 4), np.float32)
        self._prev: tuple[F32, I64, F32] = (no_boxes, np.zeros(0, np.int64), no_boxes)

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

    def view(self, dets: Detections) -> FrameView:
        r = self.regions
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

        occluders = [dets.xyxy[cls == self.person_class]] if self.person_class >= 0 else []
        if len(hands):
            w = hands[:, 2] - hands[:, 0]
            corridor = hands.copy()
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
            better = ok & (e_move_min < best_err)
            held_by[better] = h
            best_err[better] = e_move_min[better]
        return held_by, moving

    def update(
        self, frame_index: int, ts_ns: int, dets: Detections | None
    ) -> list[ShelfInteraction]:
        """One frame of the camera. ``dets`` is None when the frame was not inferred (the
        motion gate saw nothing move and no interaction was open)."""
        if dets is None:
            return self._timeouts(ts_ns)
        v = self.view(dets)
        out: list[ShelfInteraction] = []
        for lane in self.lanes:
            i = lane.index
            in_lane = np.flatnonzero(v.hand_lane == i)
            if len(in_lane):
                h = int(in_lane[0])
                self._hand_seen(lane, frame_index, ts_ns, v, h)
            elif lane.phase is Phase.OPEN:
                lane.missing += 1
                self._track_exit_hold(lane, v)
                if lane.missing >= self.s.exit_frames:
                    lane.phase = Phase.CLOSING
            elif lane.phase is Phase.CLOSING:
                lane.missing += 1
                self._track_exit_hold(lane, v)
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
                    event = self._finish(lane)
                    if event is not None:
                        out.append(event)
        return out

    def _hand_seen(self, lane: _Lane, frame_index: int, ts_ns: int, v: FrameView, h: int) -> None:
        held = v.held[h].copy()
        if lane.phase is Phase.IDLE:
            lane.phase = Phase.OPEN
            lane.start_frame, lane.start_ts_ns = frame_index, ts_ns
            if lane.stable is not None:
                lane.before = lane.stable
            else:
                lane.before = _median(list(lane.history)) if lane.history else None
            lane.odd, lane.odd_frames = [], []
            lane.after, lane.after_frames = [], []
            lane.entry_held, lane.later_held = [], []
        elif lane.phase is Phase.CLOSING or lane.missing:
            # the hand came back: the same interaction; what it brings now is what it may leave
            # (it may have been to another lane meanwhile)
            lane.phase = Phase.OPEN
            lane.after, lane.after_frames = [], []
            lane.entry_held, lane.later_held = [], []
        if v.hand_moving[h]:
            self._note_held(lane, held)
        lane.missing = 0
        lane.end_frame, lane.end_ts_ns = frame_index, ts_ns
        lane.hand_x_px = float(v.hand_x_px[h])
        lane.hand_xy = (float(v.hand_xy[h, 0]), float(v.hand_xy[h, 1]))
        lane.hand_size_px = float(v.hand_size_px[h])

    def _note_held(self, lane: _Lane, held: I64, leaving: bool = False) -> None:
        if not leaving and not lane.later_held and len(lane.entry_held) < self.s.hold_frames:
            lane.entry_held.append(held)
        else:  # a frame is evidence of the entry or of the exit, never of both
            lane.later_held = [*lane.later_held[-(self.s.hold_frames - 1) :], held]

    def _track_exit_hold(self, lane: _Lane, v: FrameView) -> None:
        """Right after leaving, the hand is still near where it left the lane (perhaps over
        another lane already): what it holds then is carried out."""
        if lane.missing > self.s.exit_frames + 1 or not len(v.held):
            return
        d = np.hypot(v.hand_xy[:, 0] - lane.hand_xy[0], v.hand_xy[:, 1] - lane.hand_xy[1])
        h = int(d.argmin())
        if d[h] <= 2.5 * max(lane.hand_size_px, 1.0):
            lane.hand_xy = (float(v.hand_xy[h, 0]), float(v.hand_xy[h, 1]))
            if v.hand_moving[h]:
                self._note_held(lane, v.held[h].copy(), leaving=True)

    def _timeouts(self, ts_ns: int) -> list[ShelfInteraction]:
        out = []
        for lane in self.lanes:
            if lane.phase is Phase.CLOSING and (ts_ns - lane.end_ts_ns) / 1e9 >= self.s.settle_s:
                event = self._finish(lane)
                if event is not None:
                    out.append(event)
        return out

    def flush(self) -> list[ShelfInteraction]:
        """End of the stream: finish every interaction with what is known."""
        out = []
        for lane in self.lanes:
            if lane.phase is not Phase.IDLE:
                event = self._finish(lane)
                if event is not None:
                    out.append(event)
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
    ) -> ShelfInteraction:
        deltas = tuple(
            SkuDelta(sku=self.sku_names[j], delta=int(delta[j]), confidence=conf)
            for j in np.flatnonzero(delta)
        )
        exit_xy = None
        if self.floor_xy is not None:
            exit_xy = self.floor_xy(lane.lane_id, across)
        self.emitted += 1
        return ShelfInteraction(
            source_id=self.source_id,
            event_ts_ns=end_ts_ns,
            interaction_id=f"{self.camera_id}:{lane.lane_id}:f{start_frame:06d}",
            camera_id=self.camera_id,
            lane_id=lane.lane_id,
            start_ts_ns=start_ts_ns,
            end_ts_ns=end_ts_ns,
            deltas=deltas,
            exit_xy_m=exit_xy,
            confidence=conf,
            evidence_frames=tuple(sorted(set(evidence))),
        )

    def _finish(self, lane: _Lane) -> ShelfInteraction | None:
        n = len(self.sku_classes)
        zero = np.zeros(n, np.int64)
        carried_in = _max_rows(lane.entry_held, zero)
        # what it held at the end; with no later evidence, what it brought
        carried_out = _max_rows(lane.later_held, carried_in)
        lane.carried_in, lane.carried_out = carried_in, carried_out
        by_hand = carried_in - carried_out  # what the hand left on the shelf
        after = _median(lane.after) if lane.after else None
        counted = after - lane.before if lane.before is not None and after is not None else None
        if by_hand.any():
            # the hand is the better witness of what moved (a unit taken from the front row
            # can leave the visible count unchanged when the one behind it comes into view);
            # the count tells the quantity when units in a hand hide each other
            delta = by_hand
            conf = 0.8
            if counted is not None:
                same = (np.sign(counted) == np.sign(by_hand)) & (by_hand != 0)
                delta = np.where(same & (np.abs(counted) > np.abs(by_hand)), counted, by_hand)
                conf = 0.97 if np.array_equal(counted, by_hand) else 0.85
        elif counted is not None and counted.any():
            delta, conf = counted, 0.6
        else:
            delta, conf = zero, 0.9
        evidence = (
            *lane.before_frames[-1:],
            lane.start_frame,
            lane.end_frame,
            *lane.after_frames[: self.s.count_frames],
        )
        event: ShelfInteraction | None = None
        if delta.any():
            event = self._event(
                lane,
                delta,
                conf,
                start_frame=lane.start_frame,
                start_ts_ns=lane.start_ts_ns,
                end_ts_ns=lane.end_ts_ns,
                across=self.regions.across(lane.index, lane.hand_x_px),
                evidence=evidence,
            )
        else:
            self.touches += 1
        # the after count is the new truth of the lane
        lane.history.clear()
        for c in lane.after[-self.s.count_frames :]:
            lane.history.append(c)
        if after is not None:
            lane.stable = after
            lane.stable_ts_ns, lane.stable_frame = lane.end_ts_ns, lane.after_frames[-1]
        elif lane.stable is not None:
            lane.stable = np.maximum(lane.stable + delta, 0)
        lane.before_frames = lane.after_frames[-1:]
        lane.odd, lane.odd_frames = [], []
        lane.blind = False
        lane.phase = Phase.IDLE
        lane.before = None
        lane.after, lane.after_frames = [], []
        lane.carried_in = lane.carried_out = None
        lane.entry_held, lane.later_held = [], []
        lane.missing = 0
        return event


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
