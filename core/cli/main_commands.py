"""Top-level commands and the registration of every sub-command group."""
from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer

from core.cli import app
from core.cli.common import JsonFlag, console, emit, open_catalog
from core.cli.lazy import lazy_command, lazy_group


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




# Each group's module (and the core modules it needs) loads only when that command runs.
def _agent_app() -> typer.Typer:
    from core.cli import agent, hub

    hub.register_agent_commands(agent.app)
    return agent.app


def _module_app(module: str) -> Callable[[], typer.Typer]:
    return lambda: import_module(f"core.cli.{module}").app


def _module_function(module: str, function: str) -> Callable[[], Callable[..., Any]]:
    return lambda: getattr(import_module(f"core.cli.{module}"), function)


for _group in ("dataset", "samples", "telemetry", "drift", "keys", "bundle", "pipeline", "runs",
               "model", "hub", "feedback", "audit", "shadow", "rollout", "policy"):
    lazy_group(_group, _module_app(_group))
lazy_group("agent", _agent_app)
lazy_command("deploy", _module_function("deploy", "deploy"))
lazy_command("rollback", _module_function("deploy", "rollback"))
lazy_command("approve", _module_function("deploy", "approve"))
lazy_command("demo", _module_function("demo", "demo"))
lazy_command("train", _module_function("train", "train"))
lazy_command("accuracy", _module_function("feedback", "accuracy"))
