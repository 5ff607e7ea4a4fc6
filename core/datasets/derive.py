"""Deriving a version from another with SQL: ``SELECT … FROM data``, lineage recorded."""
from __future__ import annotations

import re

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


def derive_dataset(catalog: Catalog, new_name: str, from_ref: str | DatasetVersion, sql: str, *,
                   progress: ProgressFn | None = None,
                   cancel: CancelToken | None = None) -> ImportResult:
    """Store the result of ``sql`` over the parent version (table ``data``) as ``new_name``."""
    validate_name(new_name)
    parent = resolve_version(catalog, from_ref) if isinstance(from_ref, str) else from_ref
    query = _single_select(sql)
    cur = catalog.cursor()
    try:
        cur.execute(f"CREATE TEMP VIEW data AS SELECT * FROM "
                    f"{duck.parquet_scan(version_path(catalog, parent))}")
        try:
            names = [str(row[0]) for row in cur.execute(f"DESCRIBE {query}").fetchall()]
        except duckdb.Error as exc:
            raise _explain(exc, parent) from exc
        sniff.check_header("derive result", names)
        with catalog.objects.temp_path(".parquet") as parquet:
            try:
                duck.run(cur, f"COPY ({query}) TO {duck.literal(parquet)} (FORMAT parquet)",
                         "derive", progress, cancel)
            except duckdb.Error as exc:
                translated = duck.translate(exc, "derive")
                raise (translated if not isinstance(translated, InvalidInput)
                       else _explain(exc, parent)) from exc
            source = {"kind": "derive", "from": f"{parent.dataset}@{parent.version}", "sql": query}
            return store_version(catalog, cur, new_name, parquet, source,
                                 (parent.dataset, parent.version),
                                 empty="derive SQL returned no rows", progress=progress,
                                 cancel=cancel)
    finally:
        cur.close()

