"""Overhead tracks on the floor: a short history per track, looked up by event time."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from walkout.messages import FloorTrack

TrackKey = tuple[str, int]  # (camera_id, track_id): track ids are per camera
_TAIL = 8  # first stride of the search from the end (see bisect_left_tail)


def bisect_left_tail(a: list[int], x: int) -> int:
    """``bisect.bisect_left(a, x)``, galloping from the end of ``a`` first.

    Lookups are nearly always about the last few samples of a long history: starting there
    touches a handful of recent entries instead of a path through the whole list.
    """
    hi = len(a)
    step = _TAIL
    while hi > step:
        lo = hi - step
        if a[lo - 1] < x:  # everything before lo is smaller: the answer lies in [lo, hi]
            return bisect.bisect_left(a, x, lo, hi)
        hi = lo - 1  # a[lo - 1] >= x: the answer is at most lo - 1
        step *= 2
    return bisect.bisect_left(a, x, 0, hi)


def bisect_right_tail(a: list[int], x: int) -> int:
    """``bisect.bisect_right(a, x)``, galloping from the end of ``a`` first."""
    hi = len(a)
    step = _TAIL
    while hi > step:
        lo = hi - step
        if a[lo - 1] <= x:  # everything before lo is at most x: the answer lies in [lo, hi]
            return bisect.bisect_right(a, x, lo, hi)
        hi = lo - 1  # a[lo - 1] > x: the answer is at most lo - 1
        step *= 2
    return bisect.bisect_right(a, x, 0, hi)


@dataclass(slots=True)
class Track:
    """One track's samples in time order; a track always holds at least one sample.

    A sample's position is the :class:`~walkout.messages.FloorTrack` it came in (its
    ``x_m``, ``y_m``): kept as received, so recording a sample allocates nothing, and the
    history (minutes of 15 fps frames) holds no objects the garbage collector has to scan.
    """

    key: TrackKey
    first_ts_ns: int
    ts_ns: list[int] = field(default_factory=list)
    pos: list[FloorTrack] = field(default_factory=list)

    @property
    def last_ts_ns(self) -> int:
        return self.ts_ns[-1]

    @property
    def last_xy_m(self) -> tuple[float, float]:
        p = self.pos[-1]
        return (p.x_m, p.y_m)

    def add(self, ts_ns: int, p: FloorTrack) -> None:
        if not self.ts_ns or ts_ns > self.ts_ns[-1]:
            self.ts_ns.append(ts_ns)
            self.pos.append(p)
            return
        i = bisect_left_tail(self.ts_ns, ts_ns)  # a late sample: keep time order
        if i < len(self.ts_ns) and self.ts_ns[i] == ts_ns:
            self.pos[i] = p
            return
        self.ts_ns.insert(i, ts_ns)
        self.pos.insert(i, p)

    def trim(self, before_ts_ns: int) -> None:
        i = bisect.bisect_left(self.ts_ns, before_ts_ns)
        if 0 < i < len(self.ts_ns):
            del self.ts_ns[:i]
            del self.pos[:i]

    def at(self, ts_ns: int, max_gap_ns: int) -> tuple[float, float] | None:
        """Position nearest in time to ``ts_ns``, if a sample lies within ``max_gap_ns``."""
        if not self.ts_ns:
            return None
        i = bisect_left_tail(self.ts_ns, ts_ns)
        best: tuple[int, FloorTrack] | None = None
        for j in (i - 1, i):
            if 0 <= j < len(self.ts_ns):
                gap = abs(self.ts_ns[j] - ts_ns)
                if gap <= max_gap_ns and (best is None or gap < best[0]):
                    best = (gap, self.pos[j])
        return (best[1].x_m, best[1].y_m) if best else None

    def min_distance(
        self, point: tuple[float, float], start_ns: int, end_ns: int, max_gap_ns: int
    ) -> float | None:
        """Closest approach to ``point`` over [start, end] (or the nearest sample to it)."""
        lo = bisect.bisect_left(self.ts_ns, start_ns)
        hi = bisect.bisect_right(self.ts_ns, end_ns)
        px, py = point
        if hi > lo:
            return min(math.hypot(p.x_m - px, p.y_m - py) for p in self.pos[lo:hi])
        near = self.at(start_ns, max_gap_ns) or self.at(end_ns, max_gap_ns)
        return math.hypot(near[0] - px, near[1] - py) if near else None


class Tracks:
    """Every overhead track seen recently, keyed by (camera, track id)."""

    def __init__(self, history_ns: int):
        self.history_ns = history_ns
        self.by_key: dict[TrackKey, Track] = {}
        # The same tracks per camera, by track id: a frame's lookups need no key tuples.
        # Read it (the core's per-frame lookup does), change it only through update/expire.
        self.cameras: dict[str, dict[int, Track]] = {}

    def on_camera(self, camera_id: str) -> Mapping[int, Track]:
        """The camera's tracks by track id (a live view: read it, change it via update)."""
        known = self.cameras.get(camera_id)
        if known is None:
            known = self.cameras[camera_id] = {}
        return known

    def update(self, key: TrackKey, ts_ns: int, p: FloorTrack) -> bool:
        """Record a sample; True when the track is new."""
        track = self.by_key.get(key)
        if track is None:
            self.by_key[key] = track = Track(key, ts_ns)
            self.cameras.setdefault(key[0], {})[key[1]] = track
            track.add(ts_ns, p)
            return True
        track.add(ts_ns, p)
        return False

    def recent(self, ts_ns: int, window_ns: int) -> list[Track]:
        """Tracks with a sample in [ts - window, ts + window], in a stable order."""
        out = []
        for key in sorted(self.by_key):
            t = self.by_key[key]
            if t.at(ts_ns, window_ns) is not None:
                out.append(t)
        return out

    def expire(self, now_ns: int) -> list[TrackKey]:
        """Forget tracks not seen for the history window; returns their keys."""
        gone: list[TrackKey] = []
        cutoff = now_ns - self.history_ns
        for key in list(self.by_key):
            t = self.by_key[key]
            if t.last_ts_ns < cutoff:
                del self.by_key[key]
                del self.cameras[key[0]][key[1]]
                gone.append(key)
            else:
                t.trim(cutoff)
        return gone


def distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])
