"""The fusion service end to end: edges -> fusion -> billing over real sockets and CurveZMQ."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import zmq
from fusion_env import Billing, Edges, busy_store, store_on_free_ports, wait_for
from fusion_scenarios import run

from fusion.service import FusionService
from walkout.link import LinkTiming
from walkout.messages import CartClosed

FAST = LinkTiming(heartbeat_s=0.2, silent_after_s=0.6, resend_after_s=0.5)
ROOT = Path(__file__).resolve().parent.parent


def comparable(closed: list[CartClosed]) -> list[dict[str, object]]:
    """CartClosed without the link's stamps, in checkout order."""
    out = []
    for m in sorted(closed, key=lambda m: m.checkout_id):
        d = msgspec.structs.asdict(m)
        for k in ("boot_id", "seq"):
            d.pop(k)
        out.append(d)
    return out


def test_service_in_process_matches_the_pure_core(tmp_path: Path) -> None:
    store = store_on_free_ports(tmp_path)
    sc = busy_store(store, shoppers=4)
    msgs = sc.messages()
    expected = run(store, msgs)
    billing = Billing(store, tmp_path)
    service = FusionService(store, tmp_path / "fusion", timing=FAST).start()
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"cart")
    sub.connect(store.cfg.services.fusion_snapshots.connect)
    time.sleep(0.3)  # let the subscription reach the publisher
    edges = Edges(store, tmp_path)
    try:
        edges.put(msgs)
        wait_for(lambda: len(billing.closed()) == 4, 20, "four CartClosed at billing")
        snaps = []
        while sub.poll(100):
            _topic, body = sub.recv_multipart()
            snaps.append(json.loads(body))
        assert any(s["lines"] for s in snaps) and any(s["state"] == "closed" for s in snaps)
        assert comparable(billing.closed()) == comparable(expected.closed)
        assert len(billing.opened()) == 4
        carts = service.carts()
        assert all(c["state"] == "closed" for c in carts.values())
        assert service.metrics.events_in.total() == len(msgs)
        assert service.metrics.cart_ms.count() > 0
        assert len(service.state.checkouts()) == 4  # type: ignore[union-attr]
    finally:
        sub.close(0)
        edges.close()
        service.stop()
        billing.close()
    # A restart rebuilds the same carts from the log and sends nothing again.
    billing = Billing(store, tmp_path)
    service = FusionService(store, tmp_path / "fusion", timing=FAST).start()
    try:
        time.sleep(0.5)
        assert comparable([m for m in billing.closed()]) == comparable(expected.closed)
        assert service.outbox is not None and service.outbox.last_seq == 8
        assert {c["checkout_id"] for c in service.carts().values()} == {
            m.checkout_id for m in expected.closed
        }
    finally:
        service.stop()
        billing.close()


def log_count(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as c:
            return int(c.execute("SELECT COALESCE(SUM(count), 0) FROM log").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _start_fusion(cfg: Path, data: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "walkout.cli",
            "fusion",
            "run",
            "--config",
            str(cfg),
            "--data",
            str(data),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sigkill_under_load_gives_the_same_carts_once(tmp_path: Path) -> None:
    store = store_on_free_ports(tmp_path)
    sc = busy_store(store, shoppers=24)
    msgs = sc.messages()
    assert len(msgs) >= 2_000
    expected = run(store, msgs)
    assert len(expected.closed) == 24 and sum(len(c.lines) for c in expected.closed) > 40
    billing = Billing(store, tmp_path)
    data = tmp_path / "fusion"
    proc = _start_fusion(store.path, data)
    edges = Edges(store, tmp_path)
    kills = 0
    logged_at_kill: list[int] = []
    try:
        chunk = 100
        kill_at = {len(msgs) // (3 * chunk), 2 * len(msgs) // (3 * chunk)}
        for i, start in enumerate(range(0, len(msgs), chunk)):
            edges.put(msgs[start : start + chunk])
            time.sleep(0.03)
            if i in kill_at:
                # Kill only once this incarnation is up and logging, mid-stream.
                floor = log_count(data / "log.db")
                wait_for(lambda f=floor: log_count(data / "log.db") > f, 20, "fusion to ingest")
                logged_at_kill.append(log_count(data / "log.db"))
                proc.send_signal(signal.SIGKILL)
                proc.wait(5)
                kills += 1
                proc = _start_fusion(store.path, data)
        wait_for(edges.drained, 30, "the edges' outboxes to drain")
        wait_for(lambda: len(billing.closed()) >= 24, 30, "24 CartClosed at billing")
        time.sleep(1.0)  # anything sent twice would arrive by now
        closed = billing.closed()
        assert len({m.checkout_id for m in closed}) == len(closed) == 24
        assert comparable(closed) == comparable(expected.closed)
        assert len(billing.opened()) == 24
        assert kills == 2
        assert all(0 < n < len(msgs) for n in logged_at_kill), logged_at_kill
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        edges.close()
        billing.close()
    assert proc.returncode == 0, (proc.stderr.read() if proc.stderr else b"").decode()[-2000:]
