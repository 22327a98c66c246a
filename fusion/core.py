"""The deterministic fusion core: shopper sessions, association, evidence fusion, carts.

No I/O and no wall clock: the same messages in the same order give the same carts and the same
outputs, which is what makes recovery by replaying the log exact. :meth:`FusionCore.apply`
takes messages in event-time order (late ones are accepted too, see below);
:meth:`FusionCore.advance` is told the watermark and decides what can be decided.

Rules (each one a documented choice):

* Sessions: an entry GateEvent with an account opens a session (one per account visit; a
  second scan of an account already in the store joins that session: a group). It binds the
  ``group_size`` unbound tracks nearest the gate at that moment; members not seen yet are bound
  when a new track appears near the gate shortly after. A new track that appears near where a
  session's track was lost (or where it is seen by another camera: a hand-over) is re-linked.
* Exit: the exit GateEvent's account, else the bound track nearest the exit gate, names the
  session. A group closes when all members passed, or ``group_exit_grace`` after the first.
  The cart closes when the watermark passes exit + allowed lateness + the pairing window.
* Association: a shelf event goes to the open session whose track comes closest during the
  event; with the hand's exit point (``exit_xy_m``) the distance is to the arm's line (lane
  front through the exit point, onwards): that is what tells crossing arms apart. Candidates
  must be within the reach radius of the lane front; probability is a softmax of the negative
  distances; two candidates within the ambiguity margin flag the line for review.
* Put-backs: a put removes the units from the putter's cart. Units the putter does not hold
  were handed over: they leave the cart of the session that picked that SKU most recently
  (a transfer), so nobody pays for an item that went back on the shelf.
* Late messages (older than the watermark) are still applied while their session is open;
  a shelf event whose shopper's cart is already closed is dropped and counted.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fusion.carts import Cart, CartChange
from fusion.evidence import Decision, Unit, WeightEvidence, decide, decide_many, weight_z
from fusion.ids import checkout_id, session_id, weight_change_id
from fusion.params import FusionParams
from fusion.tracks import (
    Track,
    TrackKey,
    Tracks,
    bisect_left_tail,
    bisect_right_tail,
    distance,
)
from walkout.messages import (
    AnyMessage,
    CartClosed,
    FloorTrack,
    GateEvent,
    SessionOpened,
    ShelfInteraction,
    SkuDelta,
    TrackUpdate,
    WeightChange,
)

Point = tuple[float, float]
EXPIRE_EVERY_NS = 1_000_000_000  # forget old track samples once per second of event time
# A put-back of a SKU nobody holds becomes one somebody holds if it fits the plate this well.
HELD_PUT_MAX_Z = 2.5
NEVER = 2**63 - 1
OutMessage = SessionOpened | CartClosed


NO_OUTPUTS: tuple[()] = ()


@dataclass(frozen=True, slots=True)
class Output:
    """A message for billing with its idempotence key (one key is never sent twice)."""

    key: str
    message: OutMessage


@dataclass(slots=True)
class Session:
    session_id: str
    account_id: str
    gate_id: str
    entry_ts_ns: int
    entry_xy_m: Point
    group_size: int
    cart: Cart
    # track -> [bound from, bound until or None]
    bindings: dict[TrackKey, list[int | None]] = field(default_factory=dict)
    wanted: int = 0  # members not yet bound to a track
    exits: int = 0
    first_exit_ts_ns: int | None = None
    exit_ts_ns: int | None = None
    exited: bool = False
    closed: bool = False
    checkout_id: str | None = None
    # per camera: what the shopper (each member of a group) looks like there (FusionCore._look)
    looks: dict[str, list[_Look]] = field(default_factory=dict)

    def live_tracks(self) -> list[TrackKey]:
        return [k for k, (_, until) in sorted(self.bindings.items()) if until is None]


@dataclass(slots=True)
class _Look:
    """A running mean of look signatures."""

    total: list[float]
    n: int = 1

    def add(self, look: tuple[float, ...]) -> None:
        if len(look) != len(self.total):
            return
        for i, v in enumerate(look):
            self.total[i] += v
        self.n += 1

    def distance(self, look: tuple[float, ...]) -> float:
        """Hellinger distance between ``look`` and the mean (both sum to 1)."""
        if len(look) != len(self.total):
            return 1.0
        n = self.n
        bc = sum(math.sqrt(max(a, 0.0) * max(b, 0.0) / n) for a, b in zip(look, self.total))
        return math.sqrt(max(0.0, 1.0 - bc))


@dataclass(slots=True)
class _Pending:
    """A shelf event waiting for its partner evidence on the same lane."""

    evidence_id: str
    lane_id: str
    start_ts_ns: int
    end_ts_ns: int
    interaction: ShelfInteraction | None = None
    weight: WeightChange | None = None
    # When its group may be decided: a pairing window after it ended and after it was
    # reported (an edge reports a plate step once its new level has held, and the steps of
    # one movement together: a partner reported with it must not find it decided).
    due_ts_ns: int = 0


@dataclass(frozen=True, slots=True)
class Association:
    session_id: str
    probability: float
    ambiguous: bool
    outside_reach: bool = False
    rivals: tuple[str, ...] = ()  # other sessions within the ambiguity margin
    rivals_probability: float = 0.0  # their share of the probability
    # Other sessions whose body came within reach of the lane (rivals or not): when several
    # units move, any of them may have taken some.
    within_reach: tuple[str, ...] = ()


@dataclass
class CoreStats:
    duplicates: int = 0
    late_dropped: int = 0
    review_flags: int = 0
    unassigned: int = 0
    unbound_tracks: int = 0
    relinked_tracks: int = 0
    anonymous_entries: int = 0
    unmatched_exits: int = 0
    handoffs: int = 0
    puts_unmatched: int = 0
    decisions: int = 0
    vision_unconfirmed: int = 0  # shelf interactions on a plated lane with no weight change
    guessed_exits: int = 0  # exits given to the shopper last seen nearest the gate
    look_swaps: int = 0  # bound tracks moved to another shopper because of how they look


class FusionCore:
    def __init__(
        self,
        *,
        store_id: str,
        catalog: Mapping[str, Unit],
        lane_front_m: Mapping[str, Point],
        lane_stock: Mapping[str, Mapping[str, int]],
        gate_xy_m: Mapping[str, Point],
        params: FusionParams,
        plated_lanes: frozenset[str] = frozenset(),
        lane_plates: Mapping[str, str] | None = None,
        lane_aisle: Mapping[str, Point] | None = None,
    ):
        self.store_id = store_id
        self.catalog = dict(catalog)
        self.lane_front = dict(lane_front_m)
        # Per lane: unit vector from its shelf front out into the aisle (where shoppers stand).
        self.lane_aisle = dict(lane_aisle or {})
        self.stock: dict[str, dict[str, int]] = {k: dict(v) for k, v in lane_stock.items()}
        self.gate_xy = dict(gate_xy_m)
        self.p = params
        # Lanes on a weight plate: there the plate decides whether, which way and how many
        # units moved; vision names the SKU among what weight allows and the hand that did it.
        self.plated = frozenset(plated_lanes)
        self.lane_plate = dict(lane_plates or {})
        self._down: dict[str, frozenset[str]] = {}  # per edge node: its devices without data
        self._plates_down: frozenset[str] = frozenset()
        self.tracks = Tracks(params.track_history_ns)
        self._cameras = self.tracks.cameras  # per camera: its tracks by track id
        self.sessions: dict[str, Session] = {}
        self._open: dict[str, Session] = {}  # sessions not closed yet
        self._recently_closed: deque[Session] = deque()  # closed within the track history
        self.bound: dict[TrackKey, str] = {}  # live bindings only
        # Tracks that found no session when they appeared: (key, first time, first position).
        self._orphans: list[tuple[TrackKey, int, Point]] = []
        # Per bound track: the other session its recent looks match (id, looks in a row, time
        # of the first), and when it last looked like its own shopper.
        self._doubts: dict[TrackKey, tuple[str, int, int]] = {}
        self._last_like: dict[TrackKey, int] = {}
        self._track_look: dict[TrackKey, _Look] = {}  # the member look a track is learning
        self._relinked_from: dict[TrackKey, TrackKey] = {}  # track -> the one it took over from
        self.pending: dict[str, list[_Pending]] = {}
        self.seen_evidence: set[str] = set()
        self.seen_gates: set[tuple[str, str, int]] = set()
        self.stats = CoreStats()
        self.changed: set[str] = set()  # sessions whose cart or state changed since last take
        self.watermark_ns = 0
        self.latest_ns = 0  # latest event time applied
        self._expired_at = 0
        self.next_due_ns = 0  # advance() has nothing to do before this watermark
        # Caches of what only changes when a session opens, exits or closes.
        self._sessions_due: int | None = None  # earliest exit-related time; None: recompute
        self._open_by_id: list[Session] | None = None  # open sessions by id; None: rebuild
        self._caps: dict[str, Any] = {
            "vision_only_cap": params.vision_only_cap,
            "weight_only_cap": params.weight_only_cap,
            "disagreement_factor": params.disagreement_factor,
        }
        self.decided_ts: list[int] = []  # event times of shelf events decided since last take

    @classmethod
    def from_store(cls, store: Any, params: FusionParams | None = None) -> FusionCore:
        cfg = store.cfg
        gates = {
            g.id: ((g.line_m[0][0] + g.line_m[1][0]) / 2, (g.line_m[0][1] + g.line_m[1][1]) / 2)
            for g in cfg.gates
        }
        return cls(
            store_id=cfg.store.id,
            catalog={p.sku: Unit(p.unit_weight_g, p.weight_sd_g) for p in cfg.products},
            lane_front_m={lane.id: store.lane_front_xy_m(lane.id) for lane in cfg.lanes},
            lane_stock={lane.id: {lane.sku: lane.initial_count} for lane in cfg.lanes},
            gate_xy_m=gates,
            params=params or FusionParams.from_store(store),
            plated_lanes=frozenset(lane.id for lane in cfg.lanes if lane.plate),
            lane_plates={lane.id: lane.plate for lane in cfg.lanes if lane.plate},
            lane_aisle={
                lane.id: _aisle(store.gondolas[lane.gondola].front_m) for lane in cfg.lanes
            },
        )

    # ------------------------------------------------------------ input

    def apply(self, msg: AnyMessage) -> Sequence[Output]:
        if msg.event_ts_ns > self.latest_ns:
            self.latest_ns = msg.event_ts_ns
        if isinstance(msg, TrackUpdate):
            self._tracks(msg)
            return NO_OUTPUTS
        if isinstance(msg, GateEvent):
            return self._gate(msg)
        elif isinstance(msg, ShelfInteraction):
            if self.p.evidence == "weight":
                return NO_OUTPUTS
            self._shelf(
                _Pending(msg.interaction_id, msg.lane_id, msg.start_ts_ns, msg.end_ts_ns, msg),
                msg.event_ts_ns,
            )
        elif isinstance(msg, WeightChange):
            if self.p.evidence == "vision":
                return NO_OUTPUTS
            wid = weight_change_id(msg.plate_id, msg.start_ts_ns)
            self._shelf(
                _Pending(wid, msg.lane_id, msg.start_ts_ns, msg.end_ts_ns, weight=msg),
                msg.event_ts_ns,
            )
        return NO_OUTPUTS

    def advance(self, watermark_ns: int) -> list[Output]:
        """Decide shelf events whose pairing window passed; close carts whose time came.

        Everything that falls due is done in event-time order (decisions before closes at the
        same instant), so how far one call moves the watermark does not change the result.
        """
        if watermark_ns > self.watermark_ns:
            self.watermark_ns = watermark_ns
        wm, p = self.watermark_ns, self.p
        if wm < self.next_due_ns:
            return []
        # (due at, decisions before closes, tag, lane, item): sorted on the first three.
        due: list[tuple[int, int, str, str, list[_Pending] | Session]] = []
        if self.pending:
            for lane in sorted(self.pending):
                for grp in self._due_groups(lane, wm):
                    at = _last_due(grp)
                    due.append((at, 0, f"{lane}|{grp[0].evidence_id}", lane, grp))
        if wm >= self._exits_due():
            for s in self._open.values():
                if s.first_exit_ts_ns is None:
                    continue
                if not s.exited and wm >= s.first_exit_ts_ns + p.group_exit_grace_ns:
                    at = s.first_exit_ts_ns + p.group_exit_grace_ns
                    due.append((at, 1, s.session_id, "", s))
                elif s.exited and s.exit_ts_ns is not None:
                    at = s.exit_ts_ns + p.allowed_lateness_ns + p.pair_window_ns
                    if wm >= at:
                        due.append((at, 1, s.session_id, "", s))
        if len(due) > 1:
            due.sort(key=lambda d: d[:3])
        out: list[Output] = []
        for _, _, _, lane, item in due:
            if isinstance(item, Session):
                if not item.exited:  # a group member never passed the exit: close anyway
                    self._end_bindings(item, item.exit_ts_ns or 0)
                    item.exited = True
                    self._sessions_due = None
                out.append(self._close(item))
            else:
                self._decide_group(lane, item)
        horizon = min(wm, self.latest_ns)  # an end-of-stream watermark must not forget tracks
        if horizon > p.track_history_ns and horizon >= self._expired_at + EXPIRE_EVERY_NS:
            self._expired_at = horizon
            for key in self.tracks.expire(horizon):
                self.bound.pop(key, None)
                self._doubts.pop(key, None)
                self._last_like.pop(key, None)
                self._track_look.pop(key, None)
                self._relinked_from.pop(key, None)
        self.next_due_ns = self._earliest_due()
        return out

    def _earliest_due(self) -> int:
        """A lower bound of the next watermark at which :meth:`advance` has work."""
        earliest = min(self._exits_due(), self._expired_at + EXPIRE_EVERY_NS)
        if self.pending:
            for items in self.pending.values():
                t = _first_due(items)
                if t < earliest:
                    earliest = t
        return earliest

    def _exits_due(self) -> int:
        """The earliest time an open session's exit (or its group's grace) falls due; cached
        until a session exits or closes."""
        if self._sessions_due is None:
            p = self.p
            earliest = NEVER
            for s in self._open.values():
                if s.exited and s.exit_ts_ns is not None:
                    t = s.exit_ts_ns + p.allowed_lateness_ns + p.pair_window_ns
                elif s.first_exit_ts_ns is not None:
                    t = s.first_exit_ts_ns + p.group_exit_grace_ns
                else:
                    continue
                if t < earliest:
                    earliest = t
            self._sessions_due = earliest
        return self._sessions_due

    def _due_by(self, ts_ns: int) -> None:
        if ts_ns < self.next_due_ns:
            self.next_due_ns = ts_ns

    def devices_down(self, source_id: str, down: tuple[str, ...]) -> None:
        """What an edge node's latest heartbeat says gives no readings (plates, cameras)."""
        now = frozenset(down)
        if self._down.get(source_id, frozenset()) == now:
            return
        self._down[source_id] = now
        self._plates_down = frozenset().union(*self._down.values())

    def _weighed(self, lane: str) -> bool:
        """The lane's plate is installed and reporting: its word decides what moved."""
        return lane in self.plated and self.lane_plate.get(lane) not in self._plates_down

    def take_decided(self) -> list[int]:
        decided, self.decided_ts = self.decided_ts, []
        return decided

    def take_changed(self) -> set[str]:
        changed, self.changed = self.changed, set()
        return changed

    def open_sessions(self) -> int:
        return len(self._open)

    # ------------------------------------------------------------ tracks and sessions

    def _tracks(self, msg: TrackUpdate) -> None:
        # The hottest path (every overhead frame): a known track seen at a newer time gets its
        # sample appended in place; anything else goes through Tracks.update.
        ts, cam = msg.event_ts_ns, msg.camera_id
        known: Mapping[int, Track] | None = self._cameras.get(cam)
        if known is None:
            known = self.tracks.on_camera(cam)
        for t in msg.tracks:
            track = known.get(t.track_id)
            if track is not None:
                times = track.ts_ns
                if ts > times[-1]:
                    times.append(ts)
                    track.pos.append(t)
                else:
                    track.add(ts, t)
                if t.look:
                    self._look((cam, t.track_id), ts, t.look)
                continue
            key = (cam, t.track_id)
            if self.tracks.update(key, ts, t) and key not in self.bound:
                self._bind_new_track(key, ts, (t.x_m, t.y_m))
            if t.look:
                self._look(key, ts, t.look)
        if self._orphans:
            self._relink_orphans(ts)

    def _look(self, key: TrackKey, ts: int, look: tuple[float, ...]) -> None:
        """A bound track's look: learn what the shopper looks like on this camera, or notice
        that the track now follows another shopper (the tracker swapped two people passing
        close). Each member of a session gets a look per camera, learned from the first
        looks of the first track bound to them there; a track is compared with the nearest."""
        sid = self.bound.get(key)
        if sid is None:
            return
        p, cam = self.p, key[0]
        s = self.sessions[sid]
        models = s.looks.get(cam)
        if models is None:
            models = s.looks[cam] = []
        mine = self._track_look.get(key)
        if mine is not None and mine.n < p.look_model_looks:
            mine.add(look)
            self._last_like[key] = ts
            return
        if mine is None and len(models) < s.group_size:  # a member not seen here yet
            self._track_look[key] = mine = _Look(list(look))
            models.append(mine)
            self._last_like[key] = ts
            return
        need = p.look_model_looks
        d_own, nearest = min(
            ((m.distance(look), i) for i, m in enumerate(models) if m.n >= need),
            default=(2.0, -1),
        )
        if nearest < 0:
            return  # still learning
        rival: tuple[float, Session] | None = None
        for o in self._open_sessions_by_id():
            if o is s or o.exited:
                continue
            for m in o.looks.get(cam, ()):
                if m.n < need:
                    continue
                d = m.distance(look)
                if rival is None or d < rival[0]:
                    rival = (d, o)
        swapped = rival is not None and d_own - rival[0] > p.look_margin and rival[0] < p.look_near
        if not swapped and d_own > p.look_near:  # like nobody known here: ask other cameras
            rival = self._rival_elsewhere(s, cam, look)
            swapped = rival is not None
        if swapped and rival is not None:
            other = rival[1]
            prev = self._doubts.get(key)
            if prev is not None and prev[0] == other.session_id:
                doubt = (other.session_id, prev[1] + 1, prev[2])
            else:
                doubt = (other.session_id, 1, ts)
            self._doubts[key] = doubt
            if doubt[1] >= p.look_votes:
                self._swap(key, s, other, self._last_like.get(key), doubt[2])
                return
            mutual = self._mutual_doubt(other, cam, s.session_id)
            if mutual is not None:  # two tracks each look like the other's shopper
                theirs = self._doubts[mutual]
                self._swap(key, s, other, self._last_like.get(key), doubt[2])
                self._swap(mutual, other, s, self._last_like.get(mutual), theirs[2])
                self._swap_sources(key, mutual, other, s)
            return
        self._doubts.pop(key, None)
        if d_own <= p.look_learn:
            models[nearest].add(look)
            self._last_like[key] = ts

    def _rival_elsewhere(
        self, s: Session, cam: str, look: tuple[float, ...]
    ) -> tuple[float, Session] | None:
        """A track that no longer looks like its shopper, nor like another shopper known on its
        camera: compare it with its shopper and the others on each camera that knows both
        (light and angle there are the same for both). The other shopper whose look there is
        within ``look_near`` of it and ``look_margin`` nearer than its own shopper's, if any."""
        need = self.p.look_model_looks
        best: tuple[float, float, Session] | None = None
        for c2, mine in s.looks.items():
            if c2 == cam:
                continue
            d_mine = min((m.distance(look) for m in mine if m.n >= need), default=None)
            if d_mine is None:
                continue
            for o in self._open_sessions_by_id():
                if o is s or o.exited:
                    continue
                d_o = min(
                    (m.distance(look) for m in o.looks.get(c2, ()) if m.n >= need), default=None
                )
                if d_o is None:
                    continue
                gap = d_mine - d_o
                if best is None or gap > best[0]:
                    best = (gap, d_o, o)
        if best is None or best[0] <= self.p.look_margin or best[1] >= self.p.look_near:
            return None
        return (best[1], best[2])

    def _mutual_doubt(self, s: Session, cam: str, sid: str) -> TrackKey | None:
        """A live track of ``s`` on ``cam`` whose recent looks are those of session ``sid``."""
        for key, (_, until) in s.bindings.items():
            if until is None and key[0] == cam:
                d = self._doubts.get(key)
                if d is not None and d[0] == sid:
                    return key
        return None

    def _swap_sources(self, a: TrackKey, b: TrackKey, to_a: Session, to_b: Session) -> None:
        """Tracks ``a`` and ``b`` were just found to follow each other's shopper. When each
        was re-linked from a track of the other camera (where the shoppers were last seen), and
        those two tracks came close, the tracker of that camera swapped them: they follow
        each other's shopper too, from where they came closest (``a`` now belongs to
        ``to_a``: the track ``a`` was re-linked from goes to ``to_a`` as well)."""
        pa, pb = self._relinked_from.get(a), self._relinked_from.get(b)
        if pa is None or pb is None or pa[0] != pb[0] or pa == pb:
            return
        if self.bound.get(pa) != to_b.session_id or self.bound.get(pb) != to_a.session_id:
            return
        ta, tb = self.tracks.by_key.get(pa), self.tracks.by_key.get(pb)
        if ta is None or tb is None:
            return
        closest = _closest_approach(ta, tb, self.p.lost_after_ns)
        if closest is None or closest[0] > self.p.look_swap_within_m:
            return
        self._move(pa, to_b, to_a, closest[1])
        self._move(pb, to_a, to_b, closest[1])

    def _swap(
        self, key: TrackKey, s: Session, other: Session, after: int | None, before: int
    ) -> None:
        """Move a live binding from ``s`` to ``other``: from the moment, between the track's
        last look like ``s`` and its first look like ``other``, when it came closest to one of
        ``other``'s tracks on the camera (where the tracker swapped them), else the middle. A
        track that never looked like ``s`` (``after`` None) was never theirs: all of it moves."""
        self._doubts.pop(key, None)
        if key in other.bindings or key not in s.bindings:  # one span per track and session
            return
        track = self.tracks.by_key.get(key)
        if after is None:
            since = s.bindings[key][0]
            assert since is not None
            self._move(key, s, other, since)
            self._last_like[key] = before
            return
        at = (after + before) // 2
        if track is not None:
            best: tuple[float, int] | None = None
            for okey, (_, until) in other.bindings.items():
                theirs = self.tracks.by_key.get(okey)
                if okey[0] != key[0] or theirs is None:
                    continue
                end = before if until is None else min(before, until)
                near = _closest_approach(track, theirs, self.p.lost_after_ns, after, end)
                if near is not None and (best is None or near < best):
                    best = near
            if best is not None:
                at = best[1]
        self._move(key, s, other, at)
        self._last_like[key] = before

    def _move(self, key: TrackKey, s: Session, other: Session, at: int) -> None:
        """The live binding of ``key`` goes from ``s`` to ``other`` from ``at`` on."""
        span = s.bindings.get(key)
        if span is None or key in other.bindings:  # one span per track and session
            return
        since = span[0]
        assert since is not None
        if at <= since:
            del s.bindings[key]
            at = since
        else:
            span[1] = at
        other.bindings[key] = [at, None]
        self.bound[key] = other.session_id
        self._doubts.pop(key, None)
        self._track_look.pop(key, None)
        self.stats.look_swaps += 1
        self.changed.update((s.session_id, other.session_id))

    def _bind(self, s: Session, key: TrackKey, ts: int) -> None:
        s.bindings[key] = [ts, None]
        self.bound[key] = s.session_id
        self.changed.add(s.session_id)

    def _bind_new_track(self, key: TrackKey, ts: int, xy: Point) -> None:
        p = self.p
        waiting = [
            s
            for s in self._open_sorted()
            if s.wanted > 0
            and not s.exited
            and 0 <= ts - s.entry_ts_ns <= p.late_bind_window_ns
            and distance(xy, s.entry_xy_m) <= p.gate_radius_m
        ]
        if waiting:
            s = waiting[0]
            s.wanted -= 1
            self._bind(s, key, ts)
            return

        def lost_lately(track: Track, until: int | None) -> bool:
            gap = ts - track.last_ts_ns
            lost = gap >= p.lost_after_ns or track.key[0] != key[0]
            return lost and 0 <= gap <= p.relink_window_ns

        sid = self._relink_target(key, xy, ts, lost_lately)
        if sid is None:
            self.stats.unbound_tracks += 1
            # The tracker may have started this track while the shopper's old one was still
            # fresh (an id switch: the old one just stops): look again once it is lost.
            self._orphans.append((key, ts, xy))
            return
        self.stats.relinked_tracks += 1
        self._bind(self.sessions[sid], key, ts)

    def _relink_target(
        self,
        key: TrackKey,
        xy: Point,
        ts: int,
        fits: Callable[[Track, int | None], bool],
    ) -> str | None:
        """The open session with a bound track that ``fits`` (given the track and when its
        binding ended) and was last seen nearest ``xy``, within the relink radius. A session
        whose members are all live on ``key``'s camera at ``ts`` is not a candidate."""
        best: tuple[float, str, TrackKey] | None = None
        for s in self._open_sorted():
            if s.exited or self._seen_on(s, key[0], ts) >= s.group_size:
                continue  # everyone of that session is in view on this camera: not theirs
            for other, (_, until) in s.bindings.items():
                track = self.tracks.by_key.get(other)
                if track is None or other == key or not fits(track, until):
                    continue
                d = distance(track.last_xy_m, xy)
                if d <= self.p.relink_radius_m and (best is None or (d, s.session_id) < best[:2]):
                    best = (d, s.session_id, other)
        if best is None:
            return None
        self._relinked_from[key] = best[2]
        return best[1]

    def _relink_orphans(self, now: int) -> None:
        """Bind an unbound track to the session whose bound track stopped as it started.

        A track that appeared next to a session's live track was left unbound; once that
        track has been lost for ``lost_after`` (it ended within ``lost_after`` of the new one's
        start) and the new one started within the relink radius of where it was, the new one
        is the same shopper under a new id, bound from its first sample on.
        """
        p = self.p
        keep: list[tuple[TrackKey, int, Point]] = []
        for key, first, xy in self._orphans:
            if key in self.bound or now - first > p.relink_window_ns:
                continue

            def stopped_as_it_started(track: Track, until: int | None, first: int = first) -> bool:
                last = track.last_ts_ns
                return (
                    until is None
                    and now - last >= p.lost_after_ns
                    and abs(last - first) <= p.lost_after_ns
                )

            sid = self._relink_target(key, xy, now, stopped_as_it_started)
            if sid is None:
                keep.append((key, first, xy))
                continue
            self.stats.relinked_tracks += 1
            self._bind(self.sessions[sid], key, first)
        self._orphans = keep

    def _seen_on(self, s: Session, camera: str, ts: int) -> int:
        """How many of the session's bound tracks on this camera are live at ``ts``."""
        n = 0
        for key, (_, until) in s.bindings.items():
            if until is None and key[0] == camera:
                track = self.tracks.by_key.get(key)
                if track is not None and ts - track.last_ts_ns < self.p.lost_after_ns:
                    n += 1
        return n

    def _open_sessions_by_id(self) -> list[Session]:
        """Open sessions by session id (cached until one opens or closes)."""
        if self._open_by_id is None:
            self._open_by_id = sorted(self._open.values(), key=_session_key)
        return self._open_by_id

    def _open_sorted(self) -> list[Session]:
        return sorted(self._open.values(), key=lambda s: (s.entry_ts_ns, s.session_id))

    def _near_gate(self, point: Point, ts: int, *, bound: bool) -> list[tuple[float, Track]]:
        out = []
        for track in self.tracks.recent(ts, self.p.gate_window_ns):
            if (track.key in self.bound) != bound:
                continue
            xy = track.at(ts, self.p.gate_window_ns)
            if xy is not None and (d := distance(xy, point)) <= self.p.gate_radius_m:
                out.append((d, track))
        out.sort(key=lambda t: (t[0], t[1].key))
        return out

    def _gate(self, g: GateEvent) -> list[Output]:
        dedupe = (g.gate_id, g.kind, g.event_ts_ns)
        if dedupe in self.seen_gates:
            self.stats.duplicates += 1
            return []
        self.seen_gates.add(dedupe)
        point = g.xy_m or self.gate_xy.get(g.gate_id) or (0.0, 0.0)
        if g.kind == "entry":
            return self._entry(g, point)
        self._exit(g, point)
        return []

    def _entry(self, g: GateEvent, point: Point) -> list[Output]:
        if not g.account_id:
            self.stats.anonymous_entries += 1
            return []
        ts = g.event_ts_ns
        joined = next(
            (s for s in self._open_sorted() if s.account_id == g.account_id and not s.exited),
            None,
        )
        near = self._near_gate(point, ts, bound=False)
        if joined is not None:  # another scan of an account already inside: same group
            joined.group_size += g.group_size
            take = near[: g.group_size]
            joined.wanted += g.group_size - len(take)
            for _, track in take:
                self._bind(joined, track.key, ts)
            return []
        sid = session_id(g.gate_id, g.account_id, ts)
        s = Session(sid, g.account_id, g.gate_id, ts, point, g.group_size, Cart(sid))
        self.sessions[sid] = self._open[sid] = s
        self._open_by_id = None
        take = near[: g.group_size]
        s.wanted = g.group_size - len(take)
        for _, track in take:
            self._bind(s, track.key, ts)
        self.changed.add(sid)
        opened = SessionOpened(
            source_id="fusion",
            event_ts_ns=ts,
            session_id=sid,
            account_id=g.account_id,
            store_id=self.store_id,
            group_size=g.group_size,
        )
        return [Output(f"open:{sid}", opened)]

    def _exit(self, g: GateEvent, point: Point) -> None:
        ts, p = g.event_ts_ns, self.p
        s: Session | None = None
        leaving: TrackKey | None = None
        if g.account_id:
            s = next(
                (
                    x
                    for x in reversed(self._open_sorted())
                    if x.account_id == g.account_id and not x.exited and x.entry_ts_ns <= ts
                ),
                None,
            )
        for _, track in self._near_gate(point, ts, bound=True):
            owner = self.sessions[self.bound[track.key]]
            if owner.exited:
                continue
            if s is None or owner is s:
                s, leaving = owner, track.key
                break
        if s is None:
            # No scan and no tracked person at the gate (tracking lost, camera dark): when one
            # shopper is inside, nobody else can be leaving on an account; with several, the
            # exit stays unmatched and is counted rather than guessed.
            inside = [x for x in self._open_sorted() if not x.exited and x.entry_ts_ns <= ts]
            s = inside[0] if len(inside) == 1 else self._last_seen_nearest(inside, point, ts)
            if s is None:
                self.stats.unmatched_exits += 1
                return
        s.exits += 1
        s.first_exit_ts_ns = s.first_exit_ts_ns if s.first_exit_ts_ns is not None else ts
        s.exit_ts_ns = ts
        self._due_by(min(ts + p.allowed_lateness_ns + p.pair_window_ns, ts + p.group_exit_grace_ns))
        if leaving is not None:
            s.bindings[leaving][1] = ts
            self.bound.pop(leaving, None)
        if s.exits >= s.group_size:
            self._end_bindings(s, ts)
            s.exited = True
        self._sessions_due = None
        self.changed.add(s.session_id)

    def _last_seen_nearest(self, inside: list[Session], gate: Point, ts: int) -> Session | None:
        """Nobody tracked at the exit and several shoppers inside: the one whose tracks were
        last seen nearest the gate (a track lost on the way out). Only the time the cart
        closes depends on it; what is in each cart does not. Counted as a guess."""
        best: tuple[float, int, str] | None = None
        for s in inside:
            for key in s.bindings:
                track = self.tracks.by_key.get(key)
                if track is None:
                    continue
                i = bisect_right_tail(track.ts_ns, ts) - 1
                if i < 0:
                    continue
                at = track.pos[i]
                cand = (distance((at.x_m, at.y_m), gate), -track.ts_ns[i], s.session_id)
                if best is None or cand < best:
                    best = cand
        if best is None:
            return None
        self.stats.guessed_exits += 1
        return self.sessions[best[2]]

    def _end_bindings(self, s: Session, ts: int) -> None:
        for key, span in s.bindings.items():
            if span[1] is None:
                span[1] = ts
                self.bound.pop(key, None)

    def _close(self, s: Session) -> Output:
        assert s.exit_ts_ns is not None
        s.closed = True
        self._open.pop(s.session_id, None)
        self._sessions_due = None
        self._open_by_id = None
        self._recently_closed.append(s)
        horizon = self.latest_ns - self.p.track_history_ns
        while self._recently_closed and (self._recently_closed[0].exit_ts_ns or 0) < horizon:
            self._recently_closed.popleft()
        s.checkout_id = checkout_id(self.store_id, s.session_id)
        lines = s.cart.lines()
        reasons = s.cart.review_reasons()
        msg = CartClosed(
            source_id="fusion",
            event_ts_ns=s.exit_ts_ns,
            checkout_id=s.checkout_id,
            session_id=s.session_id,
            account_id=s.account_id,
            store_id=self.store_id,
            entry_ts_ns=s.entry_ts_ns,
            exit_ts_ns=s.exit_ts_ns,
            lines=lines,
            review=any(line.review for line in lines) or bool(reasons),
            review_reasons=reasons,
        )
        self.changed.add(s.session_id)
        return Output(f"close:{s.checkout_id}", msg)

    # ------------------------------------------------------------ shelf events

    def _shelf(self, item: _Pending, reported_ts_ns: int) -> None:
        if item.evidence_id in self.seen_evidence:
            self.stats.duplicates += 1
            return
        self.seen_evidence.add(item.evidence_id)
        item.due_ts_ns = max(item.end_ts_ns, reported_ts_ns) + self.p.pair_window_ns
        self.pending.setdefault(item.lane_id, []).append(item)
        self._due_by(item.due_ts_ns)

    def _due_groups(self, lane: str, wm: int) -> list[list[_Pending]]:
        """Take the lane's overlapping event groups whose pairing window has passed."""
        items = self.pending[lane]
        if len(items) == 1:
            if items[0].due_ts_ns <= wm:
                del self.pending[lane]
                return [items]
            return []
        if _first_due(items) > wm:
            return []  # no group can be due: each one is due at or after the earliest
        items = sorted(items, key=lambda x: (x.start_ts_ns, x.evidence_id))
        slack = self.p.pair_slack_ns
        groups: list[list[_Pending]] = []
        end = -1
        for it in items:
            if groups and it.start_ts_ns <= end + slack:
                groups[-1].append(it)
                end = max(end, it.end_ts_ns)
            else:
                groups.append([it])
                end = it.end_ts_ns
        keep: list[_Pending] = []
        due: list[list[_Pending]] = []
        for grp in groups:
            if _last_due(grp) <= wm:
                due.append(grp)
            else:
                keep.extend(grp)
        if keep:
            self.pending[lane] = keep
        else:
            del self.pending[lane]
        return due

    def _decide_group(self, lane: str, grp: list[_Pending]) -> None:
        end = _last_end(grp)
        self.decided_ts.append(end)
        shelf: list[_Pending]
        weights: list[WeightChange]
        if len(grp) == 1:  # the usual case: one event alone on its lane
            x = grp[0]
            shelf = [x] if x.interaction is not None else []
            weights = [x.weight] if x.weight is not None else []
            wc_ids: tuple[str, ...] = (x.evidence_id,) if x.weight is not None else ()
            start = x.start_ts_ns
        else:
            shelf = [x for x in grp if x.interaction is not None]
            weights = [x.weight for x in grp if x.weight is not None]
            wc_ids = tuple(x.evidence_id for x in grp if x.weight is not None)
            start = min(x.start_ts_ns for x in grp)
        front = self.lane_front.get(lane)
        if front is None:
            self.stats.unassigned += 1
            return
        p = self.p
        weighed = p.evidence == "fused" and self._weighed(lane)
        if weighed and not weights:
            # The plate did not move: a touch, or vision saw a hand that took nothing.
            self.stats.vision_unconfirmed += len(shelf)
            return
        weight: WeightEvidence | None = None
        if weights:
            weight = WeightEvidence(
                sum(w.delta_g for w in weights), math.sqrt(sum(w.sigma_g**2 for w in weights))
            )
        caps = self._caps
        if weighed:
            assert weight is not None
            if len(weights) > 1 and self._swap_steps(lane, front, shelf, grp, caps):
                return
            self._weight_first(lane, front, shelf, weights, weight, wc_ids, caps)
            return
        if not shelf:  # weight alone
            assert weight is not None
            assoc = self._associate(front, None, start, end)
            prior = self._prior(lane, assoc, weight.delta_g < 0)
            d = decide(self.catalog, weight=weight, prior_counts=prior, **caps)
            if d is not None:
                self._apply(lane, d, assoc, wc_ids, end)
            return
        if len(shelf) == 1:
            si = shelf[0].interaction
            assert si is not None
            moved = [x for x in si.deltas if x.delta != 0]
            assoc = self._associate(front, self._arm(si, front), si.start_ts_ns, si.end_ts_ns)
            ids = (si.interaction_id, *wc_ids)
            # Several SKUs from one hand with a plate reading: the weight and the lane's
            # contents judge which one moved, rather than taking every noisy count as said.
            if len(moved) <= 1 or weight is not None:
                picking = moved[0].delta < 0 if moved else bool(weight and weight.delta_g < 0)
                prior = self._prior(lane, assoc, picking)
                vision = _scaled(moved, si.confidence)
                d = decide(self.catalog, vision=vision, weight=weight, prior_counts=prior, **caps)
                if d is not None:
                    self._apply(lane, d, assoc, ids, si.end_ts_ns)
                return
        if weight is not None:
            merged = self._one_shopper_visit(lane, front, shelf, weight, wc_ids, caps)
            if merged:
                return
        visions = []
        for x in shelf:
            assert x.interaction is not None
            visions.append(_scaled(x.interaction.deltas, x.interaction.confidence))
        results = decide_many(
            self.catalog, visions, weight, disagreement_factor=p.disagreement_factor
        )
        for x, decisions in zip(shelf, results):
            si = x.interaction
            assert si is not None
            assoc = self._associate(front, self._arm(si, front), si.start_ts_ns, si.end_ts_ns)
            for d in decisions:
                self._apply(lane, d, assoc, (si.interaction_id, *wc_ids), si.end_ts_ns)

    def _weight_first(
        self,
        lane: str,
        front: Point,
        shelf: list[_Pending],
        weights: list[WeightChange],
        weight: WeightEvidence,
        wc_ids: tuple[str, ...],
        caps: dict[str, Any],
    ) -> None:
        """A plated lane: the plate says whether, which way and how many units moved (its step
        detection is far more reliable than counting units in pixels); the lane's contents or
        the shopper's cart, the unit weights and vision's SKU say which SKU; the hands in the
        lane while the plate changed say whose cart. Hands of different shoppers at once share
        the units; when there are fewer units than shoppers the line is flagged for review."""
        if len(weights) == 1:
            w_start, w_end = weights[0].start_ts_ns, weights[0].end_ts_ns
        else:
            w_start = min(w.start_ts_ns for w in weights)
            w_end = max(w.end_ts_ns for w in weights)
        slack = self.p.pair_slack_ns
        hands: list[tuple[int, str, ShelfInteraction, Association | None]] = []
        for x in shelf:
            si = x.interaction
            assert si is not None
            overlap = min(si.end_ts_ns, w_end + slack) - max(si.start_ts_ns, w_start - slack)
            # Whose hand: whoever was there from the plate's step to the hand's leaving (the
            # hand may have been tracked only from late in its visit).
            lo, hi = min(si.start_ts_ns, w_start), max(si.end_ts_ns, w_end)
            arm = self._arm(si, front)
            assoc = self._associate(front, arm, lo, hi)
            if assoc is not None and (lo < si.start_ts_ns or hi > si.end_ts_ns):
                # ... but whoever stood there while the hand was seen is a rival too
                at_hand = self._associate(front, arm, si.start_ts_ns, si.end_ts_ns)
                if at_hand is not None and at_hand.session_id not in (
                    assoc.session_id,
                    *assoc.rivals,
                ):
                    rivals = (*assoc.rivals, at_hand.session_id)
                    assoc = replace(assoc, ambiguous=True, rivals=rivals)
            hands.append((overlap, si.interaction_id, si, assoc))
        if len(hands) > 1:
            hands.sort(key=lambda h: (-h[0], h[1]))
        during = [h for h in hands if h[0] >= 0] or hands[:1]
        if len(during) > 1:
            during = self._separate_hands(during)
        shares: dict[str | None, list[ShelfInteraction]] = {}
        assocs: dict[str | None, Association | None] = {}
        for _, _, si, assoc in during:
            sid = assoc.session_id if assoc else None
            shares.setdefault(sid, []).append(si)
            assocs.setdefault(sid, assoc)
        if not during:
            assoc = self._associate(front, None, w_start, w_end)
            sid = assoc.session_id if assoc else None
            shares[sid], assocs[sid] = [], assoc
        first = next(iter(assocs.values()))
        picking = weight.delta_g < 0
        prior = self._prior(lane, first, picking)
        if not picking and not any(c > 0 for c in prior.values()):
            prior = self.stock.get(lane, {})  # nobody known to hold it: what the lane sells
        # Vision's SKU, in the direction and count the plate measured for it.
        seen: dict[str, float] = {}
        for _, _, si, _ in during:
            for dl in si.deltas:
                if dl.delta and dl.sku in self.catalog:
                    seen[dl.sku] = seen.get(dl.sku, 0.0) + dl.confidence * si.confidence
        hint: list[SkuDelta] = []
        if seen:
            sku = max(sorted(seen), key=lambda k: seen[k])
            n = max(1, round(abs(weight.delta_g) / self.catalog[sku].weight_g))
            hint = [SkuDelta(sku, -n if picking else n, min(0.98, seen[sku]))]
        d = decide(self.catalog, vision=hint, weight=weight, prior_counts=prior, **caps)
        if d is not None and d.kind == "put":
            d = self._held_put(d, weight, caps)
        ids = tuple(h[1] for h in during) + wc_ids if during else wc_ids
        if d is None:
            self.stats.unassigned += 1
            return
        owners = list(assocs)
        if len(owners) > 1 and d.units < len(owners):
            # More shoppers' hands than units: the likeliest gets it, flagged, never guessed.
            a = assocs[owners[0]]
            amb = Association(a.session_id, a.probability, True) if a else None
            self._apply(lane, d, amb, ids, w_end)
            return
        each = d.units // len(owners)
        # Equal shares among shoppers who are each other's only rivals: whichever hand was
        # whose, every cart gets the same line, so that doubt is no reason for review.
        swappable = len(owners) > 1 and d.units % len(owners) == 0 and None not in assocs
        for k, sid in enumerate(owners):
            n = d.units - each * (len(owners) - 1) if k == 0 else each
            mine = tuple(si.interaction_id for si in shares[sid]) + wc_ids if shares[sid] else ids
            a = assocs[sid]
            if swappable and a is not None and a.ambiguous and set(a.rivals) <= assocs.keys():
                a = replace(a, probability=a.probability + a.rivals_probability, ambiguous=False)
            self._apply(lane, d if n == d.units else replace(d, units=n), a, mine, w_end)

    def _swap_steps(
        self,
        lane: str,
        front: Point,
        shelf: list[_Pending],
        grp: list[_Pending],
        caps: dict[str, Any],
    ) -> bool:
        """Plate steps of both signs on a lane: units taken and put back within moments.
        Summed they hide each other, so each step is decided on its own: first those that
        hands were seen in (each hand with the step it overlaps most), in time order; then
        the steps no hand was seen in, put-backs first: each goes to a shopper at the lane
        who holds what it fits, and each take to another shopper at the lane when one is as
        close (one shopper rarely takes a unit and puts one back at once; two shoppers at one
        lane, one returning what the other takes, is likelier). The lines stay flagged when
        the shoppers were too close to tell apart. False (nothing decided) when the steps all
        go one way."""
        steps = sorted(
            ((x.weight, x.evidence_id) for x in grp if x.weight is not None),
            key=lambda w: (w[0].start_ts_ns, w[1]),
        )
        if all(w.delta_g < 0 for w, _ in steps) or all(w.delta_g > 0 for w, _ in steps):
            return False
        slack = self.p.pair_slack_ns
        seen: dict[int, list[_Pending]] = {}
        for x in shelf:
            si = x.interaction
            assert si is not None
            overlaps = [
                min(si.end_ts_ns, w.end_ts_ns + slack) - max(si.start_ts_ns, w.start_ts_ns - slack)
                for w, _ in steps
            ]
            k = max(range(len(steps)), key=lambda i: (overlaps[i], -i))
            seen.setdefault(k, []).append(x)
        for k in sorted(seen):
            w, wc_id = steps[k]
            ev = WeightEvidence(w.delta_g, w.sigma_g)
            self._weight_first(lane, front, seen[k], [w], ev, (wc_id,), caps)
        blind = [st for k, st in enumerate(steps) if k not in seen]
        putters: set[str] = set()
        for w, wc_id in sorted(blind, key=lambda x: x[0].delta_g < 0):
            ev = WeightEvidence(w.delta_g, w.sigma_g)
            assoc = self._associate(front, None, w.start_ts_ns, w.end_ts_ns)
            who = [assoc.session_id, *assoc.rivals] if assoc else []
            picking = w.delta_g < 0
            if picking:
                other = next((sid for sid in who if sid not in putters), None)
                assoc = _retarget(assoc, other, who)
                prior = self.stock.get(lane, {})
            else:
                holder = next(
                    (
                        sid
                        for sid in who
                        if (d := self._decide_put(ev, self.sessions[sid], caps)) is not None
                        and self.sessions[sid].cart.quantity(d.sku) > 0
                    ),
                    None,
                )
                assoc = _retarget(assoc, holder, who)
                if assoc is not None:
                    putters.add(assoc.session_id)
                prior = self._prior(lane, assoc, False) or self.stock.get(lane, {})
            d = decide(self.catalog, weight=ev, prior_counts=prior, **caps)
            if d is not None and d.kind == "put":
                d = self._held_put(d, ev, caps)
            if d is None:
                self.stats.unassigned += 1
                continue
            self._apply(lane, d, assoc, (wc_id,), w.end_ts_ns)
        return True

    def _decide_put(
        self, weight: WeightEvidence, s: Session, caps: dict[str, Any]
    ) -> Decision | None:
        """What a put-back of these grams by this shopper would be, from what they hold."""
        held = {sku: n for sku, n in s.cart.holdings().items() if n > 0}
        if not held:
            return None
        d = decide(self.catalog, weight=weight, prior_counts=held, **caps)
        return d if d is not None and d.kind == "put" else None

    def _held_put(self, d: Decision, weight: WeightEvidence, caps: dict[str, Any]) -> Decision:
        """A put-back of a SKU no shopper inside holds, where a SKU someone holds fits the
        plate as well: that one (vision misread a look-alike; nobody can put back what nobody
        took). What no held SKU fits, or what someone holds, stays as decided."""
        held: dict[str, int] = {}
        for s in self._open.values():
            for sku, n in s.cart.holdings().items():
                if n > 0:
                    held[sku] = held.get(sku, 0) + n
        if held.get(d.sku, 0) > 0 or not held:
            return d
        alt = decide(self.catalog, weight=weight, prior_counts=held, **caps)
        if alt is None or alt.kind != "put":
            return d
        unit = self.catalog[alt.sku]
        if abs(weight_z(weight.delta_g, weight.sigma_g, unit, alt.units)) > HELD_PUT_MAX_Z:
            return d
        return replace(alt, reasons=(*alt.reasons, "vision_sku_held_by_nobody"))

    def _separate_hands(
        self, hands: list[tuple[int, str, ShelfInteraction, Association | None]]
    ) -> list[tuple[int, str, ShelfInteraction, Association | None]]:
        """Hands in one lane at the same time that all point to one shopper, with another
        shopper as close: one shopper rarely reaches into one lane with both hands at once, so
        the less likely hands go to the close rivals (the lines stay flagged as ambiguous
        unless, sharing the units equally, the two are each other's only rivals)."""
        out = list(hands)
        by_sid: dict[str, list[int]] = {}
        for i, (_, _, _, a) in enumerate(out):
            if a is not None:
                by_sid.setdefault(a.session_id, []).append(i)
        owners = set(by_sid)
        for sid, idx in by_sid.items():
            if len(idx) < 2 or self.sessions[sid].group_size > 1:
                continue
            spans = [(out[i][2].start_ts_ns, out[i][2].end_ts_ns) for i in idx]
            if max(a for a, _ in spans) >= min(b for _, b in spans):
                continue  # one after the other: the same shopper's hand coming back
            weakest_first = sorted(idx, key=lambda i: (_probability(out[i][3]), out[i][1]))
            for i in weakest_first[:-1]:
                a = out[i][3]
                assert a is not None
                rival = next((r for r in a.rivals if r not in owners), None)
                if rival is None:
                    continue
                owners.add(rival)
                moved = Association(
                    rival, a.rivals_probability, True, a.outside_reach, (sid,), a.probability
                )
                out[i] = (out[i][0], out[i][1], out[i][2], moved)
        return out

    def _one_shopper_visit(
        self,
        lane: str,
        front: Point,
        shelf: list[_Pending],
        weight: WeightEvidence,
        wc_ids: tuple[str, ...],
        caps: dict[str, Any],
    ) -> bool:
        """One shopper's visit that vision split into several interactions (a hand that left
        and came back, a count that flickered): judge the net change once against the plate.
        False when the interactions belong to different shoppers (decided one by one)."""
        interactions = [x.interaction for x in shelf if x.interaction is not None]
        assocs = [
            self._associate(front, self._arm(si, front), si.start_ts_ns, si.end_ts_ns)
            for si in interactions
        ]
        if len({a.session_id if a else None for a in assocs}) != 1:
            return False
        net: dict[str, int] = {}
        for si in interactions:
            for d in si.deltas:
                net[d.sku] = net.get(d.sku, 0) + d.delta
        conf = min(si.confidence for si in interactions)
        moved = [SkuDelta(sku, n) for sku, n in sorted(net.items()) if n]
        assoc = assocs[0]
        prior = self._prior(lane, assoc, weight.delta_g < 0)
        decision = decide(
            self.catalog, vision=_scaled(moved, conf), weight=weight, prior_counts=prior, **caps
        )
        if decision is not None:
            ids = (*(si.interaction_id for si in interactions), *wc_ids)
            self._apply(lane, decision, assoc, ids, max(si.end_ts_ns for si in interactions))
        return True

    def _prior(self, lane: str, assoc: Association | None, picking: bool) -> dict[str, int]:
        if picking:
            return self.stock.get(lane, {})
        if assoc is None:
            return {}
        return self.sessions[assoc.session_id].cart.holdings()

    def _arm(self, si: ShelfInteraction, front: Point) -> tuple[Point, Point] | None:
        """The line a shopper's body should be near for this hand: from where its arm came
        from straight out into the aisle (then the distance is how far along the shelf the
        body stands from it), else from the lane front through the hand's exit point."""
        aisle = self.lane_aisle.get(si.lane_id)
        if si.arm_root_xy_m is not None and aisle is not None:
            return si.arm_root_xy_m, aisle
        return _arm_metric(front, si.exit_xy_m)

    def _associate(
        self, front: Point, metric: tuple[Point, Point] | None, start: int, end: int
    ) -> Association | None:
        p = self.p
        slack = p.pair_slack_ns
        found: list[tuple[float, float, str]] = []
        # Shoppers still inside, and those whose cart closed after this event started (a late
        # event for them is dropped and counted, not given to someone else).
        recent = self._recently_closed
        late = [s for s in recent if (s.exit_ts_ns or 0) >= start - slack] if recent else None
        if late:
            shoppers = sorted([*self._open.values(), *late], key=_session_key)
        else:
            shoppers = self._open_sessions_by_id()
        by_key = self.tracks.by_key
        max_front, hold = p.reach_radius_m * 2, p.lost_hold_ns
        first, last = start - slack, end + slack
        front_x, front_y = front
        for s in shoppers:
            if s.entry_ts_ns > end:
                continue
            if s.exit_ts_ns is not None and s.exited and s.exit_ts_ns < start:
                continue
            best: tuple[float, float] | None = None
            # From tracks with no sample during the event (lost before it, or held where they
            # were lost): for a shopper alone, used only if no track of theirs saw them during
            # it. Someone seen elsewhere meanwhile is not still standing where a track of theirs
            # was lost (at the edge of a camera's view, walking out of it).
            stale: tuple[float, float] | None = None
            seen_during = False
            for key, (since, until) in s.bindings.items():
                assert since is not None
                if since > last or (until is not None and until < first):
                    continue
                track = by_key.get(key)
                if track is None:
                    continue
                lo = (start if start > since else since) - slack
                hi = (end if not until or end <= until else until) + slack  # min(end, until)
                times = track.ts_ns
                seen = times[-1]
                if seen < lo and seen <= hi and lo - seen <= 1_000_000_000:
                    # Every sample came before the event, the last one within 1 s of it.
                    # _arm_distance() for that one sample, without the call.
                    at = track.pos[-1]
                    x, y = at.x_m, at.y_m
                    to_front = math.hypot(x - front_x, y - front_y)
                    if to_front > max_front:
                        continue
                    if metric is None:
                        d: tuple[float, float] | None = (to_front, to_front)
                    else:
                        (fx, fy), (ux, uy) = metric
                        vx, vy = x - fx, y - fy
                        along = vx * ux + vy * uy
                        d = (abs(vx * uy - vy * ux) if along > 0 else to_front, to_front)
                    if d is not None and (stale is None or d < stale):
                        stale = d
                    continue
                d = _arm_distance(track, metric, front, lo, hi, max_front, hold)
                k = bisect_left_tail(times, lo)
                if k < len(times) and times[k] <= hi:
                    seen_during = True
                    if d is not None and (best is None or d < best):
                        best = d
                elif d is not None and (stale is None or d < stale):
                    stale = d
            alone_seen = seen_during and s.group_size == 1
            if stale is not None and not alone_seen and (best is None or stale < best):
                best = stale
            if best is not None:
                found.append((best[0], best[1], s.session_id))
        if not found:
            # Nobody tracked near the lane (overhead view lost): with exactly one shopper
            # inside at that time nobody else can have taken it; otherwise it stays unassigned.
            inside = [
                s
                for s in shoppers
                if s.entry_ts_ns <= end and (s.exit_ts_ns is None or s.exit_ts_ns >= start)
            ]
            if len(inside) == 1:
                return Association(inside[0].session_id, 0.9, False)
            return None
        if len(found) > 1:
            found.sort()
        radius = p.reach_radius_m
        pool: list[tuple[float, str]] = []
        for d_, reach, sid in found:
            if reach <= radius:
                pool.append((d_, sid))
        outside = not pool
        if outside:
            pool.append((found[0][0], found[0][2]))
        nearest, temperature = pool[0][0], p.association_temperature_m
        weights = []
        for d_, _ in pool:
            weights.append(math.exp(-(d_ - nearest) / temperature))
        prob = weights[0] / sum(weights)
        margin = p.ambiguity_margin_m
        close = [k for k in range(1, len(pool)) if pool[k][0] - nearest < margin]
        rivals = tuple(pool[k][1] for k in close)
        rivals_p = sum(weights[k] for k in close) / sum(weights)
        others = () if outside else tuple(sid for _, sid in pool[1:])
        return Association(pool[0][1], prob, bool(rivals), outside, rivals, rivals_p, others)

    def _apply(
        self,
        lane: str,
        d: Decision,
        assoc: Association | None,
        evidence: tuple[str, ...],
        ts: int,
    ) -> None:
        self.stats.decisions += 1
        stock = self.stock.setdefault(lane, {})
        if d.kind == "pick":
            stock[d.sku] = max(0, stock.get(d.sku, 0) - d.units)
        else:  # a put-back lands in this lane whatever the planogram says
            stock[d.sku] = stock.get(d.sku, 0) + d.units
        if assoc is None:
            self.stats.unassigned += 1
            return
        s = self.sessions[assoc.session_id]
        if s.closed:
            self.stats.late_dropped += 1
            return
        reasons = list(d.reasons)
        if assoc.ambiguous:
            reasons.append("ambiguous_shopper")
        if assoc.outside_reach:
            reasons.append("no_shopper_in_reach")
        # Several units, one shopper's hand seen, another shopper within reach: the units may
        # have been shared (two hands at once that the shelf camera saw as one).
        shared = d.units > 1 and bool(assoc.within_reach) and not assoc.ambiguous
        if shared:
            reasons.append("others_within_reach")
        confidence = d.confidence * assoc.probability * (0.5 if assoc.outside_reach else 1.0)
        review = (
            assoc.ambiguous
            or assoc.outside_reach
            or shared
            or confidence < self.p.review_below_confidence
        )
        if review and not reasons:
            reasons.append("low_confidence")
        if review:
            self.stats.review_flags += 1
        conf = round(confidence, 4)
        if d.kind == "pick":
            s.cart.apply(
                CartChange(d.sku, d.units, conf, evidence, ts, review, tuple(reasons), "pick")
            )
            self.changed.add(s.session_id)
            return
        held = max(0, s.cart.quantity(d.sku))
        own = min(held, d.units)
        if own:
            s.cart.apply(CartChange(d.sku, -own, conf, evidence, ts, review, tuple(reasons), "put"))
            self.changed.add(s.session_id)
        rest = d.units - own
        while rest > 0:
            donor = self._handoff_donor(d.sku, s.session_id)
            if donor is None:
                self.stats.puts_unmatched += rest
                return
            n = min(rest, donor.cart.quantity(d.sku))
            donor.cart.apply(
                CartChange(d.sku, -n, conf, evidence, ts, review, (*reasons, "handoff"), "handoff")
            )
            self.stats.handoffs += n
            self.changed.add(donor.session_id)
            rest -= n

    def _handoff_donor(self, sku: str, putter: str) -> Session | None:
        holders = [
            s for s in self._open.values() if s.session_id != putter and s.cart.quantity(sku) > 0
        ]
        if not holders:
            return None
        return max(holders, key=lambda s: (s.cart.last_pick_ts_ns(sku), s.session_id))


