"""Weight plates: step detection between stable periods.

A load cell under a lane reads the tray's weight many times a second. Picking or putting an item
moves the reading from one stable level to another, with a hand's pushes and lifts in between.
:class:`StepDetector` turns the stream of one plate into :class:`~walkout.messages.WeightChange`
events:

* **stable**: the level is the median of the last settling window; it follows slow drift (the
  level is re-taken from every full window that stays within the noise band). The noise is a
  robust estimate (median absolute difference of successive readings over the last
  ``noise_window``), never below ``min_noise_g``.
* a reading outside ``k_sigma`` noise bands of the level for ``confirm_samples`` readings in a
  row starts a **moving** period (a single spike does not);
* the plate is stable again when a whole settling window spans less than ``settle_sigma`` noise
  bands; the step is the new level minus the old one. A step smaller than ``min_step_g`` (a
  touch, a lean) moves the level without an event.
* a settled level must hold for ``hold_s`` (``quick_hold_s`` when the step is a whole number of
  the lane's units, if the unit weight is given) before the step counts; a movement that starts
  before that continues the same step (a hand pressing on the items, then lifting an item,
  makes one step; pressing and letting go makes none).
* a movement that ends where it began, but held a whole number of the lane's units lighter or
  heavier for ``plateau_samples`` readings on the way (within ``plateau_tolerance`` of a unit,
  or for as long as a level it settled at waited to count), moved units both ways: a pick and
  a put-back, or a put-back and a pick (two hands swapping a unit quicker than the plate
  settles in between). Each change between those levels is a step; ``push`` returns them one
  per reading. A hand's press weighs far less than a unit.

``sigma_g`` of an event is the standard error of the difference of the two medians.
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from walkout.config import Store
from walkout.messages import WeightChange
from walkout.recording import PlateSeries

# Asymptotic efficiency of the median against the mean for Gaussian noise: var x pi/2.
_MEDIAN_VAR = math.pi / 2
_MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class StepSettings:
    settle_samples: int = 8  # readings in a settling window (0.32 s at 25 Hz)
    confirm_samples: int = 2  # readings out of band in a row that start a moving period
    k_sigma: float = 6.0  # band half-width in noise sd that counts as "moved"
    settle_sigma: float = 6.0  # max range of a settling window, in noise sd
    min_noise_g: float = 0.5
    min_step_g: float = 20.0  # smaller steps are touches or drift, not items
    max_moving_s: float = 30.0  # a moving period this long is re-based without an event
    hold_s: float = 0.6  # a settled level must hold this long to count (hands rest on items)
    quick_hold_s: float = 0.12  # ... or this long when the step is a whole number of units
    noise_window: int = 125  # successive differences the noise estimate is taken over
    plateau_samples: int = 5  # readings at a level of whole units (0.2 s at 25 Hz) ...
    plateau_tolerance: float = 0.25  # ... this share of a unit off it at most (hand, ringing)

    def __post_init__(self) -> None:
        if self.settle_samples < 3:
            raise ValueError(f"settle_samples must be >= 3, got {self.settle_samples}")
        if self.confirm_samples < 1:
            raise ValueError(f"confirm_samples must be >= 1, got {self.confirm_samples}")
        if self.min_step_g <= 0:
            raise ValueError(f"min_step_g must be > 0, got {self.min_step_g}")


@dataclass
class _Plateau:
    """A level the plate held on the way through a movement (``units`` from its start)."""

    start: int
    end: int
    level: float
    spread: float
    readings: int
    units: int


class StepDetector:
    """Streams one plate's readings; ``push`` returns a WeightChange when a step completes."""

    def __init__(
        self,
        plate_id: str,
        lane_id: str,
        *,
        source_id: str = "",
        noise_sd_g: float = 1.5,
        unit_g: float | None = None,
        unit_sd_g: float = 0.0,
        settings: StepSettings = StepSettings(),
    ):
        self.plate_id = plate_id
        self.unit_g = unit_g
        self.unit_sd_g = unit_sd_g
        self.lane_id = lane_id
        self.source_id = source_id
        self.s = settings
        self.noise_g = max(noise_sd_g, settings.min_noise_g)
        self.level_g: float | None = None
        self.level_n = 0
        self.moving = False
        self.steps = 0
        self.touches = 0
        self._win: collections.deque[tuple[int, float]] = collections.deque(
            maxlen=settings.settle_samples
        )
        self._out_run = 0
        self._last_stable_ts = 0
        self._move_start_ts = 0
        self._base_g = 0.0
        self._base_n = 1
        self._pending = False
        self._pending_until_ts = 0
        self._quick_until_ts = 0
        self._settled_ts = 0
        self._prev_g: float | None = None
        self._diffs: collections.deque[float] = collections.deque(maxlen=settings.noise_window)
        self._since_noise = 0
        # the movement's latest readings, and the levels of whole units it held on the way
        self._recent: collections.deque[tuple[int, float]] = collections.deque(
            maxlen=settings.plateau_samples
        )
        self._plateaus: list[_Plateau] = []
        self._out: collections.deque[WeightChange] = collections.deque()

    def _window_stats(self) -> tuple[float, float, float]:
        w = np.fromiter((v for _, v in self._win), np.float64, len(self._win))
        med = float(np.median(w))
        mad = float(np.median(np.abs(w - med))) * _MAD_TO_SD
        return med, float(w.max() - w.min()), mad

    def _learn_noise(self, mad_g: float) -> None:
        del mad_g  # the noise comes from successive differences (see _track_noise)

    def _track_noise(self, weight_g: float) -> None:
        """Noise sd from the median absolute difference of successive readings: blind to
        slow drift and to steps (one difference each), so it can be learned before any level
        is known. For Gaussian noise the median |difference| is 0.954 sd."""
        if self._prev_g is not None:
            self._diffs.append(abs(weight_g - self._prev_g))
            self._since_noise += 1
            if self._since_noise >= 25 and len(self._diffs) >= 25:
                self._since_noise = 0
                est = float(np.median(np.fromiter(self._diffs, np.float64))) / 0.954
                self.noise_g = max(self.s.min_noise_g, est)
        self._prev_g = weight_g

    def push(self, ts_ns: int, weight_g: float) -> WeightChange | None:
        if math.isfinite(weight_g):
            self._out.extend(self._push(ts_ns, weight_g))
        return self._out.popleft() if self._out else None

    def _push(self, ts_ns: int, weight_g: float) -> list[WeightChange]:
        s = self.s
        win = self._win
        self._track_noise(weight_g)
        if self.level_g is None:  # first settling: wait for a stable window
            win.append((ts_ns, weight_g))
            if len(win) == win.maxlen:
                med, rng, mad = self._window_stats()
                if rng <= s.settle_sigma * self.noise_g:
                    self.level_g, self.level_n = med, len(win)
                    self._learn_noise(mad)
                    self._last_stable_ts = ts_ns
                    win.clear()
            return []
        if not self.moving:
            band = s.k_sigma * self.noise_g
            if abs(weight_g - self.level_g) > band:
                self._out_run += 1
                if self._out_run >= s.confirm_samples:
                    self.moving = True
                    if not self._pending:  # a fresh movement; else it continues the last one
                        self._base_g, self._base_n = self.level_g, self.level_n
                        self._move_start_ts = self._last_stable_ts
                        self._plateaus = []
                    elif self.unit_g is not None:  # the level it settled at, not yet counted
                        self._plateau(
                            self._settled_ts, self._last_stable_ts, self.level_g, 0.0, self.level_n
                        )
                    self._recent.clear()
                    self._pending = False
                    win.clear()
                    win.append((ts_ns, weight_g))
                return []
            self._out_run = 0
            self._last_stable_ts = ts_ns
            win.append((ts_ns, weight_g))
            if len(win) == win.maxlen:  # follow drift and learn the noise
                med, rng, mad = self._window_stats()
                if rng <= s.settle_sigma * self.noise_g:
                    self.level_g, self.level_n = med, len(win)
                    self._learn_noise(mad)
                win.clear()
            if self._pending and (
                ts_ns >= self._pending_until_ts
                or (ts_ns >= self._quick_until_ts and self._whole_units())
            ):
                return self._resolve(ts_ns)
            return []
        # moving: wait for a settling window
        win.append((ts_ns, weight_g))
        self._track_plateau(ts_ns, weight_g)
        if len(win) < (win.maxlen or 0):
            if (ts_ns - self._move_start_ts) / 1e9 > s.max_moving_s:
                self._rebase()
            return []
        med, rng, mad = self._window_stats()
        if rng > s.settle_sigma * self.noise_g:
            if (ts_ns - self._move_start_ts) / 1e9 > s.max_moving_s:
                self._rebase()
            return []
        # settled: the new level must now hold for hold_s before it counts (a hand resting on
        # the items and lifting off again is not a step)
        self._settled_ts = win[0][0]
        self.level_g, self.level_n = med, len(win)
        self._learn_noise(mad)
        self.moving = False
        self._pending = True
        self._pending_until_ts = ts_ns + int(s.hold_s * 1e9)
        self._quick_until_ts = ts_ns + int(s.quick_hold_s * 1e9)
        self._out_run = 0
        self._last_stable_ts = ts_ns
        win.clear()
        return []

    def _whole_units(self) -> bool:
        """Is the pending step a whole, non-zero number of the lane's units (within noise and
        the units' own spread)? A press of a hand is not."""
        if self.unit_g is None or self.level_g is None:
            return False
        delta = self.level_g - self._base_g
        n = round(abs(delta) / self.unit_g)
        if n < 1:
            return False
        tol = 3.0 * math.hypot(self.noise_g, self.unit_sd_g * math.sqrt(n))
        return abs(abs(delta) - n * self.unit_g) <= tol

    def _track_plateau(self, ts_ns: int, weight_g: float) -> None:
        """Note where the last ``plateau_samples`` readings held a level of whole units."""
        if self.unit_g is None:
            return
        self._recent.append((ts_ns, weight_g))
        if len(self._recent) < self.s.plateau_samples:
            return
        w = np.fromiter((v for _, v in self._recent), np.float64, len(self._recent))
        med, spread = float(np.median(w)), float(w.max() - w.min())
        tol = max(self.s.plateau_tolerance * self.unit_g, 4 * self.noise_g)
        n = round((med - self._base_g) / self.unit_g)
        if abs(med - self._base_g - n * self.unit_g) <= tol and spread <= 2 * tol:
            self._plateau(self._recent[0][0], ts_ns, med, spread, len(w))

    def _plateau(self, start: int, end: int, level: float, spread: float, n_readings: int) -> None:
        assert self.unit_g is not None
        units = round((level - self._base_g) / self.unit_g)
        last = self._plateaus[-1] if self._plateaus else None
        if last is not None and last.units == units:  # the same level, still or again
            last.end, last.spread = end, max(last.spread, spread)
            return
        self._plateaus.append(_Plateau(start, end, level, spread, n_readings, units))

    def _swaps(self, ts_ns: int) -> list[WeightChange]:
        """A movement back to its start that held other levels of whole units on the way:
        one step per change of level (picks and puts that did not wait for the plate to
        settle in between). Empty when it held none."""
        assert self.level_g is not None
        start = _Plateau(
            self._move_start_ts, self._move_start_ts, self._base_g, 0.0, self._base_n, 0
        )
        end = _Plateau(self._settled_ts, self._settled_ts, self.level_g, 0.0, self.level_n, 0)
        levels = [start]
        for p in [*self._plateaus, end]:
            if p.units != levels[-1].units:
                levels.append(p)
            elif p is end:
                levels[-1] = end
        self._plateaus = []
        if len(levels) < 3:
            return []
        out = []
        unit = self.unit_g or 0.0
        for a, b in itertools.pairwise(levels):
            # Levels held while hands pressed or the tray still rang: as unsure as their
            # spread and as far as the change lies from whole units.
            sigma = math.hypot(
                self.noise_g * math.sqrt(_MEDIAN_VAR * (1 / a.readings + 1 / b.readings)),
                (a.spread + b.spread) / 4,
                b.level - a.level - (b.units - a.units) * unit,
            )
            out.append(self._change(ts_ns, a.end, b.start, b.level - a.level, sigma))
        self.steps += len(out)
        return out

    def _change(
        self, ts_ns: int, start_ns: int, end_ns: int, delta_g: float, sigma_g: float
    ) -> WeightChange:
        return WeightChange(
            source_id=self.source_id,
            event_ts_ns=ts_ns,
            plate_id=self.plate_id,
            lane_id=self.lane_id,
            start_ts_ns=start_ns,
            end_ts_ns=end_ns,
            delta_g=round(delta_g, 2),
            sigma_g=round(sigma_g, 3),
        )

    def _resolve(self, ts_ns: int) -> list[WeightChange]:
        self._pending = False
        assert self.level_g is not None
        delta = self.level_g - self._base_g
        if abs(delta) < self.s.min_step_g:
            swaps = self._swaps(ts_ns)
            if not swaps:
                self.touches += 1
            return swaps
        self._plateaus = []
        self.steps += 1
        sigma = self.noise_g * math.sqrt(_MEDIAN_VAR * (1 / self._base_n + 1 / self.level_n))
        return [self._change(ts_ns, self._move_start_ts, self._settled_ts, delta, sigma)]

    def _rebase(self) -> None:
        """Give up on a moving period that never settles: wait for a fresh stable level."""
        self.moving = False
        self._pending = False
        self.level_g = None
        self._out_run = 0
        self._win.clear()


