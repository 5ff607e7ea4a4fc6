"""Prometheus metrics for GET /metrics, on a registry of the agent's own.

Request counts and latencies are fed from the telemetry writer's batches, not
from the request path: the count is exact, it just lands up to one flush
interval later, and a batch is bucketed with one numpy call per model version.
Outbox figures are read at scrape time.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from edge_agent.telemetry.outbox import OutboxStats
from edge_agent.telemetry.recorder import RequestEvent

LATENCY_BUCKETS = (50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3,
                   0.1, 0.25, 0.5, 1.0, 2.5)
_EDGES = np.asarray(LATENCY_BUCKETS)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class _OutboxCollector(Collector):
    def __init__(self, stats: Callable[[], OutboxStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield GaugeMetricFamily("outpost_telemetry_backlog",
                                "Telemetry records in the outbox not yet acknowledged",
                                value=stats.backlog)
        yield GaugeMetricFamily("outpost_telemetry_bytes",
                                "Bytes of telemetry records in the outbox", value=stats.bytes)
        yield CounterMetricFamily("outpost_telemetry_evicted",
                                  "Telemetry records dropped by the outbox byte cap",
                                  value=stats.evicted)


class _RequestCollector(Collector):
    """Requests by model/version/status and the latency histogram, added in batches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Tally[tuple[str, str, str]] = Tally()
        self._latency: dict[tuple[str, str], tuple[np.ndarray[Any, Any], float]] = {}

    def add(self, events: list[RequestEvent]) -> None:
        tally = Tally((e.model, str(e.version), str(e.status)) for e in events)
        by_version: dict[tuple[str, str], list[int]] = {}
        for e in events:
            by_version.setdefault((e.model, str(e.version)), []).append(e.latency_us)
        with self._lock:
            self._counts.update(tally)
            for key, micros in by_version.items():
                seconds = np.asarray(micros, np.float64) / 1e6
                counts = np.bincount(np.searchsorted(_EDGES, seconds, side="left"),
                                     minlength=len(_EDGES) + 1)
                old, total = self._latency.get(key, (np.zeros(len(_EDGES) + 1, np.int64), 0.0))
                self._latency[key] = (old + counts, total + float(seconds.sum()))

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts = dict(self._counts)
            latency = dict(self._latency)
        requests = CounterMetricFamily("outpost_requests", "Inference requests",
                                       labels=["model", "version", "status"])
        for labels, n in sorted(counts.items()):
            requests.add_metric(list(labels), n)
        yield requests
        hist = HistogramMetricFamily("outpost_request_latency_seconds",
                                     "Inference request latency, body read to response",
                                     labels=["model", "version"])
        for labels, (bins, total) in sorted(latency.items()):
            cumulative = np.cumsum(bins).tolist()
            buckets = [(repr(le), c) for le, c in zip(LATENCY_BUCKETS, cumulative, strict=False)]
            hist.add_metric(list(labels), buckets + [("+Inf", cumulative[-1])], total)
        yield hist


class AgentMetrics:
    def __init__(self, outbox_stats: Callable[[], OutboxStats]) -> None:
        self.registry = CollectorRegistry()
        self._requests = _RequestCollector()
        self.registry.register(self._requests)
        self.load_failures = Counter("outpost_model_load_failures",
                                     "Model versions that failed to install or load",
                                     ["model"], registry=self.registry)
        self.rejected = Counter("outpost_rejected_requests",
                                "Requests answered 4xx or for an unknown model: counted here, "
                                "never outbox records", ["status"], registry=self.registry)
        self._rejected_total = 0
        self.registry.register(_OutboxCollector(outbox_stats))

    def observe(self, events: list[RequestEvent], _stats: OutboxStats) -> None:
        """The telemetry writer's flush hook: add a batch of finished requests."""
        if events:
            self._requests.add(events)
            rejected = Tally(str(e.status) for e in events if not e.recorded)
            for status, n in rejected.items():
                self.rejected.labels(status).inc(n)
            self._rejected_total += sum(rejected.values())

    def rejected_total(self) -> int:
        """Requests counted but not recorded (unknown model, refused): see RequestEvent."""
        return self._rejected_total

    def load_failed(self, model: str) -> None:
        self.load_failures.labels(model).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
