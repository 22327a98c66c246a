"""Settlement: SessionOpened places a hold, CartClosed becomes one receipt and one collection.

The order of every money movement follows TigerBeetle's rule: the id is minted and stored
before it is submitted.

1. One transaction writes the receipt (idempotent by ``checkout_id``), posts the sale to the
   ledger and stores the planned provider calls (status ``pending``, idempotency keys derived
   from the checkout: ``cap:<checkout>``, ``chg:<checkout>``, ``rel:<session>``).
2. Each pending call is made with its stored key.
3. One transaction records the answers and posts the collections.

A crash (even SIGKILL) between 2 and 3 leaves the calls ``pending``; :meth:`Billing.resume`
makes them again with the same keys and the provider answers with its first answer, so the
shopper is charged once. A timeout is the same case. A flagged receipt stops after step 1 with
status ``review``: nothing is captured until a person approves or corrects it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from billing.db import Database
from billing.ledger import Entry, Ledger, Txn
from billing.pricing import Catalog, PricedCart, PricedLine
from billing.provider import (
    IdempotencyConflict,
    PaymentProvider,
    ProviderError,
    ProviderResult,
)
from billing.records import OP_COLUMNS, RECEIPT_COLUMNS, Op, Receipt
from walkout.messages import AnyMessage, CartClosed, CartLine, SessionOpened

if TYPE_CHECKING:
    from walkout.config import Store

log = logging.getLogger(__name__)

CrashHook = Callable[[str, Op], None]


class BillingError(Exception):
    """A finance action that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class BillingSettings:
    store_id: str
    preauth_minor: int = 5_000
    receipt_prefix: str = "R"


