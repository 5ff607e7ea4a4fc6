"""Prometheus metrics for GET /metrics, written in the text exposition format.

Request counts and latencies are fed from the telemetry writer's batches, not
from the request path: the count is exact, it just lands up to one flush
interval later, and a batch is bucketed with one numpy call per model version.
Outbox figures are read at scrape time. The text is written here rather than by
prometheus_client: a handful of counters and one histogram do not need its
registry, and leaving it out keeps ~2 MB off the serving process.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from edge_agent.telemetry.outbox import OutboxStats
from edge_agent.telemetry.recorder import RequestEvent

LATENCY_BUCKETS = (50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3,
                   0.1, 0.25, 0.5, 1.0, 2.5)
_EDGES = np.asarray(LATENCY_BUCKETS)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Labels = Mapping[str, str]


def _number(value: float) -> str:
    value = float(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _sample(name: str, labels: Labels, value: float) -> str:
    if not labels:
        return f"{name} {_number(value)}"
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}} {_number(value)}"


def _family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    escaped = help_text.replace("\\", r"\\").replace("\n", r"\n")
    return [f"# HELP {name} {escaped}", f"# TYPE {name} {kind}", *samples]


class _RequestTallies:
    """Requests by model/version/status and the latency histogram, added in batches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Tally[tuple[str, str, str]] = Tally()
        self._latency: dict[tuple[str, str], tuple[np.ndarray[Any, Any], float]] = {}

    def add(self, events: list[RequestEvent]) -> None:
        # keyed by numbers, made text once per key rather than once per request
        numbers = Tally((e.model, e.version, e.status) for e in events)
        tally = {(m, str(v), str(s)): n for (m, v, s), n in numbers.items()}
        by_number: dict[tuple[str, int], list[int]] = {}
        for e in events:
            by_number.setdefault((e.model, e.version), []).append(e.latency_us)
        by_version = {(m, str(v)): micros for (m, v), micros in by_number.items()}
        with self._lock:
            self._counts.update(tally)
            for key, micros in by_version.items():
                seconds = np.asarray(micros, np.float64) / 1e6
                counts = np.bincount(np.searchsorted(_EDGES, seconds, side="left"),
                                     minlength=len(_EDGES) + 1)
                old, total = self._latency.get(key, (np.zeros(len(_EDGES) + 1, np.int64), 0.0))
                self._latency[key] = (old + counts, total + float(seconds.sum()))

    def lines(self) -> list[str]:
        with self._lock:
            counts = dict(self._counts)
            latency = dict(self._latency)
        out = _family("outpost_requests_total", "counter", "Inference requests", (
            _sample("outpost_requests_total", {"model": m, "version": v, "status": s}, n)
            for (m, v, s), n in sorted(counts.items())))
        hist = "outpost_request_latency_seconds"
        samples = []
        for (model, version), (bins, total) in sorted(latency.items()):
            labels = {"model": model, "version": version}
            cumulative = np.cumsum(bins).tolist()
            for le, c in zip((*map(repr, LATENCY_BUCKETS), "+Inf"), cumulative, strict=True):
                samples.append(_sample(f"{hist}_bucket", {**labels, "le": le}, c))
            samples.append(_sample(f"{hist}_count", labels, cumulative[-1]))
            samples.append(_sample(f"{hist}_sum", labels, total))
        return out + _family(hist, "histogram",
                             "Inference request latency, body read to response", samples)


class AgentMetrics:
    def __init__(self, outbox_stats: Callable[[], OutboxStats]) -> None:
        self._requests = _RequestTallies()
        self._outbox_stats = outbox_stats
        self._lock = threading.Lock()
        self._load_failures: Tally[str] = Tally()
        self._rejected: Tally[str] = Tally()
        self._backpressure: Callable[[], tuple[int, float]] = lambda: (0, 0.0)

    def track_backpressure(self, figures: Callable[[], tuple[int, float]]) -> None:
        """Where to read the telemetry queue's back-pressure (waits, seconds waited)."""
        self._backpressure = figures

    def observe(self, events: list[RequestEvent], _stats: OutboxStats) -> None:
        """The telemetry writer's flush hook: add a batch of finished requests."""
        if events:
            self._requests.add(events)
            rejected = Tally(str(e.status) for e in events if not e.recorded)
            with self._lock:
                self._rejected.update(rejected)

    def rejected_total(self) -> int:
        """Requests counted but not recorded (unknown model, refused): see RequestEvent."""
        with self._lock:
            return sum(self._rejected.values())

    def load_failed(self, model: str) -> None:
        with self._lock:
            self._load_failures[model] += 1

    def render(self) -> bytes:
        with self._lock:
            failures, rejected = dict(self._load_failures), dict(self._rejected)
        stats = self._outbox_stats()
        lines = self._requests.lines()
        lines += _family("outpost_model_load_failures_total", "counter",
                         "Model versions that failed to install or load",
                         (_sample("outpost_model_load_failures_total", {"model": m}, n)
                          for m, n in sorted(failures.items())))
        lines += _family("outpost_rejected_requests_total", "counter",
                         "Requests answered 4xx or for an unknown model: counted here, "
                         "never outbox records",
                         (_sample("outpost_rejected_requests_total", {"status": s}, n)
                          for s, n in sorted(rejected.items())))
        lines += _family("outpost_telemetry_backlog", "gauge",
                         "Telemetry records in the outbox not yet acknowledged",
                         [_sample("outpost_telemetry_backlog", {}, stats.backlog)])
        lines += _family("outpost_telemetry_bytes", "gauge",
                         "Bytes of telemetry records in the outbox",
                         [_sample("outpost_telemetry_bytes", {}, stats.bytes)])
        lines += _family("outpost_telemetry_evicted_total", "counter",
                         "Telemetry records dropped by the outbox byte cap",
                         [_sample("outpost_telemetry_evicted_total", {}, stats.evicted)])
        waits, waited_s = self._backpressure()
        lines += _family("outpost_telemetry_backpressure_waits_total", "counter",
                         "Requests that waited for the telemetry writer to catch up",
                         [_sample("outpost_telemetry_backpressure_waits_total", {}, waits)])
        lines += _family("outpost_telemetry_backpressure_seconds_total", "counter",
                         "Seconds requests waited for the telemetry writer to catch up",
                         [_sample("outpost_telemetry_backpressure_seconds_total", {},
                                  waited_s)])
        return ("\n".join(lines) + "\n").encode()
