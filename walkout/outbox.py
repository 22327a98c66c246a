"""The sender's durable, bounded outbox.

Messages are stamped (``source_id``, ``boot_id``, ``seq``) and committed before anything is
sent. Storage is one row per put: the row holds the run ``first_seq..last_seq`` as the
concatenated msgpack encodings of its messages, so a put of a thousand messages costs one insert,
and a data frame is those bytes behind one array header: sending re-encodes nothing.
``boot_id`` is minted when the outbox file is created; ``seq`` never repeats within it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import msgspec

from walkout.messages import AnyMessage, array_header, encode_many, split_batch
from walkout.storage import connect

log = logging.getLogger(__name__)


class LinkError(Exception):
    """Base of the link's own errors."""


class OutboxFull(LinkError):
    """The outbox holds ``max_pending`` unacknowledged messages; the put was refused."""


class OutboxMismatch(LinkError):
    """An outbox file belongs to another source."""


class Waker:
    """A pipe a poller can wait on, so a put wakes the sender thread at once."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self.write_fd, b"\x01")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.read_fd, 4096):
                pass

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)


class Outbox:
    """Durable, bounded store of messages waiting for an acknowledgement."""

    def __init__(self, path: str | Path, source_id: str, *, max_pending: int = 1_000_000):
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.path = Path(path)
        self.source_id = source_id
        self.max_pending = max_pending
        self.refused = 0  # messages refused because the outbox was full
        self.waker = Waker()
        self._lock = threading.Lock()  # guards the writing connection and the counters
        self._conn = c = connect(self.path, "FULL")
        c.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        c.execute(
            "CREATE TABLE IF NOT EXISTS outbox("
            "first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, payload BLOB NOT NULL)"
        )
        meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            meta = {"source_id": source_id, "boot_id": uuid.uuid4().hex, "acked_seq": "0"}
            c.execute("BEGIN")
            c.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
            c.execute("COMMIT")
        elif meta["source_id"] != source_id:
            raise OutboxMismatch(
                f"outbox {self.path} belongs to source '{meta['source_id']}', not '{source_id}'; "
                "give each node and service its own outbox file"
            )
        self.boot_id: str = meta["boot_id"]
        self._acked = self._acked_on_disk = int(meta["acked_seq"])
        self._acks_flushed_at = time.monotonic()
        last = c.execute("SELECT MAX(last_seq) FROM outbox").fetchone()[0]
        self._next_seq = max(int(last or 0), self._acked) + 1
        # The sender thread reads through its own connection: WAL readers never wait for the
        # writer, so a put is not held up by a read, nor a read by a put's fsync.
        self._rlock = threading.Lock()
        self._rconn = connect(self.path, "FULL")

    @property
    def acked_seq(self) -> int:
        return self._acked

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    @property
    def pending(self) -> int:
        return self._next_seq - 1 - self._acked

    def put(self, msg: AnyMessage) -> AnyMessage:
        return self.put_many([msg])[0]

    def put_many(self, msgs: Sequence[AnyMessage]) -> list[AnyMessage]:
        """Stamp and store messages in one transaction; durable when this returns."""
        if not msgs:
            return []
        with self._lock:
            if self.pending + len(msgs) > self.max_pending:
                self.refused += len(msgs)
                raise OutboxFull(
                    f"outbox {self.path} holds {self.pending} unacknowledged messages "
                    f"(limit {self.max_pending}); the receiver is unreachable or too slow: "
                    "check it, or raise max_pending"
                )
            first = self._next_seq
            replace, source, boot = msgspec.structs.replace, self.source_id, self.boot_id
            stamped = [
                replace(m, source_id=source, boot_id=boot, seq=seq)
                for seq, m in enumerate(msgs, first)
            ]
            blob = encode_many(stamped)
            c = self._conn
            c.execute("BEGIN")
            try:
                c.execute(
                    "INSERT INTO outbox(first_seq, last_seq, payload) VALUES (?, ?, ?)",
                    (first, first + len(msgs) - 1, blob),
                )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            self._next_seq = first + len(msgs)
        self.waker.wake()
        return stamped

    def next_frame(self, after_seq: int, limit: int) -> tuple[int, bytes] | None:
        """A data frame of the messages after ``after_seq``: (how many, frame bytes).

        Whole stored runs are joined as they are; only a run that starts before ``after_seq``
        (a resend from the middle of a put) is split. At least one message if any is waiting,
        at most ``limit`` unless a single stored run is longer.
        """
        bodies: list[bytes] = []
        count = 0
        with self._rlock:
            rows = self._rconn.execute(
                "SELECT first_seq, last_seq, payload FROM outbox WHERE last_seq > ? "
                "ORDER BY first_seq",
                (after_seq,),
            )
            for first, last, payload in rows:
                n = last - first + 1
                if first <= after_seq:  # resume inside this run
                    skip = after_seq + 1 - first
                    payload = b"".join(split_batch(array_header(n) + payload)[skip:])
                    n -= skip
                if count and count + n > limit:
                    break
                bodies.append(payload)
                count += n
                if count >= limit:
                    break
        if not count:
            return None
        return count, array_header(count) + b"".join(bodies)

    def read(self, after_seq: int, limit: int) -> list[bytes]:
        """The encoded messages after ``after_seq``, each on its own (for tools and tests)."""
        frame = self.next_frame(after_seq, limit)
        return split_batch(frame[1])[:limit] if frame else []

    def ack(self, seq: int) -> None:
        """Forget everything up to ``seq`` (inclusive): the receiver has made it durable.

        The position is kept in memory at once (it frees capacity) and written to disk in
        batches by :meth:`flush_acks`: after a crash the sender resends a little that was
        already acknowledged, and the receiver drops it as duplicates; nothing is lost.
        """
        with self._lock:
            if seq <= self._acked:
                return
            if seq > self._next_seq - 1:
                log.error(
                    "outbox %s: ack for seq %d beyond the last written %d ignored",
                    self.path,
                    seq,
                    self._next_seq - 1,
                )
                return
            self._acked = seq
        if seq - self._acked_on_disk >= 20_000 or time.monotonic() - self._acks_flushed_at > 0.5:
            self.flush_acks()

    def flush_acks(self) -> None:
        """Write the acknowledged position and drop the rows it covers."""
        with self._lock:
            seq = self._acked
            self._acks_flushed_at = time.monotonic()
            if seq == self._acked_on_disk:
                return
            c = self._conn
            c.execute("BEGIN")
            c.execute("DELETE FROM outbox WHERE last_seq <= ?", (seq,))
            c.execute("UPDATE meta SET value = ? WHERE key = 'acked_seq'", (str(seq),))
            c.execute("COMMIT")
            self._acked_on_disk = seq

    def close(self) -> None:
        self.flush_acks()
        with self._lock, self._rlock:
            self._conn.close()
            self._rconn.close()
        self.waker.close()
