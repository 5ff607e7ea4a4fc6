"""What a staged rollout watches on each agent it switched, whichever way the agent is
reached (core.fleet.rollout runs the waves).

A push agent is asked now: it must answer, serve the new version, and the telemetry
pulled from it since the wave's soak began must keep the error rate and p99 within the
health thresholds. A hub agent cannot be asked: its deploy is recorded and carried out on
its next poll, so the rollout waits for the outcome it reports through the hub; then its
last poll (once newer than the soak's start) must show the new version, and the telemetry
it pushed is judged the same way. Either kind fails when labels arrive for the new
version (feedback) and its live accuracy falls more than `max_drop` below the version's
holdout accuracy with at least `min_labels` labels behind it (regression: live RMSE over
1.25 x holdout RMSE), as ``core.accuracy`` judges its alerts.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from core.accuracy import AccuracyThresholds, accuracy_report
from core.catalog import Catalog
from core.errors import OutpostError
from core.fleet.dispatch import agent_status
from core.fleet.ledger import list_deployments
from core.fleet.records import get_agent, last_status
from core.progress import CancelToken, check
from edge_agent.contract.hub_protocol import DEFAULT_POLL_S

OUTCOME_POLL_S = 0.2  # reading the ledger for hub outcomes is one small query


@dataclass(frozen=True)
class SoakLimits:
    model: str
    version: int
    offline_s: float  # unreachable (push) or silent (hub) longer than this: failed
    accuracy: AccuracyThresholds


def serving(catalog: Catalog, agent: str, model: str) -> int | None:
    """The version of `model` the agent serves (a hub agent: as of its last poll); raises
    OutpostError when a push agent does not answer or a hub agent went quiet."""
    # When the hub agent last called, read before its status: a poll stored in between
    # makes the status newer than `seen` says, never older.
    seen = get_agent(catalog, agent).last_seen_at
    status = agent_status(catalog, agent)
    if not status.online:
        raise OutpostError(status.error or f"agent {agent} is offline")
    polled = next((m.get("active") for m in status.models if m.get("name") == model), None)
    if status.mode != "hub":
        return polled
    # A hub agent's last poll may predate the outcome of its latest deployment.
    done = next((d for d in list_deployments(catalog, agent=agent, model=model)
                 if d.status == "active"), None)
    if done is not None and seen is not None and done.finished_at is not None \
            and done.finished_at > seen:
        return int(done.version)
    return polled


def hub_silence(catalog: Catalog, agent: str) -> float | None:
    """Seconds since a hub agent last called the hub (None: a push agent)."""
    record = get_agent(catalog, agent)
    if record.mode != "hub":
        return None
    if record.last_seen_at is None:
        return float("inf")
    return (datetime.now(UTC) - record.last_seen_at).total_seconds()


def _poll_s(catalog: Catalog, agent: str) -> float:
    report = last_status(catalog, agent)
    return (report.poll_s if report else None) or DEFAULT_POLL_S


def await_outcomes(catalog: Catalog, pending: dict[str, int], offline_s: float,
                   cancel: CancelToken | None = None,
                   clock: Callable[[], float] = time.monotonic) -> dict[str, str | None]:
    """Wait for the outcomes hub agents report for deployments recorded for them
    ({agent: deployment id}): None for one carried out, else why it failed. An agent
    must report within one of its poll intervals plus `offline_s` of the call (the
    download and the canary happen in between)."""
    start = clock()
    deadlines = {a: start + _poll_s(catalog, a) + offline_s for a in pending}
    done: dict[str, str | None] = {}
    while len(done) < len(pending):
        for agent, deployment in pending.items():
            if agent in done:
                continue
            row = next((d for d in list_deployments(catalog, agent=agent)
                        if d.id == deployment), None)
            if row is None or row.status == "failed":
                done[agent] = (row.error if row else None) or f"deployment {deployment} failed"
            elif row.status != "pending":
                done[agent] = None
            elif clock() >= deadlines[agent]:
                quiet = hub_silence(catalog, agent)
                said = "it never called the hub" if quiet == float("inf") else \
                    f"its last call to the hub was {quiet:.0f} s ago"
                done[agent] = (f"no outcome from hub agent {agent} within "
                               f"{deadlines[agent] - start:.0f} s ({said}; is `outpost hub "
                               f"serve` running?)")
        check(cancel, "rollout")
        if len(done) < len(pending):
            time.sleep(OUTCOME_POLL_S)
    return done


def soak_problem(catalog: Catalog, limits: SoakLimits, agent: str, since: float) -> str | None:
    """Why `agent` fails its soak now (None: healthy so far). Raises OutpostError while
    a push agent does not answer: the caller decides when that becomes a failure."""
    from core.drift import Thresholds
    from core.telemetry.pull import pull_telemetry
    from core.telemetry.series import request_stats

    quiet = hub_silence(catalog, agent)
    if quiet is None:
        if serving(catalog, agent, limits.model) != limits.version:
            return f"agent {agent} no longer serves {limits.model}@{limits.version}"
        pull_telemetry(catalog, agent)
    else:
        if quiet > limits.offline_s:
            return (f"silent for {quiet:.0f} s: no call to the hub within the offline "
                    f"timeout ({limits.offline_s:g} s)")
        seen = get_agent(catalog, agent).last_seen_at  # before the status, as in serving()
        report = last_status(catalog, agent)
        # A poll older than the soak may predate the switch: only a newer one can say.
        if seen is not None and seen.timestamp() > since and report is not None:
            active = next((m.get("active") for m in report.models
                           if m.get("name") == limits.model), None)
            if active != limits.version:
                return f"agent {agent} no longer serves {limits.model}@{limits.version}"
    th = Thresholds.from_env()
    for s in request_stats(catalog, agent=agent, model=limits.model, since=since):
        if s.error_rate > th.error_rate:
            return f"error rate {s.error_rate:.1%} (> {th.error_rate:.1%})"
        if s.p99_ms is not None and s.p99_ms > th.p99_ms:
            return f"p99 {s.p99_ms:.1f} ms (> {th.p99_ms:g} ms)"
    return accuracy_problem(catalog, limits, agent, since)


def accuracy_problem(catalog: Catalog, limits: SoakLimits, agent: str, since: float
                     ) -> str | None:
    """The live accuracy of the new version's answers since `since`, when labels for
    enough of them arrived and it is worse than the holdout allows."""
    report = accuracy_report(catalog, limits.model, agent, since=since,
                             thresholds=limits.accuracy, update_alerts=False)
    prefix = f"{limits.model}@{limits.version} on {agent}:"
    if not any(e.version == limits.version and e.alert for e in report.agents):
        return None
    said = next((m for m in report.alerts if m.startswith(prefix)), prefix)
    return (f"accuracy: {said} (allowed drop {limits.accuracy.max_drop:g}, "
            f"min {limits.accuracy.min_labels} labels)")
