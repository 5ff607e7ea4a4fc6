"""What the Monitoring view shows, gathered in one worker call from core functions:
pull telemetry, evaluate drift (which raises and clears alerts), series, heatmap, alerts.

The core modules are imported inside the calls, in the worker (see app/fleet_calls.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.catalog import Catalog
from core.errors import NotFound
from core.progress import CancelToken, ProgressFn, check, report

if TYPE_CHECKING:
    from core.accuracy import AccuracyReport
    from core.alerts import Alert
    from core.drift import DriftReport, FeatureDrift
    from core.telemetry.pull import PullResult
    from core.telemetry.series import SeriesPoint


@dataclass
class Snapshot:
    models: list[str]
    agents: list[str]
    model: str | None
    bucket_s: float
    series: dict[str, list[SeriesPoint]] = field(default_factory=dict)  # per agent
    matrix: list[FeatureDrift] = field(default_factory=list)
    report: DriftReport | None = None
    drift_note: str | None = None  # why there is no drift yet, in the user's words
    alerts: list[Alert] = field(default_factory=list)
    pulled: list[PullResult] = field(default_factory=list)
    shadow: list[dict[str, Any]] = field(default_factory=list)  # core.shadow summaries
    accuracy: AccuracyReport | None = None  # live accuracy from labels, beside drift
    policy: list[str] = field(default_factory=list)  # triggers, skips, retrains of the pull
    retrained: bool = False  # a retrain ran (the Models view's staged banner may change)


def _pick_model(catalog: Catalog, models: list[str], wanted: str | None) -> str | None:
    from core.telemetry.series import request_stats

    if wanted in models:
        return wanted
    with_traffic = [s.model for s in request_stats(catalog) if s.model in models]
    return with_traffic[0] if with_traffic else (models[0] if models else None)


def snapshot(catalog: Catalog, model: str | None, agent: str | None, bucket_s: float, *,
             pull: bool = True, include_cleared: bool = False,
             progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Snapshot:
    from core.accuracy import accuracy_report
    from core.alerts import list_alerts
    from core.drift import drift_matrix, drift_report
    from core.feedback import refresh_all_captured
    from core.fleet.records import list_agents
    from core.registry import list_models
    from core.telemetry.pull import pull_telemetry
    from core.telemetry.series import request_series

    pulled = pull_telemetry(catalog, progress=progress, cancel=cancel) if pull else []
    policy: list[str] = []
    retrained = False
    if pull:
        from core.policy.retrain import check_after_ingest, outcome_lines

        refresh_all_captured(catalog)  # captured rows land as MODEL_captured versions
        decisions, results = check_after_ingest(catalog, "pull", progress=progress,
                                                cancel=cancel)
        policy, retrained = outcome_lines(decisions, results), bool(results)
    check(cancel, "refresh")
    report(progress, "drift", 0, 1)
    models = [str(m["model"]) for m in list_models(catalog)]
    agents = [a.name for a in list_agents(catalog)]
    chosen = _pick_model(catalog, models, model)
    snap = Snapshot(models, agents, chosen, bucket_s, pulled=pulled, policy=policy,
                    retrained=retrained)
    if chosen is not None:
        from core.shadow import shadow_report

        snap.shadow = shadow_report(catalog, chosen, agent)["agents"]
        for name in [agent] if agent else agents:
            snap.series[name] = request_series(catalog, name, model=chosen, bucket_s=bucket_s)
        try:
            snap.report = drift_report(catalog, chosen, agent)
            snap.matrix = drift_matrix(catalog, chosen, agent, bucket_s=bucket_s,
                                       version=snap.report.version)
        except NotFound as exc:
            snap.drift_note = str(exc)
        snap.accuracy = accuracy_report(catalog, chosen, agent)
    snap.alerts = list_alerts(catalog, include_cleared=include_cleared)
    report(progress, "drift", 1, 1)
    return snap
