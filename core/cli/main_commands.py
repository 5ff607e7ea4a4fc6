"""Top-level commands and the registration of every sub-command group."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from core.cli import app
from core.cli.common import JsonFlag, console, emit, open_catalog


def _version_callback(value: bool) -> None:
    if value:
        try:
            print(f"outpost {version('outpost')}")
        except PackageNotFoundError:
            print("outpost (not installed)")
        raise typer.Exit()


@app.callback()
def root(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
) -> None:
    """Outpost: offline MLOps — datasets, training, ONNX models and edge agents."""


@app.command()
def info(as_json: JsonFlag = False) -> None:
    """Show where the catalog lives and what it holds."""
    with open_catalog() as catalog:
        data = {
            "home": str(catalog.settings.home),
            "catalog": str(catalog.path),
            "migrations": [n for n, _ in catalog.applied_migrations()],
        }
    emit(data, as_json, lambda: console.print(
        f"catalog: {data['catalog']}\nmigrations applied: {data['migrations']}"))


from core.cli import dataset, samples  # noqa: E402

app.add_typer(dataset.app, name="dataset")
app.add_typer(samples.app, name="samples")

from core.cli import agent, bundle, demo, deploy, drift, keys, pipeline, telemetry  # noqa: E402

app.add_typer(agent.app, name="agent")
app.command()(deploy.deploy)
app.command()(deploy.rollback)
app.add_typer(telemetry.app, name="telemetry")
app.add_typer(drift.app, name="drift")
app.add_typer(keys.app, name="keys")
app.add_typer(bundle.app, name="bundle")
app.command()(demo.demo)
app.add_typer(pipeline.app, name="pipeline")

from core.cli import model, runs, train  # noqa: E402

app.command("train")(train.train)
app.add_typer(runs.app, name="runs")
app.add_typer(model.app, name="model")

from core.cli import hub  # noqa: E402

hub.register(app, agent.app)
