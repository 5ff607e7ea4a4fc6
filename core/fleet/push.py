"""Push mode: the desktop sends a bundle (or a rollback) to a reachable agent and records
the outcome in the ledger.

The deployment row is written before the push ('pending') and finished after it
('active', 'installed' or 'failed' with the reason), so a push cut off midway
leaves a failure on record and the agent — which installs only a complete,
verified bundle — keeps serving what it served.
"""
from __future__ import annotations

from pathlib import Path

from core.catalog import Catalog
from core.errors import Cancelled, OutpostError
from core.fleet.agents import connect
from core.fleet.checks import check_opset
from core.fleet.client import AgentClient
from core.fleet.errors import AgentRefused
from core.fleet.ledger import DeployResult, DeployStatus, finish_deployment, start_deployment
from core.fleet.records import AgentRecord, StatusReport
from core.fleet.rotation import catch_up_rotations
from core.progress import CancelToken, ProgressFn, check, report
from core.registry.models import ModelVersion


def push_bundle(catalog: Catalog, record: AgentRecord, client: AgentClient, bundle: Path, *,
                model: str, version: int, bundle_sha: str | None = None,
                activate: bool = True, allow_downgrade: bool = False) -> DeployResult:
    """Push a built bundle over a verified connection and record the outcome."""
    catch_up_rotations(catalog, record, client)
    deployment = start_deployment(catalog, record.name, model, version, "deploy", bundle_sha)
    try:
        answer = client.push_bundle(bundle, activate=activate, allow_rollback=allow_downgrade)
    except OutpostError as exc:
        finish_deployment(catalog, deployment, "failed", str(exc))
        raise
    except BaseException as exc:  # interrupted: still no half-recorded deployment
        finish_deployment(catalog, deployment, "failed", f"interrupted: {type(exc).__name__}")
        raise
    status: DeployStatus = "active" if answer.get("status") == "active" else "installed"
    finish_deployment(catalog, deployment, status)
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
            check_opset(agent, StatusReport.from_doc(client.status()), model, opset)
        report(progress, f"pushing {model}@{version} to {agent}", 1, 3)
        result = push_bundle(catalog, record, client, bundle, model=model, version=version,
                             bundle_sha=bundle_sha, activate=activate,
                             allow_downgrade=allow_downgrade)
    report(progress, f"pushing {model}@{version} to {agent}", 3, 3)
    return result


def deploy_by_push(catalog: Catalog, mv: ModelVersion, agent: str, *,
                   allow_downgrade: bool = False, progress: ProgressFn | None = None,
                   cancel: CancelToken | None = None, challenger: str | None = None,
                   shadow_share: float = 0.5) -> DeployResult:
    """Check the agent can load `mv`'s opsets, build (or reuse) its bundle, push it.
    With `challenger`, the bundle carries it for shadow runs (core.bundles)."""
    from core.bundles import build_bundle

    report(progress, f"deploy {mv.ref} to {agent}", 0, 3)
    pushing = False
    try:
        with connect(catalog, agent) as (record, client):
            check_opset(agent, StatusReport.from_doc(client.status()), mv.model, mv.opset)
            built = build_bundle(catalog, mv.ref, cancel=cancel, challenger=challenger,
                                 shadow_share=shadow_share)
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
            finish_deployment(catalog, start_deployment(catalog, agent, mv.model, mv.version,
                                                        "deploy", None), "failed", str(exc))
        raise
    report(progress, f"deploy {mv.ref} to {agent}", 3, 3)
    return result


def rollback_by_push(catalog: Catalog, model: str, agent: str) -> DeployResult:
    """Make the agent serve the version it served before; recorded like a deployment."""
    with connect(catalog, agent) as (record, client):
        deployment = start_deployment(catalog, record.name, model, 0, "rollback", None)
        try:
            answer = client.rollback(model)
        except AgentRefused as exc:
            reason = str(exc)
            if exc.status in (404, 409):
                reason = f"agent {agent} has no previous version of {model} to roll back to " \
                         f"({str(exc).split('refused: ', 1)[-1]})"
            finish_deployment(catalog, deployment, "failed", reason)
            raise AgentRefused(reason, exc.status) from exc
        except OutpostError as exc:
            finish_deployment(catalog, deployment, "failed", str(exc))
            raise
        version = int(answer.get("active", 0))
        finish_deployment(catalog, deployment, "active", version=version)
    return DeployResult(agent, model, version, "rolled_back", deployment)