def _closest_approach(
    a: Track, b: Track, max_gap_ns: int, start_ns: int | None = None, end_ns: int | None = None
) -> tuple[float, int] | None:
    """How close two tracks came (metres) and when, over the samples of ``a`` (those in
    [start, end] when given)."""
    lo = 0 if start_ns is None else bisect.bisect_left(a.ts_ns, start_ns)
    hi = len(a.ts_ns) if end_ns is None else bisect.bisect_right(a.ts_ns, end_ns)
    best: tuple[float, int] | None = None
    for t, q in zip(a.ts_ns[lo:hi], a.pos[lo:hi], strict=True):
        xy = b.at(t, max_gap_ns)
        if xy is None:
            continue
        d = math.hypot(q.x_m - xy[0], q.y_m - xy[1])
        if best is None or d < best[0]:
            best = (d, t)
    return best


def _session_key(s: Session) -> str:
    return s.session_id


def _scaled(deltas: tuple[SkuDelta, ...] | list[SkuDelta], confidence: float) -> list[SkuDelta]:
    """Per-SKU confidence times the interaction's own confidence."""
    return [SkuDelta(x.sku, x.delta, x.confidence * confidence) for x in deltas if x.delta != 0]


def _probability(a: Association | None) -> float:
    return a.probability if a is not None else 0.0


