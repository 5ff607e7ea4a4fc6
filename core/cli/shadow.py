"""`outpost shadow`: challengers run in shadow on the devices, from pulled telemetry."""
from __future__ import annotations

from typing import Annotated

import typer

from core.cli.common import JsonFlag, console, emit, open_catalog, table
from core.shadow import shadow_report

app = typer.Typer(help="Shadow challengers: agreement with the champion on the devices.",
                  no_args_is_help=True)


@app.command()
def report(
    name: Annotated[str, typer.Argument(help="Model name.")],
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Agreement rate, divergence per class and challenger latency, per agent."""
    with open_catalog() as catalog:
        doc = shadow_report(catalog, name, agent)

    def render() -> None:
        if not doc["agents"]:
            console.print(f"no shadow telemetry for {name} (pull telemetry first)")
            return
        console.print(table(f"shadow of {name}", (
            "agent", "champion", "challenger", "requests", "agreement", "dropped", "timeouts",
            "errors", "mean ms", "p99 ms", "divergence"), [
            [a["agent"], a["version"], a["challenger"], a["requests"], a["agreement"],
             a["dropped"], a["timeouts"], a["errors"], a["latency_mean_ms"],
             a["latency_p99_ms"], ", ".join(f"{k}: {v}" for k, v in a["divergence"].items())]
            for a in doc["agents"]]))

    emit(doc, as_json, render)
