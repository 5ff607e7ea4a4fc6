"""`outpost keys`: the desktop's bundle-signing key."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.cli.common import JsonFlag, console, emit, open_catalog, table
from core.fleet.rotation import rotate_keys
from core.keys import key_info, write_public_key_file

app = typer.Typer(help="The desktop's bundle-signing key: show it, hand it to agents, rotate it.",
                  no_args_is_help=True)


@app.command()
def show(
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the public key file that `outpost-agent serve --trust-key` reads."
    )] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the signing key's fingerprint and public key (made on first use)."""
    with open_catalog() as catalog:
        info = key_info(catalog)
        written = write_public_key_file(catalog, out) if out is not None else None
    data = {"fingerprint": info.fingerprint, "public_key": info.public_key,
            "rotation": info.rotation, "path": str(info.path),
            "out": str(written) if written else None}

    def render() -> None:
        console.print(f"fingerprint: {info.fingerprint}\npublic key:  outpost-ed25519 "
                      f"{info.public_key}\nrotation:    {info.rotation}")
        if written:
            console.print(f"wrote {written}")

    emit(data, as_json, render)


@app.command()
def rotate(as_json: JsonFlag = False) -> None:
    """Make a new signing key and move every enrolled agent onto it.

    Agents that cannot be reached now get the rotation before their next deploy."""
    with open_catalog() as catalog:
        rotation, outcomes = rotate_keys(catalog)
    data = {"rotation": rotation.rotation, "old_fingerprint": rotation.old_fingerprint,
            "new_fingerprint": rotation.new_fingerprint,
            "agents": [o.to_dict() for o in outcomes]}

    def render() -> None:
        console.print(f"rotation {rotation.rotation}: {rotation.old_fingerprint} -> "
                      f"{rotation.new_fingerprint}")
        if outcomes:
            console.print(table(None, ["agent", "moved", "why not"], [
                (o.agent, "yes" if o.ok else "on next deploy", o.error) for o in outcomes]))

    emit(data, as_json, render)
