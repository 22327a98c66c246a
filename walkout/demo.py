"""``walkout demo``: the end-to-end path that exists so far, on the embedded defaults.

Today that is the foundation: check the demo store config, mint CurveZMQ keys, and stream a
scripted shopping trip (entry gate, weight changes, shelf interactions, exit gate) from an edge
node's durable outbox to a receiver's durable log over the encrypted link, then read the log
back. The full demo (record a simulated scenario, replay it through edge, fusion and billing,
score it) replaces this as those services land.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from walkout import keys
from walkout.config import ConfigError, load_store
from walkout.link import Outbox, Receiver, Sender, SqliteLog
from walkout.messages import AnyMessage, GateEvent, ShelfInteraction, SkuDelta, WeightChange

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo-store.yaml"


def scripted_trip(t0_ns: int) -> list[AnyMessage]:
    s = 1_000_000_000
    ev: list[AnyMessage] = [
        GateEvent(source_id="edge-1", event_ts_ns=t0_ns, gate_id="gate-in", kind="entry",
                  account_id="acct-demo", xy_m=(1.1, 0.3)),
        WeightChange(source_id="edge-1", event_ts_ns=t0_ns + 20 * s, plate_id="P-G1-L00",
                     lane_id="G1-L00", start_ts_ns=t0_ns + 19 * s, end_ts_ns=t0_ns + 20 * s,
                     delta_g=-691.0, sigma_g=3.0),
        ShelfInteraction(source_id="edge-1", event_ts_ns=t0_ns + 20 * s, interaction_id="demo-1",
                         camera_id="cam-g1-a", lane_id="G1-L00", start_ts_ns=t0_ns + 19 * s,
                         end_ts_ns=t0_ns + 20 * s, deltas=(SkuDelta("cola-330", -2),),
                         exit_xy_m=(2.4, 7.0), confidence=0.96),
        GateEvent(source_id="edge-1", event_ts_ns=t0_ns + 60 * s, gate_id="gate-out",
                  kind="exit", xy_m=(8.9, 0.3)),
    ]  # fmt: skip
    return ev


def run(args: argparse.Namespace) -> int:
    print("walkout demo: the foundation path (config, keys, encrypted durable link).")
    print("The simulated store, edge, fusion and billing join this demo as they land.\n")
    try:
        store = load_store(args.config)
    except ConfigError as exc:
        print(exc)
        return 1
    c = store.cfg
    print(f"[1/3] {args.config}: OK ({len(c.products)} products, {len(c.lanes)} lanes, "
          f"{len(c.cameras)} cameras, {len(c.plates)} plates)")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="walkout-demo-") as tmp:
        work = Path(tmp)
        keys.generate(work / "keys", ["edge-1", "fusion"])
        print("[2/3] CurveZMQ key pairs for edge-1 and fusion written to a scratch folder")
        endpoint = f"tcp://127.0.0.1:{_free_port()}"
        log = SqliteLog(work / "fusion-log.db")
        rx = Receiver(
            endpoint,
            log,
            server_keys=keys.load(work / "keys", "fusion", secret=True),
            allow=keys.allowlist(work / "keys", ["edge-1"]),
        ).start()
        outbox = Outbox(work / "edge-1-outbox.db", "edge-1")
        tx = Sender(
            outbox,
            endpoint,
            client_keys=keys.load(work / "keys", "edge-1", secret=True),
            server_public_key=keys.load(work / "keys", "fusion", secret=False).public,
        ).start()
        t0 = time.perf_counter()
        outbox.put_many(scripted_trip(time.time_ns()))
        ok = tx.wait_drained(10)
        tx.stop()
        rx.stop()
        if not ok:
            print("the receiver did not acknowledge the trip within 10 s")
            return 1
        print(f"[3/3] a shopping trip streamed edge-1 -> fusion log, acknowledged in "
              f"{(time.perf_counter() - t0) * 1e3:.1f} ms:")  # fmt: skip
        for pos, msg in log.read():
            print(f"      log #{pos}: {_describe(msg)}")
        log.close()
        outbox.close()
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _describe(m: AnyMessage) -> str:
    head = f"{type(m).__name__} seq={m.seq}"
    if isinstance(m, GateEvent):
        return f"{head} {m.kind} at {m.gate_id} account={m.account_id}"
    if isinstance(m, WeightChange):
        return f"{head} {m.lane_id} {m.delta_g:+.0f} g (sigma {m.sigma_g} g)"
    if isinstance(m, ShelfInteraction):
        d = ", ".join(f"{x.sku} {x.delta:+d}" for x in m.deltas)
        return f"{head} {m.lane_id}: {d}"
    return head


def register(sub: Any, area: str, help_text: str) -> None:
    p = sub.add_parser(area, help=help_text)
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="store config")
    p.set_defaults(handler=run)
