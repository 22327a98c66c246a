"""A receipt as text (terminal, e-mail) and as HTML; amounts shown as major.minor."""

from __future__ import annotations

import datetime as dt
import html

from billing.records import Receipt

_DECIMALS = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3}


def money(amount_minor: int, currency: str) -> str:
    places = _DECIMALS.get(currency, 2)
    sign = "-" if amount_minor < 0 else ""
    v = abs(amount_minor)
    if places == 0:
        return f"{sign}{v} {currency}"
    unit = 10**places
    return f"{sign}{v // unit}.{v % unit:0{places}d} {currency}"


def _when(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def receipt_text(r: Receipt, refunds: dict[int, tuple[str, int]] | None = None) -> str:
    refunds = refunds or {}
    cur = r.currency
    out = [
        f"Receipt {r.receipt_no}  ({r.status}{', flagged for review' if r.review else ''})",
        f"Store {r.store_id}  account {r.account_id}  checkout {r.checkout_id}",
        f"Visit {_when(r.entry_ts_ns)} to {_when(r.exit_ts_ns)}",
        "",
    ]
    for x in r.lines:
        flag = " [review]" if x.review else ""
        out.append(
            f"{x.line_no:>3} {x.name[:34]:<34} {x.quantity:>3} x "
            f"{money(x.unit_price_minor, cur):>12} {money(x.total_minor, cur):>12}{flag}"
        )
        if x.discount_minor:
            out.append(f"      {x.promotion or 'discount'}: -{money(x.discount_minor, cur)}")
        out.append(f"      tax {x.tax_rate_bp / 100:.2f} % incl.: {money(x.tax_minor, cur)}")
        if x.evidence:
            out.append(f"      evidence: {', '.join(x.evidence)}")
        if x.line_no in refunds:
            why, amount = refunds[x.line_no]
            out.append(f"      refunded {money(amount, cur)}: {why}")
    out += [
        "",
        f"Subtotal {money(r.subtotal_minor, cur):>20}",
        f"Discount {money(-r.discount_minor, cur):>20}",
        f"Total    {money(r.total_minor, cur):>20}",
        f"  incl. tax {money(r.tax_minor, cur)}",
    ]
    if r.review_reasons:
        out.append("Review: " + "; ".join(r.review_reasons))
    return "\n".join(out) + "\n"


def receipt_html(r: Receipt, refunds: dict[int, tuple[str, int]] | None = None) -> str:
    refunds = refunds or {}
    cur = r.currency
    e = html.escape
    rows = []
    for x in r.lines:
        note = []
        if x.promotion:
            note.append(f"{e(x.promotion)}: -{e(money(x.discount_minor, cur))}")
        if x.line_no in refunds:
            why, amount = refunds[x.line_no]
            note.append(f"refunded {e(money(amount, cur))}: {e(why)}")
        rows.append(
            f"<tr{' class=review' if x.review else ''}><td>{x.line_no}</td><td>{e(x.name)}"
            f"<br><small>{e(x.sku)}; evidence: {e(', '.join(x.evidence) or '-')}</small></td>"
            f"<td>{x.quantity}</td><td>{e(money(x.unit_price_minor, cur))}</td>"
            f"<td>{'<br>'.join(note)}</td><td>{e(money(x.tax_minor, cur))}</td>"
            f"<td>{e(money(x.total_minor, cur))}</td></tr>"
        )
    reasons = (
        f"<p class=review>Flagged for review: {e('; '.join(r.review_reasons))}</p>"
        if r.review
        else ""
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Receipt {e(r.receipt_no)}</title><style>body{{font-family:sans-serif}}"
        "table{border-collapse:collapse}td,th{border-bottom:1px solid #ccc;padding:3px 8px}"
        ".review{background:#fff3cd}</style></head><body>"
        f"<h1>Receipt {e(r.receipt_no)}</h1>"
        f"<p>Store {e(r.store_id)}, account {e(r.account_id)}, checkout {e(r.checkout_id)}<br>"
        f"{e(_when(r.entry_ts_ns))} to {e(_when(r.exit_ts_ns))}; status {e(r.status)}</p>"
        f"{reasons}<table><tr><th>#</th><th>item</th><th>qty</th><th>unit</th>"
        "<th>promotion</th><th>tax incl.</th><th>total</th></tr>"
        + "".join(rows)
        + f"</table><p>Subtotal {e(money(r.subtotal_minor, cur))}<br>"
        f"Discount {e(money(-r.discount_minor, cur))}<br>"
        f"<b>Total {e(money(r.total_minor, cur))}</b> (incl. tax {e(money(r.tax_minor, cur))})"
        "</p></body></html>\n"
    )
