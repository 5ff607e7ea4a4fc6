"""Device-initiated mode: the hub where agents behind NAT fetch their desired state and
bundles and post telemetry (see docs/hub.md). The GUI and CLI use the names below."""
from core.hub.app import HubApp, HubOptions
from core.hub.contacts import hub_agent_status
from core.hub.desired import deploy_via_hub, rollback_via_hub
from core.hub.enrolment import HUB_MODE, enroll_agent, revoke_agent, write_enrolment
from core.hub.server import DEFAULT_PORT, HubHandle, HubStartFailed, start_hub

__all__ = [
    "DEFAULT_PORT", "HUB_MODE", "HubApp", "HubHandle", "HubOptions", "HubStartFailed",
    "deploy_via_hub", "enroll_agent", "hub_agent_status", "revoke_agent", "rollback_via_hub",
    "start_hub", "write_enrolment",
]
