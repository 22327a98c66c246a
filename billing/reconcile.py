"""Reconciliation: our receipts and payment calls against the provider's settlement report.

Every finding is data (kind, receipt, key, provider id, the two amounts, a sentence), written as
CSV and HTML for finance. Kinds:

* ``missing_capture``: we hold a successful capture or charge (or a collectable receipt with no
  answered capture at all) that the report does not settle;
* ``amount_mismatch``: the report settles another amount than we captured or refunded, or a
  paid receipt's collections do not add up to its total;
* ``duplicate``: the report settles the same payment or idempotency key more than once, or we
  collected more for a receipt than its total;
* ``refund_not_settled``: a successful refund of ours is not in the report;
* ``orphan_settlement_line``: a charge or refund in the report that we never asked for.

Scope is one report day (UTC, the provider's ``report_date``): our calls answered that day and
the receipts settled that day. Fees and payouts are not matched to receipts; with ``post=True``
they are posted to the ledger (fees and bank payouts against payment clearing), idempotently by
balance transaction id.
"""

from __future__ import annotations

import csv
import html
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from billing.db import Database
from billing.ledger import Entry, Ledger, Txn
from billing.records import OP_COLUMNS, RECEIPT_COLUMNS, Op, Receipt
from billing.simprovider import utc_day

KINDS = (
    "missing_capture",
    "amount_mismatch",
    "duplicate",
    "refund_not_settled",
    "orphan_settlement_line",
)


@dataclass(frozen=True, order=True)
class Finding:
    kind: str
    receipt_no: str
    op_key: str
    source_id: str
    expected_minor: int | None
    actual_minor: int | None
    detail: str


def report_days(rows: Sequence[dict[str, str]]) -> list[str]:
    return sorted({r["report_date"] for r in rows if r.get("report_date")})


def reconcile(
    db: Database, rows: Sequence[dict[str, str]], day: str | None = None
) -> list[Finding]:
    """Every mismatch between our records of ``day`` and the report ``rows``."""
    days = [day] if day else report_days(rows)
    if not days:
        return []
    ops = [
        Op.from_row(r)
        for r in db.query(
            f"SELECT {OP_COLUMNS} FROM payment_ops WHERE status = 'succeeded' "
            "AND kind IN ('capture', 'charge', 'refund')"
        )
    ]
    by_key = {o.op_key: o for o in ops}
    by_ref: dict[tuple[str, str], Op] = {}
    for o in ops:
        if o.provider_ref is not None:
            by_ref[("refund" if o.kind == "refund" else "charge", o.provider_ref)] = o
    in_scope = [
        o for o in ops if o.provider_ts_ns is not None and utc_day(o.provider_ts_ns) in days
    ]
    money = [r for r in rows if r.get("type") in ("charge", "refund")]
    out: list[Finding] = []

    matched: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in money:
        op = by_ref.get((row["type"], row["source_id"]))
        if op is None:
            known = by_key.get(row.get("idempotency_key", ""))
            if known is not None and _row_kind(known) == row["type"]:
                matched[known.op_key].append(row)  # same key settled under another id
                continue
            out.append(
                Finding(
                    "orphan_settlement_line",
                    row.get("reference", ""),
                    row.get("idempotency_key", ""),
                    row["source_id"],
                    None,
                    _int(row["amount_minor"]),
                    f"{row['type']} {row['balance_transaction_id']} of {row['amount_minor']} "
                    "matches no capture, charge or refund of ours",
                )
            )
            continue
        matched[op.op_key].append(row)

    for op in in_scope:
        got = matched.get(op.op_key, [])
        expected = -op.amount_minor if op.kind == "refund" else op.amount_minor
        receipt = op.receipt_no or ""
        ref = op.provider_ref or ""
        if not got:
            kind = "refund_not_settled" if op.kind == "refund" else "missing_capture"
            out.append(
                Finding(
                    kind,
                    receipt,
                    op.op_key,
                    ref,
                    expected,
                    None,
                    f"our {op.kind} {ref} of {op.amount_minor} is not in the report",
                )
            )
            continue
        if len(got) > 1:
            ids = ", ".join(r["balance_transaction_id"] for r in got)
            out.append(
                Finding(
                    "duplicate",
                    receipt,
                    op.op_key,
                    ref,
                    expected,
                    sum(_int(r["amount_minor"]) for r in got),
                    f"our {op.kind} {ref} is settled {len(got)} times ({ids})",
                )
            )
            continue
        actual = _int(got[0]["amount_minor"])
        if actual != expected:
            out.append(
                Finding(
                    "amount_mismatch",
                    receipt,
                    op.op_key,
                    ref,
                    expected,
                    actual,
                    f"our {op.kind} {ref} was {expected}; the report settles {actual}",
                )
            )

    collected: dict[str, int] = defaultdict(int)
    for o in ops:
        if o.kind in ("capture", "charge") and o.receipt_no is not None:
            collected[o.receipt_no] += o.amount_minor
    for rec in db.query(
        f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE status IN ('due', 'paid') "
        "AND total_minor > 0"
    ):
        r = Receipt.from_row(rec)
        if utc_day(r.settled_ts_ns) not in days:
            continue
        taken = collected.get(r.receipt_no)
        if taken is None:
            out.append(
                Finding(
                    "missing_capture",
                    r.receipt_no,
                    "",
                    "",
                    r.total_minor,
                    None,
                    f"receipt {r.receipt_no} ({r.status}) has no answered capture",
                )
            )
        elif taken > r.total_minor:
            out.append(
                Finding(
                    "duplicate",
                    r.receipt_no,
                    "",
                    "",
                    r.total_minor,
                    taken,
                    f"receipt {r.receipt_no} of {r.total_minor} was collected {taken}",
                )
            )
        elif r.status == "paid" and taken != r.total_minor:
            out.append(
                Finding(
                    "amount_mismatch",
                    r.receipt_no,
                    "",
                    "",
                    r.total_minor,
                    taken,
                    f"paid receipt {r.receipt_no} of {r.total_minor} collected {taken}",
                )
            )
    return sorted(out)


