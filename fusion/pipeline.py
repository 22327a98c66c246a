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


@dataclass
class Step:
    outputs: list[Output] = field(default_factory=list)
    applied: int = 0  # messages that reached the core


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

    @property
    def buffered(self) -> int:
        return len(self._heap)

    def _compute_watermark(self) -> int:
        live = [s for s in self.expected if s not in self.ended]
        if not live:
            return END_OF_TIME if self.expected else max(self.latest.values(), default=0)
        if any(s not in self.latest for s in live):
            return self.watermark_ns
        return max(self.watermark_ns, min(self.latest[s] for s in live) - self.lateness_ns)

    def ingest(self, msg: AnyMessage) -> Step:
        """Take one message (in log order); returns what the core produced."""
        self.events_in += 1
        src, ts = msg.source_id, msg.event_ts_ns
        if ts > self.latest.get(src, -1):
            self.latest[src] = ts
        step = Step()
        if isinstance(msg, Heartbeat):
            if msg.status == "eos":
                self.ended.add(src)
            self.core.devices_down(src, msg.down)
        elif ts < self.watermark_ns:
            self.late += 1
            step.outputs.extend(self.core.apply(msg))
            step.applied += 1
        else:
            heapq.heappush(self._heap, (ts, src, msg.seq, self._arrival, msg))
            self._arrival += 1
        wm = self._compute_watermark()
        if wm > self.watermark_ns or step.applied:
            self.watermark_ns = wm
            self._release(step)
        return step

    def _release(self, step: Step) -> None:
        heap, wm, core = self._heap, self.watermark_ns, self.core
        while heap and heap[0][0] <= wm:
            msg = heapq.heappop(heap)[-1]
            # Let the core settle everything strictly before this message's time first.
            step.outputs.extend(core.advance(msg.event_ts_ns - 1))
            step.outputs.extend(core.apply(msg))
            step.applied += 1
        step.outputs.extend(core.advance(wm))
