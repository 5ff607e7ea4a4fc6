"""The fleet operations the CLI and GUI call, each sent the agent's way: a push agent is
called now (:mod:`core.fleet.agents`, :mod:`core.fleet.push`); a hub agent cannot be
called, so its status is its last poll and a deploy is recorded for its next one
(:mod:`core.hub.contacts`, :mod:`core.hub.desired`).

The only module that knows both ways; neither way imports it (an import-linter contract).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from core.catalog import Catalog
from core.errors import OutpostError
from core.fleet.agents import connect, poll_agent
from core.fleet.capture import set_capture_by_push
from core.fleet.checks import check_opset, describe_opsets, refuse_flagged
from core.fleet.errors import DeployRefused
from core.fleet.ledger import DeployResult
from core.fleet.push import deploy_by_push, rollback_by_push
from core.fleet.records import AgentStatus, StatusReport, get_agent, last_status, list_agents
from core.hub.contacts import hub_agent_status
from core.hub.desired import deploy_via_hub, rollback_via_hub, set_capture_via_hub
from core.progress import CancelToken, ProgressFn
from edge_agent.contract.capture import CapturePolicy


def agent_status(catalog: Catalog, name: str) -> AgentStatus:
    """One agent: online or not, what it serves, its runtime and outbox backlog."""
    record = get_agent(catalog, name)
    if record.mode == "hub":  # it calls the hub: its status is what it said last
        return hub_agent_status(catalog, record)
    return poll_agent(catalog, record)


def fleet_status(catalog: Catalog) -> list[AgentStatus]:
    """Every agent's status, polled in parallel so a silent one costs one timeout, not many."""
    names = [a.name for a in list_agents(catalog)]
    if not names:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        return list(pool.map(lambda name: agent_status(catalog, name), names))


def deploy(catalog: Catalog, ref: str, agent: str, *, force: bool = False,
           allow_downgrade: bool = False, progress: ProgressFn | None = None,
           cancel: CancelToken | None = None, challenger: str | None = None,
           shadow_share: float = 0.5) -> DeployResult:
    """Deploy model version `ref` (M@V or M@ALIAS) to `agent`: refuse a parity-flagged
    version unless forced, check the agent can load its opsets, build (or reuse) the
    signed bundle, push it (or record it for a hub agent's next poll)."""
    from core.registry import resolve_model

    mv = resolve_model(catalog, ref)
    refuse_flagged(mv.model, mv.version, mv.flagged, mv.parity, force)
    if (record := get_agent(catalog, agent)).mode == "hub":
        return deploy_via_hub(catalog, mv, record, allow_downgrade=allow_downgrade,
                              progress=progress, cancel=cancel, challenger=challenger,
                              shadow_share=shadow_share)
    return deploy_by_push(catalog, mv, agent, allow_downgrade=allow_downgrade,
                          progress=progress, cancel=cancel, challenger=challenger,
                          shadow_share=shadow_share)


def rollback(catalog: Catalog, model: str, agent: str) -> DeployResult:
    """Make the agent serve the version it served before; recorded like a deployment."""
    if (record := get_agent(catalog, agent)).mode == "hub":  # recorded, done on poll
        return rollback_via_hub(catalog, model, record)
    return rollback_by_push(catalog, model, agent)


def set_capture(catalog: Catalog, agent: str, model: str,
                policy: CapturePolicy | None) -> dict[str, Any]:
    """Set the model's sample-capture policy on the agent (None: the bundle's again): sent
    now to a push agent, carried by the next (signed) poll answer to a hub agent."""
    if (record := get_agent(catalog, agent)).mode == "hub":
        return set_capture_via_hub(catalog, record, model,
                                   None if policy is None else policy.to_dict())
    return set_capture_by_push(catalog, agent, model, policy)


@dataclass(frozen=True)
class Compatibility:
    ok: bool
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "text": self.text}


def check_compatibility(catalog: Catalog, ref: str, agent: str) -> Compatibility:
    """Can `agent`'s onnxruntime load `ref`'s opsets? Asks a push agent now, reads a hub
    agent's last poll; changes nothing."""
    from core.registry import resolve_model

    mv = resolve_model(catalog, ref)
    try:
        if get_agent(catalog, agent).mode == "hub":
            report = last_status(catalog, agent)
            if report is None or not report.opset_max:
                raise DeployRefused(f"agent {agent} has not reported its runtime yet: it "
                                    "checks the opsets itself when it installs")
        else:
            with connect(catalog, agent) as (_, client):
                report = StatusReport.from_doc(client.status())
        check_opset(agent, report, mv.model, mv.opset)
    except OutpostError as exc:
        return Compatibility(False, str(exc))
    have = report.opset_max
    top = have.get("ai.onnx", have.get("", "?"))
    return Compatibility(True, f"Compatible: {mv.ref} needs opset {describe_opsets(mv.opset)}; "
                               f"{agent} runs onnxruntime {report.onnxruntime} "
                               f"(ai.onnx up to {top}).")