def _aisle(front_m: Sequence[Sequence[float]]) -> Point:
    """Unit vector out of a gondola into its aisle. The front runs left to right as a shopper
    facing the shelf sees it, so the aisle is on the right of that direction."""
    (x0, y0), (x1, y1) = front_m[0], front_m[1]
    dx, dy = x1 - x0, y1 - y0
    norm = math.hypot(dx, dy) or 1.0
    return (dy / norm, -dx / norm)


def _arm_metric(front: Point, exit_xy: Point | None) -> tuple[Point, Point] | None:
    """The arm's direction (unit vector from the lane front through the hand's exit point)."""
    if exit_xy is None:
        return None
    dx, dy = exit_xy[0] - front[0], exit_xy[1] - front[1]
    norm = math.hypot(dx, dy)
    if norm < 0.05:
        return None
    return front, (dx / norm, dy / norm)


def _arm_distance(
    track: Track,
    arm: tuple[Point, Point] | None,
    front: Point,
    lo: int,
    hi: int,
    max_front_m: float,
    hold_ns: int = 0,
) -> tuple[float, float] | None:
    """Where a track stood relative to the arm (or to the lane front) between lo and hi.

    Distance to the arm: perpendicular distance to the ray from the lane front along the arm,
    for a body ahead of the lane. Returns (that distance, the body's distance to the front)
    of the track's median sample by that distance (the lower median; a sample beyond
    ``max_front_m`` counts as infinitely far, and None when the median is one of those):
    someone passing behind the arm is on its line for a moment, someone walking up to the
    shelf arrives at the end, and a person box stretched by a reaching arm is off for a frame
    or two. With no sample in [lo, hi], the sample nearest lo or hi within 1 s.
    """
    times, pos = track.ts_ns, track.pos
    n = len(times)
    if n and times[-1] < lo and times[-1] <= hi:
        i = j = n  # the usual question: the track's samples all came before the event
    else:
        i, j = bisect_left_tail(times, lo), bisect_right_tail(times, hi)
    front_x, front_y = front
    if j <= i:  # no sample in [lo, hi]
        # Track.at(lo, 1 s), reusing the bisection above; then Track.at(hi, 1 s).
        near: FloorTrack | None = None
        gap_best = 0
        if i > 0:
            gap = abs(times[i - 1] - lo)
            if gap <= 1_000_000_000:
                near, gap_best = pos[i - 1], gap
        if i < n:
            gap = abs(times[i] - lo)
            if gap <= 1_000_000_000 and (near is None or gap < gap_best):
                near = pos[i]
        if near is not None:
            x, y = near.x_m, near.y_m
        else:
            at_hi = track.at(hi, 1_000_000_000)
            if at_hi is not None:
                x, y = at_hi
            elif 0 < i == n and lo - times[-1] <= hold_ns:
                # Lost before the event and never seen again: people standing at a shelf are
                # the ones a detector loses; take them as still standing where last seen.
                x, y = pos[-1].x_m, pos[-1].y_m
            else:
                return None
        # The loop below for this one sample.
        to_front = math.hypot(x - front_x, y - front_y)
        if to_front > max_front_m:
            return None
        if arm is None:
            return (to_front, to_front)
        (fx, fy), (ux, uy) = arm
        vx, vy = x - fx, y - fy
        along = vx * ux + vy * uy
        return (abs(vx * uy - vy * ux) if along > 0 else to_front, to_front)
    during: list[tuple[float, float]] = []
    for at in pos[i:j]:
        x, y = at.x_m, at.y_m
        to_front = math.hypot(x - front_x, y - front_y)
        if to_front > max_front_m:
            during.append((math.inf, to_front))  # away from the lane: not reaching into it
        elif arm is None:
            during.append((to_front, to_front))
        else:
            (fx, fy), (ux, uy) = arm
            vx, vy = x - fx, y - fy
            along = vx * ux + vy * uy
            during.append((abs(vx * uy - vy * ux) if along > 0 else to_front, to_front))
    if not during:
        return None
    during.sort()
    mid = during[(len(during) - 1) // 2]
    return None if mid[0] == math.inf else mid


def _retarget(assoc: Association | None, sid: str | None, who: list[str]) -> Association | None:
    """The association moved to ``sid``, one of its rivals (the others in ``who`` stay
    rivals; still ambiguous); unchanged when ``sid`` is None or already the likeliest."""
    if assoc is None or sid is None or sid == assoc.session_id:
        return assoc
    rest = tuple(x for x in who if x != sid)
    return Association(sid, assoc.rivals_probability, True, assoc.outside_reach, rest)


def _first_due(items: list[_Pending]) -> int:
    if len(items) == 1:
        return items[0].due_ts_ns
    return min(x.due_ts_ns for x in items)


def _last_due(items: list[_Pending]) -> int:
    if len(items) == 1:
        return items[0].due_ts_ns
    return max(x.due_ts_ns for x in items)


def _last_end(items: list[_Pending]) -> int:
    if len(items) == 1:
        return items[0].end_ts_ns
    return max(x.end_ts_ns for x in items)
