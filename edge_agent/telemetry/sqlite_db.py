"""The little of SQLite the outbox needs, on the standard library's sqlite3 alone.

It replaces sqlite-utils (whose imports of click, dateutil, pluggy and tabulate cost the
serving agent ~5 MB of resident memory) and keeps its on-disk format: migrations are
recorded in the same ``_sqlite_migrations`` table (id, migration_set, name, applied_at;
unique on migration_set + name), so a ``telemetry.sqlite`` written by an agent that used
sqlite-utils opens and migrates as before.

Connections must be opened with ``isolation_level=None`` (:func:`connect`): sqlite3 then
opens no transaction of its own, and every write that must be all-or-nothing runs inside
:func:`atomic`.
"""

from __future__ import annotations

import datetime
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

MIGRATIONS_TABLE = "_sqlite_migrations"
Migration = Callable[[sqlite3.Connection], None]


def connect(path: Path, timeout: float = 30) -> sqlite3.Connection:
    """A connection shared by threads (callers hold a lock), in WAL mode, with no
    transactions but those :func:`atomic` opens."""
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=timeout,
                           isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    return conn


@contextmanager
def atomic(conn: sqlite3.Connection) -> Iterator[None]:
    """All or nothing: BEGIN … COMMIT, rolled back on any exception (KeyboardInterrupt
    too). Inside an open transaction it is a savepoint, so only the inner block's work is
    undone when it fails and the outer transaction decides the rest."""
    if conn.in_transaction:
        savepoint = f"outpost_{secrets.token_hex(8)}"
        conn.execute(f"SAVEPOINT {savepoint}")
        try:
            yield
        except BaseException:
            # An error such as SQLITE_FULL may have ended the whole transaction already,
            # savepoint included: undoing it then would hide the first error.
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                conn.execute(f"RELEASE SAVEPOINT {savepoint}")
            raise
        conn.execute(f"RELEASE SAVEPOINT {savepoint}")
        return
    conn.execute("BEGIN")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # a failed COMMIT leaves it open; an error may have ended it
            conn.execute("ROLLBACK")
        raise


class Migrations:
    """A named set of named, numbered schema changes, each applied once, in order, in
    one transaction with the row that records it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._steps: list[tuple[str, Migration]] = []

    def __call__(self, *, name: str) -> Callable[[Migration], Migration]:
        def register(fn: Migration) -> Migration:
            if any(step == name for step, _ in self._steps):
                raise ValueError(f"migration {name!r} is already registered in {self.name!r}")
            self._steps.append((name, fn))
            return fn
        return register

    def applied(self, conn: sqlite3.Connection) -> list[str]:
        """Names of this set's migrations recorded in the file, in the order applied."""
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                              (MIGRATIONS_TABLE,)).fetchone()
        if not exists:
            return []
        return [name for (name,) in conn.execute(
            f'SELECT name FROM "{MIGRATIONS_TABLE}" WHERE migration_set = ? ORDER BY rowid',
            (self.name,))]

    def apply(self, conn: sqlite3.Connection) -> None:
        # The table and index exactly as sqlite-utils created them (files already on disk).
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{MIGRATIONS_TABLE}" (\n'
                     '   "id" INTEGER PRIMARY KEY,\n   "migration_set" TEXT,\n'
                     '   "name" TEXT,\n   "applied_at" TEXT\n)')
        conn.execute(f'CREATE UNIQUE INDEX IF NOT EXISTS "idx_{MIGRATIONS_TABLE}_migration_set_'
                     f'name"\n    ON "{MIGRATIONS_TABLE}" ("migration_set", "name")')
        done = set(self.applied(conn))
        for name, fn in self._steps:
            if name in done:
                continue
            with atomic(conn):
                fn(conn)
                conn.execute(f'INSERT INTO "{MIGRATIONS_TABLE}" (migration_set, name, '
                             'applied_at) VALUES (?, ?, ?)',
                             (self.name, name,
                              str(datetime.datetime.now(datetime.UTC))))
