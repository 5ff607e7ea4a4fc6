"""baseline.json — the drift reference a bundle carries — computed in DuckDB.

Numeric features get quantile cut points (deciles by default) and counts per
bin; categoricals their top-K categories plus an "other" bin; both count nulls
apart. Values are cast to the model input's type first (FP32 inputs are rounded
to float32, as the agent sees them) and the edges are float32-exact, so the
desktop and the device put a value on an edge into the same bin.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import numpy as np

from edge_agent.contract.protocol import PREDICTION_FEATURE, Baseline, FeatureBaseline

DEFAULT_BINS = 10
DEFAULT_TOP_K = 20


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: Literal["numeric", "categorical"]
    float32: bool = False  # the model takes this column as FP32

    def value_sql(self) -> str:
        col = '"' + self.name.replace('"', '""') + '"'
        if self.kind == "categorical":
            return f"nullif(CAST({col} AS VARCHAR), '')"
        as_double = f"TRY_CAST({col} AS DOUBLE)"
        if self.float32:
            as_double = f"CAST(CAST({as_double} AS FLOAT) AS DOUBLE)"
        return f"CASE WHEN isnan({as_double}) OR isinf({as_double}) THEN NULL ELSE {as_double} END"


def _edges(con: duckdb.DuckDBPyConnection, source: str, specs: Sequence[FeatureSpec],
           bins: int) -> dict[str, list[float]]:
    if not specs:
        return {}
    qs = [i / bins for i in range(1, bins)]
    exprs = ", ".join(f"quantile_cont({s.value_sql()}, {qs})" for s in specs)
    row = con.execute(f"SELECT {exprs} FROM {source}").fetchall()[0]
    out: dict[str, list[float]] = {}
    for spec, values in zip(specs, row, strict=True):
        finite = np.asarray([v for v in (values or []) if v is not None], dtype=np.float64)
        if spec.float32:
            finite = finite.astype(np.float32).astype(np.float64)
        out[spec.name] = np.unique(finite[np.isfinite(finite)]).tolist()
    return out


def _numeric(con: duckdb.DuckDBPyConnection, source: str, specs: Sequence[FeatureSpec],
             bins: int) -> list[FeatureBaseline]:
    edges = _edges(con, source, specs, bins)
    if not specs:
        return []
    exprs = []
    for spec in specs:
        value = spec.value_sql()
        bin_expr = " + ".join(f"CAST({value} >= {e!r} AS INTEGER)" for e in edges[spec.name])
        exprs.append(f"histogram({bin_expr or '0'}) FILTER ({value} IS NOT NULL)")
        exprs.append(f"count(*) FILTER ({value} IS NULL)")
    row = con.execute(f"SELECT {', '.join(exprs)} FROM {source}").fetchall()[0]
    out = []
    for i, spec in enumerate(specs):
        hist: dict[int, int] = dict(row[2 * i] or {})
        counts = [int(hist.get(b, 0)) for b in range(len(edges[spec.name]) + 1)]
        out.append(FeatureBaseline(spec.name, "numeric", counts, int(row[2 * i + 1]),
                                   edges=edges[spec.name]))
    return out


def _categorical(con: duckdb.DuckDBPyConnection, source: str, spec: FeatureSpec, top_k: int,
                 categories: Sequence[str] | None = None) -> FeatureBaseline:
    value = spec.value_sql()
    rows = con.execute(
        f"SELECT v, count(*) AS n FROM (SELECT {value} AS v FROM {source}) "
        "GROUP BY v ORDER BY v IS NULL, n DESC, v").fetchall()
    nulls = sum(int(n) for v, n in rows if v is None)
    seen = {str(v): int(n) for v, n in rows if v is not None}
    cats = list(categories) if categories is not None else list(seen)[:top_k]
    counts = [seen.get(c, 0) for c in cats]
    counts.append(sum(seen.values()) - sum(counts))
    return FeatureBaseline(spec.name, "categorical", counts, nulls, categories=cats)


def compute_baseline(con: duckdb.DuckDBPyConnection, source: str,
                     features: Sequence[FeatureSpec], *, rows: int,
                     prediction: FeatureBaseline | None = None,
                     bins: int = DEFAULT_BINS, top_k: int = DEFAULT_TOP_K) -> dict[str, Any]:
    """Bins and counts for each feature over `source` (a table expression in `con`)."""
    numeric = {f.name: f for f in _numeric(
        con, source, [s for s in features if s.kind == "numeric"], bins)}
    out = [numeric[s.name] if s.kind == "numeric" else _categorical(con, source, s, top_k)
           for s in features]
    return Baseline(rows, out, prediction).to_dict()


def prediction_baseline(con: duckdb.DuckDBPyConnection, predictions: np.ndarray[Any, Any],
                        labels: Sequence[str] | None, *, bins: int = DEFAULT_BINS
                        ) -> FeatureBaseline:
    """The prediction distribution: over the labels for a classifier, binned for a regressor."""
    import pyarrow as pa

    if labels is not None:
        table = pa.table({PREDICTION_FEATURE: pa.array([str(v) for v in predictions.ravel()])})
        spec = FeatureSpec(PREDICTION_FEATURE, "categorical")
        con.register("predictions", table)
        try:
            return _categorical(con, "predictions", spec, len(labels),
                                [str(label) for label in labels])
        finally:
            con.unregister("predictions")
    values = np.asarray(predictions, dtype=np.float64).ravel()
    table = pa.table({PREDICTION_FEATURE: values})
    con.register("predictions", table)
    try:
        spec = FeatureSpec(PREDICTION_FEATURE, "numeric",
                           float32=predictions.dtype == np.float32)
        return _numeric(con, "predictions", [spec], bins)[0]
    finally:
        con.unregister("predictions")
