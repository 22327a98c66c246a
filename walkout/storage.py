"""SQLite helpers shared by the outbox and the event log."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """A WAL-mode connection in autocommit mode; callers open transactions explicitly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn
