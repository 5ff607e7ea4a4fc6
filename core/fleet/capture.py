"""Setting a deployed model's sample-capture policy on an agent from the desktop."""
from __future__ import annotations

from typing import Any

from core.catalog import Catalog
from core.errors import InvalidInput
from core.fleet.agents import connect
from core.fleet.errors import AgentUnreachable
from edge_agent.contract.capture import CapturePolicy
from edge_agent.contract.errors import SchemaError


def capture_policy(**fields: Any) -> CapturePolicy:
    """A checked policy from keyword fields (None: the default); one-line InvalidInput
    when a value is wrong. With `while_drift` and no `drift_psi`, the agent alerts where
    the desktop would: at its PSI alert threshold (OUTPOST_PSI_ALERT)."""
    given = {k: v for k, v in fields.items() if v is not None}
    if given.get("while_drift") and "drift_psi" not in given:
        from core.drift import Thresholds

        given["drift_psi"] = Thresholds.from_env().psi_alert
    try:
        return CapturePolicy.from_dict(given)
    except SchemaError as exc:
        raise InvalidInput(str(exc)) from exc


def set_capture_by_push(catalog: Catalog, agent: str, model: str, policy: CapturePolicy | None
                ) -> dict[str, Any]:
    """Send the policy (None: back to the bundle's) to a push agent; returns its answer.
    Hub agents get theirs with their next poll: `core.fleet.dispatch.set_capture`."""
    try:
        with connect(catalog, agent) as (_, client):
            return client.set_capture(model, None if policy is None else policy.to_dict())
    except AgentUnreachable as exc:
        raise AgentUnreachable(f"{exc} — the capture policy of {model} was not changed "
                               "(the agent must be online to take it)") from exc
