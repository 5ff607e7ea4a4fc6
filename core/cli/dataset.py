"""``outpost dataset …``: import, list, inspect, profile, compare and derive datasets."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from core.cli.common import JsonFlag, console, emit, open_catalog, progress_bar, table
from core.cli.session import cancel_token
from core.datasets import (
    DatasetVersion,
    Diff,
    ImportResult,
    Profile,
    ancestry,
    derive_dataset,
    diff_versions,
    import_dataset,
    list_datasets,
    list_versions,
    profile_version,
    read_page,
    resolve_version,
)
from core.datasets.options import ReadOptions
from core.datasets.profile import plain

app = typer.Typer(help="Import, inspect, profile, compare and derive versioned datasets.",
                  no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(help="Dataset NAME (latest version) or NAME@VERSION.")]
_SPARK = " ▁▂▃▄▅▆▇█"
_DISTRIBUTION_WIDTH = 22
_WIDE = 110


def _grid(title: str | None, columns: list[str], rows: list[tuple[Any, ...]],
          keep: tuple[int, ...] = (0,)) -> Table:
    """A table whose ``keep`` columns stay on one line (cut with … on a narrow terminal)."""
    result = table(title, columns, rows)
    for index in keep:
        result.columns[index].no_wrap = True
        result.columns[index].overflow = "ellipsis"
    return result


def _when(dv: DatasetVersion) -> str:
    return dv.created_at.strftime("%Y-%m-%d %H:%M")


def _origin(dv: DatasetVersion) -> str:
    if dv.source.get("kind") == "derive" and dv.parent:
        return f"derive from {dv.parent[0]}@{dv.parent[1][:12]}"
    if dv.source.get("kind") == "import":
        return f"import {Path(str(dv.source.get('path', ''))).name}"
    return str(dv.source.get("kind", ""))


def _accounted(result: ImportResult) -> str:
    lines = result.lines
    if lines is None or not (lines.skipped or lines.padded):
        return ""
    return f"; {lines.describe()}"


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(
        help="A .csv, .tsv, .parquet, .json, .ndjson or .xlsx file.")],
    name: Annotated[str | None, typer.Option("--name", help="Dataset name (default: file name).")]
    = None,
    encoding: Annotated[str | None, typer.Option(
        "--encoding", help="Text encoding (default: detected: UTF-8, UTF-16 with BOM, cp1252).")]
    = None,
    decimal: Annotated[str, typer.Option(
        "--decimal", help="Decimal mark of numbers in a CSV: '.' or ','.")] = ".",
    sheet: Annotated[str | None, typer.Option(
        "--sheet", help="Sheet of an .xlsx workbook (default: the first).")] = None,
    bad_lines: Annotated[str | None, typer.Option(
        "--bad-lines", help="CSV lines whose field count differs from the header's: "
        "'skip' them or 'null-pad' short ones (default: refuse the file).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import a file as a version of a dataset (the same content twice is one version)."""
    options = ReadOptions(encoding=encoding, decimal=decimal, sheet=sheet,
                          bad_lines=bad_lines)  # type: ignore[arg-type]
    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        result = import_dataset(catalog, path, name, options=options, progress=progress,
                                cancel=cancel_token())
    word = "imported" if result.new else "already there:"
    emit(result.to_dict(), as_json, lambda: console.print(
        f"{word} {result.ref}  ({result.rows:,} rows{_accounted(result)})"))


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List the datasets with their latest version."""
    with open_catalog() as catalog:
        infos = list_datasets(catalog)
    rows = [(i.name, i.latest.short, f"{i.latest.rows:,}", len(i.latest.columns), i.versions,
             _when(i.latest)) for i in infos]
    emit({"datasets": [i.to_dict() for i in infos]}, as_json, lambda: console.print(
        _grid(None, ["dataset", "latest", "rows", "columns", "versions", "created"], rows)
        if rows else "no datasets yet: outpost dataset import FILE, or outpost samples load"))


@app.command()
def versions(name: Annotated[str, typer.Argument(help="Dataset name.")],
             as_json: JsonFlag = False) -> None:
    """List the versions of a dataset, newest first."""
    with open_catalog() as catalog:
        found = list_versions(catalog, name)
    rows = [(v.short, f"{v.rows:,}", len(v.columns), _origin(v), _when(v)) for v in found]
    emit({"dataset": name, "versions": [v.to_dict() for v in found]}, as_json,
         lambda: console.print(_grid(name, ["version", "rows", "columns", "origin", "created"],
                                     rows)))


@app.command()
def show(ref: RefArg, as_json: JsonFlag = False) -> None:
    """Show one version: id, rows, columns and types, origin."""
    with open_catalog() as catalog:
        dv = resolve_version(catalog, ref)

    def render() -> None:
        console.print(f"[bold]{dv.ref}[/bold]  {dv.rows:,} rows  {_origin(dv)}  {_when(dv)}")
        console.print(f"version {dv.version}")
        if dv.source.get("sql"):
            console.print(Text(f"sql: {dv.source['sql']}"))
        console.print(_grid(None, ["column", "type"], [(c.name, c.type) for c in dv.columns]))

    emit(dv.to_dict(), as_json, render)


@app.command()
def lineage(ref: RefArg, as_json: JsonFlag = False) -> None:
    """Show a version's chain of parents and how each was made (SQL or import)."""
    with open_catalog() as catalog:
        chain = ancestry(catalog, resolve_version(catalog, ref))

    def render() -> None:
        for depth, dv in enumerate(chain):
            made = f"sql: {dv.source['sql']}" if dv.source.get("sql") else _origin(dv)
            console.print(Text(f"{'  ' * depth}{'└ ' if depth else ''}{dv.ref}  {dv.rows:,} rows"
                               f"  {made}  {_when(dv)}"))

    emit({"lineage": [dv.to_dict() for dv in chain]}, as_json, render)


