"""The hub's single writer: every catalog write a request causes runs on this one thread.

DuckDB takes one writing process, and inside it concurrent transactions on the same
rows conflict. The hub shares the catalog with whoever opened it (the GUI, or the CLI
that serves the hub), so its request handlers never write themselves: they queue a job
and await its future. Telemetry batches that queue up while a commit runs are committed
together in the next one, which is what keeps the cost per batch low under load.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import duckdb

from core.catalog import Catalog
from core.errors import OutpostError
from core.hub.ingest import Batch, ingest_batches
from core.telemetry.ingest import IngestResult

log = logging.getLogger(__name__)
T = TypeVar("T")
CONFLICT_RETRIES = 3
_IDLE = object()  # the queue stayed empty for a period


@dataclass
class _Call:
    fn: Callable[[Catalog], Any]
    future: Future[Any]


@dataclass
class _Telemetry:
    batch: Batch
    future: Future[IngestResult]


class Writer:
    """Runs queued jobs in order on one thread; `periodic` runs every `period_s` too."""

    def __init__(self, catalog: Catalog, *, periodic: Callable[[Catalog], object] | None = None,
                 period_s: float = 2.0, max_rows: int = 200_000,
                 commit_interval_s: float = 0.1) -> None:
        self.catalog = catalog
        self.periodic = periodic
        self.period_s = period_s
        self.max_rows = max_rows
        # Telemetry commits are at least this far apart: under load, the batches arriving
        # in between share one commit (~15 ms of CPU each, however many batches it holds).
        self.commit_interval_s = commit_interval_s
        self._last_commit = 0.0
        self._queue: queue.SimpleQueue[_Call | _Telemetry | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="hub-writer", daemon=True)
        self.flushes = 0  # commits of telemetry rounds, for the benchmark's report
        self._ingested = False  # telemetry committed since the policies were last evaluated

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, run `periodic` a last time, and end the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def call(self, fn: Callable[[Catalog], T]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put(_Call(fn, future))
        return future

    def telemetry(self, batch: Batch) -> Future[IngestResult]:
        future: Future[IngestResult] = Future()
        self._queue.put(_Telemetry(batch, future))
        return future

    def _run(self) -> None:
        last = time.monotonic()
        running = True
        while running:
            try:
                first: _Call | _Telemetry | None | object = self._queue.get(
                    timeout=self.period_s)
            except queue.Empty:
                first = _IDLE
            jobs, running = self._gather(first)
            self._do(jobs)
            if time.monotonic() - last >= self.period_s or not running:
                last = time.monotonic()
                self._periodic()
                self._policies()

    def _gather(self, first: _Call | _Telemetry | None | object
                ) -> tuple[list[_Call | _Telemetry], bool]:
        """The first job plus everything queued behind it (up to max_rows of telemetry)."""
        if first is None:
            return [], False
        if not isinstance(first, _Call | _Telemetry):
            return [], True
        jobs: list[_Call | _Telemetry] = [first]
        rows = 0
        if isinstance(first, _Telemetry):
            rows = first.batch.records.num_rows
            time.sleep(max(0.0, self._last_commit + self.commit_interval_s - time.monotonic()))
        while rows < self.max_rows:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, False
            jobs.append(job)
            if isinstance(job, _Telemetry):
                rows += job.batch.records.num_rows
        return jobs, True

    def _do(self, jobs: list[_Call | _Telemetry]) -> None:
        for job in jobs:
            if isinstance(job, _Call):
                self._call(job)
        telemetry = [j for j in jobs if isinstance(j, _Telemetry)]
        if not telemetry:
            return
        self._last_commit = time.monotonic()
        try:
            results = _retrying(lambda: ingest_batches(self.catalog,
                                                       [t.batch for t in telemetry]))
        except Exception as exc:  # noqa: BLE001 -- every waiting request learns why
            log.exception("telemetry commit failed")
            for t in telemetry:
                t.future.set_exception(exc)
            return
        self.flushes += 1
        self._ingested = True
        for t, result in zip(telemetry, results, strict=True):
            if isinstance(result, OutpostError):
                t.future.set_exception(result)
            else:
                t.future.set_result(result)

    def _call(self, job: _Call) -> None:
        try:
            job.future.set_result(_retrying(lambda: job.fn(self.catalog)))
        except Exception as exc:  # noqa: BLE001 -- handed to the waiting request
            job.future.set_exception(exc)

    def _policies(self) -> None:
        """Evaluate the retraining policies once per period after telemetry arrived, not per
        round: rounds come many a second, and their posters are answered first. A firing
        trigger queues its retrain as pending (docs/policy.md); `after_ingest` never
        raises, so the writer thread cannot die of it."""
        if not self._ingested:
            return
        from core.policy.evaluate import after_ingest

        self._ingested = False
        after_ingest(self.catalog, "hub")

    def _periodic(self) -> None:
        if self.periodic is None:
            return
        try:
            periodic = self.periodic
            _retrying(lambda: periodic(self.catalog))
        except Exception:  # noqa: BLE001 -- a failed flush is retried next period
            log.exception("hub periodic write failed")



def _retrying(fn: Callable[[], T]) -> T:
    """Run `fn`, again if a concurrent transaction (the GUI's) touched the same rows."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            return fn()
        except duckdb.TransactionException:
            if attempt + 1 == CONFLICT_RETRIES:
                raise
            time.sleep(0.01 * 2 ** attempt)
    raise AssertionError("unreachable")
