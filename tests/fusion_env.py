"""A demo-store config on free loopback ports with fresh CurveZMQ keys, for service tests."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from fusion_scenarios import CONFIG, Scenario

from walkout import keys
from walkout.config import Store, load_store
from walkout.link import Outbox, Receiver, Sender, SqliteLog
from walkout.messages import AnyMessage, CartClosed, SessionOpened

DEMO_PORTS = ("7101", "7102", "7103")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def store_on_free_ports(tmp: Path) -> Store:
    text = CONFIG.read_text()
    for port in DEMO_PORTS:
        text = text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}")
    kd = tmp / "keys"
    text = text.replace("keys_dir: var/keys", f"keys_dir: {kd}")
    path = tmp / "store.yaml"
    path.write_text(text)
    store = load_store(path)
    keys.generate(kd, keys.identities(store.cfg))
    return store


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


class Edges:
    """The edge nodes' side of the link: one durable outbox and sender per node."""

    def __init__(self, store: Store, tmp: Path):
        self.outboxes = {n: Outbox(tmp / f"edge-{n}.db", n) for n in ("edge-1", "edge-2")}
        self.senders = [
            Sender.from_store(store, ob, "fusion").start() for ob in self.outboxes.values()
        ]

    def put(self, msgs: Sequence[AnyMessage]) -> None:
        by_source: dict[str, list[AnyMessage]] = {}
        for m in msgs:
            by_source.setdefault(m.source_id, []).append(m)
        for src, batch in by_source.items():
            self.outboxes[src].put_many(batch)

    def drained(self) -> bool:
        return all(ob.pending == 0 for ob in self.outboxes.values())

    def close(self) -> None:
        for s in self.senders:
            s.stop()
        for ob in self.outboxes.values():
            ob.close()


class Billing:
    """Billing's side of the link: a receiver that logs what fusion sends."""

    def __init__(self, store: Store, tmp: Path):
        self.log = SqliteLog(tmp / "billing-log.db")
        self.rx = Receiver.from_store(store, self.log, "billing", ["fusion"]).start()

    def messages(self) -> list[AnyMessage]:
        return [m for _, m in self.log]

    def closed(self) -> list[CartClosed]:
        return [m for m in self.messages() if isinstance(m, CartClosed)]

    def opened(self) -> list[SessionOpened]:
        return [m for m in self.messages() if isinstance(m, SessionOpened)]

    def close(self) -> None:
        self.rx.stop()
        self.log.close()


LANES_G1 = ["G1-L00", "G1-L01", "G1-L02", "G1-L03", "G1-L10", "G1-L11", "G1-L12", "G1-L13"]
LANES_G3 = ["G3-L00", "G3-L01", "G3-L02", "G3-L03", "G3-L10", "G3-L11", "G3-L12", "G3-L13"]


def busy_store(store: Store, shoppers: int, seed: int = 7) -> Scenario:
    """Shoppers one after another every 6 s, two in the store at a time, several picks each."""
    rng = random.Random(seed)
    sc = Scenario(store, tick_s=0.1)
    for i in range(shoppers):
        t0 = 6.0 * i
        acct = f"acct-{i:03d}"
        # Even shoppers use gondola G1, odd ones G3: never two within reach of one lane.
        lanes = LANES_G1 if i % 2 == 0 else LANES_G3
        picks = rng.sample(lanes, 3)
        stops = []
        t = t0 + 2.0
        for lane in picks:
            fx, fy = store.lane_front_xy_m(lane)
            body = (fx, fy - 0.5) if lane.startswith("G1") else (fx - 0.5, fy)
            stops.append((t, *body))
            stops.append((t + 2.0, *body))
            exit_xy = ((fx + body[0]) / 2, (fy + body[1]) / 2)
            sc.take(t + 0.5, lane, units=rng.choice([1, 1, 2]), exit_xy=exit_xy)
            t += 3.0
        sc.shopper(i + 1, t0, t + 1.0, *stops)
        sc.entry(t0, acct)
        sc.exit(t + 1.0)
    return sc
