"""Deploying model versions to agents, rolling back, and recording every outcome.

A deployment row is written before the push ('pending') and finished after it
('active', 'installed' or 'failed' with the reason), so a push cut off midway
leaves a failure on record and the agent — which installs only a complete,
verified bundle — keeps serving what it served.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.audit import record_event
from core.catalog import Catalog
from core.errors import Cancelled, OutpostError
from core.fleet.agents import AgentRecord, connect, get_agent
from core.fleet.client import AgentClient
from core.fleet.errors import AgentRefused, DeployRefused
from core.fleet.rotation import catch_up_rotations
from core.progress import CancelToken, ProgressFn, check, report


@dataclass(frozen=True)
class DeployResult:
    agent: str
    model: str
    version: int
    status: str  # 'active', 'installed' (pushed, not activated), 'rolled_back'
    deployment: int

    def to_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "model": self.model, "version": self.version,
                "status": self.status, "deployment": self.deployment}


@dataclass(frozen=True)
class Deployment:
    id: int
    agent: str
    model: str
    version: int
    action: str
    status: str
    error: str | None
    started_at: Any
    finished_at: Any

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _start(catalog: Catalog, agent: str, model: str, version: int, action: str,
           bundle: str | None) -> int:
    with catalog.transaction() as cur:
        rows = cur.execute(
            "INSERT INTO deployment (agent, model, version, action, status, bundle) "
            "VALUES (?, ?, ?, ?, 'pending', ?) RETURNING id",
            [agent, model, version, action, bundle]).fetchall()
    return int(rows[0][0])


def _finish(catalog: Catalog, deployment: int, status: str, error: str | None = None,
            version: int | None = None) -> None:
    with catalog.transaction() as cur:
        row = cur.execute("UPDATE deployment SET status = ?, error = ?, finished_at = now(), "
                          "version = coalesce(?, version) WHERE id = ? "
                          "RETURNING agent, model, version, action, bundle",
                          [status, error, version, deployment]).fetchone()
        if row is not None:
            agent, model, done_version, action, bundle = row
            record_event(cur, "rollback" if action == "rollback" else "deploy", agent=agent,
                         model=model, version=int(done_version), sha256=bundle,
                         detail={"deployment": deployment, "status": status, "error": error})


def _domain(name: str) -> str:
    return "" if name == "ai.onnx" else name  # the default domain goes by both names


def check_opset(agent: str, status: dict[str, Any], model: str, opset: dict[str, int]) -> None:
    """Refuse before pushing if the agent's onnxruntime cannot load the model's opsets."""
    supported = {_domain(d): v for d, v in (status.get("opset_max") or {}).items()}
    for domain, needed in sorted((_domain(d), v) for d, v in opset.items()):
        have = supported.get(domain)
        if not isinstance(have, int) or needed > have:
            name = domain or "ai.onnx"
            raise DeployRefused(
                f"{model} needs opset {name} {needed}, but agent {agent} (onnxruntime "
                f"{status.get('onnxruntime', '?')}) supports {name} up to {have or 'none'}")


def push_bundle(catalog: Catalog, record: AgentRecord, client: AgentClient, bundle: Path, *,
                model: str, version: int, bundle_sha: str | None = None,
                activate: bool = True, allow_downgrade: bool = False) -> DeployResult:
    """Push a built bundle over a verified connection and record the outcome."""
    catch_up_rotations(catalog, record, client)
    deployment = _start(catalog, record.name, model, version, "deploy", bundle_sha)
    try:
        answer = client.push_bundle(bundle, activate=activate, allow_rollback=allow_downgrade)
    except OutpostError as exc:
        _finish(catalog, deployment, "failed", str(exc))
        raise
    except BaseException as exc:  # interrupted: still no half-recorded deployment
        _finish(catalog, deployment, "failed", f"interrupted: {type(exc).__name__}")
        raise
    status = str(answer.get("status", "installed"))
    _finish(catalog, deployment, status)
    return DeployResult(record.name, model, version, status, deployment)


def deploy_bundle_file(catalog: Catalog, agent: str, bundle: Path, *, model: str,
                       version: int, opset: dict[str, int] | None = None,
                       bundle_sha: str | None = None, activate: bool = True,
                       allow_downgrade: bool = False,
                       progress: ProgressFn | None = None) -> DeployResult:
    """Check the agent can run it, then push `bundle` (model@version) to `agent`."""
    report(progress, f"connecting to {agent}", 0, 3)
    with connect(catalog, agent) as (record, client):
        if opset is not None:
            check_opset(agent, client.status(), model, opset)
        report(progress, f"pushing {model}@{version} to {agent}", 1, 3)
        result = push_bundle(catalog, record, client, bundle, model=model, version=version,
                             bundle_sha=bundle_sha, activate=activate,
                             allow_downgrade=allow_downgrade)
    report(progress, f"pushing {model}@{version} to {agent}", 3, 3)
    return result


def deploy(catalog: Catalog, ref: str, agent: str, *, force: bool = False,
           allow_downgrade: bool = False, progress: ProgressFn | None = None,
           cancel: CancelToken | None = None) -> DeployResult:
    """Deploy model version `ref` (M@V or M@ALIAS) to `agent`: refuse a parity-flagged
    version unless forced, check the agent can load its opsets, build (or reuse) the
    signed bundle, push it, record the outcome."""
    from core.bundles import build_bundle
    from core.registry import resolve_model

    mv = resolve_model(catalog, ref)
    refuse_flagged(mv.model, mv.version, mv.flagged, mv.parity, force)
    if (hub_agent := get_agent(catalog, agent)).mode == "hub":  # recorded, fetched on poll
        from core.hub.desired import deploy_via_hub
        return deploy_via_hub(catalog, mv, hub_agent, allow_downgrade=allow_downgrade,
                              progress=progress, cancel=cancel)
    report(progress, f"deploy {mv.ref} to {agent}", 0, 3)
    pushing = False
    try:
        with connect(catalog, agent) as (record, client):
            check_opset(agent, client.status(), mv.model, mv.opset)
            built = build_bundle(catalog, mv.ref, cancel=cancel)
            check(cancel, "deploy")
            report(progress, f"deploy {mv.ref} to {agent}", 1, 3)
            pushing = True  # from here push_bundle records the outcome itself
            result = push_bundle(catalog, record, client, built.path, model=mv.model,
                                 version=mv.version, bundle_sha=built.sha256,
                                 allow_downgrade=allow_downgrade)
    except Cancelled:
        raise
    except OutpostError as exc:
        # Unreachable, wrong key, opsets it cannot load: still a deployment that failed,
        # so the agent's history says why the version never arrived.
        if not pushing:
            _finish(catalog, _start(catalog, agent, mv.model, mv.version, "deploy", None),
                    "failed", str(exc))
        raise
    report(progress, f"deploy {mv.ref} to {agent}", 3, 3)
    return result


def rollback(catalog: Catalog, model: str, agent: str) -> DeployResult:
    """Make the agent serve the version it served before; recorded like a deployment."""
    if (hub_agent := get_agent(catalog, agent)).mode == "hub":  # recorded, done on poll
        from core.hub.desired import rollback_via_hub
        return rollback_via_hub(catalog, model, hub_agent)
    with connect(catalog, agent) as (record, client):
        deployment = _start(catalog, record.name, model, 0, "rollback", None)
        try:
            answer = client.rollback(model)
        except AgentRefused as exc:
            reason = str(exc)
            if exc.status in (404, 409):
                reason = f"agent {agent} has no previous version of {model} to roll back to " \
                         f"({str(exc).split('refused: ', 1)[-1]})"
            _finish(catalog, deployment, "failed", reason)
            raise AgentRefused(reason, exc.status) from exc
        except OutpostError as exc:
            _finish(catalog, deployment, "failed", str(exc))
            raise
        version = int(answer.get("active", 0))
        _finish(catalog, deployment, "active", version=version)
    return DeployResult(agent, model, version, "rolled_back", deployment)


def list_deployments(catalog: Catalog, *, agent: str | None = None,
                     model: str | None = None) -> list[Deployment]:
    rows = catalog.cursor().execute(
        "SELECT id, agent, model, version, action, status, error, started_at, finished_at "
        "FROM deployment WHERE (? IS NULL OR agent = ?) AND (? IS NULL OR model = ?) "
        "ORDER BY id DESC", [agent, agent, model, model]).fetchall()
    return [Deployment(*row) for row in rows]


def refuse_flagged(model: str, version: int, flagged: bool, parity: dict[str, Any],
                   force: bool) -> None:
    if flagged and not force:
        detail = ", ".join(f"{k} {v}" for k, v in parity.items()
                           if k in ("label_agreement", "max_abs_diff"))
        raise DeployRefused(
            f"{model}@{version} failed its parity check ({detail or 'flagged'}): "
            "ONNX and the trained model disagree; use --force to deploy it anyway")
