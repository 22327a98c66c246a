"""The reliable link under faults: real sockets on loopback, real processes, real SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
import zmq

from walkout import keys
from walkout.link import LinkTiming, Outbox, OutboxFull, Receiver, Sender, SqliteLog
from walkout.messages import WeightChange, decode, encode, encode_batch

PEER = Path(__file__).with_name("link_peer.py")
FAST = LinkTiming(heartbeat_s=0.2, silent_after_s=0.6, resend_after_s=0.5)


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def msg(i: int, source: str = "edge-1") -> WeightChange:
    return WeightChange(
        source_id=source,
        event_ts_ns=1_700_000_000_000_000_000 + i,
        plate_id="P-1",
        lane_id="L-1",
        start_ts_ns=i,
        end_ts_ns=i + 1,
        delta_g=-float(i),
        sigma_g=1.5,
    )


def log_seqs(path: Path, source: str) -> list[int]:
    log = SqliteLog(path)
    try:
        return [m.seq for _, m in log if m.source_id == source]
    finally:
        log.close()


def log_count(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as c:
            return int(c.execute("SELECT COALESCE(SUM(count), 0) FROM log").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    kd = tmp_path / "keys"
    keys.generate(kd, ["server", "edge-1", "edge-2", "intruder"])
    return kd


def make_receiver(keydir: Path, endpoint: str, log_path: Path, **kw: object) -> Receiver:
    return Receiver(
        endpoint,
        SqliteLog(log_path),
        server_keys=keys.load(keydir, "server", secret=True),
        allow=keys.allowlist(keydir, ["edge-1", "edge-2"]),
        timing=FAST,
        **kw,  # type: ignore[arg-type]
    )


def make_sender(keydir: Path, endpoint: str, outbox: Outbox, name: str | None = None) -> Sender:
    return Sender(
        outbox,
        endpoint,
        client_keys=keys.load(keydir, name or outbox.source_id, secret=True),
        server_public_key=keys.load(keydir, "server", secret=False).public,
        timing=FAST,
    )


def spawn(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(PEER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", (
        f"peer did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}"
    )
    return proc


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(10)


# ---------------------------------------------------------------- outbox


def test_outbox_is_bounded_and_full_is_an_explicit_counted_error(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "out.db", "edge-1", max_pending=5)
    stamped = ob.put_many([msg(i) for i in range(5)])
    assert [m.seq for m in stamped] == [1, 2, 3, 4, 5]
    with pytest.raises(OutboxFull, match="limit 5"):
        ob.put(msg(5))
    assert ob.refused == 1
    ob.ack(3)
    assert ob.pending == 2
    assert ob.put(msg(6)).seq == 6


def test_outbox_keeps_seq_and_boot_id_across_reopen(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "out.db", "edge-1")
    first = ob.put_many([msg(i) for i in range(3)])
    ob.ack(2)
    ob.close()
    again = Outbox(tmp_path / "out.db", "edge-1")
    assert again.boot_id == first[0].boot_id
    assert again.pending == 1
    assert [decode(b).seq for b in again.read(again.acked_seq, 10)] == [3]
    assert again.put(msg(9)).seq == 4
    with pytest.raises(Exception, match="belongs to source 'edge-1'"):
        Outbox(tmp_path / "out.db", "edge-2")


# ---------------------------------------------------------------- delivery


def test_messages_arrive_once_in_order_and_are_durable_before_the_hook(
    tmp_path: Path, keydir: Path
) -> None:
    ep = free_endpoint()
    seen: list[tuple[int, int]] = []
    log_path = tmp_path / "log.db"

    def hook(batch: list[tuple[int, object]]) -> None:
        # The hook runs after the commit: a fresh connection already sees the rows.
        assert log_count(log_path) >= batch[-1][0]
        seen.extend((i, m.seq) for i, m in batch)  # type: ignore[attr-defined]

    rx = make_receiver(keydir, ep, log_path, on_durable=hook).start()
    ob = Outbox(tmp_path / "out.db", "edge-1")
    tx = make_sender(keydir, ep, ob).start()
    try:
        for start in range(0, 3000, 300):
            ob.put_many([msg(i) for i in range(start, start + 300)])
        assert tx.wait_drained(20)
    finally:
        tx.stop()
        rx.stop()
    assert [s for _, s in seen] == list(range(1, 3001))
    assert log_seqs(log_path, "edge-1") == list(range(1, 3001))
    assert rx.metrics.duplicates.total() == 0
    got = SqliteLog(log_path).read(0, 5)
    assert got[0][1] == msgspec.structs.replace(msg(0), boot_id=ob.boot_id, seq=1)


def test_receiver_sigkill_midstream_applies_every_message_exactly_once_in_order(
    tmp_path: Path, keydir: Path, procs: list[subprocess.Popen[str]]
) -> None:
    ep, log_path = free_endpoint(), tmp_path / "log.db"
    rx = spawn("receive", ep, str(log_path), str(keydir), "edge-1,edge-2")
    procs.append(rx)
    tx = spawn("send", ep, str(tmp_path / "out.db"), str(keydir), "edge-1", "20000", "250")
    procs.append(tx)
    wait_for(lambda: log_count(log_path) > 4000, 60, "4000 messages before the kill")
    rx.send_signal(signal.SIGKILL)
    rx.wait(10)
    at_kill = log_count(log_path)
    assert at_kill < 20000, "the kill came too late to test anything"
    time.sleep(0.5)
    procs.append(spawn("receive", ep, str(log_path), str(keydir), "edge-1,edge-2"))
    assert tx.wait(120) == 0, tx.stderr.read() if tx.stderr else ""
    assert log_seqs(log_path, "edge-1") == list(range(1, 20001))


def test_sender_sigkill_then_restart_sends_what_was_written_but_not_acked(
    tmp_path: Path, keydir: Path, procs: list[subprocess.Popen[str]]
) -> None:
    ep, log_path, out = free_endpoint(), tmp_path / "log.db", tmp_path / "out.db"
    procs.append(spawn("receive", ep, str(log_path), str(keydir), "edge-1"))
    tx = spawn("send", ep, str(out), str(keydir), "edge-1", "20000", "250")
    wait_for(lambda: log_count(log_path) > 2000, 60, "2000 messages before the kill")
    tx.send_signal(signal.SIGKILL)
    tx.wait(10)
    written = Outbox(out, "edge-1")
    last, unacked = written.last_seq, written.pending
    written.close()
    assert unacked > 0, "everything was acked before the kill: nothing left to test"
    again = spawn("send", ep, str(out), str(keydir), "edge-1", "0")
    procs.append(again)
    assert again.wait(60) == 0
    assert log_seqs(log_path, "edge-1") == list(range(1, last + 1))


def test_receiver_down_for_10_s_sender_keeps_accepting_then_delivers_everything(
    tmp_path: Path, keydir: Path
) -> None:
    ep, log_path = free_endpoint(), tmp_path / "log.db"
    ob = Outbox(tmp_path / "out.db", "edge-1", max_pending=5000)
    tx = make_sender(keydir, ep, ob).start()
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < 10.0:
        try:
            ob.put_many([msg(i + k) for k in range(50)])
            i += 50
        except OutboxFull:
            break
        time.sleep(0.05)
    # Bounded: a full outbox refuses the put at once, never hangs.
    t_full = time.perf_counter()
    with pytest.raises(OutboxFull):
        ob.put_many([msg(k) for k in range(5000)])
    assert time.perf_counter() - t_full < 0.5
    assert ob.refused >= 5000
    assert not tx.peer_alive
    time.sleep(max(0.0, 10.0 - (time.monotonic() - t0)))
    rx = make_receiver(keydir, ep, log_path).start()
    try:
        assert tx.wait_drained(30)
        wait_for(lambda: tx.peer_alive, 5, "the sender to see the receiver")
    finally:
        tx.stop()
        rx.stop()
    assert tx.metrics.outbox_full.total() >= 5000
    assert log_seqs(log_path, "edge-1") == list(range(1, i + 1))


# ---------------------------------------------------------------- security


def _raw_client(
    ctx: zmq.Context[zmq.Socket[bytes]],
    ep: str,
    keydir: Path,
    name: str | None,
) -> zmq.Socket[bytes]:
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    if name is not None:
        pair = keys.load(keydir, name, secret=True)
        assert pair.secret is not None
        s.curve_secretkey, s.curve_publickey = pair.secret, pair.public
        s.curve_serverkey = keys.load(keydir, "server", secret=False).public
    s.connect(ep)
    return s


def test_unknown_key_plain_client_and_spoofed_source_get_nothing_through(
    tmp_path: Path, keydir: Path
) -> None:
    ep, log_path = free_endpoint(), tmp_path / "log.db"
    rx = make_receiver(keydir, ep, log_path).start()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        frame = encode_batch([encode(msgspec.structs.replace(msg(0), seq=1))])
        intruder = _raw_client(ctx, ep, keydir, "intruder")
        plain = _raw_client(ctx, ep, keydir, None)
        spoof = _raw_client(ctx, ep, keydir, "edge-2")  # a valid key that claims edge-1
        for s in (intruder, plain, spoof):
            for _ in range(3):
                s.send_multipart([b"D", frame])
        wait_for(lambda: rx.metrics.rejected.value(reason="source_mismatch") >= 3, 5, "rejections")
        time.sleep(0.5)
        assert log_count(log_path) == 0
        assert rx._allow is not None and rx._allow.refused >= 1
        # The rightful owner of the key still gets through afterwards.
        honest = _raw_client(ctx, ep, keydir, "edge-1")
        honest.send_multipart([b"D", frame])
        wait_for(lambda: log_count(log_path) == 1, 5, "the honest message")
        for s in (intruder, plain, spoof, honest):
            s.close(0)
    finally:
        ctx.term()
        rx.stop()


def test_10000_malformed_frames_are_counted_and_do_not_crash_the_receiver(
    tmp_path: Path, keydir: Path
) -> None:
    import random

    ep, log_path = free_endpoint(), tmp_path / "log.db"
    rx = make_receiver(keydir, ep, log_path).start()
    rng = random.Random(7)
    good = encode(msgspec.structs.replace(msg(1), seq=1))
    bad: list[list[bytes]] = []
    for i in range(10_000):
        r = i % 6
        if r == 0:
            bad.append([rng.randbytes(rng.randrange(0, 64))])  # one part, random
        elif r == 1:
            bad.append([b"D", rng.randbytes(rng.randrange(1, 200))])  # random batch
        elif r == 2:
            bad.append([b"D", encode_batch([good[: rng.randrange(1, len(good))]])])  # truncated
        elif r == 3:
            bad.append([b"Z", good])  # unknown kind
        elif r == 4:
            bad.append([b"D", encode_batch([b"\x82\xa4type\xa3Foo\xa1v\x01"])])  # unknown type
        else:
            bad.append([b"H", rng.randbytes(16), b"extra"])  # wrong part count
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        s = _raw_client(ctx, ep, keydir, "edge-1")
        for parts in bad:
            s.send_multipart(parts)
        wait_for(lambda: rx.metrics.rejected.total() >= 10_000, 30, "10000 rejections")
        assert rx._thread is not None and rx._thread.is_alive()
        s.send_multipart([b"D", encode_batch([good])])
        wait_for(lambda: log_count(log_path) == 1, 5, "a good message after the garbage")
        s.close(0)
    finally:
        ctx.term()
        rx.stop()
    assert rx.metrics.rejected.total() == 10_000


def test_heartbeats_both_ways_and_a_silent_peer_is_reported(tmp_path: Path, keydir: Path) -> None:
    ep, log_path = free_endpoint(), tmp_path / "log.db"
    rx = make_receiver(keydir, ep, log_path).start()
    ob = Outbox(tmp_path / "out.db", "edge-1")
    tx = make_sender(keydir, ep, ob).start()
    try:
        wait_for(lambda: tx.peer_alive, 5, "sender to hear the receiver")
        wait_for(lambda: "edge-1" in rx.last_heard, 5, "receiver to hear the sender")
        tx.stop()
        wait_for(lambda: "edge-1" in rx.silent, 5, "receiver to report edge-1 silent")
        assert rx.metrics.peer_up.value(source="edge-1") == 0
    finally:
        rx.stop()
