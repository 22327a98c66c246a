"""The fusion service: durable ingest, the deterministic pipeline, outputs to billing.

Threads: the link receiver reads and group-commits edge messages into the log (SQLite WAL,
synchronous=FULL) and only then acknowledges; its commit thread hands each durable batch to a
bounded queue; one engine thread applies them in log order to the pure pipeline, puts its
outputs (SessionOpened, CartClosed) into the billing outbox once each, and publishes cart
snapshots (XPUB, lossy by design; built only while someone subscribes to them). A sender
thread streams the outbox to billing.

Recovery: on start the whole log is re-applied before the receiver opens, so the state is what
it was before a crash; outputs already in the outbox are not put again (see :mod:`fusion.state`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from fusion.core import FusionCore, Output, Session
from fusion.params import FusionParams
from fusion.pipeline import END_OF_TIME, Pipeline
from fusion.state import FusionState
from walkout.config import Store
from walkout.link import LinkTiming, Outbox, Receiver, Sender, SqliteLog
from walkout.messages import AnyMessage
from walkout.metrics import Registry

log = logging.getLogger(__name__)

Batch = list[tuple[int, AnyMessage]]
LATENCY_MS_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 20, 50, 100, 500, 1000, 5000, 30000)
# Young-generation size of the garbage collector while the service runs (Python's default is
# 700 allocations). Messages in flight between the link and the engine survive that many
# allocations, so by default they are scanned in every generation before the engine frees
# them: about a fifth of the process's CPU under load. With a larger young generation most
# of them are gone before a collection; a young collection still takes well under 1 ms.
GC_YOUNG_THRESHOLD = 10_000
SNAPSHOT_TOPIC = b"cart"


def expected_sources(store: Store) -> list[str]:
    """Edge nodes that run devices: each one holds the watermark back until it ends."""
    return [n.id for n in store.cfg.nodes if any(store.node_devices(n.id).values())]


def snapshot(session: Session, watermark_ns: int) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "account_id": session.account_id,
        "entry_ts_ns": session.entry_ts_ns,
        "exit_ts_ns": session.exit_ts_ns,
        "state": "closed" if session.closed else "exiting" if session.exited else "open",
        "checkout_id": session.checkout_id,
        "watermark_ns": watermark_ns,
        "lines": [
            {
                "sku": x.sku,
                "quantity": x.quantity,
                "confidence": x.confidence,
                "evidence": list(x.evidence),
                "review": x.review,
            }
            for x in session.cart.lines()
        ],
    }


class _Metrics:
    def __init__(self, r: Registry):
        self.events_in = r.counter("fusion_events_in_total", "messages applied to the pipeline")
        self.late = r.counter("fusion_late_total", "messages behind the watermark on arrival")
        self.late_dropped = r.counter(
            "fusion_late_dropped_total", "shelf events dropped: their cart had closed"
        )
        self.duplicates = r.counter(
            "fusion_duplicates_total", "shelf and gate events seen twice (new edge boot)"
        )
        self.review = r.counter("fusion_review_flags_total", "cart changes flagged for review")
        self.unassigned = r.counter("fusion_unassigned_total", "shelf events with no shopper")
        self.look_swaps = r.counter(
            "fusion_look_swaps_total",
            "overhead tracks moved to another shopper because of how they look (tracker swaps)",
        )
        self.apply_errors = r.counter(
            "fusion_apply_errors_total", "messages the pipeline failed on (logged, skipped)"
        )
        self.outputs = r.counter("fusion_outputs_total", "messages put into the billing outbox")
        self.open_sessions = r.gauge("fusion_open_sessions", "sessions not yet closed")
        self.buffered = r.gauge("fusion_reorder_buffered", "messages waiting for the watermark")
        self.watermark_lag = r.gauge(
            "fusion_watermark_lag_ms", "wall clock minus watermark (live sources)"
        )
        self.apply_ms = r.histogram(
            "fusion_apply_latency_ms", "durable in the log -> applied (ms)", LATENCY_MS_BUCKETS
        )
        self.cart_ms = r.histogram(
            "fusion_cart_update_latency_ms",
            "event time of a shelf event -> its cart change (ms; includes the watermark wait)",
            LATENCY_MS_BUCKETS,
        )


class FusionService:
    def __init__(
        self,
        store: Store,
        data_dir: str | Path,
        *,
        params: FusionParams | None = None,
        registry: Registry | None = None,
        timing: LinkTiming | None = None,
        health_every_s: float = 5.0,
        queue_batches: int = 256,
    ):
        self.store = store
        self.data_dir = Path(data_dir)
        self.params = params or FusionParams.from_store(store)
        self.registry = registry or Registry()
        self.metrics = _Metrics(self.registry)
        self.timing = timing or LinkTiming()
        self.health_every_s = health_every_s
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=queue_batches)
        self._stop = threading.Event()
        self._engine: threading.Thread | None = None
        self._lock = threading.Lock()  # guards the pipeline for readers (carts(), tests)
        self.applied_pos = 0
        self.core = FusionCore.from_store(store, self.params)
        self.pipeline = Pipeline(
            self.core, expected_sources(store), self.params.allowed_lateness_ns
        )
        self.log: SqliteLog | None = None
        self.state: FusionState | None = None
        self.outbox: Outbox | None = None
        self.sender: Sender | None = None
        self.receiver: Receiver | None = None
        self._ctx: zmq.Context[Any] | None = None
        self._pub: zmq.Socket[Any] | None = None
        self._topics: set[bytes] = set()  # what subscribers asked the snapshot socket for
        self._wanted = False  # someone subscribed to cart snapshots
        self._reported: dict[str, int] = {}
        self.engine_error: BaseException | None = None
        self._gc_threshold: tuple[int, int, int] | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FusionService:
        d = self.data_dir
        d.mkdir(parents=True, exist_ok=True)
        self.log = SqliteLog(d / "log.db")
        self.state = FusionState(d / "fusion.db")
        self.outbox = Outbox(d / "outbox-billing.db", "fusion")
        forgotten = self.state.reconcile(self.outbox.last_seq)
        if forgotten:
            log.info(
                "fusion: %d outputs were not in the outbox at the crash; sent again", forgotten
            )
        t0 = time.perf_counter()
        replayed = 0
        after = 0
        while batch := self.log.read(after, 10_000):
            self._apply(batch, live=False)
            replayed += len(batch)
            after = batch[-1][0]
        log.info(
            "fusion: rebuilt state from %d logged messages in %.2f s; %d sessions open",
            replayed,
            time.perf_counter() - t0,
            self.core.open_sessions(),
        )
        self.sender = Sender.from_store(
            self.store, self.outbox, "billing", registry=self.registry, timing=self.timing
        ).start()
        self._ctx = zmq.Context()
        # XPUB: a PUB that also reports its subscriptions, so that the engine builds cart
        # snapshots only while someone could receive them (a PUB drops them otherwise).
        self._pub = self._ctx.socket(zmq.XPUB)
        self._pub.linger = 0
        self._pub.sndhwm = 10_000
        self._pub.bind(self.store.cfg.services.fusion_snapshots.bind)
        self._engine = threading.Thread(target=self._engine_loop, name="fusion-engine", daemon=True)
        self._engine.start()
        allow = [n.id for n in self.store.cfg.nodes]
        self.receiver = Receiver.from_store(
            self.store,
            self.log,
            "fusion",
            allow,
            registry=self.registry,
            on_durable=self._on_durable,
            timing=self.timing,
        ).start()
        self._gc_threshold = gc.get_threshold()
        young, *older = self._gc_threshold
        gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), *older)
        return self

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=1.0)
        if self._engine is not None:
            self._engine.join(10)
        if self.sender is not None:
            self.sender.stop()
        if self._pub is not None:
            self._pub.close(0)
        if self._ctx is not None:
            self._ctx.term()
        for closable in (self.outbox, self.state, self.log):
            if closable is not None:
                closable.close()
        if self._gc_threshold is not None:
            gc.set_threshold(*self._gc_threshold)
            self._gc_threshold = None

    # ------------------------------------------------------------ engine

    def _on_durable(self, batch: Batch) -> None:
        # Called from the receiver's commit thread after the batch is durable; a full queue
        # holds the commit thread back, and with it the acks (backpressure to the edges).
        self._queue.put(batch)

    def _engine_loop(self) -> None:
        last_health = time.monotonic()
        try:
            while True:
                try:
                    batch = self._queue.get(timeout=0.5)
                except queue.Empty:
                    batch = []
                if batch is None:
                    break
                if batch:
                    durable_ns = time.time_ns()
                    self._apply(batch, live=True)
                    self.metrics.apply_ms.observe((time.time_ns() - durable_ns) / 1e6)
                now = time.monotonic()
                if now - last_health >= self.health_every_s:
                    last_health = now
                    self._health()
        except BaseException as exc:  # the log is durable: a restart re-applies it
            self.engine_error = exc
            log.exception("fusion engine stopped; restart the service to rebuild from the log")

    def _apply(self, batch: Batch, *, live: bool) -> None:
        outputs: list[Output] = []
        feed = self.pipeline.feed
        with self._lock:
            applied = self.applied_pos
            for pos, msg in batch:
                if pos <= applied:
                    continue
                applied = self.applied_pos = pos
                try:
                    feed(msg, outputs)
                except Exception:  # one bad message must not stop the store; replay does the same
                    self.metrics.apply_errors.inc()
                    log.exception(
                        "fusion: %s seq %d from %s at log position %d could not be applied; "
                        "skipped (it stays in the log)",
                        type(msg).__name__,
                        msg.seq,
                        msg.source_id,
                        pos,
                    )
            decided = self.core.take_decided()
            changed = self.core.take_changed()
            snaps = (
                [
                    snapshot(self.core.sessions[sid], self.pipeline.watermark_ns)
                    for sid in sorted(changed)
                    if sid in self.core.sessions
                ]
                if live and changed and self._subscribed()
                else []
            )
        if outputs:
            self._emit(outputs)
        self._update_metrics(len(batch))
        if live:
            now = time.time_ns()
            for ts in decided:
                self.metrics.cart_ms.observe((now - ts) / 1e6)
            self._publish(snaps)

    def _emit(self, outputs: list[Output]) -> None:
        assert self.state is not None and self.outbox is not None
        new = [o for o in outputs if not self.state.emitted(o.key)]
        if not new:
            return
        self.state.record(new, self.outbox.last_seq + 1)
        self.outbox.put_many([o.message for o in new])
        self.metrics.outputs.inc(len(new))

    def _subscribed(self) -> bool:
        """Whether a subscriber wants cart snapshots (the engine thread reads the XPUB's
        subscription messages: 1 + topic to subscribe, 0 + topic to unsubscribe)."""
        pub = self._pub
        if pub is None:
            return False
        while int(pub.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            try:
                msg = pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if msg[:1] == b"\x01":
                self._topics.add(msg[1:])
            elif msg[:1] == b"\x00":
                self._topics.discard(msg[1:])
            self._wanted = any(SNAPSHOT_TOPIC.startswith(t) for t in self._topics)
        return self._wanted

    def _publish(self, snaps: list[dict[str, Any]]) -> None:
        if self._pub is None:
            return
        for snap in snaps:
            with contextlib.suppress(zmq.Again):
                self._pub.send_multipart([SNAPSHOT_TOPIC, json.dumps(snap).encode()], zmq.NOBLOCK)

    def _update_metrics(self, n: int) -> None:
        m, st, pipe = self.metrics, self.core.stats, self.pipeline
        m.events_in.inc(n)
        for name, value, counter in (
            ("late", pipe.late, m.late),
            ("late_dropped", st.late_dropped, m.late_dropped),
            ("duplicates", st.duplicates, m.duplicates),
            ("review", st.review_flags, m.review),
            ("unassigned", st.unassigned, m.unassigned),
            ("look_swaps", st.look_swaps, m.look_swaps),
        ):
            delta = value - self._reported.get(name, 0)
            if delta:
                counter.inc(delta)
                self._reported[name] = value
        m.open_sessions.set(self.core.open_sessions())
        m.buffered.set(pipe.buffered)
        if 0 < pipe.watermark_ns < END_OF_TIME:
            m.watermark_lag.set((time.time_ns() - pipe.watermark_ns) / 1e6)

    def _health(self) -> None:
        m, pipe = self.metrics, self.pipeline
        log.info(
            "fusion health: %d events in, %d late, %d duplicates, %d review flags, "
            "%d open sessions, %d buffered, watermark lag %.1f s, billing outbox %d pending, "
            "cart update p99 %.1f ms",
            pipe.events_in,
            pipe.late,
            self.core.stats.duplicates,
            self.core.stats.review_flags,
            self.core.open_sessions(),
            pipe.buffered,
            m.watermark_lag.value() / 1e3,
            self.outbox.pending if self.outbox else 0,
            m.cart_ms.quantile(0.99),
        )

    # ------------------------------------------------------------ reading

    def carts(self) -> dict[str, dict[str, Any]]:
        """Snapshots of every session's cart, by session id."""
        with self._lock:
            wm = self.pipeline.watermark_ns
            return {sid: snapshot(s, wm) for sid, s in sorted(self.core.sessions.items())}
