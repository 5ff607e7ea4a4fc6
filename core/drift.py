"""Drift and health of a deployed model, from the agents' histogram windows.

Each histogram record holds live counts in the bins of the bundle's baseline
(plus nulls). One DuckDB query sums them per (agent, window, feature) — and
per (window, feature) over the whole fleet — and computes against the
baseline's counts: PSI, the KS distance between the binned CDFs (numerics) and
the chi-squared statistic (categoricals); only the chi-squared p-value of each
result row is computed in Python. Conditions over the thresholds are raised as
alerts in the catalog, and cleared when they stop holding.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from core.alerts import Condition, sync_alerts
from core.catalog import Catalog
from core.config import Settings
from core.errors import InvalidInput, NotFound
from core.telemetry.series import RequestStats, request_stats
from edge_agent.contract.protocol import PREDICTION_FEATURE

# Proportions are floored at this before PSI's log, so an empty bin counts as rare, not
# infinitely surprising.
EPSILON = 1e-4


@dataclass(frozen=True)
class Thresholds:
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    error_rate: float = 0.05
    p99_ms: float = 500.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Thresholds:
        """Defaults, overridden by OUTPOST_PSI_WARN, OUTPOST_PSI_ALERT, OUTPOST_ERROR_RATE,
        OUTPOST_P99_MS (read by :class:`core.config.Settings`)."""
        return cls(**Settings.from_env(environ).thresholds())

    def status(self, psi: float) -> str:
        if psi >= self.psi_alert:
            return "alert"
        return "warn" if psi >= self.psi_warn else "ok"


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    psi: float
    ks: float | None  # numerics
    chi2_p: float | None  # categoricals
    rows: int  # live values counted (nulls included)
    status: str  # ok, warn, alert
    agent: str | None = None  # None: the whole fleet
    window_start: float | None = None  # None: the whole period

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Coverage:
    """The telemetry a report is computed over: its time range and the rows in it."""

    start: float  # the earliest window's start (unix seconds)
    end: float  # the latest window's end
    rows: int  # values counted for the prediction (or the busiest feature)
    windows: int  # histogram records summed


_COVERAGE_SQL = """
SELECT min(window_start), max(window_end), count(*),
       max(rows) FROM (
    SELECT window_start, window_end, sum(list_sum(counts) + nulls) OVER (PARTITION BY feature)
        AS rows
    FROM telemetry_histogram
    WHERE model = $model AND version = $version AND ($agent IS NULL OR agent = $agent)
      AND ($since IS NULL OR window_end > $since) AND ($until IS NULL OR window_start < $until))
