"""The telemetry outbox: SQLite (WAL), one gapless sequence space across restarts.

Requests never touch SQLite: they put a small event on a queue and a writer
thread turns each batch into request records and histogram counts, committed
in one transaction per chunk of requests, every ``flush_s`` seconds or as soon as a
chunk is queued. Counts of the current window are
saved with every flush (table ``open_windows``), so a kill -9 loses at most
one flush interval of anything. A byte cap evicts the oldest records and
leaves an ``evicted`` record saying which sequence numbers went.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from edge_agent.contract.errors import AgentError
from edge_agent.telemetry.histograms import Array
from edge_agent.telemetry.sqlite_db import Migrations, atomic, connect

log = logging.getLogger(__name__)
ROW_OVERHEAD = 16  # bytes charged per record on top of its JSON body

MIGRATIONS = Migrations("outpost-telemetry")


@MIGRATIONS(name="001_records")
def _m001_records(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE records (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
               "body TEXT NOT NULL, size INTEGER NOT NULL)")


@MIGRATIONS(name="002_state")
def _m002_state(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), "
               "last_seq INTEGER NOT NULL, evicted INTEGER NOT NULL)")
    db.execute("INSERT INTO state VALUES (1, 0, 0)")


@MIGRATIONS(name="003_open_windows")
def _m003_open_windows(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE open_windows (model TEXT NOT NULL, version INTEGER NOT NULL, "
               "feature TEXT NOT NULL, window_start REAL NOT NULL, counts TEXT NOT NULL, "
               "nulls INTEGER NOT NULL, PRIMARY KEY (model, version, feature, window_start))")


class AckBeyondLastSeq(AgentError):
    http_status = 400


@MIGRATIONS(name="004_capture_evicted")
def _m004_capture_evicted(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE state ADD COLUMN capture_evicted INTEGER NOT NULL DEFAULT 0")


CAPTURE = "capture"
@MIGRATIONS(name="005_counters")
def _m005_counters(db: sqlite3.Connection) -> None:
    # Numbers handed out with records, in their transaction (the agent's audit events).
    db.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")


WindowKey = tuple[str, int, str, float]  # model, version, feature, window start


@dataclass(frozen=True, slots=True)
class OutboxStats:
    backlog: int
    last_seq: int
    evicted: int
    bytes: int
    capture_bytes: int = 0
    capture_evicted: int = 0  # captured rows dropped to keep under the capture cap


# Rows per INSERT statement, at most: 64 records' 256 parameters stay under SQLite's
# oldest limit on bound parameters (999).
ROWS_PER_STATEMENT = 64


@functools.cache
def _statement(head: str, width: int, rows: int) -> str:
    return head + ", ".join(["(" + ", ".join("?" * width) + ")"] * rows)


def _insert_rows(conn: sqlite3.Connection, head: str, width: int, params: list[Any]) -> None:
    """Insert rows of `width` values (flattened in params) with multi-row VALUES
    statements. Not executemany: sqlite3 releases the GIL around every row's step, and
    under load the writer thread then waits for the request thread to give it back once
    per row, falls behind, and the events it has yet to write pile up in memory (issue
    20). Statements hold 64, 32, 16, ... or 1 rows (the binary digits of the count), so
    sqlite3's statement cache keeps 7 per table: one per row count held ~1.2 MB."""
    rows = len(params) // width
    start = 0
    size = ROWS_PER_STATEMENT
    while rows:
        while size > rows:
            size //= 2
        end = start + size * width
        conn.execute(_statement(head, width, size), params[start:end])
        start, rows = end, rows - size


