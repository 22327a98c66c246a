"""The sender's durable, bounded outbox.

Messages are stamped (``source_id``, ``boot_id``, ``seq``) and committed before anything is
sent. Storage is one row per put: the row holds the run ``first_seq..last_seq`` as the
concatenated msgpack encodings of its messages, so a put of a thousand messages costs one insert,
and a data frame is those bytes behind one array header: sending re-encodes nothing.
``boot_id`` is minted when the outbox file is created; ``seq`` never repeats within it.

Keeping the put path short (it is the producer's critical path, one fsync per put; the sender
thread acknowledges without waiting for it, as the counters have a lock of their own):

* the acknowledged position is written every ``ACK_FLUSH_MESSAGES`` messages or
  ``ACK_FLUSH_S`` seconds, in the transaction of the put that finds it due (no fsync of its
  own while puts flow; :meth:`Outbox.flush_acks_if_idle` writes it when they pause), and the
  rows it frees are not zeroed (``secure_delete=FAST``: the same messages live on in the
  receiver's log);
* most of the WAL checkpointing runs in a thread of its own
  (:class:`~walkout.storage.WalCheckpointer`), not in the put that crosses SQLite's threshold;
* runs committed but not yet read by the sender stay in memory (up to ``CACHE_BYTES``), so the
  sender does not read back what was just written. A run is cached only after its commit
  returned: nothing is sent that is not durable. Resends and backlogs beyond the cache read
  the file.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec

from walkout.messages import AnyMessage, array_header, split_batch
from walkout.storage import BLOB_PAGE_BYTES, WalCheckpointer, connect, page_size

log = logging.getLogger(__name__)

# One msgpack array encoding of a put is its run's header plus the concatenated message
# encodings (the same bytes ``encode_many`` gives), in a single call instead of one per message.
_encoder = msgspec.msgpack.Encoder()

CACHE_BYTES = 32 << 20  # committed runs kept in memory for the sender
ACK_FLUSH_MESSAGES = 20_000  # acknowledged but not yet written: at most this many ...
ACK_FLUSH_S = 0.5  # ... or for this long, while the sender runs


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
        # Two locks: the writing connection is held through a put's fsync; the counters only
        # for a moment, so an ack from the sender thread never waits for a put's commit.
        self._lock = threading.Lock()  # the writing connection
        self._seq_lock = threading.Lock()  # _next_seq, _acked, refused
        self._conn = c = connect(self.path, "FULL", page_bytes=BLOB_PAGE_BYTES)
        self._page_bytes = page_size(c)
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
        self._acks_flushed_at = self._last_put_at = time.monotonic()
        last = c.execute("SELECT MAX(last_seq) FROM outbox").fetchone()[0]
        self._next_seq = max(int(last or 0), self._acked) + 1
        # Acknowledged rows are deleted while the same messages live on in the receiver's log:
        # zeroing their freed pages (this SQLite's default) would double the bytes written.
        c.execute("PRAGMA secure_delete=FAST")
        self._checkpointer = WalCheckpointer(self.path, "FULL")
        # The sender thread reads through its own connection: WAL readers never wait for the
        # writer, so a put is not held up by a read, nor a read by a put's fsync.
        self._rlock = threading.Lock()
        self._rconn = connect(self.path, "FULL")
        # Committed runs the sender has not read yet: (first_seq, last_seq, body), contiguous.
        self._cache: collections.deque[tuple[int, int, bytes | memoryview]] = collections.deque()
        self._cache_bytes = 0
        self._cache_full = False  # stopped caching: the file holds what follows the cache
        self._cache_lock = threading.Lock()

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
            with self._seq_lock:
                pending = self._next_seq - 1 - self._acked
                if pending + len(msgs) > self.max_pending:
                    self.refused += len(msgs)
                    raise OutboxFull(
                        f"outbox {self.path} holds {pending} unacknowledged messages "
                        f"(limit {self.max_pending}); the receiver is unreachable or too slow: "
                        "check it, or raise max_pending"
                    )
                first, last = self._next_seq, self._next_seq + len(msgs) - 1
                acked = self._acked
            replace, source, boot = msgspec.structs.replace, self.source_id, self.boot_id
            stamped = [
                replace(m, source_id=source, boot_id=boot, seq=seq)
                for seq, m in enumerate(msgs, first)
            ]
            body = memoryview(_encoder.encode(stamped))[len(array_header(len(stamped))) :]
            with_ack = self._ack_due(acked)
            c = self._conn
            c.execute("BEGIN")
            try:
                c.execute(
                    "INSERT INTO outbox(first_seq, last_seq, payload) VALUES (?, ?, ?)",
                    (first, last, body),
                )
                if with_ack:
                    self._write_acked(acked)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            self._last_put_at = time.monotonic()
            if with_ack:
                self._acked_on_disk = acked
                self._acks_flushed_at = self._last_put_at
            # WAL bytes, roughly: the payload's pages, a leaf page, the meta page with an ack.
            self._checkpointer.wrote(len(body) + self._page_bytes * (2 if with_ack else 1))
            with self._seq_lock:
                self._next_seq = last + 1
            self._cache_run(first, last, body)
        self.waker.wake()
        return stamped

    def _ack_due(self, acked: int) -> bool:
        on_disk = self._acked_on_disk
        return acked > on_disk and (
            acked - on_disk >= ACK_FLUSH_MESSAGES
            or time.monotonic() - self._acks_flushed_at > ACK_FLUSH_S
        )

    def _write_acked(self, seq: int) -> None:
        """Inside a transaction: drop the rows ``seq`` covers and store the position."""
        c = self._conn
        # first_seq is the rowid: the range is a seek, not a scan of the whole table.
        c.execute("DELETE FROM outbox WHERE first_seq <= ?1 AND last_seq <= ?1", (seq,))
        c.execute("UPDATE meta SET value = ? WHERE key = 'acked_seq'", (str(seq),))

    def _cache_run(self, first: int, last: int, body: bytes | memoryview) -> None:
        with self._cache_lock:
            if not self._cache:
                self._cache_full = False
            if self._cache_full or self._cache_bytes + len(body) > CACHE_BYTES:
                # Over budget: the sender reads the rest from the file; caching starts again
                # once it has caught up, so the cache always stays one contiguous range.
                self._cache_full = True
                return
            self._cache.append((first, last, body))
            self._cache_bytes += len(body)

    def _cached_runs(self, after_seq: int, limit: int) -> tuple[int, list[bytes | memoryview]]:
        """Runs from memory, if the one holding ``after_seq + 1`` is still cached."""
        bodies: list[bytes | memoryview] = []
        count = 0
        with self._cache_lock:
            cache = self._cache
            while cache and cache[0][1] <= after_seq:  # the reader has moved past these
                self._cache_bytes -= len(cache.popleft()[2])
            if not cache or cache[0][0] > after_seq + 1:
                return 0, bodies
            count = _gather(cache, after_seq, limit, bodies)
        return count, bodies

    def next_frame(self, after_seq: int, limit: int) -> tuple[int, bytes] | None:
        """A data frame of the messages after ``after_seq``: (how many, frame bytes).

        Whole stored runs are joined as they are; only a run that starts before ``after_seq``
        (a resend from the middle of a put) is split. At least one message if any is waiting,
        at most ``limit`` unless a single stored run is longer.
        """
        if after_seq >= self._next_seq - 1:
            return None  # nothing written after it (a put wakes the sender when there is)
        count, bodies = self._cached_runs(after_seq, limit)
        if count:
            return count, b"".join([array_header(count), *bodies])
        with self._rlock:
            # The run holding after_seq + 1 starts at the largest first_seq <= after_seq + 1:
            # seek to it by rowid rather than scanning the table.
            rows = self._rconn.execute(
                "SELECT first_seq, last_seq, payload FROM outbox WHERE first_seq >= "
                "(SELECT COALESCE(MAX(first_seq), 0) FROM outbox WHERE first_seq <= ?1) "
                "AND last_seq > ?1 ORDER BY first_seq",
                (after_seq,),
            )
            count = _gather(rows, after_seq, limit, bodies)
        if not count:
            return None
        return count, b"".join([array_header(count), *bodies])

    def read(self, after_seq: int, limit: int) -> list[bytes]:
        """The encoded messages after ``after_seq``, each on its own (for tools and tests)."""
        frame = self.next_frame(after_seq, limit)
        return split_batch(frame[1])[:limit] if frame else []

    def ack(self, seq: int) -> None:
        """Forget everything up to ``seq`` (inclusive): the receiver has made it durable.

        The position is kept in memory at once (it frees capacity) and written to disk in
        batches, with a put or by :meth:`flush_acks_if_idle` when puts pause: after a crash the
        sender resends a little that was already acknowledged, and the receiver drops it as
        duplicates; nothing is lost.
        """
        with self._seq_lock:
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
        self.flush_acks_if_idle()

    def flush_acks_if_idle(self) -> None:
        """:meth:`flush_acks` when it is due and no put came lately to carry the position."""
        if self._ack_due(self._acked) and time.monotonic() - self._last_put_at > ACK_FLUSH_S:
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
            try:
                self._write_acked(seq)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            self._acked_on_disk = seq

    def close(self) -> None:
        self._checkpointer.close()
        self.flush_acks()
        with self._lock, self._rlock:
            self._conn.close()
            self._rconn.close()
        self.waker.close()


def _gather(
    runs: Iterable[tuple[int, int, bytes | memoryview]],
    after_seq: int,
    limit: int,
    bodies: list[bytes | memoryview],
) -> int:
    """Append stored runs (first seq, last seq, body) after ``after_seq`` to ``bodies``, up to
    ``limit`` messages (at least one run); a run that starts before ``after_seq`` (a resend from
    the middle of a put) is split. Returns how many messages were taken."""
    count = 0
    for first, last, body in runs:
        n = last - first + 1
        if first <= after_seq:  # resume inside this run
            skip = after_seq + 1 - first
            body = b"".join(split_batch(array_header(n) + bytes(body))[skip:])
            n -= skip
        if count and count + n > limit:
            break
        bodies.append(body)
        count += n
        if count >= limit:
            break
    return count
