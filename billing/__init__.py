"""Billing: settles each closed cart exactly once and keeps a ledger finance can trust.

Modules, in the order money flows:

* :mod:`billing.pricing`: catalog prices, promotions and per-line tax (shelf prices are
  tax-inclusive; the rounding rules are documented there);
* :mod:`billing.settle`: :class:`~billing.settle.Billing`, which turns SessionOpened into a
  pre-authorization hold and CartClosed into a receipt (idempotent by checkout id) and its
  collection; review, corrections and refunds;
* :mod:`billing.provider`: the payment provider protocol; :mod:`billing.simprovider`: a
  simulated card processor with its own state, faults and settlement reports;
* :mod:`billing.ledger`: the double-entry, append-only ledger; :mod:`billing.db`: the
  storage layer (SQLite by default, SQL kept portable to PostgreSQL);
* :mod:`billing.reconcile`: receipts and captures against the provider's settlement report;
* :mod:`billing.service`: ``walkout billing run`` (reliable link, durable inbox, worker);
  :mod:`billing.cli`: the finance commands; :mod:`billing.export`: receipts for evaluation.
"""
