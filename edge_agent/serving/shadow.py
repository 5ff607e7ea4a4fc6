"""Shadow: run a bundle's challenger beside the champion, off the request path.

The request path only calls :meth:`Shadow.offer` after the champion answered: a
coin toss against the bundle's share and a ``put_nowait`` into a bounded queue
(full: the job is dropped and counted). One worker thread runs the challenger
on the same feeds, one call at a time, each under a deadline enforced by a
watchdog that sets ``RunOptions.terminate``; it compares the two predictions
and adds to per-window counts. A window's counts become one ``shadow``
telemetry record when the window ends (or the agent stops).
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)
Array = np.ndarray[Any, Any]
# Upper edges (µs) of the challenger latency buckets; the last bucket is open.
LATENCY_EDGES_US = (100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
# Regression outputs agree when within this relative tolerance.
REGRESSION_RTOL = 0.01
MAX_DIVERGENT_CLASSES = 100


@dataclass(slots=True)
class ShadowJob:
    ts: float
    model: str
    version: int
    challenger: Any  # store.loaded_model.Challenger
    classification: bool
    feeds: Mapping[str, Array]
    champion: Array


@dataclass(slots=True)
class _Window:
    start: float
    count: int = 0  # requests the challenger ran on
    rows: int = 0
    agreed: int = 0
    dropped: int = 0
    timeouts: int = 0
    errors: int = 0
    latency_us: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES_US) + 1))
    divergence: dict[str, int] = field(default_factory=dict)


WindowKey = tuple[str, int, int, float]  # model, version, challenger version, window start


def compare(champion: Array, challenger: Array, classification: bool
            ) -> tuple[int, int, dict[str, int]]:
    """(rows, rows that agree, disagreements by the champion's class)."""
    a = champion.reshape(champion.shape[0], -1)[:, 0] if champion.ndim > 1 else champion
    b = challenger.reshape(challenger.shape[0], -1)[:, 0] if challenger.ndim > 1 else challenger
    if a.shape != b.shape:
        return int(a.shape[0]), 0, {}
    if classification:
        same = a == b
    else:
        same = np.isclose(a.astype(np.float64), b.astype(np.float64), rtol=REGRESSION_RTOL,
                          atol=1e-9)
    divergence: dict[str, int] = {}
    if classification:
        for label in a[~same].tolist():
            key = label.decode() if isinstance(label, bytes) else str(label)
            divergence[key] = divergence.get(key, 0) + 1
    return int(a.shape[0]), int(same.sum()), divergence


class Shadow:
    def __init__(self, emit: Callable[[dict[str, Any]], None], *, window_s: float,
                 queue_size: int = 256, timeout_s: float = 0.5, seed: int | None = None) -> None:
        self.emit = emit
        self.window_s = window_s
        self.timeout_s = timeout_s
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(queue_size)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._windows: dict[WindowKey, _Window] = {}
        self._cond = threading.Condition()
        self._running: tuple[ort.RunOptions, float] | None = None
        self._stopped = False
        self._worker = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._watchdog = threading.Thread(target=self._watch, name="shadow-watchdog",
                                          daemon=True)

    def start(self) -> None:
        self._worker.start()
        self._watchdog.start()

    def offer(self, served: Any, feeds: Mapping[str, Array], champion: Array) -> None:
        """Called on the request path once the champion answered: cheap, never blocks."""
        challenger = getattr(served.loaded, "challenger", None)
        if challenger is None or self._random.random() >= challenger.share:
            return
        task = getattr(served.loaded.manifest, "task", None)
        job = ShadowJob(time.time(), served.name, served.version, challenger,
                        task != "regression", feeds, champion)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            with self._lock:
                self._window(job).dropped += 1

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued jobs, stop both threads and emit every open window."""
        if self._worker.is_alive():
            self._queue.put(None)
            self._worker.join(timeout)
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._watchdog.is_alive():
            self._watchdog.join(timeout)
        self._emit_windows(final=True)

    def _window(self, job: ShadowJob) -> _Window:
        start = job.ts - job.ts % self.window_s
        key = (job.model, job.version, int(job.challenger.version), start)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(start)
        return window

    def _until_window_end(self) -> float | None:
        """Seconds until the earliest open window ends; None with none open (an idle
        worker then sleeps until a job comes: a window only opens with one)."""
        with self._lock:
            ends = [key[3] + self.window_s for key in self._windows]
        return max(0.0, min(ends) - time.time()) if ends else None

    def _run(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=self._until_window_end())
            except queue.Empty:
                self._emit_windows(final=False)
                continue
            if job is None:
                return
            try:
                self._handle(job)
            except Exception:  # noqa: BLE001 -- the shadow must never stop the agent
                log.exception("shadow run failed")
            self._emit_windows(final=False)

    def _handle(self, job: ShadowJob) -> None:
        options = ort.RunOptions()
        t0 = time.perf_counter()
        with self._cond:
            self._running = (options, time.monotonic() + self.timeout_s)
            self._cond.notify()
        outputs: list[Any] | None = None
        try:
            outputs = job.challenger.session.run(None, dict(job.feeds))
        except Exception:  # noqa: BLE001 -- onnxruntime raises untyped errors
            pass
        finally:
            with self._cond:
                self._running = None
        latency = int((time.perf_counter() - t0) * 1e6)
        with self._lock:
            window = self._window(job)
            if outputs is None or not isinstance(outputs[0], np.ndarray):
                if options.terminate:
                    window.timeouts += 1
                else:
                    window.errors += 1
                return
            rows, agreed, divergence = compare(job.champion, outputs[0], job.classification)
            window.count += 1
            window.rows += rows
            window.agreed += agreed
            window.latency_us += latency
            window.latency[int(np.searchsorted(LATENCY_EDGES_US, latency))] += 1
            for label, n in divergence.items():
                if label in window.divergence or len(window.divergence) < MAX_DIVERGENT_CLASSES:
                    window.divergence[label] = window.divergence.get(label, 0) + n

    def _watch(self) -> None:
        with self._cond:
            while not self._stopped:
                running = self._running
                if running is None:
                    self._cond.wait()
                    continue
                options, deadline = running
                left = deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                elif self._running is running:
                    options.terminate = True
                    self._running = None

    def _emit_windows(self, final: bool) -> None:
        now = time.time()
        with self._lock:
            done = [k for k in self._windows if final or k[3] + self.window_s <= now]
            windows = [(k, self._windows.pop(k)) for k in done]
        for (model, version, challenger, start), w in windows:
            self.emit({"kind": "shadow", "window_start": start,
                       "window_end": min(start + self.window_s, now), "model": model,
                       "version": version, "challenger": challenger, "count": w.count,
                       "rows": w.rows, "agreed": w.agreed, "dropped": w.dropped,
                       "timeouts": w.timeouts, "errors": w.errors,
                       "latency_us": w.latency_us, "counts": w.latency,
                       "divergence": json.dumps(w.divergence, sort_keys=True)})
