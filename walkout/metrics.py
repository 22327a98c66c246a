"""Small, per-instance Prometheus metrics: monotonic counters, gauges and histograms.

Each service owns one :class:`Registry` (two instances never share a counter) and may serve it
with :func:`serve` on loopback. Increments are plain integer arithmetic under the GIL, cheap
enough for per-frame and per-event paths; values are read by the exposition thread.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LabelKey = tuple[tuple[str, str], ...]

DEFAULT_MS_BUCKETS: tuple[float, ...] = (
    0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000,
)  # fmt: skip


def _labels(labels: dict[str, str] | None) -> LabelKey:
    return tuple(sorted((labels or {}).items()))


def _fmt_labels(key: LabelKey, extra: Iterable[tuple[str, str]] = ()) -> str:
    items = [*key, *extra]
    if not items:
        return ""
    body = ",".join(
        f'{k}="{str(v).replace(chr(92), "/").replace(chr(34), chr(39))}"' for k, v in items
    )
    return "{" + body + "}"


class Counter:
    def __init__(self, name: str, help_text: str):
        self.name, self.help = name, help_text
        self._values: dict[LabelKey, float] = {}

    def inc(self, amount: float = 1, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"counter {self.name} can only go up, got {amount}")
        key = _labels(labels)
        self._values[key] = self._values.get(key, 0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(_labels(labels), 0)

    def total(self) -> float:
        return sum(self._values.values())

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        out += [f"{self.name}{_fmt_labels(k)} {v:g}" for k, v in sorted(self._values.items())]
        return out


class Gauge:
    def __init__(self, name: str, help_text: str):
        self.name, self.help = name, help_text
        self._values: dict[LabelKey, float] = {}

    def set(self, value: float, **labels: str) -> None:
        self._values[_labels(labels)] = value

    def value(self, **labels: str) -> float:
        return self._values.get(_labels(labels), 0)

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        out += [f"{self.name}{_fmt_labels(k)} {v:g}" for k, v in sorted(self._values.items())]
        return out


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: Sequence[float] = DEFAULT_MS_BUCKETS):
        self.name, self.help = name, help_text
        self.buckets = tuple(sorted(buckets))
        self._counts: dict[LabelKey, list[int]] = {}
        self._sums: dict[LabelKey, float] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = _labels(labels)
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = [0] * (len(self.buckets) + 1)
            self._sums[key] = 0.0
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self._sums[key] += value

    def count(self, **labels: str) -> int:
        return sum(self._counts.get(_labels(labels), []))

    def quantile(self, q: float, **labels: str) -> float:
        """Upper bucket bound holding quantile ``q`` (what Prometheus would estimate)."""
        counts = self._counts.get(_labels(labels))
        if not counts:
            return float("nan")
        target, seen = q * sum(counts), 0
        for i, c in enumerate(counts):
            seen += c
            if seen >= target:
                return self.buckets[i] if i < len(self.buckets) else float("inf")
        return float("inf")

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, counts in sorted(self._counts.items()):
            running = 0
            for bound, c in zip(self.buckets, counts):
                running += c
                out.append(
                    f"{self.name}_bucket{_fmt_labels(key, [('le', f'{bound:g}')])} {running}"
                )
            running += counts[-1]
            out.append(f"{self.name}_bucket{_fmt_labels(key, [('le', '+Inf')])} {running}")
            out.append(f"{self.name}_sum{_fmt_labels(key)} {self._sums[key]:g}")
            out.append(f"{self.name}_count{_fmt_labels(key)} {running}")
        return out


class Registry:
    def __init__(self, prefix: str = "walkout"):
        self.prefix = prefix
        self._metrics: dict[str, Counter | Gauge | Histogram] = {}
        self._lock = threading.Lock()

    def _get(self, cls: type, name: str, help_text: str, *args: object) -> object:
        full = f"{self.prefix}_{name}"
        with self._lock:
            m = self._metrics.get(full)
            if m is None:
                m = self._metrics[full] = cls(full, help_text, *args)
            elif not isinstance(m, cls):
                raise TypeError(f"metric {full} already registered as {type(m).__name__}")
        return m

    def counter(self, name: str, help_text: str) -> Counter:
        m = self._get(Counter, name, help_text)
        assert isinstance(m, Counter)
        return m

    def gauge(self, name: str, help_text: str) -> Gauge:
        m = self._get(Gauge, name, help_text)
        assert isinstance(m, Gauge)
        return m

    def histogram(
        self, name: str, help_text: str, buckets: Sequence[float] = DEFAULT_MS_BUCKETS
    ) -> Histogram:
        m = self._get(Histogram, name, help_text, buckets)
        assert isinstance(m, Histogram)
        return m

    def render(self) -> str:
        with self._lock:
            metrics = list(self._metrics.values())
        lines: list[str] = []
        for m in metrics:
            lines += m.render()
        return "\n".join(lines) + "\n"


def serve(registry: Registry, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve ``/metrics`` in a daemon thread; port 0 picks a free port (see server_address)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") not in ("/metrics", ""):
                self.send_error(404, "only /metrics is served here")
                return
            body = registry.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
