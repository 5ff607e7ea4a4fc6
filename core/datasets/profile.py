"""Per-column profiles of a version, computed by DuckDB in a few passes over its Parquet.

Pass 1 gathers counts, distinct estimates, min/max, mean/std and quantiles for
every column at once; pass 2 bins the numeric columns and counts the values of
low-cardinality ones, again for all columns at once; only a column with many
repeated values (an id-like string, a date) gets its own top-values query.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from core.catalog import Catalog
from core.datasets import duck
from core.datasets.records import DatasetVersion
from core.datasets.versions import version_path
from core.progress import CancelToken, ProgressEvent, ProgressFn, report

BINS = 20
TOP = 10
LOW_CARDINALITY = 1000
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
             "UINTEGER", "UBIGINT", "UHUGEINT"}
_FLOATS = {"FLOAT", "DOUBLE", "REAL"}


def column_kind(duck_type: str) -> str:
    """numeric, boolean, string, temporal or other (nested, binary, …)."""
    base = duck_type.split("(")[0].upper()
    if base in _INTEGERS or base in _FLOATS or base == "DECIMAL":
        return "numeric"
    if base == "BOOLEAN":
        return "boolean"
    if base == "VARCHAR":
        return "string"
    if base.startswith(("DATE", "TIME", "INTERVAL")):
        return "temporal"
    return "other"


def _is_float(duck_type: str) -> bool:
    base = duck_type.split("(")[0].upper()
    return base in _FLOATS or base == "DECIMAL"


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    type: str
    kind: str
    count: int  # non-null values
    nulls: int
    distinct: int  # approximate
    min: Any
    max: Any
    mean: float | None
    std: float | None
    quantiles: dict[str, float] | None  # {"p5": …, "p25": …, "p50": …, "p75": …, "p95": …}
    top: list[tuple[Any, int]]  # most frequent values, with counts
    histogram: list[tuple[float, float, int]] | None  # (low edge, high edge, count)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["top"] = [{"value": v, "count": n} for v, n in self.top]
        if self.histogram is not None:
            data["histogram"] = [{"low": lo, "high": hi, "count": n}
                                 for lo, hi, n in self.histogram]
        return data


@dataclass(frozen=True)
class Profile:
    dataset: str
    version: str
    rows: int
    columns: list[ColumnProfile]

    def column(self, name: str) -> ColumnProfile:
        return next(c for c in self.columns if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "version": self.version, "rows": self.rows,
                "columns": [c.to_dict() for c in self.columns]}


def plain(value: Any) -> Any:
    """A JSON-friendly Python value (dates as ISO text, non-finite floats as None)."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _phase(progress: ProgressFn | None, start: float, span: float) -> ProgressFn | None:
    """Map one query's 0-100 % onto its share of the whole profile."""
    if progress is None:
        return None

    def scaled(event: ProgressEvent) -> None:
        report(progress, "profile", start + span * (event.fraction or 0.0), 100)

    return scaled


def _first_pass(dv: DatasetVersion) -> list[str]:
    parts = ["count(*)"]
    for col in dv.columns:
        c, kind = duck.ident(col.name), column_kind(col.type)
        ordered = kind in ("numeric", "string", "temporal", "boolean")
        parts += [
            f"count({c})",
            f"approx_count_distinct({c})" if kind != "other" else "NULL",
            f"min({c})" if ordered else "NULL",
            f"max({c})" if ordered else "NULL",
        ]
        if kind in ("numeric", "boolean"):
            x = f"{c}::DOUBLE"
            parts += [f"avg({x})", f"stddev_samp({x})"]
        else:
            parts += ["NULL", "NULL"]
        q = "[" + ", ".join(str(p) for p in QUANTILES) + "]"
        parts.append(f"approx_quantile({c}::DOUBLE, {q})" if kind == "numeric" else "NULL")
    return parts


_PER_COLUMN = 7  # values per column in the first pass


@dataclass(frozen=True)
class _Plan:
    """What the second pass computes for one column."""

    edges: tuple[float, float] | None  # bin the values between these
    count_values: bool  # exact counts of every value (few distinct ones)
    top_query: bool  # a separate GROUP BY for its most frequent values


