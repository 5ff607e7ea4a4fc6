"""What can go wrong talking to an agent, each as one line for the user."""
from __future__ import annotations

from core.errors import InvalidInput, NotFound, OutpostError


class AgentNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no agent named {name!r} (see `outpost agent list`)")


class AgentUnreachable(OutpostError):
    """Connection refused, timed out, or the agent's address does not resolve."""


class AgentAuthFailed(OutpostError):
    """The agent answered 401/403: the token is wrong."""


class AgentIdentityMismatch(OutpostError):
    """The agent does not prove the identity key pinned when it was enrolled."""


class AgentPinMismatch(AgentIdentityMismatch):
    """The TLS certificate at the agent's address is not the pinned one (nothing was sent)."""


class AgentRefused(OutpostError):
    """The agent answered with a 4xx/5xx and a reason."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class TransferFailed(OutpostError):
    """The connection broke while a bundle or telemetry was in flight."""


class DeployRefused(InvalidInput):
    """The desktop refuses to deploy: flagged version, incompatible opset, ..."""
