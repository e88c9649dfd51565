"""Prometheus metrics and the exact-percentile window behind ``/v1/stats``.

Each app gets its own ``CollectorRegistry`` so that tests can build many apps in one
process. Histogram buckets are fine between 1 and 200 ms so p50 and p99 can be read from
them; ``/v1/stats`` does not estimate from buckets: it keeps the raw samples of a recent
time window and reports exact percentiles.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.scheduler import REFUSALS

LATENCY_BUCKETS_S = tuple(
    x / 1000 for x in (0.5, 1, 1.5, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 100,
                       125, 150, 200, 300, 500, 1000, 2000, 5000)
)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256)
TOKEN_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class Metrics:
    """All server metrics, labelled by backend."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram("nextword_request_seconds", "End-to-end request time in the engine",
                                 ["backend"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.queue = Histogram("nextword_queue_seconds", "Time from admission to first scheduling",
                               ["backend"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.compute = Histogram("nextword_compute_seconds", "Time from first scheduling to answer",
                                 ["backend"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.step = Histogram("nextword_step_seconds", "Duration of one batched model call",
                              ["backend"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.batch_size = Histogram("nextword_batch_requests", "Requests sharing one model call",
                                    ["backend"], buckets=BATCH_BUCKETS, registry=r)
        self.batch_rows = Histogram("nextword_batch_rows", "Rows (hypotheses) in one model call",
                                    ["backend"], buckets=TOKEN_BUCKETS, registry=r)
        self.step_tokens = Histogram("nextword_step_tokens", "Tokens fed in one model call",
                                     ["backend"], buckets=TOKEN_BUCKETS, registry=r)
        self.queue_depth = Gauge("nextword_queue_depth", "Requests waiting to start", ["backend"], registry=r)
        self.in_flight = Gauge("nextword_in_flight", "Requests admitted and not finished", ["backend"], registry=r)
        self.requests = Counter("nextword_requests", "Requests by outcome", ["backend", "status"], registry=r)
        self.responses = Counter("nextword_http_responses", "POST /v1/complete answers by HTTP status",
                                 ["backend", "code"], registry=r)
        self.refused = Counter("nextword_overloaded", "Requests refused at admission (503), by the rule that refused",
                               ["backend", "reason"], registry=r)
        self._responses: dict[tuple[str, str], Any] = {}  # label values are bounded: model names, codes
        self.cache_hits = Counter("nextword_prefix_cache_hits", "Prefix-state cache hits", ["backend"], registry=r)
        self.cache_misses = Counter("nextword_prefix_cache_misses", "Prefix-state cache misses", ["backend"],
                                    registry=r)
        self.cache_bytes = Gauge("nextword_prefix_cache_bytes", "Prefix-state cache size", ["backend"], registry=r)

    def response(self, backend: str, code: str) -> None:
        """Count one ``POST /v1/complete`` answer; each (backend, code) child is resolved once."""
        child = self._responses.get((backend, code))
        if child is None:
            child = self._responses[(backend, code)] = self.responses.labels(backend, code)
        child.inc()

    def for_backend(self, backend: str, window_s: float) -> EngineMetrics:
        return EngineMetrics(self, backend, window_s)


class LatencyWindow:
    """Raw samples of the last ``window_s`` seconds; exact percentiles on demand."""

    def __init__(self, window_s: float, max_samples: int = 100_000) -> None:
        self.window_s = window_s
        # Bounded in entries too (~10 MB): at any rate the window's memory stays put.
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)
        self._lock = threading.Lock()

    def add(self, value_ms: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._samples.append((now, value_ms))
            self._trim(now)

    def _trim(self, now: float) -> None:
        cutoff = now - self.window_s
        while self._samples and self._samples[0][0] < cutoff:
            self._samples.popleft()

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            values = sorted(v for _, v in self._samples)
        out: dict[str, Any] = {"count": len(values)}
        for q in (50, 90, 99):
            out[f"p{q}_ms"] = round(percentile_of_sorted(values, q), 3) if values else None
        return out


def percentile_of_sorted(sorted_values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank: the sample at rank ceil(q/100 * n)."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class EngineMetrics:
    """The engine's observer: records iterations and finished requests for one backend."""

    def __init__(self, metrics: Metrics, backend: str, window_s: float) -> None:
        self.m = metrics
        self.backend = backend
        self.window = LatencyWindow(window_s)
        # Each series' child resolved once: ``labels()`` takes a lock and a dict lookup per call.
        b = backend
        self._step, self._batch_size = metrics.step.labels(b), metrics.batch_size.labels(b)
        self._batch_rows, self._step_tokens = metrics.batch_rows.labels(b), metrics.step_tokens.labels(b)
        self._ok, self._latency = metrics.requests.labels(b, "ok"), metrics.latency.labels(b)
        self._queue, self._compute = metrics.queue.labels(b), metrics.compute.labels(b)
        self._hits, self._misses = metrics.cache_hits.labels(b), metrics.cache_misses.labels(b)
        # Every refusal series exists from the start, at 0 (rate() needs it).
        self._refused = {reason: metrics.refused.labels(b, reason) for reason in REFUSALS}

    def iteration(self, stats: Any) -> None:
        self._step.observe(stats.seconds)
        self._batch_size.observe(stats.requests)
        self._batch_rows.observe(stats.rows)
        self._step_tokens.observe(stats.tokens)

    def refused(self, reason: str) -> None:
        """A request refused at admission (503), by the rule that refused it (one of ``REFUSALS``)."""
        self._refused[reason].inc()

    def request_done(self, req: Any, result: Any, error: Exception | None) -> None:
        if result is None:
            status = type(error).__name__ if error is not None else "error"
            self.m.requests.labels(self.backend, status).inc()
            return
        t = result.timing
        self._ok.inc()
        self._latency.observe(t.total_ms / 1000)
        self._queue.observe(t.queue_ms / 1000)
        self._compute.observe(t.compute_ms / 1000)
        self.window.add(t.total_ms)
        (self._hits if result.result.cache_hit else self._misses).inc()

    def refresh_gauges(self, engine: Any) -> None:
        b = self.backend
        self.m.queue_depth.labels(b).set(engine.queue_depth)
        self.m.in_flight.labels(b).set(engine.in_flight)
        self.m.cache_bytes.labels(b).set(engine.cache.nbytes)
