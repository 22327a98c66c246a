"""Reliable link vs raw pyzmq PUSH/PULL, same encoded messages, same run.

    python benchmarks/link_bench.py [--messages 200000] [--rounds 3]

Throughput: the sender process puts messages into its durable outbox (synchronous=FULL, 1000
per transaction) as fast as it can while the link streams them to a receiver process that
group-commits them into its log (synchronous=FULL) and acknowledges; the clock stops when the
last message is acknowledged. Raw: the same encoded bytes over PUSH/PULL, no durability, no
acks; the clock stops when the receiver has counted them all. Rounds alternate the two.

Latency: 1,000 messages per second, one put (one durable commit) each, measured from the put to
the moment the receiver's group commit returned (both processes read the same clock).

Receivers are started fresh (spawn), as the services they stand for are, and the link's receiver
runs with the young garbage-collector generation the fusion service sets while it runs (its
``GC_YOUNG_THRESHOLD``): messages in flight between socket and disk outlive Python's default
one, and this is the process configuration the link runs under in the service that receives
at these rates. CPU seconds per message of both link processes and the load average are
recorded too: on a shared machine they say how much of a slow round was the link and how much
was the neighbours.
Writes benchmarks/results/link.json and link.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, markdown_header

from fusion.service import GC_YOUNG_THRESHOLD
from walkout import keys
from walkout.link import Outbox, Receiver, Sender, SqliteLog
from walkout.messages import ShelfInteraction, SkuDelta, encode

RESULTS = Path(__file__).resolve().parent / "results"

# Receivers start fresh ("spawn"), like the services they stand for: a forked child would
# inherit this process's hundreds of thousands of input messages, and every garbage collection
# in it would walk them.
MP = mp.get_context("spawn")


def event(i: int, ts_ns: int | None = None) -> ShelfInteraction:
    return ShelfInteraction(
        source_id="edge-1",
        event_ts_ns=ts_ns if ts_ns is not None else 1_763_000_000_000_000_000 + i,
        interaction_id=f"edge-1-{i}",
        camera_id="cam-g1-a",
        lane_id="G1-L00",
        start_ts_ns=1_763_000_000_000_000_000,
        end_ts_ns=1_763_000_000_900_000_000,
        deltas=(SkuDelta("cola-330", -1, 0.97),),
        exit_xy_m=(2.4, 7.1),
        confidence=0.95,
        evidence_frames=(101, 117),
    )


def _raw_pull(endpoint: str, count: int, ready: Any, done: Any) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.PULL)
    s.rcvhwm = 100_000
    s.bind(endpoint)
    ready.set()
    for _ in range(count):
        s.recv()
    done.put(time.perf_counter_ns())
    s.close(0)
    ctx.term()


def raw_round(payloads: list[bytes], port: int) -> float:
    endpoint = f"tcp://127.0.0.1:{port}"
    ready, done = MP.Event(), MP.Queue()
    p = MP.Process(target=_raw_pull, args=(endpoint, len(payloads), ready, done))
    p.start()
    ready.wait(10)
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.sndhwm = 100_000
    s.connect(endpoint)
    time.sleep(0.2)
    t0 = time.perf_counter_ns()
    for b in payloads:
        s.send(b)
    t1 = done.get(timeout=120)
    p.join(10)
    s.close(0)
    ctx.term()
    return len(payloads) / ((t1 - t0) / 1e9)


def _link_receiver(endpoint: str, log_path: str, keydir: str, ready: Any, lat: Any) -> None:
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), *older)  # as the fusion service runs
    kd = Path(keydir)
    latencies_us: list[float] = []

    def hook(batch: list[tuple[int, Any]]) -> None:
        now = time.time_ns()
        latencies_us.extend((now - m.event_ts_ns) / 1e3 for _, m in batch)

    rx = Receiver(
        endpoint,
        SqliteLog(log_path),
        server_keys=keys.load(kd, "server", secret=True),
        allow=keys.allowlist(kd, ["edge-1"]),
        on_durable=hook,
    ).start()
    ready.set()
    cpu0 = time.process_time()
    lat.get()  # wait for "stop"
    rx.stop()
    lat.put((latencies_us, time.process_time() - cpu0))


def _link_setup(tmp: Path, port: int) -> tuple[Any, Any, Any, Outbox, Sender]:
    kd = tmp / "keys"
    if not kd.exists():
        keys.generate(kd, ["server", "edge-1"])
    endpoint = f"tcp://127.0.0.1:{port}"
    tag = time.perf_counter_ns()
    ready, lat = MP.Event(), MP.Queue()
    p = MP.Process(
        target=_link_receiver, args=(endpoint, str(tmp / f"log-{tag}.db"), str(kd), ready, lat)
    )
    p.start()
    ready.wait(20)
    outbox = Outbox(tmp / f"out-{tag}.db", "edge-1", max_pending=2_000_000)
    sender = Sender(
        outbox,
        endpoint,
        client_keys=keys.load(kd, "edge-1", secret=True),
        server_public_key=keys.load(kd, "server", secret=False).public,
    ).start()
    return p, ready, lat, outbox, sender


def _link_finish(p: Any, lat: Any, sender: Sender) -> tuple[list[float], float]:
    """Stop both ends; the receiver's latencies and its CPU seconds since it was ready."""
    sender.stop()
    sender.outbox.close()
    lat.put("stop")
    time.sleep(0.1)
    latencies_us, rx_cpu_s = lat.get(timeout=60)
    p.join(10)
    # Each round starts on a clean disk: the last round's outbox and log (about 130 MB) would
    # otherwise still be written back by the kernel while the next round runs, and the rounds
    # got slower one after the other (230k, 201k, 175k, 151k messages/s in one run).
    for f in Path(sender.outbox.path).parent.glob("*.db*"):
        f.unlink()
    return latencies_us, rx_cpu_s


