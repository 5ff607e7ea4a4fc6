"""`outpost pipeline run FILE.toml`: a headless import → train → gate → deploy run."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core.cli.common import JsonFlag, console, err_console, open_catalog, print_json
from core.errors import OutpostError

if TYPE_CHECKING:
    from core.pipeline import StepResult

app = typer.Typer(help="Pipelines: import, derive, train, gate, register, alias, deploy.",
                  no_args_is_help=True)
_MARK = {"ok": "[green]ok[/]", "failed": "[bold red]failed[/]", "skipped": "[dim]skipped[/]"}


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Pipeline file (see resources/pipelines).")],
    as_json: JsonFlag = False,
) -> None:
    """Run a pipeline file; the first failing step stops it and nothing after it runs."""
    from core.pipeline import run_pipeline  # training loads only when a pipeline runs

    def show(step: StepResult) -> None:
        (err_console if as_json else console).print(
            f"{step.seconds:6.2f} s  step {step.index} {step.kind}: {_MARK[step.status]} "
            f"{step.detail}")

    with open_catalog() as catalog:
        result = run_pipeline(catalog, file, on_step=show)
    if as_json:
        print_json(result.to_dict())
    failure = result.failure
    if failure is not None:
        raise OutpostError(f"pipeline {result.name} stopped at step {failure.index} "
                           f"({failure.kind}): {failure.detail}")
    if not as_json:
        console.print(f"pipeline {result.name} passed")
