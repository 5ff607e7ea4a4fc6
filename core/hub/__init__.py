"""Device-initiated mode: the hub where agents behind NAT fetch their desired state and
bundles and post telemetry (see docs/hub.md). The GUI and CLI use the names below.

They load on first use: `agent status` and `deploy` read a hub agent's contacts and
desired state (core.hub.contacts, core.hub.desired) without the server and uvicorn.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from core.hub.app import HubApp, HubOptions
    from core.hub.enrolment import HUB_MODE, enroll_agent, revoke_agent, write_enrolment
    from core.hub.server import HubHandle, HubStartFailed, start_hub

DEFAULT_PORT = 8700  # here, not in core.hub.server: reading it must not import uvicorn

_HOMES = {
    "HubApp": "app", "HubOptions": "app", "HUB_MODE": "enrolment", "enroll_agent": "enrolment",
    "revoke_agent": "enrolment", "write_enrolment": "enrolment",
    "HubHandle": "server", "HubStartFailed": "server", "start_hub": "server",
}
__all__ = [
    "DEFAULT_PORT", "HUB_MODE", "HubApp", "HubHandle", "HubOptions", "HubStartFailed",
    "enroll_agent", "revoke_agent", "start_hub", "write_enrolment",
]

__getattr__ = lazy_exports(__name__, _HOMES)