"""


def coverage(catalog: Catalog, model: str, version: int, *, agent: str | None = None,
             since: float | None = None, until: float | None = None) -> Coverage | None:
    """What histogram telemetry a report over these bounds sums; None if there is none."""
    row = catalog.cursor().execute(_COVERAGE_SQL, {
        "model": model, "version": version, "agent": agent, "since": since,
        "until": until}).fetchone()
    if row is None or row[0] is None:
        return None
    start, end, windows, rows = row
    return Coverage(float(start), float(end), int(rows or 0), int(windows))


def _notes(catalog: Catalog, model: str, version: int) -> list[str]:
    """Why per-column drift is left out, for a model whose inputs are tensors."""
    from core.registry import resolve_model
    from core.registry.tensor_inputs import describe, is_tensor

    try:
        mv = resolve_model(catalog, f"{model}@{version}")
    except NotFound:
        return []
    tensors = [describe(s) for s in mv.inputs if is_tensor(s)]
    if not tensors:
        return []
    return [f"per-column drift skipped: {model}@{version} takes tensor inputs "
            f"({'; '.join(tensors)}), not one column per feature; only the prediction is "
            "compared with its baseline"]


@dataclass(frozen=True)
class DriftReport:
    model: str
    version: int
    agent: str | None
    since: float | None
    until: float | None
    thresholds: Thresholds
    features: list[FeatureDrift]  # fleet-wide (or the one agent), prediction excluded
    prediction: FeatureDrift | None
    by_agent: list[FeatureDrift] = field(default_factory=list)
    health: list[RequestStats] = field(default_factory=list)
    covers: Coverage | None = None
    notes: list[str] = field(default_factory=list)  # what the report leaves out, and why

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "version": self.version, "agent": self.agent,
            "since": self.since, "until": self.until, "thresholds": asdict(self.thresholds),
            "covers": asdict(self.covers) if self.covers else None, "notes": self.notes,
            "features": [f.to_dict() for f in self.features],
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "by_agent": [f.to_dict() for f in self.by_agent],
            "health": [h.to_dict() for h in self.health],
        }


_BASE_CTE = """
base AS (
    SELECT f->>'name' AS feature, f->>'kind' AS kind,
           list_concat(CAST(f->'counts' AS BIGINT[]), [CAST(f->>'nulls' AS BIGINT)]) AS bins
    FROM bundle, unnest(list_concat(CAST(baseline->'features' AS JSON[]),
        CASE WHEN json_type(baseline->'prediction') = 'OBJECT'
             THEN [baseline->'prediction'] ELSE [] END)) AS u(f)
    WHERE model = $model AND version = $version
)"""

# The widest baseline (bins + nulls): how many bin sums the live aggregate needs. NULL when
# the bundle has no features; no row when there is no bundle.
_WIDTH_SQL = ("WITH" + _BASE_CTE + "\nSELECT (SELECT max(len(bins)) FROM base) FROM bundle "
              "WHERE model = $model AND version = $version")

# Live counts are summed bin by bin in one plain aggregate over the histogram rows
# (sum(counts[i]) per group), not unnested row by row: 1,000 windows x 20 features stay a
# single scan. Grouping by the list's width keeps what unnesting did for rows whose width
# differs from the baseline's: the nulls count sits right after that row's own counts.
_DRIFT_SQL = "WITH" + _BASE_CTE + """, base_bins AS (
    SELECT feature, kind, len(bins) AS nbins, bin, m
    FROM base, unnest(bins) WITH ORDINALITY AS u(m, bin)
), live AS (
    SELECT {agent} AS agent, {window} AS w, feature, len(counts) AS width, [{sums}] AS sums,
           sum(nulls) AS nulls
    FROM telemetry_histogram
    WHERE model = $model AND version = $version AND ($agent IS NULL OR agent = $agent)
      AND ($since IS NULL OR window_end > $since) AND ($until IS NULL OR window_start < $until)
    GROUP BY GROUPING SETS ({sets})
), live_bins AS (
    SELECT agent, w, feature, bin, sum(n) AS n
    FROM live, unnest(list_concat(sums[1:width], [nulls])) WITH ORDINALITY AS u(n, bin)
    GROUP BY agent, w, feature, bin
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


def _latest_version(catalog: Catalog, model: str, agent: str | None) -> int:
    rows = catalog.cursor().execute(
        "SELECT version FROM telemetry_histogram WHERE model = ? AND (? IS NULL OR agent = ?) "
        "ORDER BY window_end DESC, seq DESC LIMIT 1", [model, agent, agent]).fetchall()
    if not rows:
        where = f" from agent {agent}" if agent else ""
        raise NotFound(f"no histogram telemetry for model {model}{where} yet "
                       "(deploy it, send traffic, then `outpost telemetry pull`)")
    return int(rows[0][0])


def drift_rows(catalog: Catalog, model: str, version: int, *, agent: str | None = None,
               since: float | None = None, until: float | None = None,
               bucket_s: float | None = None, thresholds: Thresholds | None = None,
               per_agent: bool = True) -> list[FeatureDrift]:
    """Drift per (agent, window, feature); rows with agent None are the fleet's sum (the
    only rows with ``per_agent=False``)."""
    th = thresholds or Thresholds()
    params: dict[str, Any] = {"model": model, "version": version}
    widths = catalog.cursor().execute(_WIDTH_SQL, params).fetchall()
    if not widths:
        raise NotFound(f"no baseline for {model}@{version}: its bundle was not built here")
    sums = ", ".join(f"sum(counts[{i}])" for i in range(1, int(widths[0][0] or 1) + 1))
    window = "0.0" if bucket_s is None else "floor(window_start / $bucket) * $bucket"
    params.update(agent=agent, since=since, until=until, eps=EPSILON)
    if bucket_s is not None:
        if bucket_s <= 0:
            raise InvalidInput("the drift window must be longer than 0 seconds")
        params["bucket"] = bucket_s
    sets = "(agent, w, feature, width), " * per_agent + "(w, feature, width)"
    sql = _DRIFT_SQL.format(window=window, sums=sums, sets=sets,
                            agent="agent" if per_agent else "CAST(NULL AS VARCHAR)")
    result = catalog.cursor().execute(sql, params)
    rows = []  # in chunks: one fetchall of 20,000 rows holds the GIL (and the GUI) ~0.1 s
    while chunk := result.fetchmany(2048):
        rows.extend(chunk)
    from scipy.special import gammaincc  # chi-squared survival; scipy.stats takes ~1 s to import

    out = []
    for agent_name, w, feature, kind, n, psi, ks, stat, dof in rows:
        p_value = float(gammaincc(dof / 2, stat / 2)) if kind == "categorical" and dof > 0 else None
        out.append(FeatureDrift(
            str(feature), str(kind), float(psi), None if kind != "numeric" else ks, p_value,
            int(n), th.status(float(psi)), agent_name, None if bucket_s is None else float(w)))
    return out


def drift_report(catalog: Catalog, model: str, agent: str | None = None, *,
                 version: int | None = None, since: float | None = None,
                 until: float | None = None, thresholds: Thresholds | None = None,
                 record_alerts: bool = True) -> DriftReport:
    """Drift of every feature and of the prediction, fleet-wide and per agent, plus request
    health. A report that reaches the present (no `until`) raises and clears the matching
    alerts; one about the past leaves them as they are."""
    th = thresholds or Thresholds()
    # One snapshot: counts, coverage and health from the same commits, even while a pull or
    # the hub's writer lands new windows between the queries.
    with catalog.snapshot() as view:
        version = version if version is not None else _latest_version(view, model, agent)
        rows = drift_rows(view, model, version, agent=agent, since=since, until=until,
                          thresholds=th)
        fleet = [r for r in rows if r.agent is None]
        health = request_stats(view, agent=agent, model=model, since=since, until=until)
        report = DriftReport(
            model, version, agent, since, until, th,
            features=[r for r in fleet if r.feature != PREDICTION_FEATURE],
            prediction=next((r for r in fleet if r.feature == PREDICTION_FEATURE), None),
            by_agent=[r for r in rows if r.agent is not None], health=health,
            covers=coverage(view, model, version, agent=agent, since=since, until=until),
            notes=_notes(view, model, version))
    if record_alerts and until is None:
        _record_alerts(catalog, report)
    return report


def drift_matrix(catalog: Catalog, model: str, agent: str | None = None, *,
                 bucket_s: float = 3600.0, version: int | None = None,
                 since: float | None = None, until: float | None = None,
                 thresholds: Thresholds | None = None) -> list[FeatureDrift]:
    """PSI per feature x time window (fleet-wide, or one agent's): the GUI's heatmap."""
    version = version if version is not None else _latest_version(catalog, model, agent)
    rows = drift_rows(catalog, model, version, agent=agent, since=since, until=until,
                      bucket_s=bucket_s, thresholds=thresholds, per_agent=False)
    return [r for r in rows if r.agent is None]


def _record_alerts(catalog: Catalog, report: DriftReport) -> None:
    th, model = report.thresholds, report.model
    holding = [
        Condition(f"drift/{model}/{r.agent}/{r.feature}", "drift", r.status,
                  f"{model} on {r.agent}: {r.feature} PSI {r.psi:.3f} "
                  f"(>= {th.psi_alert if r.status == 'alert' else th.psi_warn})",
                  model=model, agent=r.agent, feature=r.feature, value=r.psi,
                  threshold=th.psi_alert if r.status == "alert" else th.psi_warn)
        for r in report.by_agent if r.status != "ok"]
    for h in report.health:
        if h.error_rate > th.error_rate:
            holding.append(Condition(
                f"health/{h.agent}/{model}/error_rate", "health", "alert",
                f"{model} on {h.agent}: error rate {h.error_rate:.1%} (> {th.error_rate:.1%})",
                model=model, agent=h.agent, value=h.error_rate, threshold=th.error_rate))
        if h.p99_ms is not None and h.p99_ms > th.p99_ms:
            holding.append(Condition(
                f"health/{h.agent}/{model}/p99", "health", "warn",
                f"{model} on {h.agent}: p99 latency {h.p99_ms:.1f} ms (> {th.p99_ms:g} ms)",
                model=model, agent=h.agent, value=h.p99_ms, threshold=th.p99_ms))
    scopes = [f"drift/{model}/" + (f"{report.agent}/" if report.agent else "")]
    scopes += [f"health/{h.agent}/{model}/" for h in report.health]
    with catalog.transaction() as cur:
        for scope in scopes:
            sync_alerts(cur, scope, [c for c in holding if c.key.startswith(scope)])
