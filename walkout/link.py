"""The reliable link: edge -> fusion and fusion -> billing.

Sender side: an application puts messages into a durable, bounded :class:`Outbox` (SQLite;
``seq`` is assigned at write and never reused within the outbox's ``boot_id``); a
:class:`Sender` thread streams them over a DEALER socket in batch frames, keeps a window of
unacknowledged messages in flight, and goes back to the last acknowledged ``seq`` when the
receiver asks for it or stays silent.

Receiver side: a :class:`Receiver` (ROUTER socket) decodes each batch, keeps only the next
``seq`` of each ``(source_id, boot_id)`` stream (duplicates are counted and dropped; a gap asks
the sender to go back), commits everything it accepted from all the frames it could read in one
transaction (group commit) through its :class:`Sink` (by default :class:`SqliteLog`), calls the
application's ``on_durable`` hook, and only then acknowledges, cumulatively. Reading and
committing run in two threads so the next batch is checked while the last one is written;
``on_durable`` is called from the commit thread, one batch at a time, in log order.

Security: CurveZMQ on by default. The ZAP authenticator starts before the ROUTER binds and
admits only allowlisted client keys; every key is bound to the one ``source_id`` it may speak
for, and a frame carrying any other ``source_id`` is rejected whole and counted.

Frames (after the ROUTER's routing id):

* sender -> receiver: ``D`` + msgpack array of messages; ``H`` + a link heartbeat message.
* receiver -> sender: ``A`` + :class:`~walkout.messages.Ack` (cumulative);
  ``R`` + Ack (gap: resend everything after ``acked_seq``); ``H`` + heartbeat;
  ``E`` + UTF-8 text explaining a rejected frame.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import zmq
import zmq.auth.thread

from walkout import keys as keyring
from walkout.eventlog import Sink, SqliteLog
from walkout.messages import (
    Ack,
    AnyMessage,
    Heartbeat,
    WireError,
    decode,
    decode_batch,
    encode,
    encode_batch,
    split_batch,
)
from walkout.metrics import Registry
from walkout.outbox import LinkError, Outbox, OutboxFull, OutboxMismatch, Waker

__all__ = [
    "LinkError",
    "LinkTiming",
    "Outbox",
    "OutboxFull",
    "OutboxMismatch",
    "Receiver",
    "Sender",
    "Sink",
    "SqliteLog",
]

if TYPE_CHECKING:
    from walkout.config import Store

log = logging.getLogger(__name__)

DATA, HEARTBEAT, ACK, REWIND, ERROR = b"D", b"H", b"A", b"R", b"E"

# Per-message field reads in the receive loop run in C (map over a batch of thousands).
_source_of, _boot_of, _seq_of = attrgetter("source_id"), attrgetter("boot_id"), attrgetter("seq")


def now_ns() -> int:
    return time.time_ns()


# ---------------------------------------------------------------- sockets


@dataclass(frozen=True)
class LinkTiming:
    heartbeat_s: float = 1.0
    silent_after_s: float = 3.0  # a peer not heard from for this long is reported
    resend_after_s: float = 2.0  # no ack progress for this long: go back and resend
    window: int = 50_000  # messages in flight before waiting for acks
    batch_max: int = 2_000  # messages per data frame


class _LinkMetrics:
    def __init__(self, registry: Registry, role: str):
        r = registry
        self.role = role
        self.frames_in = r.counter("link_frames_in_total", "frames received")
        self.msgs_in = r.counter("link_messages_in_total", "messages received")
        self.msgs_out = r.counter("link_messages_sent_total", "messages sent (resends too)")
        self.accepted = r.counter("link_messages_accepted_total", "messages made durable")
        self.duplicates = r.counter("link_duplicates_total", "duplicate messages dropped")
        self.gaps = r.counter("link_gaps_total", "frames with a gap in seq (resend asked)")
        self.rejected = r.counter("link_rejected_total", "frames refused, by reason")
        self.resends = r.counter("link_resends_total", "go-back-and-resend events")
        self.outbox_full = r.counter("link_outbox_full_total", "puts refused: outbox full")
        self.peer_up = r.gauge("link_peer_up", "1 while the peer is heard from")
        self.pending = r.gauge("link_outbox_pending", "messages waiting for an ack")
        self.commit_ms = r.histogram("link_commit_ms", "group commit time (ms)")


def _curve_client(sock: zmq.Socket[Any], client: keyring.KeyPair, server_public: bytes) -> None:
    assert client.secret is not None
    sock.curve_secretkey = client.secret
    sock.curve_publickey = client.public
    sock.curve_serverkey = server_public


class Sender:
    """Streams an outbox to one receiver until every message is acknowledged."""

    def __init__(
        self,
        outbox: Outbox,
        endpoint: str,
        *,
        client_keys: keyring.KeyPair | None,
        server_public_key: bytes | None,
        registry: Registry | None = None,
        timing: LinkTiming = LinkTiming(),
    ):
        if (client_keys is None) != (server_public_key is None):
            raise ValueError("CurveZMQ needs both the client key pair and the server public key")
        self.outbox = outbox
        self.endpoint = endpoint
        self.timing = timing
        self.registry = registry or Registry()
        self.metrics = _LinkMetrics(self.registry, "sender")
        self._client_keys = client_keys
        self._server_public = server_public_key
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peer_alive = False
        self.last_error: str | None = None

    @classmethod
    def from_store(
        cls,
        store: Store,
        outbox: Outbox,
        service: str,
        *,
        registry: Registry | None = None,
        timing: LinkTiming = LinkTiming(),
    ) -> Sender:
        endpoint = getattr(store.cfg.services, service).connect
        if not store.cfg.security.curve:
            log.warning(
                "CurveZMQ is off in the store config: the link to %s is plain text", service
            )
            return cls(
                outbox,
                endpoint,
                client_keys=None,
                server_public_key=None,
                registry=registry,
                timing=timing,
            )
        client = keyring.load(store.keys_dir, outbox.source_id, secret=True)
        server = keyring.load(store.keys_dir, service, secret=False)
        return cls(
            outbox,
            endpoint,
            client_keys=client,
            server_public_key=server.public,
            registry=registry,
            timing=timing,
        )

    def start(self) -> Sender:
        if self._thread is not None:
            raise LinkError("sender already started")
        self._thread = threading.Thread(target=self._run, name=f"link-send-{self.outbox.source_id}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self.outbox.waker.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wait_drained(self, timeout_s: float) -> bool:
        """Block until every message in the outbox is acknowledged, or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        while self.outbox.pending > 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _socket(self, ctx: zmq.Context[Any]) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.immediate = True  # refuse to queue while not connected: the outbox is the queue
        sock.sndhwm = 64
        sock.rcvhwm = 10_000
        sock.reconnect_ivl = 100
        sock.reconnect_ivl_max = 2_000
        if self._client_keys is not None and self._server_public is not None:
            _curve_client(sock, self._client_keys, self._server_public)
        sock.connect(self.endpoint)
        return sock

    def _run(self) -> None:
        ctx = zmq.Context()
        sock = self._socket(ctx)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        t, m, ob = self.timing, self.metrics, self.outbox
        poller.register(ob.waker.read_fd, zmq.POLLIN)
        acked = sent_upto = ob.acked_seq
        last_progress = last_heard = time.monotonic()
        last_hb = 0.0
        refused_seen = 0
        heard_any = reported_silent = False
        last_rewind = (-1, 0.0)
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                timeout_ms = max(1, int(1000 * min(t.heartbeat_s - (now - last_hb), 0.1)))
                events = dict(poller.poll(timeout_ms))
                if ob.waker.read_fd in events:
                    ob.waker.drain()
                new_ack = acked
                rewind_to: int | None = None
                while True:
                    try:
                        parts = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    last_heard = time.monotonic()
                    heard_any = True
                    kind, body = (parts[0], parts[1]) if len(parts) == 2 else (b"?", b"")
                    if kind in (ACK, REWIND):
                        try:
                            a = decode(body)
                        except WireError as exc:
                            log.warning("link %s: unreadable ack: %s", self.endpoint, exc)
                            continue
                        if not isinstance(a, Ack) or a.acked_boot_id != ob.boot_id:
                            continue
                        new_ack = max(new_ack, min(a.acked_seq, ob.last_seq))
                        if kind == REWIND:
                            rewind_to = a.acked_seq
                    elif kind == ERROR:
                        self.last_error = body.decode("utf-8", "replace")
                        log.error("link %s refused a frame: %s", self.endpoint, self.last_error)
                if new_ack > acked:
                    ob.ack(new_ack)
                    acked = new_ack
                    last_progress = time.monotonic()
                now = time.monotonic()
                # Frames already in flight behind a gap each ask again: honour one request per
                # position, unless it repeats after the resent frames had time to land.
                if (
                    rewind_to is not None
                    and sent_upto > max(rewind_to, acked)
                    and (last_rewind[0] != rewind_to or now - last_rewind[1] > 0.5)
                ):
                    sent_upto = max(rewind_to, acked)
                    last_rewind = (rewind_to, now)
                    m.resends.inc()
                sent_upto = max(sent_upto, acked)
                if sent_upto > acked and now - last_progress > t.resend_after_s:
                    sent_upto = acked  # nothing heard back: go back and send it all again
                    last_progress = now
                    m.resends.inc()
                while sent_upto - acked < t.window:
                    frame = ob.next_frame(
                        sent_upto, min(t.batch_max, t.window - (sent_upto - acked))
                    )
                    if frame is None:
                        break
                    try:
                        sock.send_multipart([DATA, frame[1]], zmq.NOBLOCK)
                    except zmq.Again:
                        break  # not connected or the pipe is full: the outbox keeps them
                    if sent_upto == acked:
                        last_progress = now
                    sent_upto += frame[0]
                    m.msgs_out.inc(frame[0])
                if now - last_hb >= t.heartbeat_s:
                    last_hb = now
                    ob.flush_acks_if_idle()
                    hb = Heartbeat(
                        source_id=ob.source_id,
                        boot_id=ob.boot_id,
                        event_ts_ns=now_ns(),
                        pending=ob.pending,
                    )
                    with contextlib.suppress(zmq.Again):
                        sock.send_multipart([HEARTBEAT, encode(hb)], zmq.NOBLOCK)
                alive = heard_any and now - last_heard < t.silent_after_s
                if alive and not self.peer_alive:
                    log.info("link %s: receiver is up", self.endpoint)
                    reported_silent = False
                elif not alive and not reported_silent and now - last_heard > t.silent_after_s:
                    log.warning(
                        "link %s: receiver silent for %.1f s; %d messages wait in the outbox",
                        self.endpoint,
                        now - last_heard,
                        ob.pending,
                    )
                    reported_silent = True
                self.peer_alive = alive
                m.peer_up.set(1 if alive else 0)
                m.pending.set(ob.pending)
                if ob.refused > refused_seen:
                    m.outbox_full.inc(ob.refused - refused_seen)
                    refused_seen = ob.refused
        finally:
            ob.flush_acks()
            sock.close(0)
            ctx.term()


