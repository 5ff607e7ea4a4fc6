"""Turning a query into a dataset version: Parquet object, content hash, catalog rows.

The version id hashes the data, not the file: the column names and types, the
row count, and the sum of DuckDB's 64-bit hash of every row together with its
position. So the same table gets the same id whether it came from CSV, Parquet
or a DataFrame, whatever row groups or compression the Parquet file has.
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb

from core.catalog import Catalog
from core.datasets import duck
from core.datasets.records import Column, ImportResult
from core.errors import InvalidInput, StorageError
from core.progress import CancelToken, ProgressFn, check, report

HASH_SCHEME = 1
_ROW_NUMBER = "file_row_number"


def content_hash(cur: duckdb.DuckDBPyConnection, path: Path, columns: list[Column],
                 progress: ProgressFn | None = None,
                 cancel: CancelToken | None = None) -> tuple[str, int]:
    """(version id, rows) of the Parquet file at ``path``."""
    names = ", ".join(duck.ident(c.name) for c in columns)
    if any(c.name.lower() == _ROW_NUMBER for c in columns):
        # The column would shadow the reader's position column: number the rows ourselves.
        scan = f"(SELECT row_number() OVER () AS __pos, * FROM {duck.parquet_scan(path)})"
        position = "__pos"
    else:
        scan = f"read_parquet({duck.literal(path)}, file_row_number = true)"
        position = _ROW_NUMBER
    sql = f"SELECT count(*), sum(hash({position}, {names})) FROM {scan}"
    ((rows, digest),) = duck.run(cur, sql, "hash", progress, cancel)
    payload = {
        "scheme": HASH_SCHEME,
        "columns": [[c.name, c.type] for c in columns],
        "rows": int(str(rows)),
        "digest": str(digest),
    }
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), int(str(rows))


def parquet_columns(cur: duckdb.DuckDBPyConnection, path: Path) -> list[Column]:
    rows = cur.execute(f"DESCRIBE SELECT * FROM {duck.parquet_scan(path)}").fetchall()
    return [Column(str(r[0]), str(r[1])) for r in rows]


def store_version(
    catalog: Catalog,
    cur: duckdb.DuckDBPyConnection,
    name: str,
    parquet: Path,
    source: dict[str, Any],
    parent: tuple[str, str] | None = None,
    *,
    empty: str,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> ImportResult:
    """Record the finished Parquet temp file ``parquet`` as a version of ``name``.

    Either both the object and its catalog row exist afterwards, or neither (an
    object already in the store for another version stays).
    """
    # The object's sha256 reads the file once more: a thread does it while DuckDB hashes
    # the rows (the pool waits for it on every way out).
    with ThreadPoolExecutor(1, thread_name_prefix="sha256") as pool:
        digesting = pool.submit(catalog.objects.digest, parquet)
        columns = parquet_columns(cur, parquet)
        version, rows = content_hash(cur, parquet, columns, progress, cancel)
        sha = digesting.result()
    if rows == 0:
        raise InvalidInput(empty)
    if _exists(cur, name, version):
        return ImportResult(name, version, rows, False, columns)
    check(cancel, "import")
    report(progress, "store", 0, 1)
    sha, created = catalog.objects.adopt(parquet, sha)
    try:
        with catalog.transaction() as tx:
            tx.execute("INSERT INTO dataset (name) VALUES (?) ON CONFLICT DO NOTHING", [name])
            tx.execute(
                "INSERT INTO dataset_version (dataset, version, object, rows, columns, source,"
                " parent_dataset, parent_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [name, version, sha, rows, json.dumps([c.to_dict() for c in columns]),
                 json.dumps(source), *(parent or (None, None))],
            )
    except BaseException as exc:
        if created:
            catalog.objects.discard(sha)
        if isinstance(exc, duckdb.Error):
            raise StorageError(
                f"could not record dataset {name!r}: {duck.first_line(exc)}") from exc
        raise
    report(progress, "store", 1, 1)
    return ImportResult(name, version, rows, True, columns)


def _exists(cur: duckdb.DuckDBPyConnection, name: str, version: str) -> bool:
    row = cur.execute(
        "SELECT count(*) FROM dataset_version WHERE dataset = ? AND version = ?", [name, version]
    ).fetchone()
    return bool(row and row[0])
