"""Every CLI command, at every depth, documents itself in --help."""
from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from core.cli import app


def _walk(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    if hasattr(command, "commands"):
        ctx = typer.Context(command)
        # list/get, not .commands: the root group loads its sub-commands lazily.
        for name in command.list_commands(ctx):
            found.extend(_walk(command.get_command(ctx, name), (*path, name)))
    return found


COMMANDS = _walk(typer.main.get_command(app))
# Commands whose output is a window or a long-running server, not a document.
NO_JSON = {("gui",)}
LEAVES = [(p, c) for p, c in COMMANDS if not hasattr(c, "commands") and p not in NO_JSON]


def test_the_tree_has_commands() -> None:
    assert len(COMMANDS) > 1


@pytest.mark.parametrize("path,command", COMMANDS,
                         ids=[" ".join(p) or "outpost" for p, _ in COMMANDS])
def test_command_has_help_text(path: tuple[str, ...], command: Any) -> None:
    assert (command.help or "").strip(), f"`outpost {' '.join(path)}` has no help text"
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.parametrize("path,command", LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_leaf_command_offers_json(path: tuple[str, ...], command: Any) -> None:
    names = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert "--json" in names, f"`outpost {' '.join(path)}` has no --json option"
