"""Live accuracy: the agents' answers joined with the ground truth that came back.

Per agent x model version (and per time window of the predictions): how many answers are
labelled, and for a classifier how many were right, per-class recall and the confusion
counts; for regression MAE and RMSE. Each is set beside the version's holdout metric from
training, and an ``accuracy`` alert is raised when the live figure is worse by more than a
threshold, once enough labels back it:

- ``min_labels`` = 300: the standard error of an accuracy near 0.85 measured on 300
  labels is sqrt(0.85 * 0.15 / 300) ~ 0.021, so the default drop of 0.05 is ~2.4 standard
  errors: a model as good as its holdout raises it by chance < 1% of the time;
- ``max_drop`` = 0.05 (absolute accuracy) for classifiers; ``max_rmse_ratio`` = 1.25
  (live RMSE over holdout RMSE) for regression.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from core.alerts import Condition, sync_alerts
from core.catalog import Catalog
from core.feedback.labels import LABELS, PREDICTIONS, model_task

DAY_S = 86_400.0


@dataclass(frozen=True)
class AccuracyThresholds:
    min_labels: int = 300
    max_drop: float = 0.05
    max_rmse_ratio: float = 1.25


@dataclass
class AgentAccuracy:
    agent: str
    version: int
    predictions: int
    labelled: int
    unlabelled: int
    correct: int | None  # classification only
    accuracy: float | None
    holdout: float | None  # holdout accuracy (classification) or RMSE (regression)
    mae: float | None = None
    rmse: float | None = None
    recall: dict[str, float] = field(default_factory=dict)
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)  # true -> predicted
    windows: list[dict[str, Any]] = field(default_factory=list)
    alert: bool = False


@dataclass
class AccuracyReport:
    model: str
    task: str
    since: float | None
    window_s: float
    agents: list[AgentAccuracy]
    labels: int  # current labels for the model, whichever way they came
    orphans: int  # labels whose id no prediction carries (yet)
    thresholds: AccuracyThresholds
    alerts: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rows(cur: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]
          ) -> list[tuple[Any, ...]]:
    """Run `sql` with the parameters it names (DuckDB refuses unused ones)."""
    return cur.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql}).fetchall()


_JOINED = f"""
    WITH p AS ({PREDICTIONS}), l AS ({LABELS})
    SELECT p.agent, p.version, p.id, p.predicted, p.t, l.label
    FROM p LEFT JOIN l USING (id)
    WHERE ($agent IS NULL OR p.agent = $agent) AND ($since IS NULL OR p.t >= $since)"""


def _holdout(cur: duckdb.DuckDBPyConnection, model: str, version: int, metric: str
             ) -> float | None:
    row = cur.execute("SELECT r.metrics FROM model_version mv JOIN run r ON r.id = mv.run "
                      "WHERE mv.model = ? AND mv.version = ?", [model, version]).fetchone()
    value = json.loads(row[0]).get(metric) if row and row[0] else None
    return float(value) if isinstance(value, int | float) else None


def _classification(cur: duckdb.DuckDBPyConnection, params: dict[str, Any]
                    ) -> dict[tuple[str, int], AgentAccuracy]:
    out: dict[tuple[str, int], AgentAccuracy] = {}
    for agent, version, n, labelled, correct in _rows(cur, f"""
            SELECT agent, version, count(*), count(label),
                   count(*) FILTER (label = predicted)
            FROM ({_JOINED}) GROUP BY ALL ORDER BY agent, version""", params):
        out[(agent, version)] = AgentAccuracy(
            agent, int(version), int(n), int(labelled), int(n - labelled), int(correct),
            correct / labelled if labelled else None, None)
    for agent, version, label, predicted, n in _rows(cur, f"""
            SELECT agent, version, label, predicted, count(*) FROM ({_JOINED})
            WHERE label IS NOT NULL GROUP BY ALL ORDER BY ALL""", params):
        entry = out[(agent, version)]
        entry.confusion.setdefault(label, {})[predicted] = int(n)
    for entry in out.values():
        entry.recall = {c: row.get(c, 0) / sum(row.values()) for c, row in entry.confusion.items()}
    for agent, version, start, n, labelled, correct in _rows(cur, f"""
            SELECT agent, version, floor(t / $window) * $window, count(*), count(label),
                   count(*) FILTER (label = predicted)
            FROM ({_JOINED}) GROUP BY ALL ORDER BY ALL""", params):
        out[(agent, version)].windows.append({
            "start": start, "predictions": int(n), "labelled": int(labelled),
            "correct": int(correct), "accuracy": correct / labelled if labelled else None})
    return out


def _regression(cur: duckdb.DuckDBPyConnection, params: dict[str, Any]
                ) -> dict[tuple[str, int], AgentAccuracy]:
    err = "(TRY_CAST(predicted AS DOUBLE) - TRY_CAST(label AS DOUBLE))"
    stats = f"count(*), count(label), avg(abs({err})), sqrt(avg({err} * {err}))"
    out: dict[tuple[str, int], AgentAccuracy] = {}
    for agent, version, n, labelled, mae, rmse in _rows(
            cur, f"SELECT agent, version, {stats} FROM ({_JOINED}) GROUP BY ALL ORDER BY ALL",
            params):
        out[(agent, version)] = AgentAccuracy(agent, int(version), int(n), int(labelled),
                                              int(n - labelled), None, None, None, mae, rmse)
    for agent, version, start, n, labelled, mae, rmse in _rows(
            cur, f"SELECT agent, version, floor(t / $window) * $window, {stats} "
                 f"FROM ({_JOINED}) GROUP BY ALL ORDER BY ALL", params):
        out[(agent, version)].windows.append({"start": start, "predictions": int(n),
                                              "labelled": int(labelled), "mae": mae,
                                              "rmse": rmse})
    return out


def _condition(model: str, task: str, e: AgentAccuracy, th: AccuracyThresholds
               ) -> Condition | None:
    if e.holdout is None or e.labelled < th.min_labels:
        return None
    key = f"accuracy/{model}/{e.agent}/{e.version}"
    if task == "classification" and e.accuracy is not None \
            and e.accuracy < e.holdout - th.max_drop:
        return Condition(key, "accuracy", "alert",
                         f"{model}@{e.version} on {e.agent}: live accuracy {e.accuracy:.3f} "
                         f"on {e.labelled} labels, holdout {e.holdout:.3f}", model, e.agent,
                         None, e.accuracy, e.holdout - th.max_drop)
    if task == "regression" and e.rmse is not None and e.holdout > 0 \
            and e.rmse > e.holdout * th.max_rmse_ratio:
        return Condition(key, "accuracy", "alert",
                         f"{model}@{e.version} on {e.agent}: live RMSE {e.rmse:.4g} on "
                         f"{e.labelled} labels, holdout {e.holdout:.4g}", model, e.agent,
                         None, e.rmse, e.holdout * th.max_rmse_ratio)
    return None


def accuracy_report(catalog: Catalog, model: str, agent: str | None = None, *,
                    since: float | None = None, window_s: float = DAY_S,
                    thresholds: AccuracyThresholds | None = None,
                    update_alerts: bool = True) -> AccuracyReport:
    """Live accuracy of `model` per agent x version; raises or clears accuracy alerts."""
    th = thresholds or AccuracyThresholds()
    # One snapshot: a hub ingest landing between the queries gave the per-window query an
    # agent the per-agent query had not seen yet (KeyError in a loaded CI run).
    with catalog.snapshot() as view:
        cur = view.cursor()
        task, _ = model_task(cur, model)
        params = {"model": model, "agent": agent, "since": since, "window": window_s}
        entries = (_classification if task == "classification" else _regression)(cur, params)
        metric = "accuracy" if task == "classification" else "rmse"
        for e in entries.values():
            e.holdout = _holdout(cur, model, e.version, metric)
        ((labels, orphans),) = cur.execute(
            f"SELECT count(*), count(*) FILTER (p.id IS NULL) FROM ({LABELS}) l LEFT JOIN "
            f"(SELECT DISTINCT unnest(ids) AS id FROM telemetry_prediction "
            f"WHERE model = $model) p USING (id)", {"model": model}).fetchall()
    conditions = [c for e in entries.values() if (c := _condition(model, task, e, th))]
    for e in entries.values():
        e.alert = any(c.agent == e.agent and c.key.endswith(f"/{e.version}")
                      for c in conditions)
    if update_alerts and since is None:
        scope = f"accuracy/{model}/" + (f"{agent}/" if agent else "")
        with catalog.transaction() as tx:
            sync_alerts(tx, scope, conditions)
    return AccuracyReport(model, task, since, window_s, list(entries.values()), int(labels),
                          int(orphans), th, [c.message for c in conditions])

