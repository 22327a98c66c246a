"""A simulated card processor that behaves like a real one, with its own SQLite state.

It keeps authorizations, payments, refunds and balance transactions in its own database (so it
survives restarts of billing, as a real provider would), answers a repeated idempotency key
with the first answer (a declined answer included), refuses a key reused for another request,
and injects faults from a seeded :class:`Faults` plan:

* ``decline``: the card is declined (an answer, replayed on retry);
* ``timeout_after``: the operation is committed, then the answer is lost (``ProviderTimeout``);
* ``unavailable``: refused before anything happens (``ProviderUnavailable``).

:meth:`SimulatedProvider.settlement_report` gives one UTC day's balance transactions, as a
real provider's settlement CSV: ``charge`` (a capture or a charge, positive), ``fee`` (negative,
per charge: 25 minor units + 1.4 %), ``refund`` (negative) and one ``payout`` that moves the
day's net to the merchant's bank.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from billing.db import Database
from billing.provider import (
    IdempotencyConflict,
    ProviderResult,
    ProviderTimeout,
    ProviderUnavailable,
    Status,
)

Fault = Literal["decline", "timeout_after", "unavailable"]
FEE_FIXED_MINOR = 25
FEE_BP = 140

REPORT_FIELDS = (
    "balance_transaction_id",
    "type",
    "source_id",
    "reference",
    "idempotency_key",
    "amount_minor",
    "fee_minor",
    "net_minor",
    "currency",
    "created_ts_ns",
    "report_date",
)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS idem(
        key TEXT PRIMARY KEY, request TEXT NOT NULL, response TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS payments(
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, account_id TEXT NOT NULL,
        currency TEXT NOT NULL, authorized_minor BIGINT NOT NULL,
        captured_minor BIGINT NOT NULL, refunded_minor BIGINT NOT NULL,
        status TEXT NOT NULL, reference TEXT NOT NULL, created_ts_ns BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS balance_txns(
        id TEXT PRIMARY KEY, n BIGINT NOT NULL UNIQUE, type TEXT NOT NULL,
        source_id TEXT NOT NULL, reference TEXT NOT NULL, idem_key TEXT NOT NULL,
        amount_minor BIGINT NOT NULL, fee_minor BIGINT NOT NULL, net_minor BIGINT NOT NULL,
        currency TEXT NOT NULL, created_ts_ns BIGINT NOT NULL, day TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS bt_day ON balance_txns(day)",
)


@dataclass
class Faults:
    """What goes wrong, reproducibly from ``seed``; ``script`` faults hit a key's first call."""

    seed: int = 0
    decline_rate: float = 0.0
    timeout_after_rate: float = 0.0
    unavailable_rate: float = 0.0
    decline_accounts: frozenset[str] = frozenset()
    script: dict[str, Fault] = field(default_factory=dict)
    # Card networks let a hold lapse after about a week; a later capture is declined.
    auth_ttl_ns: int = 7 * 86_400 * 1_000_000_000


def utc_day(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC).date().isoformat()


def fee_for(amount_minor: int) -> int:
    return FEE_FIXED_MINOR + (amount_minor * FEE_BP + 5_000) // 10_000


