"""The catalog: one DuckDB file plus the object store, under ``$OUTPOST_HOME``."""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType

import duckdb

from core.config import Settings
from core.errors import CatalogInUse, OutpostError, StorageError
from core.objects import ObjectStore
from core.vault import lock_down, move_tokens_out

# Nothing is ever downloaded: only the extensions built into the wheel load.
_DUCKDB_CONFIG = {
    "autoinstall_known_extensions": "false",
    "autoload_known_extensions": "true",
    "allow_community_extensions": "false",
}
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str


def known_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("core.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.number)


class Catalog:
    """An open catalog. Worker threads use :meth:`cursor`; one process writes at a time."""

    def __init__(self, settings: Settings, con: duckdb.DuckDBPyConnection,
                 write_turn: threading.RLock | None = None) -> None:
        self.settings = settings
        self.con = con
        self.objects = ObjectStore(settings.objects_dir)
        # DuckDB resolves concurrent writes to one row by failing the later commit
        # ("Conflict on update"). The GUI's workers and the hub's writer share this
        # connection, so write transactions take turns here instead of failing there.
        self._write_turn = threading.RLock() if write_turn is None else write_turn

    @classmethod
    def open(cls, settings: Settings) -> Catalog:
        path = settings.catalog_path
        try:
            settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create Outpost home {settings.home}: {exc.strerror}") from exc
        try:
            con = duckdb.connect(str(path), config=dict(_DUCKDB_CONFIG))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise CatalogInUse(path) from exc
            raise StorageError(f"cannot open catalog {path}: {exc}") from exc
        catalog = cls(settings, con)
        try:
            lock_down(settings)
            catalog.objects.ensure()
            catalog.migrate()
            catalog._move_tokens_out()
        except BaseException:
            con.close()
            raise
        return catalog

    @property
    def path(self) -> Path:
        return self.settings.catalog_path

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.con.cursor()

    def for_thread(self) -> Catalog:
        """This catalog on a cursor of its own, for another thread; closing it closes only
        the cursor, and its write transactions take turns with this catalog's."""
        return Catalog(self.settings, self.con.cursor(), self._write_turn)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction on its own cursor; this process's writers take turns."""
        with self._write_turn:
            cur = self.con.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    @contextmanager
    def snapshot(self) -> Iterator[Catalog]:
        """One consistent view for a read made of several queries: every query through the
        yielded catalog sees the same commits, whatever other threads commit meanwhile (a
        drift report read half before and half after a hub ingest would sum two different
        sets of windows). Read-only: its transaction is rolled back at the end."""
        cur = self.con.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            yield _Snapshot(self.settings, cur, self._write_turn)
        finally:
            try:
                cur.execute("ROLLBACK")
            finally:
                cur.close()

    def applied_migrations(self) -> list[tuple[int, str]]:
        rows = self.con.execute(
            "SELECT number, name FROM schema_migration ORDER BY number").fetchall()
        return [(int(n), str(name)) for n, name in rows]

    def migrate(self) -> list[int]:
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migration ("
            " number INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {number for number, _ in self.applied_migrations()}
        known = known_migrations()
        if done and max(done) > max((m.number for m in known), default=0):
            raise OutpostError(
                f"catalog {self.path} was written by a newer Outpost (migration {max(done)})"
            )
        applied = []
        for migration in known:
            if migration.number in done:
                continue
            with self.transaction() as cur:
                cur.execute(migration.sql)
                cur.execute(
                    "INSERT INTO schema_migration (number, name) VALUES (?, ?)",
                    [migration.number, migration.name],
                )
            applied.append(migration.number)
        return applied

    def _move_tokens_out(self) -> None:
        """Tokens left in `agent.token` by an older Outpost go to the 0600 secrets file."""
        rows = self.con.execute("SELECT name, token FROM agent WHERE token <> ''").fetchall()
        if rows:
            move_tokens_out(self.settings, {str(n): str(t) for n, t in rows})
            with self.transaction() as cur:
                cur.execute("UPDATE agent SET token = '' WHERE token <> ''")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Snapshot(Catalog):
    """A catalog whose every cursor is the one read transaction of :meth:`Catalog.snapshot`."""

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.con

    def for_thread(self) -> Catalog:
        raise OutpostError("a catalog snapshot belongs to the thread that opened it")

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        raise OutpostError("a catalog snapshot is read-only: write through the catalog")
        yield self.con  # pragma: no cover  (makes this a generator)

    def close(self) -> None:
        pass  # the snapshot's context manager ends its transaction
