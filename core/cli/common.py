"""What every CLI command shares: the catalog it opens, ``--json`` output, rich tables."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.catalog import Catalog
from core.config import Settings
from core.progress import ProgressEvent, ProgressFn

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]

console = Console()
err_console = Console(stderr=True)


@contextmanager
def open_catalog() -> Iterator[Catalog]:
    with Catalog.open(Settings.from_env()) as catalog:
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
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err_console,
        transient=True,
    ) as bar:

        def update(event: ProgressEvent) -> None:
            if event.stage not in tasks:
                tasks[event.stage] = bar.add_task(event.stage, total=event.total)
            bar.update(tasks[event.stage], completed=event.done, total=event.total)

        yield update
