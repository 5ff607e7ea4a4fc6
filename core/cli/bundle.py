"""`outpost bundle`: signed bundle files for USB sticks and drop folders."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.cli.common import JsonFlag, console, emit, open_catalog, progress_bar
from core.cli.session import cancel_token

app = typer.Typer(help="Signed model bundles (NAME-VERSION.outpost).", no_args_is_help=True)


@app.command()
def build(
    ref: Annotated[str, typer.Argument(help="M@VERSION or M@ALIAS.")],
    out: Annotated[Path, typer.Option("--out", help="File (or folder) to write.")],
    challenger: Annotated[str | None, typer.Option(
        "--challenger", help="M@V2: also carry this version, run in shadow on the agent.")
    ] = None,
    shadow_share: Annotated[float, typer.Option(
        "--shadow-share", help="Share of requests the challenger runs on (0-1].")] = 0.5,
    as_json: JsonFlag = False,
) -> None:
    """Build the signed bundle of a model version (model, baseline, canary, manifest)."""
    from core.bundles import build_bundle  # the registry imports scikit-learn: only when used

    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        built = build_bundle(catalog, ref, out, progress=progress, cancel=cancel_token(),
                             challenger=challenger, shadow_share=shadow_share)
    emit(built.to_dict(), as_json, lambda: console.print(
        f"wrote {built.path} ({built.model}@{built.version}, signed by key {built.key_id})"))
