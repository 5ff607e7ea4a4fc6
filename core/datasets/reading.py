"""Reading a version's rows: whole frames for training, pages for the GUI's lazy table."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.catalog import Catalog
from core.datasets import duck
from core.datasets.records import DatasetVersion
from core.datasets.versions import version_path
from core.errors import InvalidInput

if TYPE_CHECKING:
    import pandas


def _check_columns(dv: DatasetVersion, columns: Sequence[str]) -> None:
    known = {c.name for c in dv.columns}
    missing = [c for c in columns if c not in known]
    if missing:
        raise InvalidInput(f"{dv.ref} has no column {', '.join(repr(c) for c in missing)}")


def read_frame(catalog: Catalog, dv: DatasetVersion,
               columns: Sequence[str] | None = None) -> pandas.DataFrame:
    """The version as a DataFrame, rows in their stored order (optionally some columns)."""
    if columns is not None:
        _check_columns(dv, columns)
    chosen = "*" if columns is None else ", ".join(duck.ident(c) for c in columns)
    path = version_path(catalog, dv)
    cur = catalog.cursor()
    try:
        # Through Arrow, not .df(): 2-3x faster, and the conversion releases the GIL
        # (DuckDB's .df() held it for ~100 ms on 2 M rows, freezing the GUI's paint).
        table = cur.sql(f"SELECT {chosen} FROM {duck.parquet_scan(path)}").to_arrow_table()
        return table.to_pandas()
    finally:
        cur.close()


def read_page(catalog: Catalog, dv: DatasetVersion, offset: int,
              limit: int) -> list[tuple[Any, ...]]:
    """Rows ``offset`` … ``offset + limit`` as tuples; reads only the row groups they lie in."""
    import pyarrow.parquet as pq

    if offset < 0 or limit < 0:
        raise InvalidInput("offset and limit must not be negative")
    parquet = pq.ParquetFile(version_path(catalog, dv))
    meta = parquet.metadata
    groups, start, first_start = [], 0, None
    for index in range(meta.num_row_groups):
        size = meta.row_group(index).num_rows
        if start + size > offset and start < offset + limit:
            groups.append(index)
            first_start = start if first_start is None else first_start
        start += size
    if not groups or first_start is None:
        return []
    table = parquet.read_row_groups(groups).slice(offset - first_start, limit)
    return list(zip(*(col.to_pylist() for col in table.columns), strict=True))
