"""Simulated weight plates and gate readers.

A plate reads its tray (tare) plus the units in its lane, sampled at the config's rate with a
per-plate phase. On top come Gaussian noise, a slow random-walk drift (plus a linear drift and
extra noise for plates a scenario marks faulty), the press of a hand resting on the items
during a reach, and a damped oscillation after every lift or set-down, as a load cell shows.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from sim.scenario import ARM_IN_S, Scenario, gate_y
from walkout.config import Store
from walkout.recording import GateRecord

F64 = npt.NDArray[np.float64]
SETTLE_TAU_S = 0.12
SETTLE_HZ = 3.5


def plate_series(store: Store, sc: Scenario) -> dict[str, tuple[F64, F64]]:
    """Per plate: (t_s sample times, weight_g readings)."""
    rng = np.random.Generator(np.random.PCG64([sc.seed, 0x91A7E]))
    events: dict[str, list[tuple[float, float]]] = {}  # lane -> (t, delta_g)
    presses: dict[str, list[tuple[float, float, float]]] = {}  # lane -> (t0, t1, amplitude)
    for r in sc.reaches:
        delta = sum(u.weight_g for u in r.units) * (-1 if r.kind == "pick" else 1)
        if r.units:
            events.setdefault(r.lane_id, []).append((r.t_grasp, delta))
        t0, t1 = r.t_in + ARM_IN_S, r.t_out - ARM_IN_S
        if r.kind == "put":
            amp = 0.3 * abs(delta)
            presses.setdefault(r.lane_id, []).append((t0, r.t_grasp, amp))
        else:
            amp = float(rng.uniform(8.0, 45.0))
            presses.setdefault(r.lane_id, []).append((t0, t1, amp))
    out: dict[str, tuple[F64, F64]] = {}
    for k, plate in enumerate(store.cfg.plates):
        lane = plate.lane
        period = 1.0 / plate.rate_hz
        phase = ((k * 7919) % 1000) / 1000.0 * period
        t = np.arange(phase, sc.duration_s, period, dtype=np.float64)
        load = np.full(t.shape, plate.tare_g + sum(u.weight_g for u in sc.initial[lane]))
        for te, d in events.get(lane, []):
            dt = t - te
            after = dt >= 0
            settle = np.exp(-dt[after] / SETTLE_TAU_S) * np.cos(2 * math.pi * SETTLE_HZ * dt[after])
            load[after] += d * (1.0 - settle)
        for t0, t1, amp in presses.get(lane, []):
            if t1 <= t0:
                continue
            inside = (t >= t0) & (t <= t1)
            f = (t[inside] - t0) / (t1 - t0)
            load[inside] += amp * np.sin(math.pi * f) ** 2
        fault = sc.plate_faults.get(plate.id)
        noise_sd = plate.noise_sd_g * (fault.noise_mult if fault else 1.0)
        walk = np.cumsum(rng.normal(0.0, 0.03 * math.sqrt(period), t.shape))
        drift = walk + (fault.drift_g_per_s * t if fault else 0.0)
        load = load + drift + rng.normal(0.0, noise_sd, t.shape)
        out[plate.id] = (t, load)
    return out


def plate_rows(store: Store, sc: Scenario) -> list[tuple[int, str, float]]:
    """All plate readings as (ts_ns, plate_id, weight_g), sorted by time then plate."""
    series = plate_series(store, sc)
    rows: list[tuple[int, str, float]] = []
    for pid, (t, w) in series.items():
        ts = sc.start_ts_ns + np.round(t * 1e9).astype(np.int64)
        rows.extend(zip(ts.tolist(), [pid] * len(ts), np.round(w, 2).tolist(), strict=True))
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


def gate_records(store: Store, sc: Scenario) -> list[GateRecord]:
    """One entry per visit (the account holder scans for the whole group, ``group_size``
    members) and one exit per person crossing the exit gate (no account seen at exit)."""
    entry_gate = next(g for g in store.cfg.gates if g.kind == "entry")
    exit_gate = next(g for g in store.cfg.gates if g.kind == "exit")
    gy_in, gy_out = gate_y(store, "entry"), gate_y(store, "exit")
    visits: dict[str, list[int]] = {}
    for s in sc.shoppers:
        visits.setdefault(s.group_id, []).append(s.index)
    out: list[GateRecord] = []
    for members in visits.values():
        first_in = min(members, key=lambda i: sc.timelines[i].entry_s)
        spec_in = sc.shoppers[first_in]
        out.append(
            GateRecord(
                ts_ns=sc.ts_ns(sc.timelines[first_in].entry_s),
                gate_id=entry_gate.id,
                kind="entry",
                account_id=spec_in.account_id,
                group_size=len(members),
                xy_m=(round(spec_in.gate_x_m, 3), gy_in),
            )
        )
        for i in members:
            out.append(
                GateRecord(
                    ts_ns=sc.ts_ns(sc.timelines[i].exit_s),
                    gate_id=exit_gate.id,
                    kind="exit",
                    account_id=None,
                    group_size=1,
                    xy_m=(round(sc.shoppers[i].exit_x_m, 3), gy_out),
                )
            )
    out.sort(key=lambda g: (g.ts_ns, g.gate_id))
    return out
