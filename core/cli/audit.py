"""`outpost audit`: which model ran where at time T, and the proof of it."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from core.cli.common import JsonFlag, console, emit, open_catalog, print_json, table

app = typer.Typer(help="Audit trail: what served where and when, the log, its proof.",
                  no_args_is_help=True)


@app.command()
def at(
    agent: Annotated[str, typer.Argument(help="Agent name.")],
    time: Annotated[str, typer.Argument(help="ISO 8601 time with timezone, e.g. "
                                              "2026-06-01T12:00:00Z.")],
    model: Annotated[str | None, typer.Option("--model", help="One model.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """What the agent was serving at TIME, from the desktop's records and the agent's own."""
    from core.audit.query import parse_time, serving_at

    when = parse_time(time)
    with open_catalog() as catalog:
        data = serving_at(catalog, agent, when, model)

    def render() -> None:
        if not data["models"]:
            console.print(f"{agent} served nothing at {data['at']} (no record of a deployment)")
        for m in data["models"]:
            ev = m["evidence"]
            seen = ev["agent"]["version"] if ev["agent"] else "-"
            console.print(f"{agent} served {m['model']}@{m['version']} since {m['since']} "
                          f"(event {m['deployed_by_event']}; agent says {seen}; "
                          f"bundle {m['sha256'] or '-'})")
        if data["clock_skew"]:
            console.print(f"agent clock went backwards {len(data['clock_skew'])} time(s)")

    emit(data, as_json, render)


@app.command()
def log(
    model: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO 8601 time with timezone.")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """The audit log, oldest first."""
    from core.audit.query import audit_log, parse_time, rejected_count

    start = parse_time(since) if since else None
    with open_catalog() as catalog:
        entries = audit_log(catalog, model=model, agent=agent, since=start)
        rejected = rejected_count(catalog, agent)
    data = {"entries": [e.to_dict() for e in entries], "rejected_agent_events": rejected}
    emit(data, as_json, lambda: console.print(table("audit log", [
        "#", "at", "kind", "actor", "agent", "model", "version", "detail"], [
        (e.position, e.at, e.kind, e.actor, e.agent or "", e.model or "",
         "" if e.version is None else e.version,
         ", ".join(f"{k}={v}" for k, v in e.detail.items() if v is not None))
        for e in entries])))


@app.command()
def verify(
    file: Annotated[Path | None, typer.Argument(
        help="An evidence pack from `outpost audit export` (default: the catalog).")] = None,
    key: Annotated[Path | None, typer.Option(
        "--key", help="Public key file (`outpost keys show --out`) the pack must be "
                      "signed by.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check every entry's hash chain and agent signatures; fail naming the first bad one."""
    from core.audit.pack import verify_pack
    from core.audit.query import verify_catalog

    if file is not None:
        from core.errors import InvalidInput
        from edge_agent.contract.errors import KeyFileError
        from edge_agent.contract.protocol import load_public_key

        try:
            expected = load_public_key(key) if key else None
        except KeyFileError as exc:
            raise InvalidInput(f"--key: {exc}") from exc
        check = verify_pack(file, expected)
    else:
        with open_catalog() as catalog:
            check = verify_catalog(catalog)
    data = {**check.to_dict(), "source": str(file) if file else "catalog"}
    if as_json:
        print_json(data)
    elif check.ok:
        console.print(f"audit chain OK: {check.entries} entries, head {check.head}")
    if not check.ok:
        print(f"error: audit chain broken at entry {check.bad_position}: {check.reason}",
              file=sys.stderr)
        raise typer.Exit(1)


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="Evidence pack file to write.")],
    as_json: JsonFlag = False,
) -> None:
    """Write a signed evidence pack that `outpost audit verify FILE` checks anywhere."""
    from core.audit.pack import export_pack

    with open_catalog() as catalog:
        data = export_pack(catalog, out)
    emit(data, as_json, lambda: console.print(
        f"wrote {data['entries']} entries to {data['path']} (head {data['head']}, "
        f"signed by {data['fingerprint']})"))
