"""Running DuckDB statements for the dataset code: quoting, progress, cancel, one-line errors."""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from core.errors import Cancelled, InvalidInput, OutpostError, StorageError
from core.progress import CancelToken, ProgressFn, report

_POLL_S = 0.1
# What a bulk job of several statements lets the allocator keep between them (see kept_memory).
_KEPT_MEMORY = "4GB"
_ALLOCATOR_SETTINGS = ("allocator_flush_threshold", "allocator_bulk_deallocation_flush_threshold")
_PREFIX = re.compile(r"^[A-Za-z ]*Error:\s*")


def literal(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def parquet_scan(path: Path) -> str:
    return f"read_parquet({literal(path)})"


def first_line(exc: BaseException) -> str:
    """DuckDB messages span many lines (hints, the query); the user gets the first."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _PREFIX.sub("", text).strip()


def translate(exc: duckdb.Error, what: str) -> OutpostError:
    """Word a DuckDB failure as one line, keeping storage and user errors apart."""
    if isinstance(exc, duckdb.InterruptException):
        return Cancelled(what)
    message = first_line(exc)
    if isinstance(exc, duckdb.IOException | duckdb.OutOfMemoryException):
        return StorageError(f"{what} failed: {message}")
    return InvalidInput(f"{what} failed: {message}")


def enable_progress(cur: duckdb.DuckDBPyConnection) -> None:
    """Let query_progress() report, without printing; a no-op where already on (a locked
    sandbox connection turns it on before it locks its configuration)."""
    (on,) = cur.execute("SELECT current_setting('enable_progress_bar')").fetchone() or (False,)
    if not on:
        cur.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")


def run(
    cur: duckdb.DuckDBPyConnection,
    sql: str,
    stage: str,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    params: dict[str, Any] | None = None,
) -> list[tuple[Any, ...]]:
    """Execute one statement; report its progress and interrupt it when cancelled."""
    if progress is None and cancel is None:
        return cur.execute(sql, params).fetchall()
    enable_progress(cur)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(_POLL_S):
            if cancel is not None and cancel.cancelled:
                cur.interrupt()
                return
            percent = cur.query_progress()
            if percent >= 0:
                report(progress, stage, percent, 100)

    watcher = threading.Thread(target=watch, name=f"duckdb-{stage}", daemon=True)
    watcher.start()
    try:
        rows = cur.execute(sql, params).fetchall()
    finally:
        done.set()
        watcher.join()
    if cancel is not None and cancel.cancelled:
        raise Cancelled(stage)
    report(progress, stage, 100, 100)
    return rows


@contextmanager
def kept_memory(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """For a bulk job of several big statements: memory a statement frees stays with the
    allocator for the next one, instead of going back to the OS at the end of each and
    being faulted in and zeroed again (the kernel's page clearing was a quarter of a
    10 M-row hash join's CPU). The allocator's settings are the database's, so they are
    put back afterwards, on a cursor of their own (a failed statement leaves the job's
    transaction unable to run any other)."""
    cur = con.cursor()
    before = cur.execute("SELECT " + ", ".join(
        f"current_setting('{name}')" for name in _ALLOCATOR_SETTINGS)).fetchone() or ()
    cur.execute("; ".join(f"SET {name} = '{_KEPT_MEMORY}'" for name in _ALLOCATOR_SETTINGS))
    try:
        yield
    finally:
        cur.execute("; ".join(f"SET {name} = {literal(str(value))}"
                              for name, value in zip(_ALLOCATOR_SETTINGS, before, strict=True)))
        cur.close()
