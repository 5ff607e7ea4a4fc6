"""The ``outpost gui`` command, plugged into the core CLI through an entry point."""
from __future__ import annotations

import typer


def register(cli: typer.Typer) -> None:
    @cli.command()
    def gui() -> None:
        """Open the desktop application on this catalog."""
        from app.main import run_gui

        raise typer.Exit(run_gui())
