"""Worker-side calls into the fleet, telemetry and drift modules.

Those modules load httpx, cryptography, onnxruntime and pandas (about a second together
on a laptop), so each call imports what it needs when it first runs, in a worker: the
window opens without them and the UI thread never waits on their import.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.catalog import Catalog
from core.progress import CancelToken, ProgressFn

if TYPE_CHECKING:
    from core.bundles import BuiltBundle
    from core.feature_distribution import FeatureDistribution
    from core.feedback import FeedbackImport
    from core.fleet.dispatch import Compatibility
    from core.fleet.ledger import Deployment, DeployResult
    from core.fleet.local import LocalAgent
    from core.fleet.records import AgentRecord, AgentStatus
    from core.telemetry.ingest import IngestResult


def list_agents(catalog: Catalog) -> list[AgentRecord]:
    from core.fleet.records import list_agents

    return list_agents(catalog)


def fleet_status(catalog: Catalog) -> list[AgentStatus]:
    from core.fleet.dispatch import fleet_status

    return fleet_status(catalog)


def add_agent(catalog: Catalog, name: str, url: str, token: str) -> AgentRecord:
    from core.fleet.agents import add_agent

    return add_agent(catalog, name, url, token)


def list_deployments(catalog: Catalog, agent: str) -> list[Deployment]:
    from core.fleet.ledger import list_deployments

    return list_deployments(catalog, agent=agent)


def start_local_agent(catalog: Catalog, window_s: float | None) -> LocalAgent:
    from core.fleet.local import start_local_agent

    return start_local_agent(catalog, window_s=window_s)


def stop_local_agent(catalog: Catalog) -> bool:
    from core.fleet.local import stop_local_agent

    return stop_local_agent(catalog)


def deploy(catalog: Catalog, ref: str, agent: str, force: bool, progress: ProgressFn,
           cancel: CancelToken) -> DeployResult:
    from core.fleet.dispatch import deploy

    return deploy(catalog, ref, agent, force=force, progress=progress, cancel=cancel)


def rollback(catalog: Catalog, model: str, agent: str) -> DeployResult:
    from core.fleet.dispatch import rollback

    return rollback(catalog, model, agent)


def set_capture(catalog: Catalog, agent: str, model: str,
                fields: dict[str, Any] | None) -> dict[str, Any]:
    """`outpost agent capture`: check the fields (None: clear, the bundle's policy again),
    then send them to a push agent or record them for a hub agent's next poll."""
    from core.fleet.capture import capture_policy
    from core.fleet.dispatch import set_capture

    return set_capture(catalog, agent, model, None if fields is None else capture_policy(
        **fields))


def save_bundle(catalog: Catalog, ref: str, out: Path, progress: ProgressFn,
                cancel: CancelToken) -> BuiltBundle:
    from core.bundles import build_bundle

    return build_bundle(catalog, ref, out, progress=progress, cancel=cancel)


def import_telemetry(catalog: Catalog, path: Path, progress: ProgressFn | None = None,
                     cancel: CancelToken | None = None) -> tuple[IngestResult, list[str]]:
    """The file's records, then the retraining policies' turn (as after a pull): the
    result and what the policies said."""
    from core.policy.retrain import check_after_ingest, outcome_lines
    from core.telemetry.ingest import import_telemetry

    result = import_telemetry(catalog, path)
    return result, outcome_lines(*check_after_ingest(catalog, "import", progress=progress,
                                                     cancel=cancel))


def feature_distribution(catalog: Catalog, model: str, version: int, feature: str,
                         agent: str | None, since: float | None,
                         until: float | None) -> FeatureDistribution:
    from core.feature_distribution import feature_distribution

    return feature_distribution(catalog, model, version, feature, agent=agent, since=since,
                                until=until)


def check_compatibility(catalog: Catalog, ref: str, agent: str) -> Compatibility:
    from core.fleet.dispatch import check_compatibility

    return check_compatibility(catalog, ref, agent)


def import_feedback(catalog: Catalog, path: Path, model: str,
                    progress: ProgressFn | None = None) -> FeedbackImport:
    from core.feedback import import_feedback, refresh_captured

    result = import_feedback(catalog, path, model, progress=progress)
    refresh_captured(catalog, model)
    return result
