"""Receipts for evaluation and for other tools, in the team's contract shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from billing.db import Database
from billing.records import RECEIPT_COLUMNS, Receipt


def receipts_json(db_path: str | Path) -> list[dict[str, Any]]:
    """Every receipt of the billing database, ordered by (exit_ts_ns, checkout_id).

    Each item: receipt_no, checkout_id, session_id, account_id, currency, lines (line_no, sku,
    name, quantity, unit_price_minor, discount_minor, tax_minor, total_minor, promotion,
    evidence, review), subtotal_minor, discount_minor, tax_minor, total_minor, review, status,
    settled_ts_ns.
    """
    p = Path(db_path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no billing database here; was billing run on this data?")
    db = Database.open(p)
    try:
        rows = db.query(f"SELECT {RECEIPT_COLUMNS} FROM receipts ORDER BY exit_ts_ns, checkout_id")
        return [Receipt.from_row(r).export() for r in rows]
    finally:
        db.close()