def post_settlement(db: Database, rows: Sequence[dict[str, str]]) -> int:
    """Post the report's fees and payouts to the ledger (once each); how many were new."""
    ledger = Ledger(db)
    n = 0
    with db.transaction():
        for row in rows:
            kind, amount, cur = row["type"], _int(row["amount_minor"]), row["currency"]
            if kind not in ("fee", "payout") or amount == 0:
                continue
            account = "fees" if kind == "fee" else "bank"
            n += ledger.post(
                Txn(
                    f"{kind}:{row['balance_transaction_id']}",
                    kind,
                    row["source_id"],
                    f"{kind} {row['balance_transaction_id']} of {row['report_date']}",
                    (Entry(account, -amount, cur), Entry("payment_clearing", amount, cur)),
                    ts_ns=_int(row["created_ts_ns"]),
                )
            )
    return n


def write_csv(path: str | Path, findings: Sequence[Finding]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in fields(Finding)]
    with p.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names)
        w.writeheader()
        for x in findings:
            w.writerow(asdict(x))
    return p


def write_html(path: str | Path, findings: Sequence[Finding], title: str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = defaultdict(int)
    for x in findings:
        counts[x.kind] += 1
    summary = "".join(f"<li>{html.escape(k)}: {counts.get(k, 0)}</li>" for k in KINDS)
    names = [f.name for f in fields(Finding)]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape('' if v is None else str(v))}</td>" for v in asdict(x).values()
        )
        + "</tr>"
        for x in findings
    )
    p.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:2px 6px;font-size:13px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{len(findings)} mismatches</p><ul>{summary}</ul>"
        f"<table><tr>{head}</tr>{body}</table></body></html>\n"
    )
    return p


def _row_kind(op: Op) -> str:
    return "refund" if op.kind == "refund" else "charge"


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"settlement report: {text!r} is not an integer amount") from None
