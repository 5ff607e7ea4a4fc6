"""Device-initiated mode: the hub where agents behind NAT fetch their desired state and
bundles and post telemetry (see docs/hub.md). The GUI and CLI use the names below."""
from core.hub.app import HubApp, HubOptions
from core.hub.enrolment import HUB_MODE, enroll_agent, revoke_agent, write_enrolment
from core.hub.server import DEFAULT_PORT, HubHandle, HubStartFailed, start_hub

__all__ = [
    "DEFAULT_PORT", "HUB_MODE", "HubApp", "HubHandle", "HubOptions", "HubStartFailed",
    "enroll_agent", "revoke_agent", "start_hub", "write_enrolment",
]
