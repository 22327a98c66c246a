"""A double-entry, append-only ledger.

Every transaction is a set of entries whose signed amounts (debit positive, credit negative)
sum to zero per currency. Nothing is ever updated or deleted: a correction is a new transaction
that reverses an earlier one (at most once). Transaction ids are minted by the caller from the
business event (``sale:R-000001``, ``collect:cap:co-...``), so posting the same event twice is a
no-op that returns the existing transaction, and posting a different body under a used id is an
error.

Accounts (normal balance in brackets):

* ``customer_receivables`` [debit]: what shoppers owe us for settled receipts;
* ``revenue`` [credit]: sales net of tax;
* ``tax_payable`` [credit]: tax collected on behalf of the tax office;
* ``payment_clearing`` [debit]: money the provider holds for us (captured, not yet paid out);
* ``fees`` [debit]: provider fees;
* ``refunds`` [debit]: refunds to shoppers, net of tax (a contra-revenue account);
* ``bank`` [debit]: payouts received from the provider.

Validators return problems as data (:func:`validate`, :meth:`Ledger.check`); the balance check
runs last.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from billing.db import Database

ACCOUNTS: tuple[str, ...] = (
    "customer_receivables",
    "revenue",
    "tax_payable",
    "payment_clearing",
    "fees",
    "refunds",
    "bank",
)


@dataclass(frozen=True)
class Entry:
    account: str
    amount_minor: int  # debit positive, credit negative
    currency: str = "EUR"


@dataclass(frozen=True)
class Txn:
    txn_id: str
    kind: str
    ref: str
    memo: str
    entries: tuple[Entry, ...]
    reverses: str | None = None
    ts_ns: int = 0


@dataclass(frozen=True)
class Problem:
    """A rule the ledger breaks, as data: what, where, and the numbers."""

    kind: str
    where: str
    detail: str


class LedgerError(Exception):
    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.kind} at {p.where}: {p.detail}" for p in self.problems))


def validate(txn: Txn) -> list[Problem]:
    """Every problem with one transaction before it is posted (empty when it may be posted)."""
    out: list[Problem] = []
    if not txn.txn_id:
        out.append(Problem("no_id", "<new>", "a transaction needs an id minted by the caller"))
    if not txn.entries:
        out.append(Problem("empty", txn.txn_id, "a transaction needs at least two entries"))
    sums: dict[str, int] = defaultdict(int)
    for i, e in enumerate(txn.entries):
        if e.account not in ACCOUNTS:
            out.append(
                Problem("unknown_account", f"{txn.txn_id}[{i}]", f"{e.account!r} not in {ACCOUNTS}")
            )
        if not isinstance(e.amount_minor, int) or isinstance(e.amount_minor, bool):
            out.append(Problem("not_integer", f"{txn.txn_id}[{i}]", f"{e.amount_minor!r}"))
            continue
        if e.amount_minor == 0:
            out.append(Problem("zero_entry", f"{txn.txn_id}[{i}]", "an entry moves no money"))
        sums[e.currency] += e.amount_minor
    for currency, total in sorted(sums.items()):
        if total != 0:
            out.append(
                Problem("unbalanced", txn.txn_id, f"entries sum to {total} {currency}, not 0")
            )
    return out


class Ledger:
    """Posting, reversing and checking, inside the caller's database transaction."""

    def __init__(self, db: Database):
        self.db = db

    def post(self, txn: Txn) -> bool:
        """Post ``txn``; False when exactly this transaction was already posted."""
        problems = validate(txn)
        if problems:
            raise LedgerError(problems)
        with self.db.transaction() as db:
            cur = db.execute(
                "INSERT INTO ledger_txns(txn_id, kind, ref, memo, reverses, ts_ns) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(txn_id) DO NOTHING",
                (txn.txn_id, txn.kind, txn.ref, txn.memo, txn.reverses, txn.ts_ns),
            )
            if cur.rowcount != 1:
                existing = self.get(txn.txn_id)
                if existing is None or _body(existing) != _body(txn):
                    raise LedgerError(
                        [Problem("id_reused", txn.txn_id, "already posted with other entries")]
                    )
                return False
            db.executemany(
                "INSERT INTO ledger_entries(txn_id, idx, account, amount_minor, currency) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (txn.txn_id, i, e.account, e.amount_minor, e.currency)
                    for i, e in enumerate(txn.entries)
                ],
            )
            totals: dict[tuple[str, str], int] = defaultdict(int)
            for e in txn.entries:
                totals[(e.account, e.currency)] += e.amount_minor
            db.executemany(
                "INSERT INTO ledger_balances(account, currency, balance_minor) VALUES (?, ?, ?) "
                "ON CONFLICT(account, currency) DO UPDATE "
                "SET balance_minor = ledger_balances.balance_minor + excluded.balance_minor",
                [(a, c, v) for (a, c), v in totals.items()],
            )
        return True

    def reverse(self, txn_id: str, *, memo: str, ts_ns: int = 0) -> Txn:
        """Post the reversal of ``txn_id`` (once; a second call returns the same reversal)."""
        with self.db.transaction():
            original = self.get(txn_id)
            if original is None:
                raise LedgerError([Problem("unknown_txn", txn_id, "nothing to reverse")])
            if original.reverses is not None:
                raise LedgerError(
                    [Problem("reverse_reversal", txn_id, "post the original again instead")]
                )
            rev = Txn(
                txn_id=f"rev:{txn_id}",
                kind="reversal",
                ref=original.ref,
                memo=memo,
                entries=tuple(
                    Entry(e.account, -e.amount_minor, e.currency) for e in original.entries
                ),
                reverses=txn_id,
                ts_ns=ts_ns,
            )
            existing = self.get(rev.txn_id)
            if existing is not None:
                return existing
            self.post(rev)
            return rev

    def get(self, txn_id: str) -> Txn | None:
        head = self.db.one(
            "SELECT kind, ref, memo, reverses, ts_ns FROM ledger_txns WHERE txn_id = ?", (txn_id,)
        )
        if head is None:
            return None
        rows = self.db.query(
            "SELECT account, amount_minor, currency FROM ledger_entries WHERE txn_id = ? "
            "ORDER BY idx",
            (txn_id,),
        )
        return Txn(
            txn_id=txn_id,
            kind=str(head[0]),
            ref=str(head[1]),
            memo=str(head[2]),
            entries=tuple(Entry(str(a), int(v), str(c)) for a, v, c in rows),
            reverses=None if head[3] is None else str(head[3]),
            ts_ns=int(head[4]),
        )

    def balance(self, account: str, currency: str = "EUR") -> int:
        v = self.db.scalar(
            "SELECT balance_minor FROM ledger_balances WHERE account = ? AND currency = ?",
            (account, currency),
        )
        return int(v or 0)

    def balances(self) -> dict[tuple[str, str], int]:
        rows = self.db.query("SELECT account, currency, balance_minor FROM ledger_balances")
        return {(str(a), str(c)): int(v) for a, c, v in rows}

    def txn_ids(self, ref: str | None = None) -> list[str]:
        if ref is None:
            return [str(r[0]) for r in self.db.query("SELECT txn_id FROM ledger_txns")]
        rows = self.db.query("SELECT txn_id FROM ledger_txns WHERE ref = ? ORDER BY ts_ns", (ref,))
        return [str(r[0]) for r in rows]

    def check(self) -> list[Problem]:
        """Every broken invariant of the whole ledger; the balance check runs last."""
        out: list[Problem] = []
        for (txn_id,) in self.db.query(
            "SELECT t.txn_id FROM ledger_txns t LEFT JOIN ledger_entries e "
            "ON e.txn_id = t.txn_id GROUP BY t.txn_id HAVING COUNT(e.txn_id) < 2"
        ):
            out.append(Problem("too_few_entries", str(txn_id), "fewer than two entries"))
        for txn_id, currency, total in self.db.query(
            "SELECT txn_id, currency, SUM(amount_minor) FROM ledger_entries "
            "GROUP BY txn_id, currency HAVING SUM(amount_minor) <> 0"
        ):
            out.append(Problem("unbalanced", str(txn_id), f"sums to {total} {currency}"))
        for (orphan,) in self.db.query(
            "SELECT DISTINCT e.txn_id FROM ledger_entries e LEFT JOIN ledger_txns t "
            "ON t.txn_id = e.txn_id WHERE t.txn_id IS NULL"
        ):
            out.append(Problem("orphan_entries", str(orphan), "entries without a transaction"))
        sums = {
            (str(a), str(c)): int(v)
            for a, c, v in self.db.query(
                "SELECT account, currency, SUM(amount_minor) FROM ledger_entries "
                "GROUP BY account, currency"
            )
        }
        stored = self.balances()
        for key in sorted(set(sums) | set(stored)):
            if sums.get(key, 0) != stored.get(key, 0):
                out.append(
                    Problem(
                        "balance_drift",
                        f"{key[0]} {key[1]}",
                        f"stored {stored.get(key, 0)}, entries sum to {sums.get(key, 0)}",
                    )
                )
        by_currency: dict[str, int] = defaultdict(int)
        for (_, currency), v in stored.items():
            by_currency[currency] += v
        for currency, total in sorted(by_currency.items()):
            if total != 0:
                out.append(Problem("trial_balance", currency, f"balances sum to {total}, not 0"))
        return out


def _body(txn: Txn) -> tuple[object, ...]:
    return (txn.kind, txn.ref, txn.entries, txn.reverses)