def _plan(col_type: str, kind: str, count: int, distinct: int, lo: Any, hi: Any) -> _Plan:
    edges = None
    if kind == "numeric" and count and _finite(lo) and _finite(hi):
        edges = (float(lo), float(hi))
    few = kind != "other" and 0 < distinct <= LOW_CARDINALITY
    repeated = kind in ("string", "temporal", "numeric") and not _is_float(col_type)
    return _Plan(edges, few, not few and repeated and 0 < distinct < count // 2)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and math.isfinite(float(value))


def _bin_expr(column: str, lo: float, hi: float) -> str:
    width = (hi - lo) / BINS
    x = f"{column}::DOUBLE"
    index = f"least(greatest(floor(({x} - {lo!r}) / {width!r}), 0), {BINS - 1})::INTEGER"
    return f"histogram(CASE WHEN isfinite({x}) THEN {index} END)"


def _bins(lo: float, hi: float, counts: dict[int, int] | None,
          total: int) -> list[tuple[float, float, int]]:
    if lo == hi:
        return [(lo, hi, total)]
    width = (hi - lo) / BINS
    counts = counts or {}
    return [(lo + i * width, hi if i == BINS - 1 else lo + (i + 1) * width, int(counts.get(i, 0)))
            for i in range(BINS)]


def _top(counts: dict[Any, int]) -> list[tuple[Any, int]]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return [(plain(v), int(n)) for v, n in ranked[:TOP] if v is not None]


def profile_version(catalog: Catalog, dv: DatasetVersion, *, progress: ProgressFn | None = None,
                    cancel: CancelToken | None = None) -> Profile:
    """Type, nulls, distinct, min/max/mean/std, quantiles, top values and a histogram per column."""
    scan = duck.parquet_scan(version_path(catalog, dv))
    cur = catalog.cursor()
    try:
        first = duck.run(cur, f"SELECT {', '.join(_first_pass(dv))} FROM {scan}", "profile",
                         _phase(progress, 0, 60), cancel)[0]
        stats = [first[1 + i * _PER_COLUMN: 1 + (i + 1) * _PER_COLUMN]
                 for i in range(len(dv.columns))]
        plans = [_plan(col.type, column_kind(col.type), int(s[0]), int(s[1] or 0), s[2], s[3])
                 for col, s in zip(dv.columns, stats, strict=True)]
        second = _second_pass(cur, scan, dv, plans, _phase(progress, 60, 30), cancel)
        columns = []
        for i, (col, s, plan) in enumerate(zip(dv.columns, stats, plans, strict=True)):
            bins, values = second.get(("bins", i)), second.get(("values", i))
            if plan.top_query:
                values = _top_values(cur, scan, col.name)
            columns.append(_column(col.name, col.type, int(first[0]), s, plan, bins, values))
    except duckdb.Error as exc:
        raise duck.translate(exc, f"profile of {dv.ref}") from exc
    finally:
        cur.close()
    report(progress, "profile", 100, 100)
    return Profile(dv.dataset, dv.version, int(first[0]), columns)


def _second_pass(cur: duckdb.DuckDBPyConnection, scan: str, dv: DatasetVersion,
                 plans: list[_Plan], progress: ProgressFn | None,
                 cancel: CancelToken | None) -> dict[tuple[str, int], Any]:
    wanted: list[tuple[tuple[str, int], str]] = []
    for i, (col, plan) in enumerate(zip(dv.columns, plans, strict=True)):
        c = duck.ident(col.name)
        if plan.edges and plan.edges[0] != plan.edges[1]:
            wanted.append((("bins", i), _bin_expr(c, *plan.edges)))
        if plan.count_values:
            wanted.append((("values", i), f"histogram({c})"))
    if not wanted:
        return {}
    sql = f"SELECT {', '.join(expr for _, expr in wanted)} FROM {scan}"
    row = duck.run(cur, sql, "profile", progress, cancel)[0]
    return {key: value for (key, _), value in zip(wanted, row, strict=True)}


def _top_values(cur: duckdb.DuckDBPyConnection, scan: str, name: str) -> dict[Any, int]:
    c = duck.ident(name)
    rows = cur.execute(f"SELECT {c}, count(*) AS n FROM {scan} WHERE {c} IS NOT NULL "
                       f"GROUP BY {c} ORDER BY n DESC, {c} LIMIT {TOP}").fetchall()
    return {value: int(n) for value, n in rows}


def _column(name: str, col_type: str, rows: int, s: tuple[Any, ...], plan: _Plan,
            bins: dict[int, int] | None, values: dict[Any, int] | None) -> ColumnProfile:
    count, distinct, lo, hi, mean, std, quantiles = s
    return ColumnProfile(
        name=name, type=col_type, kind=column_kind(col_type), count=int(count),
        nulls=rows - int(count), distinct=int(distinct or 0), min=plain(lo), max=plain(hi),
        mean=plain(mean), std=plain(std),
        quantiles=None if quantiles is None else {
            f"p{round(q * 100)}": plain(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
        top=_top(values) if values else [],
        histogram=None if plan.edges is None else _bins(*plan.edges, bins, int(count)),
    )
