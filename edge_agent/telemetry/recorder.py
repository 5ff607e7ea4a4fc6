"""The telemetry writer thread: request events in, outbox records and window counts out.

The request path only calls ``submit`` (a lock-free queue put). Every
``flush_s`` the thread drains the queue and, in chunks of ``CHUNK`` requests,
bins their inputs and predictions per model version (vectorised over the
chunk) and commits their request records and the open windows' counts in one
transaction; windows that ended are closed with the last chunk. Histogram
counts are additive: a window cut short by a clean shutdown is written then,
and the rest of it, after a restart, as a second record for the same window.
``cut`` closes every open window at the next flush the same way, so a telemetry
pull or a hub push sees the counts of all traffic served before it.

Under load the batching wait ends as soon as a chunk is queued, and the queue is bounded
(``MAX_QUEUED``): a request that finds it full waits for the writer (counted, never
dropped), so a writer starved of CPU cannot grow the agent's memory.

With nothing to write the thread sleeps: until a request or a record arrives (then it
waits ``flush_s`` to batch, as before), until the earliest open window ends, or until a
cut or ``close`` (written at once: someone waits for them), so an idle agent's writer
does not wake four times a second for nothing.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from edge_agent.contract.capture import CapturePolicy
from edge_agent.telemetry.capture import Capturer
from edge_agent.telemetry.histograms import PREDICTION, Array, Binner, FeatureBins, psi
from edge_agent.telemetry.outbox import Outbox, OutboxStats, WindowKey
from edge_agent.telemetry.predictions import prediction_records

log = logging.getLogger(__name__)
MAX_PENDING = 200_000  # records held in memory while the disk refuses writes
# The writer shares the server's core and sleeps most of the time, so the scheduler lets
# it run a whole flush before the event loop gets the core back: a flush of 1,000
# requests (~8 ms) was the c1 p99. It commits in chunks of CHUNK requests, and between
# chunks and between the steps of one (every few features binned, the records, the
# commit) it gives the core to the event loop if a request is waiting (`_yield_core`):
# a request that arrived mid-chunk (~0.5-0.9 ms of CPU) waited for the rest of it, which
# was the c1 p99 (docs/agent.md, "The latency tail").
CHUNK = 64
# A writer that finds this many queued is behind (the machine is busy): it writes bigger
# chunks, whose fixed costs (a transaction, the windows' counts) are shared by more
# requests (5.8 against 8.6 us of writer CPU per request, in-process).
BIG_CHUNK = 256
# Back-pressure: with this many events queued a request waits (its thread, the event
# loop, blocks) until the writer is down to half. Queued events hold their requests'
# arrays (~1 KB each), and a writer that loses the race for the GIL fell seconds behind
# under load: 10-20 MB more resident memory, kept by the heap after it caught up. The
# waits are counted (Recorder.backpressure, /metrics); no event is dropped. Measured
# (bench_agent_memory's 5 s of c16 on 2 busy cores): 2-31 waits, 8-105 ms in all.
MAX_QUEUED = 256
# Windows has no sched_yield; there time.sleep(0) at least releases the GIL
_sched_yield: Callable[[], None] = getattr(os, "sched_yield", None) or partial(time.sleep, 0)


def _yield_core() -> None:
    """Let a runnable event loop have the core: os.sched_yield releases the GIL and puts
    this thread behind it; with nothing waiting it returns at once (a ~1 us syscall).
    A short GIL switch interval does not do this: the loop, woken, waits for the core,
    not for the GIL (measured)."""
    _sched_yield()


@dataclass(slots=True)
class RequestEvent:
    ts: float
    model: str
    version: int
    status: int
    latency_us: int
    rows: int
    binner: Binner | None = None
    feeds: Mapping[str, Array] | None = None
    prediction: Array | None = None
    first_id: int = 0  # row number of the request's first prediction id; 0: none
    proba: Array | None = None  # class probabilities, for a confidence-band capture
    capture: CapturePolicy | None = None  # the bundle's capture policy

    @property
    def recorded(self) -> bool:
        """Whether this request becomes an outbox record. Requests for unknown models and
        refused ones (4xx) are only counted (metrics): a peer needs no token to send them,
        so as records they could push real telemetry out past the byte cap."""
        return bool(self.model) and not 400 <= self.status < 500

    def record(self) -> dict[str, Any]:
        return {"kind": "request", "ts": self.ts, "model": self.model, "version": self.version,
                "status": self.status, "latency_us": self.latency_us, "rows": self.rows}


FlushHook = Callable[[list[RequestEvent], OutboxStats], None]


class Recorder:
    def __init__(self, outbox: Outbox, *, window_s: float, flush_s: float,
                 on_flush: FlushHook | None = None, capturer: Capturer | None = None
                 ) -> None:
        self.outbox = outbox
        self.capturer = capturer
        self.window_s = window_s
        self.flush_s = flush_s
        self._on_flush = on_flush
        self._queue: queue.SimpleQueue[RequestEvent] = queue.SimpleQueue()
        self._records: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._cuts: queue.SimpleQueue[threading.Event] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set when work arrives for an idle writer
        # skip the batching wait: a cut or close() waits, or a chunk's worth is queued
        self._urgent = threading.Event()
        self._idle = False  # the writer sleeps on _wake (read by submitters)
        self._batching = False  # the writer waits on _urgent to batch (read by submitters)
        self._room = threading.Event()  # set by the writer after each chunk
        self._waits = 0  # back-pressure: how many times a submit waited, and how long
        self._waited_s = 0.0
        self._windows: dict[WindowKey, tuple[Array, int]] = outbox.open_windows()
        self._bins: dict[tuple[str, int, str], FeatureBins] = {}  # for the windows' PSI
        self._pending: list[dict[str, Any]] = []
        self._pending_closed: list[WindowKey] = []
        self._thread = threading.Thread(target=self._run, name="telemetry-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, event: RequestEvent) -> None:
        self._queue.put(event)
        if self._idle:  # after the put: a writer going idle checks the queue after this flag
            self._wake.set()
        elif self._batching and self._queue.qsize() >= CHUNK:
            # Under load a chunk fills long before flush_s: writing it at once keeps the
            # events held in memory to about a chunk (their arrays are ~1 KB each; a
            # quarter second of c16 traffic was ~3 MB, and the heap kept the peak).
            self._batching = False
            self._urgent.set()
        if self._queue.qsize() >= MAX_QUEUED and self._thread.is_alive():
            self._make_room()

    def _make_room(self) -> None:
        """Wait until the writer has the queue down to half of MAX_QUEUED (or has
        stopped): back-pressure on the request path instead of unbounded memory."""
        start = time.perf_counter()
        self._urgent.set()
        self._wake.set()
        while self._queue.qsize() > MAX_QUEUED // 2 and self._thread.is_alive():
            self._room.clear()
            self._room.wait(0.01)  # set after each chunk; the timeout covers a race
        self._waits += 1
        self._waited_s += time.perf_counter() - start

    def backpressure(self) -> tuple[int, float]:
        """How many times a request waited for the writer to make room, and the seconds
        spent waiting in all (read by /metrics)."""
        return self._waits, self._waited_s

    def add_record(self, record: dict[str, Any]) -> None:
        """A finished record from another writer (the shadow), committed with the next flush."""
        self._records.put(record)
        self._wake.set()

    def cut(self, timeout: float = 5.0) -> bool:
        """Close every open window with the next flush and wait for it to be written.

        The rest of a cut window's traffic becomes a second record for the same window
        (counts are additive). False if the writer did not get to it within ``timeout``.
        """
        if not self._thread.is_alive():
            return False
        done = threading.Event()
        self._cuts.put(done)
        self._urgent.set()
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything submitted so far, close every open window, stop the thread."""
        self._stop.set()
        self._urgent.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        else:
            self._flush(final=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sleep_while_idle()
            self._batching = True  # before looking: a submit after this may end the wait
            if self._queue.qsize() < CHUNK:
                self._urgent.wait(self.flush_s)  # batch requests, unless a cut waits
            self._batching = False
            self._urgent.clear()  # before the flush takes the cuts: a later one sets it again
            if self._stop.is_set():
                break
            self._flush_logged(final=False)
        self._flush_logged(final=True)

    def _sleep_while_idle(self) -> None:
        """Return at once if there is work; else sleep until work arrives, the earliest
        open window ends (it is closed by the flush that follows) or close()."""
        self._idle = True  # before looking: a submit after this sets _wake
        try:
            while not self._stop.is_set():
                if (not self._queue.empty() or not self._records.empty()
                        or not self._cuts.empty() or self._pending or self._pending_closed):
                    return
                ends = [k[3] + self.window_s for k in self._windows]
                left = min(ends) - time.time() if ends else None
                if left is not None and left <= 0:
                    return
                self._wake.wait(left)
                self._wake.clear()
        finally:
            self._idle = False

    def _flush_logged(self, final: bool) -> None:
        # The thread must outlive any one bad batch: a dead writer would stop telemetry
        # for good while the agent kept serving.
        try:
            self._flush(final)
        except Exception:
            log.exception("telemetry flush failed")

    def _take(self, n: int) -> list[RequestEvent]:
        """Up to n queued events (only the writer takes, so n queued are there to take)."""
        events: list[RequestEvent] = []
        try:
            for _ in range(n):
                events.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return events

    def _flush(self, final: bool) -> None:
        try:
            while True:
                self._pending.append(self._records.get_nowait())
        except queue.Empty:
            pass
        cuts: list[threading.Event] = []
        while not self._cuts.empty():
            cuts.append(self._cuts.get_nowait())
        # After the cuts: everything submitted before them. Taken a chunk at a time, so
        # each chunk's events are freed once written, not at the end of the flush.
        count = self._queue.qsize()
        chunk = BIG_CHUNK if count >= BIG_CHUNK else CHUNK
        if not final and not cuts and count > chunk:
            # Whole chunks only: the rest waits for the next (a chunk's fixed costs are
            # most of the writer's; woken at every 64 queued, partial chunks doubled them).
            # It is written at the latest flush_s later, or at once by a cut or close().
            count -= count % chunk
        try:
            for start in range(0, max(count, 1), chunk):
                if start:
                    _yield_core()
                last = start + chunk >= count
                self._write(self._take(min(chunk, count - start)), final or bool(cuts), last)
                self._room.set()
        finally:
            for done in cuts:
                done.set()

    def _write(self, events: list[RequestEvent], final: bool, last: bool) -> None:
        """Commit one chunk of events; windows that ended are closed with the last chunk."""
        try:
            touched = self._count(events)
        except Exception:  # request records matter more than one batch of histograms
            log.exception("binning %d requests for histograms failed", len(events))
            touched = set()
        _yield_core()
        now = time.time()
        closed = [k for k in self._windows
                  if last and (final or k[3] + self.window_s <= now)]
        recorded = [e for e in events if e.recorded]
        records = self._pending + [e.record() for e in recorded]
        self._pause()
        records += self._answers(recorded, now)
        _yield_core()
        records += [self._histogram(k, now) for k in closed]
        self._observe_drift(closed)
        if not records and not touched:
            if events and self._on_flush is not None:  # requests only counted, not recorded
                self._on_flush(events, self.outbox.stats())
            return
        still_open = {k: self._windows[k] for k in touched if k not in closed}
        for key in closed:
            del self._windows[key]
        closed += self._pending_closed
        try:
            self.outbox.write(records, still_open, closed, pause=self._pause)
        except sqlite3.Error as exc:
            # Keep everything for the next flush: a full disk may come back.
            log.error("telemetry outbox write failed, will retry: %s", exc)
            self._pending, self._pending_closed = records[-MAX_PENDING:], closed
            return
        self._pending, self._pending_closed = [], []
        _yield_core()
        if self._on_flush is not None:
            self._on_flush(events, self.outbox.stats())

    def _pause(self) -> None:
        """A finer yield, inside a chunk's steps, taken only while the writer keeps up.
        With a chunk's worth queued the event loop is saturated (c16): it keeps the GIL
        for a whole switch interval (5 ms) after each yield, so the writer's chunk
        stretched over ~45 ms while the queue grew to back-pressure (c16 p99 2.3-3.0 ms
        before these yields, 3.0-3.1 with them on every chunk, same run)."""
        if self._queue.qsize() < CHUNK:
            _yield_core()

    def _answers(self, events: list[RequestEvent], now: float) -> list[dict[str, Any]]:
        """Prediction records (ids and answers) and captured rows of this chunk."""
        if self.capturer is None:
            return []
        records = prediction_records(events, self.capturer.prefix, now)
        try:
            records += self.capturer.records(events, now)
        except Exception:  # a capture bug must not cost the request records
            log.exception("capturing from %d requests failed", len(events))
        return records

    def _observe_drift(self, closed: list[WindowKey]) -> None:
        """Tell the capturer each closed window's PSI per feature (drift-alerted capture)."""
        if self.capturer is None or not closed:
            return
        windows: dict[tuple[str, int, float], tuple[dict[str, float], int]] = {}
        for key in closed:
            model, version, feature, start = key
            bins = self._bins.get((model, version, feature))
            if bins is None:
                continue
            counts, nulls = self._windows[key]
            value = psi(bins, counts, nulls)
            if value is None:
                continue
            psis, rows = windows.setdefault((model, version, start), ({}, 0))
            psis[feature] = value
            windows[(model, version, start)] = (psis, max(rows, int(counts.sum()) + nulls))
        try:
            for (model, _, _), (psis, rows) in sorted(windows.items(), key=lambda i: i[0][2]):
                self.capturer.observe_window(model, psis, rows)
        except Exception:  # a capture bug must not cost the histograms
            log.exception("drift check of %d windows failed", len(windows))

    def _histogram(self, key: WindowKey, now: float) -> dict[str, Any]:
        model, version, feature, start = key
        counts, nulls = self._windows[key]
        return {"kind": "histogram", "window_start": start,
                "window_end": min(start + self.window_s, now), "model": model,
                "version": version, "feature": feature, "counts": counts.tolist(),
                "nulls": nulls}

    def _count(self, events: list[RequestEvent]) -> set[WindowKey]:
        """Add the batch's values to the window counts; returns the windows touched."""
        groups: dict[tuple[int, float], list[RequestEvent]] = {}
        for event in events:
            if event.binner is not None and event.feeds is not None and event.status == 200:
                start = event.ts - event.ts % self.window_s
                groups.setdefault((id(event.binner), start), []).append(event)
        touched: set[WindowKey] = set()
        for (_, start), group in groups.items():
            first = group[0]
            binner = first.binner
            assert binner is not None
            for i, (bins, counts, nulls) in enumerate(
                    binner.feature_counts([e.feeds or {} for e in group]), 1):
                touched.add(self._add(first, start, bins, counts, nulls))
                # One by one, a feature is ~30-60 us of a serving core with its input's
                # concatenation: a pause every two (each one that hands the core over
                # costs the writer ~15 us of cold caches: every feature cost more CPU)
                if i % 2 == 0 and binner.joint is None:
                    self._pause()
            if binner.prediction is not None:
                if binner.joint is not None:  # after the one-pass count (~50 us)
                    self._pause()
                bins = binner.prediction
                preds = [e.prediction for e in group if e.prediction is not None]
                counts, nulls = bins.count(np.concatenate(preds, axis=None)) if preds else (
                    np.zeros(bins.size, np.int64), 0)
                touched.add(self._add(first, start, bins, counts, nulls, PREDICTION))
        return touched

    def _add(self, event: RequestEvent, start: float, bins: FeatureBins, counts: Array,
             nulls: int, name: str | None = None) -> WindowKey:
        key = (event.model, event.version, name or bins.name, start)
        self._bins[key[:3]] = bins
        old = self._windows.get(key)
        if old is not None and old[0].shape == counts.shape:
            counts, nulls = counts + old[0], nulls + old[1]
        self._windows[key] = (counts, nulls)
        return key
