"""The billing service: the reliable link from fusion into a durable inbox, settled from there.

The link's receiver makes every message durable in the inbox (``inbox.sqlite``) before it
acknowledges; a worker thread then applies the inbox in log order to :class:`Billing`, keeping
its own cursor in the billing database. Application is idempotent (receipts by checkout id,
provider calls by stored idempotency keys), so a crash between applying and moving the cursor
only repeats work that is then recognised. Pending provider calls (timeouts, crashes) are
retried every ``retry_s`` seconds with their stored keys.

Data folder: ``inbox.sqlite`` (link log), ``billing.sqlite`` (receipts, payment calls, ledger),
``provider.sqlite`` (the simulated provider's own state).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from billing.provider import PaymentProvider
from billing.settle import Billing
from billing.simprovider import SimulatedProvider
from walkout.config import Store
from walkout.link import Receiver, SqliteLog
from walkout.messages import AnyMessage, CartClosed
from walkout.metrics import Registry

log = logging.getLogger(__name__)

INBOX = "inbox.sqlite"
BILLING_DB = "billing.sqlite"
PROVIDER_DB = "provider.sqlite"


class InboxWorker:
    """Applies a durable inbox to billing, from a stored cursor, in log order."""

    def __init__(self, inbox: SqliteLog, billing: Billing, registry: Registry | None = None):
        self.inbox = inbox
        self.billing = billing
        reg = registry or Registry()
        self.applied = reg.counter("billing_messages_applied_total", "inbox messages applied")
        self.failed = reg.counter("billing_apply_failures_total", "inbox messages that failed")
        self.pending_ops = reg.gauge("billing_pending_payment_ops", "provider calls unanswered")

    def cursor(self) -> int:
        v = self.billing.db.scalar("SELECT pos FROM inbox_cursor WHERE name = 'inbox'")
        return int(v or 0)

    def _advance(self, pos: int) -> None:
        with self.billing.db.transaction() as db:
            db.execute(
                "INSERT INTO inbox_cursor(name, pos) VALUES ('inbox', ?) "
                "ON CONFLICT(name) DO UPDATE SET pos = excluded.pos",
                (pos,),
            )

    def drain(self, limit: int = 1_000) -> int:
        """Apply everything after the cursor; how many messages were applied."""
        n = 0
        while batch := self.inbox.read(self.cursor(), limit):
            carts: list[CartClosed] = []
            for _, msg in batch:
                if isinstance(msg, CartClosed):
                    carts.append(msg)
                    continue
                self._settle(carts)
                carts = []
                self._apply(msg)
            self._settle(carts)
            self._advance(batch[-1][0])
            n += len(batch)
        self.pending_ops.set(
            float(
                self.billing.db.scalar("SELECT COUNT(*) FROM payment_ops WHERE status = 'pending'")
            )
        )
        return n

    def _settle(self, carts: list[CartClosed]) -> None:
        if not carts:
            return
        try:
            self.billing.settle_many(carts)
            self.applied.inc(len(carts), kind="CartClosed")
        except Exception:
            log.exception("settling %d carts failed; trying them one by one", len(carts))
            for c in carts:
                self._apply(c)

    def _apply(self, msg: AnyMessage) -> None:
        try:
            self.billing.apply(msg)
            self.applied.inc(kind=type(msg).__name__)
        except Exception:
            # The message stays in the inbox log; a person can replay it after a fix.
            self.failed.inc(kind=type(msg).__name__)
            log.exception(
                "could not apply %s seq %d from %s; skipped (kept in the inbox log)",
                type(msg).__name__,
                msg.seq,
                msg.source_id,
            )


class BillingService:
    """``walkout billing run``: receiver, inbox, worker and retries."""

    def __init__(
        self,
        store: Store,
        data_dir: Path,
        provider: PaymentProvider | None = None,
        *,
        registry: Registry | None = None,
        retry_s: float = 5.0,
    ):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.registry = registry or Registry()
        self.inbox = SqliteLog(data_dir / INBOX)
        self.provider = provider or SimulatedProvider(data_dir / PROVIDER_DB)
        self.billing = Billing.from_store(store, data_dir / BILLING_DB, self.provider)
        self.worker = InboxWorker(self.inbox, self.billing, self.registry)
        self.retry_s = retry_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.receiver = Receiver.from_store(
            store,
            self.inbox,
            "billing",
            allow=["fusion"],
            registry=self.registry,
            on_durable=lambda _batch: self._wake.set(),
        )
        self._thread: threading.Thread | None = None

    def start(self) -> BillingService:
        self.receiver.start()
        self._thread = threading.Thread(target=self._loop, name="billing-worker", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        self.billing.resume()
        while not self._stop.is_set():
            self.worker.drain()
            if not self._wake.wait(self.retry_s):
                self.billing.resume()
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.receiver.stop()
        if self._thread is not None:
            self._thread.join(10)
