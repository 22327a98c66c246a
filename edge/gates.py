"""Gate readers: entry and exit gates as :class:`~walkout.messages.GateEvent`.

Replay reads a recording's ``gates.jsonl`` (:func:`recorded_gate_events`). Real gates talk to
the edge node over a line protocol on a local TCP socket (:class:`GateServer`):

* the gate controller connects to ``host:port`` and sends UTF-8 lines, each one JSON object::

      {"gate_id": "gate-in", "kind": "entry", "account_id": "acct-17", "group_size": 2,
       "xy_m": [1.1, 0.3], "ts_ns": 1767225600000000000}

  ``gate_id`` and ``kind`` are required; ``account_id`` (null at exit unless the reader saw
  it), ``group_size`` (1..16, default 1), ``xy_m`` and ``ts_ns`` (the gate's own clock, epoch
  ns; the node's clock when left out) are optional.
* the node answers every line with ``ok`` or ``error <what is wrong>`` and a newline, so a
  controller can retry what was refused. Lines longer than 4096 bytes are refused and the
  connection is closed. Any number of controllers may be connected at once.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator

import msgspec

from edge.lineserver import LineServer
from walkout.messages import GateEvent
from walkout.recording import GateRecord

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 4096


class GateLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    gate_id: str
    kind: str
    account_id: str | None = None
    group_size: int = 1
    xy_m: tuple[float, float] | None = None
    ts_ns: int | None = None


_line_decoder = msgspec.json.Decoder(GateLine)


class GateLineError(ValueError):
    """A gate line that cannot be used; the message says why."""


def gate_event(record: GateRecord | GateLine, source_id: str, ts_ns: int) -> GateEvent:
    if record.kind not in ("entry", "exit"):
        raise GateLineError(f"kind must be 'entry' or 'exit', got {record.kind!r}")
    if not 1 <= record.group_size <= 16:
        raise GateLineError(f"group_size must be 1..16, got {record.group_size}")
    return GateEvent(
        source_id=source_id,
        event_ts_ns=ts_ns,
        gate_id=record.gate_id,
        kind="entry" if record.kind == "entry" else "exit",
        account_id=record.account_id,
        group_size=record.group_size,
        xy_m=record.xy_m,
    )


def parse_gate_line(line: bytes, source_id: str, known_gates: set[str], now_ns: int) -> GateEvent:
    try:
        rec = _line_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise GateLineError(f"not a gate line: {exc}") from None
    if known_gates and rec.gate_id not in known_gates:
        raise GateLineError(
            f"unknown gate {rec.gate_id!r}; this node runs {', '.join(sorted(known_gates))}"
        )
    return gate_event(rec, source_id, rec.ts_ns if rec.ts_ns is not None else now_ns)


def recorded_gate_events(
    records: Iterable[GateRecord], source_id: str, gate_ids: set[str] | None = None
) -> Iterator[GateEvent]:
    """The GateEvents of a recording (only this node's gates when ``gate_ids`` is given)."""
    for rec in records:
        if gate_ids is not None and rec.gate_id not in gate_ids:
            continue
        yield gate_event(rec, source_id, rec.ts_ns)


class GateServer:
    """Accepts gate lines on a TCP socket; ``poll`` hands over what arrived, in order.

    The buffer is bounded (``max_pending``); a line that finds it full is answered
    ``error busy`` and counted in ``refused`` so the controller retries it.
    """

    def __init__(
        self,
        source_id: str,
        known_gates: Iterable[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_pending: int = 10_000,
    ):
        self.source_id = source_id
        self.known_gates = set(known_gates)
        self.max_pending = max_pending
        self.accepted = 0
        self.refused = 0
        self._bad = 0
        self._events: collections.deque[GateEvent] = collections.deque()
        self._lock = threading.Lock()
        self._server = LineServer(
            self._take, host=host, port=port, max_line_bytes=MAX_LINE_BYTES, name="gate-server"
        )

    @property
    def bad_lines(self) -> int:
        return self._bad + self._server.too_long

    @property
    def address(self) -> tuple[str, int]:
        return self._server.address

    def _take(self, line: bytes) -> bytes:
        try:
            event = parse_gate_line(line, self.source_id, self.known_gates, time.time_ns())
        except GateLineError as exc:
            self._bad += 1
            log.warning("gate line refused: %s", exc)
            return f"error {exc}".replace("\n", " ").encode() + b"\n"
        with self._lock:
            if len(self._events) >= self.max_pending:
                self.refused += 1
                return b"error busy\n"
            self._events.append(event)
            self.accepted += 1
        return b"ok\n"

    def start(self) -> GateServer:
        self._server.start()
        return self

    def poll(self) -> list[GateEvent]:
        with self._lock:
            out = list(self._events)
            self._events.clear()
        return out

    def stop(self) -> None:
        self._server.stop()


def send_gate_line(address: tuple[str, int], line: str, timeout_s: float = 5.0) -> str:
    """Send one line to a gate server and return its answer (for tools and tests)."""
    with socket.create_connection(address, timeout=timeout_s) as s:
        s.sendall(line.rstrip("\n").encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode().strip()