class Billing:
    """Settles carts, collects payments, refunds lines and keeps the ledger."""

    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        provider: PaymentProvider,
        settings: BillingSettings,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        hook: CrashHook | None = None,
    ):
        self.db = db
        self.catalog = catalog
        self.provider = provider
        self.settings = settings
        self.ledger = Ledger(db)
        self.clock_ns = clock_ns
        self.hook = hook
        self._followup = False  # set when a call was planned; answers may plan follow-ups
        self._statuses: dict[str, str] = {}  # receipt statuses set since settle_many began

    @classmethod
    def from_store(
        cls,
        store: Store,
        db_path: str | Path,
        provider: PaymentProvider,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        synchronous: str = "FULL",
    ) -> Billing:
        cfg = store.cfg
        return cls(
            Database.open(db_path, synchronous=synchronous),
            Catalog(cfg),
            provider,
            BillingSettings(cfg.store.id, cfg.billing.preauth_minor, cfg.billing.receipt_prefix),
            clock_ns=clock_ns,
        )

    # ---------------------------------------------------------------- messages

    def apply(self, msg: AnyMessage) -> None:
        """Apply one message from the inbox; anything but sessions and carts is ignored."""
        if isinstance(msg, SessionOpened):
            self.open_session(msg)
        elif isinstance(msg, CartClosed):
            self.settle(msg)

    def open_session(self, msg: SessionOpened) -> Op | None:
        """Place the pre-authorization hold for a session (once)."""
        amount = self.settings.preauth_minor
        if amount <= 0:
            return None
        with self.db.transaction() as db:
            if db.scalar("SELECT 1 FROM receipts WHERE session_id = ?", (msg.session_id,)):
                return None  # the cart closed already: a late hold would only block money
            op = self._plan(
                f"auth:{msg.session_id}",
                "authorize",
                session_id=msg.session_id,
                account_id=msg.account_id,
                amount_minor=amount,
            )
        if op.status == "pending":
            self._run([op])
        return self._op(op.op_key)

    def settle(self, msg: CartClosed) -> Receipt:
        return self.settle_many([msg])[0]

    def settle_many(self, msgs: Sequence[CartClosed]) -> list[Receipt]:
        """Settle carts with two group commits (receipts and plans; answers) around the calls."""
        holds: list[Op | None] = []
        for msg in msgs:
            auth = self._op(f"auth:{msg.session_id}")
            if auth is not None and auth.status == "pending":
                self._run([auth])  # learn whether the hold exists before planning
                auth = self._op(auth.op_key)
            holds.append(auth)
        with self.db.transaction() as db:
            numbers = itertools.count(
                int(db.scalar("SELECT COALESCE(MAX(seq), 0) FROM receipts") or 0) + 1
            )
            receipts = [self._receipt_for(msg, hold, numbers) for msg, hold in zip(msgs, holds)]
        self._statuses.clear()
        self._collect([r.receipt_no for r in receipts])
        out = []
        for r in receipts:
            status = self._statuses.get(r.receipt_no, r.status) if r.status != "review" else None
            out.append(r if status in (None, r.status) else dataclasses.replace(r, status=status))
        return out

    def _receipt_for(self, msg: CartClosed, hold: Op | None, numbers: Iterator[int]) -> Receipt:
        existing = self.receipt_by_checkout(msg.checkout_id)
        if existing is not None:
            if existing.revision == 0 and _cart_key(msg.lines) != _cart_key(
                [CartLine(sku=x.sku, quantity=x.quantity) for x in existing.lines]
            ):
                log.warning(
                    "checkout %s arrived again with other lines; receipt %s stands as first "
                    "settled (correct it by review or refund)",
                    msg.checkout_id,
                    existing.receipt_no,
                )
            return existing
        if msg.store_id != self.settings.store_id:
            raise BillingError(
                f"cart {msg.checkout_id} is from store {msg.store_id!r} but this billing serves "
                f"{self.settings.store_id!r}; point fusion at its own store's billing service"
            )
        priced = self.catalog.price(msg.lines)
        reasons = (*msg.review_reasons, *priced.review_reasons)
        review = msg.review or bool(priced.review_reasons) or any(x.review for x in priced.lines)
        if review and not reasons:
            reasons = ("a cart line was flagged for review",)
        seq = next(numbers)
        no = f"{self.settings.receipt_prefix}-{seq:06d}"
        now = self.clock_ns()
        self.db.execute(
            f"INSERT INTO receipts({RECEIPT_COLUMNS}, updated_ts_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                no,
                seq,
                msg.checkout_id,
                msg.session_id,
                msg.account_id,
                msg.store_id,
                priced.currency,
                msg.entry_ts_ns,
                msg.exit_ts_ns,
                priced.subtotal_minor,
                priced.discount_minor,
                priced.tax_minor,
                priced.total_minor,
                int(review),
                json.dumps(list(reasons)),
                "review" if review else "due",
                0,
                _lines_json(priced.lines),
                now,
                now,
            ),
        )
        self._post_sale(no, 0, priced, now)
        receipt = Receipt(
            receipt_no=no,
            seq=seq,
            checkout_id=msg.checkout_id,
            session_id=msg.session_id,
            account_id=msg.account_id,
            store_id=msg.store_id,
            currency=priced.currency,
            entry_ts_ns=msg.entry_ts_ns,
            exit_ts_ns=msg.exit_ts_ns,
            subtotal_minor=priced.subtotal_minor,
            discount_minor=priced.discount_minor,
            tax_minor=priced.tax_minor,
            total_minor=priced.total_minor,
            review=review,
            review_reasons=tuple(reasons),
            status="review" if review else "due",
            revision=0,
            lines=priced.lines,
            settled_ts_ns=now,
        )
        if not review:
            # A new receipt: no release of this session's hold can have been planned yet.
            self._plan_collection(receipt, hold, check_released=False)
        return receipt

    # ---------------------------------------------------------------- review

    def approve(self, receipt_no: str, actor: str) -> Receipt:
        """A person confirms a flagged receipt as it is; it is then collected."""
        with self.db.transaction() as db:
            r = self._review_receipt(receipt_no)
            now = self.clock_ns()
            db.execute(
                "INSERT INTO receipt_revisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    receipt_no,
                    r.revision,
                    _lines_json(r.lines),
                    r.total_minor,
                    "approve",
                    actor,
                    "",
                    now,
                ),
            )
            db.execute(
                "UPDATE receipts SET status = 'due', updated_ts_ns = ? WHERE receipt_no = ?",
                (now, receipt_no),
            )
            self._plan_collection(self._receipt(receipt_no))
        self._collect([receipt_no])
        return self._receipt(receipt_no)

    def correct(
        self, receipt_no: str, lines: Sequence[tuple[str, int]], reason: str, actor: str
    ) -> Receipt:
        """A person replaces a flagged receipt's lines (sku, quantity); it is then collected.

        The sale posted at settlement is reversed and the corrected sale posted, so the ledger
        keeps both; the receipt keeps its number and records the revision.
        """
        if not reason.strip():
            raise BillingError("a correction needs a reason (--reason TEXT) for the audit trail")
        with self.db.transaction() as db:
            r = self._review_receipt(receipt_no)
            evidence: dict[str, tuple[str, ...]] = {x.sku: x.evidence for x in r.lines}
            cart = [
                CartLine(sku=sku, quantity=qty, evidence=evidence.get(sku, ()))
                for sku, qty in lines
                if qty > 0
            ]
            unknown = [x.sku for x in cart if x.sku not in self.catalog.products]
            if unknown:
                raise BillingError(
                    f"receipt {receipt_no}: unknown sku {', '.join(unknown)}; "
                    "use the skus of the store config"
                )
            priced = self.catalog.price(cart)
            now = self.clock_ns()
            revision = r.revision + 1
            db.execute(
                "INSERT INTO receipt_revisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    receipt_no,
                    r.revision,
                    _lines_json(r.lines),
                    r.total_minor,
                    "correct",
                    actor,
                    reason,
                    now,
                ),
            )
            old_sale = f"sale:{receipt_no}:r{r.revision}"
            if self.ledger.get(old_sale) is not None:
                self.ledger.reverse(old_sale, memo=f"corrected by {actor}: {reason}", ts_ns=now)
            db.execute(
                "UPDATE receipts SET subtotal_minor = ?, discount_minor = ?, tax_minor = ?, "
                "total_minor = ?, status = 'due', revision = ?, lines_json = ?, "
                "updated_ts_ns = ? WHERE receipt_no = ?",
                (
                    priced.subtotal_minor,
                    priced.discount_minor,
                    priced.tax_minor,
                    priced.total_minor,
                    revision,
                    _lines_json(priced.lines),
                    now,
                    receipt_no,
                ),
            )
            self._post_sale(receipt_no, revision, priced, now)
            self._plan_collection(self._receipt(receipt_no))
        self._collect([receipt_no])
        return self._receipt(receipt_no)

    def _review_receipt(self, receipt_no: str) -> Receipt:
        r = self.receipt(receipt_no)
        if r is None:
            raise BillingError(
                f"no receipt {receipt_no!r}; list them with `walkout billing receipts list`"
            )
        if r.status != "review":
            raise BillingError(
                f"receipt {receipt_no} is {r.status!r}, not waiting for review; a paid receipt "
                "is corrected with a refund"
            )
        return r

    # ---------------------------------------------------------------- refunds

    def refund(self, receipt_no: str, line_no: int, reason: str) -> list[Op]:
        """Refund one whole receipt line (once) against the payments that collected it."""
        if not reason.strip():
            raise BillingError("a refund needs a reason (--reason TEXT)")
        with self.db.transaction() as db:
            r = self.receipt(receipt_no)
            if r is None:
                raise BillingError(f"no receipt {receipt_no!r}")
            line = next((x for x in r.lines if x.line_no == line_no), None)
            if line is None:
                raise BillingError(
                    f"receipt {receipt_no} has lines 1..{len(r.lines)}, not {line_no}"
                )
            done = db.scalar(
                "SELECT 1 FROM refunds WHERE receipt_no = ? AND line_no = ?",
                (receipt_no, line_no),
            )
            if done:
                ops = self._ops_where(
                    "receipt_no = ? AND kind = 'refund' AND line_no = ?", (receipt_no, line_no)
                )
            else:
                if r.status != "paid":
                    raise BillingError(
                        f"receipt {receipt_no} is {r.status!r}; only a paid receipt can be "
                        "refunded (approve or correct a flagged one instead)"
                    )
                if line.total_minor <= 0:
                    raise BillingError(f"line {line_no} of {receipt_no} cost nothing")
                ops = self._plan_refund(r, line, reason)
        self._run([o for o in ops if o.status == "pending"])
        return self._ops_where(
            "receipt_no = ? AND kind = 'refund' AND line_no = ?", (receipt_no, line_no)
        )

    def _plan_refund(self, r: Receipt, line: PricedLine, reason: str) -> list[Op]:
        now = self.clock_ns()
        self.db.execute(
            "INSERT INTO refunds VALUES (?, ?, ?, ?, ?, ?)",
            (r.receipt_no, line.line_no, reason, line.total_minor, line.tax_minor, now),
        )
        payments = self._ops_where(
            "receipt_no = ? AND kind IN ('capture', 'charge') AND status = 'succeeded'",
            (r.receipt_no,),
        )
        refunded = self._refunded_by_payment(r.receipt_no)
        left, tax_left = line.total_minor, line.tax_minor
        ops: list[Op] = []
        for p in sorted(payments, key=lambda o: o.kind != "capture"):
            assert p.provider_ref is not None
            room = p.amount_minor - refunded.get(p.provider_ref, 0)
            amount = min(left, room)
            if amount <= 0:
                continue
            tax = tax_left if amount == left else line.tax_minor * amount // line.total_minor
            ops.append(
                self._plan(
                    f"ref:{r.receipt_no}:{line.line_no}:{p.provider_ref}",
                    "refund",
                    session_id=r.session_id,
                    account_id=r.account_id,
                    amount_minor=amount,
                    checkout_id=r.checkout_id,
                    receipt_no=r.receipt_no,
                    target_ref=p.provider_ref,
                    line_no=line.line_no,
                    tax_minor=tax,
                )
            )
            left -= amount
            tax_left -= tax
        if left:
            raise BillingError(
                f"receipt {r.receipt_no}: {left} minor units of line {line.line_no} exceed what "
                "was collected and not yet refunded"
            )
        return ops

    def _refunded_by_payment(self, receipt_no: str) -> dict[str, int]:
        rows = self.db.query(
            "SELECT target_ref, SUM(amount_minor) FROM payment_ops WHERE receipt_no = ? "
            "AND kind = 'refund' AND status IN ('pending', 'succeeded') GROUP BY target_ref",
            (receipt_no,),
        )
        return {str(t): int(v) for t, v in rows}

    # ---------------------------------------------------------------- recovery

    def resume(self) -> int:
        """Make every pending provider call again with its stored key; how many were answered.

        Holds first, so a release planned for a hold learnt late is made in the same pass.
        """
        answered = len(self._run(self._ops_where("status = 'pending' AND kind = 'authorize'", ())))
        answered += len(
            self._run(self._ops_where("status = 'pending' AND kind <> 'authorize'", ()))
        )
        return answered

    # ---------------------------------------------------------------- planning

    def _plan(
        self,
        key: str,
        kind: str,
        *,
        session_id: str,
        account_id: str,
        amount_minor: int,
        checkout_id: str | None = None,
        receipt_no: str | None = None,
        target_ref: str | None = None,
        line_no: int | None = None,
        tax_minor: int = 0,
    ) -> Op:
        now = self.clock_ns()
        planned = (
            key,
            kind,
            session_id,
            checkout_id,
            receipt_no,
            account_id,
            self.catalog.currency,
            amount_minor,
            target_ref,
            line_no,
            tax_minor,
        )
        cur = self.db.execute(
            "INSERT INTO payment_ops(op_key, kind, session_id, checkout_id, receipt_no, "
            "account_id, currency, amount_minor, target_ref, line_no, tax_minor, status, "
            "provider_ref, provider_ts_ns, attempts, message, created_ts_ns, updated_ts_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', NULL, NULL, 0, '', ?, ?) "
            "ON CONFLICT(op_key) DO NOTHING",
            (*planned, now, now),
        )
        if cur.rowcount == 1:
            self._followup = True
            return Op(*planned, "pending", None, None, 0, "")
        op = self._op(key)
        assert op is not None
        return op

    def _plan_collection(
        self, r: Receipt, hold: Op | None = None, *, check_released: bool = True
    ) -> None:
        if check_released:
            hold = self._op(f"auth:{r.session_id}")
        released = check_released and self._op(f"rel:{r.session_id}") is not None
        held = hold if hold is not None and hold.status == "succeeded" and not released else None

        def plan(key: str, kind: str, amount_minor: int, target_ref: str | None) -> None:
            self._plan(
                key,
                kind,
                session_id=r.session_id,
                account_id=r.account_id,
                amount_minor=amount_minor,
                checkout_id=r.checkout_id,
                receipt_no=r.receipt_no,
                target_ref=target_ref,
            )

        if r.total_minor == 0:
            if held is not None:
                plan(f"rel:{r.session_id}", "release", 0, held.provider_ref)
            else:
                self._set_status(r.receipt_no, "paid")
            return
        rest = r.total_minor
        if held is not None:
            cap = min(rest, held.amount_minor)
            plan(f"cap:{r.checkout_id}", "capture", cap, held.provider_ref)
            rest -= cap
        if rest:
            plan(f"chg:{r.checkout_id}", "charge", rest, None)

    # ---------------------------------------------------------------- calling

    def _run(self, ops: Iterable[Op]) -> list[Op]:
        """Call the provider for each pending op, then record all answers in one commit."""
        answers: list[tuple[Op, ProviderResult]] = []
        for op in ops:
            if op.status != "pending":
                continue
            result = self._call(op)
            if result is not None:
                if self.hook is not None:
                    self.hook("after_provider", op)
                answers.append((op, result))
        if not answers:
            return []
        with self.db.transaction():
            recorded = [self._record(op, result) for op, result in answers]
        return [o for o in recorded if o is not None]

    def _call(self, op: Op) -> ProviderResult | None:
        p = self.provider
        ref = op.receipt_no or op.session_id
        try:
            if op.kind == "authorize":
                return p.authorize(
                    op.op_key,
                    account_id=op.account_id,
                    amount_minor=op.amount_minor,
                    currency=op.currency,
                    reference=ref,
                )
            if op.kind == "capture":
                assert op.target_ref is not None
                return p.capture(
                    op.op_key,
                    authorization=op.target_ref,
                    amount_minor=op.amount_minor,
                    reference=ref,
                )
            if op.kind == "charge":
                return p.charge(
                    op.op_key,
                    account_id=op.account_id,
                    amount_minor=op.amount_minor,
                    currency=op.currency,
                    reference=ref,
                )
            if op.kind == "release":
                assert op.target_ref is not None
                return p.release(op.op_key, authorization=op.target_ref, reference=ref)
            if op.kind == "refund":
                assert op.target_ref is not None
                return p.refund(
                    op.op_key, payment=op.target_ref, amount_minor=op.amount_minor, reference=ref
                )
            raise BillingError(f"unknown payment operation kind {op.kind!r} ({op.op_key})")
        except IdempotencyConflict as exc:
            log.error("payment %s refused as a conflicting retry: %s", op.op_key, exc)
            with self.db.transaction():
                self._finish(op, "failed", None, None, str(exc))
            return None
        except ProviderError as exc:
            log.warning(
                "payment %s got no answer (%s); it stays pending and is retried with the same key",
                op.op_key,
                exc,
            )
            with self.db.transaction() as db:
                db.execute(
                    "UPDATE payment_ops SET attempts = attempts + 1, message = ?, "
                    "updated_ts_ns = ? WHERE op_key = ?",
                    (f"{type(exc).__name__}: {exc}"[:500], self.clock_ns(), op.op_key),
                )
            return None

    def _finish(
        self, op: Op, status: str, ref: str | None, ts_ns: int | None, message: str
    ) -> bool:
        """Record an answer; False when the call was no longer pending."""
        cur = self.db.execute(
            "UPDATE payment_ops SET status = ?, provider_ref = ?, provider_ts_ns = ?, "
            "attempts = attempts + 1, message = ?, updated_ts_ns = ? "
            "WHERE op_key = ? AND status = 'pending'",
            (status, ref, ts_ns, message[:500], self.clock_ns(), op.op_key),
        )
        return bool(cur.rowcount == 1)

    def _record(self, op: Op, result: ProviderResult) -> Op | None:
        ok = result.status == "succeeded"
        status = "succeeded" if ok else "declined"
        ref = result.ref or None
        if not self._finish(op, status, ref, result.ts_ns, result.message):
            return None  # another worker recorded it first
        cur = op.currency
        if ok and op.kind in ("capture", "charge"):
            self.ledger.post(
                Txn(
                    f"collect:{op.op_key}",
                    "collect",
                    op.receipt_no or op.session_id,
                    f"{op.kind} {result.ref}",
                    (
                        Entry("payment_clearing", op.amount_minor, cur),
                        Entry("customer_receivables", -op.amount_minor, cur),
                    ),
                    ts_ns=result.ts_ns,
                )
            )
        elif ok and op.kind == "refund":
            net = op.amount_minor - op.tax_minor
            entries = [
                Entry("refunds", net, cur),
                Entry("tax_payable", op.tax_minor, cur),
                Entry("payment_clearing", -op.amount_minor, cur),
            ]
            self.ledger.post(
                Txn(
                    f"refund:{op.op_key}",
                    "refund",
                    op.receipt_no or op.session_id,
                    f"refund {result.ref} line {op.line_no}",
                    tuple(e for e in entries if e.amount_minor),
                    ts_ns=result.ts_ns,
                )
            )
        elif not ok and op.kind == "capture" and op.checkout_id is not None:
            # The hold lapsed or was lost: charge the card for the same amount instead.
            self._plan(
                f"fbk:{op.checkout_id}",
                "charge",
                session_id=op.session_id,
                account_id=op.account_id,
                amount_minor=op.amount_minor,
                checkout_id=op.checkout_id,
                receipt_no=op.receipt_no,
            )
        elif ok and op.kind == "authorize":
            r = self.db.one(
                "SELECT receipt_no, status FROM receipts WHERE session_id = ?", (op.session_id,)
            )
            planned = r is not None and self.db.scalar(
                "SELECT 1 FROM payment_ops WHERE receipt_no = ? AND kind = 'capture'", (r[0],)
            )
            # A receipt in review plans its collection at approval and will use this hold.
            if r is not None and r[1] != "review" and not planned:
                # The cart was settled while the hold's answer was unknown: free the hold.
                self._plan(
                    f"rel:{op.session_id}",
                    "release",
                    session_id=op.session_id,
                    account_id=op.account_id,
                    amount_minor=0,
                    receipt_no=str(r[0]),
                    target_ref=result.ref,
                )
        if op.receipt_no is not None and op.kind != "refund":
            self._refresh(op.receipt_no)
        return dataclasses.replace(
            op,
            status=status,
            provider_ref=ref,
            provider_ts_ns=result.ts_ns,
            attempts=op.attempts + 1,
            message=result.message,
        )

    def _refresh(self, receipt_no: str) -> None:
        rows = self.db.query(
            "SELECT op_key, kind, status FROM payment_ops WHERE receipt_no = ? "
            "AND kind IN ('capture', 'charge', 'release')",
            (receipt_no,),
        )
        keys = {str(k) for k, _, _ in rows}
        statuses = {
            str(s)
            for k, kind, s in rows
            # A declined capture is replaced by its fallback charge.
            if not (kind == "capture" and s == "declined" and f"fbk:{str(k)[4:]}" in keys)
        }
        if "declined" in statuses or "failed" in statuses:
            self._set_status(receipt_no, "declined")
        elif statuses and statuses == {"succeeded"}:
            self._set_status(receipt_no, "paid")

    def _set_status(self, receipt_no: str, status: str) -> None:
        self._statuses[receipt_no] = status
        self.db.execute(
            "UPDATE receipts SET status = ?, updated_ts_ns = ? WHERE receipt_no = ? "
            "AND status <> 'review'",
            (status, self.clock_ns(), receipt_no),
        )

    def _post_sale(self, receipt_no: str, revision: int, priced: PricedCart, now: int) -> None:
        total, tax = priced.total_minor, priced.tax_minor
        if total == 0:
            return
        cur = priced.currency
        entries = [
            Entry("customer_receivables", total, cur),
            Entry("revenue", -(total - tax), cur),
            Entry("tax_payable", -tax, cur),
        ]
        self.ledger.post(
            Txn(
                f"sale:{receipt_no}:r{revision}",
                "sale",
                receipt_no,
                f"receipt {receipt_no}",
                tuple(e for e in entries if e.amount_minor),
                ts_ns=now,
            )
        )

    # ---------------------------------------------------------------- reading

    def _op(self, key: str) -> Op | None:
        row = self.db.one(f"SELECT {OP_COLUMNS} FROM payment_ops WHERE op_key = ?", (key,))
        return None if row is None else Op.from_row(row)

    def _ops_where(self, where: str, params: tuple[str | int, ...]) -> list[Op]:
        rows = self.db.query(
            f"SELECT {OP_COLUMNS} FROM payment_ops WHERE {where} ORDER BY created_ts_ns, op_key",
            params,
        )
        return [Op.from_row(r) for r in rows]

    def _collect(self, receipt_nos: Sequence[str]) -> None:
        """Make the receipts' pending calls; again for follow-ups their answers planned."""
        ops = self._pending_for(receipt_nos)
        for _ in range(3):
            self._followup = False
            if not self._run(ops) or not self._followup:
                return
            ops = self._pending_for(receipt_nos)

    def _pending_for(self, receipt_nos: Sequence[str]) -> list[Op]:
        out: list[Op] = []
        for no in receipt_nos:
            out.extend(self._ops_where("receipt_no = ? AND status = 'pending'", (no,)))
        return out

    def ops(self, receipt_no: str | None = None) -> list[Op]:
        if receipt_no is None:
            return self._ops_where("1 = 1", ())
        return self._ops_where("receipt_no = ?", (receipt_no,))

    def _receipt(self, receipt_no: str) -> Receipt:
        r = self.receipt(receipt_no)
        assert r is not None, receipt_no
        return r

    def receipt(self, receipt_no: str) -> Receipt | None:
        row = self.db.one(
            f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE receipt_no = ?", (receipt_no,)
        )
        return None if row is None else Receipt.from_row(row)

    def receipt_by_checkout(self, checkout_id: str) -> Receipt | None:
        row = self.db.one(
            f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE checkout_id = ?", (checkout_id,)
        )
        return None if row is None else Receipt.from_row(row)

    def refunds(self, receipt_no: str) -> dict[int, tuple[str, int]]:
        rows = self.db.query(
            "SELECT line_no, reason, amount_minor FROM refunds WHERE receipt_no = ?",
            (receipt_no,),
        )
        return {int(n): (str(why), int(v)) for n, why, v in rows}


def list_receipts(
    db: Database, *, query: str = "", status: str = "", limit: int = 200
) -> list[Receipt]:
    """Receipts in settlement order, filtered by a text match on number, account, checkout,
    session or a line's sku, and by status."""
    where, params = ["1 = 1"], []
    if query:
        like = f"%{query}%"
        where.append(
            "(receipt_no LIKE ? OR account_id LIKE ? OR checkout_id LIKE ? OR "
            "session_id LIKE ? OR lines_json LIKE ?)"
        )
        params += [like] * 5
    if status:
        where.append("status = ?")
        params.append(status)
    rows = db.query(
        f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE {' AND '.join(where)} "
        f"ORDER BY exit_ts_ns, checkout_id LIMIT {int(limit)}",
        params,
    )
    return [Receipt.from_row(r) for r in rows]


def _cart_key(lines: Iterable[CartLine]) -> list[tuple[str, int]]:
    totals: dict[str, int] = {}
    for x in lines:
        totals[x.sku] = totals.get(x.sku, 0) + x.quantity
    return sorted(totals.items())


def _lines_json(lines: Sequence[PricedLine]) -> str:
    return json.dumps([x.as_dict() for x in lines], separators=(",", ":"))
