"""The receiver's durable log: every accepted message once, in arrival order.

Storage is one row per run of consecutive messages of one stream accepted in one group commit
(like a record batch): ``pos`` is the log position of the run's first message and every message
has the position ``pos + index``. The per-stream cursors (last durable ``seq`` of every
``(source_id, boot_id)``) are updated in the same transaction, so the log and the dedupe state
can never disagree after a crash.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from walkout.messages import AnyMessage, decode_batch
from walkout.storage import BLOB_PAGE_BYTES, WalCheckpointer, connect, page_size


class Sink(Protocol):
    def cursors(self) -> dict[tuple[str, str], int]:
        """Last durable seq of every (source_id, boot_id) stream."""
        ...

    def append(self, runs: Sequence[tuple[Sequence[AnyMessage], bytes | memoryview]]) -> list[int]:
        """Make runs and the advanced cursors durable in one transaction; return positions.

        A run is consecutive messages of one stream and their batch frame (a msgpack array).
        """
        ...


class SqliteLog:
    """Durable log in SQLite (WAL; synchronous=FULL by default: a commit survives power loss)."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL"):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = connect(self.path, synchronous, page_bytes=BLOB_PAGE_BYTES)
        self._page_bytes = page_size(self._conn)
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS log(
                pos INTEGER PRIMARY KEY, count INTEGER NOT NULL,
                source_id TEXT NOT NULL, boot_id TEXT NOT NULL,
                first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
                received_ts_ns INTEGER NOT NULL, payload BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS cursors(
                source_id TEXT NOT NULL, boot_id TEXT NOT NULL, seq INTEGER NOT NULL,
                PRIMARY KEY(source_id, boot_id));
            """
        )
        row = self._conn.execute("SELECT MAX(pos + count) FROM log").fetchone()
        self._next_pos = int(row[0] or 1)
        # Checkpoints run beside the commits (a group commit never waits for one).
        self._checkpointer = WalCheckpointer(self.path, synchronous)

    def cursors(self) -> dict[tuple[str, str], int]:
        with self._lock:
            rows = self._conn.execute("SELECT source_id, boot_id, seq FROM cursors").fetchall()
        return {(s, b): int(q) for s, b, q in rows}

    def append(self, runs: Sequence[tuple[Sequence[AnyMessage], bytes | memoryview]]) -> list[int]:
        if not runs:
            return []
        received = time.time_ns()
        with self._lock:
            first = pos = self._next_pos
            rows = []
            nbytes = 0
            cursors: dict[tuple[str, str], int] = {}
            for run, blob in runs:
                head, tail = run[0], run[-1]
                rows.append(
                    (
                        pos,
                        len(run),
                        head.source_id,
                        head.boot_id,
                        head.seq,
                        tail.seq,
                        received,
                        blob,
                    )
                )
                cursors[(head.source_id, head.boot_id)] = tail.seq
                pos += len(run)
                nbytes += len(blob)
            c = self._conn
            c.execute("BEGIN")
            try:
                c.executemany("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                c.executemany(
                    "INSERT INTO cursors VALUES (?, ?, ?) ON CONFLICT(source_id, boot_id) "
                    "DO UPDATE SET seq = excluded.seq",
                    [(s, b, q) for (s, b), q in cursors.items()],
                )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            self._next_pos = pos
        # WAL bytes, roughly: the blobs, a leaf page per row and the cursors page.
        self._checkpointer.wrote(nbytes + self._page_bytes * (len(rows) + 1))
        return list(range(first, pos))

    def read(self, after_pos: int = 0, limit: int = 10_000) -> list[tuple[int, AnyMessage]]:
        """Up to ``limit`` messages with positions above ``after_pos``, in log order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT pos, payload FROM log WHERE pos + count - 1 > ? ORDER BY pos",
                (after_pos,),
            )
            out: list[tuple[int, AnyMessage]] = []
            for pos, payload in rows:
                msgs = decode_batch(payload)
                skip = max(0, after_pos + 1 - pos)
                out.extend((pos + i, m) for i, m in enumerate(msgs) if i >= skip)
                if len(out) >= limit:
                    break
        return out[:limit]

    def __iter__(self) -> Iterator[tuple[int, AnyMessage]]:
        after = 0
        while batch := self.read(after, 10_000):
            yield from batch
            after = batch[-1][0]

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COALESCE(SUM(count), 0) FROM log").fetchone()[0])

    def close(self) -> None:
        self._checkpointer.close()
        with self._lock:
            self._conn.close()
