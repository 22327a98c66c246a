"""No shopper is charged twice, whatever is retried, lost, declined or killed.

A seeded simulation (as TigerBeetle tests its clients): hypothesis draws an interleaving of
session openings, cart deliveries (fusion may deliver a cart twice), provider faults (timeouts
after the charge happened, refusals, declines), crashes between the provider's answer and our
ledger write, and restarts of billing. After the faults stop and billing resumes, every
receipt's money at the provider equals what the receipt says, each idempotency key moved money
once, no hold is left open, and the ledger balances.

The last test does the crash for real: a child process is SIGKILLed after the provider captured
and before billing recorded it.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from billing.provider import ProviderResult
from billing.records import Op
from billing.settle import Billing
from billing.simprovider import Faults, SimulatedProvider
from billing.simulation import DAY0_NS, Visit, visits
from walkout.config import Store, load_store

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo-store.yaml"
SKUS = ["cola-330", "water-500", "coffee-250", "sandwich-ham", "ojuice-500", "rice-1000"]


class Crash(Exception):
    """Stands for the process dying between the provider's answer and our commit."""


@functools.cache
def demo_store() -> Store:
    return load_store(CONFIG)


def clock() -> int:
    return DAY0_NS + 7_200_000_000_000


class World:
    def __init__(self, store: Store, root: Path, faults: Faults):
        self.store, self.root, self.faults = store, root, faults
        self.crash_plan: list[bool] = []
        self.boot()

    def boot(self) -> None:
        self.provider = SimulatedProvider(
            self.root / "provider.sqlite", self.faults, clock_ns=clock, synchronous="OFF"
        )
        self.billing = Billing.from_store(
            self.store,
            self.root / "billing.sqlite",
            self.provider,
            clock_ns=clock,
            synchronous="OFF",
        )
        self.billing.hook = self.maybe_crash

    def maybe_crash(self, point: str, op: Op) -> None:
        if self.crash_plan and self.crash_plan.pop():
            raise Crash(f"{point} {op.op_key}")

    def restart(self) -> None:
        self.billing.db.close()
        self.provider.close()
        self.boot()


actions = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.integers(0, 5)),
        st.tuples(st.just("settle"), st.integers(0, 5)),
        st.tuples(st.just("approve"), st.integers(0, 5)),
        st.tuples(st.just("resume"), st.just(0)),
        st.tuples(st.just("restart"), st.just(0)),
    ),
    min_size=4,
    max_size=30,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**16),
    steps=actions,
    crashes=st.lists(st.booleans(), max_size=40),
    timeout_rate=st.sampled_from([0.0, 0.2, 0.5]),
    unavailable_rate=st.sampled_from([0.0, 0.2]),
    decline_rate=st.sampled_from([0.0, 0.1]),
)
def test_no_double_charge_under_faults(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    steps: list[tuple[str, int]],
    crashes: list[bool],
    timeout_rate: float,
    unavailable_rate: float,
    decline_rate: float,
) -> None:
    root = tmp_path_factory.mktemp("faults")
    faults = Faults(
        seed=seed,
        timeout_after_rate=timeout_rate,
        unavailable_rate=unavailable_rate,
        decline_rate=decline_rate,
    )
    world = World(demo_store(), root, faults)
    world.crash_plan = crashes
    vs: list[Visit] = visits(6, SKUS, seed=seed, review_rate=0.3)
    for kind, i in steps:
        b = world.billing
        try:
            if kind == "open":
                b.open_session(vs[i].opened)
            elif kind == "settle":
                b.settle(vs[i].closed)
            elif kind == "approve":
                r = b.receipt_by_checkout(vs[i].closed.checkout_id)
                if r is not None and r.status == "review":
                    b.approve(r.receipt_no, "test")
            elif kind == "resume":
                b.resume()
            else:
                world.restart()
        except Crash:
            event("crashed after a provider answer")
            world.restart()

    # The faults stop; billing restarts, fusion redelivers every cart, people approve.
    world.faults.timeout_after_rate = world.faults.unavailable_rate = 0.0
    world.crash_plan = []
    world.restart()
    b = world.billing
    if b.db.scalar("SELECT COUNT(*) FROM payment_ops WHERE status = 'pending'"):
        event("provider calls left pending by faults")
    b.resume()
    for v in vs:
        b.settle(v.closed)
        r = b.receipt_by_checkout(v.closed.checkout_id)
        assert r is not None
        if r.status == "review":
            b.approve(r.receipt_no, "test")
    b.resume()

    assert b.ledger.check() == []
    assert b.db.scalar("SELECT COUNT(*) FROM payment_ops WHERE status = 'pending'") == 0
    receivable = 0
    for v in vs:
        r = b.receipt_by_checkout(v.closed.checkout_id)
        assert r is not None
        taken = world.provider.captured_total(r.receipt_no)
        if r.status == "declined":
            assert taken <= r.total_minor
            receivable += r.total_minor - taken
        else:
            assert r.status == "paid", r
            assert taken == r.total_minor, (r.receipt_no, taken, r.total_minor)
    # One money movement per idempotency key: the provider saw no key twice as new.
    keys = world.provider.db.query(
        "SELECT idem_key, COUNT(*) FROM balance_txns WHERE type = 'charge' GROUP BY idem_key"
    )
    assert all(n == 1 for _, n in keys)
    assert b.ledger.balance("customer_receivables") == receivable
    assert world.provider.open_authorizations() == []


