"""``walkout billing ...``: run the service and the finance tools.

walkout billing run --config FILE [--data DIR]
walkout billing receipts list|search TEXT|show RECEIPT [--html FILE]
walkout billing refund RECEIPT --line N --reason TEXT
walkout billing review list|approve RECEIPT|correct RECEIPT --set SKU=QTY ... --reason TEXT
walkout billing reconcile --report settlement.csv [--day YYYY-MM-DD] [--out DIR] [--post]
walkout billing settlement-report --day YYYY-MM-DD --out FILE   (simulated provider)
walkout billing export [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from billing.db import Database, StorageError
from billing.export import receipts_json
from billing.reconcile import post_settlement, reconcile, write_csv, write_html
from billing.render import money, receipt_html, receipt_text
from billing.service import BILLING_DB, PROVIDER_DB, BillingService
from billing.settle import Billing, BillingError, list_receipts
from billing.simprovider import SimulatedProvider, read_report, write_report

log = logging.getLogger(__name__)
DEFAULT_DATA = "var/billing"
DEFAULT_CONFIG = "configs/demo-store.yaml"


def _db(args: argparse.Namespace) -> Database:
    path = Path(args.data) / BILLING_DB
    if not path.exists():
        raise BillingError(
            f"{path}: no billing database; run `walkout billing run --config FILE --data "
            f"{args.data}` first or pass --data with the right folder"
        )
    return Database.open(path)


def _billing(args: argparse.Namespace) -> Billing:
    from walkout.config import load_store

    store = load_store(args.config)
    _db(args).close()
    provider = SimulatedProvider(Path(args.data) / PROVIDER_DB)
    return Billing.from_store(store, Path(args.data) / BILLING_DB, provider)


def _run(args: argparse.Namespace) -> int:
    from walkout.config import load_store
    from walkout.metrics import serve

    store = load_store(args.config)
    data = Path(args.data) if args.data else store.resolve(DEFAULT_DATA)
    service = BillingService(store, data).start()
    port = store.cfg.services.billing_metrics_port
    if port:
        serve(service.registry, port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("billing serving %s, data in %s", store.cfg.services.billing.bind, data)
    print(f"billing: listening on {store.cfg.services.billing.bind}; data in {data}", flush=True)
    stop.wait()
    service.stop()
    return 0


def _receipts(args: argparse.Namespace) -> int:
    db = _db(args)
    try:
        if args.action in ("list", "search"):
            query = " ".join(args.text) if args.action == "search" else ""
            rows = list_receipts(db, query=query, status=args.status or "", limit=args.limit)
            for r in rows:
                flag = " review" if r.review else ""
                print(
                    f"{r.receipt_no:<12} {r.account_id:<16} {money(r.total_minor, r.currency):>12}"
                    f"  {r.status:<8}{flag}  {r.checkout_id}"
                )
            print(f"{len(rows)} receipts", file=sys.stderr)
            return 0
        if not args.text:
            raise BillingError("which receipt? `walkout billing receipts show R-000001`")
        from billing.records import RECEIPT_COLUMNS, Receipt

        no = args.text[0]
        row = db.one(f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE receipt_no = ?", (no,))
        if row is None:
            raise BillingError(f"no receipt {no!r}; find it with `walkout billing receipts search`")
        receipt = Receipt.from_row(row)
        refunds = {
            int(n): (str(why), int(v))
            for n, why, v in db.query(
                "SELECT line_no, reason, amount_minor FROM refunds WHERE receipt_no = ?", (no,)
            )
        }
        if args.html:
            Path(args.html).write_text(receipt_html(receipt, refunds))
            print(f"wrote {args.html}")
        else:
            print(receipt_text(receipt, refunds), end="")
        return 0
    finally:
        db.close()


def _refund(args: argparse.Namespace) -> int:
    b = _billing(args)
    ops = b.refund(args.receipt, args.line, args.reason)
    for op in ops:
        print(f"{op.op_key}: {op.status} {money(op.amount_minor, op.currency)} {op.message}")
    pending = [o for o in ops if o.status == "pending"]
    if pending:
        print("the provider did not answer; `walkout billing run` retries with the same key")
    return 0 if all(o.status in ("succeeded", "pending") for o in ops) else 1


def _review(args: argparse.Namespace) -> int:
    if args.action == "list":
        db = _db(args)
        try:
            for r in list_receipts(db, status="review", limit=1_000):
                reasons = "; ".join(r.review_reasons)
                print(
                    f"{r.receipt_no:<12} {r.account_id:<16} "
                    f"{money(r.total_minor, r.currency):>12}  {reasons}"
                )
        finally:
            db.close()
        return 0
    if not args.receipt:
        raise BillingError(f"which receipt? `walkout billing review {args.action} R-000001`")
    b = _billing(args)
    if args.action == "approve":
        r = b.approve(args.receipt, args.actor)
    else:
        lines: list[tuple[str, int]] = []
        for item in args.set or []:
            sku, _, qty = item.partition("=")
            if not qty.isdigit():
                raise BillingError(f"--set {item!r}: expected SKU=QUANTITY, e.g. cola-330=2")
            lines.append((sku, int(qty)))
        r = b.correct(args.receipt, lines, args.reason or "", args.actor)
    print(f"{r.receipt_no}: {r.status}, total {money(r.total_minor, r.currency)}")
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    rows = read_report(args.report)
    db = _db(args)
    try:
        findings = reconcile(db, rows, args.day)
        out = Path(args.out)
        stem = Path(args.report).stem
        csv_path = write_csv(out / f"{stem}-mismatches.csv", findings)
        html_path = write_html(
            out / f"{stem}-mismatches.html", findings, f"Reconciliation of {args.report}"
        )
        if args.post:
            print(f"posted {post_settlement(db, rows)} fee and payout transactions")
    finally:
        db.close()
    for f in findings:
        print(f"{f.kind:<24} {f.receipt_no:<12} {f.detail}")
    print(f"{len(findings)} mismatches; wrote {csv_path} and {html_path}")
    return 1 if findings else 0


def _report(args: argparse.Namespace) -> int:
    p = SimulatedProvider(Path(args.data) / PROVIDER_DB)
    try:
        path = write_report(args.out, p.settlement_report(args.day))
    finally:
        p.close()
    print(f"wrote {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    data = receipts_json(Path(args.data) / BILLING_DB)
    text = json.dumps(data, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
        print(f"wrote {len(data)} receipts to {args.out}")
    else:
        print(text)
    return 0


def _guarded(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from walkout.config import ConfigError
        from walkout.keys import KeyError_
        from walkout.link import LinkError

        try:
            return int(fn(args))
        except (
            BillingError,
            ConfigError,
            KeyError_,
            LinkError,
            StorageError,
            OSError,
            ValueError,
        ) as exc:
            print(f"walkout billing: {exc}", file=sys.stderr)
            return 2

    return run


def register(sub: Any, area: str, help_text: str) -> None:
    p = sub.add_parser(
        area,
        help=help_text,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = p.add_subparsers(dest="billing_cmd", metavar="COMMAND")

    def data_arg(q: argparse.ArgumentParser, config: bool = False) -> None:
        q.add_argument("--data", default=DEFAULT_DATA, help="billing data folder")
        if config:
            q.add_argument("--config", default=DEFAULT_CONFIG, help="store config (catalog)")

    q = cmds.add_parser("run", help="serve the reliable link from fusion and settle carts")
    q.add_argument("--config", required=True, help="store config YAML")
    q.add_argument("--data", default=None, help=f"data folder (default {DEFAULT_DATA})")
    q.set_defaults(handler=_guarded(_run))

    q = cmds.add_parser("receipts", help="list, search or show receipts")
    q.add_argument("action", choices=["list", "search", "show"])
    q.add_argument("text", nargs="*", help="search text, or the receipt number to show")
    q.add_argument("--status", choices=["review", "due", "paid", "declined"])
    q.add_argument("--limit", type=int, default=200)
    q.add_argument("--html", help="write the receipt as HTML to this file")
    data_arg(q)
    q.set_defaults(handler=_guarded(_receipts))

    q = cmds.add_parser("refund", help="refund one receipt line")
    q.add_argument("receipt")
    q.add_argument("--line", type=int, required=True, help="line number on the receipt")
    q.add_argument("--reason", required=True)
    data_arg(q, config=True)
    q.set_defaults(handler=_guarded(_refund))

    q = cmds.add_parser("review", help="list, approve or correct flagged receipts")
    q.add_argument("action", choices=["list", "approve", "correct"])
    q.add_argument("receipt", nargs="?")
    q.add_argument("--set", action="append", metavar="SKU=QTY", help="corrected line")
    q.add_argument("--reason", help="why the receipt was corrected")
    q.add_argument("--actor", default="finance", help="who decided (audit trail)")
    data_arg(q, config=True)
    q.set_defaults(handler=_guarded(_review))

    q = cmds.add_parser("reconcile", help="match receipts and captures to a settlement report")
    q.add_argument("--report", required=True, help="the provider's settlement CSV")
    q.add_argument("--day", help="report day YYYY-MM-DD (default: the report's days)")
    q.add_argument("--out", default="reconciliation", help="folder for the CSV and HTML")
    q.add_argument("--post", action="store_true", help="post fees and payouts to the ledger")
    data_arg(q)
    q.set_defaults(handler=_guarded(_reconcile))

    q = cmds.add_parser("settlement-report", help="the simulated provider's report of a day")
    q.add_argument("--day", required=True)
    q.add_argument("--out", required=True)
    data_arg(q)
    q.set_defaults(handler=_guarded(_report))

    q = cmds.add_parser("export", help="receipts as JSON (the evaluation contract)")
    q.add_argument("--out")
    data_arg(q)
    q.set_defaults(handler=_guarded(_export))