@app.command()
def head(ref: RefArg,
         rows: Annotated[int, typer.Option("--rows", "-n", min=0, help="How many rows.")] = 10,
         as_json: JsonFlag = False) -> None:
    """Show the first rows of a version."""
    with open_catalog() as catalog:
        dv = resolve_version(catalog, ref)
        page = read_page(catalog, dv, 0, rows)
    names = [c.name for c in dv.columns]
    data = {"dataset": dv.dataset, "version": dv.version, "columns": names,
            "rows": [[plain(v) for v in row] for row in page]}
    emit(data, as_json, lambda: console.print(_grid(dv.ref, names, page)))


def _spark(column: dict[str, Any]) -> str:
    counts = [b["count"] for b in column.get("histogram") or []]
    if not counts or max(counts) == 0:
        return ""
    top = max(counts)
    return "".join(_SPARK[round(c / top * (len(_SPARK) - 1))] for c in counts)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:.3g}"
    text = "" if value is None else str(value)
    return text if len(text) <= 16 else text[:15] + "…"


def _distribution(col: dict[str, Any]) -> str:
    """A histogram sparkline for numbers, the most frequent values for the rest."""
    shares = (f"{_short(t['value'])} {t['count'] / max(col['count'], 1):.0%}"
              for t in col["top"][:3])
    return _spark(col) or ", ".join(shares)


def _render_profile(profile: Profile) -> None:
    headers = ["column", "type", "nulls", "distinct", "min", "max", "mean", "std",
               "distribution"]
    rows: list[tuple[Any, ...]] = [
        (col["name"], col["type"], _short(col["nulls"]), _short(col["distinct"]),
         _short(col["min"]), _short(col["max"]), _short(col["mean"]), _short(col["std"]),
         _distribution(col))
        for col in profile.to_dict()["columns"]]
    if console.width < _WIDE:  # a narrow terminal: the essentials, readable
        headers, rows = headers[:7], [row[:7] for row in rows]
    title = f"{profile.dataset}@{profile.version[:12]} — {profile.rows:,} rows"
    grid = _grid(title, headers, rows, keep=(0, len(headers) - 1))
    grid.columns[-1].max_width = _DISTRIBUTION_WIDTH if len(headers) > 7 else None
    console.print(grid)


@app.command()
def profile(ref: RefArg, as_json: JsonFlag = False) -> None:
    """Profile every column: type, nulls, distinct, min/max/mean/std, quantiles, top values."""
    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        result = profile_version(catalog, resolve_version(catalog, ref), progress=progress,
                                 cancel=cancel_token())
    emit(result.to_dict(), as_json, lambda: _render_profile(result))


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:.0%}" for k, v in list(value.items())[:3])
    return _short(value)


def _render_diff(diff: Diff) -> None:
    if diff.same_content:
        console.print(f"{diff.a} and {diff.b} hold the same content")
        return
    delta = diff.rows[1] - diff.rows[0]
    console.print(f"{diff.a} → {diff.b}")
    console.print(f"rows {diff.rows[0]:,} → {diff.rows[1]:,} ({delta:+,})")
    for col in diff.added:
        console.print(Text(f"  + {col.name} ({col.type})", style="green"))
    for col in diff.removed:
        console.print(Text(f"  - {col.name} ({col.type})", style="red"))
    for name, ta, tb in diff.retyped:
        console.print(Text(f"  ~ {name}: {ta} → {tb}", style="yellow"))
    notable = [c for c in diff.changes if c.notable]
    rows = [(c.column, c.stat, _cell(c.a), _cell(c.b), _short(c.delta)) for c in notable]
    if rows:
        console.print(_grid("notable changes", ["column", "stat", "a", "b", "delta"], rows))
    hidden = len(diff.changes) - len(notable)
    if hidden:
        console.print(f"{hidden} smaller statistic changes (--json lists them all)")


@app.command()
def diff(a: Annotated[str, typer.Argument(help="First version: NAME or NAME@VERSION.")],
         b: Annotated[str, typer.Argument(help="Second version: NAME or NAME@VERSION.")],
         as_json: JsonFlag = False) -> None:
    """Compare two versions: schema changes, row count, per-column statistics."""
    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        result = diff_versions(catalog, a, b, progress=progress, cancel=cancel_token())
    emit(result.to_dict(), as_json, lambda: _render_diff(result))


@app.command()
def derive(
    new: Annotated[str, typer.Argument(help="Name of the derived dataset.")],
    source: Annotated[str, typer.Option("--from", help="Parent: NAME or NAME@VERSION.")],
    sql: Annotated[str, typer.Option("--sql", help='One SELECT over the parent, "… FROM data".')],
    as_json: JsonFlag = False,
) -> None:
    """Create a version from a SQL query over another version (lineage recorded)."""
    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        parent = resolve_version(catalog, source)
        result = derive_dataset(catalog, new, parent, sql, progress=progress, cancel=cancel_token())
    data = {**result.to_dict(), "parent": f"{parent.dataset}@{parent.version}"}
    word = "derived" if result.new else "already there:"
    emit(data, as_json, lambda: console.print(
        f"{word} {result.ref}  ({result.rows:,} rows) from {parent.ref}"))