class SimulatedProvider:
    """Implements :class:`billing.provider.PaymentProvider`."""

    def __init__(
        self,
        path: str | Path,
        faults: Faults | None = None,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        synchronous: str = "FULL",
    ):
        self.db = Database.open(path, synchronous=synchronous)
        with self.db.transaction():
            for stmt in _SCHEMA:
                self.db.execute(stmt)
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)
        self._scripted_done: set[str] = set()
        self.clock_ns = clock_ns
        self.calls = 0

    def close(self) -> None:
        self.db.close()

    # -- the protocol

    def authorize(
        self, key: str, *, account_id: str, amount_minor: int, currency: str, reference: str
    ) -> ProviderResult:
        req = {"op": "authorize", "account": account_id, "amount": amount_minor, "cur": currency}
        return self._call(
            key,
            req,
            lambda now: self._pay("auth", key, account_id, amount_minor, currency, reference, now),
        )

    def charge(
        self, key: str, *, account_id: str, amount_minor: int, currency: str, reference: str
    ) -> ProviderResult:
        req = {"op": "charge", "account": account_id, "amount": amount_minor, "cur": currency}
        return self._call(
            key,
            req,
            lambda now: self._pay(
                "charge", key, account_id, amount_minor, currency, reference, now
            ),
        )

    def capture(
        self, key: str, *, authorization: str, amount_minor: int, reference: str
    ) -> ProviderResult:
        req = {"op": "capture", "auth": authorization, "amount": amount_minor}
        return self._call(
            key, req, lambda now: self._capture(key, authorization, amount_minor, reference, now)
        )

    def release(self, key: str, *, authorization: str, reference: str) -> ProviderResult:
        req = {"op": "release", "auth": authorization}
        return self._call(key, req, lambda now: self._release(authorization, now))

    def refund(
        self, key: str, *, payment: str, amount_minor: int, reference: str
    ) -> ProviderResult:
        req = {"op": "refund", "payment": payment, "amount": amount_minor}
        return self._call(
            key, req, lambda now: self._refund(key, payment, amount_minor, reference, now)
        )

    # -- the machinery

    def _fault(self, key: str, op: str) -> Fault | None:
        scripted = self.faults.script.get(key)
        if scripted is not None and key not in self._scripted_done:
            self._scripted_done.add(key)
            return scripted
        f = self.faults
        r = self._rng.random()
        if r < f.unavailable_rate:
            return "unavailable"
        r -= f.unavailable_rate
        if r < f.timeout_after_rate:
            return "timeout_after"
        r -= f.timeout_after_rate
        if op in ("authorize", "charge") and r < f.decline_rate:
            return "decline"
        return None

    def _call(
        self,
        key: str,
        request: Mapping[str, object],
        do: Callable[[int], ProviderResult],
    ) -> ProviderResult:
        self.calls += 1
        body = json.dumps(request, sort_keys=True)
        fault = self._fault(key, str(request["op"]))
        if fault == "unavailable":
            raise ProviderUnavailable(f"simulated provider refused {request['op']} ({key})")
        with self.db.transaction() as db:
            row = db.one("SELECT request, response FROM idem WHERE key = ?", (key,))
            if row is not None:
                if row[0] != body:
                    raise IdempotencyConflict(
                        f"idempotency key {key!r} was first used for {row[0]}, now for {body}"
                    )
                result = _decode(str(row[1]))
            else:
                now = self.clock_ns()
                declined = fault == "decline" or (
                    request["op"] in ("authorize", "charge")
                    and request.get("account") in self.faults.decline_accounts
                )
                if declined:
                    result = ProviderResult("declined", "", 0, now, "card declined")
                else:
                    result = do(now)
                db.execute(
                    "INSERT INTO idem(key, request, response) VALUES (?, ?, ?)",
                    (key, body, _encode(result)),
                )
        if fault == "timeout_after":
            raise ProviderTimeout(f"simulated provider did not answer {request['op']} ({key})")
        return result

    def _next_id(self, prefix: str) -> str:
        n = int(self.db.scalar("SELECT COALESCE(MAX(rowid), 0) FROM payments") or 0) + 1
        return f"{prefix}_{n:08d}"

    def _bt(
        self,
        kind: str,
        source: str,
        reference: str,
        key: str,
        amount: int,
        cur: str,
        now: int,
        n: int | None = None,
    ) -> None:
        if n is None:
            n = int(self.db.scalar("SELECT COALESCE(MAX(n), 0) FROM balance_txns") or 0) + 1
        self.db.execute(
            "INSERT INTO balance_txns(id, n, type, source_id, reference, idem_key, amount_minor, "
            "fee_minor, net_minor, currency, created_ts_ns, day) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f"txn_{n:08d}",
                n,
                kind,
                source,
                reference,
                key,
                amount,
                0,
                amount,
                cur,
                now,
                utc_day(now),
            ),
        )

    def _pay(
        self, kind: str, key: str, account: str, amount: int, cur: str, reference: str, now: int
    ) -> ProviderResult:
        if amount <= 0:
            return ProviderResult("declined", "", 0, now, f"amount must be positive, got {amount}")
        pid = self._next_id("auth" if kind == "auth" else "pay")
        captured = amount if kind == "charge" else 0
        status = "requires_capture" if kind == "auth" else "succeeded"
        self.db.execute(
            "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
            (pid, kind, account, cur, amount, captured, status, reference, now),
        )
        if kind == "charge":
            self._settle_charge(pid, reference, key, amount, cur, now)
        return ProviderResult("succeeded", pid, amount, now)

    def _settle_charge(
        self, pid: str, reference: str, key: str, amount: int, cur: str, now: int
    ) -> None:
        n = int(self.db.scalar("SELECT COALESCE(MAX(n), 0) FROM balance_txns") or 0) + 1
        self._bt("charge", pid, reference, key, amount, cur, now, n)
        self._bt("fee", pid, reference, key, -fee_for(amount), cur, now, n + 1)

    def _payment(self, pid: str) -> tuple[str, str, int, int, int, str] | None:
        row = self.db.one(
            "SELECT kind, currency, authorized_minor, captured_minor, refunded_minor, status, "
            "created_ts_ns FROM payments WHERE id = ?",
            (pid,),
        )
        if row is None:
            return None
        status = str(row[5])
        if status == "requires_capture" and self.clock_ns() - int(row[6]) > self.faults.auth_ttl_ns:
            status = "expired"
        return (str(row[0]), str(row[1]), int(row[2]), int(row[3]), int(row[4]), status)

    def _capture(
        self, key: str, auth: str, amount: int, reference: str, now: int
    ) -> ProviderResult:
        p = self._payment(auth)
        if p is None or p[0] != "auth":
            return ProviderResult("declined", "", 0, now, f"no authorization {auth}")
        if p[5] != "requires_capture":
            return ProviderResult("declined", "", 0, now, f"authorization {auth} is {p[5]}")
        if not 0 < amount <= p[2]:
            return ProviderResult(
                "declined", "", 0, now, f"capture {amount} outside 1..{p[2]} held"
            )
        self.db.execute(
            "UPDATE payments SET captured_minor = ?, status = 'captured' WHERE id = ?",
            (amount, auth),
        )
        self._settle_charge(auth, reference, key, amount, p[1], now)
        return ProviderResult("succeeded", auth, amount, now)

    def _release(self, auth: str, now: int) -> ProviderResult:
        p = self._payment(auth)
        if p is None or p[0] != "auth" or p[5] != "requires_capture":
            return ProviderResult("declined", "", 0, now, f"no open authorization {auth}")
        self.db.execute("UPDATE payments SET status = 'released' WHERE id = ?", (auth,))
        return ProviderResult("succeeded", auth, 0, now)

    def _refund(
        self, key: str, payment: str, amount: int, reference: str, now: int
    ) -> ProviderResult:
        p = self._payment(payment)
        if p is None or p[3] == 0:
            return ProviderResult("declined", "", 0, now, f"no captured payment {payment}")
        if not 0 < amount <= p[3] - p[4]:
            return ProviderResult(
                "declined", "", 0, now, f"refund {amount} above the {p[3] - p[4]} refundable"
            )
        self.db.execute(
            "UPDATE payments SET refunded_minor = refunded_minor + ? WHERE id = ?",
            (amount, payment),
        )
        n = int(self.db.scalar("SELECT COALESCE(MAX(n), 0) FROM balance_txns") or 0)
        rid = f"re_{n + 1:08d}"
        self._bt("refund", rid, reference, key, -amount, p[1], now)
        return ProviderResult("succeeded", rid, amount, now)

    # -- inspection and reports

    def captured_total(self, reference: str) -> int:
        """Money actually taken for ``reference`` (captures and charges, before refunds)."""
        v = self.db.scalar(
            "SELECT COALESCE(SUM(amount_minor), 0) FROM balance_txns "
            "WHERE type = 'charge' AND reference = ?",
            (reference,),
        )
        return int(v or 0)

    def charges_by_reference(self) -> dict[str, int]:
        rows = self.db.query(
            "SELECT reference, COUNT(*) FROM balance_txns WHERE type = 'charge' GROUP BY reference"
        )
        return {str(r): int(n) for r, n in rows}

    def open_authorizations(self) -> list[str]:
        rows = self.db.query("SELECT id FROM payments WHERE status = 'requires_capture'")
        return [str(r[0]) for r in rows]

    def settlement_report(self, day: str) -> list[dict[str, str]]:
        """The day's balance transactions and its payout, in the order they happened."""
        with self.db.transaction() as db:
            pay_id = f"po_{day.replace('-', '')}"
            rows = db.query(
                "SELECT id, type, source_id, reference, idem_key, amount_minor, fee_minor, "
                "net_minor, currency, created_ts_ns FROM balance_txns "
                "WHERE day = ? AND type <> 'payout' ORDER BY n",
                (day,),
            )
            exists = db.scalar("SELECT COUNT(*) FROM balance_txns WHERE id = ?", (pay_id,))
            if rows and not exists:
                net = sum(int(r[7]) for r in rows)
                n = int(db.scalar("SELECT COALESCE(MAX(n), 0) FROM balance_txns") or 0) + 1
                last_ts = max(int(r[9]) for r in rows)
                db.execute(
                    "INSERT INTO balance_txns(id, n, type, source_id, reference, idem_key, "
                    "amount_minor, fee_minor, net_minor, currency, created_ts_ns, day) "
                    "VALUES (?, ?, 'payout', ?, '', '', ?, 0, ?, ?, ?, ?)",
                    (pay_id, n, pay_id, -net, -net, str(rows[0][8]), last_ts, day),
                )
            payout = db.query(
                "SELECT id, type, source_id, reference, idem_key, amount_minor, fee_minor, "
                "net_minor, currency, created_ts_ns FROM balance_txns WHERE id = ?",
                (pay_id,),
            )
        return [dict(zip(REPORT_FIELDS, [*(str(x) for x in r), day])) for r in [*rows, *payout]]

    def write_settlement_csv(self, day: str, path: str | Path) -> Path:
        return write_report(path, self.settlement_report(day))


def write_report(path: str | Path, rows: Iterable[dict[str, str]]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=REPORT_FIELDS)
        w.writeheader()
        w.writerows(rows)
    return p


def read_report(path: str | Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REPORT_FIELDS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path}: not a settlement report: columns {missing} are missing "
                f"(expected {', '.join(REPORT_FIELDS)})"
            )
        return list(reader)


def _encode(r: ProviderResult) -> str:
    return json.dumps([r.status, r.ref, r.amount_minor, r.ts_ns, r.message])


def _decode(text: str) -> ProviderResult:
    status, ref, amount, ts, message = json.loads(text)
    s: Status = "succeeded" if status == "succeeded" else "declined"
    return ProviderResult(s, str(ref), int(amount), int(ts), str(message))