CHILD = """
import sys, time
from pathlib import Path
from billing.settle import Billing
from billing.simprovider import SimulatedProvider
from billing.simulation import visits
from walkout.config import load_store

config, root, marker = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
store = load_store(config)
b = Billing.from_store(store, root / "billing.sqlite", SimulatedProvider(root / "provider.sqlite"))
v = visits(1, ["coffee-250", "cola-330"], seed=7)[0]
b.open_session(v.opened)

def stall(point, op):
    if op.kind == "capture":
        marker.write_text(op.op_key)
        time.sleep(60)  # the parent kills us here, after the capture, before our commit

b.hook = stall
b.settle(v.closed)
"""


def test_sigkill_between_provider_and_ledger(tmp_path: Path) -> None:
    store = demo_store()
    marker = tmp_path / "captured"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(CONFIG), str(tmp_path), str(marker)], env=env
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert child.poll() is None, "the child died before reaching the capture"
            assert time.monotonic() < deadline, "the child never reached the capture"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()

    provider = SimulatedProvider(tmp_path / "provider.sqlite")
    b = Billing.from_store(store, tmp_path / "billing.sqlite", provider)
    v = visits(1, ["coffee-250", "cola-330"], seed=7)[0]
    r = b.receipt_by_checkout(v.closed.checkout_id)
    assert r is not None and r.status == "due"
    # The provider took the money; our ledger has not heard of it yet.
    assert provider.captured_total(r.receipt_no) == r.total_minor
    [cap] = [o for o in b.ops(r.receipt_no) if o.kind == "capture"]
    assert cap.status == "pending"
    assert b.ledger.get(f"collect:{cap.op_key}") is None

    calls: list[ProviderResult] = []
    real_capture = provider.capture

    def spy(*args: object, **kw: object) -> ProviderResult:
        result = real_capture(*args, **kw)  # type: ignore[arg-type]
        calls.append(result)
        return result

    provider.capture = spy  # type: ignore[method-assign]
    assert b.resume() == 1
    b.settle(v.closed)  # fusion redelivers the cart after our restart
    r = b.receipt_by_checkout(v.closed.checkout_id)
    assert r is not None and r.status == "paid"
    assert len(calls) == 1 and calls[0].status == "succeeded"  # the first answer, replayed
    assert provider.captured_total(r.receipt_no) == r.total_minor
    assert provider.charges_by_reference() == {r.receipt_no: 1}
    assert b.ledger.check() == []
    assert b.ledger.balance("customer_receivables") == 0
    assert b.ledger.balance("payment_clearing") == r.total_minor
