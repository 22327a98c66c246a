"""The outbox and the event log on their own: what is read back, what survives a reopen."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import msgspec
import pytest
from test_link import msg

from walkout import outbox as outbox_module
from walkout import storage
from walkout.eventlog import SqliteLog
from walkout.messages import WeightChange, decode, encode, split_batch
from walkout.outbox import Outbox
from walkout.storage import WalCheckpointer


def acked_on_disk(path: Path) -> str:
    with closing(sqlite3.connect(path)) as c:
        return str(c.execute("SELECT value FROM meta WHERE key = 'acked_seq'").fetchone()[0])


def frame_seqs(frame: tuple[int, bytes] | None) -> list[int]:
    assert frame is not None
    seqs = [decode(b).seq for b in split_batch(frame[1])]
    assert len(seqs) == frame[0]
    return seqs


def put_runs(ob: Outbox, sizes: list[int]) -> list[WeightChange]:
    out: list[WeightChange] = []
    for n in sizes:
        out += ob.put_many([msg(len(out) + k) for k in range(n)])  # type: ignore[misc]
    return out


@pytest.mark.parametrize(
    ("after", "limit", "expected"),
    [
        (0, 100, list(range(1, 11))),  # everything: runs of 3, 4 and 3 joined
        (0, 5, [1, 2, 3]),  # whole runs only, as long as one fits
        (2, 5, [3, 4, 5, 6, 7]),  # resume inside the first run
        (3, 1, [4, 5, 6, 7]),  # a single run longer than the limit comes whole
        (9, 100, [10]),
        (10, 100, None),  # nothing after the last one
    ],
)
def test_frames_from_memory_and_from_the_file_are_the_same(
    tmp_path: Path, after: int, limit: int, expected: list[int] | None
) -> None:
    ob = Outbox(tmp_path / "out.db", "edge-1")
    stamped = put_runs(ob, [3, 4, 3])
    live = ob.next_frame(after, limit)  # served from the runs kept in memory
    ob.close()
    again = Outbox(tmp_path / "out.db", "edge-1")  # a fresh outbox reads the file
    from_file = again.next_frame(after, limit)
    again.close()
    assert live == from_file
    if expected is None:
        assert live is None
        return
    assert frame_seqs(live) == expected
    want = [encode(m) for m in stamped if m.seq in expected]
    assert live is not None and split_batch(live[1]) == want


def test_the_sender_going_back_reads_the_file_and_memory_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_bytes = len(encode(msgspec.structs.replace(msg(0), boot_id="x" * 32, seq=1))) * 10
    monkeypatch.setattr(outbox_module, "CACHE_BYTES", int(run_bytes * 2.5))
    ob = Outbox(tmp_path / "out.db", "edge-1")
    put_runs(ob, [10] * 5)  # only the first two runs fit in memory
    assert len(ob._cache) == 2
    sent = 0
    while (frame := ob.next_frame(sent, 10)) is not None:
        assert frame_seqs(frame) == list(range(sent + 1, sent + 11))
        sent += frame[0]
    assert sent == 50
    assert not ob._cache  # everything read was let go
    assert frame_seqs(ob.next_frame(0, 25)) == list(range(1, 21))  # a rewind: from the file
    put_runs(ob, [10])  # caught up: new runs are kept in memory again
    assert [(first, last) for first, last, _ in ob._cache] == [(51, 60)]
    ob.close()


def test_an_ack_rides_in_the_next_put_and_survives_a_crash(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "out.db", "edge-1")
    put_runs(ob, [5, 5])
    ob._last_put_at = float("inf")  # puts keep coming: the ack waits for one to carry it
    ob._acks_flushed_at -= outbox_module.ACK_FLUSH_S  # and it is due
    ob.ack(7)  # in memory only
    assert acked_on_disk(tmp_path / "out.db") == "0"
    ob.put(msg(10))  # carries the ack position and drops the fully acknowledged run
    assert acked_on_disk(tmp_path / "out.db") == "7"
    with closing(sqlite3.connect(tmp_path / "out.db")) as c:
        assert c.execute("SELECT first_seq, last_seq FROM outbox").fetchall() == [(6, 10), (11, 11)]
    ob.ack(8)  # not due again yet: stays in memory
    assert acked_on_disk(tmp_path / "out.db") == "7"
    # No close(): as after a kill -9. What was acknowledged is not sent again.
    again = Outbox(tmp_path / "out.db", "edge-1")
    assert (again.acked_seq, again.last_seq, again.pending) == (7, 11, 4)
    assert frame_seqs(again.next_frame(again.acked_seq, 100)) == [8, 9, 10, 11]
    again.close()


def test_when_puts_pause_the_sender_side_writes_the_ack_itself(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "out.db", "edge-1")
    put_runs(ob, [5])
    ob._last_put_at -= 10 * outbox_module.ACK_FLUSH_S  # no put for a while
    ob._acks_flushed_at -= 10 * outbox_module.ACK_FLUSH_S
    ob.ack(3)
    assert acked_on_disk(tmp_path / "out.db") == "3"
    ob.close()


def test_checkpoints_run_beside_the_writer_and_stop_on_close(tmp_path: Path) -> None:
    log = SqliteLog(tmp_path / "log.db")
    log._checkpointer.every_bytes = 1  # checkpoint after every commit
    for start in range(1, 301, 100):
        batch = [
            msgspec.structs.replace(msg(i), boot_id="b", seq=i) for i in range(start, start + 100)
        ]
        log.append([(batch, msgspec.msgpack.encode(batch))])
    thread = log._checkpointer._thread
    assert thread is not None and thread.is_alive()
    log.close()
    assert not thread.is_alive()
    assert [m.seq for _, m in SqliteLog(tmp_path / "log.db")] == list(range(1, 301))


def test_a_checkpointer_that_was_never_needed_starts_no_thread(tmp_path: Path) -> None:
    c = WalCheckpointer(tmp_path / "x.db", "FULL", every_bytes=1 << 20)
    c.wrote(1000)
    c.close()
    assert c._thread is None
    c.wrote(2 << 20)  # after close: still nothing starts
    assert c._thread is None


def test_an_idle_checkpointer_ends_its_thread_and_starts_another_when_needed(
    tmp_path: Path,
) -> None:
    log = SqliteLog(tmp_path / "log.db")
    c = WalCheckpointer(tmp_path / "log.db", "FULL", every_bytes=10, idle_s=0.05)
    c.wrote(10)
    first = c._thread
    assert first is not None
    first.join(5)
    assert not first.is_alive() and c._thread is None
    c.wrote(10)
    assert c._thread is not None and c._thread is not first
    c.close()
    log.close()


def test_new_files_get_the_set_page_size_and_files_made_before_keep_theirs(
    tmp_path: Path,
) -> None:
    for name in ("old-out.db", "old-log.db"):  # as an earlier version wrote them: 64 KiB pages
        with closing(sqlite3.connect(tmp_path / name)) as c:
            c.execute("PRAGMA page_size=65536")
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("CREATE TABLE t(x)")
    ob, old_ob = Outbox(tmp_path / "out.db", "edge-1"), Outbox(tmp_path / "old-out.db", "edge-1")
    log, old_log = SqliteLog(tmp_path / "log.db"), SqliteLog(tmp_path / "old-log.db")
    assert ob._page_bytes == log._page_bytes == storage.BLOB_PAGE_BYTES
    assert old_ob._page_bytes == old_log._page_bytes == 65536 != storage.BLOB_PAGE_BYTES
    for box in (ob, old_ob):
        (wal_pages,) = box._conn.execute("PRAGMA wal_autocheckpoint").fetchone()
        assert wal_pages * box._page_bytes == storage.WAL_AUTOCHECKPOINT_BYTES
        (sync,) = box._conn.execute("PRAGMA synchronous").fetchone()
        assert sync == 2  # FULL
        put_runs(box, [3, 700])
        assert frame_seqs(box.next_frame(0, 10_000)) == list(range(1, 704))
        box.close()
    for lg in (log, old_log):
        batch = [msgspec.structs.replace(msg(i), boot_id="b", seq=i) for i in range(1, 501)]
        lg.append([(batch, msgspec.msgpack.encode(batch))])
        lg.close()
    for name in ("log.db", "old-log.db"):
        assert [m.seq for _, m in SqliteLog(tmp_path / name)] == list(range(1, 501))
