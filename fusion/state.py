"""Fusion's own durable state: which outputs went into the billing outbox, and the checkouts.

Outputs are derived from the log, so a restart derives them again; this table makes sure each
one is put into the outbox once. The intent (key and the outbox seq it will get) is committed
before the put; on start, intents whose seq the outbox never reached are forgotten (the put did
not happen), the others stand (the put happened, whether or not it was acknowledged since).
That holds because fusion is the only writer of its outbox, one put at a time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from fusion.core import Output
from walkout.messages import CartClosed
from walkout.storage import connect


class FusionState:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = connect(self.path, "FULL")
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS emitted(
                key TEXT PRIMARY KEY, outbox_seq INTEGER NOT NULL, kind TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS checkouts(
                checkout_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, account_id TEXT NOT NULL,
                entry_ts_ns INTEGER NOT NULL, exit_ts_ns INTEGER NOT NULL,
                review INTEGER NOT NULL, lines_json TEXT NOT NULL);
            """
        )
        self._keys = {k for (k,) in self._conn.execute("SELECT key FROM emitted")}

    def reconcile(self, outbox_last_seq: int) -> int:
        """Forget intents the outbox never received; returns how many."""
        with self._lock:
            c = self._conn
            c.execute("BEGIN")
            gone = [
                k
                for (k,) in c.execute(
                    "SELECT key FROM emitted WHERE outbox_seq > ?", (outbox_last_seq,)
                )
            ]
            c.execute("DELETE FROM emitted WHERE outbox_seq > ?", (outbox_last_seq,))
            c.execute(
                "DELETE FROM checkouts "
                "WHERE 'close:' || checkout_id NOT IN (SELECT key FROM emitted)"
            )
            c.execute("COMMIT")
            self._keys.difference_update(gone)
        return len(gone)

    def emitted(self, key: str) -> bool:
        return key in self._keys

    def record(self, outputs: Sequence[Output], first_seq: int) -> None:
        """Commit the intent to put ``outputs`` into the outbox as seqs first_seq, first_seq+1..."""
        rows = [(o.key, first_seq + i, type(o.message).__name__) for i, o in enumerate(outputs)]
        closes = [o.message for o in outputs if isinstance(o.message, CartClosed)]
        with self._lock:
            c = self._conn
            c.execute("BEGIN")
            try:
                c.executemany("INSERT INTO emitted VALUES (?, ?, ?)", rows)
                c.executemany(
                    "INSERT OR REPLACE INTO checkouts VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            m.checkout_id,
                            m.session_id,
                            m.account_id,
                            m.entry_ts_ns,
                            m.exit_ts_ns,
                            int(m.review),
                            json.dumps(
                                [
                                    {
                                        "sku": x.sku,
                                        "quantity": x.quantity,
                                        "confidence": x.confidence,
                                        "evidence": list(x.evidence),
                                        "review": x.review,
                                    }
                                    for x in m.lines
                                ]
                            ),
                        )
                        for m in closes
                    ],
                )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            self._keys.update(o.key for o in outputs)

    def checkouts(self) -> list[dict[str, object]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT checkout_id, session_id, account_id, entry_ts_ns, exit_ts_ns, review, "
                "lines_json FROM checkouts ORDER BY exit_ts_ns, checkout_id"
            ).fetchall()
        return [
            {
                "checkout_id": r[0],
                "session_id": r[1],
                "account_id": r[2],
                "entry_ts_ns": r[3],
                "exit_ts_ns": r[4],
                "review": bool(r[5]),
                "lines": json.loads(r[6]),
            }
            for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
