"""The hub's TLS key (0600) and self-signed certificate: enrolment files carry its key's
hash, which hub-mode agents pin."""
from __future__ import annotations

from core.config import Settings
from core.errors import OutpostError
from edge_agent.contract.errors import AgentError
from edge_agent.contract.tls import ServerCert, load_or_create_cert


def hub_certificate(settings: Settings) -> ServerCert:
    """Created on first use under $OUTPOST_HOME/keys/hub-tls."""
    try:
        settings.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return load_or_create_cert(settings.hub_tls_dir, "outpost-hub")
    except (OSError, AgentError) as exc:
        raise OutpostError(f"hub TLS certificate in {settings.hub_tls_dir}: {exc}") from exc
