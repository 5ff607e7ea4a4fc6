"""Desired state for hub-mode agents: what `deploy` and `rollback` record instead of
pushing, what a poll answers, and the outcome the agent reports back.

Each deploy or rollback is a `deployment` row ('pending') and the agent's `hub_desired`
row for that model, written in one transaction. The agent carries it out on its next
poll and reports; the row then reads 'active' / 'installed', or 'failed' with the reason.
A newer deployment of the same model supersedes a pending one, which fails as such.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb

from core.catalog import Catalog
from core.errors import NotFound
from core.fleet.checks import check_opset
from core.fleet.errors import DeployRefused
from core.fleet.ledger import (
    OUTCOMES,
    Action,
    DeployResult,
    DeployStatus,
    finish_in,
    insert_deployment,
)
from core.fleet.records import AgentRecord, last_status
from core.progress import CancelToken, ProgressFn, check, report
from core.registry.models import ModelVersion
from edge_agent.contract.asgi import HTTPError
from edge_agent.contract.hub_protocol import agent_path
from edge_agent.contract.manifest import MAX_VERSION

MAX_ID = 2**63 - 1  # DuckDB BIGINT


@dataclass(frozen=True)
class Outcome:
    deployment: int
    model: str
    status: DeployStatus  # one of OUTCOMES
    version: int | None  # the version active after it (a rollback learns it here)
    error: str | None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Outcome:
        deployment, model, status = doc.get("deployment"), doc.get("model"), doc.get("status")
        version, error = doc.get("version"), doc.get("error")
        if type(deployment) is not int or not isinstance(model, str) or status not in OUTCOMES:
            raise HTTPError(400, 'outcome must be {"deployment": int, "model": str, '
                                    f'"status": one of {list(OUTCOMES)}, ...}}')
        if version is not None and (type(version) is not int
                                    or not 1 <= version <= MAX_VERSION):
            raise HTTPError(400, f"outcome version must be null or an integer from 1 to "
                                 f"{MAX_VERSION}")
        if not 1 <= deployment <= MAX_ID:
            raise HTTPError(400, f"outcome deployment must be an integer from 1 to {MAX_ID}")
        if status == "failed" and not isinstance(error, str):
            raise HTTPError(400, "a failed outcome must say why (error)")
        return cls(deployment, model, status, version,
                   str(error)[:2000] if error is not None else None)


def _record(catalog: Catalog, agent: str, model: str, version: int, action: Action,
            bundle: str | None, allow_downgrade: bool) -> int:
    with catalog.transaction() as cur:
        deployment = insert_deployment(cur, agent, model, version, action, bundle)
        cur.execute(
            "UPDATE deployment SET status = 'failed', finished_at = now(), "
            "error = 'superseded by deployment ' || ? WHERE agent = ? AND model = ? "
            "AND status = 'pending' AND id <> ?", [deployment, agent, model, deployment])
        cur.execute("DELETE FROM hub_desired WHERE agent = ? AND model = ?", [agent, model])
        cur.execute(
            "INSERT INTO hub_desired (agent, model, version, action, deployment, bundle, "
            "allow_downgrade) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [agent, model, version, action, deployment, bundle, allow_downgrade])
    return deployment


def deploy_via_hub(catalog: Catalog, mv: ModelVersion, record: AgentRecord, *,
                   allow_downgrade: bool = False, progress: ProgressFn | None = None,
                   cancel: CancelToken | None = None, challenger: str | None = None,
                   shadow_share: float = 0.5) -> DeployResult:
    """Record `mv` as what the hub agent should run; it installs it on its next poll.

    The opset check uses the runtime the agent reported on its last poll (none yet: the
    agent checks on install and the failure comes back as the outcome)."""
    from core.bundles import build_bundle

    last = last_status(catalog, record.name)
    if last is not None and last.opset_max:
        check_opset(record.name, last, mv.model, mv.opset)
    report(progress, f"deploy {mv.ref} to {record.name} (hub)", 0, 2)
    built = build_bundle(catalog, mv.ref, cancel=cancel, challenger=challenger,
                         shadow_share=shadow_share)
    check(cancel, "deploy")
    deployment = _record(catalog, record.name, mv.model, mv.version, "deploy", built.sha256,
                         allow_downgrade)
    report(progress, f"deploy {mv.ref} to {record.name} (hub)", 2, 2)
    return DeployResult(record.name, mv.model, mv.version, "pending", deployment)


def rollback_via_hub(catalog: Catalog, model: str, record: AgentRecord) -> DeployResult:
    """Record that the hub agent should go back to the version it served before."""
    last = last_status(catalog, record.name)
    if last is not None and not last.serves(model):
        raise DeployRefused(f"agent {record.name} does not serve {model} (as of its last poll)")
    deployment = _record(catalog, record.name, model, 0, "rollback", None, False)
    return DeployResult(record.name, model, 0, "pending", deployment)


def desired_for(cur: duckdb.DuckDBPyConnection, agent: str) -> list[dict[str, Any]]:
    """The poll answer's `desired` list: one item per model, with where to fetch the bundle."""
    rows = cur.execute(
        "SELECT d.model, d.version, d.action, d.deployment, d.bundle, d.allow_downgrade, "
        "p.status FROM hub_desired d LEFT JOIN deployment p ON p.id = d.deployment "
        "WHERE d.agent = ? ORDER BY d.model", [agent]).fetchall()
    return [{"model": model, "version": version, "action": action, "deployment": deployment,
             "bundle": None if bundle is None else {
                 "sha256": bundle, "path": agent_path(agent, "bundles", bundle)},
             "allow_downgrade": allow_downgrade, "status": status}
            for model, version, action, deployment, bundle, allow_downgrade, status in rows]


