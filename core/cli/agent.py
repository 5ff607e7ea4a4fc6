"""`outpost agent`: enrol agents, list them, poll their status, run the local one."""
from __future__ import annotations

from typing import Annotated

import typer

from core.cli.common import JsonFlag, console, emit, open_catalog, table
from core.fleet.agents import add_agent
from core.fleet.client import Identity
from core.fleet.dispatch import agent_status, fleet_status
from core.fleet.local import start_local_agent, stop_local_agent
from core.fleet.records import list_agents
from edge_agent.contract.tls import short

app = typer.Typer(help="Edge agents: enrol, list, status, and the local agent.",
                  no_args_is_help=True)
local_app = typer.Typer(help="The local agent on loopback (the embedded default).",
                        no_args_is_help=True)
app.add_typer(local_app, name="local")


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="Name for the agent in this catalog.")],
    url: Annotated[str, typer.Argument(
        help="The agent's address, e.g. https://10.0.0.5:8080 (its TLS key is pinned)")],
    token: Annotated[str, typer.Option("--token", help="The agent's management token.")],
    replace: Annotated[bool, typer.Option(
        "--replace", help="Re-enrol an agent of this name (pins the key it presents now).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Enrol an agent: reach it, make it prove its identity key, and pin that key."""
    with open_catalog() as catalog:
        record = add_agent(catalog, name, url, token, replace=replace)
    fingerprint = Identity(record.agent_id, record.public_key).fingerprint
    data = {"agent": record.name, "url": record.url, "agent_id": record.agent_id,
            "fingerprint": fingerprint, "mode": record.mode, "tls_spki_sha256": record.tls_spki}
    pin = f", TLS key {short(record.tls_spki)}" if record.tls_spki else ", plain HTTP"
    emit(data, as_json, lambda: console.print(
        f"enrolled {record.name} at {record.url} (agent {record.agent_id}, key "
        f"{fingerprint}{pin})"))


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List enrolled agents (from the catalog; no network)."""
    with open_catalog() as catalog:
        agents = list_agents(catalog)
    data = {"agents": [{"agent": a.name, "url": a.url, "mode": a.mode, "agent_id": a.agent_id,
                        "last_seen_at": a.last_seen_at, "last_error": a.last_error,
                        "tls_spki_sha256": a.tls_spki, "pin_failed_at": a.pin_failed_at}
                       for a in agents]}
    emit(data, as_json, lambda: console.print(table("agents", [
        "agent", "url", "mode", "TLS key", "last seen", "last error"], [
        (a.name, a.url, a.mode, (short(a.tls_spki) if a.tls_spki else "-")
         + (" PIN FAILED" if a.pin_failed_at else ""),
         a.last_seen_at and a.last_seen_at.isoformat(timespec="seconds"),
         a.last_error) for a in agents])))


@app.command()
def status(
    name: Annotated[str | None, typer.Argument(help="One agent (default: all).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Poll agents: online, active models, runtime versions, telemetry backlog."""
    with open_catalog() as catalog:
        found = [agent_status(catalog, name)] if name else fleet_status(catalog)
    data = found[0].to_dict() if name else {"agents": [s.to_dict() for s in found]}

    def render() -> None:
        rows = []
        for s in found:
            models = ", ".join(f"{m.get('name')}@{m.get('active')}" for m in s.models) or "-"
            errors = [s.error, *(f"capture of {m} refused: {why}"
                                 for m, why in sorted(s.capture_refused.items()))]
            rows.append((s.agent, "online" if s.online else "offline", s.mode, models,
                         s.runtime.get("onnxruntime"), s.backlog, s.telemetry_rows,
                         "; ".join(e for e in errors if e) or None))
        console.print(table("agent status", ["agent", "state", "mode", "models", "onnxruntime",
                                             "backlog", "telemetry rows", "error"], rows))

    emit(data, as_json, render)


@local_app.command("start")
def local_start(
    port: Annotated[int | None, typer.Option("--port", help="Port (default: a free one).")] = None,
    window_s: Annotated[float | None, typer.Option(
        "--window-s", help="Histogram window length in seconds (agent default 60).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start the local agent in the background and enrol it as "local"."""
    with open_catalog() as catalog:
        agent = start_local_agent(catalog, port=port, window_s=window_s)
    verb = "started" if agent.started else "already running"
    emit(agent.to_dict(), as_json, lambda: console.print(
        f"local agent {verb} at {agent.url} (pid {agent.pid}, folder {agent.dir})"))


@local_app.command("stop")
def local_stop(as_json: JsonFlag = False) -> None:
    """Stop the local agent (SIGTERM; it finishes its telemetry first)."""
    with open_catalog() as catalog:
        stopped = stop_local_agent(catalog)
    emit({"stopped": stopped}, as_json, lambda: console.print(
        "local agent stopped" if stopped else "local agent was not running"))


@app.command()
def capture(
    name: Annotated[str, typer.Argument(help="Agent name.")],
    model: Annotated[str, typer.Argument(help="Deployed model name.")],
    share: Annotated[float | None, typer.Option(
        "--share", help="Random share of rows to capture, 0..1.")] = None,
    confidence_below: Annotated[float | None, typer.Option(
        "--confidence-below", help="Capture rows whose top probability is below this.")] = None,
    per_class_cap: Annotated[int | None, typer.Option(
        "--per-class-cap", help="At most this many captures per predicted class per "
                                "telemetry window.")] = None,
    while_drift: Annotated[bool, typer.Option(
        "--while-drift", help="Capture every row while drift is alerted: the agent tests "
                              "each closed histogram window against the baseline.")] = False,
    drift_alerted: Annotated[bool, typer.Option(
        "--drift-alerted", help="Tell the agent drift is alerted now.")] = False,
    drift_psi: Annotated[float | None, typer.Option(
        "--drift-psi", help="With --while-drift: PSI of a closed window (any feature) at "
                            "which the agent switches capture-all on by itself (default: "
                            "the desktop's alert threshold, OUTPOST_PSI_ALERT).")] = None,
    drift_min_rows: Annotated[int | None, typer.Option(
        "--drift-min-rows", help="With --while-drift: smaller windows do not switch (50).")
    ] = None,
    clear: Annotated[bool, typer.Option(
        "--clear", help="Drop the override: the bundle's policy applies again.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Set which answered rows an agent captures for a model (sample capture)."""
    from core.fleet.capture import capture_policy
    from core.fleet.dispatch import set_capture

    policy = None if clear else capture_policy(
        share=share, confidence_below=confidence_below, per_class_cap=per_class_cap,
        while_drift=while_drift, drift_alerted=drift_alerted, drift_psi=drift_psi,
        drift_min_rows=drift_min_rows)
    with open_catalog() as catalog:
        answer = set_capture(catalog, name, model, policy)
    data = {"agent": name, "model": model, "policy": answer.get("policy"),
            "status": answer.get("status", "set")}  # pending: a hub agent's next poll
    emit(data, as_json, lambda: console.print(f"capture policy of {model} on {name}: "
                                              f"{data['policy'] or 'from the bundle'}"))
