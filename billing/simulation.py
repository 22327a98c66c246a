"""Seeded traffic for billing: sessions and closed carts shaped like fusion's, with the team's
deterministic session and checkout ids. Used by the fault-injection tests and the benchmark."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from walkout.messages import CartClosed, CartLine, SessionOpened

DAY0_NS = 1_763_000_000_000_000_000  # 2025-11-13 02:13:20 UTC


def session_id(gate_id: str, account_id: str, entry_ts_ns: int) -> str:
    return "s-" + hashlib.sha256(f"{gate_id}|{account_id}|{entry_ts_ns}".encode()).hexdigest()[:16]


def checkout_id(store_id: str, session: str) -> str:
    return "co-" + hashlib.sha256(f"{store_id}|{session}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Visit:
    opened: SessionOpened
    closed: CartClosed


def visits(
    n: int,
    skus: Sequence[str],
    *,
    seed: int = 0,
    store_id: str = "demo-001",
    review_rate: float = 0.0,
    start_ns: int = DAY0_NS,
    max_lines: int = 5,
) -> list[Visit]:
    """``n`` shopper visits with 1..max_lines lines each; exits are 30 s apart."""
    rng = random.Random(seed)
    out: list[Visit] = []
    for i in range(n):
        account = f"acct-{rng.randrange(10_000):05d}"
        entry = start_ns + i * 30_000_000_000
        exit_ = entry + rng.randrange(60, 600) * 1_000_000_000
        sid = session_id("gate-in", account, entry)
        picks = rng.sample(list(skus), k=min(len(skus), rng.randint(1, max_lines)))
        review = rng.random() < review_rate
        lines = tuple(
            CartLine(
                sku=sku,
                quantity=rng.choice((1, 1, 1, 2, 3)),
                confidence=0.5 if review and j == 0 else 0.97,
                evidence=(f"cam-g1-a:G1-L00:f{i:06d}{j}",),
                review=review and j == 0,
            )
            for j, sku in enumerate(picks)
        )
        opened = SessionOpened(
            source_id="fusion",
            event_ts_ns=entry,
            session_id=sid,
            account_id=account,
            store_id=store_id,
        )
        closed = CartClosed(
            source_id="fusion",
            event_ts_ns=exit_,
            checkout_id=checkout_id(store_id, sid),
            session_id=sid,
            account_id=account,
            store_id=store_id,
            entry_ts_ns=entry,
            exit_ts_ns=exit_,
            lines=lines,
            review=review,
            review_reasons=("low confidence pick",) if review else (),
        )
        out.append(Visit(opened, closed))
    return out
