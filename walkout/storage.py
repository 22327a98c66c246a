"""SQLite helpers shared by the outbox and the event log."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)


PAGE_BYTES = 4096  # SQLite's default page size, which our databases keep


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """A WAL-mode connection in autocommit mode; callers open transactions explicitly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


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