def link_round(msgs: list[ShelfInteraction], tmp: Path, port: int) -> tuple[float, float, float]:
    """Messages per second, and CPU microseconds per message of the sender and the receiver."""
    p, _, lat, outbox, sender = _link_setup(tmp, port)
    time.sleep(0.3)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(0, len(msgs), 1000):
        outbox.put_many(msgs[i : i + 1000])
    if not sender.wait_drained(300):
        raise RuntimeError("link benchmark: messages were not all acknowledged in 300 s")
    rate = len(msgs) / (time.perf_counter() - t0)
    tx_cpu_s = time.process_time() - cpu0
    _, rx_cpu_s = _link_finish(p, lat, sender)
    return rate, tx_cpu_s / len(msgs) * 1e6, rx_cpu_s / len(msgs) * 1e6


def latency_round(rate_hz: float, seconds: float, tmp: Path, port: int) -> list[float]:
    p, _, lat, outbox, sender = _link_setup(tmp, port)
    time.sleep(0.3)
    n = int(rate_hz * seconds)
    start = time.perf_counter()
    for i in range(n):
        target = start + i / rate_hz
        while (delay := target - time.perf_counter()) > 0:
            time.sleep(min(delay, 0.0005))
        outbox.put(event(i, ts_ns=time.time_ns()))
    sender.wait_drained(30)
    return _link_finish(p, lat, sender)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    args = ap.parse_args()
    msgs = [event(i) for i in range(args.messages)]
    payloads = [encode(m) for m in msgs]
    raw: list[float] = []
    link: list[float] = []
    tx_cpu_us: list[float] = []
    rx_cpu_us: list[float] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        port = 27400
        for r in range(args.rounds):
            raw.append(raw_round(payloads, port + 2 * r))
            rate, tx_us, rx_us = link_round(msgs, tmp, port + 2 * r + 1)
            link.append(rate)
            tx_cpu_us.append(tx_us)
            rx_cpu_us.append(rx_us)
            print(
                f"round {r + 1}: raw {raw[-1]:,.0f} msg/s, link {rate:,.0f} msg/s "
                f"(CPU per message: sender {tx_us:.1f} us, receiver {rx_us:.1f} us)"
            )
        lats = latency_round(1000.0, args.latency_seconds, tmp, port + 50)
    load_after = os.getloadavg()
    lats.sort()
    result = {
        "benchmark": "link",
        "machine": describe("pyzmq", "msgspec"),
        "message_bytes": len(payloads[0]),
        "messages_per_round": args.messages,
        "raw_push_pull_msgs_per_s": raw,
        "link_durable_msgs_per_s": link,
        "median_raw": statistics.median(raw),
        "median_link": statistics.median(link),
        "ratio_link_to_raw": statistics.median(link) / statistics.median(raw),
        "link_cpu_us_per_msg": {
            "sender": tx_cpu_us,
            "receiver": rx_cpu_us,
            "median_sender": statistics.median(tx_cpu_us),
            "median_receiver": statistics.median(rx_cpu_us),
        },
        "load_average_1m": {"before": load_before[0], "after": load_after[0]},
        "latency_at_1000_per_s_us": {
            "count": len(lats),
            "p50": lats[len(lats) // 2],
            "p99": lats[int(len(lats) * 0.99)],
            "max": lats[-1],
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "link.json").write_text(json.dumps(result, indent=2) + "\n")
    lat = result["latency_at_1000_per_s_us"]
    cpu = result["link_cpu_us_per_msg"]
    md = markdown_header("Reliable link benchmark", result["machine"]) + (
        f"\n{args.messages:,} messages of {result['message_bytes']} bytes per round, "
        f"{args.rounds} rounds alternating; medians.\n\n"
        "| path | messages/s | ratio |\n|---|---:|---:|\n"
        f"| raw pyzmq PUSH/PULL (no durability, no acks) | {result['median_raw']:,.0f} | 1.00 |\n"
        f"| walkout link, CurveZMQ, durable outbox + durable log + acks | "
        f"{result['median_link']:,.0f} | {result['ratio_link_to_raw']:.2f} |\n\n"
        f"Link CPU per message (all threads of each process): sender "
        f"{cpu['median_sender']:.1f} us, receiver {cpu['median_receiver']:.1f} us. "
        f"Load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f}.\n\n"
        f"Latency at 1,000 messages/s (put with its own durable commit -> receiver commit "
        f"returned), {lat['count']:,} messages: p50 {lat['p50'] / 1e3:.2f} ms, "
        f"p99 {lat['p99'] / 1e3:.2f} ms, max {lat['max'] / 1e3:.2f} ms.\n"
    )
    (RESULTS / "link.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