# ---------------------------------------------------------------- receiver


DurableHook = Callable[[list[tuple[int, AnyMessage]]], None]


@dataclass
class _Batch:
    accepted: list[tuple[list[AnyMessage], bytes | memoryview]]
    acks: list[list[bytes]]  # frames to send once the batch is durable
    cursors: dict[tuple[str, str], int]


class _Allowlist:
    """ZAP credentials provider: admits only the listed client keys."""

    def __init__(self, allow: dict[bytes, str]):
        self.allow = allow
        self.refused = 0

    def callback(self, domain: str, key: bytes) -> bool:
        z85 = zmq.utils.z85.encode(key) if len(key) == 32 else key  # pyzmq hands over z85
        ok = z85 in self.allow
        if not ok:
            self.refused += 1
        return ok


class Receiver:
    """Accepts messages from allowlisted senders, makes them durable, then acknowledges."""

    def __init__(
        self,
        endpoint: str,
        sink: Sink,
        *,
        server_keys: keyring.KeyPair | None,
        allow: dict[bytes, str] | None,
        registry: Registry | None = None,
        on_durable: DurableHook | None = None,
        timing: LinkTiming = LinkTiming(),
        max_frames_per_commit: int = 256,
        max_messages_per_commit: int = 8_000,
    ):
        if (server_keys is None) != (allow is None):
            raise ValueError("CurveZMQ needs both the server key pair and the client allowlist")
        self.endpoint = endpoint
        self.sink = sink
        self.on_durable = on_durable
        self.timing = timing
        self.max_frames = max_frames_per_commit
        self.max_messages = max_messages_per_commit
        self.registry = registry or Registry()
        self.metrics = _LinkMetrics(self.registry, "receiver")
        self._server_keys = server_keys
        self._allow = _Allowlist(allow) if allow is not None else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self.cursors: dict[tuple[str, str], int] = {}  # durable
        self._commit_error: Exception | None = None
        self.last_heard: dict[str, float] = {}
        self.silent: set[str] = set()

    @classmethod
    def from_store(
        cls,
        store: Store,
        sink: Sink,
        service: str,
        allow: Sequence[str],
        *,
        registry: Registry | None = None,
        on_durable: DurableHook | None = None,
        timing: LinkTiming = LinkTiming(),
    ) -> Receiver:
        endpoint = getattr(store.cfg.services, service).bind
        if not store.cfg.security.curve:
            log.warning(
                "CurveZMQ is off in the store config: %s accepts any sender on %s",
                service,
                endpoint,
            )
            return cls(
                endpoint,
                sink,
                server_keys=None,
                allow=None,
                registry=registry,
                on_durable=on_durable,
                timing=timing,
            )
        return cls(
            endpoint,
            sink,
            server_keys=keyring.load(store.keys_dir, service, secret=True),
            allow=keyring.allowlist(store.keys_dir, list(allow)),
            registry=registry,
            on_durable=on_durable,
            timing=timing,
        )

    # -- lifecycle

    def start(self, ready_timeout_s: float = 10.0) -> Receiver:
        if self._thread is not None:
            raise LinkError("receiver already started")
        self._thread = threading.Thread(target=self.run, name="link-recv", daemon=True)
        self._thread.start()
        if not self._ready.wait(ready_timeout_s):
            raise LinkError(f"receiver on {self.endpoint} did not start in {ready_timeout_s} s")
        if self._start_error is not None:
            raise LinkError(f"receiver on {self.endpoint} failed to start: {self._start_error}")
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run(self, stop: threading.Event | None = None) -> None:
        """Serve in the calling thread until ``stop`` (or :meth:`stop`) is set."""
        stop_event = stop or self._stop
        ctx = zmq.Context()
        auth: zmq.auth.thread.ThreadAuthenticator | None = None
        sock = ctx.socket(zmq.ROUTER)
        try:
            sock.linger = 0
            sock.rcvhwm = 10_000
            sock.router_mandatory = False
            if self._server_keys is not None and self._allow is not None:
                # The authenticator must run before the socket binds, or early clients slip by.
                auth = zmq.auth.thread.ThreadAuthenticator(ctx, log=log.getChild("zap"))
                auth.start()
                auth.configure_curve_callback(domain="walkout", credentials_provider=self._allow)
                assert self._server_keys.secret is not None
                sock.curve_server = True
                sock.curve_secretkey = self._server_keys.secret
                sock.curve_publickey = self._server_keys.public
                sock.zap_domain = b"walkout"
            sock.bind(self.endpoint)
            self.cursors = self.sink.cursors()
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            sock.close(0)
            if auth is not None:
                auth.stop()
            ctx.term()
            raise
        self._ready.set()
        log.info("link receiver on %s (curve %s)", self.endpoint, "on" if auth else "OFF")
        try:
            self._serve(sock, stop_event)
        finally:
            sock.close(0)
            if auth is not None:
                auth.stop()
            ctx.term()

    # -- the loop

    def _source_of(self, frame: zmq.Frame) -> str | None:
        if self._allow is None:
            return None  # plain mode: sources are whatever they claim
        try:
            user = frame.get("User-Id")
        except zmq.ZMQError:
            return ""
        return self._allow.allow.get(str(user).encode(), "")

    def _serve(self, sock: zmq.Socket[Any], stop: threading.Event) -> None:
        """Read and check frames here; commit in a second thread, so both overlap.

        Batches go to the commit thread in order through a queue two deep (backpressure);
        each carries the replies to send once it is durable, with the cursor values of the
        moment it was cut, so no ack ever runs ahead of the disk. The commit thread commits
        all the batches it finds waiting in one transaction.
        """
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        waker = Waker()
        poller.register(waker.read_fd, zmq.POLLIN)
        batches: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        ready: collections.deque[list[list[bytes]]] = collections.deque()
        committer = threading.Thread(
            target=self._commit_loop, args=(batches, ready, waker), name="link-commit", daemon=True
        )
        committer.start()
        t = self.timing
        pending = dict(self.cursors)  # accepted, durable or on its way to the disk
        last_check = time.monotonic()
        try:
            while not stop.is_set() and self._commit_error is None:
                events = dict(poller.poll(100))
                if waker.read_fd in events:
                    waker.drain()
                self._send_ready(sock, ready)
                if sock in events:
                    self._read_batch(sock, pending, batches)
                now = time.monotonic()
                if now - last_check > t.heartbeat_s:
                    last_check = now
                    self._check_silence(now)
        finally:
            batches.put(None)
            committer.join(30)
            self._send_ready(sock, ready)
            waker.close()
        if self._commit_error is not None:
            raise LinkError(
                f"receiver on {self.endpoint} stopped: the durable log failed: "
                f"{self._commit_error}; nothing after the last ack was acknowledged, "
                "so senders will resend it once the log is fixed and the service restarted"
            ) from self._commit_error

    def _read_batch(
        self,
        sock: zmq.Socket[Any],
        pending: dict[tuple[str, str], int],
        batches: queue.Queue[_Batch | None],
    ) -> None:
        """Check every frame waiting on the socket (up to the limits) and queue one batch.

        A method of its own so that nothing here keeps the decoded messages alive once the
        commit thread is done with them (the fewer live objects, the less the GC walks).
        """
        accepted: list[tuple[list[AnyMessage], bytes | memoryview]] = []
        replies: dict[tuple[bytes, str, str], bytes] = {}
        taken = 0
        for _ in range(self.max_frames):
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            self.metrics.frames_in.inc()
            before = len(accepted)
            self._handle_frame(sock, parts, pending, accepted, replies)
            taken += sum(len(run) for run, _ in accepted[before:])
            if taken >= self.max_messages:
                break
        if accepted or replies:
            acks = [
                [peer, kind, self._ack(source, boot, pending.get((source, boot), 0))]
                for (peer, source, boot), kind in replies.items()
            ]
            batches.put(_Batch(accepted, acks, dict(pending)))

    @staticmethod
    def _ack(source: str, boot: str, seq: int) -> bytes:
        return encode(
            Ack(
                source_id="receiver",
                event_ts_ns=now_ns(),
                acked_source_id=source,
                acked_boot_id=boot,
                acked_seq=seq,
            )
        )

    def _send_ready(
        self, sock: zmq.Socket[Any], ready: collections.deque[list[list[bytes]]]
    ) -> None:
        while ready:
            for parts in ready.popleft():
                with contextlib.suppress(zmq.ZMQError):
                    sock.send_multipart(parts, zmq.NOBLOCK)

    def _commit_loop(
        self,
        batches: queue.Queue[_Batch | None],
        ready: collections.deque[list[list[bytes]]],
        waker: Waker,
    ) -> None:
        done = False
        while not done:
            batch = batches.get()
            if batch is None:
                return
            # Group commit: everything that queued up while the last commit ran goes in one.
            while True:
                try:
                    more = batches.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    done = True
                    break
                batch = _Batch(batch.accepted + more.accepted, batch.acks + more.acks, more.cursors)
            if self._commit_error is None:  # else drain: nothing more may be acknowledged
                self._commit(batch, ready, waker)
            del batch  # not kept alive while waiting for the next one

    def _commit(
        self, batch: _Batch, ready: collections.deque[list[list[bytes]]], waker: Waker
    ) -> None:
        m = self.metrics
        if batch.accepted:
            t0 = time.perf_counter()
            try:
                ids = self.sink.append(batch.accepted)
            except Exception as exc:
                log.exception("link %s: the durable log failed", self.endpoint)
                self._commit_error = exc
                waker.wake()
                return
            m.commit_ms.observe((time.perf_counter() - t0) * 1e3)
            m.accepted.inc(len(ids))
            if self.on_durable is not None:
                msgs = itertools.chain.from_iterable(run for run, _ in batch.accepted)
                try:
                    self.on_durable(list(zip(ids, msgs)))
                except Exception:  # the log is durable; the application rebuilds from it
                    log.exception("on_durable hook failed; messages stay in the log")
        self.cursors = batch.cursors
        ready.append(batch.acks)
        waker.wake()

    def _reject(self, sock: zmq.Socket[Any], peer: bytes, reason: str, text: str) -> None:
        self.metrics.rejected.inc(reason=reason)
        log.debug("link %s: refused a frame (%s): %s", self.endpoint, reason, text)
        with contextlib.suppress(zmq.ZMQError):
            sock.send_multipart([peer, ERROR, text.encode()[:1000]], zmq.NOBLOCK)

    def _handle_frame(
        self,
        sock: zmq.Socket[Any],
        parts: list[zmq.Frame],
        pending: dict[tuple[str, str], int],
        accepted: list[tuple[list[AnyMessage], bytes | memoryview]],
        replies: dict[tuple[bytes, str, str], bytes],
    ) -> None:
        m = self.metrics
        peer = parts[0].bytes
        if len(parts) != 3:
            self._reject(sock, peer, "bad_frame", f"expected 2 parts, got {len(parts) - 1}")
            return
        # The body is read in place (no copy of a frame of thousands of messages): the decoded
        # messages are new objects, and the run stored in the log keeps the frame alive.
        kind = parts[1].bytes
        body: bytes | memoryview = parts[2].buffer
        bound = self._source_of(parts[1])
        if bound == "":
            self._reject(sock, peer, "unknown_key", "client key not bound to any source")
            return
        if kind == HEARTBEAT:
            try:
                hb = decode(body)
            except WireError as exc:
                self._reject(sock, peer, exc.reason, str(exc))
                return
            if bound is not None and hb.source_id != bound:
                self._reject(sock, peer, "source_mismatch", f"key of {bound} sent {hb.source_id}")
                return
            self.last_heard[hb.source_id] = time.monotonic()
            reply = Heartbeat(source_id="receiver", event_ts_ns=now_ns())
            with contextlib.suppress(zmq.ZMQError):
                sock.send_multipart([peer, HEARTBEAT, encode(reply)], zmq.NOBLOCK)
            return
        if kind != DATA:
            self._reject(sock, peer, "bad_frame", f"unknown frame kind {kind[:8]!r}")
            return
        try:
            msgs = decode_batch(body)
        except WireError as exc:
            self._reject(sock, peer, exc.reason, str(exc))
            return
        sources = set(map(_source_of, msgs))
        if bound is not None and (len(sources) > 1 or bound not in sources) and msgs:
            wrong = next(x for x in sorted(sources) if x != bound)
            log.warning(
                "link %s: client key of '%s' sent a message as '%s'; frame refused",
                self.endpoint,
                bound,
                wrong,
            )
            self._reject(sock, peer, "source_mismatch", f"key of {bound} sent {wrong}")
            return
        m.msgs_in.inc(len(msgs))
        if not msgs:
            return
        heard = time.monotonic()
        for source in sources:
            self.last_heard[source] = heard
        first = msgs[0]
        key = (first.source_id, first.boot_id)
        seqs = list(map(_seq_of, msgs))
        if (
            len(sources) == 1
            and len(set(map(_boot_of, msgs))) == 1
            and seqs == list(range(first.seq, first.seq + len(msgs)))
        ):
            # The usual frame: one stream, consecutive seqs. Take what follows the cursor.
            cur = pending.get(key, 0)
            if first.seq > cur + 1:
                m.gaps.inc()
                replies[(peer, *key)] = REWIND
                return
            skip = min(len(msgs), cur + 1 - first.seq)
            if skip:
                m.duplicates.inc(skip)
                body = encode_batch(split_batch(body)[skip:])
            if skip < len(msgs):
                accepted.append((msgs[skip:] if skip else msgs, body))
                pending[key] = seqs[-1]
            replies.setdefault((peer, *key), ACK)
            return
        gapped: set[tuple[str, str]] = set()
        for msg, raw in zip(msgs, split_batch(body)):
            key = (msg.source_id, msg.boot_id)
            if key in gapped:
                continue
            cur = pending.get(key, 0)
            if msg.seq <= cur:
                m.duplicates.inc()
                replies.setdefault((peer, *key), ACK)
            elif msg.seq == cur + 1:
                pending[key] = msg.seq
                accepted.append(([msg], encode_batch([raw])))
                replies.setdefault((peer, *key), ACK)
            else:
                gapped.add(key)
                m.gaps.inc()
                replies[(peer, *key)] = REWIND

    def _check_silence(self, now: float) -> None:
        for source, heard in self.last_heard.items():
            silent = now - heard > self.timing.silent_after_s
            if silent and source not in self.silent:
                self.silent.add(source)
                log.warning(
                    "link %s: sender '%s' silent for %.1f s", self.endpoint, source, now - heard
                )
            elif not silent and source in self.silent:
                self.silent.discard(source)
                log.info("link %s: sender '%s' is back", self.endpoint, source)
            self.metrics.peer_up.set(0 if silent else 1, source=source)