def set_capture_via_hub(catalog: Catalog, record: AgentRecord, model: str,
                        policy: dict[str, Any] | None) -> dict[str, Any]:
    """Record the model's capture policy for the hub agent (None: the bundle's again); its
    next poll answer carries it, signed like the rest of the answer. A policy for a model
    the agent did not serve at its last poll, with no deployment of it pending, is refused
    here (the agent would refuse it too, and report that back: `capture_refused`)."""
    last = last_status(catalog, record.name)
    with catalog.transaction() as cur:
        if not cur.execute("SELECT 1 FROM model_version WHERE model = ? LIMIT 1",
                           [model]).fetchall():
            raise NotFound(f"model {model!r} is not in the catalog")
        pending = cur.execute("SELECT 1 FROM hub_desired WHERE agent = ? AND model = ? AND "
                              "action = 'deploy'", [record.name, model]).fetchall()
        if policy is not None and last is not None and not last.serves(model) \
                and not pending:
            raise NotFound(f"agent {record.name} does not serve {model} (as of its last "
                           "poll): its capture policy was not set (deploy it first)")
        cur.execute("DELETE FROM hub_capture WHERE agent = ? AND model = ?",
                    [record.name, model])
        cur.execute("INSERT INTO hub_capture (agent, model, policy) VALUES (?, ?, ?)",
                    [record.name, model, None if policy is None else json.dumps(policy)])
    return {"model": model, "policy": policy, "status": "pending"}


def capture_for(cur: duckdb.DuckDBPyConnection, agent: str) -> dict[str, Any]:
    """The poll answer's `capture`: model -> policy (null: back to the bundle's)."""
    rows = cur.execute("SELECT model, policy FROM hub_capture WHERE agent = ? ORDER BY model",
                       [agent]).fetchall()
    return {str(m): None if p is None else json.loads(p) for m, p in rows}


def bundle_allowed(cur: duckdb.DuckDBPyConnection, agent: str, sha256: str) -> bool:
    """An agent may download only a bundle it is meant to install."""
    return bool(cur.execute("SELECT 1 FROM hub_desired WHERE agent = ? AND bundle = ?",
                            [agent, sha256]).fetchall())


def record_outcome(catalog: Catalog, agent: str, outcome: Outcome) -> None:
    """Finish the deployment row; a rollback's desired row becomes the version it reached."""
    with catalog.transaction() as cur:
        rows = cur.execute("SELECT action, status FROM deployment WHERE id = ? AND agent = ? "
                           "AND model = ?", [outcome.deployment, agent, outcome.model]).fetchall()
        if not rows:
            raise HTTPError(404, f"no deployment {outcome.deployment} of {outcome.model} "
                                    f"for agent {agent}")
        action, _ = rows[0]
        finish_in(cur, outcome.deployment, outcome.status, outcome.error, outcome.version)
        if action == "rollback" and outcome.status != "failed" and outcome.version:
            # A device wiped later converges on the same version from its bundle.
            cur.execute("UPDATE hub_desired SET action = 'deploy', version = ?, "
                        "allow_downgrade = true, bundle = (SELECT object FROM bundle b "
                        "WHERE b.model = ? AND b.version = ?), updated_at = now() "
                        "WHERE agent = ? AND model = ? AND deployment = ?",
                        [outcome.version, outcome.model, outcome.version, agent, outcome.model,
                         outcome.deployment])
