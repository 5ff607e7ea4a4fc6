"""Policies and retrain records in the catalog (migration 0010_policy.sql).

A policy is checked against the model when it is set (the features it names, the gate
metric against the task, the dataset), so a bad one never reaches the triggers.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson

from core.audit.chain import record_event
from core.catalog import Catalog
from core.errors import InvalidInput, NotFound
from core.policy.spec import Policy
from core.registry.models import ModelVersion, resolve_model

ACTIVE = ("pending", "running")


def champion(catalog: Catalog, model: str) -> ModelVersion:
    """The version a retrain must beat and repeat: production, else the latest."""
    try:
        return resolve_model(catalog, f"{model}@production")
    except NotFound:
        return resolve_model(catalog, model)


def _check_against_model(catalog: Catalog, policy: Policy) -> None:
    from core.datasets import resolve_version
    from core.registry.gate import GATE_METRICS
    from core.training import get_algorithm, get_run

    mv = champion(catalog, policy.model)
    if mv.run is None:
        raise InvalidInput(f"{mv.ref} was imported, not trained here: a policy has no "
                           "training recipe to repeat for it")
    run = get_run(catalog, mv.run)
    if policy.psi:
        unknown = [f for f in policy.psi.only if f not in run.features]
        if unknown:
            raise InvalidInput(f"--psi-on names {', '.join(unknown)}, which {mv.ref} does not "
                               f"take (its features: {', '.join(run.features)})")
        if policy.psi.features > len(run.features):
            raise InvalidInput(f"--psi-features {policy.psi.features} is more than the "
                               f"{len(run.features)} features {mv.ref} takes")
    metric = policy.gate.metric
    if metric is not None:
        if metric not in GATE_METRICS:
            raise InvalidInput(f"--metric {metric!r} is not one of {sorted(GATE_METRICS)}")
        if GATE_METRICS[metric][0] != run.task:
            raise InvalidInput(f"--metric {metric} does not fit {mv.ref}, a {run.task} model")
    dataset = policy.retrain.dataset or run.dataset
    dv = resolve_version(catalog, dataset)
    missing = [c for c in [*run.features, run.target] if c not in {x.name for x in dv.columns}]
    if missing:
        raise InvalidInput(f"dataset {dv.dataset} lacks {', '.join(missing)}, which "
                           f"retraining {mv.ref} needs")
    if policy.retrain.algo is not None:
        get_algorithm(policy.retrain.algo)


def set_policy(catalog: Catalog, policy: Policy) -> Policy:
    """Store (or replace) the model's policy after checking it; audited as `policy`."""
    policy.check()
    _check_against_model(catalog, policy)
    spec = orjson.dumps(policy.to_dict(), option=orjson.OPT_SORT_KEYS).decode()
    with catalog.transaction() as cur:
        cur.execute(
            "INSERT INTO model_policy (model, spec, set_at) VALUES (?, ?, ?) "
            "ON CONFLICT (model) DO UPDATE SET spec = excluded.spec, set_at = excluded.set_at",
            [policy.model, spec, time.time()])
        record_event(cur, "policy", model=policy.model,
                     detail={"action": "set", "policy": policy.to_dict()})
    return policy


def clear_policy(catalog: Catalog, model: str) -> bool:
    with catalog.transaction() as cur:
        gone = cur.execute("DELETE FROM model_policy WHERE model = ? RETURNING model",
                           [model]).fetchall()
        if gone:
            record_event(cur, "policy", model=model, detail={"action": "clear"})
    return bool(gone)


@dataclass(frozen=True)
class PolicyState:
    policy: Policy
    set_at: float
    last_fired_at: float | None
    captured_mark: int

    @property
    def since(self) -> float | None:
        """Data after this counts toward the triggers: what came before the last retrain
        was already acted on."""
        return self.last_fired_at


def _state(row: tuple[Any, ...]) -> PolicyState:
    spec, set_at, fired, mark = row
    return PolicyState(Policy.from_dict(json.loads(spec)), float(set_at),
                       None if fired is None else float(fired), int(mark))


def get_policy(catalog: Catalog, model: str) -> PolicyState:
    row = catalog.cursor().execute(
        "SELECT spec, set_at, last_fired_at, captured_mark FROM model_policy WHERE model = ?",
        [model]).fetchone()
    if row is None:
        resolve_model(catalog, model)  # an unknown model says so first
        raise NotFound(f"model {model!r} has no retraining policy (outpost policy set {model} …)")
    return _state(row)


def list_policies(catalog: Catalog) -> list[PolicyState]:
    return [_state(r) for r in catalog.cursor().execute(
        "SELECT spec, set_at, last_fired_at, captured_mark FROM model_policy "
        "ORDER BY model").fetchall()]


@dataclass(frozen=True)
class RetrainRecord:
    id: int
    model: str
    status: str
    source: str
    triggers: list[dict[str, Any]]
    reason: str | None
    dataset: str | None
    run: str | None
    version: int | None
    gate: dict[str, Any] | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_RETRAIN_COLUMNS = ("id, model, status, source, triggers, reason, dataset, run, version, gate, "
                    "created_at, started_at, finished_at")


def _record(row: tuple[Any, ...]) -> RetrainRecord:
    (id_, model, status, source, triggers, reason, dataset, run, version, gate, created,
     started, finished) = row
    return RetrainRecord(int(id_), str(model), str(status), str(source), json.loads(triggers),
                         reason, dataset, run, None if version is None else int(version),
                         json.loads(gate) if gate else None, float(created),
                         started, finished)


def retrains(catalog: Catalog, model: str | None = None, *, status: tuple[str, ...] = (),
             limit: int = 50) -> list[RetrainRecord]:
    """Retrain records, newest first."""
    where = ["(? IS NULL OR model = ?)"]
    params: list[Any] = [model, model]
    if status:
        where.append(f"status IN ({', '.join('?' for _ in status)})")
        params += list(status)
    rows = catalog.cursor().execute(
        f"SELECT {_RETRAIN_COLUMNS} FROM policy_retrain WHERE {' AND '.join(where)} "
        f"ORDER BY id DESC LIMIT {int(limit)}", params).fetchall()
    return [_record(r) for r in rows]


def get_retrain(cur: duckdb.DuckDBPyConnection, retrain_id: int) -> RetrainRecord:
    row = cur.execute(f"SELECT {_RETRAIN_COLUMNS} FROM policy_retrain WHERE id = ?",
                      [retrain_id]).fetchone()
    if row is None:
        raise NotFound(f"no retrain #{retrain_id}")
    return _record(row)


def retrain_for_version(catalog: Catalog, model: str, version: int) -> RetrainRecord | None:
    """The retrain that made `model`@`version`, if a policy did."""
    row = catalog.cursor().execute(
        f"SELECT {_RETRAIN_COLUMNS} FROM policy_retrain WHERE model = ? AND version = ? "
        "ORDER BY id DESC LIMIT 1", [model, version]).fetchone()
    return None if row is None else _record(row)
