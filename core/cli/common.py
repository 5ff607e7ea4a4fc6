"""What every CLI command shares: the catalog it opens, ``--json`` output, rich tables."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, cast

import orjson
import typer
from rich.console import Console
from rich.table import Table

from core.catalog import Catalog
from core.cli.forwarding import forward_needed, serving
from core.cli.session import forwarded
from core.config import Settings
from core.errors import CatalogInUse
from core.progress import ProgressEvent, ProgressFn

if TYPE_CHECKING:
    from rich.progress import TaskID

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


class _CurrentConsole:
    """This process's console, or the client's for a command forwarded to this one."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._own = Console(stderr=stderr)

    def get(self) -> Console:
        current = forwarded()
        if current is None:
            return self._own
        return current.err_console if self._stderr else current.console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


_console, _err_console = _CurrentConsole(stderr=False), _CurrentConsole(stderr=True)
console = cast(Console, _console)
err_console = cast(Console, _err_console)


@contextmanager
def open_catalog() -> Iterator[Catalog]:
    """The catalog: opened here (and served to other commands meanwhile), or, for a
    command forwarded into the process that holds it, a cursor of that one's."""
    current = forwarded()
    if current is not None:
        with current.catalog.for_thread() as catalog:
            yield catalog
        return
    try:
        opened = Catalog.open(Settings.from_env())
    except CatalogInUse as exc:
        raise forward_needed(exc) from None
    from core.cli import run

    with opened as catalog, serving(catalog, run):
        yield catalog


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


def print_json(data: Any) -> None:
    sys.stdout.buffer.write(
        orjson.dumps(data, default=_default,
                     option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def emit(data: Any, as_json: bool, render: Callable[[], None]) -> None:
    """Either the JSON document or the human rendering, never both."""
    if as_json:
        print_json(data)
    else:
        render()


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    result = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*("" if cell is None else str(cell) for cell in row))
    return result


@contextmanager
def progress_bar(enabled: bool) -> Iterator[ProgressFn | None]:
    """A rich progress bar on stderr fed by core progress events (off with --json)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
        console=_err_console.get(),
        transient=True,
    ) as bar:

        def update(event: ProgressEvent) -> None:
            if event.stage not in tasks:
                tasks[event.stage] = bar.add_task(event.stage, total=event.total)
            bar.update(tasks[event.stage], completed=event.done, total=event.total)

        yield update
