"""A root command group that imports a sub-command's module only when it is used.

``outpost dataset list`` should not pay for importing the fleet, the hub or
scikit-learn: each group's module is loaded the first time its name is looked up.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperGroup

Loader = Callable[[], Any]
LAZY_COMMANDS: dict[str, Loader] = {}


def lazy_group(name: str, load_app: Callable[[], typer.Typer]) -> None:
    """Register ``outpost NAME …`` whose typer app comes from ``load_app()``."""
    LAZY_COMMANDS[name] = lambda: typer.main.get_group(load_app())


def lazy_command(name: str, load_function: Callable[[], Callable[..., Any]]) -> None:
    """Register the single command ``outpost NAME`` implemented by ``load_function()``."""

    def build() -> Any:
        holder = typer.Typer()
        holder.command(name)(load_function())
        return typer.main.get_command(holder)

    LAZY_COMMANDS[name] = build


class LazyRootGroup(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in LAZY_COMMANDS:
            command = LAZY_COMMANDS[cmd_name]()
            command.name = cmd_name
            self.add_command(command, cmd_name)
        return command
