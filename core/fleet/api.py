"""The fleet in one import for the GUI: enrolled agents, deployments, the local agent,
bundles, and the telemetry, drift and alerts that come back.

(Kept out of ``core/fleet/__init__.py`` so that the CLI, which needs only a few of
these, does not pay for importing the registry and scikit-learn at start-up.)"""
from core.alerts import Alert, list_alerts
from core.bundles import BuiltBundle, build_bundle
from core.drift import DriftReport, FeatureDrift, Thresholds, drift_matrix, drift_report
from core.fleet.agents import (
    AgentRecord,
    AgentStatus,
    add_agent,
    agent_status,
    fleet_status,
    get_agent,
    list_agents,
)
from core.fleet.deploy import Deployment, DeployResult, deploy, list_deployments, rollback
from core.fleet.errors import (
    AgentAuthFailed,
    AgentIdentityMismatch,
    AgentNotFound,
    AgentRefused,
    AgentUnreachable,
    DeployRefused,
    TransferFailed,
)
from core.fleet.local import LOCAL_AGENT, LocalAgent, start_local_agent, stop_local_agent
from core.fleet.rotation import rotate_keys
from core.telemetry.ingest import IngestResult, import_telemetry
from core.telemetry.pull import PullResult, pull_telemetry
from core.telemetry.series import RequestStats, SeriesPoint, request_series, request_stats

__all__ = [
    "LOCAL_AGENT", "AgentAuthFailed", "AgentIdentityMismatch", "AgentNotFound", "AgentRecord",
    "AgentRefused", "AgentStatus", "AgentUnreachable", "Alert", "BuiltBundle", "DeployRefused",
    "DeployResult", "Deployment", "DriftReport", "FeatureDrift", "IngestResult", "LocalAgent",
    "PullResult", "RequestStats", "SeriesPoint", "Thresholds", "TransferFailed", "add_agent",
    "agent_status", "build_bundle", "deploy", "drift_matrix", "drift_report", "fleet_status",
    "get_agent", "import_telemetry", "list_agents", "list_alerts", "list_deployments",
    "pull_telemetry", "request_series", "request_stats", "rollback", "rotate_keys",
    "start_local_agent", "stop_local_agent",
]
