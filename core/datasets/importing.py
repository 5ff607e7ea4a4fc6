"""Importing files and in-memory tables as dataset versions, streamed through DuckDB."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb

from core.catalog import Catalog
from core.datasets import accounting, duck, readers, sniff
from core.datasets.names import default_name, validate_name
from core.datasets.options import ReadOptions
from core.datasets.records import ImportResult
from core.datasets.records import LineCounts as Counts
from core.datasets.storing import store_version
from core.errors import Cancelled, InvalidInput
from core.progress import CancelToken, ProgressFn, check, report

_MAX_ATTEMPTS = 3


def import_dataset(
    catalog: Catalog,
    path: str | Path,
    name: str | None = None,
    *,
    options: ReadOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> ImportResult:
    """Import a CSV/TSV, Parquet, JSON, NDJSON or .xlsx file as a version of dataset ``name``.

    The default name is the file name without its extension. Importing content
    the dataset already holds returns that version with ``new=False``. Text and
    spreadsheet imports account for every data line (see ``accounting``).
    """
    options = options or ReadOptions()
    path = Path(path).expanduser()
    if name is not None:
        validate_name(name)
    readers.check_file(path)
    kind, stem = readers.detect_format(path)
    _check_options(path, kind, options)
    name = name if name is not None else validate_name(default_name(stem))
    path = path.resolve()
    report(progress, "read", 0, None)
    cur = catalog.cursor()
    try:
        with ExitStack() as stack:

            def scratch(suffix: str) -> Path:
                return stack.enter_context(catalog.objects.temp_path(suffix))

            parquet = scratch(".parquet")
            counts: Counts | None
            if kind == "xlsx":
                details, counts = _copy_sheet(cur, path, options, parquet)
            else:
                source, counts = _copy_accounted(cur, path, kind, options, scratch, parquet,
                                                 progress, cancel)
                details = source.details
            details = {"kind": "import", "path": str(path), "bytes": path.stat().st_size,
                       **details, **options.to_dict(),
                       **({"lines": counts.to_dict()} if counts else {})}
            result = store_version(catalog, cur, name, parquet, details,
                                   empty=f"{path.name} has no data rows", progress=progress,
                                   cancel=cancel)
            return replace(result, lines=counts)
    finally:
        cur.close()


def _check_options(path: Path, kind: str, options: ReadOptions) -> None:
    text = kind in ("csv", "tsv")
    misplaced = [flag for flag, given, fits in (
        ("--sheet", options.sheet is not None, kind == "xlsx"),
        ("--bad-lines", options.bad_lines is not None, text),
        ("--decimal", options.decimal != ".", text),
        ("--encoding", options.encoding is not None, text),
    ) if given and not fits]
    if misplaced:
        raise InvalidInput(f"{path.name}: {', '.join(misplaced)} does not apply to {kind} files")


def _copied(rows: list[tuple[Any, ...]]) -> int:
    """The row count DuckDB's COPY answers with: the rows it wrote."""
    return int(rows[0][0])


def _copy_accounted(cur: duckdb.DuckDBPyConnection, path: Path, kind: str,
                    options: ReadOptions, scratch: readers.Scratch, out: Path,
                    progress: ProgressFn | None,
                    cancel: CancelToken | None) -> tuple[readers.Source, Counts | None]:
    """COPY the file to ``out``; for CSV/TSV, account for every data line."""
    attempt = readers.first_attempt(options)
    if kind not in ("csv", "tsv"):
        return _copy(cur, path, kind, scratch, out, attempt, progress, cancel)[0], None
    if options.bad_lines is None:
        # The lines are counted in a thread while DuckDB copies (it releases the GIL).
        with ThreadPoolExecutor(1, thread_name_prefix="count-lines") as pool:
            source, stored, counted = _copy(cur, path, kind, scratch, out, attempt, progress,
                                            cancel, pool)
            assert source.layout is not None and counted is not None
            lines = counted.result()
        return source, accounting.check(source.layout, path.name, stored, lines)
    sniffed = readers.prepare(cur, path, kind, scratch, attempt)
    assert sniffed.layout is not None
    header, found = accounting.plan(sniffed.layout, path.name, options.bad_lines)
    source = readers.with_policy(sniffed, header, options.bad_lines)
    stored = _run_copy(cur, path, source, out, progress, cancel)
    return source, accounting.settle(found, path.name, options.bad_lines, stored)


def _copy_sheet(cur: duckdb.DuckDBPyConnection, path: Path, options: ReadOptions,
                out: Path) -> tuple[dict[str, Any], Counts]:
    from core.datasets.sheets import read_sheet  # numpy and calamine: .xlsx imports only

    sheet = read_sheet(path, options.sheet)
    cur.register("__outpost_sheet", sheet.table)
    try:
        stored = _copied(cur.execute(f"COPY (SELECT * FROM __outpost_sheet) TO "
                                     f"{duck.literal(out)} (FORMAT parquet)").fetchall())
    except duckdb.Error as exc:
        raise duck.translate(exc, f"import of {path.name}") from exc
    finally:
        cur.unregister("__outpost_sheet")
    if stored != sheet.read:
        raise InvalidInput(f"{path.name}: {sheet.read} data rows read but {stored} stored; "
                           "nothing imported")
    details = {"format": "xlsx", "sheet": sheet.name,
               **({"empty_columns_dropped": sheet.dropped_columns}
                  if sheet.dropped_columns else {})}
    return details, Counts(sheet.read, stored)


def _run_copy(cur: duckdb.DuckDBPyConnection, path: Path, source: readers.Source, out: Path,
              progress: ProgressFn | None, cancel: CancelToken | None) -> int:
    """COPY ``source`` to ``out``; the rows written."""
    sql = f"COPY (SELECT * FROM {source.relation}) TO {duck.literal(out)} (FORMAT parquet)"
    check(cancel, "import")
    try:
        return _copied(duck.run(cur, sql, "import", progress, cancel))
    except duckdb.InterruptException as exc:
        raise Cancelled("import") from exc
    except duckdb.Error as exc:
        raise readers.explain(path, exc) from exc


def _copy(cur: duckdb.DuckDBPyConnection, path: Path, kind: str, scratch: readers.Scratch,
          out: Path, attempt: readers.Attempt, progress: ProgressFn | None,
          cancel: CancelToken | None, pool: ThreadPoolExecutor | None = None
          ) -> tuple[readers.Source, int, Future[int] | None]:
    """COPY the file into the Parquet temp file ``out``, retrying the ways DuckDB suggests;
    (how it was read, rows written, the line count when ``pool`` counts them).

    With ``pool``, the lines of the file DuckDB reads are counted there meanwhile.
    """
    for _ in range(_MAX_ATTEMPTS):
        source = readers.prepare(cur, path, kind, scratch, attempt)
        check(cancel, "import")
        counted = (pool.submit(accounting.count_lines, source.layout.path, path.name)
                   if pool is not None and source.layout is not None else None)
        sql = f"COPY (SELECT * FROM {source.relation}) TO {duck.literal(out)} (FORMAT parquet)"
        try:
            return source, _copied(duck.run(cur, sql, "import", progress, cancel)), counted
        except duckdb.InterruptException as exc:
            raise Cancelled("import") from exc
        except duckdb.Error as exc:
            retry = readers.retry(source, exc)
            if retry is None:
                raise readers.explain(path, exc) from exc
            attempt = retry
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
