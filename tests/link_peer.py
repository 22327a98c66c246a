"""A link endpoint in its own process, for fault tests that kill it with SIGKILL.

    python tests/link_peer.py receive ENDPOINT LOG KEYS_DIR ALLOW[,ALLOW...]
    python tests/link_peer.py send ENDPOINT OUTBOX KEYS_DIR SOURCE COUNT [CHUNK]

``receive`` serves until killed. ``send`` puts COUNT numbered messages (in chunks) into the
outbox, streaming as it goes, then waits until all are acknowledged and exits 0; a COUNT of 0
only drains what the outbox already holds (a restarted sender).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from walkout import keys
from walkout.link import Outbox, Receiver, Sender, SqliteLog
from walkout.messages import WeightChange


def numbered(i: int) -> WeightChange:
    return WeightChange(
        source_id="x",
        event_ts_ns=1_700_000_000_000_000_000 + i * 1_000_000,
        plate_id="P-1",
        lane_id="L-1",
        start_ts_ns=i,
        end_ts_ns=i + 1,
        delta_g=-float(i),
        sigma_g=1.5,
    )


def receive(endpoint: str, log_path: str, keys_dir: str, allow: str) -> None:
    kd = Path(keys_dir)
    rx = Receiver(
        endpoint,
        SqliteLog(log_path),
        server_keys=keys.load(kd, "server", secret=True),
        allow=keys.allowlist(kd, allow.split(",")),
    )
    print("ready", flush=True)
    rx.run()


def send(
    endpoint: str, outbox_path: str, keys_dir: str, source: str, count: int, chunk: int
) -> int:
    kd = Path(keys_dir)
    outbox = Outbox(outbox_path, source)
    sender = Sender(
        outbox,
        endpoint,
        client_keys=keys.load(kd, source, secret=True),
        server_public_key=keys.load(kd, "server", secret=False).public,
    ).start()
    print("ready", flush=True)
    for start in range(0, count, chunk):
        outbox.put_many([numbered(i) for i in range(start, min(count, start + chunk))])
        time.sleep(0.001)
    ok = sender.wait_drained(timeout_s=120)
    sender.stop()
    return 0 if ok else 3


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "receive":
        receive(*rest)
    elif mode == "send":
        ep, ob, kd, src, n, *ch = rest
        sys.exit(send(ep, ob, kd, src, int(n), int(ch[0]) if ch else 200))
    else:
        sys.exit(f"unknown mode {mode!r}: use receive or send")
