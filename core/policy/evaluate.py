"""Evaluating policies: which triggers fire, and queuing a retrain — or saying why not.

A trigger that fires records a `pending` retrain (what fired, with the values seen) in the
same transaction as its audit entry; it never trains here, so evaluating stays cheap
enough to follow every telemetry ingest. While a retrain of the model is pending or
running, a firing trigger is recorded as `skipped`, naming the retrain in the way.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson

from core.audit.chain import record_event
from core.catalog import Catalog
from core.policy import busy
from core.policy.store import ACTIVE, PolicyState, champion, get_policy, list_policies
from core.policy.triggers import (
    TriggerCheck,
    check_accuracy,
    check_captured,
    check_psi,
    check_schedule,
    holdout_metric,
    labelled_captures,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    model: str
    action: str  # triggered (a retrain is pending), skipped, quiet (nothing fired)
    reason: str
    retrain: int | None  # the pending retrain, or the skipped record
    checks: list[TriggerCheck] = field(default_factory=list)

    @property
    def fired(self) -> list[TriggerCheck]:
        return [c for c in self.checks if c.fired]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "action": self.action, "reason": self.reason,
                "retrain": self.retrain, "fired": [c.trigger for c in self.fired],
                "checks": [c.to_dict() for c in self.checks]}


def run_checks(catalog: Catalog, state: PolicyState, now: float | None = None
               ) -> list[TriggerCheck]:
    """Every trigger of the policy, evaluated against the model's production version."""
    policy, since = state.policy, state.since
    mv = champion(catalog, policy.model)
    checks = []
    if policy.psi:
        checks.append(check_psi(catalog, mv.model, mv.version, policy.psi, since))
    if policy.accuracy:
        task = mv.task or "classification"
        checks.append(check_accuracy(catalog, mv.model, mv.version, task,
                                     holdout_metric(catalog, mv.run, task), policy.accuracy,
                                     since))
    if policy.captured:
        checks.append(check_captured(catalog, mv.model, policy.captured, state.captured_mark))
    if policy.schedule:
        checks.append(check_schedule(policy.schedule, since or state.set_at, now))
    return checks


def _insert(cur: duckdb.DuckDBPyConnection, model: str, status: str, source: str,
            fired: list[TriggerCheck], reason: str | None, now: float) -> int:
    triggers = orjson.dumps([c.to_dict() for c in fired]).decode()
    ((rid,),) = cur.execute(
        "INSERT INTO policy_retrain (model, status, source, triggers, reason, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        [model, status, source, triggers, reason, now]).fetchall()
    return int(rid)


def _close_interrupted(cur: duckdb.DuckDBPyConnection, model: str, now: float) -> None:
    """`running` rows no thread of this process runs: their process died mid-retrain."""
    for (rid,) in cur.execute("SELECT id FROM policy_retrain WHERE model = ? AND "
                              "status = 'running'", [model]).fetchall():
        if busy.running(model) == rid:
            continue
        cur.execute("UPDATE policy_retrain SET status = 'failed', finished_at = ?, reason = "
                    "'interrupted: the process running it stopped' WHERE id = ?", [now, rid])
        record_event(cur, "retrain", model=model,
                     detail={"retrain": int(rid), "status": "failed", "reason": "interrupted"})


def decide(catalog: Catalog, state: PolicyState, source: str, now: float | None = None
           ) -> Decision:
    """Evaluate one policy; a firing trigger queues a retrain unless one is in the way."""
    now = time.time() if now is None else now
    model = state.policy.model
    checks = run_checks(catalog, state, now)
    fired = [c for c in checks if c.fired]
    if not fired:
        return Decision(model, "quiet", "no trigger fired", None, checks)
    names = ", ".join(c.trigger for c in fired)
    mark = labelled_captures(catalog, model)
    with busy.LOCK, catalog.transaction() as cur:
        _close_interrupted(cur, model, now)
        active = cur.execute(
            f"SELECT id, status FROM policy_retrain WHERE model = ? AND status IN "
            f"({', '.join(repr(s) for s in ACTIVE)}) ORDER BY id LIMIT 1", [model]).fetchone()
        if active is not None:
            reason = (f"{names} fired, but retrain #{active[0]} of {model} is already "
                      f"{active[1]}: one retrain at a time per model")
            rid = _insert(cur, model, "skipped", source, fired, reason, now)
            record_event(cur, "retrain", model=model, detail={
                "retrain": rid, "status": "skipped", "blocked_by": int(active[0]),
                "source": source, "reason": reason, "triggers": [c.to_dict() for c in fired]})
            return Decision(model, "skipped", reason, rid, checks)
        rid = _insert(cur, model, "pending", source, fired, None, now)
        cur.execute("UPDATE model_policy SET last_fired_at = ?, captured_mark = ? "
                    "WHERE model = ?", [now, mark, model])
        record_event(cur, "retrain", model=model, detail={
            "retrain": rid, "status": "triggered", "source": source,
            "triggers": [c.to_dict() for c in fired]})
    return Decision(model, "triggered", f"{names} fired: retrain #{rid} queued", rid, checks)


def evaluate(catalog: Catalog, model: str | None = None, *, source: str,
             now: float | None = None) -> list[Decision]:
    """Evaluate the policy of `model`, or of every model that has one."""
    states = [get_policy(catalog, model)] if model else list_policies(catalog)
    return [decide(catalog, s, source, now) for s in states]


def after_ingest(catalog: Catalog, source: str) -> list[Decision]:
    """The hook every telemetry ingest calls once it committed: evaluate every policy.

    It can never fail or undo the ingest: the telemetry is already committed, and any
    error here is logged (and the policy evaluated again after the next ingest)."""
    try:
        states = list_policies(catalog)
    except Exception:  # noqa: BLE001 -- see the docstring: the ingest must stand
        log.exception("reading retraining policies after %s failed", source)
        return []
    decisions = []
    for state in states:  # one model's failure does not keep the others from their turn
        try:
            decisions.append(decide(catalog, state, source))
        except Exception:  # noqa: BLE001 -- see the docstring
            log.exception("retraining policy of %s after %s failed", state.policy.model,
                          source)
    return decisions