class Outbox:
    """The SQLite file. Thread-safe: every call takes one lock around one connection."""

    def __init__(self, path: Path, max_bytes: int = 64 * 1024 * 1024,
                 capture_max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.capture_max_bytes = capture_max_bytes
        self._lock = threading.Lock()
        self._conn = connect(path)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        # The writer only appends (and acks delete from the front): a page cache of 64 KB,
        # not SQLite's default 2 MB, which an agent under load filled with pages it would
        # not read again (issue 20: RSS with the model loaded).
        self._conn.execute("PRAGMA cache_size=-64")
        MIGRATIONS.apply(self._conn)
        self._last_seq, self._evicted, self._capture_evicted = self._conn.execute(
            "SELECT last_seq, evicted, capture_evicted FROM state").fetchone()
        self._backlog, self._bytes, self._capture_bytes = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), "
            "COALESCE(SUM(size) FILTER (WHERE kind = 'capture'), 0) FROM records").fetchone()

    def stats(self) -> OutboxStats:
        # Under the lock: a write moves the counters one by one, around its commit.
        with self._lock:
            return OutboxStats(self._backlog, self._last_seq, self._evicted, self._bytes,
                               self._capture_bytes, self._capture_evicted)

    def write(self, records: list[dict[str, Any]],
              windows: Mapping[WindowKey, tuple[Array, int]] | None = None,
              closed: Iterable[WindowKey] = (), pause: Callable[[], None] | None = None
              ) -> None:
        """Append records (numbering them), save open windows, forget closed ones: atomically.
        `pause` is called between the steps (the telemetry writer gives up the core there)."""
        def produce() -> list[dict[str, Any]]:
            self._save_windows(windows or {}, closed)
            if pause is not None:
                pause()
            return records

        self._commit(produce, pause)

    def write_counted(self, counter: str,
                      make: Callable[[int], list[dict[str, Any]]]) -> None:
        """Take the next number of `counter` and append the records `make(number)` returns,
        in one transaction: each number goes out once, with its records, or not at all."""
        def produce() -> list[dict[str, Any]]:
            (number,) = self._conn.execute(
                "SELECT coalesce(max(value), 0) + 1 FROM counters WHERE name = ?",
                (counter,)).fetchone()
            self._conn.execute("INSERT OR REPLACE INTO counters VALUES (?, ?)",
                               (counter, number))
            return make(int(number))

        self._commit(produce)

    def _commit(self, produce: Callable[[], list[dict[str, Any]]],
                pause: Callable[[], None] | None = None) -> None:
        with self._lock:
            saved = self._backlog, self._bytes, self._capture_bytes
            try:
                with atomic(self._conn):
                    seq = self._insert(self._last_seq, produce())
                    if pause is not None:
                        pause()
                    captures = self._evict_captures()
                    evicted, seq = self._evict(seq)
                    self._conn.execute(
                        "UPDATE state SET last_seq = ?, evicted = ?, capture_evicted = ?",
                        (seq, self._evicted + evicted, self._capture_evicted + captures))
            except BaseException:
                self._backlog, self._bytes, self._capture_bytes = saved
                raise
            self._last_seq, self._evicted = seq, self._evicted + evicted
            self._capture_evicted += captures

    def _insert(self, last_seq: int, records: list[dict[str, Any]]) -> int:
        """Number records from last_seq + 1 and insert them; returns the new last seq."""
        params: list[Any] = []
        added = captured = 0
        for seq, record in enumerate(records, last_seq + 1):
            body = orjson.dumps(record).decode()
            size = len(body) + ROW_OVERHEAD
            kind = record["kind"]
            params += (seq, kind, body, size)
            added += size
            captured += size if kind == CAPTURE else 0
        _insert_rows(self._conn, "INSERT INTO records VALUES ", 4, params)
        self._backlog += len(records)
        self._bytes += added
        self._capture_bytes += captured
        return last_seq + len(records)

    def _evict_captures(self) -> int:
        """Drop the oldest captured rows until under 90% of the capture cap; how many went.

        Captures have their own cap so that a generous capture policy cannot push request
        records and histograms out of the outbox."""
        if self._capture_bytes <= self.capture_max_bytes:
            return 0
        target = self._capture_bytes - int(self.capture_max_bytes * 0.9)
        freed, count, last = 0, 0, 0
        for row_seq, size in self._conn.execute(
                "SELECT seq, size FROM records WHERE kind = 'capture' ORDER BY seq"):
            if freed >= target:
                break
            last, freed, count = row_seq, freed + size, count + 1
        self._conn.execute("DELETE FROM records WHERE kind = 'capture' AND seq <= ?", (last,))
        self._backlog -= count
        self._bytes -= freed
        self._capture_bytes -= freed
        log.warning("capture buffer over %d bytes: evicted %d captured rows",
                    self.capture_max_bytes, count)
        return count

    def _save_windows(self, windows: Mapping[WindowKey, tuple[Array, int]],
                      closed: Iterable[WindowKey]) -> None:
        params: list[Any] = []
        for key, (c, n) in windows.items():
            params += (*key, orjson.dumps(c.tolist()).decode(), n)
        _insert_rows(self._conn, "INSERT OR REPLACE INTO open_windows VALUES ", 6, params)
        self._conn.executemany(
            "DELETE FROM open_windows WHERE model = ? AND version = ? AND feature = ? "
            "AND window_start = ?", list(closed))

    def _evict(self, seq: int) -> tuple[int, int]:
        """Drop the oldest records until under 90% of the cap; note what went.

        An earlier note dropped with them is folded into the new one, so the desktop
        still learns of every record lost, however many evictions the link missed."""
        if self._bytes <= self.max_bytes:
            return 0, seq
        target = self._bytes - int(self.max_bytes * 0.9)
        freed, first, last, count, captured, carried = 0, 0, 0, 0, 0, 0
        for row_seq, size, kind, body in self._conn.execute(
                "SELECT seq, size, kind, CASE WHEN kind = 'evicted' THEN body END "
                "FROM records ORDER BY seq"):
            if freed >= target:
                break
            first = first or row_seq
            last, freed, count = row_seq, freed + size, count + 1
            captured += size if kind == CAPTURE else 0
            if body is not None:  # an earlier note: carry what it said, not the note
                earlier = orjson.loads(body)
                first = min(first, int(earlier["first_seq"]))
                carried += int(earlier["count"]) - 1
        self._capture_bytes -= captured
        self._conn.execute("DELETE FROM records WHERE seq <= ?", (last,))
        self._backlog -= count
        self._bytes -= freed
        log.warning("telemetry outbox over %d bytes: evicted %d records", self.max_bytes, count)
        note = {"kind": "evicted", "ts": time.time(), "count": count + carried,
                "first_seq": first, "last_seq": last}
        return count, self._insert(seq, [note])

    def read(self, after: int, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit)).fetchall()
        return [{"seq": seq, **orjson.loads(body)} for seq, body in rows]

    def ack(self, seq: int) -> int:
        """Delete every record up to seq; returns how many went. A seq beyond the last one
        written is refused: it would delete records nobody has read yet."""
        with self._lock:
            if seq > self._last_seq:
                raise AckBeyondLastSeq(f"cannot acknowledge seq {seq}: the last record "
                                       f"written is seq {self._last_seq}")
            with atomic(self._conn):
                gone, size, captured = self._conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(size) FILTER "
                    "(WHERE kind = 'capture'), 0) FROM records WHERE seq <= ?",
                    (seq,)).fetchone()
                self._conn.execute("DELETE FROM records WHERE seq <= ?", (seq,))
            self._backlog -= gone
            self._bytes -= size
            self._capture_bytes -= captured
        return int(gone)

    def open_windows(self) -> dict[WindowKey, tuple[Array, int]]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM open_windows").fetchall()
        return {(m, v, f, w): (np.asarray(orjson.loads(c), np.int64), n)
                for m, v, f, w, c, n in rows}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