def plate_detector(
    store: Store, plate_id: str, source_id: str, settings: StepSettings = StepSettings()
) -> StepDetector:
    """A detector for one configured plate, told its lane's unit weight (the planogram)."""
    plate = next(p for p in store.cfg.plates if p.id == plate_id)
    product = store.products[store.lanes[plate.lane].sku]
    return StepDetector(
        plate.id,
        plate.lane,
        source_id=source_id,
        noise_sd_g=plate.noise_sd_g,
        unit_g=product.unit_weight_g,
        unit_sd_g=product.weight_sd_g,
        settings=settings,
    )


def weight_change_id(change: WeightChange) -> str:
    """The evidence id fusion and billing use for a weight change."""
    return f"wc:{change.plate_id}:{change.start_ts_ns}"


def detect_series(
    series: PlateSeries,
    lane_id: str,
    *,
    source_id: str = "",
    noise_sd_g: float = 1.5,
    settings: StepSettings = StepSettings(),
) -> Iterator[WeightChange]:
    """Every step of one recorded plate, in order."""
    det = StepDetector(
        series.plate_id, lane_id, source_id=source_id, noise_sd_g=noise_sd_g, settings=settings
    )
    for ts, w in zip(series.ts_ns.tolist(), series.weight_g.tolist(), strict=True):
        change = det.push(ts, w)
        if change is not None:
            yield change
