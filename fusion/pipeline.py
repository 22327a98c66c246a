"""Dedupe, event-time reorder with a watermark, and the core: still pure and deterministic.

The watermark is event-time driven (see the contracts): the minimum, over the edge sources the
store config expects (nodes that run devices), of the latest ``event_ts_ns`` seen from each,
minus the allowed lateness. A source that sent a Heartbeat with status "eos" no longer holds it
back; when every expected source has ended, everything is flushed. Messages wait in a buffer
until the watermark passes their event time, then reach the core in (event time, arrival) order.

Late: a message whose event time is already behind the watermark when it arrives is counted
and applied at once (the core still uses it while its session is open; a shelf event whose
cart already closed is dropped by the core and counted there).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from fusion.core import FusionCore, Output
from walkout.messages import AnyMessage, Heartbeat

END_OF_TIME = 2**63 - 1


@dataclass(slots=True)
class Step:
    outputs: list[Output] = field(default_factory=list)


class Pipeline:
    def __init__(self, core: FusionCore, expected_sources: Iterable[str], lateness_ns: int):
        self.core = core
        self.expected = sorted(set(expected_sources))
        self.lateness_ns = lateness_ns
        self.latest: dict[str, int] = {}
        self.ended: set[str] = set()
        self.watermark_ns = 0
        # (event time, source, seq, arrival): ties between sources break the same way on every
        # run whatever the network interleaving, so replays stay deterministic.
        self._heap: list[tuple[int, str, int, int, AnyMessage]] = []
        self._arrival = 0
        self.events_in = 0
        self.late = 0
        # The expected sources that have not ended: only their latest times move the watermark.
        self._live: tuple[str, ...] = tuple(self.expected)
        self._live_set = frozenset(self._live)
        # One live source (the usual store: one edge node per overhead camera group, or the
        # last one still sending): a message that moved its time is the watermark's new input.
        self._single = len(self._live) == 1

    @property
    def buffered(self) -> int:
        return len(self._heap)

    def _compute_watermark(self) -> int:
        live = self._live
        if not live:
            return END_OF_TIME if self.expected else max(self.latest.values(), default=0)
        latest = self.latest
        if len(live) == 1:
            only = latest.get(live[0])
            if only is None:
                return self.watermark_ns
            return max(self.watermark_ns, only - self.lateness_ns)
        low = END_OF_TIME
        for s in live:
            t = latest.get(s)
            if t is None:
                return self.watermark_ns
            if t < low:
                low = t
        return max(self.watermark_ns, low - self.lateness_ns)

    def ingest(self, msg: AnyMessage) -> Step:
        """Take one message (in log order); returns what the core produced."""
        step = Step()
        self.feed(msg, step.outputs)
        return step

    def feed(self, msg: AnyMessage, outputs: list[Output]) -> None:
        """:meth:`ingest`, appending what the core produced to ``outputs``."""
        self.events_in += 1
        src, ts = msg.source_id, msg.event_ts_ns
        # The watermark depends only on the live sources' latest times and on which sources
        # ended: when neither changed it is the one already held.
        moved = False
        latest = self.latest
        if ts > latest.get(src, -1):
            latest[src] = ts
            moved = src in self._live_set or not self.expected
        applied = False
        if isinstance(msg, Heartbeat):
            if msg.status == "eos":
                self.ended.add(src)
                self._live = tuple(s for s in self.expected if s not in self.ended)
                self._live_set = frozenset(self._live)
                self._single = len(self._live) == 1
                moved = True
            self.core.devices_down(src, msg.down)
        elif ts < self.watermark_ns:
            self.late += 1
            outputs.extend(self.core.apply(msg))
            applied = True
        elif (
            moved
            and not self._heap
            # With one live source that just moved to ts, _compute_watermark() is
            # max(watermark, ts - lateness): the same test, without the call.
            and ts <= (wm := ts - self.lateness_ns if self._single else self._compute_watermark())
            and wm > self.watermark_ns
        ):
            # Nothing waits and the watermark passes this message at once: the heap would
            # hand it straight back, so apply it without the push and pop.
            self.watermark_ns = wm
            core = self.core
            if ts - 1 > core.watermark_ns:  # settle everything strictly before this message
                core.watermark_ns = ts - 1
            if core.watermark_ns >= core.next_due_ns:
                outputs.extend(core.advance(ts - 1))
            produced = core.apply(msg)
            if produced:
                outputs.extend(produced)
            if wm > core.watermark_ns:
                core.watermark_ns = wm
            if core.watermark_ns >= core.next_due_ns:
                outputs.extend(core.advance(wm))
            return
        else:
            heapq.heappush(self._heap, (ts, src, msg.seq, self._arrival, msg))
            self._arrival += 1
        wm = self._compute_watermark() if moved else self.watermark_ns
        if wm > self.watermark_ns or applied:
            self.watermark_ns = wm
            self._release(outputs)

    def _settle(self, watermark_ns: int, outputs: list[Output]) -> None:
        """``core.advance(watermark_ns)``, without the call when the core has nothing due."""
        core = self.core
        if watermark_ns > core.watermark_ns:
            core.watermark_ns = watermark_ns
        if core.watermark_ns >= core.next_due_ns:
            outputs.extend(core.advance(watermark_ns))

    def _release(self, outputs: list[Output]) -> None:
        heap, wm, core = self._heap, self.watermark_ns, self.core
        while heap and heap[0][0] <= wm:
            msg = heapq.heappop(heap)[-1]
            # Let the core settle everything strictly before this message's time first.
            self._settle(msg.event_ts_ns - 1, outputs)
            outputs.extend(core.apply(msg))
        self._settle(wm, outputs)
