"""Importing files and in-memory tables as dataset versions, streamed through DuckDB."""
from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import duckdb

from core.catalog import Catalog
from core.datasets import duck, readers, sniff
from core.datasets.names import default_name, validate_name
from core.datasets.records import ImportResult
from core.datasets.storing import store_version
from core.errors import Cancelled
from core.progress import CancelToken, ProgressFn, check, report

_MAX_ATTEMPTS = 3


def import_dataset(
    catalog: Catalog,
    path: str | Path,
    name: str | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> ImportResult:
    """Import a CSV/TSV, Parquet, JSON or NDJSON file as a version of dataset ``name``.

    The default name is the file name without its extension. Importing content
    the dataset already holds returns that version with ``new=False``.
    """
    path = Path(path).expanduser()
    if name is not None:
        validate_name(name)
    readers.check_file(path)
    kind, stem = readers.detect_format(path)
    name = name if name is not None else validate_name(default_name(stem))
    path = path.resolve()
    report(progress, "read", 0, None)
    cur = catalog.cursor()
    try:
        with ExitStack() as stack:

            def scratch(suffix: str) -> Path:
                return stack.enter_context(catalog.objects.temp_path(suffix))

            parquet = scratch(".parquet")
            source = _copy(cur, path, kind, scratch, parquet, progress, cancel)
            details = {"kind": "import", "path": str(path), "bytes": path.stat().st_size,
                       **source.details}
            return store_version(catalog, cur, name, parquet, details,
                                 empty=f"{path.name} has no data rows", progress=progress,
                                 cancel=cancel)
    finally:
        cur.close()


def _copy(cur: duckdb.DuckDBPyConnection, path: Path, kind: str, scratch: readers.Scratch,
          out: Path, progress: ProgressFn | None, cancel: CancelToken | None) -> readers.Source:
    """COPY the file into the Parquet temp file ``out``, retrying the ways DuckDB suggests."""
    attempt: readers.Attempt | None = None
    for _ in range(_MAX_ATTEMPTS):
        source = readers.prepare(cur, path, kind, scratch, attempt)
        check(cancel, "import")
        sql = f"COPY (SELECT * FROM {source.relation}) TO {duck.literal(out)} (FORMAT parquet)"
        try:
            duck.run(cur, sql, "import", progress, cancel)
            return source
        except duckdb.InterruptException as exc:
            raise Cancelled("import") from exc
        except duckdb.Error as exc:
            attempt = readers.retry(source, exc)
            if attempt is None:
                raise readers.explain(path, exc) from exc
    raise readers.explain(path, duckdb.InvalidInputException(f"cannot read {path.name}"))


def import_frame(catalog: Catalog, name: str, data: Any, source: dict[str, Any]) -> ImportResult:
    """Import an in-memory ``pyarrow.Table`` or ``pandas.DataFrame`` as a version of ``name``."""
    validate_name(name)
    names = [str(c) for c in (data.column_names if hasattr(data, "column_names") else data.columns)]
    sniff.check_header(name, names)
    cur = catalog.cursor()
    try:
        with catalog.objects.temp_path(".parquet") as parquet:
            cur.register("__outpost_frame", data)
            try:
                cur.execute(f"COPY (SELECT * FROM __outpost_frame) TO {duck.literal(parquet)} "
                            "(FORMAT parquet)")
            except duckdb.Error as exc:
                raise duck.translate(exc, f"import of {name!r}") from exc
            finally:
                cur.unregister("__outpost_frame")
            return store_version(catalog, cur, name, parquet, {"kind": "frame", **source},
                                 empty=f"{name}: the table has no rows")
    finally:
        cur.close()
