"""The billing storage layer: one small wrapper over a DB-API connection.

SQLite is the default (WAL, ``synchronous=FULL``: a commit survives power loss). The SQL is kept
portable so the same schema and statements run on PostgreSQL: ``?`` placeholders are rewritten
to ``%s`` for a PostgreSQL driver, types are ``BIGINT``/``TEXT``, ids are minted by the
application (no auto-increment), upserts use ``ON CONFLICT ... DO NOTHING``. A PostgreSQL driver
(``psycopg``) is optional and imported only for a ``postgresql://`` URL.

Append-only tables (the ledger) get SQLite triggers that refuse UPDATE and DELETE; on PostgreSQL
the same rule is kept by the application, which has no code path that updates or deletes them.
"""

from __future__ import annotations

import importlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

Dialect = Literal["sqlite", "postgres"]
Param = int | str | None
Row = tuple[Any, ...]

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS meta(
        key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS receipts(
        receipt_no TEXT PRIMARY KEY,
        seq BIGINT NOT NULL UNIQUE,
        checkout_id TEXT NOT NULL UNIQUE,
        session_id TEXT NOT NULL,
        account_id TEXT NOT NULL,
        store_id TEXT NOT NULL,
        currency TEXT NOT NULL,
        entry_ts_ns BIGINT NOT NULL,
        exit_ts_ns BIGINT NOT NULL,
        subtotal_minor BIGINT NOT NULL,
        discount_minor BIGINT NOT NULL,
        tax_minor BIGINT NOT NULL,
        total_minor BIGINT NOT NULL,
        review INTEGER NOT NULL,
        review_reasons TEXT NOT NULL,
        status TEXT NOT NULL,
        revision INTEGER NOT NULL,
        lines_json TEXT NOT NULL,
        settled_ts_ns BIGINT NOT NULL,
        updated_ts_ns BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS receipts_session ON receipts(session_id)",
    """CREATE TABLE IF NOT EXISTS receipt_revisions(
        receipt_no TEXT NOT NULL, revision INTEGER NOT NULL,
        lines_json TEXT NOT NULL, total_minor BIGINT NOT NULL,
        action TEXT NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL,
        ts_ns BIGINT NOT NULL,
        PRIMARY KEY(receipt_no, revision))""",
    """CREATE TABLE IF NOT EXISTS payment_ops(
        op_key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        session_id TEXT NOT NULL,
        checkout_id TEXT,
        receipt_no TEXT,
        account_id TEXT NOT NULL,
        currency TEXT NOT NULL,
        amount_minor BIGINT NOT NULL,
        target_ref TEXT,
        line_no INTEGER,
        tax_minor BIGINT NOT NULL,
        status TEXT NOT NULL,
        provider_ref TEXT,
        provider_ts_ns BIGINT,
        attempts INTEGER NOT NULL,
        message TEXT NOT NULL,
        created_ts_ns BIGINT NOT NULL,
        updated_ts_ns BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS ops_receipt ON payment_ops(receipt_no)",
    "CREATE INDEX IF NOT EXISTS ops_status ON payment_ops(status)",
    """CREATE TABLE IF NOT EXISTS refunds(
        receipt_no TEXT NOT NULL, line_no INTEGER NOT NULL,
        reason TEXT NOT NULL, amount_minor BIGINT NOT NULL, tax_minor BIGINT NOT NULL,
        created_ts_ns BIGINT NOT NULL,
        PRIMARY KEY(receipt_no, line_no))""",
    """CREATE TABLE IF NOT EXISTS ledger_txns(
        txn_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        ref TEXT NOT NULL,
        memo TEXT NOT NULL,
        reverses TEXT UNIQUE,
        ts_ns BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ledger_entries(
        txn_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        account TEXT NOT NULL,
        amount_minor BIGINT NOT NULL,
        currency TEXT NOT NULL,
        PRIMARY KEY(txn_id, idx))""",
    """CREATE TABLE IF NOT EXISTS ledger_balances(
        account TEXT NOT NULL, currency TEXT NOT NULL, balance_minor BIGINT NOT NULL,
        PRIMARY KEY(account, currency))""",
    """CREATE TABLE IF NOT EXISTS inbox_cursor(
        name TEXT PRIMARY KEY, pos BIGINT NOT NULL)""",
)

SQLITE_ONLY: tuple[str, ...] = tuple(
    f"""CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table}
        BEGIN SELECT RAISE(ABORT, '{table} is append-only: post a reversing entry instead'); END"""
    for table in ("ledger_txns", "ledger_entries")
    for verb in ("UPDATE", "DELETE")
)


class StorageError(Exception):
    """The billing database cannot be opened or used."""


class Database:
    """A connection, its dialect and explicit transactions; safe to share between threads."""

    def __init__(self, conn: Any, dialect: Dialect, where: str):
        self._conn = conn
        self.dialect: Dialect = dialect
        self.where = where
        self._lock = threading.RLock()
        self._depth = 0

    @classmethod
    def open(cls, target: str | Path, *, synchronous: str = "FULL") -> Database:
        """Open (and create) the schema at a SQLite path or a ``postgresql://`` URL."""
        text = str(target)
        if text.startswith(("postgresql://", "postgres://")):
            try:
                psycopg = importlib.import_module("psycopg")
            except ModuleNotFoundError as exc:
                raise StorageError(
                    f"{text.split('@')[-1]}: PostgreSQL needs the 'psycopg' package; "
                    "install it or use a SQLite path"
                ) from exc
            db = cls(psycopg.connect(text, autocommit=True), "postgres", text.split("@")[-1])
        else:
            path = Path(text)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                conn = sqlite3.connect(
                    path, check_same_thread=False, isolation_level=None, timeout=30
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={synchronous}")
            except sqlite3.Error as exc:
                raise StorageError(f"{path}: cannot open the billing database: {exc}") from exc
            db = cls(conn, "sqlite", str(path))
        db.create_schema()
        return db

    def create_schema(self) -> None:
        with self.transaction():
            for stmt in SCHEMA:
                self.execute(stmt)
            if self.dialect == "sqlite":
                for stmt in SQLITE_ONLY:
                    self.execute(stmt)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    def execute(self, sql: str, params: Sequence[Param] = ()) -> Any:
        with self._lock:
            return self._conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Param]]) -> None:
        with self._lock:
            if self.dialect == "sqlite":
                self._conn.executemany(sql, rows)
            else:
                with self._conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)

    def query(self, sql: str, params: Sequence[Param] = ()) -> list[Row]:
        with self._lock:
            return [tuple(r) for r in self.execute(sql, params).fetchall()]

    def one(self, sql: str, params: Sequence[Param] = ()) -> Row | None:
        with self._lock:
            row = self.execute(sql, params).fetchone()
            return None if row is None else tuple(row)

    def scalar(self, sql: str, params: Sequence[Param] = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One atomic, durable unit; nested calls join the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
