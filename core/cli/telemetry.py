"""`outpost telemetry`: bring agents' telemetry into the catalog."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.cli.common import JsonFlag, console, emit, open_catalog, progress_bar, table
from core.cli.session import cancel_token
from core.feedback.captured import captured_summary, refresh_all_captured
from core.policy.retrain import check_after_ingest, outcome_doc, outcome_lines

app = typer.Typer(help="Telemetry: pull from agents, import exported files.",
                  no_args_is_help=True)


@app.command()
def pull(
    agent: Annotated[str | None, typer.Option("--agent", help="One agent (default: all).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Pull new telemetry from agents (resumable; each record stored exactly once)."""
    from core.telemetry.pull import pull_telemetry  # httpx and pyarrow: this command only

    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        results = pull_telemetry(catalog, agent, progress=progress, cancel=cancel_token())
        captured = refresh_all_captured(catalog)
        decided, retrained = check_after_ingest(catalog, "pull", progress=progress,
                                                cancel=cancel_token())
    data = {"agents": [r.to_dict() for r in results],
            "captured": [captured_summary(c) for c in captured],
            "policy": outcome_doc(decided, retrained)}

    def render() -> None:
        console.print(table("telemetry pulled", [
            "agent", "rows", "requests", "histograms", "cursor", "error"], [
            (r.agent, r.rows, r.requests, r.histograms, r.last_seq, r.error) for r in results]))
        for line in outcome_lines(decided, retrained):
            console.print(line)

    emit(data, as_json, render)
    if results and all(r.error for r in results):
        raise typer.Exit(1)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="File written by `outpost-agent export-telemetry`.")],
    as_json: JsonFlag = False,
) -> None:
    """Import an agent's exported telemetry file (importing it again adds nothing)."""
    from core.telemetry.ingest import import_telemetry  # pyarrow: this command only

    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        result = import_telemetry(catalog, file)
        captured = refresh_all_captured(catalog)
        decided, retrained = check_after_ingest(catalog, "import", progress=progress,
                                                cancel=cancel_token())
    data = {"agent": result.agent, "rows": result.rows, "requests": result.requests,
            "histograms": result.histograms, "evicted": result.evicted,
            "last_seq": result.last_seq, "captured": [captured_summary(c) for c in captured],
            "policy": outcome_doc(decided, retrained)}

    def render() -> None:
        console.print(f"imported {result.rows} new records from agent {result.agent} "
                      f"({result.requests} requests, {result.histograms} histogram windows)")
        for line in outcome_lines(decided, retrained):
            console.print(line)

    emit(data, as_json, render)
