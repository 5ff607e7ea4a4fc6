"""The drift query as it was before bin counts were summed in one aggregate: every histogram
row unnested into one row per bin. Kept as the oracle that the faster query must match."""
from __future__ import annotations

from typing import Any

from scipy.special import gammaincc

from core.catalog import Catalog
from core.drift import EPSILON, FeatureDrift, drift_rows

UNNESTED_SQL = """
WITH base AS (
    SELECT f->>'name' AS feature, f->>'kind' AS kind,
           list_concat(CAST(f->'counts' AS BIGINT[]), [CAST(f->>'nulls' AS BIGINT)]) AS bins
    FROM bundle, unnest(list_concat(CAST(baseline->'features' AS JSON[]),
        CASE WHEN json_type(baseline->'prediction') = 'OBJECT'
             THEN [baseline->'prediction'] ELSE [] END)) AS u(f)
    WHERE model = $model AND version = $version
), base_bins AS (
    SELECT feature, kind, len(bins) AS nbins, bin, m
    FROM base, unnest(bins) WITH ORDINALITY AS u(m, bin)
), live AS (
    SELECT agent, {window} AS w, feature, list_concat(counts, [nulls]) AS bins
    FROM telemetry_histogram
    WHERE model = $model AND version = $version AND ($agent IS NULL OR agent = $agent)
      AND ($since IS NULL OR window_end > $since) AND ($until IS NULL OR window_start < $until)
), live_bins AS (
    SELECT agent, w, feature, bin, sum(n) AS n
    FROM live, unnest(bins) WITH ORDINALITY AS u(n, bin)
    GROUP BY GROUPING SETS ((agent, w, feature, bin), (w, feature, bin))
), joined AS (
    SELECT l.agent, l.w, l.feature, b.kind, l.bin, b.nbins, l.n, b.m,
           sum(l.n) OVER g AS n_tot, sum(b.m) OVER g AS m_tot,
           sum(CASE WHEN l.bin < b.nbins THEN l.n ELSE 0 END) OVER g AS n_vals,
           sum(CASE WHEN l.bin < b.nbins THEN b.m ELSE 0 END) OVER g AS m_vals,
           sum(CASE WHEN l.bin < b.nbins THEN l.n ELSE 0 END) OVER c AS n_cum,
           sum(CASE WHEN l.bin < b.nbins THEN b.m ELSE 0 END) OVER c AS m_cum
    FROM live_bins l JOIN base_bins b ON l.feature = b.feature AND l.bin = b.bin
    WINDOW g AS (PARTITION BY l.agent, l.w, l.feature),
           c AS (PARTITION BY l.agent, l.w, l.feature ORDER BY l.bin
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
), props AS (
    SELECT *, greatest(n / n_tot, $eps) AS p, greatest(m / greatest(m_tot, 1), $eps) AS q
    FROM joined WHERE n_tot > 0
)
SELECT agent, w, feature, any_value(kind), CAST(sum(n) AS BIGINT),
       sum((p - q) * ln(p / q)),
       max(abs(n_cum / greatest(n_vals, 1) - m_cum / greatest(m_vals, 1)))
           FILTER (bin < nbins AND n_vals > 0),
       sum((n - n_tot * q) * (n - n_tot * q) / (n_tot * q)),
       count(*) FILTER (n > 0 OR m > 0) - 1
FROM props GROUP BY agent, w, feature ORDER BY agent NULLS FIRST, w, feature
"""




def unnested_rows(catalog: Catalog, model: str, version: int, *, agent: str | None = None,
                  since: float | None = None, until: float | None = None,
                  bucket_s: float | None = None) -> list[tuple[Any, ...]]:
    """(agent, window, feature, kind, rows, psi, ks, chi², dof) as the old query gave them."""
    window = "0.0" if bucket_s is None else "floor(window_start / $bucket) * $bucket"
    params: dict[str, Any] = {"model": model, "version": version, "agent": agent,
                              "since": since, "until": until, "eps": EPSILON}
    if bucket_s is not None:
        params["bucket"] = bucket_s
    return catalog.cursor().execute(UNNESTED_SQL.format(window=window), params).fetchall()


def as_before(row: FeatureDrift) -> tuple[Any, ...]:
    """A drift row in the old query's terms."""
    return (row.agent, row.window_start, row.feature, row.kind, row.rows, row.psi, row.ks,
            row.chi2_p)


def assert_same_as_unnested(catalog: Catalog, model: str, version: int,
                            **bounds: Any) -> int:
    """drift_rows equals the old query row for row, PSI and KS to the last bit; returns how
    many rows were compared."""
    bucket_s = bounds.get("bucket_s")
    new = [as_before(r) for r in drift_rows(catalog, model, version, **bounds)]
    old = [(a, None if bucket_s is None else float(w), f, k, int(n), float(psi),
            None if k != "numeric" else ks,
            float(gammaincc(dof / 2, chi2 / 2)) if k == "categorical" and dof > 0 else None)
           for a, w, f, k, n, psi, ks, chi2, dof in unnested_rows(catalog, model, version,
                                                                   **bounds)]
    assert new == old
    return len(new)
