"""The ledger's invariants under any sequence of posts, repeats, reversals, refusals and restarts.

Checked after every step (hypothesis stateful testing): every transaction balances, every stored
balance equals the sum of its entries, the trial balance is zero, and the balances equal a
plain model that only adds up accepted transactions.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from billing.db import Database
from billing.ledger import ACCOUNTS, Entry, Ledger, LedgerError, Txn, validate

amounts = st.integers(min_value=-1_000_000, max_value=1_000_000).filter(lambda v: v != 0)
legs = st.lists(st.tuples(st.sampled_from(ACCOUNTS), amounts), min_size=1, max_size=5)


class LedgerMachine(RuleBasedStateMachine):
    txns = Bundle("txns")

    @initialize()
    def open(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-"))
        self.db = Database.open(self.dir / "l.sqlite", synchronous="OFF")
        self.ledger = Ledger(self.db)
        self.model: dict[str, int] = defaultdict(int)
        self.n = 0
        self.reversed: set[str] = set()

    def teardown(self) -> None:
        if hasattr(self, "db"):
            self.db.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _new_id(self) -> str:
        self.n += 1
        return f"t{self.n}"

    @rule(target=txns, parts=legs)
    def post_balanced(self, parts: list[tuple[str, int]]) -> str:
        entries = [Entry(a, v) for a, v in parts]
        rest = -sum(v for _, v in parts)
        if rest:
            entries.append(Entry("payment_clearing", rest))
        txn = Txn(self._new_id(), "test", "ref", "", tuple(entries))
        if len(entries) < 2 or validate(txn):
            with pytest.raises(LedgerError):
                self.ledger.post(txn)
            return txn.txn_id  # never posted: later reversals of it are refused
        assert self.ledger.post(txn)
        for e in entries:
            self.model[e.account] += e.amount_minor
        return txn.txn_id

    @rule(parts=legs, skew=amounts)
    def unbalanced_is_refused(self, parts: list[tuple[str, int]], skew: int) -> None:
        entries = [Entry(a, v) for a, v in parts]
        entries.append(Entry("bank", -sum(v for _, v in parts) + skew))
        txn = Txn(self._new_id(), "test", "ref", "", tuple(e for e in entries if e.amount_minor))
        with pytest.raises(LedgerError) as info:
            self.ledger.post(txn)
        assert {p.kind for p in info.value.problems} & {"unbalanced", "empty"}

    @rule(txn_id=txns)
    def repost_is_a_no_op(self, txn_id: str) -> None:
        txn = self.ledger.get(txn_id)
        if txn is not None:
            assert self.ledger.post(txn) is False

    @rule(txn_id=txns)
    def reused_id_with_other_body_is_refused(self, txn_id: str) -> None:
        txn = self.ledger.get(txn_id)
        if txn is not None:
            other = Txn(txn_id, txn.kind, txn.ref, "", (Entry("bank", 1), Entry("fees", -1)))
            with pytest.raises(LedgerError, match="id_reused"):
                self.ledger.post(other)

    @rule(txn_id=consumes(txns))
    def reverse(self, txn_id: str) -> None:
        original = self.ledger.get(txn_id)
        if original is None:
            with pytest.raises(LedgerError, match="unknown_txn"):
                self.ledger.reverse(txn_id, memo="x")
            return
        rev = self.ledger.reverse(txn_id, memo="correction")
        again = self.ledger.reverse(txn_id, memo="correction")
        assert again.txn_id == rev.txn_id
        if txn_id not in self.reversed:
            self.reversed.add(txn_id)
            for e in original.entries:
                self.model[e.account] -= e.amount_minor

    @rule(txn_id=txns)
    def entries_are_append_only(self, txn_id: str) -> None:
        if self.ledger.get(txn_id) is None:
            return
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            self.db.execute(
                "UPDATE ledger_entries SET amount_minor = 0 WHERE txn_id = ?", (txn_id,)
            )
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            self.db.execute("DELETE FROM ledger_txns WHERE txn_id = ?", (txn_id,))

    @rule()
    def restart(self) -> None:
        self.db.close()
        self.db = Database.open(self.dir / "l.sqlite", synchronous="OFF")
        self.ledger = Ledger(self.db)

    @invariant()
    def balances_hold(self) -> None:
        if not hasattr(self, "ledger"):
            return
        assert self.ledger.check() == []
        stored = {a: v for (a, _), v in self.ledger.balances().items() if v}
        assert stored == {a: v for a, v in self.model.items() if v}


LedgerMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestLedger = LedgerMachine.TestCase


def test_check_finds_tampering(tmp_path: Path) -> None:
    """The checker reports drift and imbalance that bypassed the API (e.g. a manual edit)."""
    db = Database.open(tmp_path / "l.sqlite")
    ledger = Ledger(db)
    ledger.post(
        Txn("a", "sale", "R-1", "", (Entry("customer_receivables", 100), Entry("revenue", -100)))
    )
    db.execute("DROP TRIGGER ledger_entries_no_update")
    db.execute("UPDATE ledger_entries SET amount_minor = 90 WHERE txn_id = 'a' AND idx = 0")
    kinds = [p.kind for p in ledger.check()]
    # The stored balances were not touched, so the trial balance still sums to zero.
    assert kinds == ["unbalanced", "balance_drift"]
