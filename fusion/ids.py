"""Deterministic ids shared with billing (see the cross-component contracts)."""

from __future__ import annotations

import hashlib


def session_id(gate_id: str, account_id: str, entry_ts_ns: int) -> str:
    digest = hashlib.sha256(f"{gate_id}|{account_id}|{entry_ts_ns}".encode()).hexdigest()
    return "s-" + digest[:16]


def checkout_id(store_id: str, session_id: str) -> str:
    digest = hashlib.sha256(f"{store_id}|{session_id}".encode()).hexdigest()
    return "co-" + digest[:20]


def weight_change_id(plate_id: str, start_ts_ns: int) -> str:
    return f"wc:{plate_id}:{start_ts_ns}"
