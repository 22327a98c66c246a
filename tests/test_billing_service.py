"""`walkout billing run` over the real reliable link (CurveZMQ on loopback, real processes).

Fusion's outbox sends sessions and closed carts; billing makes them durable, acknowledges and
settles them from its inbox. The service is SIGKILLed mid-stream and restarted: every cart ends
with exactly one receipt and one collection, and nothing is settled twice.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from billing.export import receipts_json
from billing.service import BILLING_DB, PROVIDER_DB, BillingService
from billing.simprovider import SimulatedProvider
from billing.simulation import visits
from walkout import keys
from walkout.config import Store, load_store
from walkout.link import LinkTiming, Outbox, Sender
from walkout.messages import AnyMessage

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "demo-store.yaml"
FAST = LinkTiming(heartbeat_s=0.2, silent_after_s=1.0, resend_after_s=0.3)
SKUS = ["cola-330", "coffee-250", "water-500", "chips-150"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def make_store(tmp_path: Path) -> Store:
    text = CONFIG.read_text()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    text, n = re.subn(
        r"billing: \{bind: \"[^\"]+\", connect: \"[^\"]+\"\}",
        f'billing: {{bind: "{endpoint}", connect: "{endpoint}"}}',
        text,
    )
    assert n == 1
    keys_dir = tmp_path / "keys"
    text = text.replace("keys_dir: var/keys", f"keys_dir: {keys_dir}")
    path = tmp_path / "store.yaml"
    path.write_text(text)
    keys.generate(keys_dir, ["fusion", "billing", "edge-1"])
    return load_store(path)


def send_all(store: Store, outbox_path: Path, msgs: list[AnyMessage]) -> Sender:
    outbox = Outbox(outbox_path, "fusion")
    outbox.put_many(msgs)
    return Sender.from_store(store, outbox, "billing", timing=FAST).start()


def traffic(n: int, seed: int) -> list[AnyMessage]:
    out: list[AnyMessage] = []
    for v in visits(n, SKUS, seed=seed):
        out += [v.opened, v.closed, v.closed]  # the cart twice: one receipt, one charge
    return out


def test_service_settles_from_the_durable_inbox(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    data = tmp_path / "data"
    service = BillingService(store, data, retry_s=0.2)
    service.receiver.timing = FAST
    service.start()
    sender = send_all(store, tmp_path / "outbox.sqlite", traffic(6, seed=1))
    try:
        wait_for(lambda: len(receipts_json(data / BILLING_DB)) == 6, 20, "6 receipts")
        wait_for(
            lambda: all(r["status"] == "paid" for r in receipts_json(data / BILLING_DB)),
            10,
            "all paid",
        )
        assert sender.wait_drained(10)
    finally:
        sender.stop()
        service.stop()
    assert service.billing.ledger.check() == []
    provider = SimulatedProvider(data / PROVIDER_DB)
    assert set(provider.charges_by_reference().values()) == {1}
    assert provider.open_authorizations() == []


def test_walkout_billing_run_survives_sigkill(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "walkout.cli",
        "billing",
        "run",
        "--config",
        str(store.path),
        "--data",
        str(data),
    ]

    logs: list[Path] = []

    def start() -> subprocess.Popen[bytes]:
        # The service's log goes to a file: a pipe nobody reads would block it once full.
        logs.append(tmp_path / f"billing-{len(logs)}.log")
        with logs[-1].open("wb") as err:
            return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err)

    msgs = traffic(10, seed=2)
    service = start()
    sender = send_all(store, tmp_path / "outbox.sqlite", msgs)
    try:
        wait_for(
            lambda: (data / BILLING_DB).exists() and len(receipts_json(data / BILLING_DB)) >= 2,
            30,
            "the first receipts",
        )
        os.kill(service.pid, signal.SIGKILL)
        service.wait(10)
        service = start()
        wait_for(lambda: len(receipts_json(data / BILLING_DB)) == 10, 30, "10 receipts")
        wait_for(
            lambda: all(r["status"] == "paid" for r in receipts_json(data / BILLING_DB)),
            30,
            "all paid",
        )
        assert sender.wait_drained(10)
        assert service.stdout is not None
        assert b"listening" in service.stdout.readline()  # serving, its handlers installed
        service.send_signal(signal.SIGTERM)
        try:
            code = service.wait(15)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, f"after SIGTERM: exit {code}; its log:\n{logs[-1].read_text()[-3000:]}"
    finally:
        sender.stop()
        if service.poll() is None:
            service.kill()
    provider = SimulatedProvider(data / PROVIDER_DB)
    receipts = receipts_json(data / BILLING_DB)
    assert sorted(provider.charges_by_reference()) == sorted(r["receipt_no"] for r in receipts)
    assert set(provider.charges_by_reference().values()) == {1}
    for r in receipts:
        assert provider.captured_total(r["receipt_no"]) == r["total_minor"]


def test_inbox_worker_skips_a_bad_cart_and_resumes_from_its_cursor(tmp_path: Path) -> None:
    from billing.service import InboxWorker
    from billing.settle import Billing
    from walkout.link import SqliteLog
    from walkout.messages import encode, encode_batch
    from walkout.metrics import Registry

    store = load_store(CONFIG)
    msgs: list[AnyMessage] = []
    for i, m in enumerate(traffic(4, seed=3)):
        if i in (4, 5):  # the second visit's cart (sent twice) comes from another store
            m = msgspec.structs.replace(m, store_id="elsewhere")
        msgs.append(msgspec.structs.replace(m, boot_id="b1", seq=i + 1))
    inbox = SqliteLog(tmp_path / "inbox.sqlite")
    inbox.append([(msgs[:7], encode_batch([encode(m) for m in msgs[:7]]))])
    provider = SimulatedProvider(tmp_path / "provider.sqlite")
    billing = Billing.from_store(store, tmp_path / "billing.sqlite", provider)
    registry = Registry()
    worker = InboxWorker(inbox, billing, registry)
    assert worker.drain() == 7
    assert worker.failed.total() == 2
    assert len(receipts_json(tmp_path / "billing.sqlite")) == 1
    # A restart continues after the cursor; the rest arrives later.
    worker = InboxWorker(inbox, billing, Registry())
    assert worker.drain() == 0
    inbox.append([(msgs[7:], encode_batch([encode(m) for m in msgs[7:]]))])
    assert worker.drain() == len(msgs) - 7
    assert len(receipts_json(tmp_path / "billing.sqlite")) == 3
    assert set(provider.charges_by_reference().values()) == {1}
