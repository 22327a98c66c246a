"""Receipts and payment operations as immutable records read from the billing database."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from billing.db import Row
from billing.pricing import PricedLine

RECEIPT_COLUMNS = (
    "receipt_no, seq, checkout_id, session_id, account_id, store_id, currency, entry_ts_ns, "
    "exit_ts_ns, subtotal_minor, discount_minor, tax_minor, total_minor, review, review_reasons, "
    "status, revision, lines_json, settled_ts_ns"
)

OP_COLUMNS = (
    "op_key, kind, session_id, checkout_id, receipt_no, account_id, currency, amount_minor, "
    "target_ref, line_no, tax_minor, status, provider_ref, provider_ts_ns, attempts, message"
)

# Receipt status: "review" (flagged, waiting for a person; nothing captured), "due" (payment
# operations planned, not all answered), "paid", "declined" (the card was declined; the
# receivable stays open for finance).
RECEIPT_STATUSES = ("review", "due", "paid", "declined")


@dataclass(frozen=True)
class Receipt:
    receipt_no: str
    seq: int
    checkout_id: str
    session_id: str
    account_id: str
    store_id: str
    currency: str
    entry_ts_ns: int
    exit_ts_ns: int
    subtotal_minor: int
    discount_minor: int
    tax_minor: int
    total_minor: int
    review: bool
    review_reasons: tuple[str, ...]
    status: str
    revision: int
    lines: tuple[PricedLine, ...]
    settled_ts_ns: int

    @classmethod
    def from_row(cls, r: Row) -> Receipt:
        return cls(
            receipt_no=str(r[0]),
            seq=int(r[1]),
            checkout_id=str(r[2]),
            session_id=str(r[3]),
            account_id=str(r[4]),
            store_id=str(r[5]),
            currency=str(r[6]),
            entry_ts_ns=int(r[7]),
            exit_ts_ns=int(r[8]),
            subtotal_minor=int(r[9]),
            discount_minor=int(r[10]),
            tax_minor=int(r[11]),
            total_minor=int(r[12]),
            review=bool(r[13]),
            review_reasons=tuple(json.loads(str(r[14]))),
            status=str(r[15]),
            revision=int(r[16]),
            lines=tuple(PricedLine.from_dict(d) for d in json.loads(str(r[17]))),
            settled_ts_ns=int(r[18]),
        )

    def export(self) -> dict[str, Any]:
        """The contract shape of ``billing.export.receipts_json``."""
        return {
            "receipt_no": self.receipt_no,
            "checkout_id": self.checkout_id,
            "session_id": self.session_id,
            "account_id": self.account_id,
            "currency": self.currency,
            "lines": [
                {
                    "line_no": x.line_no,
                    "sku": x.sku,
                    "name": x.name,
                    "quantity": x.quantity,
                    "unit_price_minor": x.unit_price_minor,
                    "discount_minor": x.discount_minor,
                    "tax_minor": x.tax_minor,
                    "total_minor": x.total_minor,
                    "promotion": x.promotion,
                    "evidence": list(x.evidence),
                    "review": x.review,
                }
                for x in self.lines
            ],
            "subtotal_minor": self.subtotal_minor,
            "discount_minor": self.discount_minor,
            "tax_minor": self.tax_minor,
            "total_minor": self.total_minor,
            "review": self.review,
            "status": self.status,
            "settled_ts_ns": self.settled_ts_ns,
        }


@dataclass(frozen=True)
class Op:
    """One provider call, stored (status "pending") before it is made."""

    op_key: str  # the idempotency key
    kind: str  # authorize | capture | charge | release | refund
    session_id: str
    checkout_id: str | None
    receipt_no: str | None
    account_id: str
    currency: str
    amount_minor: int
    target_ref: str | None
    line_no: int | None
    tax_minor: int
    status: str  # pending | succeeded | declined | failed
    provider_ref: str | None
    provider_ts_ns: int | None
    attempts: int
    message: str

    @classmethod
    def from_row(cls, r: Row) -> Op:
        return cls(
            op_key=str(r[0]),
            kind=str(r[1]),
            session_id=str(r[2]),
            checkout_id=None if r[3] is None else str(r[3]),
            receipt_no=None if r[4] is None else str(r[4]),
            account_id=str(r[5]),
            currency=str(r[6]),
            amount_minor=int(r[7]),
            target_ref=None if r[8] is None else str(r[8]),
            line_no=None if r[9] is None else int(r[9]),
            tax_minor=int(r[10]),
            status=str(r[11]),
            provider_ref=None if r[12] is None else str(r[12]),
            provider_ts_ns=None if r[13] is None else int(r[13]),
            attempts=int(r[14]),
            message=str(r[15]),
        )
