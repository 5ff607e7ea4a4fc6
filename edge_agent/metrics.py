"""Prometheus metrics for GET /metrics, on a registry of the agent's own.

Request counts and latencies are fed from the telemetry writer's batches, not
from the request path: the count is exact, it just lands up to one flush
interval later. Outbox figures are read at scrape time.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from edge_agent.recorder import RequestEvent
from edge_agent.telemetry import OutboxStats

LATENCY_BUCKETS = (50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3,
                   0.1, 0.25, 0.5, 1.0, 2.5)
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


class AgentMetrics:
    def __init__(self, outbox_stats: Callable[[], OutboxStats]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("outpost_requests", "Inference requests",
                                ["model", "version", "status"], registry=self.registry)
        self.latency = Histogram("outpost_request_latency_seconds",
                                 "Inference request latency, body read to response",
                                 ["model", "version"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.load_failures = Counter("outpost_model_load_failures",
                                     "Model versions that failed to install or load",
                                     ["model"], registry=self.registry)
        self.registry.register(_OutboxCollector(outbox_stats))

    def observe(self, events: list[RequestEvent], _stats: OutboxStats) -> None:
        """The telemetry writer's flush hook: add a batch of finished requests."""
        tally = Tally((e.model, str(e.version), str(e.status)) for e in events)
        for labels, n in tally.items():
            self.requests.labels(*labels).inc(n)
        children: dict[tuple[str, int], Histogram] = {}
        for e in events:
            child = children.get((e.model, e.version))
            if child is None:
                child = children[(e.model, e.version)] = self.latency.labels(e.model,
                                                                             str(e.version))
            child.observe(e.latency_us / 1e6)

    def load_failed(self, model: str) -> None:
        self.load_failures.labels(model).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
