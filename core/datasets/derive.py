"""Deriving a version from another with SQL: ``SELECT … FROM data``, lineage recorded."""
from __future__ import annotations

import re
from pathlib import Path

import duckdb

from core.catalog import Catalog
from core.datasets import duck, sniff
from core.datasets.names import validate_name
from core.datasets.records import DatasetVersion, ImportResult
from core.datasets.storing import store_version
from core.datasets.versions import resolve_version, version_path
from core.errors import InvalidInput
from core.progress import CancelToken, ProgressFn

_MISSING_COLUMN = re.compile(r'Referenced column "([^"]*)" not found')
_SHOWN_COLUMNS = 12


def _single_select(sql: str) -> str:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidInput(f"derive SQL does not parse: {duck.first_line(exc)}") from exc
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise InvalidInput("derive takes exactly one SELECT statement, e.g. SELECT * FROM data")
    return statements[0].query.strip().rstrip(";")


def _explain(exc: duckdb.Error, parent: DatasetVersion) -> InvalidInput:
    missing = _MISSING_COLUMN.search(str(exc))
    if missing:
        names = [c.name for c in parent.columns]
        shown = ", ".join(names[:_SHOWN_COLUMNS]) + (", …" if len(names) > _SHOWN_COLUMNS else "")
        return InvalidInput(f"derive SQL names a missing column {missing[1]!r}; "
                            f"{parent.ref} has: {shown}")
    return InvalidInput(f"derive SQL failed: {duck.first_line(exc)}")


def _sandbox(allowed: list[Path]) -> duckdb.DuckDBPyConnection:
    """A connection of its own for SQL that a user or a pipeline file brings: an empty
    in-memory database (it cannot see the catalog's tables, the agents' tokens among
    them) with external access off, so no file but `allowed` can be read or written
    (no read_text, read_csv, glob or ATTACH elsewhere), and the setting locked."""
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False})
    try:
        con.execute(f"SET allowed_paths = [{', '.join(duck.literal(p) for p in allowed)}]")
        con.execute("SET enable_external_access = false")
        duck.enable_progress(con)  # before the lock: progress and cancel still work
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def derive_dataset(catalog: Catalog, new_name: str, from_ref: str | DatasetVersion, sql: str, *,
                   progress: ProgressFn | None = None,
                   cancel: CancelToken | None = None) -> ImportResult:
    """Store the result of ``sql`` over the parent version (table ``data``) as ``new_name``.
    The SQL runs in a sandbox (see `_sandbox`) that sees the parent version only."""
    validate_name(new_name)
    parent = resolve_version(catalog, from_ref) if isinstance(from_ref, str) else from_ref
    query = _single_select(sql)
    source = version_path(catalog, parent)
    with catalog.objects.temp_path(".parquet") as parquet:
        sandbox = _sandbox([source, parquet])
        try:
            sandbox.execute(f"CREATE TEMP VIEW data AS SELECT * FROM {duck.parquet_scan(source)}")
            try:
                names = [str(row[0]) for row in sandbox.execute(f"DESCRIBE {query}").fetchall()]
            except duckdb.Error as exc:
                raise _explain(exc, parent) from exc
            sniff.check_header("derive result", names)
            try:
                duck.run(sandbox, f"COPY ({query}) TO {duck.literal(parquet)} "
                         "(FORMAT parquet, USE_TMP_FILE false)",
                         "derive", progress, cancel)
            except duckdb.Error as exc:
                translated = duck.translate(exc, "derive")
                raise (translated if not isinstance(translated, InvalidInput)
                       else _explain(exc, parent)) from exc
        finally:
            sandbox.close()
        source_doc = {"kind": "derive", "from": f"{parent.dataset}@{parent.version}",
                      "sql": query}
        cur = catalog.cursor()
        try:
            return store_version(catalog, cur, new_name, parquet, source_doc,
                                 (parent.dataset, parent.version),
                                 empty="derive SQL returned no rows", progress=progress,
                                 cancel=cancel)
        finally:
            cur.close()
