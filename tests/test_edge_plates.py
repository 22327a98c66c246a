"""Plate step detection on synthetic load-cell streams: picks, puts, touches, drift, spikes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from edge.plates import StepDetector, StepSettings, weight_change_id
from walkout.messages import WeightChange

RATE_HZ = 25.0
DT_NS = int(1e9 / RATE_HZ)
T0 = 1_767_225_600_000_000_000


@dataclass(frozen=True)
class Step:
    at_s: float
    delta_g: float  # 0 for a touch (the hand pushes and lets go)


def plate_stream(
    steps: list[Step],
    duration_s: float,
    *,
    seed: int,
    noise_g: float = 1.5,
    drift_g_per_min: float = 0.0,
    tare_g: float = 250.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Readings with Gaussian noise, slow drift, and a hand's pushes around every step."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE_HZ)
    t_s = np.arange(n) / RATE_HZ
    level = np.full(n, tare_g)
    for st in steps:
        level[t_s >= st.at_s + 0.6] += st.delta_g
        # the hand: 0.1-0.9 s of pushing and lifting before the item settles
        start = int((st.at_s - rng.uniform(0.1, 0.4)) * RATE_HZ)
        stop = int((st.at_s + 0.6) * RATE_HZ)
        level[start:stop] += rng.normal(0, 40, stop - start) + rng.uniform(-80, 120)
    level += drift_g_per_min * t_s / 60
    w = level + rng.normal(0, noise_g, n)
    return T0 + np.arange(n, dtype=np.int64) * DT_NS, w


def run(ts: np.ndarray, w: np.ndarray) -> list[WeightChange]:
    det = StepDetector("P-1", "L-1", source_id="edge-1", settings=StepSettings())
    out = [det.push(int(t), float(x)) for t, x in zip(ts, w)]
    return [c for c in out if c is not None]


def random_steps(rng: np.random.Generator, count: int) -> list[Step]:
    weights = [88.0, 95.0, 105.0, 165.0, 215.0, 345.0, 460.0, 530.0, 1045.0]
    at, steps = 3.0, []
    on_shelf = 8
    for _ in range(count):
        at += rng.uniform(2.5, 8.0)
        unit = float(rng.choice(weights))
        kind = rng.choice(["pick", "pick", "put", "touch"])
        if kind == "pick" and on_shelf > 2:
            q = int(rng.integers(1, 3))
            steps.append(Step(at, -unit * q))
            on_shelf -= q
        elif kind == "put" and on_shelf < 8:
            steps.append(Step(at, unit))
            on_shelf += 1
        else:
            steps.append(Step(at, 0.0))
    return steps


@pytest.mark.parametrize("seed", [101, 202, 303, 404])
def test_finds_at_least_99_percent_of_true_steps_with_drift(seed: int) -> None:
    rng = np.random.default_rng(seed)
    steps = random_steps(rng, 60)
    duration = steps[-1].at_s + 5
    ts, w = plate_stream(steps, duration, seed=seed, drift_g_per_min=4.0)
    found = run(ts, w)
    true = [s for s in steps if s.delta_g != 0]
    matched, used = 0, set()
    for st in true:
        t_ns = T0 + int(st.at_s * 1e9)
        for i, c in enumerate(found):
            if i in used:
                continue
            near = c.start_ts_ns - 2e9 <= t_ns <= c.end_ts_ns + 1e9
            if near and abs(c.delta_g - st.delta_g) <= max(10.0, 4 * c.sigma_g):
                matched += 1
                used.add(i)
                break
    recall = matched / len(true)
    precision = len(used) / max(1, len(found))
    assert recall >= 0.99, (recall, len(true), len(found))
    assert precision >= 0.99, (precision, [c.delta_g for c in found])


def test_a_touch_or_a_single_spike_is_not_a_step() -> None:
    ts, w = plate_stream([Step(4.0, 0.0), Step(9.0, 0.0)], 14.0, seed=1)
    w[int(12 * RATE_HZ)] += 500  # one wild reading
    assert run(ts, w) == []


def test_event_fields_units_and_evidence_id() -> None:
    ts, w = plate_stream([Step(4.0, -345.0)], 9.0, seed=2)
    (c,) = run(ts, w)
    assert c.plate_id == "P-1" and c.lane_id == "L-1" and c.source_id == "edge-1"
    assert c.delta_g == pytest.approx(-345.0, abs=3.0)
    assert 0 < c.sigma_g < 3.0
    assert c.start_ts_ns < T0 + 4_000_000_000 < c.end_ts_ns <= c.event_ts_ns
    assert weight_change_id(c) == f"wc:P-1:{c.start_ts_ns}"


def test_slow_drift_alone_never_fires() -> None:
    ts, w = plate_stream([], 600.0, seed=3, drift_g_per_min=30.0)
    assert run(ts, w) == []


def test_non_finite_readings_are_ignored() -> None:
    ts, w = plate_stream([Step(4.0, 200.0)], 9.0, seed=4)
    w[50] = np.nan
    (c,) = run(ts, w)
    assert c.delta_g == pytest.approx(200.0, abs=3.0)


def test_bad_settings_say_which_and_why() -> None:
    with pytest.raises(ValueError, match="settle_samples must be >= 3"):
        StepSettings(settle_samples=2)


def _bump(ts: np.ndarray, w: np.ndarray, t0_s: float, t1_s: float, amp_g: float) -> None:
    t = (ts - T0) / 1e9
    inside = (t >= t0_s) & (t <= t1_s)
    w[inside] += amp_g * np.sin(np.pi * (t[inside] - t0_s) / (t1_s - t0_s)) ** 2


def test_a_hand_resting_on_the_items_is_not_a_step_but_a_press_then_pick_is_one() -> None:
    rng = np.random.default_rng(9)
    ts = T0 + np.arange(int(20 * RATE_HZ), dtype=np.int64) * DT_NS
    w = 3000.0 + rng.normal(0, 1.5, len(ts))
    _bump(ts, w, 3.0, 5.5, 45.0)  # a long, slow press: flat enough on top to settle
    _bump(ts, w, 10.0, 11.0, 60.0)  # press, then an item leaves while pressing
    w[(ts - T0) / 1e9 >= 10.7] -= 345.0
    (c,) = run(ts, w)
    assert c.delta_g == pytest.approx(-345.0, abs=3.0)
    assert T0 + 9_900_000_000 <= c.start_ts_ns < c.end_ts_ns < T0 + 12_000_000_000


def test_knowing_the_unit_weight_separates_quick_successive_steps() -> None:
    """A put and a pick 0.9 s apart by two shoppers: with the lane's unit weight the put's
    level counts at once; without it the two merge into no change at all."""
    rng = np.random.default_rng(4)
    ts = T0 + np.arange(int(12 * RATE_HZ), dtype=np.int64) * DT_NS
    t = (ts - T0) / 1e9
    w = 3000.0 + rng.normal(0, 1.5, len(ts))
    w[t >= 4.0] += 530.0
    w[t >= 4.9] -= 530.0
    plain = StepDetector("P-1", "L-1")
    knowing = StepDetector("P-1", "L-1", unit_g=530.0, unit_sd_g=5.0)
    got_plain = [plain.push(int(a), float(b)) for a, b in zip(ts, w)]
    got_knowing = [knowing.push(int(a), float(b)) for a, b in zip(ts, w)]
    assert [c for c in got_plain if c] == []
    deltas = [round(c.delta_g) for c in got_knowing if c]
    assert len(deltas) == 2 and abs(deltas[0] - 530) <= 3 and abs(deltas[1] + 530) <= 3


def _swap_stream(first_g: float, gap_s: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One unit off (or onto) the tray and back within ``gap_s``: the load cell rings after
    each change (as a tray does) and a hand presses on the items meanwhile."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(int(10 * RATE_HZ), dtype=np.int64) * DT_NS
    t = (ts - T0) / 1e9
    w = 3000.0 + rng.normal(0, 1.5, len(ts))
    for at, d in ((4.0, first_g), (4.0 + gap_s, -first_g)):
        dt = t[t >= at] - at
        w[t >= at] += d * (1 - np.exp(-dt / 0.12) * np.cos(2 * np.pi * 3.5 * dt))
    _bump(ts, w, 3.7, 4.0 + gap_s + 0.3, 25.0)
    return ts, w


@pytest.mark.parametrize(("first_g", "kinds"), [(-180.0, "pick,put"), (180.0, "put,pick")])
def test_a_unit_swapped_quicker_than_the_plate_settles_is_two_steps(
    first_g: float, kinds: str
) -> None:
    """Two hands: one lifts a unit, the other puts one back 0.3 s later (or the other way
    round). The tray never settles in between and ends where it began; knowing the lane's unit
    weight, the level held on the way shows both moves, in order. Without it, nothing."""
    ts, w = _swap_stream(first_g, 0.3, seed=12)
    det = StepDetector("P-1", "L-1", unit_g=180.0, unit_sd_g=3.0)
    got = [c for c in (det.push(int(a), float(b)) for a, b in zip(ts, w)) if c]
    assert ",".join("pick" if c.delta_g < 0 else "put" for c in got) == kinds
    for c, sign in zip(got, (np.sign(first_g), -np.sign(first_g))):
        assert c.delta_g * sign > 0
        assert abs(abs(c.delta_g) - 180.0) <= 2.5 * c.sigma_g  # a unit, within its stated doubt
    assert got[0].end_ts_ns <= got[1].start_ts_ns
    assert got[0].start_ts_ns >= T0 + 3_500_000_000 and got[1].end_ts_ns <= T0 + 5_000_000_000
    plain = StepDetector("P-1", "L-1")
    assert not any(plain.push(int(a), float(b)) for a, b in zip(ts, w))


def test_a_press_the_weight_of_no_unit_is_no_swap() -> None:
    """A hand pressing 60 g on a lane of 180 g units, for a second: no level of whole units."""
    rng = np.random.default_rng(3)
    ts = T0 + np.arange(int(10 * RATE_HZ), dtype=np.int64) * DT_NS
    w = 3000.0 + rng.normal(0, 1.5, len(ts))
    _bump(ts, w, 4.0, 5.0, 60.0)
    det = StepDetector("P-1", "L-1", unit_g=180.0, unit_sd_g=3.0)
    assert not any(det.push(int(a), float(b)) for a, b in zip(ts, w))


def test_edge_plate_score_counts_the_units_a_step_weighs() -> None:
    """Two shoppers take a cola each from one plate at once: one step of two units finds both
    picks; a one-unit step finds one; a pick on a lane without a plate is not the plates' to
    find."""
    from pathlib import Path

    from edge.evaluate import score_plates
    from walkout.config import load_store
    from walkout.recording import TruthInteraction

    store = load_store(Path(__file__).resolve().parents[1] / "configs" / "demo-store.yaml")
    s = 1_000_000_000

    def pick(n: int, lane: str = "G1-L00") -> TruthInteraction:
        return TruthInteraction(
            id=f"t{n}",
            shopper_id="A",
            account_id="A",
            kind="pick",
            lane_id=lane,
            sku="cola-330",
            quantity=1,
            start_ts_ns=T0 + 10 * s,
            end_ts_ns=T0 + 11 * s,
            camera_id="cam",
        )

    def step(grams: float) -> WeightChange:
        return WeightChange(
            source_id="edge-1",
            event_ts_ns=T0 + 11 * s,
            plate_id="P-G1-L00",
            lane_id="G1-L00",
            start_ts_ns=T0 + 10 * s,
            end_ts_ns=T0 + 11 * s,
            delta_g=grams,
            sigma_g=1.5,
        )

    both = score_plates(store, [pick(1), pick(2)], [step(-690.0)])
    assert (both.tp, both.fp, both.fn) == (2, 0, 0)
    one = score_plates(store, [pick(1), pick(2)], [step(-345.0)])
    assert (one.tp, one.fp, one.fn) == (1, 0, 1)
    unplated = score_plates(store, [pick(1, lane="no-such-lane")], [])
    assert (unplated.tp, unplated.fp, unplated.fn) == (0, 0, 0)
