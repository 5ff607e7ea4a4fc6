"""The telemetry outbox: SQLite (WAL), one gapless sequence space across restarts.

Requests never touch SQLite: they put a small event on a queue and a writer
thread turns each batch into request records and histogram counts, committed
in one transaction every ``flush_s`` seconds. Counts of the current window are
saved with every flush (table ``open_windows``), so a kill -9 loses at most
one flush interval of anything. A byte cap evicts the oldest records and
leaves an ``evicted`` record saying which sequence numbers went.
"""

from __future__ import annotations

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

from edge_agent.telemetry.histograms import Array
from edge_agent.telemetry.sqlite_utils_lite import Database, Migrations

log = logging.getLogger(__name__)
ROW_OVERHEAD = 16  # bytes charged per record on top of its JSON body

MIGRATIONS = Migrations("outpost-telemetry")


@MIGRATIONS(name="001_records")
def _m001_records(db: Database) -> None:
    db.execute("CREATE TABLE records (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
               "body TEXT NOT NULL, size INTEGER NOT NULL)")


@MIGRATIONS(name="002_state")
def _m002_state(db: Database) -> None:
    db.execute("CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), "
               "last_seq INTEGER NOT NULL, evicted INTEGER NOT NULL)")
    db.execute("INSERT INTO state VALUES (1, 0, 0)")


@MIGRATIONS(name="003_open_windows")
def _m003_open_windows(db: Database) -> None:
    db.execute("CREATE TABLE open_windows (model TEXT NOT NULL, version INTEGER NOT NULL, "
               "feature TEXT NOT NULL, window_start REAL NOT NULL, counts TEXT NOT NULL, "
               "nulls INTEGER NOT NULL, PRIMARY KEY (model, version, feature, window_start))")


@MIGRATIONS(name="004_counters")
def _m004_counters(db: Database) -> None:
    # Numbers handed out with records, in their transaction (the agent's audit events).
    db.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")


WindowKey = tuple[str, int, str, float]  # model, version, feature, window start


@dataclass(frozen=True, slots=True)
class OutboxStats:
    backlog: int
    last_seq: int
    evicted: int
    bytes: int


class Outbox:
    """The SQLite file. Thread-safe: every call takes one lock around one connection."""

    def __init__(self, path: Path, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self._db = Database(self._conn)
        self._db.enable_wal()
        self._conn.execute("PRAGMA synchronous=NORMAL")
        MIGRATIONS.apply(self._db)
        self._last_seq, self._evicted = self._conn.execute(
            "SELECT last_seq, evicted FROM state").fetchone()
        self._backlog, self._bytes = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM records").fetchone()

    def stats(self) -> OutboxStats:
        return OutboxStats(self._backlog, self._last_seq, self._evicted, self._bytes)

    def write(self, records: list[dict[str, Any]],
              windows: Mapping[WindowKey, tuple[Array, int]] | None = None,
              closed: Iterable[WindowKey] = ()) -> None:
        """Append records (numbering them), save open windows, forget closed ones: atomically."""
        def produce() -> list[dict[str, Any]]:
            self._save_windows(windows or {}, closed)
            return records

        self._commit(produce)

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

    def _commit(self, produce: Callable[[], list[dict[str, Any]]]) -> None:
        with self._lock:
            backlog, size = self._backlog, self._bytes
            try:
                with self._db.atomic():
                    seq = self._insert(self._last_seq, produce())
                    evicted, seq = self._evict(seq)
                    self._conn.execute("UPDATE state SET last_seq = ?, evicted = ?",
                                       (seq, self._evicted + evicted))
            except BaseException:
                self._backlog, self._bytes = backlog, size
                raise
            self._last_seq, self._evicted = seq, self._evicted + evicted

    def _insert(self, last_seq: int, records: list[dict[str, Any]]) -> int:
        """Number records from last_seq + 1 and insert them; returns the new last seq."""
        rows = []
        for seq, record in enumerate(records, last_seq + 1):
            body = orjson.dumps(record).decode()
            rows.append((seq, record["kind"], body, len(body) + ROW_OVERHEAD))
        self._conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?)", rows)
        self._backlog += len(rows)
        self._bytes += sum(r[3] for r in rows)
        return last_seq + len(rows)

    def _save_windows(self, windows: Mapping[WindowKey, tuple[Array, int]],
                      closed: Iterable[WindowKey]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO open_windows VALUES (?, ?, ?, ?, ?, ?)",
            [(*key, orjson.dumps(c.tolist()).decode(), n) for key, (c, n) in windows.items()])
        self._conn.executemany(
            "DELETE FROM open_windows WHERE model = ? AND version = ? AND feature = ? "
            "AND window_start = ?", list(closed))

    def _evict(self, seq: int) -> tuple[int, int]:
        """Drop the oldest records until under 90% of the cap; note what went."""
        if self._bytes <= self.max_bytes:
            return 0, seq
        target = self._bytes - int(self.max_bytes * 0.9)
        freed, first, last, count = 0, 0, 0, 0
        for row_seq, size in self._conn.execute("SELECT seq, size FROM records ORDER BY seq"):
            if freed >= target:
                break
            first = first or row_seq
            last, freed, count = row_seq, freed + size, count + 1
        self._conn.execute("DELETE FROM records WHERE seq <= ?", (last,))
        self._backlog -= count
        self._bytes -= freed
        log.warning("telemetry outbox over %d bytes: evicted %d records", self.max_bytes, count)
        note = {"kind": "evicted", "ts": time.time(), "count": count, "first_seq": first,
                "last_seq": last}
        return count, self._insert(seq, [note])

    def read(self, after: int, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit)).fetchall()
        return [{"seq": seq, **orjson.loads(body)} for seq, body in rows]

    def ack(self, seq: int) -> int:
        """Delete every record up to seq; returns how many went."""
        with self._lock:
            with self._db.atomic():
                gone, size = self._conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM records WHERE seq <= ?",
                    (seq,)).fetchone()
                self._conn.execute("DELETE FROM records WHERE seq <= ?", (seq,))
            self._backlog -= gone
            self._bytes -= size
        return int(gone)

    def open_windows(self) -> dict[WindowKey, tuple[Array, int]]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM open_windows").fetchall()
        return {(m, v, f, w): (np.asarray(orjson.loads(c), np.int64), n)
                for m, v, f, w, c, n in rows}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
