"""SQLite helpers shared by the outbox and the event log."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)


# Page size of the databases that store message payloads (the outbox and the event log), set
# when such a file is created (a file keeps the size it was created with). Large pages make a
# bulk run of hundreds of messages a handful of WAL frames instead of ~100 overflow pages, but
# every commit then writes at least one whole large page: at a store's usual rate (one message
# per commit, 1,000 a second) 64 KiB pages measured link latency p50 2.9 ms / p99 6.4 ms
# against 1.2 / 3.0 ms with 4 KiB, and fusion's send-to-cart p99 8.1 against 5.9 ms, while
# bulk throughput differed by less than the run-to-run noise. So the default, 4 KiB.
BLOB_PAGE_BYTES = 4096
# The writer's own checkpoint runs once the WAL holds this much (SQLite's default, 1000 pages
# of 4 KiB, whatever the page size).
WAL_AUTOCHECKPOINT_BYTES = 4 << 20


def connect(path: Path, synchronous: str, *, page_bytes: int | None = None) -> sqlite3.Connection:
    """A WAL-mode connection in autocommit mode; callers open transactions explicitly.

    ``page_bytes``: the page size of the file if this creates it (an existing file keeps its
    own); the automatic checkpoint then still runs every ``WAL_AUTOCHECKPOINT_BYTES``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    if page_bytes is not None:
        conn.execute(f"PRAGMA page_size={int(page_bytes)}")  # no effect on an existing file
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    if page_bytes is not None:
        pages = max(1, WAL_AUTOCHECKPOINT_BYTES // page_size(conn))
        conn.execute(f"PRAGMA wal_autocheckpoint={pages}")
    return conn


def page_size(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA page_size").fetchone()[0])


class WalCheckpointer:
    """Copies a database's WAL into the database file from a thread of its own.

    The committing thread only reports how much it wrote to the WAL, roughly
    (:meth:`wrote`); every ``every_bytes`` this thread runs a PASSIVE checkpoint on its own
    connection, which never blocks the writer. The writer keeps SQLite's own checkpoint (every
    1000 pages, 4 MiB), which is what lets the WAL start over from its beginning (only a
    checkpoint that caught up before a commit began can) and so keeps the WAL file small and
    rewritten in place; running every 2 MiB, this thread has copied most of a burst of large
    commits by then, and the writer's checkpoint is left with the rest. The checkpointing
    connection uses the writer's ``synchronous`` level: the database file is synced before the
    WAL can be reused. The thread starts on first need, ends after ``idle_s`` without one, and
    :meth:`close` stops it.
    """

    def __init__(
        self, path: Path, synchronous: str, every_bytes: int = 2 << 20, idle_s: float = 30.0
    ):
        self.path = path
        self.synchronous = synchronous
        self.every_bytes = every_bytes
        self.idle_s = idle_s
        self._pending = 0
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wrote(self, nbytes: int) -> None:
        self._pending += nbytes
        if self._pending < self.every_bytes:
            return
        self._pending = 0
        with self._lock:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"wal-checkpoint-{self.path.name}", daemon=True
                )
                self._thread.start()
            self._wake.set()

    def _run(self) -> None:
        try:
            conn = connect(self.path, self.synchronous)
        except sqlite3.Error as exc:  # the writer's own checkpoints take over
            log.warning("cannot open %s to checkpoint it: %s", self.path, exc)
            with self._lock:
                self._thread = None
            return
        try:
            while True:
                if not self._wake.wait(self.idle_s):
                    with self._lock:
                        if not self._wake.is_set():  # idle: end; the next need starts another
                            self._thread = None
                            return
                self._wake.clear()
                if self._closed:
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the writer's own checkpoints take over
                    log.warning("checkpoint of %s failed: %s", self.path, exc)
        finally:
            conn.close()

    def close(self, timeout_s: float = 10.0) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout_s)
