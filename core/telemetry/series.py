"""Request telemetry over time, aggregated in DuckDB: the GUI's charts and the health checks."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.catalog import Catalog

# A request is an error when the agent answered it with a 4xx or 5xx.
ERROR_STATUS = 400
# Both latency quantiles from one sort of each group (two quantile_cont calls sort twice).
_QUANTILES = "quantile_cont(latency_us, [0.5, 0.99])"


@dataclass(frozen=True)
class SeriesPoint:
    t: float  # bucket start, unix seconds
    requests: int
    rows: int
    requests_per_s: float
    error_rate: float
    p50_ms: float | None
    p99_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RequestStats:
    agent: str
    model: str
    requests: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p99_ms: float | None
    first_ts: float
    last_ts: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _filters(agent: str | None, model: str | None, since: float | None,
             until: float | None) -> tuple[str, list[Any]]:
    where = "(? IS NULL OR agent = ?) AND (? IS NULL OR model = ?) " \
            "AND (? IS NULL OR ts >= ?) AND (? IS NULL OR ts < ?)"
    return where, [agent, agent, model, model, since, since, until, until]


def request_series(catalog: Catalog, agent: str | None = None, *, model: str | None = None,
                   bucket_s: float = 60.0, since: float | None = None,
                   until: float | None = None) -> list[SeriesPoint]:
    """Per time bucket: requests/s, error rate, p50 and p99 latency (ms)."""
    where, params = _filters(agent, model, since, until)
    rows = _series_rows(catalog, bucket_s, where, params)
    return [SeriesPoint(float(t), int(n), int(r or 0), n / bucket_s, e / n if n else 0.0,
                        *_p50_p99(q)) for t, n, r, e, q in rows]


def _series_rows(catalog: Catalog, bucket_s: float, where: str,
                 params: list[Any]) -> list[tuple[Any, ...]]:
    return catalog.cursor().execute(
        "SELECT floor(ts / ?) * ? AS t, count(*), sum(rows), "
        f"count(*) FILTER (status >= {ERROR_STATUS}), {_QUANTILES} "
        f"FROM telemetry_request WHERE {where} GROUP BY t ORDER BY t",
        [bucket_s, bucket_s, *params]).fetchall()


def request_stats(catalog: Catalog, *, agent: str | None = None, model: str | None = None,
                  since: float | None = None, until: float | None = None) -> list[RequestStats]:
    """Totals per (agent, model) over a period."""
    where, params = _filters(agent, model, since, until)
    rows = catalog.cursor().execute(
        f"SELECT agent, model, count(*), count(*) FILTER (status >= {ERROR_STATUS}), "
        f"{_QUANTILES}, min(ts), max(ts) "
        f"FROM telemetry_request WHERE {where} GROUP BY agent, model ORDER BY agent, model",
        params).fetchall()
    return [RequestStats(str(a), str(m), int(n), int(e), e / n if n else 0.0, *_p50_p99(q),
                         float(t0), float(t1)) for a, m, n, e, q, t0, t1 in rows]


def _ms(latency_us: float | None) -> float | None:
    return None if latency_us is None else float(latency_us) / 1000.0


def _p50_p99(quantiles: list[float] | None) -> tuple[float | None, float | None]:
    """The two latencies in ms from the quantile list (None for a group with no latency)."""
    p50, p99 = quantiles or (None, None)
    return _ms(p50), _ms(p99)
