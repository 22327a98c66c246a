"""Live weight plates: load-cell controllers stream readings over a local TCP line protocol.

A controller connects to ``host:port`` and sends one reading per line, the same three fields
as a recording's ``plates.csv``::

    1767225600040000000,P-G1-L00,2989.42

(``ts_ns`` from the controller's clock, epoch ns; the plate id; the reading in grams). Good
lines get no answer (readings stream at tens of hertz); a bad line is answered with
``error <what is wrong>`` and counted. Readings wait in a bounded buffer for the node's loop;
when it is full the oldest are dropped and counted.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Iterable

from edge.lineserver import LineServer

Reading = tuple[int, str, float]


class PlateLineError(ValueError):
    pass


def parse_plate_line(line: bytes, known: set[str]) -> Reading:
    parts = line.decode("utf-8", errors="replace").strip().split(",")
    if len(parts) != 3:
        raise PlateLineError(f"expected ts_ns,plate_id,weight_g, got {len(parts)} fields")
    try:
        ts, weight = int(parts[0]), float(parts[2])
    except ValueError as exc:
        raise PlateLineError(f"ts_ns must be an integer and weight_g a number ({exc})") from None
    if not math.isfinite(weight) or ts < 0:
        raise PlateLineError("ts_ns must be >= 0 and weight_g finite")
    if known and parts[1] not in known:
        raise PlateLineError(
            f"unknown plate {parts[1]!r}; this node reads {', '.join(sorted(known))}"
        )
    return ts, parts[1], weight


class PlateServer:
    def __init__(
        self,
        known_plates: Iterable[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_pending: int = 100_000,
    ):
        self.known = set(known_plates)
        self.max_pending = max_pending
        self.accepted = 0
        self.dropped = 0
        self.bad_lines = 0
        self._buf: collections.deque[Reading] = collections.deque()
        self._lock = threading.Lock()
        self._server = LineServer(self._take, host=host, port=port, name="plate-server")

    @property
    def address(self) -> tuple[str, int]:
        return self._server.address

    def _take(self, line: bytes) -> bytes | None:
        try:
            reading = parse_plate_line(line, self.known)
        except PlateLineError as exc:
            self.bad_lines += 1
            return f"error {exc}".encode() + b"\n"
        with self._lock:
            if len(self._buf) >= self.max_pending:
                self._buf.popleft()
                self.dropped += 1
            self._buf.append(reading)
            self.accepted += 1
        return None

    def start(self) -> PlateServer:
        self._server.start()
        return self

    def poll(self) -> list[Reading]:
        with self._lock:
            out = list(self._buf)
            self._buf.clear()
        return out

    def stop(self) -> None:
        self._server.stop()
