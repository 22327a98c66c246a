"""The same billing code on PostgreSQL, when a server binary and the psycopg driver are present.

A throwaway cluster is created in a temporary folder (as user ``nobody`` when the tests run as
root, since PostgreSQL refuses to run as root), used over TCP on loopback, and stopped.
Skipped where PostgreSQL or psycopg is missing: SQLite is the default and is tested everywhere.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing.ledger import Entry, LedgerError, Txn
from billing.reconcile import reconcile
from billing.settle import Billing
from billing.simprovider import SimulatedProvider, utc_day
from billing.simulation import DAY0_NS, visits
from walkout.config import Store, load_store

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo-store.yaml"


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    return None


pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("psycopg") is None or _binary("initdb") is None,
    reason="needs the PostgreSQL server binaries and the psycopg driver",
)


@functools.cache
def demo_store() -> Store:
    return load_store(CONFIG)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    assert initdb and pg_ctl
    root = Path(tempfile.mkdtemp(prefix="walkout-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: PostgreSQL cannot start")
        root.chmod(0o777)
        as_user = ["runuser", "-u", "nobody", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    subprocess.run(
        [*as_user, initdb, "-N", "-D", str(data), "-A", "trust", "-U", "walkout"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        yield f"postgresql://walkout@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database(server: str, request: pytest.FixtureRequest) -> str:
    import psycopg

    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


def test_settle_refund_correct_and_reconcile_on_postgres(database: str, tmp_path: Path) -> None:
    def clock() -> int:
        return DAY0_NS + 10**12

    provider = SimulatedProvider(tmp_path / "provider.sqlite", clock_ns=clock)
    b = Billing.from_store(demo_store(), database, provider, clock_ns=clock)
    assert b.db.dialect == "postgres"
    for v in visits(8, list(demo_store().products), seed=4, review_rate=0.4):
        b.open_session(v.opened)
        r = b.settle(v.closed)
        assert b.settle(v.closed).receipt_no == r.receipt_no
        if r.status == "review":
            b.correct(r.receipt_no, [("cola-330", 2)], "checked the video", "ana")
        else:
            assert r.status == "paid"
            b.refund(r.receipt_no, 1, "damaged")
    assert b.ledger.check() == []
    assert b.ledger.balance("customer_receivables") == 0
    assert reconcile(b.db, provider.settlement_report(utc_day(clock()))) == []
    with pytest.raises(LedgerError, match="unbalanced"):
        b.ledger.post(Txn("bad", "x", "r", "", (Entry("bank", 5), Entry("fees", -4))))
    b.db.close()
    # A restart reads the same state back.
    again = Billing.from_store(demo_store(), database, provider, clock_ns=clock)
    assert again.ledger.check() == []
    assert again.receipt("R-000001") is not None
