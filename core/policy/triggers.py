"""The four triggers, each evaluated over the data that arrived since the last retrain.

Each returns a :class:`TriggerCheck` with the values it saw, fired or not, so that what
made a retrain run (or not) is on record. Data before the last retrain was already acted
on: counting it again would retrain again and again on one drift.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from core.catalog import Catalog
from core.errors import NotFound
from core.feedback.labels import LABELS, PREDICTIONS
from core.policy.spec import AccuracyTrigger, CapturedTrigger, PsiTrigger, ScheduleTrigger
from edge_agent.contract.protocol import PREDICTION_FEATURE

# drift_rows groups windows by floor(start / bucket): a millisecond keeps every window of
# an agent apart (the agent's windows are at least that long) without reading their length.
_BUCKET_S = 0.001


@dataclass(frozen=True)
class TriggerCheck:
    trigger: str  # psi, accuracy, captured, schedule
    fired: bool
    detail: str
    values: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NEWEST_WINDOWS = """
SELECT agent, window_start FROM (
    SELECT DISTINCT agent, window_start FROM telemetry_histogram
    WHERE model = $model AND version = $version AND feature <> $prediction
      AND ($since IS NULL OR window_end > $since))
QUALIFY row_number() OVER (PARTITION BY agent ORDER BY window_start DESC) <= $n
ORDER BY agent, window_start
"""


def check_psi(catalog: Catalog, model: str, version: int, trigger: PsiTrigger,
              since: float | None) -> TriggerCheck:
    """Fires when one agent's `windows` newest windows each have >= `features` features
    with PSI >= `threshold`."""
    from core.drift import drift_rows

    newest: dict[str, list[float]] = defaultdict(list)
    for agent, start in catalog.cursor().execute(_NEWEST_WINDOWS, {
            "model": model, "version": version, "prediction": PREDICTION_FEATURE,
            "since": since, "n": trigger.windows}).fetchall():
        newest[str(agent)].append(float(start))
    full = {a: starts for a, starts in newest.items() if len(starts) >= trigger.windows}
    values: dict[str, Any] = {"version": version, "threshold": trigger.threshold,
                              "features": trigger.features, "windows": trigger.windows,
                              "agents": {}}
    if not full:
        most = max((len(s) for s in newest.values()), default=0)
        return TriggerCheck("psi", False, f"{most} of {trigger.windows} window(s) of "
                            f"{model}@{version} since the last retrain", values)
    try:
        rows = drift_rows(catalog, model, version, since=min(min(s) for s in full.values()),
                          bucket_s=_BUCKET_S)
    except NotFound as exc:
        return TriggerCheck("psi", False, str(exc), values)
    over: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    only = set(trigger.only)
    for r in rows:
        if r.agent is None or r.agent not in full or r.window_start is None \
                or r.feature == PREDICTION_FEATURE or (only and r.feature not in only):
            continue
        index = _nearest(full[r.agent], r.window_start)
        if index is not None and r.psi >= trigger.threshold:
            over[(r.agent, index)][r.feature] = round(r.psi, 4)
    fired_by = []
    for agent, starts in sorted(full.items()):
        drifted = [over.get((agent, i), {}) for i in range(len(starts))]
        values["agents"][agent] = [{"start": s, "over": o} for s, o in zip(starts, drifted,
                                                                           strict=True)]
        if all(len(o) >= trigger.features for o in drifted):
            fired_by.append(agent)
    if fired_by:
        return TriggerCheck("psi", True, f"PSI >= {trigger.threshold:g} on >= "
                            f"{trigger.features} feature(s) for {trigger.windows} window(s) "
                            f"on {', '.join(fired_by)}", values)
    return TriggerCheck("psi", False, "no agent's newest windows all drifted that far", values)


def _nearest(starts: list[float], start: float) -> int | None:
    for i, s in enumerate(starts):
        if abs(s - start) < _BUCKET_S:
            return i
    return None


def check_accuracy(catalog: Catalog, model: str, version: int, task: str, holdout: float | None,
                   trigger: AccuracyTrigger, since: float | None) -> TriggerCheck:
    """Live accuracy (RMSE for regression) of `version`'s answers since the last retrain."""
    err = "(TRY_CAST(p.predicted AS DOUBLE) - TRY_CAST(l.label AS DOUBLE))"
    labelled, correct, rmse = catalog.cursor().execute(
        f"WITH p AS ({PREDICTIONS}), l AS ({LABELS}) "
        f"SELECT count(*), count(*) FILTER (l.label = p.predicted), sqrt(avg({err} * {err})) "
        "FROM p JOIN l USING (id) WHERE p.version = $version "
        "AND ($since IS NULL OR p.t >= $since)",
        {"model": model, "version": version, "since": since}).fetchone() or (0, 0, None)
    values: dict[str, Any] = {"version": version, "labelled": int(labelled),
                              "min_labels": trigger.min_labels, "holdout": holdout,
                              "drop": trigger.drop}
    if holdout is None:
        return TriggerCheck("accuracy", False, f"{model}@{version} has no holdout metric",
                            values)
    if labelled < trigger.min_labels:
        return TriggerCheck("accuracy", False, f"{labelled} of {trigger.min_labels} labels "
                            "since the last retrain", values)
    if task == "classification":
        live = correct / labelled
        values["live"] = round(live, 4)
        fired = live < holdout - trigger.drop
        what = f"live accuracy {live:.4f} vs holdout {holdout:.4f} on {labelled} labels"
    else:
        live = float(rmse) if rmse is not None else 0.0
        values["live_rmse"] = round(live, 6)
        fired = live > holdout * (1 + trigger.drop)
        what = f"live RMSE {live:.4g} vs holdout {holdout:.4g} on {labelled} labels"
    return TriggerCheck("accuracy", fired, what, values)


def labelled_captures(catalog: Catalog, model: str) -> int:
    """Captured rows of `model` that carry a label now."""
    ((n,),) = catalog.cursor().execute(
        f"SELECT count(*) FROM telemetry_capture c JOIN ({LABELS}) l USING (id) "
        "WHERE c.model = $model AND l.label IS NOT NULL", {"model": model}).fetchall()
    return int(n)


def check_captured(catalog: Catalog, model: str, trigger: CapturedTrigger,
                   mark: int) -> TriggerCheck:
    total = labelled_captures(catalog, model)
    new = total - mark
    return TriggerCheck("captured", new >= trigger.rows,
                        f"{new} new labelled captured rows (>= {trigger.rows} fires)",
                        {"labelled": total, "new": new, "rows": trigger.rows})


def check_schedule(trigger: ScheduleTrigger, since: float, now: float | None = None
                   ) -> TriggerCheck:
    now = time.time() if now is None else now
    elapsed = now - since
    return TriggerCheck("schedule", elapsed >= trigger.every_s,
                        f"{elapsed / 86_400:.2f} days since the last retrain or the policy "
                        f"(every {trigger.text})",
                        {"elapsed_s": round(elapsed, 1), "every_s": trigger.every_s})


def holdout_metric(catalog: Catalog, run_id: str | None, task: str) -> float | None:
    if run_id is None:
        return None
    row = catalog.cursor().execute("SELECT metrics FROM run WHERE id = ?", [run_id]).fetchone()
    value = json.loads(row[0]).get("accuracy" if task == "classification" else "rmse") \
        if row and row[0] else None
    return float(value) if isinstance(value, int | float) else None
